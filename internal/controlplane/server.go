package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/palisade-security/palisade/internal/engine"
)

// Defaults of the Server's tunables.
const (
	DefaultPollInterval = 500 * time.Millisecond
	DefaultStatInterval = 100 * time.Millisecond
	DefaultSettle       = 100 * time.Millisecond
)

// Server publishes the policy read from its sources and streams it to
// proxies. Set its fields, then run Watch and Serve; it must not be copied
// after first use.
type Server struct {
	// Sources are files and directories, read as `palisade check -f`
	// reads them.
	Sources []string
	// CiliumValues is a Cilium Helm values file, as `--cilium-values`.
	CiliumValues string

	// SVIDs is the server's X.509-SVID and Bundles the trust bundles its
	// proxies' SVIDs are verified with, such as a workloadapi.X509Source.
	SVIDs   x509svid.Source
	Bundles x509bundle.Source
	// TrustDomain is the trust domain proxies must belong to; zero means
	// the server's own.
	TrustDomain spiffeid.TrustDomain

	// PollInterval is how often Watch reads every source file, and
	// StatInterval how often it looks at their metadata for a change in
	// between; zero means DefaultPollInterval and DefaultStatInterval.
	PollInterval time.Duration
	StatInterval time.Duration
	// Settle is how long new content must stay unchanged before Watch
	// publishes it, so that a file caught half-written (an editor or a
	// script writing in place) is not published with its last documents
	// missing. It is checked at StatInterval ticks, so it lasts a whole
	// number of them. Zero means DefaultSettle; negative publishes at once.
	Settle time.Duration

	Logger *slog.Logger // nil: no logging

	loadMu sync.Mutex // serialises reading and publishing

	once    sync.Once
	mu      sync.Mutex
	seq     uint64
	current *version
	changed chan struct{} // closed and replaced when current changes
	proxies map[*proxyConn]struct{}
}

// Version describes a published version.
type Version struct {
	ID     string // "N-HASH", as sent to proxies
	Number uint64
	Hash   string // hex SHA-256 of the content
	// Documents is the number of source files.
	Documents int
	// LeftOut counts the problems that left documents out (decoding
	// errors), and Rejected the resources istiod or Cilium would reject;
	// both are logged when the version is published.
	LeftOut  int
	Rejected int
	// DetectedAt is when Watch first read the new content, PublishedAt when
	// it was published.
	DetectedAt  time.Time
	PublishedAt time.Time
}

type version struct {
	Version
	resp Response // without its nonce
}

// ProxyStatus is the state of one connected proxy.
type ProxyStatus struct {
	Node        string      // workload, "namespace/name", as the proxy names itself
	Peer        spiffeid.ID // from the proxy's verified SVID
	Addr        string      // the proxy's network address
	ConnectedAt time.Time
	// AckedVersion is the version the proxy has applied: the last it
	// acknowledged, or the one it had when it connected.
	AckedVersion string
	AckedAt      time.Time
	// PendingVersion is a version sent and not yet answered, SentAt when.
	PendingVersion string
	SentAt         time.Time
	LastNack       *Nack // nil if the proxy has rejected nothing
}

// Nack is a version a proxy rejected.
type Nack struct {
	Version string
	Detail  string
	At      time.Time
}

type proxyConn struct {
	status ProxyStatus // guarded by Server.mu
}

func (s *Server) init() {
	s.once.Do(func() {
		s.changed = make(chan struct{})
		s.proxies = map[*proxyConn]struct{}{}
	})
}

func (s *Server) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// Current returns the version being served; false before the first.
func (s *Server) Current() (Version, bool) {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		return Version{}, false
	}
	return s.current.Version, true
}

// Status returns the connected proxies, by node.
func (s *Server) Status() []ProxyStatus {
	s.init()
	s.mu.Lock()
	out := make([]ProxyStatus, 0, len(s.proxies))
	for p := range s.proxies {
		st := p.status
		if st.LastNack != nil {
			n := *st.LastNack
			st.LastNack = &n
		}
		out = append(out, st)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Node != out[j].Node {
			return out[i].Node < out[j].Node
		}
		return out[i].ConnectedAt.Before(out[j].ConnectedAt)
	})
	return out
}

