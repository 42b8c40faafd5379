//go:debug rsa1024min=0

package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// fakeClock is a settable clock for rotation tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// memJournal is an in-memory Journal; failNext makes the next save fail.
type memJournal struct {
	mu       sync.Mutex
	data     []byte
	saves    int
	failNext bool
}

func (j *memJournal) LoadCAJournal(context.Context) ([]byte, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]byte(nil), j.data...), nil
}

func (j *memJournal) SaveCAJournal(_ context.Context, data []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failNext {
		j.failNext = false
		return io.ErrShortWrite
	}
	j.data = append([]byte(nil), data...)
	j.saves++
	return nil
}

func newTestCA(t testing.TB, cfg Config) (*CA, *memJournal) {
	t.Helper()
	if cfg.TrustDomain.IsZero() {
		cfg.TrustDomain = td
	}
	if cfg.KeyDir == "" {
		cfg.KeyDir = filepath.Join(t.TempDir(), "keys")
	}
	j := &memJournal{}
	c, err := New(context.Background(), cfg, j)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, j
}

func genKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	var k crypto.Signer
	var err error
	switch kind {
	case "p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "p224":
		k, err = ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	case "rsa2048":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "rsa1024":
		k, err = rsa.GenerateKey(rand.Reader, 1024)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatalf("generate %s key: %v", kind, err)
	}
	return k
}

func makeCSR(t testing.TB, key crypto.Signer, exts ...pkix.Extension) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{ExtraExtensions: exts}, key)
	if err != nil {
		t.Fatalf("CreateCertificateRequest: %v", err)
	}
	return der
}

func mustID(t testing.TB, s string) spiffeid.ID {
	t.Helper()
	id, err := spiffeid.FromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func writePEM(t testing.TB, path string, certs []*x509.Certificate) {
	t.Helper()
	var buf []byte
	for _, c := range certs {
		buf = append(buf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

// countingSigner wraps the active CA key to count signatures, so tests can
// show that a refused request signed nothing.
type countingSigner struct {
	crypto.Signer
	n atomic.Int64
}

func (s *countingSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	s.n.Add(1)
	return s.Signer.Sign(r, d, o)
}

// countSignatures swaps the active X.509 signer for a counting one.
func countSignatures(t testing.TB, c *CA) *countingSigner {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st.Load()
	cs := &countingSigner{Signer: st.active.x509.signer}
	slots := append([]*slot(nil), st.slots...)
	for i, s := range slots {
		if s == st.active {
			cp := *s
			xa := *s.x509
			xa.signer = cs
			cp.x509 = &xa
			slots[i] = &cp
		}
	}
	ns, err := newState(slots, st.seq, c.refreshHint, c.td)
	if err != nil {
		t.Fatal(err)
	}
	c.st.Store(ns)
	return cs
}
