package netpol

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func cnp(ns, name, spec string) string {
	return fmt.Sprintf("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: %s, namespace: %s}\nspec:\n%s\n---\n", name, ns, indent(spec))
}

func ccnp(name, spec string) string {
	return fmt.Sprintf("apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: %s}\nspec:\n%s\n---\n", name, indent(spec))
}

func TestCiliumNetworkPolicy(t *testing.T) {
	runNetpolCases(t, e2eModel(), []netpolCase{
		{name: "ingress: [] does not default-deny", cite: "policyentry.go: no entries for an empty list, so no default deny (cilium-semantics §1.2)",
			policies: cnp("x", "p", "endpointSelector: {}\ningress: []\negress: []"),
			probes:   []probe{{"y/a", "x/a", 80, "", true}, {"x/a", "y/a", 80, "", true}}},
		{name: "ingress: [{}] denies all", cite: "policyentry.go: empty L3 and no L4 selects nothing, yet puts ingress in default deny",
			policies: cnp("x", "p", "endpointSelector: {}\ningress: [{}]"),
			probes:   []probe{{"y/a", "x/a", 80, "", false}, {"x/b", "x/a", 80, "", false}, {"x/a", "y/a", 80, "", true}}},
		{name: "fromEndpoints {} is the policy's namespace", cite: "PR #14580: an empty EndpointSelector selects all endpoints in the CNP's namespace",
			policies: cnp("x", "p", "endpointSelector: {matchLabels: {pod: a}}\ningress:\n- fromEndpoints: [{}]"),
			probes:   []probe{{"x/b", "x/a", 80, "", true}, {"y/b", "x/a", 80, "", false}}},
		{name: "a peer naming a namespace crosses namespaces", cite: "utils.go getEndpointSelector: no namespace added when k8s:io.kubernetes.pod.namespace is given",
			policies: cnp("x", "p", "endpointSelector: {matchLabels: {pod: a}}\ningress:\n- fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: y, pod: b}}]"),
			probes:   []probe{{"y/b", "x/a", 80, "", true}, {"x/b", "x/a", 80, "", false}}},
		{name: "namespace labels", cite: "utils.go: selectors on io.cilium.k8s.namespace.labels are not confined to the policy's namespace (newest)",
			policies: cnp("x", "p", "endpointSelector: {matchLabels: {pod: a}}\ningress:\n- fromEndpoints: [{matchLabels: {k8s:io.cilium.k8s.namespace.labels.ns: z}}]"),
			probes:   []probe{{"z/c", "x/a", 80, "", true}, {"y/c", "x/a", 80, "", false}}},
		{name: "the endpointSelector stays in the policy's namespace", cite: "utils.go: a namespace in a CNP's endpointSelector is overridden",
			policies: cnp("x", "p", "endpointSelector: {matchLabels: {k8s:io.kubernetes.pod.namespace: y}}\ningress: [{}]"),
			probes:   []probe{{"z/a", "y/a", 80, "", true}, {"z/a", "x/a", 80, "", false}}},
		{name: "toPorts without peers allows every peer", cite: "policyentry.go: empty L3 with L4 is a wildcard",
			policies: cnp("x", "p", "endpointSelector: {matchLabels: {pod: a}}\ningress:\n- toPorts: [{ports: [{port: '80', protocol: TCP}]}]"),
			probes:   []probe{{"z/c", "x/a", 80, "", true}, {"z/c", "x/a", 81, "", false}}},
		{name: "fromEntities: [] selects nothing", cite: "mergeEndpointSelectors: an empty non-nil slice selects no identity",
			policies: cnp("x", "p", "endpointSelector: {matchLabels: {pod: a}}\ningress:\n- fromEntities: []\n  toPorts: [{ports: [{port: '80'}]}]"),
			probes:   []probe{{"z/c", "x/a", 80, "", false}}},
		{name: "fromEntities cluster", cite: "entity.go: cluster is every in-cluster identity",
			policies: cnp("x", "p", "endpointSelector: {matchLabels: {pod: a}}\ningress:\n- fromEntities: [cluster]"),
			probes:   []probe{{"z/c", "x/a", 80, "", true}}},
		{name: "ingressDeny wins over an allow", cite: "language.rst Deny Policies: deny takes precedence over allow",
			policies: cnp("x", "p", "endpointSelector: {matchLabels: {pod: a}}\ningress:\n- fromEntities: [all]\ningressDeny:\n- fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: y}}]\n  toPorts: [{ports: [{port: '81', protocol: TCP}]}]"),
			probes:   []probe{{"y/a", "x/a", 81, "", false}, {"y/a", "x/a", 80, "", true}, {"z/a", "x/a", 81, "", true}}},
		{name: "a deny rule alone still default-denies", cite: "cilium-semantics §1.3: a deny rule on its own puts its direction into default deny",
			policies: cnp("x", "p", "endpointSelector: {matchLabels: {pod: a}}\ningressDeny:\n- fromEndpoints: [{matchLabels: {pod: b}}]"),
			probes:   []probe{{"x/b", "x/a", 80, "", false}, {"x/c", "x/a", 80, "", false}}},
		{name: "enableDefaultDeny false", cite: "CFP-30572: only explicit denies block when default deny is off",
			policies: cnp("x", "p", "endpointSelector: {matchLabels: {pod: a}}\nenableDefaultDeny: {ingress: false}\ningressDeny:\n- fromEndpoints: [{matchLabels: {pod: b}}]"),
			probes:   []probe{{"x/b", "x/a", 80, "", false}, {"x/c", "x/a", 80, "", true}}},
		{name: "default deny wins over enableDefaultDeny false", cite: "CFP-30572: both true and false → deny",
			policies: cnp("x", "p1", "endpointSelector: {matchLabels: {pod: a}}\nenableDefaultDeny: {ingress: false}\ningress:\n- fromEndpoints: [{matchLabels: {pod: b}}]") +
				cnp("x", "p2", "endpointSelector: {matchLabels: {pod: a}}\ningress:\n- fromEndpoints: [{matchLabels: {pod: c}}]"),
			probes: []probe{{"x/b", "x/a", 80, "", true}, {"x/c", "x/a", 80, "", true}, {"y/a", "x/a", 80, "", false}}},
		{name: "named port", cite: "l4.go: a port may be an IANA service name, resolved to the container port",
			policies: cnp("x", "p", "endpointSelector: {matchLabels: {pod: a}}\ningress:\n- toPorts: [{ports: [{port: serve-81-tcp}]}]"),
			probes:   []probe{{"y/a", "x/a", 81, "", true}, {"y/a", "x/a", 80, "", false}}},
		{name: "port range", cite: "l4.go: endPort makes a range",
			policies: cnp("x", "p", "endpointSelector: {matchLabels: {pod: a}}\ningress:\n- toPorts: [{ports: [{port: '80', endPort: 81, protocol: TCP}]}]"),
			probes:   []probe{{"y/a", "x/a", 81, "", true}, {"y/a", "x/a", 81, "UDP", false}}},
		{name: "protocol ANY", cite: "l4.go: an empty protocol is ANY",
			policies: cnp("x", "p", "endpointSelector: {matchLabels: {pod: a}}\ningress:\n- toPorts: [{ports: [{port: '80'}]}]"),
			probes:   []probe{{"y/a", "x/a", 80, "UDP", true}, {"y/a", "x/a", 80, "", true}}},
		{name: "egress default deny", cite: "intro.rst: a rule with an egress section puts egress into default deny",
			policies: cnp("x", "p", "endpointSelector: {matchLabels: {pod: a}}\negress:\n- toEndpoints: [{matchLabels: {pod: b}}]"),
			probes:   []probe{{"x/a", "x/b", 80, "", true}, {"x/a", "x/c", 80, "", false}, {"x/a", "y/b", 80, "", false}}},
		{name: "clusterwide peer selectors are any namespace", cite: "utils.go: in a CCNP a selector without a namespace gets namespace Exists",
			policies: ccnp("p", "endpointSelector: {matchLabels: {pod: a}}\ningress:\n- fromEndpoints: [{matchLabels: {pod: b}}]"),
			probes:   []probe{{"z/b", "x/a", 80, "", true}, {"z/b", "y/a", 80, "", true}, {"z/c", "y/a", 80, "", false}}},
		{name: "CIDR rules do not select pods", cite: "language.rst: CIDR rules do not apply when both sides are managed by Cilium",
			policies: cnp("x", "p", "endpointSelector: {matchLabels: {pod: a}}\ningress:\n- fromCIDR: [10.0.0.0/8]"),
			probes:   []probe{{"y/a", "x/a", 80, "", false}}},
		{name: "enforcement always", cite: "intro.rst: policyEnforcementMode always enforces on every endpoint",
			settings: Settings{EnforcementMode: "always"},
			probes:   []probe{{"y/a", "x/a", 80, "", false}}},
		{name: "enforcement never", cite: "intro.rst: policyEnforcementMode never enforces nothing",
			settings: Settings{EnforcementMode: "never"},
			policies: cnp("x", "p", "endpointSelector: {}\ningress: [{}]"),
			probes:   []probe{{"y/a", "x/a", 80, "", true}}},
		{name: "audit mode", cite: "policyAuditMode: would-be drops become AUDIT verdicts",
			settings: Settings{AuditMode: true},
			policies: cnp("x", "p", "endpointSelector: {}\ningress: [{}]"),
			probes:   []probe{{"y/a", "x/a", 80, "", true}}},
	})
}

