package agent_test

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/palisade-security/palisade/internal/agent"
	"github.com/palisade-security/palisade/internal/identity"
	"github.com/palisade-security/palisade/internal/server"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// rig is a server and an agent running in this process, on loopback and a
// unix socket, as `palisade server` and `palisade agent` run them.
type rig struct {
	server     *server.Server
	agent      *agent.Agent
	agentID    spiffeid.ID
	socket     string
	stopServer func() // stops only the server, leaving the agent running
}

type rigConfig struct {
	caTTL, svidTTL time.Duration
}

func startRig(t testing.TB, rc rigConfig) *rig {
	t.Helper()
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	serverCtx, serverCancel := context.WithCancel(ctx)
	srv, err := server.New(serverCtx, server.Config{
		TrustDomain: td, StateDir: filepath.Join(dir, "server"), BindAddr: "127.0.0.1:0",
		CATTL: rc.caTTL, SVIDTTL: rc.svidTTL, RotationInterval: 200 * time.Millisecond, Logger: logger,
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	serverDone := make(chan error, 1)
	go func() { serverDone <- srv.Run(serverCtx) }()
	<-srv.Ready()

	// The first contact is verified against the server's bundle, as an
	// operator would pass it with --trust-bundle.
	bundleFile := filepath.Join(dir, "bundle.pem")
	var pemData []byte
	for _, c := range srv.CA().X509Authorities() {
		pemData = append(pemData, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := os.WriteFile(bundleFile, pemData, 0o644); err != nil {
		t.Fatal(err)
	}
	token := identity.JoinToken{Token: "token-" + strconv.FormatInt(time.Now().UnixNano(), 36), ExpiresAt: time.Now().Add(time.Minute)}
	if err := srv.Store().CreateJoinToken(ctx, token); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "agent.sock")
	ag, err := agent.New(agent.Config{
		TrustDomain: td, ServerAddr: srv.AgentAddr().String(), JoinToken: token.Token, TrustBundleFile: bundleFile,
		StateDir: filepath.Join(dir, "agent"), SocketPath: socket, Logger: logger, SyncWait: 10 * time.Second,
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	agentDone := make(chan error, 1)
	go func() { agentDone <- ag.Run(ctx) }()
	select {
	case <-ag.Ready():
	case err := <-agentDone:
		cancel()
		t.Fatalf("agent: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("agent did not become ready")
	}
	agentID, _ := identity.AgentID(td, token.Token)
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { serverCancel(); <-serverDone }) }
	r := &rig{server: srv, agent: ag, agentID: agentID, socket: socket, stopServer: stop}
	t.Cleanup(func() {
		cancel()
		<-agentDone
		stop()
	})
	return r
}

// register creates an entry for this test process (its uid), as
// `palisade entry create` would.
func (r *rig) register(t testing.TB, path string, extra ...identity.Selector) spiffeid.ID {
	t.Helper()
	id := spiffeid.RequireFromPath(td, path)
	sel := append(identity.Selectors{{Type: "unix", Value: "uid:" + strconv.Itoa(os.Getuid())}}, extra...)
	if _, err := r.server.CreateEntry(context.Background(), &identity.Entry{SPIFFEID: id, ParentID: r.agentID, Selectors: sel}); err != nil {
		t.Fatal(err)
	}
	return id
}

func (r *rig) addr() string { return "unix://" + r.socket }

func TestGoSpiffeSources(t *testing.T) {
	r := startRig(t, rigConfig{})
	id := r.register(t, "/ns/default/sa/web")

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(r.addr())))
	if err != nil {
		t.Fatalf("X509Source: %v", err)
	}
	defer src.Close()
	svid, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	if svid.ID != id {
		t.Errorf("got %s, want %s", svid.ID, id)
	}
	if _, _, err := x509svid.Verify(svid.Certificates, src); err != nil {
		t.Errorf("the SVID does not verify against the served bundle: %v", err)
	}

	jwtSrc, err := workloadapi.NewJWTSource(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(r.addr())))
	if err != nil {
		t.Fatal(err)
	}
	defer jwtSrc.Close()
	tok, err := jwtSrc.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "billing"})
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwtsvid.ParseAndValidate(tok.Marshal(), jwtSrc, []string{"billing"})
	if err != nil || parsed.ID != id {
		t.Errorf("JWT-SVID: %v %v", parsed, err)
	}
}

var errNotYet = errors.New("not yet")

