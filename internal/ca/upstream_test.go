package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// testUpstream is an upstream PKI made with crypto/x509: a root and an
// issuing intermediate whose key signs our CA.
type testUpstream struct {
	root, issuer      *x509.Certificate
	certFile, keyFile string
}

func newTestUpstream(t *testing.T, issuerTTL time.Duration) *testUpstream {
	t.Helper()
	now := time.Now()
	rootKey := genKey(t, "p256")
	rootTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"Upstream"}, CommonName: "Upstream Root"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	root := mustCreate(t, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	issuerKey := genKey(t, "p256")
	issuerTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		Subject:               pkix.Name{Organization: []string{"Upstream"}, CommonName: "Upstream Issuing CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(issuerTTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	issuer := mustCreate(t, issuerTmpl, root, issuerKey.Public(), rootKey)
	dir := t.TempDir()
	u := &testUpstream{root: root, issuer: issuer,
		certFile: filepath.Join(dir, "upstream.pem"), keyFile: filepath.Join(dir, "upstream.key")}
	writePEM(t, u.certFile, []*x509.Certificate{issuer, root}) // issuing CA first, root last
	der, err := x509.MarshalPKCS8PrivateKey(issuerKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(u.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return u
}

func mustCreate(t *testing.T, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestUpstreamMode: the CA is an intermediate under the upstream issuing
// CA; the bundle holds only the upstream root, and SVIDs carry the chain
// (SPIRE UpstreamAuthority behaviour).
func TestUpstreamMode(t *testing.T) {
	ctx := context.Background()
	up := newTestUpstream(t, 12*time.Hour) // shorter than the 24h CA TTL
	c, _ := newTestCA(t, Config{KeyType: KeyTypeECP384, UpstreamCertFile: up.certFile, UpstreamKeyFile: up.keyFile})

	roots := c.X509Authorities()
	if len(roots) != 1 || !bytes.Equal(roots[0].Raw, up.root.Raw) {
		t.Fatalf("bundle roots = %d certs, want exactly the upstream root", len(roots))
	}
	ourCA := activeCert(t, c)
	if err := ourCA.CheckSignatureFrom(up.issuer); err != nil {
		t.Fatalf("CA not signed by the upstream issuer: %v", err)
	}
	if !ourCA.NotAfter.Equal(up.issuer.NotAfter) {
		t.Errorf("CA notAfter %s, want capped at the upstream's %s", ourCA.NotAfter, up.issuer.NotAfter)
	}
	if !bytes.Equal(ourCA.AuthorityKeyId, up.issuer.SubjectKeyId) {
		t.Error("CA AKI is not the upstream issuer's SKI")
	}

	key := genKey(t, "p256")
	id := mustID(t, "spiffe://example.org/ns/a/sa/b")
	chain, err := c.SignX509SVID(ctx, makeCSR(t, key), id, 0, []string{"b.a.svc"})
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 3 || !bytes.Equal(chain[1].Raw, ourCA.Raw) || !bytes.Equal(chain[2].Raw, up.issuer.Raw) {
		t.Fatalf("chain has %d certs, want leaf, our CA, upstream issuer", len(chain))
	}
	var raw [][]byte
	for _, c := range chain {
		raw = append(raw, c.Raw)
	}
	if _, _, err := x509svid.ParseAndVerify(raw, c.Bundle()); err != nil {
		t.Fatalf("x509svid.ParseAndVerify: %v", err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	var certsDER []byte
	for _, r := range raw {
		certsDER = append(certsDER, r...)
	}
	if _, err := x509svid.ParseRaw(certsDER, keyDER); err != nil {
		t.Fatalf("x509svid.ParseRaw of the full chain: %v", err)
	}
	opensslVerify(t, c.X509Authorities(), chain)

	// Rotation in upstream mode: roots stay the upstream root; the JWT key
	// change still moves the sequence.
	seq := seqOf(t, c)
	if err := c.ActivateNow(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.X509Authorities(); len(got) != 1 || !bytes.Equal(got[0].Raw, up.root.Raw) {
		t.Error("rotation changed the upstream bundle roots")
	}
	if seqOf(t, c) <= seq {
		t.Error("sequence did not move on rotation")
	}
	chain2, err := c.SignX509SVID(ctx, makeCSR(t, key), id, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify(chain2, c.Bundle()); err != nil {
		t.Fatalf("after rotation: %v", err)
	}

	// Restart keeps the upstream chain.
	c2, err := New(ctx, c.cfg, c.journal)
	if err != nil {
		t.Fatal(err)
	}
	chain3, err := c2.SignX509SVID(ctx, makeCSR(t, key), id, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain3) != 3 {
		t.Fatalf("after restart chain has %d certs", len(chain3))
	}
	if _, _, err := x509svid.Verify(chain3, c2.Bundle()); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}

// TestSwitchToUpstream: a self-signed CA restarted with an upstream keeps
// its active CA and old roots; the upstream takes over at the next
// rotation, so no peer loses trust in between.
func TestSwitchToUpstream(t *testing.T) {
	ctx := context.Background()
	c1, j := newTestCA(t, Config{})
	selfRoot := activeCert(t, c1)
	up := newTestUpstream(t, 48*time.Hour)
	cfg := c1.cfg
	cfg.UpstreamCertFile, cfg.UpstreamKeyFile = up.certFile, up.keyFile
	c2, err := New(ctx, cfg, j)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(activeCert(t, c2).Raw, selfRoot.Raw) {
		t.Fatal("switching to upstream replaced the active CA at once")
	}
	if err := c2.PrepareNow(ctx); err != nil {
		t.Fatal(err)
	}
	if !inBundle(c2, selfRoot) || !inBundle(c2, up.root) {
		t.Fatal("bundle must hold the self-signed root and the upstream root while switching")
	}
	if err := c2.ActivateNow(ctx); err != nil {
		t.Fatal(err)
	}
	chain, err := c2.SignX509SVID(ctx, makeCSR(t, genKey(t, "p256")), mustID(t, "spiffe://example.org/w"), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 3 {
		t.Fatalf("chain has %d certs, want 3", len(chain))
	}
	if _, _, err := x509svid.Verify(chain, c2.Bundle()); err != nil {
		t.Fatal(err)
	}
}

func TestUpstreamErrors(t *testing.T) {
	up := newTestUpstream(t, 12*time.Hour)
	other := newTestUpstream(t, 12*time.Hour)
	dir := t.TempDir()
	reversed := filepath.Join(dir, "reversed.pem")
	writePEM(t, reversed, []*x509.Certificate{up.root, up.issuer})
	notCA := filepath.Join(dir, "leaf.pem")
	c, _ := newTestCA(t, Config{})
	leafChain, err := c.SignX509SVID(context.Background(), makeCSR(t, genKey(t, "p256")), mustID(t, "spiffe://example.org/w"), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, notCA, leafChain)
	tests := []struct {
		name, cert, key, want string
	}{
		{"key of another CA", up.certFile, other.keyFile, "does not match"},
		{"chain in the wrong order", reversed, up.keyFile, "not signed by"},
		{"not a CA", notCA, up.keyFile, "not a CA"},
		{"missing file", filepath.Join(dir, "nope.pem"), up.keyFile, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(context.Background(), Config{TrustDomain: td, UpstreamCertFile: tt.cert, UpstreamKeyFile: tt.key}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// TestOpenSSLVerify checks SVIDs with a real openssl process in strict
// mode for both TLS purposes, as a non-Go peer would.
func TestOpenSSLVerify(t *testing.T) {
	for _, kt := range []string{KeyTypeECP256, KeyTypeRSA2048} {
		t.Run(kt, func(t *testing.T) {
			c, _ := newTestCA(t, Config{KeyType: kt})
			if err := c.PrepareNow(context.Background()); err != nil { // two roots in the bundle
				t.Fatal(err)
			}
			chain, err := c.SignX509SVID(context.Background(), makeCSR(t, genKey(t, "p256")), mustID(t, "spiffe://example.org/ns/x/sa/y"), 0, []string{"y.x.svc"})
			if err != nil {
				t.Fatal(err)
			}
			opensslVerify(t, c.X509Authorities(), chain)

			// Control: another CA's bundle must not verify it, or the
			// check above proves nothing.
			other, _ := newTestCA(t, Config{KeyType: kt})
			dir := t.TempDir()
			writePEM(t, filepath.Join(dir, "other.pem"), other.X509Authorities())
			writePEM(t, filepath.Join(dir, "leaf.pem"), chain)
			out, err := exec.Command(requireOpenSSL(t), "verify", "-CAfile", filepath.Join(dir, "other.pem"), filepath.Join(dir, "leaf.pem")).CombinedOutput()
			if err == nil {
				t.Fatalf("openssl verified the SVID against an unrelated bundle: %s", out)
			}
		})
	}
}

// TestOpenSSLUpstream uses an upstream CA made by openssl itself (SEC 1 EC
// key with an EC PARAMETERS block, as `openssl ecparam -genkey` writes it),
// then verifies the SVID chain with openssl.
func TestOpenSSLUpstream(t *testing.T) {
	openssl := requireOpenSSL(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "up.key")
	crt := filepath.Join(dir, "up.crt")
	run(t, openssl, "ecparam", "-name", "prime256v1", "-genkey", "-out", key)
	run(t, openssl, "req", "-x509", "-new", "-key", key, "-out", crt, "-days", "2",
		"-subj", "/O=Upstream/CN=openssl upstream root",
		"-addext", "basicConstraints=critical,CA:TRUE",
		"-addext", "keyUsage=critical,keyCertSign,cRLSign")
	c, _ := newTestCA(t, Config{UpstreamCertFile: crt, UpstreamKeyFile: key})
	chain, err := c.SignX509SVID(context.Background(), makeCSR(t, genKey(t, "p256")), mustID(t, "spiffe://example.org/w"), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 {
		t.Fatalf("chain has %d certs, want leaf + our CA (the upstream is the root)", len(chain))
	}
	opensslVerify(t, c.X509Authorities(), chain)
	if _, _, err := x509svid.Verify(chain, c.Bundle()); err != nil {
		t.Fatal(err)
	}
}

func requireOpenSSL(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not found in PATH; install it (Debian: apt-get install openssl) to run the openssl interoperability test")
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// opensslVerify runs `openssl verify -CAfile bundle.pem -untrusted
// intermediates.pem leaf.pem` in strict mode for both TLS purposes.
func opensslVerify(t *testing.T, roots, chain []*x509.Certificate) {
	t.Helper()
	openssl := requireOpenSSL(t)
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle.pem")
	leaf := filepath.Join(dir, "leaf.pem")
	writePEM(t, bundle, roots)
	writePEM(t, leaf, chain[:1])
	for _, purpose := range []string{"sslserver", "sslclient"} {
		args := []string{"verify", "-x509_strict", "-purpose", purpose, "-CAfile", bundle}
		if len(chain) > 1 {
			inter := filepath.Join(dir, "intermediates.pem")
			writePEM(t, inter, chain[1:])
			args = append(args, "-untrusted", inter)
		}
		args = append(args, leaf)
		if out := run(t, openssl, args...); !strings.Contains(out, "leaf.pem: OK") {
			t.Fatalf("openssl %s: %s", strings.Join(args, " "), out)
		}
	}
}
