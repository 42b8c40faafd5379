package lint

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/palisade-security/palisade/internal/authz"
	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/engine"
	"github.com/palisade-security/palisade/internal/jwtauth"
)

const fixedSystem = "../../examples/reference-system-fixed"

// TestFixedSystemFlows checks, with the engine behind `palisade check`, that
// the corrected reference system allows the flows it is for and denies the
// rest: frontend to backend GET /api/v1/* with a valid token, backend to
// PostgreSQL on TCP 5432, the payment service to api.stripe.com:443.
func TestLintFixedSystemFlows(t *testing.T) {
	snap, errs := config.Load([]string{fixedSystem}, nil)
	if len(errs) > 0 {
		t.Fatalf("the fixed system does not load: %v", errs[0])
	}
	// The company issuer's keys, served locally for its jwksUri; Azure AD's
	// key set is another key, so its tokens would not verify either way.
	company, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keys := jwtauth.NewFetcher(nil)
	keys.AddStatic("https://auth.company.com/.well-known/jwks.json", &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &company.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	keys.AddStatic("https://login.microsoftonline.com/tenant-id/discovery/v2.0/keys", &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &other.PublicKey, KeyID: "k2", Algorithm: "RS256", Use: "sig"}}})
	eng := engine.New(snap, engine.Options{Keys: keys})
	if len(eng.Rejected) > 0 {
		t.Fatalf("resources left out: %+v", eng.Rejected)
	}

	token := func(key *rsa.PrivateKey, extra map[string]any) string {
		claims := map[string]any{
			"iss": "https://auth.company.com", "sub": "user-7", "aud": "api.company.com",
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
		}
		for k, v := range extra {
			claims[k] = v
		}
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := json.Marshal(claims)
		jws, err := signer.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		s, err := jws.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := token(company, nil)
	forged := token(other, nil)
	admin := token(company, map[string]any{"role": "admin", "department": "security"})
	premium := token(company, map[string]any{"plan": "premium"})
	basic := token(company, map[string]any{"plan": "basic"})

	wl := func(ref string) *config.Workload {
		w, err := snap.Inventory.Workload(ref)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	http := func(method, path, tok string) *engine.HTTPRequest {
		h := &engine.HTTPRequest{Method: method, Path: path}
		if tok != "" {
			h.Headers = []authz.Header{{Name: "Authorization", Value: "Bearer " + tok}}
		}
		return h
	}
	ip := netip.MustParseAddr
	cases := []struct {
		name    string
		req     engine.Request
		allowed bool
		layer   string // the deciding layer of a denial
	}{
		{"frontend GETs the API with a token", engine.Request{From: wl("production/frontend"), To: wl("production/backend-api"), HTTP: http("GET", "/api/v1/users", valid)}, true, ""},
		{"frontend creates a user with a token", engine.Request{From: wl("production/frontend"), To: wl("production/backend-api"), HTTP: http("POST", "/api/v1/users", valid)}, true, ""},
		{"backend reaches PostgreSQL", engine.Request{From: wl("production/backend-api"), To: wl("production/postgres")}, true, ""},
		{"the migration job reaches PostgreSQL", engine.Request{From: wl("production/migration-job"), To: wl("production/postgres"), Port: 5432}, true, ""},
		{"backend reaches Redis", engine.Request{From: wl("production/backend-api"), To: wl("production/redis")}, true, ""},
		{"payment service reaches Stripe", engine.Request{From: wl("production/payment-service"), ToFQDN: "api.stripe.com", ToIP: ip("198.51.100.7"), Port: 443}, true, ""},
		{"payment service reaches PayPal", engine.Request{From: wl("production/payment-service"), ToFQDN: "api.paypal.com", ToIP: ip("198.51.100.8"), Port: 443}, true, ""},
		{"the ingress gateway reaches the frontend", engine.Request{From: wl("istio-system/istio-ingressgateway"), To: wl("production/frontend"), HTTP: http("GET", "/", "")}, true, ""},
		{"the payment processor charges", engine.Request{From: wl("production/payment-processor"), To: wl("production/payment-service"), HTTP: http("POST", "/v1/charges", "")}, true, ""},
		{"an admin checks health", engine.Request{From: wl("production/admin-console"), To: wl("production/admin-api"), HTTP: http("GET", "/admin/health", admin)}, true, ""},
		{"a premium user reads a user", engine.Request{From: wl("production/frontend"), To: wl("production/api-gateway"), HTTP: http("GET", "/api/v1/users/42", premium)}, true, ""},

		{"no token", engine.Request{From: wl("production/frontend"), To: wl("production/backend-api"), HTTP: http("GET", "/api/v1/users", "")}, false, engine.LayerAuthz},
		{"a forged token", engine.Request{From: wl("production/frontend"), To: wl("production/backend-api"), HTTP: http("GET", "/api/v1/users", forged)}, false, engine.LayerAuthn},
		{"DELETE is not granted", engine.Request{From: wl("production/frontend"), To: wl("production/backend-api"), HTTP: http("DELETE", "/api/v1/users/1", valid)}, false, engine.LayerAuthz},
		{"paths outside /api/v1", engine.Request{From: wl("production/frontend"), To: wl("production/backend-api"), HTTP: http("GET", "/admin", valid)}, false, engine.LayerAuthz},
		{"the mobile app is not a backend client", engine.Request{From: wl("production/mobile-app"), To: wl("production/backend-api"), HTTP: http("GET", "/api/v1/users", valid)}, false, engine.LayerNetworkEgress},
		{"the frontend does not reach PostgreSQL", engine.Request{From: wl("production/frontend"), To: wl("production/postgres")}, false, engine.LayerNetworkEgress},
		{"the admin console does not reach PostgreSQL", engine.Request{From: wl("production/admin-console"), To: wl("production/postgres")}, false, engine.LayerNetworkEgress},
		{"payment service to another name", engine.Request{From: wl("production/payment-service"), ToFQDN: "evil.example.com", ToIP: ip("203.0.113.66"), Port: 443}, false, engine.LayerNetworkEgress},
		{"backend to Stripe", engine.Request{From: wl("production/backend-api"), ToFQDN: "api.stripe.com", ToIP: ip("198.51.100.7"), Port: 443}, false, engine.LayerNetworkEgress},
		{"a client outside the mesh", engine.Request{FromIP: ip("203.0.113.9"), To: wl("production/frontend"), Port: 8080}, false, engine.LayerNetworkIngress},
		{"a basic user cannot create", engine.Request{From: wl("production/frontend"), To: wl("production/api-gateway"), HTTP: http("POST", "/api/v1/users", basic)}, false, engine.LayerAuthz},
		{"an admin without the role claim", engine.Request{From: wl("production/admin-console"), To: wl("production/admin-api"), HTTP: http("GET", "/admin/health", valid)}, false, engine.LayerAuthz},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := eng.Check(c.req)
			if err != nil {
				t.Fatal(err)
			}
			if v.Allowed != c.allowed || (!c.allowed && v.DecidedBy.Layer != c.layer) {
				t.Errorf("allowed %v by %s (%s), want allowed %v (layer %q)\ntrace: %+v", v.Allowed, v.DecidedBy.Layer, v.DecidedBy.Reason, c.allowed, c.layer, v.Trace)
			}
		})
	}
}
