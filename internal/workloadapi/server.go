package workloadapi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/palisade-security/palisade/internal/identity"
)

// Cache is what the agent provides: the identities and bundles the
// Workload API serves.
//
// A Cache may also implement FederatedBundleSource to hand out the bundles
// of federated trust domains.
type Cache interface {
	// SVIDs returns the X.509-SVIDs a workload with these selectors is
	// entitled to (every entry whose selectors are a subset), default
	// first; nil when none.
	SVIDs(sel identity.Selectors) []*identity.SVID
	// X509Bundle returns the trust domain's X.509 authorities.
	X509Bundle() *x509bundle.Bundle
	// JWTBundle returns the trust domain's JWT authorities.
	JWTBundle() *jwtbundle.Bundle
	// FetchJWTSVID signs (or returns a cached) JWT-SVID for id and
	// audience.
	FetchJWTSVID(ctx context.Context, id spiffeid.ID, audience []string) (string, error)
	// Changes returns a channel that receives a value whenever SVIDs or
	// bundles change (rotation, new entries), and a cancel func. The
	// server drains it promptly and recomputes the full state on each
	// value, so a buffer of one with non-blocking sends is enough.
	Changes() (<-chan struct{}, func())
}

// FederatedBundleSource is implemented by a Cache that holds bundles of
// other trust domains. Workloads with an identity receive them in
// federated_bundles and FetchX509Bundles/FetchJWTBundles, and
// ValidateJWTSVID accepts their JWT-SVIDs (Workload API spec §4.6).
type FederatedBundleSource interface {
	// FederatedBundles returns the bundles of trust domains other than
	// the Cache's own (may be empty).
	FederatedBundles() []*spiffebundle.Bundle
}

// DefaultJitter is the largest random delay before a pushed update when
// Server.Jitter is zero.
const DefaultJitter = 250 * time.Millisecond

// shutdownGrace is how long Serve waits for calls in flight once its
// context is done before closing connections outright.
const shutdownGrace = 5 * time.Second

// Server serves the SPIFFE Workload API.
type Server struct {
	Cache    Cache
	Attestor Attestor     // nil means &UnixAttestor{}
	Logger   *slog.Logger // nil means slog.Default()
	// Jitter is the largest random delay before a stream pushes an update
	// caused by a change (never the first response, which the spec wants
	// at once). It spreads the reloads of the node's workloads after a
	// rotation (Workload API spec §4.3). Zero means DefaultJitter;
	// negative means none.
	Jitter time.Duration
}

const securityHeader = "workload.spiffe.io"

var workloadAPIPrefix = "/" + workload.SpiffeWorkloadAPI_ServiceDesc.ServiceName + "/"

// Serve serves the Workload API, grpc.health.v1 and gRPC reflection on l,
// which must be a unix socket listener (see Listen), until ctx is done.
// Then health turns NOT_SERVING, open streams end with Unavailable (so
// clients reconnect, to the next agent if there is one), calls in flight
// get shutdownGrace to finish, and Serve returns nil. It returns an error
// only if serving failed.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	if s.Cache == nil {
		return errors.New("workload API: Server.Cache is nil")
	}
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	att := s.Attestor
	if att == nil {
		att = &UnixAttestor{Logger: log}
	}
	jitter := s.Jitter
	if jitter == 0 {
		jitter = DefaultJitter
	}
	h := &handler{
		cache:    s.Cache,
		attestor: att,
		log:      log,
		jitter:   jitter,
		stopping: ctx.Done(),
	}

	gs := grpc.NewServer(
		grpc.Creds(&peerCredentials{log: log}),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			if err := h.checkSecurityHeader(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			return next(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
			if err := h.checkSecurityHeader(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return next(srv, ss)
		}),
	)
	workload.RegisterSpiffeWorkloadAPIServer(gs, h)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(workload.SpiffeWorkloadAPI_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)

	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(l) }()
	log.Info("workload API serving", "address", l.Addr().String())

	select {
	case err := <-errc:
		gs.Stop()
		return fmt.Errorf("workload API: %w", err)
	case <-ctx.Done():
	}
	hs.Shutdown()
	stopped := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(stopped)
	}()
	t := time.NewTimer(shutdownGrace)
	defer t.Stop()
	select {
	case <-stopped:
	case <-t.C:
		// A health Watch stream, or a client stuck in a call, would hold
		// GracefulStop forever.
		gs.Stop()
		<-stopped
	}
	<-errc
	log.Info("workload API stopped", "address", l.Addr().String())
	return nil
}