// TestServesFromCacheWhileServerDown stops the server: the agent keeps
// serving the SVID it has.
func TestServesFromCacheWhileServerDown(t *testing.T) {
	r := startRig(t, rigConfig{})
	id := r.register(t, "/ns/default/sa/web")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(r.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	waitFor(t, 10*time.Second, func() error {
		_, err := client.FetchX509SVID(ctx)
		return err
	})
	r.stopServer()
	svid, err := client.FetchX509SVID(ctx)
	if err != nil || svid.ID != id {
		t.Fatalf("with the server down: %v %v", svid, err)
	}
	if _, err := client.FetchX509Bundles(ctx); err != nil {
		t.Errorf("bundle with the server down: %v", err)
	}
}

// waitFor polls f until it succeeds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMTLSAcrossRotation runs two go-spiffe workloads talking mTLS through
// SVIDs that rotate every second or so and a CA that rotates too, and
// requires every request to succeed.
func TestMTLSAcrossRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("rotation takes about 20 seconds")
	}
	r := startRig(t, rigConfig{caTTL: 12 * time.Second, svidTTL: 3 * time.Second})
	serverID := r.register(t, "/ns/default/sa/api", identity.Selector{Type: "unix", Value: "gid:" + strconv.Itoa(os.Getgid())})
	clientID := r.register(t, "/ns/default/sa/web")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pick := func(id spiffeid.ID) workloadapi.X509SourceOption {
		return workloadapi.WithDefaultX509SVIDPicker(func(svids []*x509svid.SVID) *x509svid.SVID {
			for _, s := range svids {
				if s.ID == id {
					return s
				}
			}
			return svids[0]
		})
	}
	serverSrc, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(r.addr())), pick(serverID))
	if err != nil {
		t.Fatal(err)
	}
	defer serverSrc.Close()
	clientSrc, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(r.addr())), pick(clientID))
	if err != nil {
		t.Fatal(err)
	}
	defer clientSrc.Close()
	waitFor(t, 10*time.Second, func() error {
		s, err := serverSrc.GetX509SVID()
		if err != nil || s.ID != serverID {
			return fmt.Errorf("server source has %v: %w", s, errNotYet)
		}
		return nil
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpServer := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }),
		TLSConfig: tlsconfig.MTLSServerConfig(serverSrc, serverSrc, tlsconfig.AuthorizeID(clientID)),
	}
	go httpServer.ServeTLS(ln, "", "")
	defer httpServer.Close()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   tlsconfig.MTLSClientConfig(clientSrc, clientSrc, tlsconfig.AuthorizeID(serverID)),
		DisableKeepAlives: true, // a new handshake each time, so each request sees the current SVIDs
	}}

	firstServerSerial := mustSVID(t, serverSrc).Certificates[0].SerialNumber.String()
	firstCA := mustSVID(t, serverSrc).Certificates[0].AuthorityKeyId
	var ok, failed atomic.Int64
	deadline := time.Now().Add(16 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := client.Get("https://" + ln.Addr().String())
		if err == nil && resp.StatusCode == http.StatusOK {
			ok.Add(1)
		} else {
			failed.Add(1)
			t.Logf("request failed: %v", err)
		}
		if resp != nil {
			resp.Body.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	last := mustSVID(t, serverSrc)
	if last.Certificates[0].SerialNumber.String() == firstServerSerial {
		t.Error("the server's SVID never rotated")
	}
	if string(last.Certificates[0].AuthorityKeyId) == string(firstCA) {
		t.Error("the CA never rotated: the last SVID is signed by the first CA")
	}
	if failed.Load() != 0 || ok.Load() < 100 {
		t.Errorf("%d requests succeeded, %d failed; want no failures", ok.Load(), failed.Load())
	}
}

func mustSVID(t *testing.T, src *workloadapi.X509Source) *x509svid.SVID {
	t.Helper()
	s, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSpireAgentCLI fetches an SVID with SPIRE's own client, `spire-agent
// api fetch x509`, and verifies the chain with `openssl verify`: two
// programs Palisade did not write. CI builds spire-agent from the tools
// module (see .ci/run) and passes its path in SPIRE_AGENT_BIN.
func TestSpireAgentCLI(t *testing.T) {
	bin := os.Getenv("SPIRE_AGENT_BIN")
	if bin == "" {
		t.Skip("SPIRE_AGENT_BIN is not set (build it: cd tools && go build -o DIR/spire-agent github.com/spiffe/spire/cmd/spire-agent)")
	}
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed")
	}
	r := startRig(t, rigConfig{})
	id := r.register(t, "/ns/default/sa/cli")
	out := t.TempDir()
	var stdout []byte
	waitFor(t, 10*time.Second, func() error {
		var err error
		stdout, err = exec.Command(bin, "api", "fetch", "x509", "-socketPath", r.socket, "-write", out).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, stdout)
		}
		return nil
	})
	if !strings.Contains(string(stdout), id.String()) {
		t.Errorf("spire-agent did not report %s:\n%s", id, stdout)
	}
	verify, err := exec.Command(openssl, "verify", "-CAfile", filepath.Join(out, "bundle.0.pem"), filepath.Join(out, "svid.0.pem")).CombinedOutput()
	if err != nil || !strings.Contains(string(verify), ": OK") {
		t.Errorf("openssl verify: %v\n%s", err, verify)
	}
}
