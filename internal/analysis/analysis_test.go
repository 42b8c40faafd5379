package analysis

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/palisade-security/palisade/internal/authz"
	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/engine"
)

func build(t testing.TB, docs string) *engine.Engine {
	t.Helper()
	snap, errs := config.Parse("a.yaml", []byte(docs))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return engine.New(snap, engine.Options{})
}

// checkAgainstPairs compares every workload-level cell of the matrix with
// a direct decision for that very pair: the classes must lose nothing.
func checkAgainstPairs(t *testing.T, e *engine.Engine, m *Matrix, http *engine.PairHTTP) int {
	t.Helper()
	p := e.Pairs()
	n := 0
	m.Each(func(c Cell) bool {
		ok, layer := p.Decide(c.From, c.To, c.Port, http)
		if ok != c.Allowed || layer != c.Layer {
			t.Errorf("%s -> %s:%d: matrix %v %q, direct %v %q", c.From.Key(), c.To.Key(), c.Port, c.Allowed, c.Layer, ok, layer)
			return false
		}
		n++
		return true
	})
	return n
}

func TestReachMatchesDirectDecisions(t *testing.T) {
	snap, _ := config.Load([]string{"../../examples/reference-system"}, nil)
	e := engine.New(snap, engine.Options{})
	for _, http := range []*engine.PairHTTP{{Any: true}, {Method: "GET", Path: "/api/v1/users", Headers: authz.Headers{{Name: "authorization", Value: "Bearer x"}}}} {
		m := Reach(e, ReachOptions{HTTP: http})
		if n := checkAgainstPairs(t, e, m, http); n < 100 {
			t.Errorf("only %d cells", n)
		}
	}
}

// TestReachClassesAreExact generates random inventories and policies in
// which many workloads share labels, and checks the class-based matrix
// against direct decisions for every pair — the fast decider for the
// any-request question, and Check itself for concrete requests and
// connections.
func TestReachClassesAreExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	compressed := 0
	for round := 0; round < 30; round++ {
		docs := randomMesh(rng, 30, 14)
		e := build(t, docs)
		m := Reach(e, ReachOptions{})
		if len(m.Classes) < len(m.Workloads) {
			compressed++
		}
		checkAgainstPairs(t, e, m, &engine.PairHTTP{Any: true})
		checkAgainstCheck(t, e, Reach(e, ReachOptions{Connection: true}), nil)
		for _, http := range []*engine.PairHTTP{{Method: "POST", Path: "/x"}, {Method: "GET", Path: "/y/z"}} {
			checkAgainstCheck(t, e, Reach(e, ReachOptions{HTTP: http}), http)
		}
		if t.Failed() {
			t.Fatalf("round %d:\n%s", round, docs)
		}
	}
	if compressed < 20 {
		t.Errorf("only %d of 30 rounds had classes with several workloads: the test exercises little", compressed)
	}
}

// checkAgainstCheck compares every cell with engine.Check for the same
// connection or request (nil http: a TCP connection, as Pairs asks it).
func checkAgainstCheck(t *testing.T, e *engine.Engine, m *Matrix, http *engine.PairHTTP) {
	t.Helper()
	m.Each(func(c Cell) bool {
		req := engine.Request{From: c.From, To: c.To, Port: c.Port}
		if http != nil {
			req.HTTP = &engine.HTTPRequest{Method: http.Method, Path: http.Path, Host: e.DefaultHost(c.To), Headers: http.Headers}
		}
		v, err := e.Check(req)
		if err != nil {
			t.Fatal(err)
		}
		want := ""
		if !v.Allowed {
			want = v.DecidedBy.Layer
		}
		if v.Allowed != c.Allowed || want != c.Layer {
			t.Errorf("%s -> %s:%d http=%+v: matrix %v %q, Check %v %q (%s)", c.From.Key(), c.To.Key(), c.Port, http, c.Allowed, c.Layer, v.Allowed, want, v.DecidedBy.Reason)
			return false
		}
		return true
	})
}