// checkSecurityHeader enforces the SSRF guard of Workload Endpoint spec §3:
// a Workload API request must carry workload.spiffe.io: true (exactly one
// value, case-sensitive), else InvalidArgument (§6), which clients do not
// retry. Like SPIRE (pkg/agent/endpoints/middleware.go) it applies to the
// SpiffeWorkloadAPI service only: health probes such as `spire-agent
// healthcheck` and reflection clients do not send it, and they hand out no
// identity.
func (h *handler) checkSecurityHeader(ctx context.Context, fullMethod string) error {
	if !strings.HasPrefix(fullMethod, workloadAPIPrefix) {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(securityHeader); len(v) == 1 && v[0] == "true" {
		return nil
	}
	args := []any{"method", fullMethod}
	if info, err := callerFromContext(ctx); err == nil {
		args = append(args, "pid", info.proc.PID)
	}
	h.log.InfoContext(ctx, "workload API request refused: security header missing", args...)
	return status.Error(codes.InvalidArgument, "security header missing from request")
}

// Listen creates the Workload API socket at path. The parent directory is
// created (0755) if missing, and a stale socket left by an agent that died
// is removed; a socket that still accepts connections is not, so that a
// second agent cannot steal the address of a running one. The socket is
// made 0777: any local process may connect, because callers are
// authenticated by attestation, not by file permissions (Workload Endpoint
// spec §5).
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("workload API socket: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("workload API socket: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("workload API socket: %s is in use by a running server", path)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("workload API socket: removing stale socket: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("workload API socket: %w", err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("workload API socket: %w", err)
	}
	// Closing the listener removes the socket file, so a clean stop leaves
	// nothing stale behind.
	l.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o777); err != nil {
		l.Close()
		return nil, fmt.Errorf("workload API socket: %w", err)
	}
	return l, nil
}

// handler implements workload.SpiffeWorkloadAPIServer for one Serve call.
type handler struct {
	workload.UnimplementedSpiffeWorkloadAPIServer

	cache    Cache
	attestor Attestor
	log      *slog.Logger
	jitter   time.Duration
	stopping <-chan struct{}
}

// caller is an attested caller of one RPC.
type caller struct {
	proc Process
	sel  identity.Selectors
	log  *slog.Logger
}

// attest identifies the caller of the RPC in ctx: the process from the
// connection's peer credentials, its selectors from the Attestor, then the
// peertracker check that the PID still names that process.
func (h *handler) attest(ctx context.Context, method string) (*caller, error) {
	log := h.log.With("method", method)
	info, err := callerFromContext(ctx)
	if err != nil {
		log.InfoContext(ctx, "workload API caller refused", "error", err)
		return nil, err
	}
	log = log.With("pid", info.proc.PID)
	sel, err := h.attestor.Attest(ctx, info.proc)
	if err != nil {
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		log.ErrorContext(ctx, "workload attestation failed", "error", err)
		return nil, status.Error(codes.Unavailable, "workload attestation failed")
	}
	if err := info.checkAlive(); err != nil {
		log.InfoContext(ctx, "workload API caller refused: not the process that connected", "error", err)
		return nil, err
	}
	log.DebugContext(ctx, "workload attested",
		"uid", info.proc.UID, "gid", info.proc.GID, "selectors", selectorStrings(sel))
	return &caller{proc: info.proc, sel: sel, log: log}, nil
}

// denied logs and returns the error for a caller without identity
// (Workload API spec §5.2.1, §6.2.1: PermissionDenied, which clients retry
// with backoff since entries may still be on their way).
func (c *caller) denied(ctx context.Context, msg string) error {
	c.log.InfoContext(ctx, "workload API request denied: "+msg, "selectors", selectorStrings(c.sel))
	return status.Error(codes.PermissionDenied, msg)
}

// svids returns the caller's X.509-SVIDs, default first, without any whose
// hint repeats an earlier one: hints must be unique within a response
// (Workload API spec §5.2.1), and the first is the one clients would pick.
func (h *handler) svids(c *caller) []*identity.SVID {
	all := h.cache.SVIDs(c.sel)
	out := make([]*identity.SVID, 0, len(all))
	hints := make(map[string]bool, len(all))
	for _, s := range all {
		if s == nil || len(s.Certificates) == 0 || s.PrivateKey == nil {
			c.log.Error("identity cache returned an incomplete X.509-SVID; skipped")
			continue
		}
		if s.Hint != "" {
			if hints[s.Hint] {
				c.log.Warn("X.509-SVID with a duplicate hint skipped", "spiffe_id", s.ID.String(), "hint", s.Hint)
				continue
			}
			hints[s.Hint] = true
		}
		out = append(out, s)
	}
	return out
}

