package workloadapi

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	spiffewl "github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/palisade-security/palisade/internal/identity"
)

const (
	td       = "example.org"
	webID    = "spiffe://example.org/ns/default/sa/web"
	backupID = "spiffe://example.org/backup"
)

// newSelfCache returns a cache whose entries are keyed to the test process
// itself: webID on uid + sha256 (the default), backupID on gid + path.
func newSelfCache(t testing.TB) (*testCache, self) {
	t.Helper()
	me := getSelf(t)
	cache := newTestCache(newTestCA(t, td))
	cache.add(t, webID, "internal", sel("uid", me.uid), sel("sha256", me.sha256))
	cache.add(t, backupID, "external", sel("gid", me.gid), sel("path", me.path))
	return cache, me
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want code %v", err, code)
	}
}

func TestX509SourceGetsSVIDAndBundle(t *testing.T) {
	cache, _ := newSelfCache(t)
	ts := startServer(t, cache, &UnixAttestor{DiscoverPath: true})
	ctx := testCtx(t)

	src, err := spiffewl.NewX509Source(ctx, spiffewl.WithClientOptions(spiffewl.WithAddr(ts.addr)))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	svid, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	if svid.ID.String() != webID {
		t.Fatalf("default SVID is %s, want the first entry %s", svid.ID, webID)
	}
	if svid.Hint != "internal" {
		t.Errorf("hint %q, want internal", svid.Hint)
	}
	// go-spiffe already parsed the chain and the PKCS#8 key and checked
	// they match; verify the chain against the bundle it received.
	if _, _, err := x509svid.Verify(svid.Certificates, src); err != nil {
		t.Fatalf("SVID does not verify against the served bundle: %v", err)
	}
	b, err := src.GetX509BundleForTrustDomain(spiffeid.RequireTrustDomainFromString(td))
	if err != nil {
		t.Fatal(err)
	}
	if !b.HasX509Authority(cache.ca.cert) {
		t.Fatal("served bundle lacks the CA certificate")
	}

	// Both identities, default first.
	client, err := spiffewl.New(ctx, spiffewl.WithAddr(ts.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	all, err := client.FetchX509SVIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ID.String() != webID || all[1].ID.String() != backupID {
		t.Fatalf("got %d SVIDs %v, want [%s %s]", len(all), all, webID, backupID)
	}
	bundles, err := client.FetchX509Bundles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bundles.Len() != 1 || !bundles.Has(spiffeid.RequireTrustDomainFromString(td)) {
		t.Fatalf("X.509 bundles: %v", bundles.Bundles())
	}
}

func TestX509SVIDResponseEncoding(t *testing.T) {
	cache, _ := newSelfCache(t)
	ts := startServer(t, cache, &UnixAttestor{DiscoverPath: true})
	_, c := rawClient(t, ts.addr)
	ctx := withHeader(testCtx(t))

	stream, err := c.FetchX509SVID(ctx, &workload.X509SVIDRequest{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Svids) != 2 {
		t.Fatalf("%d SVIDs, want 2", len(resp.Svids))
	}
	s := resp.Svids[0]
	certs, err := x509.ParseCertificates(s.X509Svid)
	if err != nil || len(certs) != 1 {
		t.Fatalf("x509_svid is not a DER chain: %v (%d certs)", err, len(certs))
	}
	if _, err := x509.ParsePKCS8PrivateKey(s.X509SvidKey); err != nil {
		t.Fatalf("x509_svid_key is not PKCS#8 DER: %v", err)
	}
	roots, err := x509.ParseCertificates(s.Bundle)
	if err != nil || len(roots) != 1 || !roots[0].Equal(cache.ca.cert) {
		t.Fatalf("bundle is not the CA as concatenated DER: %v", err)
	}
	if s.SpiffeId != webID || s.Hint != "internal" {
		t.Fatalf("svid %q hint %q", s.SpiffeId, s.Hint)
	}
}

func TestJWTSourceAndValidate(t *testing.T) {
	cache, _ := newSelfCache(t)
	ts := startServer(t, cache, &UnixAttestor{DiscoverPath: true})
	ctx := testCtx(t)

	src, err := spiffewl.NewJWTSource(ctx, spiffewl.WithClientOptions(spiffewl.WithAddr(ts.addr)))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	svid, err := src.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "db"})
	if err != nil {
		t.Fatal(err)
	}
	if svid.ID.String() != webID {
		t.Fatalf("JWT-SVID for %s, want default %s", svid.ID, webID)
	}
	// The JWTSource's own bundles (from FetchJWTBundles) validate it.
	if _, err := jwtsvid.ParseAndValidate(svid.Marshal(), src, []string{"db"}); err != nil {
		t.Fatalf("JWT-SVID does not validate against the served JWT bundle: %v", err)
	}

	client, err := spiffewl.New(ctx, spiffewl.WithAddr(ts.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	got, err := client.ValidateJWTSVID(ctx, svid.Marshal(), "db")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID.String() != webID {
		t.Fatalf("validated %s", got.ID)
	}
	if _, err := client.ValidateJWTSVID(ctx, svid.Marshal(), "other"); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("wrong audience: %v, want InvalidArgument", err)
	}

	// One JWT-SVID per identity without spiffe_id; the requested one with.
	all, err := client.FetchJWTSVIDs(ctx, jwtsvid.Params{Audience: "db"})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ID.String() != webID || all[1].ID.String() != backupID {
		t.Fatalf("FetchJWTSVIDs: %v", all)
	}
	one, err := client.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "db", Subject: spiffeid.RequireFromString(backupID)})
	if err != nil || one.ID.String() != backupID {
		t.Fatalf("FetchJWTSVID(%s): %v %v", backupID, one, err)
	}
	_, err = client.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "db", Subject: spiffeid.RequireFromString("spiffe://example.org/not-mine")})
	wantCode(t, err, codes.PermissionDenied)

	// The raw response carries the claims; aud is a list as in SPIRE.
	_, raw := rawClient(t, ts.addr)
	resp, err := raw.ValidateJWTSVID(withHeader(ctx), &workload.ValidateJWTSVIDRequest{Svid: svid.Marshal(), Audience: "db"})
	if err != nil {
		t.Fatal(err)
	}
	claims := resp.Claims.AsMap()
	if resp.SpiffeId != webID || claims["sub"] != webID || claims["palisade_test"] != "yes" {
		t.Fatalf("response %q claims %v", resp.SpiffeId, claims)
	}
	if aud, ok := claims["aud"].([]any); !ok || len(aud) != 1 || aud[0] != "db" {
		t.Fatalf("aud claim %#v, want [db]", claims["aud"])
	}
	if _, ok := claims["exp"].(float64); !ok {
		t.Fatalf("exp claim %#v", claims["exp"])
	}
}

