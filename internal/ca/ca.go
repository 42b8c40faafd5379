// Package ca is Palisade's SPIFFE certificate authority: it signs
// X509-SVIDs and JWT-SVIDs for one trust domain and publishes the trust
// bundle that verifies them.
//
// The CA follows SPIRE's server CA behaviour (spire pkg/server/ca/manager):
// an active authority signs; at half of its lifetime the next one is
// prepared and published in the bundle at once, so agents and workloads
// trust it before anything is signed with it; at 5/6 of the lifetime the
// prepared authority becomes active and the previous one becomes old; an
// old authority stays in the bundle until 24 hours after it expires, so
// SVIDs it signed keep verifying to their end. Every X.509 CA is paired
// with a JWT signing key of the same lifetime, rotated with it.
//
// The CA is either self-signed (its certificates are the bundle roots) or,
// with an upstream CA, an intermediate whose chain is sent with every SVID
// and whose bundle holds the upstream root.
//
// State (which authorities exist and in which state, and the bundle
// sequence number) is persisted through a Journal, and private keys are
// PKCS#8 files in Config.KeyDir, so a restarted server keeps its CA.
// Private keys are never part of an error, a log line or fmt output.
package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Defaults, as SPIRE's (doc/spire_server.md: ca_ttl, default_x509_svid_ttl,
// default_jwt_svid_ttl, ca_key_type).
const (
	DefaultCATTL   = 24 * time.Hour
	DefaultSVIDTTL = time.Hour
	DefaultJWTTTL  = 5 * time.Minute
	DefaultKeyType = KeyTypeECP256
	// DefaultRefreshHint is the spiffe_refresh_hint published in the
	// bundle, SPIRE's default bundle endpoint refresh hint. It is far
	// shorter than the prepare-to-activate window (1/3 of CATTL).
	DefaultRefreshHint = 5 * time.Minute
)

// Rotation thresholds (SPIRE manager.go and slot.go): prepare at half-life,
// activate at 5/6 of the lifetime, each bounded for very long CA TTLs;
// keep an expired authority in the bundle for 24h.
const (
	maxPrepareBeforeExpiry  = 30 * 24 * time.Hour
	maxActivateBeforeExpiry = 7 * 24 * time.Hour
	bundleSafetyThreshold   = 24 * time.Hour
)

// Config configures a CA. Zero fields take the defaults above.
type Config struct {
	TrustDomain spiffeid.TrustDomain
	CATTL       time.Duration // default 24h
	SVIDTTL     time.Duration // default 1h (X.509-SVID)
	JWTTTL      time.Duration // default 5m
	// KeyType of the CA and JWT signing keys: "ec-p256" (default),
	// "ec-p384", "rsa-2048" or "rsa-4096".
	KeyType string
	// UpstreamCertFile and UpstreamKeyFile switch on intermediate mode.
	// The certificate file is PEM, issuing CA first and root last; the
	// key (PKCS#8, SEC 1 or PKCS#1 PEM) belongs to the first certificate.
	// The last certificate is published as the bundle root.
	UpstreamCertFile, UpstreamKeyFile string
	// KeyDir holds the CA private keys (directory 0700, files 0600).
	// Required with a Journal; empty with a nil Journal gives an in-memory
	// CA that does not survive a restart (tests, ephemeral servers).
	KeyDir string
	Clock  func() time.Time // default time.Now
}

// Journal persists the CA state (which keys/certs are prepared, active or
// old, and the bundle sequence). The datastore implements it. Load returns
// nil, nil when nothing was saved yet.
type Journal interface {
	LoadCAJournal(ctx context.Context) ([]byte, error)
	SaveCAJournal(ctx context.Context, data []byte) error
}

// CA signs SVIDs for one trust domain. It is safe for concurrent use:
// signing and the read methods never block on rotation.
type CA struct {
	cfg         Config
	td          spiffeid.TrustDomain
	journal     Journal
	keys        keyStore
	up          *upstream
	refreshHint time.Duration

	mu sync.Mutex // serializes changes (Rotate, PrepareNow, ActivateNow)
	st atomic.Pointer[state]
}