// Reload reads the sources now and publishes their content if it changed,
// without waiting for it to settle. It returns the version being served. If
// the sources cannot be read, the previous version stays in service and the
// error says why.
func (s *Server) Reload() (Version, error) {
	s.init()
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	docs, values, _, err := readSources(s.Sources, s.CiliumValues)
	if err != nil {
		cur, _ := s.Current()
		return cur, fmt.Errorf("reading sources: %w", err)
	}
	return s.publish(docs, values, contentHash(docs, values), time.Now())
}

// Watch watches the sources until ctx is done, publishing their content
// when it has changed and settled. Every StatInterval it lists the files and
// compares their metadata with what it last read, which notices a change
// within that interval at the cost of a stat per file; every PollInterval it
// reads every file whatever the metadata says, which catches the changes
// metadata can hide (a file rewritten with the same size within the file
// system's clock granularity). Polling rather than inotify keeps it one
// simple code path that works the same on every file system, including
// network ones and ConfigMap volumes.
func (s *Server) Watch(ctx context.Context) error {
	s.init()
	poll := s.PollInterval
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	statEvery := s.StatInterval
	if statEvery <= 0 {
		statEvery = DefaultStatInterval
	}
	statEvery = min(statEvery, poll)
	settle := s.Settle
	if settle == 0 {
		settle = DefaultSettle
	}
	log := s.log()
	var (
		lastRead    time.Time
		fingerprint string // of the files as last read
		pending     string // hash of changed content waiting to settle
		pendingAt   time.Time
		pendingDue  time.Time
		lastErr     string
	)
	ticker := time.NewTicker(statEvery)
	defer ticker.Stop()
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-ticker.C:
			}
		}
		now := time.Now()
		// Half a tick of slack: ticks drift by microseconds, and a tick
		// just short of a deadline would otherwise cost a whole interval.
		slack := statEvery / 2
		read := now.Sub(lastRead) >= poll-slack || (pending != "" && !now.Before(pendingDue.Add(-slack)))
		if !read {
			_, fp, err := listSources(s.Sources, s.CiliumValues)
			read = err != nil || fp != fingerprint
		}
		if !read {
			continue
		}
		lastRead = now
		docs, values, fp, err := readSources(s.Sources, s.CiliumValues)
		if err != nil {
			// Logged once per distinct error, not at every look.
			if msg := err.Error(); msg != lastErr {
				cur, _ := s.Current()
				log.Error("cannot read the policy sources; still serving the previous version", "err", err, "version", cur.ID)
				lastErr = msg
			}
			pending, fingerprint = "", ""
			continue
		}
		if lastErr != "" {
			log.Info("policy sources readable again")
			lastErr = ""
		}
		fingerprint = fp
		hash := contentHash(docs, values)
		cur, _ := s.Current()
		switch {
		case hash == cur.Hash:
			pending = ""
		case settle > 0 && hash != pending:
			// New, or still changing: wait for it to stay put.
			if pending == "" {
				pendingAt = now
			}
			pending, pendingDue = hash, now.Add(settle)
		case settle > 0 && now.Before(pendingDue.Add(-slack)):
			// Unchanged since, but not for long enough yet.
		default:
			detected := pendingAt
			if pending == "" {
				detected = now
			}
			pending = ""
			s.loadMu.Lock()
			_, err := s.publish(docs, values, hash, detected)
			s.loadMu.Unlock()
			if err != nil {
				log.Error("cannot publish the policy", "err", err)
			}
		}
	}
}

