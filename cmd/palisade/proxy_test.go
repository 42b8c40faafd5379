package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TestProxyProcesses runs the data plane as it is deployed: `palisade
// server` distributing the corrected reference system's policy, `palisade
// agent`, and a `palisade proxy` process each for frontend, backend-api and
// postgres, with real clients — psql to a real PostgreSQL through the TCP
// path, curl over HTTP — where the policy allows and where it does not.
func TestProxyProcesses(t *testing.T) {
	psql, pgAddr := startPostgres(t)
	dir := t.TempDir()
	if err := copyTree("../../examples/reference-system-fixed", filepath.Join(dir, "system")); err != nil {
		t.Fatal(err)
	}
	serverState := filepath.Join(dir, "server")
	sock := filepath.Join(serverState, "admin.sock")
	agentSock := filepath.Join(dir, "agent.sock")
	addr, policyAddr := freeAddr(t), freeAddr(t)
	serverOut := start(t, "server", "--state-dir", serverState, "--bind", addr, "-f", filepath.Join(dir, "system"), "--policy-bind", policyAddr)
	eventually(t, "server", func() error {
		if out, _, code := run(t, "", "healthcheck", "--server-socket", sock); code != 0 {
			return fmt.Errorf("exit %d: %s %s", code, out, serverOut)
		}
		return nil
	})
	tokenOut, _, _ := run(t, "", "agent", "token", "--server-socket", sock)
	token := regexp.MustCompile(`Token: (\S+)`).FindStringSubmatch(tokenOut)
	agentID := regexp.MustCompile(`Agent ID: (\S+)`).FindStringSubmatch(tokenOut)
	if token == nil || agentID == nil {
		t.Fatalf("agent token: %s", tokenOut)
	}
	bundle, _, _ := run(t, "", "bundle", "show", "--server-socket", sock)
	bundleFile := filepath.Join(dir, "bundle.pem")
	os.WriteFile(bundleFile, []byte(bundle), 0o644)
	agentOut := start(t, "agent", "--server", addr, "--join-token", token[1], "--trust-bundle", bundleFile,
		"--state-dir", filepath.Join(dir, "agent"), "--socket", agentSock)
	eventually(t, "agent", func() error {
		if out, _, code := run(t, "", "healthcheck", "--agent-socket", agentSock); code != 0 {
			return fmt.Errorf("exit %d: %s %s", code, out, agentOut)
		}
		return nil
	})
	for _, sa := range []string{"frontend-service", "backend-service", "postgres"} {
		if out, stderr, code := run(t, "", "entry", "create", "--server-socket", sock, "--spiffe-id", "spiffe://cluster.local/ns/production/sa/"+sa,
			"--parent-id", agentID[1], "--selector", "unix:uid:"+strconv.Itoa(os.Getuid())); code != 0 {
			t.Fatalf("entry create: %s %s", out, stderr)
		}
	}

	// The company issuer's key, as the backend proxy's JWKS.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	jwksFile := filepath.Join(dir, "jwks.json")
	os.WriteFile(jwksFile, jwks, 0o644)
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	tok, err := jwt.Signed(signer).Claims(map[string]any{"iss": "https://auth.company.com", "sub": "user-1", "aud": "api.company.com",
		"exp": time.Now().Add(time.Hour).Unix()}).Serialize()
	if err != nil {
		t.Fatal(err)
	}

	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend saw %s %s", r.Method, r.URL.Path)
	}))
	defer app.Close()
	inPG, inBE := freeAddr(t), freeAddr(t)
	outBEPG, outFEBE, outFEPG := freeAddr(t), freeAddr(t), freeAddr(t)
	common := []string{"--server", policyAddr, "--socket", agentSock}
	for _, args := range [][]string{
		{"--workload", "production/postgres", "--inbound", "5432,listen=" + inPG + ",app=" + pgAddr},
		{"--workload", "production/backend-api", "--inbound", "8080,listen=" + inBE + ",app=" + strings.TrimPrefix(app.URL, "http://"),
			"--outbound", "listen=" + outBEPG + ",to=production/postgres:5432,endpoint=" + inPG,
			"--jwks", "https://auth.company.com/.well-known/jwks.json=" + jwksFile},
		{"--workload", "production/frontend", "--flow-log", filepath.Join(dir, "frontend.flow.log"),
			"--outbound", "listen=" + outFEBE + ",to=production/backend-api:8080,endpoint=" + inBE,
			"--outbound", "listen=" + outFEPG + ",to=production/postgres:5432,endpoint=" + inPG},
	} {
		out := start(t, append(append([]string{"proxy"}, common...), args...)...)
		var listen string // the first listener the proxy opens
		for _, a := range args {
			if _, l, ok := strings.Cut(a, "listen="); ok && listen == "" {
				listen, _, _ = strings.Cut(l, ",")
			}
		}
		eventually(t, args[1]+" listening", func() error {
			c, err := net.Dial("tcp", listen)
			if err != nil {
				return fmt.Errorf("%v\n%s", err, out)
			}
			c.Close()
			return nil
		})
	}

	pg := func(addr string) (string, error) {
		host, port, _ := net.SplitHostPort(addr)
		cmd := exec.Command(psql, "-h", host, "-p", port, "-U", "postgres", "-d", "postgres", "-tAc", "select 6*7")
		cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10")
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	// The backend may reach PostgreSQL (database-access); the frontend may
	// not (no egress rule to postgres).
	if out, err := pg(outBEPG); err != nil || out != "42" {
		t.Errorf("psql as backend-api: %q, %v", out, err)
	}
	if out, err := pg(outFEPG); err == nil {
		t.Errorf("psql as frontend: allowed (%q)", out)
	}
	// Refused by the frontend's egress policy, not by a proxy that is down.
	eventually(t, "frontend's flow log", func() error {
		flows, _ := os.ReadFile(filepath.Join(dir, "frontend.flow.log"))
		for _, line := range strings.Split(string(flows), "\n") {
			if strings.Contains(line, `"verdict":"DROPPED"`) && strings.Contains(line, `"destination_port":5432`) && strings.Contains(line, `"EGRESS"`) {
				return nil
			}
		}
		return fmt.Errorf("no dropped egress flow to 5432:\n%s", flows)
	})

	curl := func(args ...string) string {
		out, _ := exec.Command("curl", append([]string{"-s", "-o", "-", "-w", " %{http_code}", "--max-time", "10"}, args...)...).CombinedOutput()
		return string(out)
	}
	if got := curl("-H", "Authorization: Bearer "+tok, "http://"+outFEBE+"/api/v1/users"); got != "backend saw GET /api/v1/users 200" {
		t.Errorf("frontend GET /api/v1/users with a token: %q", got)
	}
	if got := curl("http://" + outFEBE + "/api/v1/users"); got != "RBAC: access denied 403" {
		t.Errorf("without a token: %q", got)
	}
	if got := curl("--path-as-is", "-H", "Authorization: Bearer "+tok, "http://"+outFEBE+"/api/v1/../../admin/x"); got != "RBAC: access denied 403" {
		t.Errorf("dot segments to /admin: %q", got)
	}
	// A client without a sidecar straight at the backend's proxy: STRICT
	// mTLS refuses it (curl reports no status).
	if got := curl("http://" + inBE + "/api/v1/users"); got != " 000" {
		t.Errorf("plaintext under STRICT: %q", got)
	}
}

