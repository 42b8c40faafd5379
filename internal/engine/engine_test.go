package engine

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/palisade-security/palisade/internal/authz"
	"github.com/palisade-security/palisade/internal/config"
)

// keys is a JWKS source for tests: a fixed set per jwksUri, and a failed
// fetch for anything else, as when the issuer is unreachable.
type keys map[string]*jose.JSONWebKeySet

func (k keys) JWKS(_ context.Context, issuer, uri string, _ time.Duration) (*jose.JSONWebKeySet, error) {
	if s, ok := k[uri]; ok {
		return s, nil
	}
	return nil, errors.New("fetch failed")
}

var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

type signer struct {
	key *rsa.PrivateKey
	set *jose.JSONWebKeySet
}

func newSigner(t *testing.T) *signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{key: k, set: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}}}
}

func (s *signer) token(t *testing.T, claims map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: s.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func load(t *testing.T, paths ...string) (*config.Snapshot, []*config.Error) {
	t.Helper()
	return config.Load(paths, nil)
}

type checkCase struct {
	name, cite string
	from, to   string // workload refs; from may be "ip:ADDR"
	toFQDN     string
	port       uint16
	transport  string
	plaintext  bool
	http       *HTTPRequest
	fromIP     string
	allowed    bool
	status     int
	layer      string
	policy     string
	ruleID     string
}

func get(path string, headers ...authz.Header) *HTTPRequest {
	return &HTTPRequest{Method: "GET", Path: path, Headers: headers}
}

func bearer(tok string) authz.Header {
	return authz.Header{Name: "Authorization", Value: "Bearer " + tok}
}

func runChecks(t *testing.T, e *Engine, cases []checkCase) {
	t.Helper()
	inv := &e.Snapshot.Inventory
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := Request{Port: c.port, Plaintext: c.plaintext, HTTP: c.http, ToFQDN: c.toFQDN, Transport: c.transport}
			if len(c.from) > 3 && c.from[:3] == "ip:" {
				req.FromIP = netip.MustParseAddr(c.from[3:])
			} else {
				w, err := inv.Workload(c.from)
				if err != nil {
					t.Fatal(err)
				}
				req.From = w
			}
			if c.fromIP != "" {
				req.FromIP = netip.MustParseAddr(c.fromIP)
			}
			if c.to != "" {
				w, err := inv.Workload(c.to)
				if err != nil {
					t.Fatal(err)
				}
				req.To = w
			}
			v, err := e.Check(req)
			if err != nil {
				t.Fatal(err)
			}
			d := v.DecidedBy
			if v.Allowed != c.allowed || v.Status != c.status || d.Layer != c.layer || d.Policy != c.policy || d.RuleID != c.ruleID {
				t.Errorf("%s\ngot  allowed=%v status=%d layer=%s policy=%q rule=%q (%s)\nwant allowed=%v status=%d layer=%s policy=%q rule=%q\ntrace: %+v",
					c.cite, v.Allowed, v.Status, d.Layer, d.Policy, d.RuleID, d.Reason, c.allowed, c.status, c.layer, c.policy, c.ruleID, v.Trace)
			}
		})
	}
}

const refDir = "../../examples/reference-system"

