package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

func seqOf(t *testing.T, c *CA) uint64 {
	t.Helper()
	n, ok := c.Bundle().SequenceNumber()
	if !ok {
		t.Fatal("bundle has no sequence number")
	}
	return n
}

func stateCount(c *CA) map[AuthorityState]int {
	m := map[AuthorityState]int{}
	for _, s := range c.Status() {
		if s.Kind == "x509" {
			m[s.State]++
		}
	}
	return m
}

func inBundle(c *CA, cert *x509.Certificate) bool {
	for _, r := range c.X509Authorities() {
		if bytes.Equal(r.Raw, cert.Raw) {
			return true
		}
	}
	return false
}

func activeCert(t *testing.T, c *CA) *x509.Certificate {
	t.Helper()
	return c.st.Load().active.x509.cert
}

// TestRotationTimeline walks a fake clock through two CA lifetimes and
// checks SPIRE's rotation rules (spire pkg/server/ca/manager, reference
// notes §2.1): prepare at half-life and publish at once, activate at 5/6,
// keep the old CA in the bundle until 24h after it expires.
func TestRotationTimeline(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := newFakeClock(t0)
	c, j := newTestCA(t, Config{Clock: clk.Now})
	csr := makeCSR(t, genKey(t, "p256"))
	id := mustID(t, "spiffe://example.org/w")

	first := activeCert(t, c)
	firstKeyFile := filepath.Join(c.cfg.KeyDir, c.st.Load().active.x509.keyFile)
	if got := seqOf(t, c); got != 1 {
		t.Fatalf("bootstrap sequence = %d, want 1", got)
	}
	if got := stateCount(c); got[StateActive] != 1 || len(got) != 1 {
		t.Fatalf("after bootstrap: %v, want one active", got)
	}

	// Before half-life nothing happens.
	clk.Set(t0.Add(11 * time.Hour))
	if changed, err := c.Rotate(ctx); err != nil || changed {
		t.Fatalf("Rotate at 11h: changed=%v err=%v, want no change", changed, err)
	}

	// Just past half-life (12h of 24h): prepared, and in the bundle at once.
	clk.Set(t0.Add(12*time.Hour + time.Minute))
	if changed, err := c.Rotate(ctx); err != nil || !changed {
		t.Fatalf("Rotate at 12h: changed=%v err=%v, want prepared", changed, err)
	}
	st := c.st.Load()
	if st.prepared == nil {
		t.Fatal("no prepared authority after half-life")
	}
	second := st.prepared.x509.cert
	if !inBundle(c, second) || !inBundle(c, first) {
		t.Fatal("bundle must hold both the active and the prepared CA")
	}
	if len(c.JWTAuthorities()) != 2 {
		t.Errorf("JWT authorities = %d, want active + prepared", len(c.JWTAuthorities()))
	}
	if got := seqOf(t, c); got != 2 {
		t.Errorf("sequence after prepare = %d, want 2", got)
	}

	// Between prepare and 5/6: nothing, and the first CA still signs. Ask
	// for a long TTL: it is capped at the first CA's expiry.
	clk.Set(t0.Add(19 * time.Hour))
	if changed, err := c.Rotate(ctx); err != nil || changed {
		t.Fatalf("Rotate at 19h: changed=%v err=%v", changed, err)
	}
	beforeChain, err := c.SignX509SVID(ctx, csr, id, 10*time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := beforeChain[0].CheckSignatureFrom(first); err != nil {
		t.Fatalf("SVID signed before activation does not chain to the first CA: %v", err)
	}
	if !beforeChain[0].NotAfter.Equal(first.NotAfter) {
		t.Fatalf("SVID notAfter %s not capped at the CA's %s", beforeChain[0].NotAfter, first.NotAfter)
	}

	// Past 5/6 (20h): the prepared CA becomes active, the first old.
	clk.Set(t0.Add(20*time.Hour + time.Minute))
	if changed, err := c.Rotate(ctx); err != nil || !changed {
		t.Fatalf("Rotate at 20h: changed=%v err=%v, want activation", changed, err)
	}
	if got := activeCert(t, c); !bytes.Equal(got.Raw, second.Raw) {
		t.Fatal("the prepared CA did not become active")
	}
	if got := stateCount(c); got[StateOld] != 1 || got[StateActive] != 1 || got[StatePrepared] != 0 {
		t.Fatalf("states after activation: %v", got)
	}
	if got := seqOf(t, c); got != 2 {
		t.Errorf("activation changed the bundle sequence to %d; the bundle content did not change", got)
	}
	if _, err := os.Stat(firstKeyFile); !os.IsNotExist(err) {
		t.Errorf("the old CA's key file is still on disk (err=%v); an old CA never signs again", err)
	}
	afterChain, err := c.SignX509SVID(ctx, csr, id, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := afterChain[0].CheckSignatureFrom(second); err != nil {
		t.Fatalf("SVID signed after activation does not chain to the new CA: %v", err)
	}
	// Both SVIDs verify against the bundle now.
	for name, chain := range map[string][]*x509.Certificate{"before": beforeChain, "after": afterChain} {
		if _, _, err := x509svid.Verify(chain, c.Bundle(), x509svid.WithTime(clk.Now())); err != nil {
			t.Errorf("SVID signed %s activation: %v", name, err)
		}
	}

	// The SVID signed by the first CA verifies until that CA expires.
	clk.Set(first.NotAfter.Add(-time.Minute))
	if _, err := c.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify(beforeChain, c.Bundle(), x509svid.WithTime(clk.Now())); err != nil {
		t.Errorf("SVID from the old CA, a minute before the CA expires: %v", err)
	}

	// The first CA expires at 24h but stays in the bundle for 24h more;
	// the second one's half-life is at 24h too, so a third is prepared.
	clk.Set(t0.Add(24*time.Hour + time.Hour))
	if _, err := c.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if !inBundle(c, first) {
		t.Fatal("old CA left the bundle right after expiry; SPIRE keeps it 24h")
	}
	seqBeforePrune := seqOf(t, c)

	// 24h after its expiry, the first CA is pruned.
	clk.Set(t0.Add(48*time.Hour + time.Minute))
	if _, err := c.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if inBundle(c, first) {
		t.Fatal("old CA still in the bundle 24h after expiry")
	}
	if _, ok := c.JWTAuthorities()[c.Status()[1].ID]; !ok {
		t.Error("status and JWT authorities disagree")
	}
	if got := seqOf(t, c); got <= seqBeforePrune {
		t.Errorf("sequence %d did not increase on prune (was %d)", got, seqBeforePrune)
	}
	if j.saves < 4 {
		t.Errorf("journal saved %d times, want one per change", j.saves)
	}
}

// TestRotationInvariants ticks every 10 minutes for five CA lifetimes and
// checks, at every tick: one active CA, always in the bundle; a freshly
// signed SVID verifies against the bundle; the sequence never decreases;
// every CA is in the bundle from before its activation until it is pruned;
// and each activation happens at least lifetime/3 after the prepare (the
// propagation window, SPIRE #2704).
func TestRotationInvariants(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := newFakeClock(t0)
	c, _ := newTestCA(t, Config{Clock: clk.Now, CATTL: 6 * time.Hour, SVIDTTL: time.Hour})
	csr := makeCSR(t, genKey(t, "p256"))
	id := mustID(t, "spiffe://example.org/w")

	preparedAt := map[string]time.Time{}
	var lastSeq uint64
	prevActive, activations := "", 0
	var issued [][]*x509.Certificate
	for now := t0; now.Before(t0.Add(30 * time.Hour)); now = clk.Add(10 * time.Minute) {
		if _, err := c.Rotate(ctx); err != nil {
			t.Fatalf("%s: %v", now, err)
		}
		st := c.st.Load()
		if st.active == nil || !inBundle(c, st.active.x509.cert) {
			t.Fatalf("%s: active CA missing from the bundle", now)
		}
		if seq := seqOf(t, c); seq < lastSeq {
			t.Fatalf("%s: sequence went back from %d to %d", now, lastSeq, seq)
		} else {
			lastSeq = seq
		}
		for _, s := range c.Status() {
			if s.Kind == "x509" && s.State == StatePrepared {
				if _, ok := preparedAt[s.ID]; !ok {
					preparedAt[s.ID] = now
				}
			}
		}
		activeID := serialHex(st.active.x509.cert.SerialNumber)
		if activeID != prevActive {
			if p, ok := preparedAt[activeID]; ok && now.Sub(p) < 2*time.Hour-10*time.Minute {
				t.Fatalf("%s: CA %s activated %s after it was prepared, want >= CATTL/3", now, activeID, now.Sub(p))
			} else if !ok && prevActive != "" {
				t.Fatalf("%s: CA %s activated without being prepared first", now, activeID)
			}
			activations++
			prevActive = activeID
		}
		chain, err := c.SignX509SVID(ctx, csr, id, 0, nil)
		if err != nil {
			t.Fatalf("%s: sign: %v", now, err)
		}
		issued = append(issued, chain)
		// Every SVID still within its validity verifies against today's bundle.
		for _, ch := range issued {
			if now.Before(ch[0].NotAfter) {
				if _, _, err := x509svid.Verify(ch, c.Bundle(), x509svid.WithTime(now)); err != nil {
					t.Fatalf("%s: SVID issued at %s no longer verifies: %v", now, ch[0].NotBefore, err)
				}
			}
		}
	}
	if len(preparedAt) < 4 || activations < 5 {
		t.Errorf("%d CAs prepared and %d activations in 5 lifetimes", len(preparedAt), activations)
	}
}

// TestForcedRotation: PrepareNow then ActivateNow, the admin path.
func TestForcedRotation(t *testing.T) {
	ctx := context.Background()
	c, _ := newTestCA(t, Config{})
	first := activeCert(t, c)
	if err := c.PrepareNow(ctx); err != nil {
		t.Fatal(err)
	}
	p1 := c.st.Load().prepared.x509.cert
	// Preparing again replaces the unused prepared CA.
	if err := c.PrepareNow(ctx); err != nil {
		t.Fatal(err)
	}
	p2 := c.st.Load().prepared.x509.cert
	if bytes.Equal(p1.Raw, p2.Raw) || inBundle(c, p1) {
		t.Error("second PrepareNow did not replace the first prepared CA")
	}
	if err := c.ActivateNow(ctx); err != nil {
		t.Fatal(err)
	}
	if got := activeCert(t, c); !bytes.Equal(got.Raw, p2.Raw) {
		t.Error("ActivateNow did not activate the prepared CA")
	}
	if !inBundle(c, first) {
		t.Error("the previous active CA left the bundle on activation")
	}
	// ActivateNow with nothing prepared prepares and activates.
	if err := c.ActivateNow(ctx); err != nil {
		t.Fatal(err)
	}
	if got := stateCount(c); got[StateOld] != 2 || got[StateActive] != 1 {
		t.Errorf("states = %v, want 2 old + 1 active", got)
	}
}

// TestRotateSaveFailure: when the journal cannot be saved, nothing changes
// and the new keys do not linger on disk.
func TestRotateSaveFailure(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := newFakeClock(t0)
	c, j := newTestCA(t, Config{Clock: clk.Now})
	filesBefore := listDir(t, c.cfg.KeyDir)
	seq := seqOf(t, c)

	clk.Set(t0.Add(13 * time.Hour))
	j.failNext = true
	changed, err := c.Rotate(ctx)
	if err == nil || changed {
		t.Fatalf("Rotate with a failing journal: changed=%v err=%v", changed, err)
	}
	if !errors.Is(err, io.ErrShortWrite) {
		t.Errorf("error %v does not wrap the journal's error", err)
	}
	if got := stateCount(c); got[StatePrepared] != 0 {
		t.Error("a prepared CA was published although the journal was not saved")
	}
	if seqOf(t, c) != seq {
		t.Error("sequence moved although the journal was not saved")
	}
	if got := listDir(t, c.cfg.KeyDir); len(got) != len(filesBefore) {
		t.Errorf("key files %v, want %v", got, filesBefore)
	}
	// The next tick succeeds.
	if changed, err := c.Rotate(ctx); err != nil || !changed {
		t.Fatalf("retry: changed=%v err=%v", changed, err)
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestSignDuringRotation: signing never blocks on or races with rotation,
// and every SVID signed while authorities change verifies against the
// bundle afterwards (old authorities stay in it). Run with -race.
func TestSignDuringRotation(t *testing.T) {
	ctx := context.Background()
	c, _ := newTestCA(t, Config{})
	csr := makeCSR(t, genKey(t, "p256"))
	id := mustID(t, "spiffe://example.org/w")
	done := make(chan struct{})
	results := make(chan []*x509.Certificate, 1024)
	errs := make(chan error, 16)
	for g := 0; g < 4; g++ {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				chain, err := c.SignX509SVID(ctx, csr, id, 0, nil)
				if err != nil {
					errs <- err
					return
				}
				select {
				case results <- chain:
				default:
				}
				_ = c.Bundle()
				_ = c.Status()
			}
		}()
	}
	for i := 0; i < 5; i++ {
		if err := c.PrepareNow(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.ActivateNow(ctx); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	for g := 0; g < 4; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(results)
	n := 0
	for chain := range results {
		if _, _, err := x509svid.Verify(chain, c.Bundle()); err != nil {
			t.Fatalf("SVID signed during rotation: %v", err)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no SVID was signed")
	}
}