func (h *handler) federated() []*spiffebundle.Bundle {
	if f, ok := h.cache.(FederatedBundleSource); ok {
		return f.FederatedBundles()
	}
	return nil
}

// FetchX509SVID streams the caller's X.509-SVIDs with bundles (Workload API
// spec §5.2.1).
func (h *handler) FetchX509SVID(_ *workload.X509SVIDRequest, stream grpc.ServerStreamingServer[workload.X509SVIDResponse]) error {
	ctx := stream.Context()
	c, err := h.attest(ctx, "FetchX509SVID")
	if err != nil {
		return err
	}
	return streamUpdates(ctx, h, func() (*workload.X509SVIDResponse, error) {
		svids := h.svids(c)
		if len(svids) == 0 {
			return nil, c.denied(ctx, "no identity issued")
		}
		return h.x509SVIDResponse(c, svids)
	}, func(r *workload.X509SVIDResponse) error {
		if err := stream.Send(r); err != nil {
			return err
		}
		ids := make([]string, len(r.Svids))
		for i, s := range r.Svids {
			ids[i] = s.SpiffeId
		}
		c.log.DebugContext(ctx, "X.509-SVIDs sent", "spiffe_ids", ids)
		return nil
	})
}

// FetchX509Bundles streams the X.509 bundles (Workload API spec §5.2.2).
// As in SPIRE (without allow_unauthenticated_verifiers), only a caller with
// an identity gets them.
func (h *handler) FetchX509Bundles(_ *workload.X509BundlesRequest, stream grpc.ServerStreamingServer[workload.X509BundlesResponse]) error {
	ctx := stream.Context()
	c, err := h.attest(ctx, "FetchX509Bundles")
	if err != nil {
		return err
	}
	return streamUpdates(ctx, h, func() (*workload.X509BundlesResponse, error) {
		if len(h.svids(c)) == 0 {
			return nil, c.denied(ctx, "no identity issued")
		}
		return h.x509BundlesResponse()
	}, stream.Send)
}

// FetchJWTBundles streams the JWT bundles as JWKS documents (Workload API
// spec §6.2.2), to callers with an identity as for FetchX509Bundles.
func (h *handler) FetchJWTBundles(_ *workload.JWTBundlesRequest, stream grpc.ServerStreamingServer[workload.JWTBundlesResponse]) error {
	ctx := stream.Context()
	c, err := h.attest(ctx, "FetchJWTBundles")
	if err != nil {
		return err
	}
	return streamUpdates(ctx, h, func() (*workload.JWTBundlesResponse, error) {
		if len(h.svids(c)) == 0 {
			return nil, c.denied(ctx, "no identity issued")
		}
		return h.jwtBundlesResponse()
	}, stream.Send)
}

// FetchJWTSVID returns JWT-SVIDs for the requested audience: for the one
// requested SPIFFE ID, or one for each of the caller's identities
// (Workload API spec §6.2.1).
func (h *handler) FetchJWTSVID(ctx context.Context, req *workload.JWTSVIDRequest) (*workload.JWTSVIDResponse, error) {
	if len(req.Audience) == 0 {
		// §4.5: a mandatory field at its default value.
		return nil, status.Error(codes.InvalidArgument, "audience must be specified")
	}
	var want spiffeid.ID
	if req.SpiffeId != "" {
		var err error
		if want, err = spiffeid.FromString(req.SpiffeId); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "invalid requested SPIFFE ID: %v", err)
		}
	}
	c, err := h.attest(ctx, "FetchJWTSVID")
	if err != nil {
		return nil, err
	}
	resp := &workload.JWTSVIDResponse{}
	// Two entries can grant the same ID with the same hint; their JWT-SVIDs
	// would be identical, so one is enough.
	type idHint struct {
		id   spiffeid.ID
		hint string
	}
	seen := make(map[idHint]bool)
	for _, s := range h.svids(c) {
		k := idHint{s.ID, s.Hint}
		if (!want.IsZero() && s.ID != want) || seen[k] {
			continue
		}
		seen[k] = true
		tok, err := h.cache.FetchJWTSVID(ctx, s.ID, req.Audience)
		if err != nil {
			c.log.ErrorContext(ctx, "could not fetch JWT-SVID", "spiffe_id", s.ID.String(), "error", err)
			return nil, status.Errorf(codes.Unavailable, "could not fetch JWT-SVID: %v", err)
		}
		resp.Svids = append(resp.Svids, &workload.JWTSVID{SpiffeId: s.ID.String(), Svid: tok, Hint: s.Hint})
	}
	if len(resp.Svids) == 0 {
		if !want.IsZero() {
			return nil, c.denied(ctx, "no identity issued for "+want.String())
		}
		return nil, c.denied(ctx, "no identity issued")
	}
	c.log.DebugContext(ctx, "JWT-SVIDs issued", "count", len(resp.Svids), "audience", req.Audience)
	return resp, nil
}