// TestReferenceSystemIstio decides the reference system's traffic as Istio
// alone would (without its Cilium manifests), with its Istio manifests
// exactly as the blog post has them.
func TestReferenceSystemIstio(t *testing.T) {
	snap, _ := load(t, filepath.Join(refDir, "inventory.yaml"), filepath.Join(refDir, "manifests", "security"), filepath.Join(refDir, "manifests", "istio-configuration"))
	s := newSigner(t)
	e := New(snap, Options{Keys: keys{"https://auth.company.com/.well-known/jwks.json": s.set}, Now: func() time.Time { return testNow }})
	valid := s.token(t, map[string]any{"iss": "https://auth.company.com", "sub": "user-1", "aud": "api.company.com", "exp": testNow.Add(time.Hour).Unix()})
	expired := s.token(t, map[string]any{"iss": "https://auth.company.com", "sub": "user-1", "aud": "api.company.com", "exp": testNow.Add(-time.Hour).Unix()})
	wrongAud := s.token(t, map[string]any{"iss": "https://auth.company.com", "sub": "user-1", "aud": "other", "exp": testNow.Add(time.Hour).Unix()})
	azure := s.token(t, map[string]any{"iss": "https://login.microsoftonline.com/tenant-id/v2.0", "sub": "u", "aud": "azure-ad-app-id"})
	const (
		f2b   = "ns[production]-policy[frontend-to-backend]-rule[0]"
		admin = "ns[production]-policy[admin-access]-rule[0]"
	)
	runChecks(t, e, []checkCase{
		{name: "frontend to backend with a bearer token", cite: "frontend-to-backend: principals frontend-service, GET /api/v1/*, Authorization Bearer *",
			from: "production/frontend", to: "production/backend-api", http: get("/api/v1/users", authz.Header{Name: "Authorization", Value: "Bearer x"}),
			allowed: true, status: 200, layer: "authz", policy: "production/frontend-to-backend", ruleID: f2b},
		{name: "without the header", cite: "authorization_policy.proto: ALLOW policies exist, none matches → deny (403)",
			from: "production/frontend", to: "production/backend-api", http: get("/api/v1/users"),
			status: 403, layer: "authz"},
		{name: "a method the rule does not list", cite: "frontend-to-backend methods [GET, POST]",
			from: "production/frontend", to: "production/backend-api", http: &HTTPRequest{Method: "DELETE", Path: "/api/v1/users/1", Headers: []authz.Header{{Name: "authorization", Value: "Bearer x"}}},
			status: 403, layer: "authz"},
		{name: "dot segments are resolved before matching", cite: "Istio normalization BASE: /api/v1/%2e%2e/%2e%2e/admin is matched as /admin",
			from: "production/frontend", to: "production/backend-api", http: get("/api/v1/%2e%2e/%2e%2e/admin", authz.Header{Name: "Authorization", Value: "Bearer x"}),
			status: 403, layer: "authz"},
		{name: "the query string is ignored", cite: "TestAuthz_PathPrecedence: paths are compared without the query",
			from: "production/frontend", to: "production/backend-api", http: get("/api/v1/users?id=7", authz.Header{Name: "Authorization", Value: "Bearer x"}),
			allowed: true, status: 200, layer: "authz", policy: "production/frontend-to-backend", ruleID: f2b},
		{name: "a lowercase method is a 400", cite: "Istio normalization doc: a method not in upper case → 400",
			from: "production/frontend", to: "production/backend-api", http: &HTTPRequest{Method: "get", Path: "/api/v1/users"},
			status: 400, layer: "http"},
		{name: "backend to postgres: database-access is rejected", cite: "istiod ValidateAttribute: source.labels[version] is an unknown attribute, so the policy never exists",
			from: "production/backend-api", to: "production/postgres", status: 0, layer: "authz"},
		{name: "plaintext under STRICT", cite: "PeerAuthentication istio-system/default STRICT: no filter chain for plaintext",
			from: "production/frontend", to: "production/backend-api", plaintext: true, layer: "mtls", policy: "istio-system/default"},
		{name: "a client outside the mesh", cite: "STRICT refuses clients without an Istio certificate",
			from: "ip:203.0.113.9", to: "production/frontend", http: get("/"), layer: "mtls", policy: "istio-system/default"},
		{name: "the admin console with its token", cite: "admin-access: principal admin-service, x-admin-token admin-*, source.ip 10.0.0.0/8",
			from: "production/admin-console", to: "production/payment-service", http: &HTTPRequest{Method: "DELETE", Path: "/v1/payments/7", Headers: []authz.Header{{Name: "x-admin-token", Value: "admin-ops"}}},
			allowed: true, status: 200, layer: "authz", policy: "production/admin-access", ruleID: admin},
		{name: "the admin console from outside 10.0.0.0/8", cite: "admin-access when source.ip 10.0.0.0/8",
			from: "production/admin-console", fromIP: "192.168.1.4", to: "production/payment-service", http: &HTTPRequest{Method: "DELETE", Path: "/v1/payments/7", Headers: []authz.Header{{Name: "x-admin-token", Value: "admin-ops"}}},
			status: 403, layer: "authz"},
		{name: "admin-access over TCP is skipped", cite: "model.go checkError: an ALLOW rule with HTTP-only fields is skipped on TCP",
			from: "production/admin-console", to: "production/redis", status: 0, layer: "authz"},
		{name: "an HTTP request to a tcp- port is TCP", cite: "Istio protocol selection: a port named tcp-* is TCP, HTTP attributes are not seen",
			from: "production/backend-api", to: "production/postgres", http: get("/"), status: 0, layer: "authz"},
		{name: "a valid JWT is accepted, then authorization denies", cite: "RequestAuthentication jwt-auth; deny-all matches only plaintext",
			from: "production/frontend", to: "production/frontend-api", http: get("/", bearer(valid)), status: 403, layer: "authz"},
		{name: "an expired JWT is a 401", cite: "Istio jwt_test expired-token-noauthz → 401",
			from: "production/frontend", to: "production/frontend-api", http: get("/", bearer(expired)), status: 401, layer: "authn", policy: "production/jwt-auth"},
		{name: "an audience mismatch is a 403 from authentication", cite: "Envoy JwtAudienceNotAllowed → 403",
			from: "production/frontend", to: "production/frontend-api", http: get("/", bearer(wrongAud)), status: 403, layer: "authn", policy: "production/jwt-auth"},
		{name: "an unreachable JWKS fails closed", cite: "istiod PublicOnlyJwks: tokens are rejected when the JWKS cannot be fetched",
			from: "production/frontend", to: "production/frontend-api", http: get("/", bearer(azure)), status: 401, layer: "authn", policy: "production/jwt-auth"},
		{name: "api-gateway wants a JWT", cite: "user-rate-limiting requestPrincipals [*]: no token → 403 (istio/istio#26559)",
			from: "production/frontend", to: "production/api-gateway", http: get("/"), status: 403, layer: "authz"},
	})
}

