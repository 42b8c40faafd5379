package netpol

import (
	"fmt"
	"strings"
	"testing"

	"github.com/palisade-security/palisade/internal/config"
)

// The model of Kubernetes' network policy e2e tests
// (test/e2e/network/netpol): namespaces x, y and z, each with pods a, b
// and c serving on 80 and 81 over TCP and UDP.
func e2eModel() string {
	var b strings.Builder
	for ni, ns := range []string{"x", "y", "z"} {
		fmt.Fprintf(&b, "apiVersion: v1\nkind: Namespace\nmetadata: {name: %s, labels: {ns: %s}}\n---\n", ns, ns)
		for pi, pod := range []string{"a", "b", "c"} {
			fmt.Fprintf(&b, `apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: %s, labels: {pod: %s}}
spec:
  containers:
  - name: c
    ports:
    - {name: serve-80-tcp, containerPort: 80}
    - {name: serve-81-tcp, containerPort: 81}
    - {name: serve-80-udp, containerPort: 80, protocol: UDP}
    - {name: serve-81-udp, containerPort: 81, protocol: UDP}
status: {podIP: 10.0.%d.%d}
---
`, pod, ns, pod, ni+1, pi+1)
		}
	}
	return b.String()
}

func knp(ns, name, spec string) string {
	return fmt.Sprintf("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: %s, namespace: %s}\nspec:\n%s\n---\n", name, ns, indent(spec))
}

func indent(s string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i := range lines {
		lines[i] = "  " + lines[i]
	}
	return strings.Join(lines, "\n")
}

// reach is the connection verdict: egress at the client and ingress at the
// server must both allow it.
type probe struct {
	from, to string
	port     uint16
	proto    string
	want     bool
}

func decideProbe(t *testing.T, s *Set, inv *config.Inventory, p probe) (bool, string) {
	t.Helper()
	from, err := inv.Workload(p.from)
	if err != nil {
		t.Fatal(err)
	}
	to, err := inv.Workload(p.to)
	if err != nil {
		t.Fatal(err)
	}
	proto := p.proto
	if proto == "" {
		proto = "TCP"
	}
	out := s.Decide(s.Endpoint(from), Egress, s.PeerOf(to), p.port, proto)
	if !out.Allowed {
		return false, out.Reason()
	}
	in := s.Decide(s.Endpoint(to), Ingress, s.PeerOf(from), p.port, proto)
	return in.Allowed, in.Reason()
}

func compileSnapshot(t testing.TB, snap *config.Snapshot, settings Settings) *Set {
	t.Helper()
	var ps []*Policy
	for _, r := range snap.NetworkPolicies {
		p, err := FromNetworkPolicy(r)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	for _, r := range append(append([]*config.Resource[*config.CiliumPolicy]{}, snap.CiliumNetworkPolicies...), snap.CiliumClusterwideNetworkPolicies...) {
		p, errs := FromCiliumPolicy(r)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		ps = append(ps, p)
	}
	return NewSet(ps, &snap.Inventory, settings)
}

type netpolCase struct {
	name, cite string
	policies   string
	settings   Settings
	probes     []probe
}

func runNetpolCases(t *testing.T, model string, cases []netpolCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			snap, errs := config.Parse("np.yaml", []byte(model+c.policies))
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			s := compileSnapshot(t, snap, c.settings)
			for _, p := range c.probes {
				if got, why := decideProbe(t, s, &snap.Inventory, p); got != p.want {
					t.Errorf("%s\n%s -> %s:%d/%s: allowed=%v, want %v (%s)", c.cite, p.from, p.to, p.port, p.proto, got, p.want, why)
				}
			}
		})
	}
}

