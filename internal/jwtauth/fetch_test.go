package jwtauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/durationpb"
	securityv1beta1 "istio.io/api/security/v1beta1"
)

// jwksServer serves the default JWKS at /keys, an OIDC discovery document
// pointing there, and counts requests per path.
type jwksServer struct {
	*httptest.Server
	mu    sync.Mutex
	hits  map[string]int
	total atomic.Int64
}

func newJWKSServer(t *testing.T, jwks string) *jwksServer {
	s := &jwksServer{hits: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		s.mu.Unlock()
		s.total.Add(1)
		switch r.URL.Path {
		case "/keys":
			w.Write([]byte(jwks))
		case "/.well-known/openid-configuration":
			w.Write([]byte(`{"issuer":"` + s.URL + `","jwks_uri":"` + s.URL + `/keys"}`))
		case "/bad-discovery/.well-known/openid-configuration":
			w.Write([]byte(`{"jwks_uri":42}`))
		case "/html":
			w.Write([]byte("<html>hello</html>"))
		case "/empty":
			w.Write([]byte(`{"keys":[]}`))
		case "/slow":
			time.Sleep(200 * time.Millisecond)
			w.Write([]byte(jwks))
		default:
			http.Error(w, strings.Repeat("internal error ", 20), http.StatusInternalServerError)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

func TestFetcherRules(t *testing.T) {
	srv := newJWKSServer(t, defaultJWKS(t))
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // nothing listens there any more

	f := NewFetcher(srv.Client())
	old := rs1(t, map[string]any{"exp": 1})
	keyErr := func(want string) func(t *testing.T, r Result) {
		return func(t *testing.T, r Result) {
			if !strings.Contains(r.KeyError, want) {
				t.Errorf("KeyError = %q, want it to contain %q", r.KeyError, want)
			}
		}
	}
	runAuthCases(t, []authCase{
		// Istio jwt_test.go "valid-token-noauthz" with jwksUri fetched by istiod → 200
		{name: "jwksUri", keys: f, h: bearer(rs1(t, nil)),
			ras: ras(ra("foo", "jwt", rule(t, iss1, withJwksURI(srv.URL+"/keys"))))},
		// istiod jwks_resolver.go resolveJwksURIUsingOpenID: <issuer>/.well-known/openid-configuration → jwks_uri
		{name: "OIDC discovery", keys: f, h: bearer(mint(t, jose.RS256, keys(t).rsa1, "rsa1", claims(srv.URL+"/", nil))),
			ras: ras(ra("foo", "jwt", rule(t, srv.URL+"/", withDiscovery())))},
		// Istio jwt_test.go "invalid-jwks-valid-token-noauthz" → 401 (istiod PublicOnlyJwks)
		{name: "500 fails closed", keys: f, h: bearer(rs1(t, nil)), status: 401, detail: verFail,
			ras:   ras(ra("foo", "jwt", rule(t, iss1, withJwksURI(srv.URL+"/missing")))),
			check: keyErr("status 500, message \"internal error")},
		// Istio jwt_test.go "invalid-jwks-no-token-noauthz" → 200
		{name: "500, no token passes", keys: f, h: hdrs(), check: noClaims,
			ras: ras(ra("foo", "jwt", rule(t, iss1, withJwksURI(srv.URL+"/missing"))))},
		// Istio jwt_test.go "invalid-jwks-expired-token-noauthz" → 401; time is checked before keys
		{name: "500, expired token", keys: f, h: bearer(old), status: 401, detail: expired,
			ras: ras(ra("foo", "jwt", rule(t, iss1, withJwksURI(srv.URL+"/missing"))))},
		// PublicOnlyJwks has neither kid nor alg, so even a token with a kid
		// gets "Jwt verification fails" (Envoy verify.cc), not a kid mismatch.
		{name: "unreachable fails closed", keys: f, status: 401, detail: verFail,
			h:     bearer(mint(t, jose.ES256, keys(t).ec1, "ec1", claims(iss1, nil))),
			ras:   ras(ra("foo", "jwt", rule(t, iss1, withJwksURI(deadURL+"/keys")))),
			check: keyErr("fetching JWKS " + deadURL + "/keys")},
		{name: "unreachable, no token", keys: f, h: hdrs(),
			ras: ras(ra("foo", "jwt", rule(t, iss1, withJwksURI(deadURL+"/keys"))))},
		// istiod validateJWKSFormat: a body that is not a JWKS is a fetch failure
		{name: "not a JWKS", keys: f, h: bearer(rs1(t, nil)), status: 401, detail: verFail,
			ras:   ras(ra("foo", "jwt", rule(t, iss1, withJwksURI(srv.URL+"/html")))),
			check: keyErr("not a valid JWKS")},
		// a JWKS with no key passes istiod and fails in Envoy: JwksNoValidKeys
		{name: "empty JWKS", keys: f, h: bearer(rs1(t, nil)), status: 401, detail: noKeys,
			ras:   ras(ra("foo", "jwt", rule(t, iss1, withJwksURI(srv.URL+"/empty")))),
			check: keyErr("has no usable key")},
		// istiod resolveJwksURIUsingOpenID: a non-string jwks_uri
		{name: "bad discovery", keys: f, h: bearer(mint(t, jose.RS256, keys(t).rsa1, "rsa1", claims(srv.URL+"/bad-discovery", nil))),
			status: 401, detail: verFail, ras: ras(ra("foo", "jwt", rule(t, srv.URL+"/bad-discovery", withDiscovery()))),
			check: keyErr("invalid jwks_uri 42 in openID discovery configuration")},
		// istiod policy_applier.go: the rule's timeout bounds the fetch
		{name: "timeout", keys: f, h: bearer(rs1(t, nil)), status: 401, detail: verFail,
			ras: ras(ra("foo", "jwt", rule(t, iss1, withJwksURI(srv.URL+"/slow"),
				func(r *securityv1beta1.JWTRule) { r.Timeout = durationpb.New(10 * time.Millisecond) }))),
			check: keyErr("deadline exceeded")},
		// no KeySource: fail closed too
		{name: "nil KeySource", h: bearer(rs1(t, nil)), status: 401, detail: verFail,
			ras:   ras(ra("foo", "jwt", rule(t, iss1, withJwksURI(srv.URL+"/keys")))),
			check: keyErr("no JWKS source")},
		// istiod BuildLocalJwks: an inline jwks wins over jwksUri
		{name: "inline wins over jwksUri", keys: f, h: bearer(rs1(t, nil)),
			ras: ras(ra("foo", "jwt", rule(t, iss1, func(r *securityv1beta1.JWTRule) { r.JwksUri = deadURL }))),
		},
	})
}

func TestFetcherCaching(t *testing.T) {
	srv := newJWKSServer(t, defaultJWKS(t))
	f := NewFetcher(srv.Client())
	clock := now
	f.now = func() time.Time { return clock }
	ctx := context.Background()

	for range 3 {
		set, err := f.JWKS(ctx, iss1, srv.URL+"/keys", time.Second)
		if err != nil || len(set.Keys) != 2 {
			t.Fatalf("JWKS = %v, %v", set, err)
		}
	}
	if n := srv.count("/keys"); n != 1 {
		t.Errorf("3 calls made %d requests, want 1", n)
	}
	// Policies built from the same rules share the cached fetch.
	rules := ras(ra("foo", "jwt", rule(t, iss1, withJwksURI(srv.URL+"/keys"))))
	New(rules, f)
	New(rules, f)
	if n := srv.count("/keys"); n != 1 {
		t.Errorf("after two New: %d requests, want 1", n)
	}
	// Discovery is cached under (issuer, ""), separately.
	for range 2 {
		if _, err := f.JWKS(ctx, srv.URL, "", time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if d, k := srv.count("/.well-known/openid-configuration"), srv.count("/keys"); d != 1 || k != 2 {
		t.Errorf("discovery: %d discovery and %d key requests, want 1 and 2", d, k)
	}
	// After the TTL the set is fetched again.
	clock = clock.Add(DefaultTTL + time.Second)
	if _, err := f.JWKS(ctx, iss1, srv.URL+"/keys", time.Second); err != nil {
		t.Fatal(err)
	}
	if n := srv.count("/keys"); n != 3 {
		t.Errorf("after TTL: %d requests, want 3", n)
	}

	// Failures are cached for FailureTTL only.
	for range 3 {
		if _, err := f.JWKS(ctx, iss1, srv.URL+"/missing", time.Second); err == nil {
			t.Fatal("want an error")
		}
	}
	if n := srv.count("/missing"); n != 1 {
		t.Errorf("failure fetched %d times, want 1", n)
	}
	clock = clock.Add(DefaultFailureTTL + time.Second)
	f.JWKS(ctx, iss1, srv.URL+"/missing", time.Second)
	if n := srv.count("/missing"); n != 2 {
		t.Errorf("after FailureTTL: %d requests, want 2", n)
	}
}

func TestFetcherConcurrentSharesFetch(t *testing.T) {
	srv := newJWKSServer(t, defaultJWKS(t))
	f := NewFetcher(srv.Client())
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.JWKS(context.Background(), iss1, srv.URL+"/slow", time.Second); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := srv.count("/slow"); n != 1 {
		t.Errorf("8 concurrent calls made %d requests, want 1", n)
	}
}

func TestFetcherStatic(t *testing.T) {
	srv := newJWKSServer(t, defaultJWKS(t))
	f := NewFetcher(srv.Client())
	byURI, err := ParseJWKS([]byte(defaultJWKS(t)))
	if err != nil {
		t.Fatal(err)
	}
	f.AddStatic("https://keys.example.com/jwks", byURI)
	f.AddStatic(iss2, byURI)

	// Static entries keyed by jwksUri or issuer are served without a request.
	if set, err := f.JWKS(context.Background(), iss1, "https://keys.example.com/jwks", time.Second); err != nil || set != byURI {
		t.Errorf("by URI: %v, %v", set, err)
	}
	if set, err := f.JWKS(context.Background(), iss2, "", time.Second); err != nil || set != byURI {
		t.Errorf("by issuer: %v, %v", set, err)
	}
	// A static entry takes precedence over a reachable jwksUri.
	if set, err := f.JWKS(context.Background(), iss2, srv.URL+"/keys", time.Second); err != nil || set != byURI {
		t.Errorf("precedence: %v, %v", set, err)
	}
	if n := srv.total.Load(); n != 0 {
		t.Errorf("%d requests made", n)
	}
	p := New(ras(ra("foo", "jwt", rule(t, iss1, withJwksURI("https://keys.example.com/jwks")))), f)
	if r := p.Authenticate(bearer(rs1(t, nil)), "", now); r.Status != 0 {
		t.Errorf("%+v", r)
	}
	if len(p.KeyProblems()) != 0 {
		t.Errorf("KeyProblems = %v", p.KeyProblems())
	}
}

func TestFetcherErrors(t *testing.T) {
	f := NewFetcher(nil)
	ctx := context.Background()
	if _, err := f.JWKS(ctx, "", "", time.Second); err == nil || err.Error() != "jwksURI and issuer are both empty" {
		t.Errorf("empty: %v", err)
	}
	// istiod jwksBlockedIP: link-local (cloud metadata) addresses are refused at dial time
	_, err := f.JWKS(ctx, iss1, "http://169.254.169.254/latest/keys", time.Second)
	if err == nil || !strings.Contains(err.Error(), "link-local") {
		t.Errorf("metadata address: %v", err)
	}
	_, err = f.JWKS(ctx, iss1, "http://100.100.100.200/keys", time.Second)
	if err == nil || !strings.Contains(err.Error(), "cloud metadata") {
		t.Errorf("alibaba metadata address: %v", err)
	}
	p := New(ras(ra("ns", "ra", rule(t, iss1, withJwksURI("http://169.254.169.254/keys")))), f)
	if probs := p.KeyProblems(); len(probs) != 1 || !strings.HasPrefix(probs[0], "ns/ra issuer "+iss1+": ") {
		t.Errorf("KeyProblems = %q", probs)
	}
}

func TestParseJWKS(t *testing.T) {
	k := keys(t)
	for _, c := range []struct {
		name, doc string
		keys      int // -1: error
	}{
		// Envoy jwks.cc createFromJwksCore / istiod validateJWKSFormat
		{"not JSON", "nope", -1},
		{"array", "[]", -1},
		{"no keys", `{"kid":"x"}`, -1},
		{"keys null", `{"keys":null}`, -1},
		{"keys not array", `{"keys":{}}`, -1},
		{"empty", `{"keys":[]}`, 0},
		{"default", defaultJWKS(t), 2},
		// Envoy skips keys it cannot use instead of failing the set
		{"non-object entries skipped", `{"keys":[1,"x",null]}`, 0},
		{"unknown kty", `{"keys":[{"kty":"XYZ"}]}`, 0},
		{"no kty", `{"keys":[{"n":"x"}]}`, 0},
		{"RSA exponent 17", jwksJSON(t, jose.JSONWebKey{Key: &rsaPub17}), 0},
		{"RSA bad alg", strings.Replace(jwksJSON(t, jose.JSONWebKey{Key: k.rsa1, Algorithm: "RS256"}), "RS256", "ES256", 1), 0},
		{"RSA PS alg", jwksJSON(t, jose.JSONWebKey{Key: k.rsa1, Algorithm: "PS512"}), 1},
		// Envoy jwks.cc extractJwkFromJwkEC: a missing crv defaults to P-256 (or follows alg)
		{"EC without crv", strings.Replace(jwksJSON(t, jose.JSONWebKey{Key: k.ec1}), `"crv":"P-256",`, "", 1), 1},
		{"EC crv/alg conflict", jwksJSON(t, jose.JSONWebKey{Key: k.ec1, Algorithm: "ES384"}), 0},
		{"EC off curve", `{"keys":[{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ"}]}`, 0},
		{"oct empty", `{"keys":[{"kty":"oct","k":""}]}`, 0},
		{"oct", `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`, 1},
		{"OKP wrong length", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AQ"}]}`, 0},
		{"OKP X25519", `{"keys":[{"kty":"OKP","crv":"X25519","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}`, 0},
		{"good among bad", `{"keys":[{"kty":"XYZ"},` + strings.TrimPrefix(defaultJWKS(t), `{"keys":[`), 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			set, err := ParseJWKS([]byte(c.doc))
			if c.keys < 0 {
				if err == nil {
					t.Fatalf("want an error, got %d keys", len(set.Keys))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(set.Keys) != c.keys {
				t.Errorf("%d keys, want %d", len(set.Keys), c.keys)
			}
		})
	}
}

func TestKeysFromSet(t *testing.T) {
	k := keys(t)
	// Keys from any KeySource: private keys give their public half; keys
	// Envoy would reject are dropped.
	set := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: k.rsa1, KeyID: "priv"},
		{Key: &k.ec1.PublicKey, Algorithm: "ES384"}, // P-256 key with ES384: dropped
		{Key: &rsaPub17},                            // exponent 17: dropped
		{Key: "not a key"},                          // dropped
		{Key: []byte{}},                             // empty HMAC key: dropped
		{Key: k.ed1},
	}}
	got := keysFromSet(set)
	if len(got) != 2 || got[0].kid != "priv" || got[0].rsa == nil || got[1].kty != "OKP" {
		t.Errorf("keysFromSet = %+v", got)
	}
	p := New(ras(ra("foo", "jwt", rule(t, iss1, withJwksURI("u")))), mapKeys{sets: map[string]*jose.JSONWebKeySet{"u": set}})
	if r := p.Authenticate(bearer(mint(t, jose.RS256, k.rsa1, "priv", claims(iss1, nil))), "", now); r.Status != 0 {
		t.Errorf("%+v", r)
	}
}

func TestDecodeBase64URL(t *testing.T) {
	// absl::WebSafeBase64Unescape, as Envoy uses it
	for _, c := range []struct {
		in, out string
		ok      bool
	}{
		{"", "", true},
		{"YQ", "a", true},
		{"YQ==", "a", true},
		{"YQ..", "a", true}, // '.' is accepted as padding
		{"YQ=", "", false},  // wrong amount of padding
		{"YWI", "ab", true},
		{"YWI=", "ab", true},
		{"YWI==", "", false},
		{"Y", "", false},      // 6 bits cannot make a byte
		{"YR", "a", true},     // unused low bits are ignored
		{"Y Q\n", "a", true},  // whitespace is skipped
		{"YQ==YQ", "", false}, // data after padding
		{"YW+", "", false},    // '+' is not in the URL alphabet
		{"_-8", "\xff\xef", true},
	} {
		got, ok := decodeBase64URL(c.in)
		if ok != c.ok || (ok && string(got) != c.out) {
			t.Errorf("decodeBase64URL(%q) = %q, %v; want %q, %v", c.in, got, ok, c.out, c.ok)
		}
	}
}
