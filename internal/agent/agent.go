// Package agent is Palisade's node agent: it attests to the server with a
// join token, keeps its own SVID fresh, learns the registration entries
// parented to it, makes a key and gets an X.509-SVID for each (rotating
// them at half-life with jitter), and serves them to workloads over the
// SPIFFE Workload API on a unix socket.
package agent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/palisade-security/palisade/internal/identity"
	"github.com/palisade-security/palisade/internal/nodeapi"
	"github.com/palisade-security/palisade/internal/workloadapi"
)

// Config configures an agent.
type Config struct {
	TrustDomain spiffeid.TrustDomain
	ServerAddr  string // host:port of the server's agent API
	JoinToken   string // needed the first time; later the agent's saved SVID is used
	// TrustBundleFile holds PEM certificates to trust the server with on
	// first contact. InsecureBootstrap trusts whatever server answers
	// instead, once; the bundle it returns is trusted from then on.
	TrustBundleFile   string
	InsecureBootstrap bool
	StateDir          string // the agent's SVID and key, mode 0600
	SocketPath        string // the Workload API socket
	Attestor          workloadapi.Attestor
	Logger            *slog.Logger
	Clock             func() time.Time
	// SyncWait is how long a sync request may wait for a change.
	SyncWait time.Duration
}

// Agent is a running node agent.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	cache *Cache

	mu   sync.Mutex
	svid *identity.SVID // the agent's own
	http *http.Client
	rev  int64

	// renewAt is when each workload SVID is renewed: half its life, ±10%.
	renewAt map[string]time.Time
	// signMu serializes signing: the sync loop and the rotation ticker
	// both ask for SVIDs.
	signMu sync.Mutex
	ready  chan struct{}
}

// New prepares an agent; Run starts it.
func New(cfg Config) (*Agent, error) {
	if cfg.TrustDomain.IsZero() || cfg.ServerAddr == "" || cfg.StateDir == "" || cfg.SocketPath == "" {
		return nil, errors.New("trust domain, server address, state directory and socket path are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.SyncWait == 0 {
		cfg.SyncWait = 30 * time.Second
	}
	if cfg.Attestor == nil {
		cfg.Attestor = &workloadapi.UnixAttestor{DiscoverPath: true}
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, cache: newCache(cfg.Clock), renewAt: map[string]time.Time{}, ready: make(chan struct{})}
	a.cache.signJWT = a.signJWT
	return a, nil
}

// Cache returns the agent's cache, which the Workload API serves.
func (a *Agent) Cache() *Cache { return a.cache }

// Ready is closed once the Workload API listens and the first sync is done.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Run bootstraps the agent's identity, serves the Workload API and keeps
// everything fresh until ctx is done.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.bootstrap(ctx); err != nil {
		return err
	}
	ln, err := workloadapi.Listen(a.cfg.SocketPath)
	if err != nil {
		return fmt.Errorf("workload API socket: %w", err)
	}
	srv := &workloadapi.Server{Cache: a.cache, Attestor: a.cfg.Attestor, Logger: a.log}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, ln) }()
	a.log.Info("agent started", "agent", a.agentID().String(), "socket", a.cfg.SocketPath)

	go a.syncLoop(ctx)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			<-errc
			return nil
		case err := <-errc:
			return err
		case <-tick.C:
			a.rotate(ctx)
		}
	}
}

func (a *Agent) agentID() spiffeid.ID {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.svid.ID
}