// publish makes the content the current version unless it already is. The
// caller holds loadMu.
func (s *Server) publish(docs []Document, values *Document, hash string, detected time.Time) (Version, error) {
	if cur, ok := s.Current(); ok && cur.Hash == hash {
		return cur, nil
	}
	log := s.log()
	snap, loadErrs := ParseDocuments(docs, values)
	// The engine is built only to validate: it reports what istiod or
	// Cilium would reject, which proxies will leave out as well.
	eng := engine.New(snap, engine.Options{})
	for _, e := range loadErrs {
		log.Warn("left out of the policy", "problem", e.Error())
	}
	for _, r := range eng.Rejected {
		log.Warn("rejected as istiod or Cilium would", "object", r.Object, "at", r.Source.String(), "reason", r.Reason, "more", r.More)
	}

	s.mu.Lock()
	n := s.seq + 1
	s.mu.Unlock()
	id := versionID(n, hash)
	resp, err := newResponse(id, docs, values)
	if err != nil {
		return Version{}, err
	}
	v := &version{
		Version: Version{
			ID: id, Number: n, Hash: hash, Documents: len(docs),
			LeftOut: len(loadErrs), Rejected: len(eng.Rejected),
			DetectedAt: detected, PublishedAt: time.Now(),
		},
		resp: resp,
	}
	s.mu.Lock()
	s.seq = n
	s.current = v
	close(s.changed)
	s.changed = make(chan struct{})
	proxies := len(s.proxies)
	s.mu.Unlock()
	log.Info("published policy version", "version", id, "documents", len(docs),
		"left_out", len(loadErrs), "rejected", len(eng.Rejected), "proxies", proxies)
	return v.Version, nil
}

// NewGRPCServer returns a gRPC server with the policy service, listening
// with mTLS: the server's SVID, proxies verified against Bundles and
// authorised as members of TrustDomain. Further options are appended; other
// services may be registered on it too.
func (s *Server) NewGRPCServer(opts ...grpc.ServerOption) (*grpc.Server, error) {
	s.init()
	if s.SVIDs == nil || s.Bundles == nil {
		return nil, errors.New("controlplane: the server needs an SVID source and a bundle source")
	}
	td := s.TrustDomain
	if td.IsZero() {
		svid, err := s.SVIDs.GetX509SVID()
		if err != nil {
			return nil, fmt.Errorf("controlplane: the server's SVID: %w", err)
		}
		td = svid.ID.TrustDomain()
	}
	tc := tlsconfig.MTLSServerConfig(s.SVIDs, s.Bundles, tlsconfig.AuthorizeMemberOf(td))
	tc.MinVersion = tls.VersionTLS13 // every party is Palisade's own
	base := []grpc.ServerOption{
		grpc.Creds(credentials.NewTLS(tc)),
		// Pings find proxies that vanished without closing their
		// connection; the policy lets proxies ping as often as they do.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	g := grpc.NewServer(append(base, opts...)...)
	g.RegisterService(&serviceDesc, s)
	return g, nil
}

// Serve serves the policy service on lis until ctx is done, then closes
// every stream and returns nil. Streams are long-lived, so stopping does not
// wait for them: proxies keep their configuration and reconnect.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	g, err := s.NewGRPCServer()
	if err != nil {
		lis.Close()
		return err
	}
	stop := context.AfterFunc(ctx, g.Stop)
	defer stop()
	return g.Serve(lis)
}

// peerID returns the SPIFFE ID of the stream's verified client certificate.
// Streams without one are refused, so that the service cannot be exposed
// without mTLS by registering it on a plaintext server.
func peerID(ctx context.Context) (spiffeid.ID, string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return spiffeid.ID{}, "", errors.New("no peer")
	}
	addr := ""
	if p.Addr != nil {
		addr = p.Addr.String()
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return spiffeid.ID{}, addr, errors.New("no client certificate")
	}
	id, err := x509svid.IDFromCert(ti.State.PeerCertificates[0])
	return id, addr, err
}

// validNode accepts "namespace/name", the form a workload is named in, so
// that per-workload filtering can rely on it; 317 is the longest Kubernetes
// allows (a 63-character namespace, a 253-character name).
func validNode(node string) bool {
	ns, name, ok := strings.Cut(node, "/")
	return ok && ns != "" && name != "" && !strings.Contains(name, "/") && len(node) <= 317
}