func TestKubernetesNetworkPolicy(t *testing.T) {
	runNetpolCases(t, e2eModel(), []netpolCase{
		{name: "no policy", cite: "NetworkPolicy docs: pods are non-isolated by default",
			probes: []probe{{"x/a", "y/b", 80, "", true}}},
		{name: "default-deny-ingress", cite: "e2e 'should support a default-deny-ingress policy'",
			policies: knp("x", "deny-ingress", "podSelector: {}\npolicyTypes: [Ingress]"),
			probes:   []probe{{"y/a", "x/a", 80, "", false}, {"x/b", "x/a", 80, "", false}, {"x/a", "y/a", 80, "", true}}},
		{name: "default-deny-all", cite: "e2e 'should support a default-deny-all policy'",
			policies: knp("x", "deny-all", "podSelector: {}\npolicyTypes: [Ingress, Egress]"),
			probes:   []probe{{"x/a", "y/a", 80, "", false}, {"y/a", "x/a", 80, "", false}, {"y/a", "y/b", 80, "", true}}},
		{name: "policyTypes defaults to Ingress", cite: "NetworkPolicy API: policyTypes omitted → Ingress, plus Egress if egress rules exist",
			policies: knp("x", "p", "podSelector: {matchLabels: {pod: a}}"),
			probes:   []probe{{"x/b", "x/a", 80, "", false}, {"x/a", "x/b", 80, "", true}}},
		{name: "allow from a pod in the same namespace", cite: "e2e 'should enforce policy to allow traffic from pods within server namespace based on PodSelector'",
			policies: knp("x", "p", "podSelector: {matchLabels: {pod: a}}\ningress:\n- from:\n  - podSelector: {matchLabels: {pod: b}}"),
			probes:   []probe{{"x/b", "x/a", 80, "", true}, {"x/c", "x/a", 80, "", false}, {"y/b", "x/a", 80, "", false}}},
		{name: "namespaceSelector", cite: "e2e 'should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector'",
			policies: knp("x", "p", "podSelector: {matchLabels: {pod: a}}\ningress:\n- from:\n  - namespaceSelector: {matchLabels: {ns: y}}"),
			probes:   []probe{{"y/c", "x/a", 80, "", true}, {"x/b", "x/a", 80, "", false}, {"z/b", "x/a", 80, "", false}}},
		{name: "default namespace label", cite: "e2e 'should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label'",
			policies: knp("x", "p", "podSelector: {matchLabels: {pod: a}}\ningress:\n- from:\n  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}"),
			probes:   []probe{{"y/c", "x/a", 80, "", true}, {"z/c", "x/a", 80, "", false}}},
		{name: "namespaceSelector matchExpressions", cite: "e2e 'should enforce policy based on NamespaceSelector with MatchExpressions'",
			policies: knp("x", "p", "podSelector: {matchLabels: {pod: a}}\ningress:\n- from:\n  - namespaceSelector: {matchExpressions: [{key: ns, operator: In, values: [y]}]}"),
			probes:   []probe{{"y/a", "x/a", 80, "", true}, {"z/a", "x/a", 80, "", false}}},
		{name: "podSelector or namespaceSelector", cite: "e2e 'should enforce policy based on PodSelector or NamespaceSelector'",
			policies: knp("x", "p", "podSelector: {matchLabels: {pod: a}}\ningress:\n- from:\n  - namespaceSelector: {matchExpressions: [{key: ns, operator: NotIn, values: [x]}]}\n  - podSelector: {matchLabels: {pod: b}}"),
			probes:   []probe{{"x/b", "x/a", 80, "", true}, {"y/c", "x/a", 80, "", true}, {"x/c", "x/a", 80, "", false}}},
		{name: "podSelector and namespaceSelector", cite: "e2e 'should enforce policy based on PodSelector and NamespaceSelector'",
			policies: knp("x", "p", "podSelector: {matchLabels: {pod: a}}\ningress:\n- from:\n  - namespaceSelector: {matchExpressions: [{key: ns, operator: NotIn, values: [x]}]}\n    podSelector: {matchLabels: {pod: b}}"),
			probes:   []probe{{"y/b", "x/a", 80, "", true}, {"z/b", "x/a", 80, "", true}, {"x/b", "x/a", 80, "", false}, {"y/c", "x/a", 80, "", false}}},
		{name: "an empty namespaceSelector is every namespace", cite: "NetworkPolicy API: an empty namespaceSelector selects all namespaces",
			policies: knp("x", "p", "podSelector: {matchLabels: {pod: a}}\ningress:\n- from:\n  - namespaceSelector: {}\n    podSelector: {matchLabels: {pod: c}}"),
			probes:   []probe{{"z/c", "x/a", 80, "", true}, {"z/b", "x/a", 80, "", false}}},
		{name: "ports", cite: "e2e 'should enforce policy based on Ports'",
			policies: knp("x", "p", "podSelector: {matchLabels: {pod: a}}\ningress:\n- ports: [{port: 81}]"),
			probes:   []probe{{"y/b", "x/a", 81, "", true}, {"y/b", "x/a", 80, "", false}, {"y/b", "x/a", 81, "UDP", false}}},
		{name: "named port", cite: "e2e 'should allow ingress access on one named port'",
			policies: knp("x", "p", "podSelector: {matchLabels: {pod: a}}\ningress:\n- ports: [{port: serve-81-tcp}]"),
			probes:   []probe{{"y/b", "x/a", 81, "", true}, {"y/b", "x/a", 80, "", false}}},
		{name: "egress named port", cite: "e2e 'should allow egress access on one named port'",
			policies: knp("x", "p", "podSelector: {matchLabels: {pod: a}}\npolicyTypes: [Egress]\negress:\n- ports: [{port: serve-80-tcp}]"),
			probes:   []probe{{"x/a", "y/b", 80, "", true}, {"x/a", "y/b", 81, "", false}}},
		{name: "protocol without a port", cite: "e2e 'should enforce ingress policy allowing any port traffic to a server on a specific protocol'",
			policies: knp("x", "p", "podSelector: {matchLabels: {pod: a}}\ningress:\n- ports: [{protocol: TCP}]"),
			probes:   []probe{{"y/b", "x/a", 80, "", true}, {"y/b", "x/a", 81, "", true}, {"y/b", "x/a", 80, "UDP", false}}},
		{name: "endPort", cite: "e2e 'should support a ... policy with endPort'",
			policies: knp("x", "p", "podSelector: {matchLabels: {pod: a}}\ningress:\n- ports: [{port: 80, endPort: 81}]"),
			probes:   []probe{{"y/b", "x/a", 81, "", true}, {"y/b", "x/a", 82, "", false}}},
		{name: "allow-all", cite: "e2e 'should support allow-all policy': ingress [{}]",
			policies: knp("x", "p", "podSelector: {}\ningress:\n- {}"),
			probes:   []probe{{"y/b", "x/a", 80, "", true}, {"z/c", "x/c", 81, "UDP", true}}},
		{name: "stacked policies add up", cite: "e2e 'should enforce multiple, stacked policies with overlapping podSelectors'",
			policies: knp("x", "p1", "podSelector: {matchLabels: {pod: a}}\ningress:\n- ports: [{port: 80}]") + knp("x", "p2", "podSelector: {matchLabels: {pod: a}}\ningress:\n- ports: [{port: 81}]"),
			probes:   []probe{{"y/b", "x/a", 80, "", true}, {"y/b", "x/a", 81, "", true}}},
		{name: "egress denied even if the server allows", cite: "e2e 'should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)'",
			policies: knp("x", "deny-egress", "podSelector: {}\npolicyTypes: [Egress]") + knp("y", "allow", "podSelector: {}\ningress:\n- {}"),
			probes:   []probe{{"x/a", "y/a", 80, "", false}, {"z/a", "y/a", 80, "", true}}},
		{name: "egress to another namespace", cite: "e2e 'should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector'",
			policies: knp("x", "p", "podSelector: {matchLabels: {pod: a}}\npolicyTypes: [Egress]\negress:\n- to:\n  - namespaceSelector: {matchLabels: {ns: y}}\n    podSelector: {matchLabels: {pod: a}}"),
			probes:   []probe{{"x/a", "y/a", 80, "", true}, {"x/a", "y/b", 80, "", false}, {"x/b", "y/b", 80, "", true}}},
	})
}

func compile(t testing.TB, docs string) (*Set, *config.Inventory) {
	t.Helper()
	snap, errs := config.Parse("np.yaml", []byte(docs))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return compileSnapshot(t, snap, Settings{}), &snap.Inventory
}