// TestReferenceSystem decides the reference system's traffic with every
// manifest it ships: Cilium's policyEnforcementMode "always" and its
// network policies, then Istio. The verdicts show what the manifests
// actually do, which is often not what their comments say.
func TestReferenceSystem(t *testing.T) {
	snap, _ := load(t, refDir)
	e := New(snap, Options{Keys: keys{}, Now: func() time.Time { return testNow }})
	auth := authz.Header{Name: "Authorization", Value: "Bearer x"}
	runChecks(t, e, []checkCase{
		{name: "frontend to backend: Cilium's HTTP rules meet Istio mTLS", cite: "docs.cilium.io servicemesh/istio: mTLS STRICT or PERMISSIVE is not compatible with Cilium HTTP network policy",
			from: "production/frontend", to: "production/backend-api", http: get("/api/v1/users", auth),
			status: 503, layer: "l7", policy: "production/backend-api-policy", ruleID: "spec.ingress[0]"},
		{name: "the same without a sidecar: past Cilium's rules, refused by STRICT", cite: "backend-api-policy rules.http GET /api/v1/.* matches; PeerAuthentication STRICT refuses plaintext",
			from: "production/frontend", to: "production/backend-api", plaintext: true, http: get("/api/v1/users", auth),
			layer: "mtls", policy: "istio-system/default"},
		{name: "a request Cilium's HTTP rules do not list", cite: "Cilium L7: a request no rules.http allows gets 403",
			from: "production/frontend", to: "production/backend-api", plaintext: true, http: &HTTPRequest{Method: "DELETE", Path: "/api/v1/users/1"},
			status: 403, layer: "l7", policy: "production/backend-api-policy", ruleID: "spec.ingress[0]"},
		{name: "backend to postgres: past the network, stopped by Istio", cite: "database-policy allows backend-api; istiod rejects database-access",
			from: "production/backend-api", to: "production/postgres", layer: "authz"},
		{name: "backend to redis: redis has no policy under enforcement always", cite: "intro.rst: policyEnforcementMode always enforces on every endpoint",
			from: "production/backend-api", to: "production/redis", layer: "network-ingress"},
		{name: "DNS: kube-dns has no ingress policy", cite: "policyEnforcementMode always: kube-dns drops what no rule allows",
			from: "production/frontend", to: "kube-system/kube-dns", port: 53, transport: "UDP", layer: "network-ingress"},
		{name: "payments to Stripe: no DNS rule, so toFQDNs never learns an address", cite: "cilium-semantics §1.7: toFQDNs IPs are learned through the DNS proxy, which needs rules.dns",
			from: "production/payment-service", toFQDN: "api.stripe.com", port: 443, layer: "network-egress"},
		{name: "the ingress gateway cannot send at all", cite: "policyEnforcementMode always: istio-system has no egress rule",
			from: "istio-system/istio-ingressgateway", to: "production/frontend", port: 8080, layer: "network-egress"},
		{name: "nothing outside the cluster reaches the frontend", cite: "frontend-policy allows only istio-system app=istio-proxy",
			from: "ip:203.0.113.9", to: "production/frontend", port: 8080, layer: "network-ingress"},
		{name: "the mobile app may only resolve names", cite: "allow-dns is its only egress rule",
			from: "production/mobile-app", to: "production/backend-api", layer: "network-egress", policy: ""},
	})
}

