package ca

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// TestRestart: a second New over the same journal and KeyDir has the same
// active CA and JWT key, the same bundle, and keys on disk are 0600 in a
// 0700 directory.
func TestRestart(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "keys")
	j := &memJournal{}
	cfg := Config{TrustDomain: td, KeyDir: dir}
	c1, err := New(ctx, cfg, j)
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.PrepareNow(ctx); err != nil { // a prepared one must survive too
		t.Fatal(err)
	}
	csr := makeCSR(t, genKey(t, "p256"))
	id := mustID(t, "spiffe://example.org/w")
	chain1, err := c1.SignX509SVID(ctx, csr, id, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok1, err := c1.SignJWTSVID(ctx, id, []string{"x"}, 0)
	if err != nil {
		t.Fatal(err)
	}

	c2, err := New(ctx, cfg, j)
	if err != nil {
		t.Fatalf("New after restart: %v", err)
	}
	if !bytes.Equal(activeCert(t, c1).Raw, activeCert(t, c2).Raw) {
		t.Fatal("restart changed the active CA")
	}
	if !c1.Bundle().Equal(c2.Bundle()) {
		t.Fatal("restart changed the bundle")
	}
	if got := stateCount(c2); got[StatePrepared] != 1 || got[StateActive] != 1 {
		t.Fatalf("states after restart = %v", got)
	}
	// What the first instance signed verifies with the second's bundle,
	// and the second signs with the same key.
	if _, _, err := x509svid.Verify(chain1, c2.Bundle()); err != nil {
		t.Errorf("SVID from before the restart: %v", err)
	}
	if _, err := jwtsvid.ParseAndValidate(tok1, c2.Bundle(), []string{"x"}); err != nil {
		t.Errorf("JWT-SVID from before the restart: %v", err)
	}
	chain2, err := c2.SignX509SVID(ctx, csr, id, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := chain2[0].CheckSignatureFrom(activeCert(t, c1)); err != nil {
		t.Errorf("after restart the SVID is not signed by the same CA: %v", err)
	}
	tok2, err := c2.SignJWTSVID(ctx, id, []string{"x"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if decodeJWTHeader(t, tok1)["kid"] != decodeJWTHeader(t, tok2)["kid"] {
		t.Error("after restart the JWT key changed")
	}

	// Permissions.
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("key dir mode %o, want 0700", fi.Mode().Perm())
	}
	files := listDir(t, dir)
	if len(files) != 4 { // active + prepared, X.509 + JWT each
		t.Errorf("key files %v, want 4", files)
	}
	for _, f := range files {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %o, want 0600", f, fi.Mode().Perm())
		}
	}
	if strings.Contains(string(j.data), "PRIVATE KEY") {
		t.Error("the journal holds private key material")
	}
}

// TestRestartFailures: a journal the CA cannot honour is an error, never a
// silent new CA (which would break every agent that trusts the old one).
func TestRestartFailures(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) (Config, *memJournal, *CA) {
		dir := filepath.Join(t.TempDir(), "keys")
		j := &memJournal{}
		cfg := Config{TrustDomain: td, KeyDir: dir}
		c, err := New(ctx, cfg, j)
		if err != nil {
			t.Fatal(err)
		}
		return cfg, j, c
	}
	t.Run("active key file missing", func(t *testing.T) {
		cfg, j, c := setup(t)
		os.Remove(filepath.Join(cfg.KeyDir, c.st.Load().active.x509.keyFile))
		if _, err := New(ctx, cfg, j); err == nil || !strings.Contains(err.Error(), "active") {
			t.Fatalf("err = %v, want an error naming the active authority", err)
		}
	})
	t.Run("key file of another key", func(t *testing.T) {
		cfg, j, c := setup(t)
		st := c.st.Load()
		if err := c.keys.write(st.active.x509.keyFile, genKey(t, "p256")); err != nil {
			t.Fatal(err)
		}
		if _, err := New(ctx, cfg, j); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("err = %v, want a key mismatch", err)
		}
	})
	t.Run("other trust domain", func(t *testing.T) {
		cfg, j, _ := setup(t)
		cfg.TrustDomain = spiffeid.RequireTrustDomainFromString("other.org")
		if _, err := New(ctx, cfg, j); err == nil || !strings.Contains(err.Error(), "trust domain") {
			t.Fatalf("err = %v, want a trust domain mismatch", err)
		}
	})
	t.Run("prepared key missing is dropped and prepared again", func(t *testing.T) {
		cfg, j, c := setup(t)
		if err := c.PrepareNow(ctx); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(cfg.KeyDir, c.st.Load().prepared.x509.keyFile))
		c2, err := New(ctx, cfg, j)
		if err != nil {
			t.Fatal(err)
		}
		if c2.st.Load().prepared != nil {
			t.Error("prepared authority without a key survived")
		}
		if s1, s2 := seqOf(t, c), seqOf(t, c2); s2 <= s1 {
			t.Errorf("sequence %d -> %d: dropping a bundle member must bump it", s1, s2)
		}
	})
	t.Run("journal without KeyDir", func(t *testing.T) {
		if _, err := New(ctx, Config{TrustDomain: td}, &memJournal{}); err == nil {
			t.Fatal("want an error")
		}
	})
}