// New loads the CA from the journal and KeyDir, or bootstraps a first
// active authority when the journal is empty, then brings rotation up to
// date (a server that was stopped for a while may need to activate or
// prepare at once).
func New(ctx context.Context, cfg Config, j Journal) (*CA, error) {
	if cfg.TrustDomain.IsZero() {
		return nil, errors.New("ca: trust domain is required")
	}
	if cfg.CATTL == 0 {
		cfg.CATTL = DefaultCATTL
	}
	if cfg.SVIDTTL == 0 {
		cfg.SVIDTTL = DefaultSVIDTTL
	}
	if cfg.JWTTTL == 0 {
		cfg.JWTTTL = DefaultJWTTTL
	}
	if cfg.CATTL < 0 || cfg.SVIDTTL < 0 || cfg.JWTTTL < 0 {
		return nil, errors.New("ca: TTLs must be positive")
	}
	if cfg.KeyType == "" {
		cfg.KeyType = DefaultKeyType
	}
	if !validKeyType(cfg.KeyType) {
		return nil, fmt.Errorf("ca: unknown key type %q (want ec-p256, ec-p384, rsa-2048 or rsa-4096)", cfg.KeyType)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if j != nil && cfg.KeyDir == "" {
		return nil, errors.New("ca: a journal needs a KeyDir: the journal names key files, and without them a restart could not sign")
	}
	if (cfg.UpstreamCertFile == "") != (cfg.UpstreamKeyFile == "") {
		return nil, errors.New("ca: upstream mode needs both UpstreamCertFile and UpstreamKeyFile")
	}
	c := &CA{
		cfg:         cfg,
		td:          cfg.TrustDomain,
		journal:     j,
		keys:        keyStore{dir: cfg.KeyDir},
		refreshHint: DefaultRefreshHint,
	}
	if err := c.keys.init(); err != nil {
		return nil, err
	}
	if cfg.UpstreamCertFile != "" {
		up, err := loadUpstream(cfg.UpstreamCertFile, cfg.UpstreamKeyFile, c.now())
		if err != nil {
			return nil, err
		}
		c.up = up
	}

	empty, _ := newState(nil, 0, c.refreshHint, c.td)
	c.st.Store(empty)
	dirty := false
	if j != nil {
		data, err := j.LoadCAJournal(ctx)
		if err != nil {
			return nil, fmt.Errorf("ca: load journal: %w", err)
		}
		if len(data) > 0 {
			st, d, err := c.decodeJournal(data)
			if err != nil {
				return nil, err
			}
			c.st.Store(st)
			dirty = d
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.rotateLocked(ctx, forceNone, dirty); err != nil {
		return nil, err
	}
	c.keys.removeOrphans(c.st.Load().keyFiles())
	return c, nil
}

func (c *CA) now() time.Time { return c.cfg.Clock() }

// TrustDomain is the trust domain the CA signs for.
func (c *CA) TrustDomain() spiffeid.TrustDomain { return c.td }

type force int

const (
	forceNone force = iota
	forcePrepare
	forceActivate
)

// Rotate advances the authorities to the clock: it prepares the next CA and
// JWT key at half of the active one's lifetime (publishing them in the
// bundle at once), activates them at 5/6, and prunes old authorities 24h
// after they expired. Call it periodically (the server ticks every 10s);
// changed reports whether anything moved. On error nothing changed.
func (c *CA) Rotate(ctx context.Context) (changed bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rotateLocked(ctx, forceNone, false)
}

// PrepareNow prepares a new next authority at once, replacing a prepared
// one that has not been activated (it never signed anything, so dropping
// it is safe). For tests and an administrator's forced rotation.
func (c *CA) PrepareNow(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.rotateLocked(ctx, forcePrepare, false)
	return err
}

// ActivateNow activates the prepared authority at once, preparing one
// first if there is none. Peers that have not fetched the bundle since it
// was prepared will not yet trust SVIDs it signs (SPIRE #2704), so an
// administrator should prepare, wait for bundle propagation, then activate.
func (c *CA) ActivateNow(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.rotateLocked(ctx, forceActivate, false)
	return err
}

func prepareAt(s *slot) time.Time {
	life := s.notAfter().Sub(s.notBefore())
	return s.notAfter().Add(-min(life/2, maxPrepareBeforeExpiry))
}

func activateAt(s *slot) time.Time {
	life := s.notAfter().Sub(s.notBefore())
	return s.notAfter().Add(-min(life/6, maxActivateBeforeExpiry))
}

// rotateLocked computes the next state on a copy, saves the journal, and
// only then publishes it, so a failed save changes nothing (except for key
// files of new authorities, which are removed again).
func (c *CA) rotateLocked(ctx context.Context, f force, dirty bool) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	cur := c.st.Load()
	now := c.now()
	slots := append([]*slot(nil), cur.slots...)
	changed := dirty
	var created []*slot

	find := func(st AuthorityState) int {
		for i, s := range slots {
			if s.state == st {
				return i
			}
		}
		return -1
	}
	drop := func(i int) {
		slots = append(slots[:i], slots[i+1:]...)
		changed = true
	}
	add := func(st AuthorityState) error {
		s, err := c.newSlot(now, st)
		if err != nil {
			return err
		}
		created = append(created, s)
		slots = append(slots, s)
		changed = true
		return nil
	}
	activate := func() {
		if a := find(StateActive); a >= 0 {
			slots[a] = slots[a].retire()
		}
		p := find(StatePrepared)
		slots[p] = slots[p].withState(StateActive)
		changed = true
	}
	fail := func(err error) (bool, error) {
		for _, s := range created {
			c.keys.remove(s.x509.keyFile)
			c.keys.remove(s.jwt.keyFile)
		}
		return false, err
	}

	// No usable active authority (first start, or the server was down past
	// its expiry): activate the prepared one if it is still valid, else a
	// new one, immediately.
	if a := find(StateActive); a < 0 || !now.Before(slots[a].notAfter()) {
		if p := find(StatePrepared); p >= 0 && !now.Before(slots[p].notAfter()) {
			drop(p)
		}
		if find(StatePrepared) < 0 {
			if err := add(StatePrepared); err != nil {
				return fail(err)
			}
		}
		activate()
	}
	switch f {
	case forcePrepare:
		if p := find(StatePrepared); p >= 0 {
			drop(p)
		}
		if err := add(StatePrepared); err != nil {
			return fail(err)
		}
	case forceActivate:
		if find(StatePrepared) < 0 {
			if err := add(StatePrepared); err != nil {
				return fail(err)
			}
		}
		activate()
	}
	active := slots[find(StateActive)]
	if find(StatePrepared) < 0 && now.After(prepareAt(active)) {
		if err := add(StatePrepared); err != nil {
			return fail(err)
		}
	}
	if find(StatePrepared) >= 0 && now.After(activateAt(active)) {
		activate()
	}
	// Prune: old authorities leave the bundle 24h after they expire
	// (SPIRE safetyThresholdBundle, spire#921).
	kept := slots[:0]
	for _, s := range slots {
		if s.state == StateOld && now.After(s.notAfter().Add(bundleSafetyThreshold)) {
			changed = true
			continue
		}
		kept = append(kept, s)
	}
	slots = kept

	if !changed {
		return false, nil
	}
	next, err := newState(slots, cur.seq, c.refreshHint, c.td)
	if err != nil {
		return fail(err)
	}
	// dirty: the journal held an authority that was dropped while loading,
	// so the published content differs from what was last saved.
	if cur.seq == 0 || dirty || !sameContent(cur, next) {
		if next, err = newState(slots, cur.seq+1, c.refreshHint, c.td); err != nil {
			return fail(err)
		}
	}
	if c.journal != nil {
		data, err := c.encodeJournal(next)
		if err != nil {
			return fail(err)
		}
		if err := c.journal.SaveCAJournal(ctx, data); err != nil {
			return fail(fmt.Errorf("ca: save journal: %w", err))
		}
	}
	c.st.Store(next)
	// Keys of authorities that became old are no longer needed.
	c.keys.removeOrphans(next.keyFiles())
	return true, nil
}

// X509Authorities returns the X.509 roots of the trust domain's bundle: the
// prepared, active and not yet pruned old CA certificates, or in upstream
// mode the upstream root(s). The certificates are shared; do not modify them.
func (c *CA) X509Authorities() []*x509.Certificate {
	return append([]*x509.Certificate(nil), c.st.Load().roots...)
}

// JWTAuthorities returns the JWT signing public keys in the bundle by key ID.
func (c *CA) JWTAuthorities() map[string]crypto.PublicKey {
	st := c.st.Load()
	out := make(map[string]crypto.PublicKey, len(st.jwtKeys))
	for k, v := range st.jwtKeys {
		out[k] = v
	}
	return out
}

// Bundle returns the trust bundle: X.509 and JWT authorities, a sequence
// number that increases whenever they change, and a refresh hint. The
// result is the caller's own copy.
func (c *CA) Bundle() *spiffebundle.Bundle {
	return c.st.Load().bundle.Clone()
}

// AuthorityStatus describes one authority, for `palisade bundle show` and
// logs. It holds no key material.
type AuthorityStatus struct {
	Kind      string // "x509" or "jwt"
	State     AuthorityState
	ID        string // x509: certificate serial in hex; jwt: key ID
	NotBefore time.Time
	NotAfter  time.Time
	// Upstream reports an X.509 CA signed by the upstream CA.
	Upstream bool
}

func (s AuthorityStatus) String() string {
	up := ""
	if s.Upstream {
		up = " upstream"
	}
	return fmt.Sprintf("%s %s %s notBefore=%s notAfter=%s%s", s.Kind, s.State, s.ID,
		s.NotBefore.UTC().Format(time.RFC3339), s.NotAfter.UTC().Format(time.RFC3339), up)
}

// Status lists every authority: for each slot, oldest first, its X.509 CA
// then its JWT key.
func (c *CA) Status() []AuthorityStatus {
	st := c.st.Load()
	out := make([]AuthorityStatus, 0, 2*len(st.slots))
	for _, s := range st.slots {
		out = append(out, AuthorityStatus{
			Kind:      "x509",
			State:     s.state,
			ID:        serialHex(s.x509.cert.SerialNumber),
			NotBefore: s.x509.cert.NotBefore,
			NotAfter:  s.x509.cert.NotAfter,
			Upstream:  !s.x509.selfSigned(),
		}, AuthorityStatus{
			Kind:      "jwt",
			State:     s.state,
			ID:        s.jwt.kid,
			NotBefore: s.jwt.notBefore,
			NotAfter:  s.jwt.notAfter,
		})
	}
	return out
}

// Format prints a summary for every verb, so that fmt's reflection never
// walks into the private keys (%+v or %#v of a *CA would otherwise print
// them).
func (c *CA) Format(f fmt.State, _ rune) {
	st := c.st.Load()
	active := "none"
	if st != nil && st.active != nil {
		active = serialHex(st.active.x509.cert.SerialNumber)
	}
	fmt.Fprintf(f, "ca.CA{trust_domain=%s active=%s}", c.td.Name(), active)
}
