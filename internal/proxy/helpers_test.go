package proxy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/engine"
	"github.com/palisade-security/palisade/internal/telemetry"
)

// testCA is an in-test SPIFFE CA: a root for a trust domain that signs
// X.509-SVIDs.
type testCA struct {
	td   spiffeid.TrustDomain
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t testing.TB, td string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("spiffe://" + td)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"palisade test"}, CommonName: td},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{td: spiffeid.RequireTrustDomainFromString(td), cert: cert, key: key}
}

var serial atomic.Int64

// svid issues an X.509-SVID for id (a path such as /ns/shop/sa/backend).
// It also names localhost and 127.0.0.1 so curl and openssl can verify
// the server by name.
func (ca *testCA) svid(t testing.TB, path string) *x509svid.SVID {
	t.Helper()
	id := spiffeid.RequireFromPath(ca.td, path)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(100 + serial.Add(1)),
		Subject:      pkix.Name{Organization: []string{"palisade test"}},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{id.URL()},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{cert}, PrivateKey: key}
}

func (ca *testCA) bundle() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(ca.td, []*x509.Certificate{ca.cert})
}

// staticSource serves one SVID and can be rotated.
type staticSource struct{ p atomic.Pointer[x509svid.SVID] }

func newStatic(s *x509svid.SVID) *staticSource {
	src := &staticSource{}
	src.p.Store(s)
	return src
}

func (s *staticSource) GetX509SVID() (*x509svid.SVID, error) { return s.p.Load(), nil }
func (s *staticSource) rotate(n *x509svid.SVID)              { s.p.Store(n) }

// policyBox holds the current engine, as a control plane would.
type policyBox struct{ p atomic.Pointer[engine.Engine] }

func (b *policyBox) get() *engine.Engine { return b.p.Load() }

// testKeys is the JWKS of the test issuer.
type testKeys map[string]*jose.JSONWebKeySet

func (k testKeys) JWKS(_ context.Context, _, uri string, _ time.Duration) (*jose.JSONWebKeySet, error) {
	if s, ok := k[uri]; ok {
		return s, nil
	}
	return nil, errors.New("unknown jwks")
}

type issuer struct {
	key *rsa.PrivateKey
	set *jose.JSONWebKeySet
}

func newIssuer(t testing.TB) *issuer {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &issuer{key: k, set: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}}}
}

