package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var backendID = spiffeid.RequireFromString("spiffe://cluster.local/ns/shop/sa/backend")

func get(t *testing.T, c *http.Client, url string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPeerAuthenticationModes: STRICT refuses plaintext with a reset and
// serves mTLS; PERMISSIVE serves both (TLS detected from the first
// bytes); DISABLE serves plaintext only.
func TestPeerAuthenticationModes(t *testing.T) {
	m := newMesh(t, "", Limits{})
	bundle := x509bundle.NewSet(m.ca.bundle())
	tlsC := mtlsClient(m.front, bundle, backendID, false)
	plain := &http.Client{Timeout: 5 * time.Second}

	if code, body := get(t, tlsC, "https://"+m.strict+"/api/v1/users"); code != 200 || !strings.HasPrefix(body, "GET /api/v1/users") {
		t.Errorf("STRICT over mTLS: %d %q", code, body)
	}
	// Plaintext under STRICT: no filter chain matches, the connection is
	// reset.
	if _, err := plain.Get("http://" + m.strict + "/public/x"); err == nil {
		t.Error("STRICT accepted plaintext")
	}
	c, err := net.Dial("tcp", m.strict)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /public/x HTTP/1.1\r\nHost: b\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 10))
	c.Close()
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("STRICT plaintext: want a reset, got %v", err)
	}

	for _, tc := range []struct{ name, addr string }{{"PERMISSIVE", m.permissive}} {
		if code, _ := get(t, plain, "http://"+tc.addr+"/public/x"); code != 200 {
			t.Errorf("%s plaintext: %d", tc.name, code)
		}
		if code, _ := get(t, tlsC, "https://"+tc.addr+"/api/v1/users"); code != 200 {
			t.Errorf("%s mTLS: %d", tc.name, code)
		}
		// Plaintext has no principal: the principal rule does not match.
		if code, body := get(t, plain, "http://"+tc.addr+"/api/v1/users"); code != 403 || body != "RBAC: access denied" {
			t.Errorf("%s plaintext to a principal-only path: %d %q", tc.name, code, body)
		}
	}
	if code, _ := get(t, plain, "http://"+m.disable+"/public/x"); code != 200 {
		t.Errorf("DISABLE plaintext: %d", code)
	}
	if _, err := tlsC.Get("https://" + m.disable + "/public/x"); err == nil {
		t.Error("DISABLE completed a TLS handshake")
	}
	// The refusal shows in the access log as Envoy's NR.
	if got := m.access.eventually(1, `"response_flags":"NR"`, `filter_chain_not_found`); len(got) == 0 {
		t.Errorf("no NR access log line for the refused plaintext connection:\n%s", m.access)
	}
}

// TestImpostorRefusedAtHandshake: a certificate from another trust domain,
// or from the right trust domain but a CA outside the bundle, is refused
// in the TLS handshake, before any request reaches the application.
func TestImpostorRefusedAtHandshake(t *testing.T) {
	m := newMesh(t, "", Limits{})
	bundle := x509bundle.NewSet(m.ca.bundle())
	evil := newCA(t, "evil.example")
	rogue := newCA(t, "cluster.local") // same trust domain, not in the bundle
	for name, src := range map[string]*staticSource{
		"other trust domain": newStatic(evil.svid(t, "/ns/shop/sa/frontend")),
		"CA not in bundle":   newStatic(rogue.svid(t, "/ns/shop/sa/frontend")),
	} {
		before := m.app.requests.Load()
		c := mtlsClient(src, bundle, backendID, false)
		resp, err := c.Get("https://" + m.strict + "/api/v1/users")
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: got %d, want a handshake failure", name, resp.StatusCode)
		}
		if m.app.requests.Load() != before {
			t.Errorf("%s: the application saw a request", name)
		}
	}
	if got := m.access.eventually(2, `tls_handshake_failed`); len(got) < 2 {
		t.Errorf("want two handshake failures in the access log:\n%s", m.access)
	}
}