// bootstrap loads the agent's saved SVID, or attests with the join token.
func (a *Agent) bootstrap(ctx context.Context) error {
	svid, bundle, err := a.loadState()
	if err == nil && a.cfg.Clock().Before(svid.NotAfter()) {
		a.setIdentity(svid, bundle)
		a.log.Info("agent resumed with its saved SVID", "agent", svid.ID.String(), "expires", svid.NotAfter())
		return nil
	}
	if a.cfg.JoinToken == "" {
		return errors.New("no saved agent SVID and no join token: create one with `palisade agent token`")
	}
	roots, err := a.bootstrapRoots()
	if err != nil {
		return err
	}
	key, csr, err := newCSR()
	if err != nil {
		return err
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}
	if roots != nil {
		tlsCfg.VerifyPeerCertificate = a.verifyServer(func() *x509.CertPool { return roots })
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	var resp nodeapi.SVIDResponse
	attest := nodeapi.AttestRequest{Attestor: nodeapi.AttestorJoinToken, Payload: []byte(a.cfg.JoinToken), CSR: csr}
	if err := postJSON(ctx, client, a.url(nodeapi.PathAttest), attest, &resp); err != nil {
		return fmt.Errorf("attestation: %w", err)
	}
	svid, bundle, err = a.parseSVID(resp, key)
	if err != nil {
		return err
	}
	a.setIdentity(svid, bundle)
	a.log.Info("agent attested", "agent", svid.ID.String())
	return a.saveState(svid, resp.Bundle)
}

func (a *Agent) bootstrapRoots() (*x509.CertPool, error) {
	if a.cfg.TrustBundleFile == "" {
		if !a.cfg.InsecureBootstrap {
			return nil, errors.New("give --trust-bundle (the server's bundle, from `palisade bundle show`) or --insecure-bootstrap")
		}
		a.log.Warn("insecure bootstrap: the server is not authenticated on first contact")
		return nil, nil
	}
	data, err := os.ReadFile(a.cfg.TrustBundleFile)
	if err != nil {
		return nil, fmt.Errorf("trust bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("trust bundle %s: no PEM certificates", a.cfg.TrustBundleFile)
	}
	return pool, nil
}

// verifyServer checks the server's certificate against roots and that it
// is the server of the trust domain.
func (a *Agent) verifyServer(roots func() *x509.CertPool) func([][]byte, [][]*x509.Certificate) error {
	want := identity.ServerID(a.cfg.TrustDomain)
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		var certs []*x509.Certificate
		for _, r := range raw {
			c, err := x509.ParseCertificate(r)
			if err != nil {
				return err
			}
			certs = append(certs, c)
		}
		if len(certs) == 0 {
			return errors.New("the server sent no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return fmt.Errorf("server certificate: %w", err)
		}
		id, err := x509svid.IDFromCert(certs[0])
		if err != nil || id != want {
			return fmt.Errorf("server certificate is for %v, want %s", id, want)
		}
		return nil
	}
}

// setIdentity installs the agent's SVID and the bundle, and the mTLS
// client that uses them.
func (a *Agent) setIdentity(svid *identity.SVID, bundle *spiffebundle.Bundle) {
	a.mu.Lock()
	a.svid = svid
	a.mu.Unlock()
	entries, _ := a.cache.snapshot()
	a.cache.setEntries(entries, bundle)
	roots := func() *x509.CertPool {
		pool := x509.NewCertPool()
		if b := a.cache.X509Bundle(); b != nil {
			for _, c := range b.X509Authorities() {
				pool.AddCert(c)
			}
		}
		return pool
	}
	tlsCfg := &tls.Config{
		MinVersion:            tls.VersionTLS12,
		InsecureSkipVerify:    true, // the server is verified by SPIFFE ID below
		VerifyPeerCertificate: a.verifyServer(roots),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			a.mu.Lock()
			defer a.mu.Unlock()
			return tlsCert(a.svid), nil
		},
	}
	a.mu.Lock()
	a.http = &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, MaxIdleConnsPerHost: 4}}
	a.mu.Unlock()
}