func (is *issuer) token(t testing.TB, claims map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: is.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

const jwksURI = "https://issuer.test/jwks"

// newEngine compiles YAML documents into an engine.
func newEngine(t testing.TB, yaml string, keys testKeys) *engine.Engine {
	t.Helper()
	snap, errs := config.Parse("mesh.yaml", []byte(yaml))
	if len(errs) > 0 {
		t.Fatalf("parse: %v", errs[0])
	}
	e := engine.New(snap, engine.Options{Keys: keys})
	for _, r := range e.Rejected {
		t.Fatalf("rejected: %s: %s", r.Object, r.Reason)
	}
	return e
}

func workload(t testing.TB, e *engine.Engine, ref string) *config.Workload {
	t.Helper()
	w, err := e.Snapshot.Inventory.Workload(ref)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// meshYAML is the test mesh: a frontend, a backend with a STRICT, a
// PERMISSIVE and a DISABLE port, PostgreSQL, and services for outlier
// tests; the backend allows the frontend on /api/v1/*, anyone on
// /public/* of the plaintext-capable ports, and JWT holders on
// /secure/*, denies /admin/*, audits /api/v1/audited/*.
const meshYAML = `
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {kubernetes.io/metadata.name: shop}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: frontend, namespace: shop}
spec:
  template:
    metadata: {labels: {app: frontend, version: v1}}
    spec: {serviceAccountName: frontend, containers: [{name: c, ports: [{containerPort: 8080}]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: backend, namespace: shop}
spec:
  template:
    metadata: {labels: {app: backend, version: v2}}
    spec: {serviceAccountName: backend, containers: [{name: c, ports: [{containerPort: 8080}, {containerPort: 8081}, {containerPort: 8082}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: shop}
spec:
  selector: {app: backend}
  ports: [{name: http, port: 80, targetPort: 8080}, {name: http-permissive, port: 8081}, {name: http-disable, port: 8082}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: postgres, namespace: shop}
spec:
  template:
    metadata: {labels: {app: postgres}}
    spec: {serviceAccountName: postgres, containers: [{name: c, ports: [{containerPort: 5432}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: postgres, namespace: shop}
spec: {selector: {app: postgres}, ports: [{name: tcp-postgres, port: 5432}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: flaky, namespace: shop}
spec:
  template:
    metadata: {labels: {app: flaky}}
    spec: {serviceAccountName: flaky, containers: [{name: c, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: flaky, namespace: shop}
spec: {selector: {app: flaky}, ports: [{name: http, port: 8080}]}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: backend, namespace: shop}
spec:
  selector: {matchLabels: {app: backend}}
  mtls: {mode: STRICT}
  portLevelMtls:
    8081: {mode: PERMISSIVE}
    8082: {mode: DISABLE}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: backend-allow, namespace: shop}
spec:
  selector: {matchLabels: {app: backend}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/frontend]}}]
    to: [{operation: {methods: [GET, POST], paths: ["/api/v1/*"]}}]
  - to: [{operation: {ports: ["8081", "8082"], paths: ["/public/*"]}}]
  - from: [{source: {requestPrincipals: ["https://issuer.test/*"]}}]
    to: [{operation: {paths: ["/secure/*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: backend-deny-admin, namespace: shop}
spec:
  selector: {matchLabels: {app: backend}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin/*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: backend-audit, namespace: shop}
spec:
  selector: {matchLabels: {app: backend}}
  action: AUDIT
  rules: [{to: [{operation: {paths: ["/api/v1/audited/*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: backend-dry-deny
  namespace: shop
  annotations: {istio.io/dry-run: "true"}
spec:
  selector: {matchLabels: {app: backend}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/api/v1/dry/*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: backend-jwt, namespace: shop}
spec:
  selector: {matchLabels: {app: backend}}
  jwtRules: [{issuer: "https://issuer.test", jwksUri: "https://issuer.test/jwks"}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: postgres-allow, namespace: shop}
spec:
  selector: {matchLabels: {app: postgres}}
  action: ALLOW
  rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/backend]}}]}]
`

// echoApp is the application behind a proxy: it answers every request
// with 200 and a text echo of what it received.
type echoApp struct {
	addr     string
	requests atomic.Int64
	conns    atomic.Int64
	last     atomic.Pointer[http.Request]
	srv      *http.Server
}

func startEcho(t testing.TB, h http.HandlerFunc) *echoApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &echoApp{addr: ln.Addr().String()}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Upgrade") == "websocket" {
				serveTunnelEcho(w, r)
				return
			}
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprintf(w, "%s %s\nxfcc=%s\nbody=%s\n", r.Method, r.RequestURI, r.Header.Get("X-Forwarded-Client-Cert"), body)
		}
	}
	app.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			app.requests.Add(1)
			app.last.Store(r)
			h(w, r)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				app.conns.Add(1)
			}
		},
	}
	go app.srv.Serve(ln)
	t.Cleanup(func() { app.srv.Close() })
	return app
}