// TestPathNormalization: requests are judged — and forwarded — on the
// path Envoy normalizes, so dot segments and escaped dots cannot reach
// /admin/* or dodge the DENY.
func TestPathNormalization(t *testing.T) {
	m := newMesh(t, "", Limits{})
	cases := []struct {
		path     string
		status   int
		appSees  string
		bodyWant string
	}{
		{"/api/v1/x", 200, "/api/v1/x", ""},
		{"/admin/../api/v1/x", 200, "/api/v1/x", ""},
		{"/admin/%2e%2e/api/v1/x", 200, "/api/v1/x", ""},
		{"/api/v1/../../admin/x", 403, "", "RBAC: access denied"},
		{"/api/v1/%2e%2e/%2E%2E/admin/x", 403, "", "RBAC: access denied"},
		{"/api/v1/%2e%2e/admin/x", 403, "", "RBAC: access denied"}, // /api/admin/x: no ALLOW
		{"/admin/x", 403, "", "RBAC: access denied"},
		{"/api/v1/a%00b", 400, "", ""},
	}
	for _, c := range cases {
		raw := rawRequest(t, m.frontOut["backend"], "GET "+c.path+" HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n")
		rs := readResponses(raw)
		if len(rs) != 1 || rs[0].StatusCode != c.status {
			t.Errorf("%s: got %q, want %d", c.path, raw, c.status)
			continue
		}
		if c.appSees != "" && !strings.Contains(raw, "GET "+c.appSees+"\n") {
			t.Errorf("%s: the application saw %q, want %s", c.path, raw, c.appSees)
		}
		if c.bodyWant != "" && !strings.HasSuffix(raw, c.bodyWant) {
			t.Errorf("%s: body %q, want %q", c.path, raw, c.bodyWant)
		}
	}
}

// TestJWT: a valid token reaches /secure/*; an invalid one is a 401 with
// Envoy's jwt_authn message whatever the authorization policy says.
func TestJWT(t *testing.T) {
	m := newMesh(t, "", Limits{})
	plain := &http.Client{Timeout: 5 * time.Second}
	good := m.issuer.token(t, map[string]any{"iss": "https://issuer.test", "sub": "u1", "exp": time.Now().Add(time.Hour).Unix()})
	expired := m.issuer.token(t, map[string]any{"iss": "https://issuer.test", "sub": "u1", "exp": time.Now().Add(-time.Hour).Unix()})
	if code, _ := get(t, plain, "http://"+m.permissive+"/secure/x", "Authorization", "Bearer "+good); code != 200 {
		t.Errorf("valid JWT: %d", code)
	}
	if code, _ := get(t, plain, "http://"+m.permissive+"/secure/x"); code != 403 {
		t.Errorf("no JWT: %d, want 403", code)
	}
	for name, tok := range map[string]string{"garbage": "not.a.jwt", "expired": expired} {
		req, _ := http.NewRequest("GET", "http://"+m.permissive+"/public/x", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := plain.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.HasPrefix(string(b), "Jwt") || !strings.Contains(resp.Header.Get("Www-Authenticate"), "invalid_token") {
			t.Errorf("%s JWT: %d %q %q", name, resp.StatusCode, b, resp.Header.Get("Www-Authenticate"))
		}
	}
	if got := m.access.eventually(1, `"request_principal":"https://issuer.test/u1"`); len(got) != 1 {
		t.Errorf("access log request_principal: %d lines", len(got))
	}
}

// TestHTTP2AndXFCC: the TLS listener negotiates h2 by ALPN; the
// application is told the caller's identity in X-Forwarded-Client-Cert,
// which a client cannot forge.
func TestHTTP2AndXFCC(t *testing.T) {
	m := newMesh(t, "", Limits{})
	c := mtlsClient(m.front, x509bundle.NewSet(m.ca.bundle()), backendID, true)
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "https://"+m.strict+"/api/v1/h2", nil)
	req.Header.Set("X-Forwarded-Client-Cert", "URI=spiffe://cluster.local/ns/shop/sa/admin")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
		t.Fatalf("got %s %d", resp.Proto, resp.StatusCode)
	}
	if !strings.Contains(string(b), "xfcc=By=spiffe://cluster.local/ns/shop/sa/backend;Hash=") ||
		!strings.Contains(string(b), ";URI=spiffe://cluster.local/ns/shop/sa/frontend\n") || strings.Contains(string(b), "admin") {
		t.Errorf("xfcc: %q", b)
	}
	if got := m.access.eventually(1, `"protocol":"HTTP/2"`, `"path":"/api/v1/h2"`); len(got) != 1 {
		t.Errorf("access log: %d HTTP/2 lines", len(got))
	}
}