func TestCheckDefaultsAndErrors(t *testing.T) {
	snap, errs := config.Parse("t.yaml", []byte(`apiVersion: v1
kind: Pod
metadata: {name: a, namespace: ns, labels: {app: a}}
spec: {containers: [{name: a, ports: [{containerPort: 9000}]}]}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: noports, namespace: ns}
spec: {containers: [{name: b}]}
`))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	e := New(snap, Options{Keys: keys{}})
	a, _ := snap.Inventory.Workload("ns/a")
	noports, _ := snap.Inventory.Workload("ns/noports")
	v, err := e.Check(Request{From: a, To: a})
	if err != nil || !v.Allowed || v.Request.Port != 9000 || v.Request.SourceIP != "10.0.0.1" || v.Request.DestIP != "10.0.0.1" {
		t.Errorf("defaults: %+v %v", v, err)
	}
	if v.DecidedBy.Reason != "no AuthorizationPolicy selects the workload: Istio allows everything" {
		t.Errorf("reason %q", v.DecidedBy.Reason)
	}
	if _, err := e.Check(Request{From: a, To: noports}); err == nil {
		t.Error("a destination without ports and no --port must be an error")
	}
}

// TestTrafficSettings covers how the client's DestinationRule and the
// server's PeerAuthentication decide whether the connection carries an
// identity.
func TestTrafficSettings(t *testing.T) {
	snap, errs := config.Parse("t.yaml", []byte(`apiVersion: v1
kind: Pod
metadata: {name: client, namespace: a, labels: {app: client}}
spec: {serviceAccountName: client, containers: [{name: c}]}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: b, labels: {app: server}}
spec: {containers: [{name: s, ports: [{containerPort: 8080}, {containerPort: 9090}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: server, namespace: b}
spec: {selector: {app: server}, ports: [{name: http, port: 80, targetPort: 8080}, {name: grpc, port: 9090}]}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: server, namespace: b}
spec:
  selector: {matchLabels: {app: server}}
  mtls: {mode: STRICT}
  portLevelMtls: {9090: {mode: DISABLE}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: no-tls, namespace: a}
spec:
  host: server.b.svc.cluster.local
  trafficPolicy:
    portLevelSettings: [{port: {number: 80}, tls: {mode: DISABLE}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-a, namespace: b}
spec:
  rules: [{from: [{source: {namespaces: [a]}}]}]
`))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	e := New(snap, Options{Keys: keys{}})
	runChecks(t, e, []checkCase{
		{name: "a DestinationRule disabling TLS under STRICT", cite: "DestinationRule tls.mode DISABLE: the client sends plaintext, which STRICT refuses",
			from: "a/client", to: "b/server", port: 8080, layer: "mtls", policy: "b/server"},
		{name: "port-level DISABLE: plaintext, no identity", cite: "auto mTLS follows the server's mode; namespaces never match plaintext (ISTIO-SECURITY-2021-004)",
			from: "a/client", to: "b/server", port: 9090, status: 0, layer: "authz"},
	})
}

