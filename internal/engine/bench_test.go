package engine

import (
	"fmt"
	"strings"
	"testing"

	"github.com/palisade-security/palisade/internal/authz"
	"github.com/palisade-security/palisade/internal/config"
)

// largeMesh is 5,000 workloads in 50 namespaces and 10,000
// AuthorizationPolicies (200 a namespace, each selecting one app), plus a
// mesh-wide DENY and PeerAuthentications.
func largeMesh(tb testing.TB) *config.Snapshot {
	tb.Helper()
	var b strings.Builder
	for n := 0; n < 50; n++ {
		ns := fmt.Sprintf("team-%d", n)
		fmt.Fprintf(&b, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: %s}\nspec: {mtls: {mode: STRICT}}\n---\n", ns)
		for w := 0; w < 100; w++ {
			fmt.Fprintf(&b, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app-%d, namespace: %s}\nspec:\n  template:\n    metadata: {labels: {app: app-%d, tier: t%d}}\n    spec: {serviceAccountName: sa-%d, containers: [{name: c, ports: [{containerPort: 8080}]}]}\n---\n", w, ns, w, w%5, w)
		}
		for p := 0; p < 200; p++ {
			action := "ALLOW"
			if p%2 == 1 {
				action = "DENY"
			}
			fmt.Fprintf(&b, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p-%d, namespace: %s}
spec:
  selector: {matchLabels: {app: app-%d}}
  action: %s
  rules:
  - from: [{source: {principals: [cluster.local/ns/%s/sa/sa-%d]}}]
    to: [{operation: {methods: [GET, POST], paths: [/api/%d/*], ports: ["8080"]}}]
    when: [{key: 'request.headers[x-tenant]', values: [t-%d]}]
---
`, p, ns, p%100, action, ns, (p+1)%100, p, p)
		}
	}
	b.WriteString("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny-external, namespace: istio-system}\nspec:\n  action: DENY\n  rules: [{from: [{source: {notNamespaces: ['team-*']}}]}]\n")
	snap, errs := config.Parse("large.yaml", []byte(b.String()))
	if len(errs) > 0 {
		tb.Fatal(errs[0])
	}
	if len(snap.AuthorizationPolicies) != 10001 || len(snap.Inventory.Workloads) != 5000 {
		tb.Fatalf("%d policies, %d workloads", len(snap.AuthorizationPolicies), len(snap.Inventory.Workloads))
	}
	return snap
}

// BenchmarkCompileLargeMesh validates and compiles 10,000 policies and
// the policy of each of 5,000 workloads.
func BenchmarkCompileLargeMesh(b *testing.B) {
	snap := largeMesh(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		e := New(snap, Options{Keys: keys{}})
		e.CompileAll()
	}
}

// BenchmarkCheck is a whole HTTP check through the engine: mTLS mode,
// path normalization, authentication (no token) and authorization.
func BenchmarkCheck(b *testing.B) {
	snap := largeMesh(b)
	e := New(snap, Options{Keys: keys{}})
	from, _ := snap.Inventory.Workload("team-3/app-9")
	to, _ := snap.Inventory.Workload("team-3/app-8")
	req := Request{From: from, To: to, HTTP: &HTTPRequest{Method: "GET", Path: "/api/8/x", Host: "app-8", Headers: []authz.Header{{Name: "x-tenant", Value: "t-8"}}}}
	if v, err := e.Check(req); err != nil || !v.Allowed {
		b.Fatalf("%+v %v", v, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.Check(req)
	}
}