// TestPolicySwap: a new engine applies to the next request on the same
// connection; a port turned STRICT drops its plaintext connections.
func TestPolicySwap(t *testing.T) {
	m := newMesh(t, "", Limits{})
	plain := &http.Client{Timeout: 5 * time.Second}
	if code, _ := get(t, plain, "http://"+m.frontOut["backend"]+"/api/v1/x"); code != 200 {
		t.Fatalf("before: %d", code)
	}
	old := m.box.get()
	swapped := strings.Replace(meshYAML, "paths: [\"/api/v1/*\"]", "paths: [\"/api/v2/*\"]", 1)
	swapped = strings.Replace(swapped, "8081: {mode: PERMISSIVE}", "8081: {mode: STRICT}", 1)
	m.box.p.Store(newEngine(t, swapped, testKeys{jwksURI: m.issuer.set}))
	if code, _ := get(t, plain, "http://"+m.frontOut["backend"]+"/api/v1/x"); code != 403 {
		t.Errorf("after the swap: %d, want 403", code)
	}
	if code, _ := get(t, plain, "http://"+m.frontOut["backend"]+"/api/v2/x"); code != 200 {
		t.Errorf("after the swap, the new path: %d", code)
	}
	m.box.p.Store(old)
	// A keep-alive plaintext connection to the PERMISSIVE port...
	c, err := net.Dial("tcp", m.permissive)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	req := "GET /public/x HTTP/1.1\r\nHost: b\r\n\r\n"
	io.WriteString(c, req)
	buf := make([]byte, 4096)
	if n, err := c.Read(buf); err != nil || !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200")) {
		t.Fatalf("keep-alive request: %q %v", buf[:n], err)
	}
	// ...is closed once the port is STRICT.
	m.box.p.Store(newEngine(t, swapped, testKeys{jwksURI: m.issuer.set}))
	io.WriteString(c, req)
	if n, err := c.Read(buf); err == nil {
		t.Errorf("plaintext request served after the port turned STRICT: %q", buf[:n])
	}
}

// TestCurl drives the proxies with curl, a client Palisade did not write:
// mTLS with a client SVID over HTTP/1.1 and HTTP/2, a path that tries to
// escape to /admin, a bad JWT, plaintext refused under STRICT.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	m := newMesh(t, "", Limits{})
	cert, key, ca := writePEM(t, t.TempDir(), m.front.p.Load(), m.ca)
	_, port, _ := net.SplitHostPort(m.strict)
	_, pport, _ := net.SplitHostPort(m.permissive)
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, curl, append([]string{"-sS", "--max-time", "10"}, args...)...).CombinedOutput()
		return string(out), err
	}
	tlsArgs := []string{"--cacert", ca, "--cert", cert, "--key", key}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"mTLS HTTP/1.1", append(tlsArgs, "--http1.1", "-w", " %{http_code} %{http_version}", "https://localhost:"+port+"/api/v1/users"), "GET /api/v1/users\n"},
		{"mTLS HTTP/2", append(tlsArgs, "--http2", "-w", " %{http_code} %{http_version}", "https://localhost:"+port+"/api/v1/users"), " 200 2"},
		{"dot segments into /admin", append(tlsArgs, "--path-as-is", "-w", " %{http_code}", "https://localhost:"+port+"/api/v1/../../admin/users"), "RBAC: access denied 403"},
		{"dot segments out of /admin", append(tlsArgs, "--path-as-is", "https://localhost:"+port+"/admin/../api/v1/users"), "GET /api/v1/users\n"},
		{"bad JWT", []string{"-w", " %{http_code}", "-H", "Authorization: Bearer a.b.c", "http://localhost:" + pport + "/public/x"}, " 401"},
	}
	for _, c := range cases {
		out, err := run(c.args...)
		if err != nil || !strings.Contains(out, c.want) {
			t.Errorf("curl %s: %v\n%s\nwant %q", c.name, err, out, c.want)
		}
	}
	if out, err := run("http://localhost:" + port + "/public/x"); err == nil {
		t.Errorf("curl plaintext to STRICT succeeded: %s", out)
	}
}

// TestOpenSSL drives the three modes with openssl s_client: the TLS
// handshake with a client SVID succeeds under STRICT and PERMISSIVE and
// fails under DISABLE.
func TestOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed")
	}
	m := newMesh(t, "", Limits{})
	cert, key, ca := writePEM(t, t.TempDir(), m.front.p.Load(), m.ca)
	sClient := func(addr string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", addr, "-cert", cert, "-key", key,
			"-CAfile", ca, "-verify_return_error", "-alpn", "http/1.1", "-ign_eof", "-quiet")
		cmd.Stdin = strings.NewReader("GET /api/v1/users HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for name, addr := range map[string]string{"STRICT": m.strict, "PERMISSIVE": m.permissive} {
		out, err := sClient(addr)
		if err != nil || !strings.Contains(out, "HTTP/1.1 200 OK") || !strings.Contains(out, "GET /api/v1/users") {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
	}
	if out, err := sClient(m.disable); err == nil && strings.Contains(out, "200 OK") {
		t.Errorf("DISABLE: TLS served:\n%s", out)
	}
	// Without a client certificate the handshake is refused.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", m.strict, "-CAfile", ca, "-ign_eof", "-quiet")
	cmd.Stdin = strings.NewReader("GET /api/v1/users HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n")
	if out, _ := cmd.CombinedOutput(); strings.Contains(string(out), "200 OK") {
		t.Errorf("no client certificate: served:\n%s", out)
	}
}