// startPostgres starts a throwaway PostgreSQL server on loopback and
// returns psql's path and the server's address. PostgreSQL refuses to run
// as root, so under root it runs as the postgres user of Debian's package.
func startPostgres(t *testing.T) (psql, addr string) {
	t.Helper()
	bin := os.Getenv("PALISADE_PG_BIN")
	if bin == "" {
		dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
		if len(dirs) > 0 {
			bin = dirs[len(dirs)-1]
		}
	}
	psql, err := exec.LookPath("psql")
	if bin == "" || err != nil {
		if os.Getenv("PALISADE_E2E_REQUIRED") != "" {
			t.Fatal("PostgreSQL is required (Debian package postgresql)")
		}
		t.Skip("PostgreSQL not installed (Debian package postgresql); .ci/run installs it")
	}
	data, err := os.MkdirTemp("", "palisade-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(data) })
	// PostgreSQL refuses root: run it as the postgres user of Debian's
	// package, directly (not through runuser, so signals reach it).
	var cred *syscall.Credential
	if os.Getuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(data, uid, gid); err != nil {
			t.Fatal(err)
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	asUser := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(name, args...)
		cmd.Dir = data
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		return cmd
	}
	if out, err := asUser(filepath.Join(bin, "initdb"), "-D", filepath.Join(data, "db"), "-U", "postgres", "--auth=trust").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	addr = freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	server := asUser(filepath.Join(bin, "postgres"), "-D", filepath.Join(data, "db"), "-p", port, "-k", data, "-c", "listen_addresses=127.0.0.1")
	out := &lockedBuffer{}
	server.Stdout, server.Stderr = out, out
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		server.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { server.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			server.Process.Kill()
		}
	})
	eventually(t, "PostgreSQL", func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("%v\n%s", err, out.String())
		}
		c.Close()
		return nil
	})
	return psql, addr
}
