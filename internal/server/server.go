// Package server is Palisade's identity server: the SPIFFE CA, the
// registration and join-token store, an HTTPS agent API (mutual TLS with
// agent SVIDs, join-token attestation for new agents) and an admin API on a
// unix socket for the CLI.
package server

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/palisade-security/palisade/internal/ca"
	"github.com/palisade-security/palisade/internal/datastore"
	"github.com/palisade-security/palisade/internal/identity"
	"github.com/palisade-security/palisade/internal/nodeapi"
)

// Config configures a server. Only TrustDomain and StateDir are needed;
// everything else has a default.
type Config struct {
	TrustDomain spiffeid.TrustDomain
	StateDir    string // datastore, CA keys, admin socket
	BindAddr    string // agent API; default 127.0.0.1:8081
	HealthAddr  string // /live and /ready; "" disables
	AdminSocket string // default <StateDir>/admin.sock

	CATTL, SVIDTTL, JWTTTL time.Duration // defaults 24h, 1h, 5m
	KeyType                string        // CA key type, default ec-p256
	UpstreamCertFile       string        // intermediate mode
	UpstreamKeyFile        string
	JoinTokenTTL           time.Duration // default 10m
	// RotationInterval is how often the CA and the server SVID are checked
	// for rotation; default 10s, as SPIRE's rotator.
	RotationInterval time.Duration

	Logger *slog.Logger
	Clock  func() time.Time
}

// Server is a running identity server.
type Server struct {
	cfg   Config
	log   *slog.Logger
	store *datastore.SQLite
	ca    *ca.CA

	mu       sync.Mutex
	revision int64         // bumps on every change agents must see
	changed  chan struct{} // closed and replaced on every change
	tlsCert  *tls.Certificate

	ready     chan struct{}
	agentAddr net.Addr
	attestors map[string]NodeAttestor
}

// New opens the state directory (creating it), the datastore and the CA.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.TrustDomain.IsZero() {
		return nil, errors.New("a trust domain is required")
	}
	if cfg.StateDir == "" {
		return nil, errors.New("a state directory is required")
	}
	if cfg.BindAddr == "" {
		cfg.BindAddr = "127.0.0.1:8081"
	}
	if cfg.AdminSocket == "" {
		cfg.AdminSocket = filepath.Join(cfg.StateDir, "admin.sock")
	}
	if cfg.RotationInterval == 0 {
		cfg.RotationInterval = 10 * time.Second
	}
	if cfg.JoinTokenTTL == 0 {
		cfg.JoinTokenTTL = 10 * time.Minute
	}
	if cfg.SVIDTTL == 0 {
		cfg.SVIDTTL = time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	store, err := datastore.OpenSQLite(filepath.Join(cfg.StateDir, "datastore.sqlite3"))
	if err != nil {
		return nil, fmt.Errorf("datastore: %w", err)
	}
	authority, err := ca.New(ctx, ca.Config{
		TrustDomain: cfg.TrustDomain, CATTL: cfg.CATTL, SVIDTTL: cfg.SVIDTTL, JWTTTL: cfg.JWTTTL,
		KeyType: cfg.KeyType, UpstreamCertFile: cfg.UpstreamCertFile, UpstreamKeyFile: cfg.UpstreamKeyFile,
		KeyDir: filepath.Join(cfg.StateDir, "keys"), Clock: cfg.Clock,
	}, store)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("CA: %w", err)
	}
	rev, err := store.EntriesRevision(ctx)
	if err != nil {
		store.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, store: store, ca: authority, revision: rev, changed: make(chan struct{}), ready: make(chan struct{})}
	s.attestors = map[string]NodeAttestor{nodeapi.AttestorJoinToken: joinTokenAttestor{s}}
	if err := s.renewServerSVID(ctx); err != nil {
		store.Close()
		return nil, err
	}
	return s, nil
}

// CA returns the server's certificate authority.
func (s *Server) CA() *ca.CA { return s.ca }

// Store returns the server's datastore.
func (s *Server) Store() datastore.Store { return s.store }

// Ready is closed once the server listens.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// AgentAddr is the address the agent API listens on, once Ready.
func (s *Server) AgentAddr() net.Addr { return s.agentAddr }