// startTCPEcho runs a TCP server that echoes what it reads.
func startTCPEcho(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// startProxy runs a proxy until the test ends.
func startProxy(t testing.TB, cfg Config) *Proxy {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return p
}

// mesh is a running test mesh: the backend's proxy with its three HTTP
// ports, the frontend's proxy with outbound listeners, and PostgreSQL's.
type mesh struct {
	ca                                  *testCA
	box                                 *policyBox
	issuer                              *issuer
	front, back, pg                     *staticSource
	frontP, backP                       *Proxy
	pgP                                 *Proxy
	app                                 *echoApp
	access, flows                       *syncBuffer
	audit                               *syncBuffer
	frontOut                            map[string]string // outbound listener addresses by name
	backOut                             map[string]string
	strict, permissive, disable, pgAddr string
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// eventually returns the log lines that contain all of subs once there
// are n of them, or what there is after a few seconds: a proxy may log a
// refused connection just after its client saw the refusal.
func (s *syncBuffer) eventually(n int, subs ...string) []string {
	deadline := time.Now().Add(3 * time.Second)
	for {
		got := s.lines(subs...)
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lines returns the log lines that contain all of subs.
func (s *syncBuffer) lines(subs ...string) []string {
	var out []string
	for _, l := range strings.Split(s.String(), "\n") {
		ok := l != ""
		for _, sub := range subs {
			ok = ok && strings.Contains(l, sub)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

func newMesh(t testing.TB, extraYAML string, limits Limits) *mesh {
	t.Helper()
	m := &mesh{ca: newCA(t, "cluster.local"), box: &policyBox{}, issuer: newIssuer(t),
		access: &syncBuffer{}, flows: &syncBuffer{}, audit: &syncBuffer{}}
	e := newEngine(t, meshYAML+extraYAML, testKeys{jwksURI: m.issuer.set})
	m.box.p.Store(e)
	m.front = newStatic(m.ca.svid(t, "/ns/shop/sa/frontend"))
	m.back = newStatic(m.ca.svid(t, "/ns/shop/sa/backend"))
	m.pg = newStatic(m.ca.svid(t, "/ns/shop/sa/postgres"))
	bundles := x509bundle.NewSet(m.ca.bundle())
	m.app = startEcho(t, nil)
	pgApp := startTCPEcho(t)

	m.pgP = startProxy(t, Config{
		Workload: workload(t, e, "shop/postgres"), Policy: m.box.get, SVIDs: m.pg, Bundles: bundles,
		Inbound: []InboundPort{{Port: 5432, Listen: "127.0.0.1:0", App: pgApp}},
	})
	m.pgAddr = m.pgP.InboundAddr(0).String()
	m.backP = startProxy(t, Config{
		Workload: workload(t, e, "shop/backend"), Policy: m.box.get, SVIDs: m.back, Bundles: bundles,
		Inbound: []InboundPort{
			{Port: 8080, Listen: "127.0.0.1:0", App: m.app.addr},
			{Port: 8081, Listen: "127.0.0.1:0", App: m.app.addr},
			{Port: 8082, Listen: "127.0.0.1:0", App: m.app.addr},
		},
		Outbound: []OutboundListener{
			{Listen: "127.0.0.1:0", To: "shop/postgres:5432", Endpoints: []string{m.pgAddr}},
		},
		MetricsAddr: "127.0.0.1:0",
		AccessLog:   m.access, FlowLog: m.flows, AuditLog: telemetry.NewAuditLog(m.audit),
		Limits: limits, NodeName: "test-node", Version: "test",
	})
	m.strict = m.backP.InboundAddr(0).String()
	m.permissive = m.backP.InboundAddr(1).String()
	m.disable = m.backP.InboundAddr(2).String()
	m.backOut = map[string]string{"postgres": m.backP.OutboundAddr(0).String()}
	m.frontP = startProxy(t, Config{
		Workload: workload(t, e, "shop/frontend"), Policy: m.box.get, SVIDs: m.front, Bundles: bundles,
		Outbound: []OutboundListener{
			{Listen: "127.0.0.1:0", To: "shop/backend:8080", Endpoints: []string{m.strict}},
			{Listen: "127.0.0.1:0", To: "shop/postgres:5432", Endpoints: []string{m.pgAddr}},
		},
		MetricsAddr: "127.0.0.1:0",
		AccessLog:   m.access, FlowLog: m.flows,
	})
	m.frontOut = map[string]string{
		"backend":  m.frontP.OutboundAddr(0).String(),
		"postgres": m.frontP.OutboundAddr(1).String(),
	}
	return m
}

// mtlsClient is an HTTP client presenting src's SVID and accepting only
// serverID.
func mtlsClient(src x509svid.Source, bundle x509bundle.Source, serverID spiffeid.ID, h2 bool) *http.Client {
	cfg := tlsconfig.MTLSClientConfig(src, bundle, tlsconfig.AuthorizeID(serverID))
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// rawRequest sends bytes on a plaintext connection and returns what comes
// back until the server closes or the timeout passes.
func rawRequest(t testing.TB, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	io.Copy(&sb, c)
	return sb.String()
}

// readResponses parses every HTTP response in raw.
func readResponses(raw string) []*http.Response {
	var out []*http.Response
	br := bufio.NewReader(strings.NewReader(raw))
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		io.ReadAll(resp.Body)
		out = append(out, resp)
	}
}

// writePEM writes an SVID's certificate and key, and the CA, for curl and
// openssl.
func writePEM(t testing.TB, dir string, s *x509svid.SVID, ca *testCA) (cert, key, caFile string) {
	t.Helper()
	certPEM, keyPEM, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cert, key, caFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")
	for f, b := range map[string][]byte{cert: certPEM, key: keyPEM, caFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cert, key, caFile
}

// refusingAddr returns an address that refuses connections for the whole
// test: a socket bound to it and never listening keeps other tests running
// in parallel from taking the port, which a closed listener's port does not.
func refusingAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}