func tlsCert(s *identity.SVID) *tls.Certificate {
	c := &tls.Certificate{PrivateKey: s.PrivateKey, Leaf: s.Certificates[0]}
	for _, x := range s.Certificates {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

func (a *Agent) client() *http.Client {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.http
}

func (a *Agent) url(path string) string { return "https://" + a.cfg.ServerAddr + path }

// syncLoop keeps the entries and bundle current with long-polling sync
// requests, backing off while the server is unreachable.
func (a *Agent) syncLoop(ctx context.Context) {
	backoff := time.Second
	first := true
	for ctx.Err() == nil {
		wait := a.cfg.SyncWait
		if first {
			wait = 0
		}
		err := a.sync(ctx, wait)
		if first && err == nil {
			first = false
			close(a.ready)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Warn("sync with the server failed; serving from cache", "error", err, "retryIn", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 30*time.Second)
			continue
		}
		backoff = time.Second
	}
}

// sync fetches the entries and bundle (waiting up to wait for a change)
// and gets SVIDs for entries that have none.
func (a *Agent) sync(ctx context.Context, wait time.Duration) error {
	a.mu.Lock()
	rev := a.rev
	a.mu.Unlock()
	q := url.Values{"revision": {strconv.FormatInt(rev, 10)}, "wait": {wait.String()}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url(nodeapi.PathSync)+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	var resp nodeapi.SyncResponse
	if err := doJSON(a.client(), req, &resp); err != nil {
		return err
	}
	bundle, err := spiffebundle.Parse(a.cfg.TrustDomain, resp.Bundle)
	if err != nil {
		return fmt.Errorf("bundle from the server: %w", err)
	}
	var entries []*identity.Entry
	for _, we := range resp.Entries {
		e, err := entryFromWire(we)
		if err != nil {
			a.log.Warn("ignoring an entry the server sent", "id", we.ID, "error", err)
			continue
		}
		entries = append(entries, e)
	}
	a.cache.setEntries(entries, bundle)
	a.mu.Lock()
	a.rev = resp.Revision
	a.mu.Unlock()
	return a.signMissing(ctx)
}

// rotate renews the agent's SVID and workload SVIDs that are due.
func (a *Agent) rotate(ctx context.Context) {
	a.mu.Lock()
	own := a.svid
	a.mu.Unlock()
	now := a.cfg.Clock()
	if now.After(halfLife(own.Certificates[0])) {
		if err := a.renewAgent(ctx); err != nil {
			a.log.Warn("agent SVID renewal failed", "error", err)
		}
	}
	if err := a.signMissing(ctx); err != nil {
		a.log.Warn("workload SVID renewal failed; serving from cache", "error", err)
	}
}

func halfLife(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) / 2)
}

func (a *Agent) renewAgent(ctx context.Context) error {
	key, csr, err := newCSR()
	if err != nil {
		return err
	}
	var resp nodeapi.SVIDResponse
	if err := postJSON(ctx, a.client(), a.url(nodeapi.PathRenew), nodeapi.RenewRequest{CSR: csr}, &resp); err != nil {
		return err
	}
	svid, bundle, err := a.parseSVID(resp, key)
	if err != nil {
		return err
	}
	a.setIdentity(svid, bundle)
	a.log.Info("agent SVID renewed", "expires", svid.NotAfter())
	return a.saveState(svid, resp.Bundle)
}

// signMissing gets SVIDs for entries without one and for those past their
// renewal time, in one batch.
func (a *Agent) signMissing(ctx context.Context) error {
	a.signMu.Lock()
	defer a.signMu.Unlock()
	entries, svids := a.cache.snapshot()
	now := a.cfg.Clock()
	var req nodeapi.SignRequest
	keys := map[string]crypto.Signer{}
	for _, e := range entries {
		s, ok := svids[e.ID]
		a.mu.Lock()
		due, planned := a.renewAt[e.ID]
		a.mu.Unlock()
		if ok && planned && now.Before(due) && now.Before(s.NotAfter()) {
			continue
		}
		key, csr, err := newCSR()
		if err != nil {
			return err
		}
		keys[e.ID] = key
		req.CSRs = append(req.CSRs, nodeapi.EntryCSR{EntryID: e.ID, CSR: csr})
		if len(req.CSRs) == 500 {
			break
		}
	}
	if len(req.CSRs) == 0 {
		return nil
	}
	var resp nodeapi.SignResponse
	if err := postJSON(ctx, a.client(), a.url(nodeapi.PathSign), req, &resp); err != nil {
		return err
	}
	byID := map[string]*identity.Entry{}
	for _, e := range entries {
		byID[e.ID] = e
	}
	for _, s := range resp.SVIDs {
		if s.Error != "" {
			a.log.Warn("server refused an SVID", "entry", s.EntryID, "error", s.Error)
			continue
		}
		key, ok := keys[s.EntryID]
		if !ok {
			continue
		}
		svid, err := parseChain(s.Chain, key)
		if err != nil {
			a.log.Warn("bad SVID from the server", "entry", s.EntryID, "error", err)
			continue
		}
		svid.EntryID = s.EntryID
		if e := byID[s.EntryID]; e != nil {
			svid.Hint = e.Hint
		}
		a.cache.setSVID(svid)
		leaf := svid.Certificates[0]
		life := leaf.NotAfter.Sub(leaf.NotBefore)
		// Renew at half-life ± 10%, so that workloads do not reload together.
		jitter := time.Duration((mathrand.Float64()*0.2 - 0.1) * float64(life/2))
		a.mu.Lock()
		a.renewAt[s.EntryID] = leaf.NotBefore.Add(life/2 + jitter)
		a.mu.Unlock()
		a.log.Debug("workload SVID issued", "spiffeId", svid.ID.String(), "expires", leaf.NotAfter)
	}
	return nil
}

func (a *Agent) signJWT(ctx context.Context, entryID string, audience []string) (string, error) {
	var resp nodeapi.JWTResponse
	if err := postJSON(ctx, a.client(), a.url(nodeapi.PathJWT), nodeapi.JWTRequest{EntryID: entryID, Audience: audience}, &resp); err != nil {
		return "", err
	}
	return resp.Token, nil
}

func (a *Agent) parseSVID(resp nodeapi.SVIDResponse, key crypto.Signer) (*identity.SVID, *spiffebundle.Bundle, error) {
	svid, err := parseChain(resp.Chain, key)
	if err != nil {
		return nil, nil, err
	}
	bundle, err := spiffebundle.Parse(a.cfg.TrustDomain, resp.Bundle)
	if err != nil {
		return nil, nil, fmt.Errorf("bundle from the server: %w", err)
	}
	return svid, bundle, nil
}

func parseChain(chain [][]byte, key crypto.Signer) (*identity.SVID, error) {
	if len(chain) == 0 {
		return nil, errors.New("empty certificate chain")
	}
	var certs []*x509.Certificate
	for _, raw := range chain {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	id, err := x509svid.IDFromCert(certs[0])
	if err != nil {
		return nil, err
	}
	return &identity.SVID{ID: id, Certificates: certs, PrivateKey: key}, nil
}

func entryFromWire(in nodeapi.Entry) (*identity.Entry, error) {
	id, err := spiffeid.FromString(in.SPIFFEID)
	if err != nil {
		return nil, err
	}
	parent, err := spiffeid.FromString(in.ParentID)
	if err != nil {
		return nil, err
	}
	e := &identity.Entry{ID: in.ID, SPIFFEID: id, ParentID: parent, X509TTL: time.Duration(in.X509TTL), JWTTTL: time.Duration(in.JWTTTL), DNSNames: in.DNSNames, Hint: in.Hint, Revision: in.Revision}
	if in.CreatedAt != "" {
		e.CreatedAt, _ = time.Parse(time.RFC3339, in.CreatedAt)
	}
	for _, s := range in.Selectors {
		sel, err := identity.ParseSelector(s)
		if err != nil {
			return nil, err
		}
		e.Selectors = append(e.Selectors, sel)
	}
	return e, nil
}

// saveState writes the agent's SVID, key and bundle, so a restart needs no
// new join token. The key file is mode 0600.
func (a *Agent) saveState(svid *identity.SVID, bundle []byte) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(svid.PrivateKey)
	if err != nil {
		return err
	}
	var certs bytes.Buffer
	for _, c := range svid.Certificates {
		pem.Encode(&certs, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	for name, data := range map[string][]byte{
		"agent-svid.pem": certs.Bytes(),
		"agent-key.pem":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"bundle.json":    bundle,
	} {
		if err := writeFileAtomic(filepath.Join(a.cfg.StateDir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (a *Agent) loadState() (*identity.SVID, *spiffebundle.Bundle, error) {
	dir := a.cfg.StateDir
	svid, err := x509svid.Load(filepath.Join(dir, "agent-svid.pem"), filepath.Join(dir, "agent-key.pem"))
	if err != nil {
		return nil, nil, err
	}
	bundle, err := spiffebundle.Load(a.cfg.TrustDomain, filepath.Join(dir, "bundle.json"))
	if err != nil {
		return nil, nil, err
	}
	return &identity.SVID{ID: svid.ID, Certificates: svid.Certificates, PrivateKey: svid.PrivateKey}, bundle, nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func newCSR() (crypto.Signer, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	return key, csr, err
}

func postJSON(ctx context.Context, c *http.Client, url string, body, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return doJSON(c, req, out)
}

func doJSON(c *http.Client, req *http.Request, out any) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e nodeapi.Error
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("server: %s", e.Error)
		}
		return fmt.Errorf("server: %s", resp.Status)
	}
	return json.Unmarshal(body, out)
}

type errNoEntry spiffeid.ID

func (e errNoEntry) Error() string {
	return fmt.Sprintf("no entry for %s", spiffeid.ID(e))
}

// jwtExpiry reads a JWT's exp claim, without verifying it: the agent only
// needs to know how long to reuse a token the server just issued.
func jwtExpiry(token string, now time.Time) time.Time {
	parts := strings.Split(token, ".")
	if len(parts) == 3 {
		if payload, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			var claims struct {
				Exp int64 `json:"exp"`
			}
			if json.Unmarshal(payload, &claims) == nil && claims.Exp > 0 {
				return time.Unix(claims.Exp, 0)
			}
		}
	}
	return now.Add(time.Minute)
}
