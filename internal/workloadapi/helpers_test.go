package workloadapi

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/palisade-security/palisade/internal/identity"
)

// testCA is a trust domain's authority made for the test: an ECDSA P-256
// root that signs X.509-SVIDs, and an ECDSA P-256 JWT signing key.
type testCA struct {
	td     spiffeid.TrustDomain
	key    *ecdsa.PrivateKey
	cert   *x509.Certificate
	jwtKey *ecdsa.PrivateKey
	kid    string
}

func newTestCA(t testing.TB, td string) *testCA {
	t.Helper()
	trustDomain := spiffeid.RequireTrustDomainFromString(td)
	key := mustKey(t)
	serial := randSerial(t)
	// X509-SVID spec §3.2/§4.3: a signing certificate is a CA with
	// keyCertSign, and may carry the trust domain's SPIFFE ID (no path).
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Palisade test"}, SerialNumber: serial.String()},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  []*url.URL{trustDomain.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{td: trustDomain, key: key, cert: cert, jwtKey: mustKey(t), kid: "jwt-key-1"}
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func randSerial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// issue signs an X.509-SVID for id with the fields the X509-SVID spec
// asks for: exactly one URI SAN (§2), an empty subject (so the SAN is
// critical), critical KeyUsage with digitalSignature only (§4.3), and EKU
// serverAuth+clientAuth (§4.4).
func (ca *testCA) issue(t testing.TB, id spiffeid.ID, hint string) *identity.SVID {
	t.Helper()
	key := mustKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(t),
		NotBefore:    time.Now().Add(-10 * time.Second),
		NotAfter:     time.Now().Add(time.Hour),
		URIs:         []*url.URL{id.URL()},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &identity.SVID{ID: id, Certificates: []*x509.Certificate{cert}, PrivateKey: key, Hint: hint}
}

func (ca *testCA) signJWT(id spiffeid.ID, audience []string) (string, error) {
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: ca.jwtKey, KeyID: ca.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	now := time.Now()
	return jwt.Signed(signer).Claims(jwt.Claims{
		Subject:  id.String(),
		Audience: audience,
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(5 * time.Minute)),
	}).Claims(map[string]any{"palisade_test": "yes"}).Serialize()
}

type testEntry struct {
	sel  identity.Selectors
	svid *identity.SVID
}

// testCache is a Cache backed by a testCA, with entries matched by the
// subset rule like the agent's.
type testCache struct {
	ca *testCA

	mu        sync.Mutex
	entries   []testEntry
	federated []*spiffebundle.Bundle
	subs      map[chan struct{}]struct{}
	jwtCalls  int
}

func newTestCache(ca *testCA) *testCache {
	return &testCache{ca: ca, subs: make(map[chan struct{}]struct{})}
}

func (c *testCache) add(t testing.TB, id string, hint string, sel ...identity.Selector) *identity.SVID {
	t.Helper()
	svid := c.ca.issue(t, spiffeid.RequireFromString(id), hint)
	c.mu.Lock()
	c.entries = append(c.entries, testEntry{sel: sel, svid: svid})
	c.mu.Unlock()
	c.notify()
	return svid
}

// rotate reissues every SVID for id, as the agent does at half-life.
func (c *testCache) rotate(t testing.TB, id string) *identity.SVID {
	t.Helper()
	var out *identity.SVID
	c.mu.Lock()
	for i, e := range c.entries {
		if e.svid.ID.String() == id {
			out = c.ca.issue(t, e.svid.ID, e.svid.Hint)
			c.entries[i].svid = out
		}
	}
	c.mu.Unlock()
	c.notify()
	return out
}

func (c *testCache) clear() {
	c.mu.Lock()
	c.entries = nil
	c.mu.Unlock()
	c.notify()
}

func (c *testCache) setFederated(b ...*spiffebundle.Bundle) {
	c.mu.Lock()
	c.federated = b
	c.mu.Unlock()
	c.notify()
}

func (c *testCache) notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ch := range c.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (c *testCache) SVIDs(sel identity.Selectors) []*identity.SVID {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*identity.SVID
	for _, e := range c.entries {
		if e.sel.SubsetOf(sel) {
			out = append(out, e.svid)
		}
	}
	return out
}

func (c *testCache) X509Bundle() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(c.ca.td, []*x509.Certificate{c.ca.cert})
}

func (c *testCache) JWTBundle() *jwtbundle.Bundle {
	b := jwtbundle.New(c.ca.td)
	if err := b.AddJWTAuthority(c.ca.kid, c.ca.jwtKey.Public()); err != nil {
		panic(err)
	}
	return b
}

func (c *testCache) FederatedBundles() []*spiffebundle.Bundle {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.federated
}

func (c *testCache) FetchJWTSVID(_ context.Context, id spiffeid.ID, audience []string) (string, error) {
	c.mu.Lock()
	c.jwtCalls++
	c.mu.Unlock()
	return c.ca.signJWT(id, audience)
}

func (c *testCache) Changes() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	c.subs[ch] = struct{}{}
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		delete(c.subs, ch)
		c.mu.Unlock()
	}
}

func (c *testCache) subscribers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.subs)
}

// self describes the test process, which is the Workload API caller in
// these tests, independently of the attestor under test.
type self struct {
	uid, gid, path, sha256 string
}

var (
	selfOnce sync.Once
	selfInfo self
	selfErr  error
)

func getSelf(t testing.TB) self {
	t.Helper()
	selfOnce.Do(func() {
		exe, err := os.Executable()
		if err != nil {
			selfErr = err
			return
		}
		f, err := os.Open(exe)
		if err != nil {
			selfErr = err
			return
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			selfErr = err
			return
		}
		selfInfo = self{
			uid:    strconv.Itoa(os.Getuid()),
			gid:    strconv.Itoa(os.Getgid()),
			path:   exe,
			sha256: hex.EncodeToString(h.Sum(nil)),
		}
	})
	if selfErr != nil {
		t.Fatal(selfErr)
	}
	return selfInfo
}

func sel(kind, value string) identity.Selector {
	return identity.Selector{Type: "unix", Value: kind + ":" + value}
}

// syncBuffer collects log output written from server goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testServer struct {
	addr   string // unix:///path, as SPIFFE_ENDPOINT_SOCKET would hold it
	path   string
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// startServer serves the Workload API on a real unix socket in a temp dir.
func startServer(t testing.TB, cache Cache, att Attestor) *testServer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	level := slog.LevelDebug
	var w io.Writer = logs
	if _, ok := t.(*testing.B); ok {
		level, w = slog.LevelInfo, io.Discard
	}
	srv := &Server{
		Cache:    cache,
		Attestor: att,
		Logger:   slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})),
		Jitter:   20 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{addr: "unix://" + path, path: path, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-ts.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after its context was cancelled")
		}
	})
	return ts
}

// rawClient dials the socket as SPIRE's CLI does, with the generated client
// and no help from go-spiffe.
func rawClient(t testing.TB, addr string) (*grpc.ClientConn, workload.SpiffeWorkloadAPIClient) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, workload.NewSpiffeWorkloadAPIClient(conn)
}

func withHeader(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "workload.spiffe.io", "true")
}

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fakeStat is a /proc/<pid>/stat line whose command name holds the
// characters that trip naive parsers.
func fakeStat(pid int, start uint64) string {
	s := fmt.Sprintf("%d (evil) name (x) S 1", pid)
	for i := 5; i <= 21; i++ {
		s += " 0"
	}
	s += " " + strconv.FormatUint(start, 10)
	for i := 23; i <= 52; i++ {
		s += " 0"
	}
	return s + "\n"
}