func TestJWTBundlesJWKS(t *testing.T) {
	cache, _ := newSelfCache(t)
	ts := startServer(t, cache, &UnixAttestor{DiscoverPath: true})
	ctx := testCtx(t)

	client, err := spiffewl.New(ctx, spiffewl.WithAddr(ts.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	set, err := client.FetchJWTBundles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := set.Get(spiffeid.RequireTrustDomainFromString(td))
	if !ok || !b.HasJWTAuthority(cache.ca.kid) {
		t.Fatalf("JWT bundle lacks key %q", cache.ca.kid)
	}

	_, raw := rawClient(t, ts.addr)
	stream, err := raw.FetchJWTBundles(withHeader(ctx), &workload.JWTBundlesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var jwks struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(resp.Bundles["spiffe://"+td], &jwks); err != nil {
		t.Fatalf("bundle is not a JWKS: %v", err)
	}
	if len(jwks.Keys) != 1 || jwks.Keys[0]["use"] != "jwt-svid" || jwks.Keys[0]["kid"] != cache.ca.kid {
		t.Fatalf("JWKS keys %v, want one with use jwt-svid and kid %s", jwks.Keys, cache.ca.kid)
	}
}

type contextWatcher struct{ updates chan *spiffewl.X509Context }

func (w contextWatcher) OnX509ContextUpdate(c *spiffewl.X509Context) { w.updates <- c }
func (w contextWatcher) OnX509ContextWatchError(error)               {}

func TestWatchX509ContextRotation(t *testing.T) {
	cache, _ := newSelfCache(t)
	ts := startServer(t, cache, &UnixAttestor{DiscoverPath: true})
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()

	client, err := spiffewl.New(ctx, spiffewl.WithAddr(ts.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	w := contextWatcher{updates: make(chan *spiffewl.X509Context, 16)}
	watchDone := make(chan error, 1)
	go func() { watchDone <- client.WatchX509Context(ctx, w) }()

	first := recvContext(t, w.updates)
	oldSerial := first.DefaultSVID().Certificates[0].SerialNumber
	if first.DefaultSVID().ID.String() != webID {
		t.Fatalf("default %s", first.DefaultSVID().ID)
	}

	rotated := cache.rotate(t, webID)
	next := recvContext(t, w.updates)
	got := next.DefaultSVID().Certificates[0].SerialNumber
	if got.Cmp(rotated.Certificates[0].SerialNumber) != 0 || got.Cmp(oldSerial) == 0 {
		t.Fatalf("after rotation got serial %x, want the new %x (old %x)", got, rotated.Certificates[0].SerialNumber, oldSerial)
	}

	// A change signal with nothing changed sends nothing (§4.3: updates
	// are driven by changes to the response).
	cache.notify()
	select {
	case c := <-w.updates:
		t.Fatalf("unexpected update with serial %x", c.DefaultSVID().Certificates[0].SerialNumber)
	case <-time.After(300 * time.Millisecond):
	}

	// A new federated bundle is pushed too.
	fed := newTestCA(t, "partner.example")
	cache.setFederated(spiffebundle.FromX509Authorities(fed.td, []*x509.Certificate{fed.cert}))
	withFed := recvContext(t, w.updates)
	if !withFed.Bundles.Has(fed.td) {
		t.Fatal("federated bundle not pushed")
	}

	cancel()
	if err := <-watchDone; status.Code(err) != codes.Canceled && !errors.Is(err, context.Canceled) {
		t.Fatalf("watch ended with %v", err)
	}
}

func recvContext(t *testing.T, ch <-chan *spiffewl.X509Context) *spiffewl.X509Context {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no X.509 context update")
		return nil
	}
}

func TestFederatedBundles(t *testing.T) {
	cache, _ := newSelfCache(t)
	fed := newTestCA(t, "partner.example")
	fb := spiffebundle.FromX509Authorities(fed.td, []*x509.Certificate{fed.cert})
	if err := fb.AddJWTAuthority(fed.kid, fed.jwtKey.Public()); err != nil {
		t.Fatal(err)
	}
	cache.setFederated(fb)
	ts := startServer(t, cache, &UnixAttestor{DiscoverPath: true})
	ctx := testCtx(t)
	client, err := spiffewl.New(ctx, spiffewl.WithAddr(ts.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	x509ctx, err := client.FetchX509Context(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !x509ctx.Bundles.Has(fed.td) {
		t.Fatal("federated X.509 bundle missing from FetchX509SVID")
	}
	xb, err := client.FetchX509Bundles(ctx)
	if err != nil || !xb.Has(fed.td) {
		t.Fatalf("federated X.509 bundle missing from FetchX509Bundles: %v", err)
	}
	jb, err := client.FetchJWTBundles(ctx)
	if err != nil || !jb.Has(fed.td) {
		t.Fatalf("federated JWT bundle missing from FetchJWTBundles: %v", err)
	}
	// A JWT-SVID of the federated trust domain validates here.
	tok, err := fed.signJWT(spiffeid.RequireFromString("spiffe://partner.example/api"), []string{"db"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.ValidateJWTSVID(ctx, tok, "db"); err != nil {
		t.Fatalf("federated JWT-SVID: %v", err)
	}
	// One from an unknown trust domain does not.
	stranger := newTestCA(t, "stranger.example")
	tok, err = stranger.signJWT(spiffeid.RequireFromString("spiffe://stranger.example/api"), []string{"db"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.ValidateJWTSVID(ctx, tok, "db")
	wantCode(t, err, codes.InvalidArgument)
}

func TestSecurityHeader(t *testing.T) {
	cache, _ := newSelfCache(t)
	ts := startServer(t, cache, &UnixAttestor{})
	_, c := rawClient(t, ts.addr)
	ctx := testCtx(t)

	for name, md := range map[string]metadata.MD{
		"missing":   nil,
		"false":     metadata.Pairs("workload.spiffe.io", "false"),
		"uppercase": metadata.Pairs("workload.spiffe.io", "True"),
		"twice":     metadata.Pairs("workload.spiffe.io", "true", "workload.spiffe.io", "true"),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := ctx
			if md != nil {
				ctx = metadata.NewOutgoingContext(ctx, md)
			}
			_, err := c.FetchJWTSVID(ctx, &workload.JWTSVIDRequest{Audience: []string{"db"}})
			wantCode(t, err, codes.InvalidArgument)
			if !strings.Contains(status.Convert(err).Message(), "security header missing from request") {
				t.Errorf("message %q", status.Convert(err).Message())
			}
			stream, err := c.FetchX509SVID(ctx, &workload.X509SVIDRequest{})
			if err == nil {
				_, err = stream.Recv()
			}
			wantCode(t, err, codes.InvalidArgument)
		})
	}
	if !strings.Contains(ts.logs.String(), "security header missing") {
		t.Error("refusal not logged")
	}
	cache.mu.Lock()
	calls := cache.jwtCalls
	cache.mu.Unlock()
	if calls != 0 {
		t.Error("a JWT-SVID was signed for a request without the header")
	}
}

func TestNoIdentityPermissionDenied(t *testing.T) {
	cache := newTestCache(newTestCA(t, td))
	cache.add(t, webID, "", sel("uid", "4294967290")) // somebody else
	ts := startServer(t, cache, &UnixAttestor{})
	ctx := testCtx(t)

	client, err := spiffewl.New(ctx, spiffewl.WithAddr(ts.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	_, err = client.FetchX509SVID(ctx)
	wantCode(t, err, codes.PermissionDenied)
	if !strings.Contains(status.Convert(err).Message(), "no identity issued") {
		t.Errorf("message %q", status.Convert(err).Message())
	}
	_, err = client.FetchX509Bundles(ctx)
	wantCode(t, err, codes.PermissionDenied)
	_, err = client.FetchJWTBundles(ctx)
	wantCode(t, err, codes.PermissionDenied)
	_, err = client.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "db"})
	wantCode(t, err, codes.PermissionDenied)
	if !strings.Contains(ts.logs.String(), "level=INFO msg=\"workload API request denied: no identity issued\"") {
		t.Errorf("denial not logged at info:\n%s", ts.logs.String())
	}
}

func TestLosingIdentityEndsStream(t *testing.T) {
	cache, _ := newSelfCache(t)
	ts := startServer(t, cache, &UnixAttestor{DiscoverPath: true})
	_, c := rawClient(t, ts.addr)
	stream, err := c.FetchX509SVID(withHeader(testCtx(t)), &workload.X509SVIDRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	cache.clear()
	_, err = stream.Recv()
	wantCode(t, err, codes.PermissionDenied)
	// The stream's subscription is released.
	deadline := time.Now().Add(5 * time.Second)
	for cache.subscribers() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscriptions left", cache.subscribers())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestInvalidArguments(t *testing.T) {
	cache, _ := newSelfCache(t)
	ts := startServer(t, cache, &UnixAttestor{})
	_, c := rawClient(t, ts.addr)
	ctx := withHeader(testCtx(t))

	_, err := c.FetchJWTSVID(ctx, &workload.JWTSVIDRequest{})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.FetchJWTSVID(ctx, &workload.JWTSVIDRequest{Audience: []string{"db"}, SpiffeId: "not a spiffe id"})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.ValidateJWTSVID(ctx, &workload.ValidateJWTSVIDRequest{Svid: "x"})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.ValidateJWTSVID(ctx, &workload.ValidateJWTSVIDRequest{Audience: "db"})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.ValidateJWTSVID(ctx, &workload.ValidateJWTSVIDRequest{Audience: "db", Svid: "not.a.jwt"})
	wantCode(t, err, codes.InvalidArgument)
}

func TestWITUnimplemented(t *testing.T) {
	cache, _ := newSelfCache(t)
	ts := startServer(t, cache, &UnixAttestor{})
	_, c := rawClient(t, ts.addr)
	ctx := withHeader(testCtx(t))

	s1, err := c.FetchWITSVID(ctx, &workload.WITSVIDRequest{})
	if err == nil {
		_, err = s1.Recv()
	}
	wantCode(t, err, codes.Unimplemented)
	s2, err := c.FetchWITBundles(ctx, &workload.WITBundlesRequest{})
	if err == nil {
		_, err = s2.Recv()
	}
	wantCode(t, err, codes.Unimplemented)
}

func TestHealthAndReflection(t *testing.T) {
	cache, _ := newSelfCache(t)
	ts := startServer(t, cache, &UnixAttestor{})
	conn, _ := rawClient(t, ts.addr)
	ctx := testCtx(t)

	// As `spire-agent healthcheck` does: no security header.
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v", resp.Status)
	}
	resp, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "SpiffeWorkloadAPI"})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health of SpiffeWorkloadAPI: %v %v", resp, err)
	}

	rs, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	rr, err := rs.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range rr.GetListServicesResponse().GetService() {
		names = append(names, s.Name)
	}
	for _, want := range []string{"SpiffeWorkloadAPI", "grpc.health.v1.Health"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}
}

func TestLogging(t *testing.T) {
	cache, me := newSelfCache(t)
	ts := startServer(t, cache, &UnixAttestor{DiscoverPath: true})
	ctx := testCtx(t)
	client, err := spiffewl.New(ctx, spiffewl.WithAddr(ts.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	svid, err := client.FetchX509SVID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	logs := ts.logs.String()
	if !strings.Contains(logs, `msg="workload attested"`) || !strings.Contains(logs, "pid="+itoa(os.Getpid())) ||
		!strings.Contains(logs, "unix:sha256:"+me.sha256) {
		t.Errorf("attestation not logged with pid and selectors:\n%s", logs)
	}
	key, err := x509.MarshalPKCS8PrivateKey(svid.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{base64.StdEncoding.EncodeToString(key), hex.EncodeToString(key), "PRIVATE KEY"} {
		if strings.Contains(logs, secret) {
			t.Fatal("key material in the logs")
		}
	}
}

func TestServeStopsGracefully(t *testing.T) {
	cache, _ := newSelfCache(t)
	ts := startServer(t, cache, &UnixAttestor{DiscoverPath: true})
	_, c := rawClient(t, ts.addr)
	stream, err := c.FetchX509SVID(withHeader(testCtx(t)), &workload.X509SVIDRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	ts.cancel()
	// The open stream ends with Unavailable, which clients retry.
	_, err = stream.Recv()
	wantCode(t, err, codes.Unavailable)
	select {
	case err := <-ts.done:
		if err != nil {
			t.Fatal(err)
		}
		ts.done <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if _, err := os.Lstat(ts.path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
}

func TestListen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "agent")
	path := filepath.Join(dir, "api.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o777 {
		t.Fatalf("socket mode %v, want a 0777 socket", fi.Mode())
	}
	di, err := os.Stat(dir)
	if err != nil || di.Mode().Perm()&^0o755 != 0 {
		t.Fatalf("parent dir mode %v %v", di.Mode(), err)
	}

	// A socket that still accepts is in use.
	if _, err := Listen(path); err == nil {
		t.Fatal("Listen took over a live socket")
	}
	// A stale socket (its listener gone without unlinking) is replaced.
	l.(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("setup: stale socket should remain: %v", err)
	}
	l2, err := Listen(path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l2.Close()

	// Something that is not a socket is left alone.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file); err == nil {
		t.Fatal("Listen replaced a regular file")
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Fatal("regular file changed")
	}
}

// procFakeAttestor lets the test act between the handshake and the
// server's liveness check.
type procFakeAttestor struct {
	during func()
	sel    identity.Selectors
}

func (a procFakeAttestor) Attest(context.Context, Process) (identity.Selectors, error) {
	a.during()
	return a.sel, nil
}

// TestPeerTrackerGuard simulates the PID-reuse race end to end: procfs is
// faked so that the caller's start time changes (PID reused) or its entry
// vanishes (caller exited) while it is being attested.
func TestPeerTrackerGuard(t *testing.T) {
	fake := t.TempDir()
	pid := os.Getpid()
	statPath := filepath.Join(fake, itoa(pid), "stat")
	if err := os.MkdirAll(filepath.Dir(statPath), 0o755); err != nil {
		t.Fatal(err)
	}
	writeStat := func(start uint64) {
		if err := os.WriteFile(statPath, []byte(fakeStat(pid, start)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := procRoot
	procRoot = fake
	t.Cleanup(func() { procRoot = old }) // after the server's cleanup

	cache := newTestCache(newTestCA(t, td))
	cache.add(t, webID, "", sel("test", "me"))
	var during func()
	att := procFakeAttestor{during: func() { during() }, sel: identity.Selectors{sel("test", "me")}}
	ts := startServer(t, cache, att)

	for _, tc := range []struct {
		name   string
		during func()
		want   codes.Code
	}{
		{"same process", func() {}, codes.OK},
		{"pid reused", func() { writeStat(2000) }, codes.PermissionDenied},
		{"caller exited", func() { os.Remove(statPath) }, codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writeStat(1000)
			during = tc.during
			// A new connection per case, so the handshake records 1000.
			_, c := rawClient(t, ts.addr)
			_, err := c.FetchJWTSVID(withHeader(testCtx(t)), &workload.JWTSVIDRequest{Audience: []string{"db"}})
			wantCode(t, err, tc.want)
		})
	}
}

func TestParseStartTime(t *testing.T) {
	st, err := parseStartTime(fakeStat(42, 123456789))
	if err != nil || st != 123456789 {
		t.Fatalf("got %d %v", st, err)
	}
	if _, err := parseStartTime("42 (x) S 1 2"); err == nil {
		t.Fatal("short stat accepted")
	}
	if _, err := parseStartTime("garbage"); err == nil {
		t.Fatal("garbage accepted")
	}
	// Real procfs: our own start time does not change.
	a, err := readStartTime(int32(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := readStartTime(int32(os.Getpid()))
	if a == 0 || a != b {
		t.Fatalf("start times %d %d", a, b)
	}
}
