package authz

import "testing"

type mayAllowCase struct {
	name, cite string
	policies   string
	providers  map[string]ProviderKind
	peer       string
	want       bool
}

// TestMayAllow covers the lateral-movement question: can a peer get some
// request through? Request-level conditions are the attacker's to choose.
func TestMayAllow(t *testing.T) {
	sel := "selector:\n  matchLabels:\n    app: httpbin\n"
	cases := []mayAllowCase{
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
	cases = append(cases, []mayAllowCase{
		{"DENY on notPaths only", "a request to an excepted path escapes it",
			policy("foo", "d", sel+"action: DENY\nrules:\n- to:\n  - operation:\n      notPaths: [/public/*]"), nil, sleepFoo, true},
		{"DENY when source.ip is the peer's", "source.ip is the connection's, not the client's choice",
			policy("foo", "d", sel+"action: DENY\nrules:\n- when:\n  - key: source.ip\n    values: [10.1.0.0/16]"), nil, sleepFoo, false},
		{"DENY when source.ip is another", "the condition does not hold for this connection",
			policy("foo", "d", sel+"action: DENY\nrules:\n- when:\n  - key: source.ip\n    values: [192.168.0.0/16]"), nil, sleepFoo, true},
		{"catch-all CUSTOM sent to an authorizer", "ext_authz cannot be asked offline: treated as denying",
			policy("foo", "c", sel+"action: CUSTOM\nprovider:\n  name: opa\nrules:\n- {}"), map[string]ProviderKind{"opa": ProviderExtAuthzHTTP}, sleepFoo, false},
		{"ALLOW whose principal fails next to a path", "the connection-level field decides",
			policy("foo", "a", sel+"rules:\n- from:\n  - source:\n      principals: [cluster.local/ns/bar/sa/sleep]\n  to:\n  - operation:\n      paths: [/x]"), nil, sleepFoo, false},
		{"ALLOW on the destination port", "destination.port is the connection's",
			policy("foo", "a", sel+"rules:\n- to:\n  - operation:\n      ports: [\"9000\"]\n      methods: [GET]"), nil, sleepFoo, false},
	}...)
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

// TestMayAllowAssumingExtAuthz: with AssumeExtAuthzAllows, a catch-all
// CUSTOM rule no longer stops every request.
func TestMayAllowAssumingExtAuthz(t *testing.T) {
	s := set(t, policy("foo", "c", "selector:\n  matchLabels:\n    app: httpbin\naction: CUSTOM\nprovider:\n  name: opa\nrules:\n- {}"),
		Options{}, map[string]ProviderKind{"opa": ProviderExtAuthzHTTP})
	s.AssumeExtAuthzAllows = true
	r := tcpReq(sleepFoo, 8000)
	if !s.MayAllow(&r) {
		t.Error("MayAllow = false with the authorizer assumed to allow")
	}
}