// ValidateJWTSVID validates a JWT-SVID for the caller against the JWT
// bundles of its trust domain and of federated ones (Workload API spec
// §6.2.3, JWT-SVID spec §4). As in SPIRE the caller needs no identity of
// its own: validation hands out nothing secret.
func (h *handler) ValidateJWTSVID(ctx context.Context, req *workload.ValidateJWTSVIDRequest) (*workload.ValidateJWTSVIDResponse, error) {
	if req.Audience == "" {
		return nil, status.Error(codes.InvalidArgument, "audience must be specified")
	}
	if req.Svid == "" {
		return nil, status.Error(codes.InvalidArgument, "svid must be specified")
	}
	c, err := h.attest(ctx, "ValidateJWTSVID")
	if err != nil {
		return nil, err
	}
	resp, err := h.validateJWTSVID(req.Svid, req.Audience)
	if err != nil {
		c.log.InfoContext(ctx, "JWT-SVID validation failed", "audience", req.Audience, "error", err)
		return nil, err
	}
	c.log.DebugContext(ctx, "JWT-SVID validated", "spiffe_id", resp.SpiffeId, "audience", req.Audience)
	return resp, nil
}

// FetchWITSVID is not implemented: the WIT-SVID profile is optional, and a
// server without it MUST return Unimplemented (Workload API spec §7).
func (h *handler) FetchWITSVID(*workload.WITSVIDRequest, grpc.ServerStreamingServer[workload.WITSVIDResponse]) error {
	return status.Error(codes.Unimplemented, "fetching WIT-SVIDs is not implemented")
}

// FetchWITBundles is not implemented, as FetchWITSVID.
func (h *handler) FetchWITBundles(*workload.WITBundlesRequest, grpc.ServerStreamingServer[workload.WITBundlesResponse]) error {
	return status.Error(codes.Unimplemented, "fetching WIT bundles is not implemented")
}

// streamUpdates runs a Workload API stream (Workload API spec §4.3): the
// full state at once, then again after each change signal, a random delay
// of up to the jitter later, and only when it differs from what was last
// sent. compute returning an error (PermissionDenied when the caller has
// lost every identity) ends the stream with it.
func streamUpdates[T proto.Message](ctx context.Context, h *handler, compute func() (T, error), send func(T) error) error {
	// Subscribe before computing the first response, so that a change
	// landing in between is not missed.
	changes, cancel := h.cache.Changes()
	defer cancel()
	var last T
	sent := false
	for {
		resp, err := compute()
		if err != nil {
			return err
		}
		if !sent || !proto.Equal(resp, last) {
			if err := send(resp); err != nil {
				return err
			}
			last, sent = resp, true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-h.stopping:
			return status.Error(codes.Unavailable, "workload API is shutting down")
		case _, ok := <-changes:
			if !ok {
				return status.Error(codes.Unavailable, "identity cache closed")
			}
		}
		if err := h.splay(ctx); err != nil {
			return err
		}
		// Changes during the delay are covered by the compute below.
		select {
		case <-changes:
		default:
		}
	}
}

// splay waits a random time in [0, jitter).
func (h *handler) splay(ctx context.Context) error {
	if h.jitter <= 0 {
		return nil
	}
	t := time.NewTimer(rand.N(h.jitter))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case <-h.stopping:
		return status.Error(codes.Unavailable, "workload API is shutting down")
	}
}

func selectorStrings(sel identity.Selectors) []string {
	out := make([]string, len(sel))
	for i, s := range sel {
		out[i] = s.String()
	}
	return out
}