func TestWorldPeers(t *testing.T) {
	s, inv := compile(t, e2eModel()+cnp("x", "p", `endpointSelector: {matchLabels: {pod: a}}
ingress:
- fromCIDRSet: [{cidr: 203.0.113.0/24, except: [203.0.113.128/25]}]
egress:
- toFQDNs: [{matchName: api.stripe.com}, {matchPattern: '*.amazonaws.com'}]
  toPorts: [{ports: [{port: '443', protocol: TCP}]}]
- toEntities: [world]
  toPorts: [{ports: [{port: '53', protocol: UDP}], rules: {dns: [{matchPattern: '*'}]}}]`))
	a, _ := inv.Workload("x/a")
	ep := s.Endpoint(a)
	cases := []struct {
		cite string
		dir  Direction
		peer *Peer
		port uint16
		prot string
		want bool
	}{
		{"cidr.go: CIDRSet except carves out", Ingress, World(netip.MustParseAddr("203.0.113.7"), ""), 80, "TCP", true},
		{"cidr.go: except", Ingress, World(netip.MustParseAddr("203.0.113.200"), ""), 80, "TCP", false},
		{"fqdn.go: matchName is exact and case-insensitive", Egress, World(netip.Addr{}, "API.Stripe.com"), 443, "TCP", true},
		{"matchpattern: * stays within one label", Egress, World(netip.Addr{}, "s3.amazonaws.com"), 443, "TCP", true},
		{"matchpattern: *.amazonaws.com does not match two labels", Egress, World(netip.Addr{}, "a.s3.amazonaws.com"), 443, "TCP", false},
		{"matchpattern: nor the bare domain", Egress, World(netip.Addr{}, "amazonaws.com"), 443, "TCP", false},
		{"toFQDNs: other names are not allowed", Egress, World(netip.Addr{}, "evil.example"), 443, "TCP", false},
		{"entity world", Egress, World(netip.MustParseAddr("8.8.8.8"), ""), 53, "UDP", true},
	}
	for _, c := range cases {
		if v := s.Decide(ep, c.dir, c.peer, c.port, c.prot); v.Allowed != c.want {
			t.Errorf("%s: %s %s %d/%s: allowed=%v (%s)", c.cite, c.dir, c.peer, c.port, c.prot, v.Allowed, v.Reason())
		}
	}

	// cilium-semantics §1.7: toFQDNs addresses are learned only through the
	// DNS proxy, which needs an egress rule with rules.dns.
	s, inv = compile(t, e2eModel()+cnp("x", "p", `endpointSelector: {matchLabels: {pod: a}}
egress:
- toFQDNs: [{matchName: api.stripe.com}]
  toPorts: [{ports: [{port: '443', protocol: TCP}]}]
- toEntities: [world]
  toPorts: [{ports: [{port: '53', protocol: UDP}]}]`))
	a, _ = inv.Workload("x/a")
	v := s.Decide(s.Endpoint(a), Egress, World(netip.Addr{}, "api.stripe.com"), 443, "TCP")
	if v.Allowed || !strings.Contains(v.Reason(), "no egress rule with rules.dns") {
		t.Errorf("toFQDNs without a DNS rule: %+v", v)
	}
}

