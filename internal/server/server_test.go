package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/palisade-security/palisade/internal/datastore"
	"github.com/palisade-security/palisade/internal/identity"
	"github.com/palisade-security/palisade/internal/nodeapi"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

func startServer(t *testing.T) *Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(ctx, Config{TrustDomain: td, StateDir: t.TempDir(), BindAddr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s
}

// admin calls the admin API over the unix socket, as the CLI does.
func admin(t *testing.T, s *Server, method, path string, in any) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", s.cfg.AdminSocket)
	}}}
	var body io.Reader
	if in != nil {
		data, _ := json.Marshal(in)
		body = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, "http://palisade"+path, body)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// agentAPI calls the agent API without a client certificate.
func agentAPI(t *testing.T, s *Server, path string, in any) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	data, _ := json.Marshal(in)
	resp, err := c.Post("https://"+s.AgentAddr().String()+path, "application/json", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func csr(t *testing.T) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestBadInputChangesNothing sends each kind of bad input and checks the
// error and that nothing was stored or consumed.
func TestBadInputChangesNothing(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	if err := s.Store().CreateJoinToken(ctx, identity.JoinToken{Token: "good", ExpiresAt: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Store().CreateJoinToken(ctx, identity.JoinToken{Token: "old", ExpiresAt: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		call   func() (int, string)
		status int
		msg    string
	}{
		{"malformed CSR", func() (int, string) {
			return agentAPI(t, s, nodeapi.PathAttest, nodeapi.AttestRequest{Attestor: "join_token", Payload: []byte("good"), CSR: []byte("not a CSR")})
		}, 400, "CSR refused"},
		{"unknown join token", func() (int, string) {
			return agentAPI(t, s, nodeapi.PathAttest, nodeapi.AttestRequest{Attestor: "join_token", Payload: []byte("nope"), CSR: csr(t)})
		}, 403, "does not exist or has already been used"},
		{"expired join token", func() (int, string) {
			return agentAPI(t, s, nodeapi.PathAttest, nodeapi.AttestRequest{Attestor: "join_token", Payload: []byte("old"), CSR: csr(t)})
		}, 403, "expired"},
		{"unknown attestor", func() (int, string) {
			return agentAPI(t, s, nodeapi.PathAttest, nodeapi.AttestRequest{Attestor: "k8s_psat", Payload: []byte("x"), CSR: csr(t)})
		}, 400, "unknown node attestor"},
		{"no agent SVID", func() (int, string) {
			return agentAPI(t, s, nodeapi.PathSign, nodeapi.SignRequest{})
		}, 401, "an agent SVID is required"},
		{"unknown field", func() (int, string) {
			return agentAPI(t, s, nodeapi.PathAttest, map[string]any{"attestor": "join_token", "payload": []byte("good"), "csr": csr(t), "extra": 1})
		}, 400, "unknown field"},
		{"entry in another trust domain", func() (int, string) {
			return admin(t, s, http.MethodPost, nodeapi.PathEntries, nodeapi.Entry{SPIFFEID: "spiffe://other.org/web", ParentID: "spiffe://example.org/spire/agent/x", Selectors: []string{"unix:uid:1"}})
		}, 400, "not in trust domain"},
		{"entry without a path", func() (int, string) {
			return admin(t, s, http.MethodPost, nodeapi.PathEntries, nodeapi.Entry{SPIFFEID: "spiffe://example.org", ParentID: "spiffe://example.org/spire/agent/x", Selectors: []string{"unix:uid:1"}})
		}, 400, "needs a path"},
		{"entry with a bad selector", func() (int, string) {
			return admin(t, s, http.MethodPost, nodeapi.PathEntries, nodeapi.Entry{SPIFFEID: "spiffe://example.org/web", ParentID: "spiffe://example.org/spire/agent/x", Selectors: []string{"uid"}})
		}, 400, "want TYPE:VALUE"},
		{"entry with a malformed ID", func() (int, string) {
			return admin(t, s, http.MethodPost, nodeapi.PathEntries, nodeapi.Entry{SPIFFEID: "https://example.org/web", ParentID: "spiffe://example.org/spire/agent/x", Selectors: []string{"unix:uid:1"}})
		}, 400, "spiffeId"},
	}
	for _, c := range cases {
		status, body := c.call()
		if status != c.status || !strings.Contains(body, c.msg) {
			t.Errorf("%s: %d %s, want %d containing %q", c.name, status, body, c.status, c.msg)
		}
	}
	if entries, _ := s.Store().ListEntries(ctx, datastore.EntryFilter{}); len(entries) != 0 {
		t.Errorf("bad input stored %d entries", len(entries))
	}
	if agents, _ := s.Store().ListAgents(ctx); len(agents) != 0 {
		t.Errorf("bad input attested %d agents", len(agents))
	}
	// The good token survived the malformed CSR, and works once.
	if status, body := agentAPI(t, s, nodeapi.PathAttest, nodeapi.AttestRequest{Attestor: "join_token", Payload: []byte("good"), CSR: csr(t)}); status != 200 {
		t.Fatalf("attest: %d %s", status, body)
	}
	if status, _ := agentAPI(t, s, nodeapi.PathAttest, nodeapi.AttestRequest{Attestor: "join_token", Payload: []byte("good"), CSR: csr(t)}); status != 403 {
		t.Errorf("a join token must work once; second use got %d", status)
	}
}

func TestAdminAPI(t *testing.T) {
	s := startServer(t)
	status, body := admin(t, s, http.MethodPost, nodeapi.PathEntries, nodeapi.Entry{
		SPIFFEID: "spiffe://example.org/ns/a/sa/web", ParentID: "spiffe://example.org/spire/agent/x", Selectors: []string{"unix:uid:1000"},
	})
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, body)
	}
	var e nodeapi.Entry
	json.Unmarshal([]byte(body), &e)
	if status, _ := admin(t, s, http.MethodPost, nodeapi.PathEntries, nodeapi.Entry{
		SPIFFEID: "spiffe://example.org/ns/a/sa/web", ParentID: "spiffe://example.org/spire/agent/x", Selectors: []string{"unix:uid:1000"},
	}); status != http.StatusConflict {
		t.Errorf("duplicate entry: %d", status)
	}
	if status, body := admin(t, s, http.MethodGet, nodeapi.PathEntries+"/"+e.ID, nil); status != 200 || !strings.Contains(body, "unix:uid:1000") {
		t.Errorf("show: %d %s", status, body)
	}
	if status, body := admin(t, s, http.MethodGet, nodeapi.PathEntries+"?parentId=spiffe://example.org/spire/agent/x", nil); status != 200 || !strings.Contains(body, e.ID) {
		t.Errorf("list: %d %s", status, body)
	}
	if status, _ := admin(t, s, http.MethodDelete, nodeapi.PathEntries+"/"+e.ID, nil); status != 200 {
		t.Errorf("delete: %d", status)
	}
	if status, _ := admin(t, s, http.MethodGet, nodeapi.PathEntries+"/"+e.ID, nil); status != 404 {
		t.Errorf("show after delete: %d", status)
	}
	if status, body := admin(t, s, http.MethodPost, nodeapi.PathJoinTokens, nodeapi.JoinTokenRequest{}); status != 201 || !strings.Contains(body, "spiffe://example.org/spire/agent/join_token/") {
		t.Errorf("join token: %d %s", status, body)
	}
	if status, body := admin(t, s, http.MethodGet, nodeapi.PathBundle+"?format=pem", nil); status != 200 || !strings.Contains(body, "BEGIN CERTIFICATE") {
		t.Errorf("bundle: %d %s", status, body)
	}
}

// TestRestartKeepsState restarts a server on the same state directory: the
// CA and the entries are still there.
func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	run := func() (*Server, func()) {
		ctx, cancel := context.WithCancel(context.Background())
		s, err := New(ctx, Config{TrustDomain: td, StateDir: dir, BindAddr: "127.0.0.1:0", Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		<-s.Ready()
		return s, func() { cancel(); <-done }
	}
	s, stop := run()
	root := s.CA().X509Authorities()[0].Raw
	id := spiffeid.RequireFromString("spiffe://example.org/web")
	if _, err := s.CreateEntry(context.Background(), &identity.Entry{SPIFFEID: id, ParentID: identity.ServerID(td), Selectors: identity.Selectors{{Type: "unix", Value: "uid:1"}}}); err != nil {
		t.Fatal(err)
	}
	stop()
	s, stop = run()
	defer stop()
	if !bytes.Equal(root, s.CA().X509Authorities()[0].Raw) {
		t.Error("the CA changed across a restart")
	}
	if entries, _ := s.Store().ListEntries(context.Background(), datastore.EntryFilter{SPIFFEID: &id}); len(entries) != 1 {
		t.Errorf("entries after restart: %d", len(entries))
	}
	if fi, err := os.Stat(filepath.Join(dir, "admin.sock")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("admin socket mode: %v %v", fi, err)
	}
}

func TestHealthEndpoints(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(ctx, Config{TrustDomain: td, StateDir: t.TempDir(), BindAddr: "127.0.0.1:0", HealthAddr: addr, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-s.Ready()
	for _, path := range []string{"/live", "/ready"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("%s: %v %v", path, resp, err)
			continue
		}
		resp.Body.Close()
	}
}
