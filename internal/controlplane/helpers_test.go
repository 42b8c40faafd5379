package controlplane

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/palisade-security/palisade/internal/config"
)

// testCA is an in-test SPIFFE CA: a root for one trust domain that issues
// X.509-SVIDs as a SPIFFE CA does (URI SAN, digitalSignature, not a CA).
type testCA struct {
	td     spiffeid.TrustDomain
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	bundle *x509bundle.Bundle
}

var serial atomic.Int64

func newTestCA(t testing.TB, td string) *testCA {
	t.Helper()
	trust := spiffeid.RequireTrustDomainFromString(td)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{Organization: []string{"palisade test"}, CommonName: td + " root"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  []*url.URL{trust.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{td: trust, cert: cert, key: key, bundle: x509bundle.FromX509Authorities(trust, []*x509.Certificate{cert})}
}

// svid issues an X.509-SVID for spiffe://<td><path>.
func (ca *testCA) svid(t testing.TB, path string) *x509svid.SVID {
	t.Helper()
	id, err := spiffeid.FromPath(ca.td, path)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)),
		Subject:      pkix.Name{Organization: []string{"palisade test"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{id.URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{cert}, PrivateKey: key}
}

const serverPath = "/palisade/server"

// testLogger logs through t until the test is over; servers and clients may
// still log while they stop.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done && testing.Verbose() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// newServer returns a server for the sources, with the CA's SVID.
func newServer(t testing.TB, ca *testCA, sources ...string) *Server {
	return &Server{
		Sources:      sources,
		SVIDs:        ca.svid(t, serverPath),
		Bundles:      ca.bundle,
		PollInterval: 50 * time.Millisecond,
		StatInterval: 10 * time.Millisecond,
		Settle:       20 * time.Millisecond,
		Logger:       testLogger(t),
	}
}

// serve serves s on addr ("127.0.0.1:0" for any port) until the returned
// stop is called (or the test ends) and returns the address.
func serve(t testing.TB, s *Server, addr string) (string, func()) {
	t.Helper()
	var lis net.Listener
	var err error
	// A port just freed by a stopped server can take a moment to be free
	// again on some systems.
	for i := 0; ; i++ {
		lis, err = net.Listen("tcp", addr)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return lis.Addr().String(), stop
}

// proxy is a test proxy: a Client whose Apply compiles an engine and swaps
// it in, as the real proxy does, and records what it applied.
type proxy struct {
	*Client
	engines Engines

	mu      sync.Mutex
	applied []string // versions, in the order Apply was called
	// fail, if set, makes Apply reject a version.
	fail func(version string, snap *config.Snapshot) error
	// gate, if set, is received from before Apply returns.
	gate chan struct{}
}

func newProxy(t testing.TB, ca *testCA, addr, node string) *proxy {
	p := &proxy{engines: Engines{Workload: node}}
	p.Client = &Client{
		Addr:       addr,
		Node:       node,
		SVIDs:      ca.svid(t, "/ns/"+strings.Replace(node, "/", "/sa/", 1)),
		Bundles:    ca.bundle,
		ServerID:   spiffeid.RequireFromPath(ca.td, serverPath),
		MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond,
		Logger:     testLogger(t).With("proxy", node),
		Apply:      p.apply,
	}
	return p
}

func (p *proxy) apply(version string, snap *config.Snapshot, loadErrs []*config.Error) error {
	p.mu.Lock()
	p.applied = append(p.applied, version)
	fail, gate := p.fail, p.gate
	p.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if fail != nil {
		if err := fail(version, snap); err != nil {
			return err
		}
	}
	return p.engines.Apply(version, snap, loadErrs)
}

// enforced returns the snapshot of the engine in force.
func (p *proxy) enforced() *config.Snapshot {
	e := p.engines.Engine()
	if e == nil {
		return nil
	}
	return e.Snapshot
}

func (p *proxy) appliedVersions() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.applied...)
}

// run runs the client until the test ends.
func (p *proxy) run(t testing.TB) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually waits up to 10 s for cond.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func writeFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// inventory is a small shop: a web frontend and an API.
const inventory = `apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {kubernetes.io/metadata.name: shop}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: api, namespace: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      containers: [{name: web, image: web, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      serviceAccountName: api
      containers: [{name: api, image: api, ports: [{name: http, containerPort: 8080}]}]
`

// policy is an AuthorizationPolicy letting web call the API on path.
func policy(name, path string) string {
	return fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: %s, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  action: ALLOW
  rules:
    - from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}]
      to: [{operation: {methods: [GET], paths: [%q]}}]
`, name, path)
}

// policyPaths returns the paths the snapshot's AuthorizationPolicies allow,
// "name=path" each.
func policyPaths(snap *config.Snapshot) []string {
	var out []string
	for _, r := range snap.AuthorizationPolicies {
		for _, rule := range r.Spec.GetRules() {
			for _, to := range rule.GetTo() {
				for _, p := range to.GetOperation().GetPaths() {
					out = append(out, r.Meta.Name+"="+p)
				}
			}
		}
	}
	return out
}