// Run serves the agent API, the admin socket and health checks, and
// rotates the CA and the server's own SVID, until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	defer s.store.Close()
	agentLn, err := net.Listen("tcp", s.cfg.BindAddr)
	if err != nil {
		return fmt.Errorf("agent API: %w", err)
	}
	os.Remove(s.cfg.AdminSocket)
	adminLn, err := net.Listen("unix", s.cfg.AdminSocket)
	if err != nil {
		agentLn.Close()
		return fmt.Errorf("admin socket: %w", err)
	}
	// Only the server's own user may use the admin API.
	if err := os.Chmod(s.cfg.AdminSocket, 0o600); err != nil {
		agentLn.Close()
		adminLn.Close()
		return err
	}
	servers := []*http.Server{
		{Handler: s.agentHandler(), TLSConfig: s.agentTLSConfig(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)},
		{Handler: s.adminHandler(), ReadHeaderTimeout: 10 * time.Second},
	}
	errc := make(chan error, 3)
	go func() { errc <- servers[0].ServeTLS(agentLn, "", "") }()
	go func() { errc <- servers[1].Serve(adminLn) }()
	if s.cfg.HealthAddr != "" {
		hl, err := net.Listen("tcp", s.cfg.HealthAddr)
		if err != nil {
			return fmt.Errorf("health listener: %w", err)
		}
		hs := &http.Server{Handler: s.healthHandler(), ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, hs)
		go func() { errc <- hs.Serve(hl) }()
	}
	s.agentAddr = agentLn.Addr()
	s.log.Info("server started", "trustDomain", s.cfg.TrustDomain.String(), "agentAPI", agentLn.Addr().String(), "adminSocket", s.cfg.AdminSocket)
	close(s.ready)

	tick := time.NewTicker(s.cfg.RotationInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			for _, srv := range servers {
				srv.Shutdown(shutdown)
			}
			cancel()
			os.Remove(s.cfg.AdminSocket)
			return nil
		case err := <-errc:
			if errors.Is(err, http.ErrServerClosed) {
				continue
			}
			return err
		case <-tick.C:
			s.rotate(ctx)
		}
	}
}

// rotate advances the CA through its rotation and renews the server's
// own SVID at half-life.
func (s *Server) rotate(ctx context.Context) {
	changed, err := s.ca.Rotate(ctx)
	if err != nil {
		s.log.Error("CA rotation failed", "error", err)
	}
	if changed {
		s.log.Info("CA rotated; bundle updated")
		s.bump()
	}
	s.mu.Lock()
	leaf := s.tlsCert.Leaf
	s.mu.Unlock()
	if now := s.cfg.Clock(); now.After(leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)) {
		if err := s.renewServerSVID(ctx); err != nil {
			s.log.Error("server SVID renewal failed", "error", err)
		}
	}
}

// Rotate runs one rotation step now, for tests and the admin API.
func (s *Server) Rotate(ctx context.Context) { s.rotate(ctx) }

// renewServerSVID signs a fresh SVID for the server's own TLS listener.
func (s *Server) renewServerSVID(ctx context.Context) error {
	key, csr, err := newCSR()
	if err != nil {
		return err
	}
	chain, err := s.ca.SignX509SVID(ctx, csr, identity.ServerID(s.cfg.TrustDomain), s.cfg.SVIDTTL, nil)
	if err != nil {
		return fmt.Errorf("server SVID: %w", err)
	}
	cert := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	s.mu.Lock()
	s.tlsCert = cert
	s.mu.Unlock()
	return nil
}

// bump records a change agents must see and wakes their sync requests.
func (s *Server) bump() {
	s.mu.Lock()
	s.revision++
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Server) state() (int64, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revision, s.changed
}

// newCSR makes a P-256 key and a CSR for it; the SPIFFE ID is set by the
// signer, not the request.
func newCSR() (crypto.Signer, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	return key, csr, err
}

// GetX509SVID returns the server's own SVID, as an x509svid.Source, for
// services hosted beside the agent API (policy distribution).
func (s *Server) GetX509SVID() (*x509svid.SVID, error) {
	s.mu.Lock()
	cert := s.tlsCert
	s.mu.Unlock()
	if cert == nil {
		return nil, errors.New("the server has no SVID yet")
	}
	chain := make([]*x509.Certificate, 0, len(cert.Certificate))
	for _, der := range cert.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		chain = append(chain, c)
	}
	return &x509svid.SVID{ID: identity.ServerID(s.cfg.TrustDomain), Certificates: chain, PrivateKey: cert.PrivateKey.(crypto.Signer)}, nil
}

// GetX509BundleForTrustDomain returns the CA's current X.509 authorities,
// as an x509bundle.Source.
func (s *Server) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if td != s.cfg.TrustDomain {
		return nil, fmt.Errorf("no bundle for trust domain %q", td)
	}
	return x509bundle.FromX509Authorities(td, s.ca.X509Authorities()), nil
}