func TestHTTPRules(t *testing.T) {
	s, inv := compile(t, e2eModel()+cnp("x", "p", `endpointSelector: {matchLabels: {pod: a}}
ingress:
- fromEndpoints: [{matchLabels: {pod: b}}]
  toPorts:
  - ports: [{port: '80', protocol: TCP}]
    rules:
      http:
      - {method: GET, path: '/api/v1/.*'}
      - {method: POST, path: /api/v1/users, headers: ['Content-Type: application/json']}
      - {method: GET, path: /bearer, headers: ['Authorization: Bearer .*']}
      - {method: GET, path: /present, headers: [X-Token]}
- fromEndpoints: [{matchLabels: {pod: c}}]
  toPorts:
  - ports: [{port: '80', protocol: TCP}]
    rules:
      http: [{method: GET, path: /only}]
- fromEndpoints: [{matchLabels: {pod: c}}]
  toPorts: [{ports: [{port: '80', protocol: TCP}]}]`))
	a, _ := inv.Workload("x/a")
	b, _ := inv.Workload("x/b")
	c, _ := inv.Workload("x/c")
	ep := s.Endpoint(a)
	vb := s.Decide(ep, Ingress, s.PeerOf(b), 80, "TCP")
	httpB := s.HTTPEntries(ep, Ingress, s.PeerOf(b), 80, "TCP")
	if !vb.Allowed || !vb.L7 || len(httpB) != 1 {
		t.Fatalf("pod b: %+v", vb)
	}
	hdr := func(kv ...string) func(string) (string, bool) {
		return func(n string) (string, bool) {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == n {
					return kv[i+1], true
				}
			}
			return "", false
		}
	}
	for _, r := range []struct {
		cite string
		req  HTTPRequest
		want bool
	}{
		{"Envoy safe_regex_match: the whole path must match", HTTPRequest{Method: "GET", Path: "/api/v1/users", Headers: hdr()}, true},
		{"safe_regex_match is anchored", HTTPRequest{Method: "GET", Path: "/x/api/v1/users", Headers: hdr()}, false},
		{"the method is a regex on :method", HTTPRequest{Method: "DELETE", Path: "/api/v1/users", Headers: hdr()}, false},
		{"headers 'Name: value' need the exact value", HTTPRequest{Method: "POST", Path: "/api/v1/users", Headers: hdr("content-type", "application/json")}, true},
		{"getHTTPRule: header values are exact, not regexes", HTTPRequest{Method: "GET", Path: "/bearer", Headers: hdr("authorization", "Bearer abc")}, false},
		{"the literal value matches", HTTPRequest{Method: "GET", Path: "/bearer", Headers: hdr("authorization", "Bearer .*")}, true},
		{"a header without a value needs presence", HTTPRequest{Method: "GET", Path: "/present", Headers: hdr("x-token", "")}, true},
		{":path includes the query string", HTTPRequest{Method: "POST", Path: "/api/v1/users?x=1", Headers: hdr("content-type", "application/json")}, false},
	} {
		if got := DecideHTTP(httpB, &r.req); got.Allowed != r.want {
			t.Errorf("%s: %+v allowed=%v (%s)", r.cite, r.req, got.Allowed, got.Reason())
		}
	}
	// "If a layer 4 rule is specified in the policy, and a similar layer 4
	// rule with layer 7 rules is also specified, then the layer 7 portions of
	// the latter rule will have no effect."
	if vc := s.Decide(ep, Ingress, s.PeerOf(c), 80, "TCP"); !vc.Allowed || vc.L7 {
		t.Errorf("pod c: an L4-only allow must lift the L7 rules: %+v", vc)
	}
}