// handleStream serves one proxy: sends the current version whenever the
// proxy has answered the previous one and something new is there, and
// records its answers.
func (s *Server) handleStream(ss grpc.ServerStream) error {
	s.init()
	ctx := ss.Context()
	id, addr, err := peerID(ctx)
	if err != nil {
		return status.Errorf(codes.Unauthenticated, "controlplane: %v", err)
	}
	var first Request
	if err := ss.RecvMsg(&first); err != nil {
		return err
	}
	if !validNode(first.Node) {
		return status.Errorf(codes.InvalidArgument, "controlplane: node %q: want namespace/name", first.Node)
	}
	log := s.log().With("node", first.Node, "peer", id.String())

	p := &proxyConn{status: ProxyStatus{
		Node: first.Node, Peer: id, Addr: addr, ConnectedAt: time.Now(),
		AckedVersion: first.VersionInfo,
	}}
	s.mu.Lock()
	s.proxies[p] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.proxies, p)
		s.mu.Unlock()
	}()
	// Headers tell the proxy it was accepted, before any Response (there
	// is none if it is already up to date).
	if err := ss.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	log.Info("proxy connected", "version", first.VersionInfo)

	// Receiving runs on its own goroutine so that the loop below can wait
	// for an answer and for a new version at once.
	reqs := make(chan Request)
	recvErr := make(chan error, 1)
	go func() {
		for {
			var r Request
			if err := ss.RecvMsg(&r); err != nil {
				recvErr <- err
				return
			}
			select {
			case reqs <- r:
			case <-ctx.Done():
				return
			}
		}
	}()

	var (
		acked   = first.VersionInfo // what the proxy has applied
		nacked  string              // the last version it rejected
		sent    *version            // awaiting an answer, or nil
		nonce   string
		counter uint64
	)
	for {
		s.mu.Lock()
		cur, changed := s.current, s.changed
		s.mu.Unlock()
		if sent == nil && cur != nil && cur.ID != acked && cur.ID != nacked {
			counter++
			nonce = strconv.FormatUint(counter, 10)
			resp := cur.resp
			resp.Nonce = nonce
			if err := ss.SendMsg(&resp); err != nil {
				return err
			}
			sent = cur
			s.mu.Lock()
			p.status.PendingVersion, p.status.SentAt = cur.ID, time.Now()
			s.mu.Unlock()
			log.Debug("sent policy version", "version", cur.ID, "nonce", nonce)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-recvErr:
			if err == io.EOF {
				log.Info("proxy disconnected")
				return nil
			}
			log.Info("proxy disconnected", "err", err)
			return err
		case <-changed:
		case r := <-reqs:
			if sent == nil || r.ResponseNonce != nonce {
				// An answer to an older Response, or none: the state of
				// the world protocol only heeds the latest.
				log.Debug("ignoring a stale request", "nonce", r.ResponseNonce)
				continue
			}
			now := time.Now()
			detail := r.ErrorDetail
			if detail == "" && r.VersionInfo != sent.ID {
				detail = fmt.Sprintf("acknowledged version %q, but %q was sent", r.VersionInfo, sent.ID)
			}
			s.mu.Lock()
			p.status.PendingVersion, p.status.SentAt = "", time.Time{}
			if detail == "" {
				acked, nacked = sent.ID, ""
				p.status.AckedVersion, p.status.AckedAt = sent.ID, now
			} else {
				nacked = sent.ID
				p.status.LastNack = &Nack{Version: sent.ID, Detail: detail, At: now}
			}
			s.mu.Unlock()
			if detail == "" {
				log.Debug("proxy applied policy version", "version", sent.ID)
			} else {
				log.Warn("proxy rejected policy version", "version", sent.ID, "kept", r.VersionInfo, "detail", detail)
			}
			sent = nil
		}
	}
}
