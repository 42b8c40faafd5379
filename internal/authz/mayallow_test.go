package authz

import "testing"

// TestMayAllow covers the lateral-movement question: can a peer get some
// request through? Request-level conditions are the attacker's to choose.
func TestMayAllow(t *testing.T) {
	sel := "selector:\n  matchLabels:\n    app: httpbin\n"
	cases := []struct {
		name, cite string
		policies   string
		providers  map[string]ProviderKind
		peer       string
		want       bool
	}{
		{"no policy", "authorization_policy.proto: no ALLOW policy allows", "", nil, sleepFoo, true},
		{"allow-nothing", "authorization_policy.proto: a policy without rules matches nothing",
			policy("foo", "allow-nothing", "{}"), nil, sleepFoo, false},
		{"ALLOW on a path from the peer", "paths are chosen by the client",
			policy("foo", "a", sel+"rules:\n- from:\n  - source:\n      principals: [cluster.local/ns/foo/sa/sleep]\n  to:\n  - operation:\n      paths: [/admin]"), nil, sleepFoo, true},
		{"ALLOW for another peer", "source.principal is the peer certificate's, not the client's choice",
			policy("foo", "a", sel+"rules:\n- from:\n  - source:\n      principals: [cluster.local/ns/bar/sa/sleep]"), nil, sleepFoo, false},
		{"ALLOW needing a JWT principal", "requestPrincipals come from a token the workload may hold",
			policy("foo", "a", sel+"rules:\n- from:\n  - source:\n      requestPrincipals: [\"*\"]"), nil, "", true},
		{"ALLOW on a namespace", "source.namespace is from the peer certificate",
			policy("foo", "a", sel+"rules:\n- from:\n  - source:\n      namespaces: [bar]"), nil, sleepFoo, false},
		{"DENY on a path leaves other paths", "a DENY with request conditions does not cover every request",
			policy("foo", "d", sel+"action: DENY\nrules:\n- to:\n  - operation:\n      paths: [/admin]"), nil, sleepFoo, true},
		{"DENY of the peer covers every request", "a DENY on connection attributes alone",
			policy("foo", "d", sel+"action: DENY\nrules:\n- from:\n  - source:\n      principals: [cluster.local/ns/foo/sa/sleep]"), nil, sleepFoo, false},
		{"DENY of unauthenticated peers", "notPrincipals [*] matches a plaintext peer",
			policy("foo", "d", sel+"action: DENY\nrules:\n- from:\n  - source:\n      notPrincipals: [\"*\"]"), nil, "", false},
		{"CUSTOM with a missing provider on every request", "builder.go getBadCustomDenyRules",
			policy("foo", "c", sel+"action: CUSTOM\nprovider:\n  name: opa\nrules:\n- {}"), nil, sleepFoo, false},
		{"CUSTOM on one path", "the rest is not sent to the authorizer",
			policy("foo", "c", sel+"action: CUSTOM\nprovider:\n  name: opa\nrules:\n- to:\n  - operation:\n      paths: [/x]"),
			map[string]ProviderKind{"opa": ProviderExtAuthzHTTP}, sleepFoo, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := set(t, c.policies, Options{}, c.providers)
			r := tcpReq(c.peer, 8000)
			if got := s.MayAllow(&r); got != c.want {
				t.Errorf("MayAllow = %v, want %v (%s)", got, c.want, c.cite)
			}
		})
	}
}
