package authz

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// benchPolicies is 100 ALLOW and 100 DENY policies selecting httpbin, each
// with one rule of the usual shape: a principal, methods, a path prefix, a
// port, and for DENY a header condition.
func benchPolicies() string {
	var b strings.Builder
	for i := 0; i < 100; i++ {
		b.WriteString(policy("foo", fmt.Sprintf("allow-%d", i), fmt.Sprintf(`selector:
  matchLabels:
    app: httpbin
rules:
- from:
  - source:
      principals: [cluster.local/ns/client-%d/sa/app]
  to:
  - operation:
      methods: [GET, POST]
      paths: [/api/v%d/*]
      ports: ['8000']`, i, i)))
		b.WriteString(policy("foo", fmt.Sprintf("deny-%d", i), fmt.Sprintf(`action: DENY
rules:
- from:
  - source:
      namespaces: [blocked-%d]
  to:
  - operation:
      paths: [/admin/%d/*]
  when:
  - key: request.headers[x-debug]
    values: ['on']`, i, i)))
	}
	return b.String()
}

// BenchmarkEvaluate decides a request that no DENY rule matches and the
// last ALLOW rule allows. "indexed" is the engine as built; "scan" turns the
// peer index off and looks at all 200 rules, the baseline it is measured
// against.
func BenchmarkEvaluate(b *testing.B) {
	req := Request{
		Peer: "spiffe://cluster.local/ns/client-99/sa/app", HTTP: true, Method: "GET",
		Path: "/api/v99/users/42", Host: "httpbin.foo.svc.cluster.local", DestPort: 8000,
		SourceIP: netip.MustParseAddr("10.1.0.5"), DestIP: netip.MustParseAddr("10.2.0.9"),
		Headers: Headers{{":authority", "httpbin.foo.svc.cluster.local"}, {"user-agent", "curl/8"}, {"accept", "*/*"}},
	}
	defer func(old int) { indexThreshold = old }(indexThreshold)
	for _, mode := range []struct {
		name      string
		threshold int
	}{{"indexed", indexThreshold}, {"scan", 1 << 30}} {
		b.Run(mode.name, func(b *testing.B) {
			indexThreshold = mode.threshold
			s := set(b, benchPolicies(), Options{}, nil)
			if d := s.Evaluate(&req); !d.Allowed || d.Match.ID() != "ns[foo]-policy[allow-99]-rule[0]" {
				b.Fatalf("unexpected decision %+v", d)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				s.Evaluate(&req)
			}
		})
	}
}

// BenchmarkEvaluateTCP decides a TCP connection against the same policies.
func BenchmarkEvaluateTCP(b *testing.B) {
	s := set(b, benchPolicies(), Options{}, nil)
	req := Request{Peer: "spiffe://cluster.local/ns/client-99/sa/app", DestPort: 8000}
	b.ReportAllocs()
	for b.Loop() {
		s.Evaluate(&req)
	}
}
