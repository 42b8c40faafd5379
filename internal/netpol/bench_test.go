package netpol

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/palisade-security/palisade/internal/config"
)

// benchMesh is one server pod selected by 200 CiliumNetworkPolicy rules,
// each allowing one client app on one port, and 200 client pods.
func benchMesh(tb testing.TB) (*Set, *config.Inventory) {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Pod\nmetadata: {name: server, namespace: shop, labels: {app: server, tier: backend}}\nspec: {containers: [{name: c, ports: [{containerPort: 8080}]}]}\n---\n")
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&b, "apiVersion: v1\nkind: Pod\nmetadata: {name: client-%d, namespace: shop, labels: {app: client-%d}}\nspec: {containers: [{name: c}]}\n---\n", i, i)
		fmt.Fprintf(&b, `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p-%d, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: server}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client-%d}}]
    toPorts: [{ports: [{port: "%d", protocol: TCP}]}]
  ingressDeny:
  - fromCIDR: [192.0.2.%d/32]
---
`, i, i, 8000+i, i)
	}
	snap, errs := config.Parse("bench.yaml", []byte(b.String()))
	if len(errs) > 0 {
		tb.Fatal(errs[0])
	}
	var ps []*Policy
	for _, r := range snap.CiliumNetworkPolicies {
		p, errs := FromCiliumPolicy(r)
		if len(errs) > 0 {
			tb.Fatal(errs)
		}
		ps = append(ps, p)
	}
	return NewSet(ps, &snap.Inventory, Settings{}), &snap.Inventory
}

// BenchmarkDecideL4 decides an ingress connection at a pod selected by 200
// rules. "pod" is a pod peer, whose selector resolution is cached as
// Cilium caches identities; "world" is an address outside the cluster,
// matched against every rule each time: the baseline.
func BenchmarkDecideL4(b *testing.B) {
	s, inv := benchMesh(b)
	server, _ := inv.Workload("shop/server")
	client, _ := inv.Workload("shop/client-199")
	ep := s.Endpoint(server)
	for _, c := range []struct {
		name string
		peer *Peer
		port uint16
		want bool
	}{
		{"pod", s.PeerOf(client), 8199, true},
		{"world", World(netip.MustParseAddr("203.0.113.9"), ""), 8199, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			if v := s.Decide(ep, Ingress, c.peer, c.port, "TCP"); v.Allowed != c.want {
				b.Fatalf("unexpected verdict: %s", v.Reason())
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				s.Decide(ep, Ingress, c.peer, c.port, "TCP")
			}
		})
	}
}

// BenchmarkDecideHTTP applies 50 HTTP rules with regex paths to a request
// that only the last one allows.
func BenchmarkDecideHTTP(b *testing.B) {
	var rules strings.Builder
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&rules, "        - {method: 'GET|HEAD', path: '/api/v%d/users/[0-9]+', headers: ['X-Tenant: t%d']}\n", i, i)
	}
	s, inv := compile(b, `apiVersion: v1
kind: Pod
metadata: {name: server, namespace: shop, labels: {app: server}}
spec: {containers: [{name: c, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop, labels: {app: client}}
spec: {containers: [{name: c}]}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: l7, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: server}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules:
        http:
`+rules.String())
	server, _ := inv.Workload("shop/server")
	client, _ := inv.Workload("shop/client")
	entries := s.HTTPEntries(s.Endpoint(server), Ingress, s.PeerOf(client), 8080, "TCP")
	req := &HTTPRequest{Method: "GET", Path: "/api/v49/users/12345", Host: "server", Headers: func(n string) (string, bool) {
		if n == "x-tenant" {
			return "t49", true
		}
		return "", false
	}}
	if v := DecideHTTP(entries, req); !v.Allowed || v.Rule != 49 {
		b.Fatalf("unexpected verdict: %+v", v)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		DecideHTTP(entries, req)
	}
}

// BenchmarkCompileLarge compiles 5,000 CiliumNetworkPolicies and the
// endpoint policy of each of 10,000 pods (100 namespaces of 100 pods and
// 50 policies).
func BenchmarkCompileLarge(b *testing.B) {
	var doc strings.Builder
	for n := 0; n < 100; n++ {
		ns := fmt.Sprintf("team-%d", n)
		fmt.Fprintf(&doc, "apiVersion: v1\nkind: Namespace\nmetadata: {name: %s, labels: {team: t%d}}\n---\n", ns, n)
		for i := 0; i < 100; i++ {
			fmt.Fprintf(&doc, "apiVersion: v1\nkind: Pod\nmetadata: {name: pod-%d, namespace: %s, labels: {app: app-%d, tier: t%d}}\nspec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}\n---\n", i, ns, i%50, i%5)
		}
		for p := 0; p < 50; p++ {
			fmt.Fprintf(&doc, `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p-%d, namespace: %s}
spec:
  endpointSelector: {matchLabels: {app: app-%d}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: app-%d}}, {matchLabels: {k8s:io.kubernetes.pod.namespace: team-%d}}]
    toPorts: [{ports: [{port: http, protocol: TCP}]}]
  egress:
  - toEndpoints: [{matchExpressions: [{key: tier, operator: In, values: [t1, t2]}]}]
  - toFQDNs: [{matchPattern: '*.example.com'}]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
---
`, p, ns, p, (p+1)%50, (n+1)%100)
		}
	}
	snap, errs := config.Parse("large.yaml", []byte(doc.String()))
	if len(errs) > 0 {
		b.Fatal(errs[0])
	}
	if len(snap.CiliumNetworkPolicies) != 5000 || len(snap.Inventory.Workloads) != 10000 {
		b.Fatalf("%d policies, %d pods", len(snap.CiliumNetworkPolicies), len(snap.Inventory.Workloads))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		var ps []*Policy
		for _, r := range snap.CiliumNetworkPolicies {
			p, errs := FromCiliumPolicy(r)
			if len(errs) > 0 {
				b.Fatal(errs)
			}
			ps = append(ps, p)
		}
		s := NewSet(ps, &snap.Inventory, Settings{})
		for _, w := range snap.Inventory.Workloads {
			s.Endpoint(w)
		}
	}
}