// randomMesh is workloads over a few namespaces, apps, tiers and service
// accounts — some of them Pods with addresses, some on the host network —
// with Services (some ports opaque), and a mix of every policy kind and of
// the fields that make workloads distinguishable: Cilium selectors on
// service accounts, egress and ingress HTTP rules, NetworkPolicy named
// ports, AuthorizationPolicy principals, namespaces, paths, hosts, SNI and
// ipBlocks, PeerAuthentication modes and DestinationRules selecting clients.
func randomMesh(rng *rand.Rand, workloads, policies int) string {
	var b strings.Builder
	nss := []string{"a", "b", "c"}
	for _, ns := range nss {
		fmt.Fprintf(&b, "apiVersion: v1\nkind: Namespace\nmetadata: {name: %s, labels: {team: t-%s}}\n---\n", ns, ns)
	}
	for i := 0; i < workloads; i++ {
		ns := nss[rng.IntN(len(nss))]
		labels := fmt.Sprintf("{app: app%d, tier: t%d, id: w%d}", rng.IntN(4), rng.IntN(3), i)
		spec := fmt.Sprintf("{serviceAccountName: sa%d, containers: [{name: c, ports: [{name: http, containerPort: 8080}, {containerPort: 9090}]}]}", rng.IntN(3))
		switch rng.IntN(8) {
		case 0: // a Pod with an address
			fmt.Fprintf(&b, "apiVersion: v1\nkind: Pod\nmetadata: {name: w%d, namespace: %s, labels: %s}\nspec: %s\nstatus: {podIP: 10.%d.0.%d}\n---\n",
				i, ns, labels, spec, rng.IntN(2), i+1)
		case 1: // on the host network
			spec = strings.Replace(spec, "{serviceAccountName", "{hostNetwork: true, serviceAccountName", 1)
			fmt.Fprintf(&b, "apiVersion: v1\nkind: Pod\nmetadata: {name: w%d, namespace: %s, labels: %s}\nspec: %s\n---\n", i, ns, labels, spec)
		default:
			fmt.Fprintf(&b, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w%d, namespace: %s}\nspec:\n  template:\n    metadata: {labels: %s}\n    spec: %s\n---\n",
				i, ns, labels, spec)
		}
	}
	// Services by app, some declaring a port opaque; the class folding
	// must keep what makes a port opaque TCP.
	for _, ns := range nss {
		for app := 0; app < 4; app++ {
			name := []string{"http", "tcp-main", "grpc", "redis"}[rng.IntN(4)]
			fmt.Fprintf(&b, "apiVersion: v1\nkind: Service\nmetadata: {name: svc%d, namespace: %s}\nspec:\n  selector: {app: app%d}\n  ports: [{name: %s, port: 80, targetPort: %d}]\n---\n",
				app, ns, app, name, []int{8080, 9090}[rng.IntN(2)])
		}
	}
	switch rng.IntN(3) {
	case 0:
		fmt.Fprintf(&b, "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: dr, namespace: a}\nspec:\n  host: svc1.a.svc.cluster.local\n  trafficPolicy: {tls: {mode: DISABLE}}\n---\n")
	case 1: // only for some clients
		fmt.Fprintf(&b, "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: dr, namespace: %s}\nspec:\n  host: svc%d.%s.svc.cluster.local\n  workloadSelector: {matchLabels: {tier: t%d}}\n  trafficPolicy: {tls: {mode: DISABLE}}\n---\n",
			nss[rng.IntN(3)], rng.IntN(4), nss[rng.IntN(3)], rng.IntN(3))
	}
	for _, ns := range nss {
		if mode := []string{"", "PERMISSIVE", "DISABLE"}[rng.IntN(3)]; mode != "" {
			fmt.Fprintf(&b, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: pa, namespace: %s}\nspec: {mtls: {mode: %s}}\n---\n", ns, mode)
		}
	}
	for i := 0; i < policies; i++ {
		ns := nss[rng.IntN(len(nss))]
		switch rng.IntN(9) {
		case 0:
			fmt.Fprintf(&b, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ap%d, namespace: %s}\nspec:\n  selector: {matchLabels: {app: app%d}}\n  action: %s\n  rules:\n  - from: [{source: {principals: [cluster.local/ns/%s/sa/sa%d]}}]\n    to: [{operation: {ports: [\"%d\"]}}]\n---\n",
				i, ns, rng.IntN(4), []string{"ALLOW", "DENY"}[rng.IntN(2)], nss[rng.IntN(3)], rng.IntN(3), []int{8080, 9090}[rng.IntN(2)])
		case 1:
			fmt.Fprintf(&b, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ap%d, namespace: %s}\nspec:\n  rules:\n  - from: [{source: {namespaces: [%s]}}]\n    to: [{operation: {methods: [GET, POST], paths: [\"/x*\"]}}]\n---\n",
				i, ns, nss[rng.IntN(3)])
		case 2:
			fmt.Fprintf(&b, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np%d, namespace: %s}\nspec:\n  podSelector: {matchLabels: {tier: t%d}}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {team: t-%s}}, podSelector: {matchExpressions: [{key: app, operator: NotIn, values: [app%d]}]}}]\n    ports: [{port: http}]\n---\n",
				i, ns, rng.IntN(3), nss[rng.IntN(3)], rng.IntN(4))
		case 3:
			fmt.Fprintf(&b, "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: cnp%d, namespace: %s}\nspec:\n  endpointSelector: {matchLabels: {app: app%d}}\n  egress:\n  - toEndpoints: [{matchLabels: {tier: t%d, k8s:io.kubernetes.pod.namespace: %s}}]\n    toPorts: [{ports: [{port: \"9090\", protocol: TCP}]}]\n---\n",
				i, ns, rng.IntN(4), rng.IntN(3), nss[rng.IntN(3)])
		case 4: // the service account in Cilium's identity
			fmt.Fprintf(&b, "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: cnp%d, namespace: %s}\nspec:\n  endpointSelector: {matchLabels: {tier: t%d}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {k8s:io.cilium.k8s.policy.serviceaccount: sa%d, k8s:io.kubernetes.pod.namespace: %s}}]\n---\n",
				i, ns, rng.IntN(3), rng.IntN(3), nss[rng.IntN(3)])
		case 5: // HTTP rules at the client's egress or the server's ingress
			dir, peer := "ingress", "fromEndpoints"
			if rng.IntN(2) == 0 {
				dir, peer = "egress", "toEndpoints"
			}
			fmt.Fprintf(&b, "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: cnp%d, namespace: %s}\nspec:\n  endpointSelector: {matchLabels: {app: app%d}}\n  %s:\n  - %s: [{matchLabels: {tier: t%d}}]\n    toPorts: [{ports: [{port: \"8080\", protocol: TCP}], rules: {http: [{method: POST, path: \"/x.*\"}]}}]\n---\n",
				i, ns, rng.IntN(4), dir, peer, rng.IntN(3))
		case 6: // hosts and SNI name the Service
			fmt.Fprintf(&b, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ap%d, namespace: %s}\nspec:\n  action: DENY\n  rules:\n  - to: [{operation: {hosts: [\"svc%d.%s.svc.cluster.local\"]}}]\n---\n",
				i, ns, rng.IntN(4), ns)
		case 7:
			fmt.Fprintf(&b, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ap%d, namespace: %s}\nspec:\n  action: DENY\n  rules:\n  - when: [{key: connection.sni, values: [\"outbound_.80_._.svc%d.%s.svc.cluster.local\"]}]\n---\n",
				i, ns, rng.IntN(4), ns)
		default: // addresses
			fmt.Fprintf(&b, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ap%d, namespace: %s}\nspec:\n  action: DENY\n  rules:\n  - from: [{source: {ipBlocks: [10.%d.0.0/16]}}]\n---\n",
				i, ns, rng.IntN(2))
		}
	}
	return b.String()
}

func TestExposure(t *testing.T) {
	// a → b → c in a line; d reaches nobody and nobody reaches d.
	docs := ""
	for _, w := range []string{"a", "b", "c", "d"} {
		docs += fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: x, labels: {app: %s}}\nspec: {containers: [{name: c, ports: [{containerPort: 80}]}]}\n---\n", w, w)
	}
	for dst, src := range map[string]string{"b": "a", "c": "b", "a": "", "d": ""} {
		from := "[]"
		if src != "" {
			from = fmt.Sprintf("[{podSelector: {matchLabels: {app: %s}}}]", src)
		}
		docs += fmt.Sprintf("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: to-%s, namespace: x}\nspec:\n  podSelector: {matchLabels: {app: %s}}\n  policyTypes: [Ingress]\n  ingress: [{from: %s}]\n---\n", dst, dst, from)
	}
	// An ingress rule with from: [] allows everyone; make a and d allow
	// nobody instead.
	docs = strings.ReplaceAll(docs, "ingress: [{from: []}]", "ingress: []")
	e := build(t, docs)
	r := Reach(e, ReachOptions{}).Exposure()
	got := map[string][2]int{}
	for _, x := range r.Workloads {
		got[x.Workload.Name] = [2]int{x.Direct, x.Transitive}
	}
	want := map[string][2]int{"a": {1, 2}, "b": {1, 1}, "c": {0, 0}, "d": {0, 0}}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: direct, transitive = %v, want %v", k, got[k], v)
		}
	}
	if r.Baseline != 12 || r.Paths != 3 || r.Workloads[0].Workload.Name != "a" {
		t.Errorf("paths %d of %d, top %s", r.Paths, r.Baseline, r.Workloads[0].Workload.Name)
	}
	if red := r.Reduction(); red != 0.75 {
		t.Errorf("reduction %v", red)
	}
}

func TestDiff(t *testing.T) {
	base := "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x, labels: {app: a}}\nspec: {containers: [{name: c, ports: [{containerPort: 80}]}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: x, labels: {app: b}}\nspec: {containers: [{name: c, ports: [{containerPort: 80}]}]}\n---\n"
	deny := "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: x}\nspec: {podSelector: {matchLabels: {app: b}}, policyTypes: [Ingress]}\n"
	before, after := build(t, base), build(t, base+deny)
	r := Diff(Reach(before, ReachOptions{}), Reach(after, ReachOptions{}))
	if len(r.NowDenied) != 1 || r.NowDenied[0].From != "x/a" || r.NowDenied[0].To != "x/b" || r.NowDenied[0].After.Layer != engine.LayerNetworkIngress || len(r.NowAllowed) != 0 {
		t.Errorf("diff: %+v", r)
	}
}