// TestRestartAfterLongDowntime: a server stopped past its CA's expiry
// activates a fresh CA at startup instead of signing with an expired one.
func TestRestartAfterLongDowntime(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := newFakeClock(t0)
	cfg := Config{TrustDomain: td, KeyDir: filepath.Join(t.TempDir(), "k"), Clock: clk.Now}
	j := &memJournal{}
	c1, err := New(ctx, cfg, j)
	if err != nil {
		t.Fatal(err)
	}
	first := activeCert(t, c1)
	clk.Set(t0.Add(30 * time.Hour))
	c2, err := New(ctx, cfg, j)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(activeCert(t, c2).Raw, first.Raw) {
		t.Fatal("expired CA is still active")
	}
	if !inBundle(c2, first) {
		t.Error("expired CA left the bundle before its 24h grace")
	}
	if _, err := c2.SignX509SVID(ctx, makeCSR(t, genKey(t, "p256")), mustID(t, "spiffe://example.org/w"), 0, nil); err != nil {
		t.Fatal(err)
	}
}

// TestNoKeyMaterialInOutput: fmt of a CA, its status, and key file errors
// never contain private key material.
func TestNoKeyMaterialInOutput(t *testing.T) {
	c, _ := newTestCA(t, Config{})
	st := c.st.Load()
	var secrets []string
	for _, signer := range []any{st.active.x509.signer, st.active.jwt.signer} {
		raw, err := signer.(*ecdsa.PrivateKey).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		d := new(big.Int).SetBytes(raw)
		secrets = append(secrets, d.String(), d.Text(16))
	}
	var out strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x"} {
		fmt.Fprintf(&out, verb+"\n", c)
		fmt.Fprintf(&out, verb+"\n", st.active.x509)
		fmt.Fprintf(&out, verb+"\n", st.active.jwt)
		fmt.Fprintf(&out, verb+"\n", c.Status())
	}
	// A corrupt key file: the error names the file, not its content.
	path := filepath.Join(c.cfg.KeyDir, "x509-corrupt.key")
	content := "-----BEGIN PRIVATE KEY-----\nc2VjcmV0c2VjcmV0c2VjcmV0\n-----END PRIVATE KEY-----\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := c.keys.read("x509-corrupt.key")
	if err == nil {
		t.Fatal("corrupt key parsed")
	}
	fmt.Fprintln(&out, err)
	secrets = append(secrets, "c2VjcmV0c2VjcmV0c2VjcmV0")
	for _, s := range secrets {
		if strings.Contains(out.String(), s) {
			t.Fatalf("output contains key material:\n%s", out.String())
		}
	}
	if !strings.Contains(out.String(), "ca.CA{trust_domain=example.org") {
		t.Errorf("unexpected CA format:\n%s", out.String())
	}
}

// TestEphemeral: no journal and no KeyDir is an in-memory CA.
func TestEphemeral(t *testing.T) {
	c, err := New(context.Background(), Config{TrustDomain: td}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SignX509SVID(context.Background(), makeCSR(t, genKey(t, "p256")), mustID(t, "spiffe://example.org/w"), 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.ActivateNow(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrors(t *testing.T) {
	ctx := context.Background()
	for name, cfg := range map[string]Config{
		"no trust domain":  {},
		"unknown key type": {TrustDomain: td, KeyType: "ed25519"},
		"negative TTL":     {TrustDomain: td, SVIDTTL: -time.Second},
		"half upstream":    {TrustDomain: td, UpstreamCertFile: "x.pem"},
	} {
		if _, err := New(ctx, cfg, nil); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}