// TestExternalDestinations checks egress control for traffic that leaves
// the cluster: names learned by the DNS proxy, addresses and entities.
func TestExternalDestinations(t *testing.T) {
	snap, errs := config.Parse("t.yaml", []byte(`apiVersion: v1
kind: Pod
metadata: {name: pay, namespace: shop, labels: {app: pay}}
spec: {containers: [{name: c}]}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: egress, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: pay}}
  egress:
  - toFQDNs: [{matchName: api.stripe.com}]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
  - toEntities: [all]
    toPorts: [{ports: [{port: "53", protocol: ANY}], rules: {dns: [{matchPattern: "*"}]}}]
  - toCIDRSet: [{cidr: 198.51.100.0/24, except: [198.51.100.128/25]}]
    toPorts: [{ports: [{port: "5432", protocol: TCP}]}]
  - toEntities: [kube-apiserver]
  - toFQDNs: [{matchName: hooks.example.com}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules: {http: [{method: POST, path: /hook}]}
`))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	e := New(snap, Options{Keys: keys{}})
	if len(e.Rejected) > 0 {
		t.Fatalf("rejected: %+v", e.Rejected)
	}
	pay, _ := snap.Inventory.Workload("shop/pay")
	cases := []struct {
		name, cite string
		req        Request
		allowed    bool
		status     int
		layer      string
	}{
		{"a name the policy allows", "toFQDNs matchName with a DNS rule that lets the proxy see the lookup",
			Request{ToFQDN: "api.stripe.com", ToIP: netip.MustParseAddr("198.51.100.9"), Port: 443}, true, 0, "network-egress"},
		{"another name", "toFQDNs: names not listed are not allowed",
			Request{ToFQDN: "evil.example", Port: 443}, false, 0, "network-egress"},
		{"an address in the CIDR set", "cidr.go: toCIDRSet",
			Request{ToIP: netip.MustParseAddr("198.51.100.20"), Port: 5432}, true, 0, "network-egress"},
		{"an address in the except", "cidr.go: except carves out",
			Request{ToIP: netip.MustParseAddr("198.51.100.200"), Port: 5432}, false, 0, "network-egress"},
		{"the API server", "entity.go: kube-apiserver",
			Request{ToEntity: "kube-apiserver", Port: 6443}, true, 0, "network-egress"},
		{"the host", "entity.go: host is not kube-apiserver",
			Request{ToEntity: "host", Port: 6443}, false, 0, "network-egress"},
		{"HTTP rules on an egress name", "Cilium L7: a request no rules.http allows gets 403",
			Request{ToFQDN: "hooks.example.com", Port: 80, HTTP: &HTTPRequest{Method: "GET", Path: "/hook"}}, false, 403, "l7"},
		{"the allowed request", "Cilium L7: rules.http method POST path /hook",
			Request{ToFQDN: "hooks.example.com", Port: 80, HTTP: &HTTPRequest{Method: "POST", Path: "/hook"}}, true, 200, "network-egress"},
	}
	for _, c := range cases {
		c.req.From = pay
		v, err := e.Check(c.req)
		if err != nil {
			t.Fatal(err)
		}
		if v.Allowed != c.allowed || v.Status != c.status || v.DecidedBy.Layer != c.layer {
			t.Errorf("%s (%s): allowed=%v status=%d layer=%s (%s)", c.name, c.cite, v.Allowed, v.Status, v.DecidedBy.Layer, v.DecidedBy.Reason)
		}
	}
}
