package authz

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/palisade-security/palisade/internal/config"
)

// The workload every case decides for: namespace foo, labels app=httpbin,
// version=v1, port 8000. Root namespace istio-system.
var httpbin = &config.Workload{
	Kind: "Deployment", Namespace: "foo", Name: "httpbin",
	Labels:         map[string]string{"app": "httpbin", "version": "v1"},
	ServiceAccount: "httpbin",
}

const (
	sleepFoo = "spiffe://cluster.local/ns/foo/sa/sleep"
	sleepBar = "spiffe://cluster.local/ns/bar/sa/sleep"
)

// policy renders one AuthorizationPolicy document. The spec is YAML indented
// by two spaces, as under "spec:".
func policy(ns, name, spec string) string {
	return fmt.Sprintf("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n%s\n---\n", name, ns, indent(spec))
}

func indent(s string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n")
}

// set compiles the policies of docs that select httpbin.
func set(t testing.TB, docs string, opts Options, providers map[string]ProviderKind) *Set {
	t.Helper()
	if opts.RootNamespace == "" {
		opts.RootNamespace = "istio-system"
	}
	if opts.TrustDomains == nil {
		opts.TrustDomains = []string{"cluster.local"}
	}
	snap, errs := config.Parse("test.yaml", []byte(docs))
	if len(errs) > 0 {
		t.Fatalf("parse: %v", errs)
	}
	var selected []*Policy
	for _, r := range snap.AuthorizationPolicies {
		if p := Compile(r, opts); p.Selects(httpbin, opts.RootNamespace) {
			selected = append(selected, p)
		}
	}
	SortPolicies(selected, opts.RootNamespace)
	return NewSet(selected, providers)
}

func httpReq(peer, method, path string) Request {
	return Request{
		Peer: peer, HTTP: true, Method: method, Path: path, Host: "httpbin.foo.svc.cluster.local",
		SourceIP: netip.MustParseAddr("10.1.0.5"), DestIP: netip.MustParseAddr("10.2.0.9"), DestPort: 8000,
	}
}

func tcpReq(peer string, port uint16) Request {
	return Request{Peer: peer, SourceIP: netip.MustParseAddr("10.1.0.5"), DestIP: netip.MustParseAddr("10.2.0.9"), DestPort: port}
}

func with(r Request, f func(*Request)) Request { f(&r); return r }

type authzCase struct {
	name string
	// cite names the upstream behaviour the case encodes.
	cite      string
	policies  string
	opts      Options
	providers map[string]ProviderKind
	assume    bool // AssumeExtAuthzAllows
	req       Request
	allow     bool
	rule      string // Istio rule ID that decided, "" for a default verdict
}

func TestEvaluate(t *testing.T) {
	allowGET := policy("foo", "allow-get", "selector:\n  matchLabels:\n    app: httpbin\nrules:\n- to:\n  - operation:\n      methods: [GET]")
	cases := []authzCase{
		// Action order and defaults.
		{name: "no policy allows", cite: "authorization_policy.proto: if the workload has no ALLOW policies, allow",
			req: httpReq(sleepFoo, "GET", "/"), allow: true},
		{name: "allow-nothing", cite: "authorization_policy.proto rules: if not set, the match will never occur; builder rbacPolicyMatchNever",
			policies: policy("foo", "allow-nothing", "{}"), req: httpReq(sleepFoo, "GET", "/"), allow: false},
		{name: "allow-all with an empty rule", cite: "authorization_policy.proto: an empty rule is always matched",
			policies: policy("foo", "allow-all", "rules:\n- {}"), req: httpReq(sleepFoo, "GET", "/"), allow: true, rule: "ns[foo]-policy[allow-all]-rule[0]"},
		{name: "deny-all with an empty rule", cite: "Istio concept page: deny-all",
			policies: policy("foo", "deny-all", "action: DENY\nrules:\n- {}"), req: httpReq(sleepFoo, "GET", "/"), allow: false, rule: "ns[foo]-policy[deny-all]-rule[0]"},
		{name: "DENY is applied before ALLOW", cite: "authorization_policy.proto: if any DENY policy matches the request, deny",
			policies: policy("foo", "allow-all", "rules:\n- {}") + policy("foo", "deny-get", "action: DENY\nrules:\n- to:\n  - operation:\n      methods: [GET]"),
			req:      httpReq(sleepFoo, "GET", "/"), allow: false, rule: "ns[foo]-policy[deny-get]-rule[0]"},
		{name: "ALLOW policies present and none matches", cite: "authorization_policy.proto step 5: otherwise deny",
			policies: allowGET, req: httpReq(sleepFoo, "POST", "/"), allow: false},
		{name: "ALLOW matches", cite: "authorization_policy.proto step 4", policies: allowGET,
			req: httpReq(sleepFoo, "GET", "/"), allow: true, rule: "ns[foo]-policy[allow-get]-rule[0]"},
		{name: "AUDIT never decides and is not an ALLOW", cite: "builder.go: AUDIT is RBAC_LOG, built from auditPolicies only",
			policies: policy("foo", "audit", "action: AUDIT\nrules:\n- {}"), req: httpReq(sleepFoo, "GET", "/"), allow: true},
		{name: "dry-run ALLOW does not enforce", cite: "builder.go isDryRun: dry-run policies go to shadow rules only",
			policies: strings.Replace(policy("foo", "dry", "{}"), "namespace: foo", "namespace: foo\n  annotations:\n    istio.io/dry-run: \"true\"", 1),
			req:      httpReq(sleepFoo, "GET", "/"), allow: true},
		{name: "dry-run DENY does not enforce", cite: "builder.go isDryRun",
			policies: strings.Replace(policy("foo", "dry", "action: DENY\nrules:\n- {}"), "namespace: foo", "namespace: foo\n  annotations:\n    istio.io/dry-run: \"true\"", 1),
			req:      httpReq(sleepFoo, "GET", "/"), allow: true},
		{name: "CUSTOM without a provider denies what it matches", cite: "builder.go getBadCustomDenyRules",
			policies: policy("foo", "ext", "action: CUSTOM\nprovider:\n  name: opa\nrules:\n- to:\n  - operation:\n      paths: [/x]"),
			req:      httpReq(sleepFoo, "GET", "/x"), allow: false, rule: "ns[foo]-policy[ext]-rule[0]"},
		{name: "CUSTOM without a provider leaves other requests alone", cite: "builder.go getBadCustomDenyRules: only CUSTOM-matched requests",
			policies: policy("foo", "ext", "action: CUSTOM\nprovider:\n  name: opa\nrules:\n- to:\n  - operation:\n      paths: [/x]"),
			req:      httpReq(sleepFoo, "GET", "/y"), allow: true},
		{name: "CUSTOM with a provider is not evaluable offline", cite: "builder.go: ext_authz runs when the shadow rule matches",
			policies:  policy("foo", "ext", "action: CUSTOM\nprovider:\n  name: opa\nrules:\n- to:\n  - operation:\n      paths: [/x]"),
			providers: map[string]ProviderKind{"opa": ProviderExtAuthzHTTP}, req: httpReq(sleepFoo, "GET", "/x"), allow: false, rule: "ns[foo]-policy[ext]-rule[0]"},
		{name: "CUSTOM allowed by the authorizer continues to DENY and ALLOW", cite: "authorization_policy.proto step 1: deny only if the result is deny",
			policies:  policy("foo", "ext", "action: CUSTOM\nprovider:\n  name: opa\nrules:\n- {}") + allowGET,
			providers: map[string]ProviderKind{"opa": ProviderExtAuthzHTTP}, assume: true, req: httpReq(sleepFoo, "POST", "/x"), allow: false},
		{name: "CUSTOM with an HTTP provider is ignored on TCP", cite: "builder.go: ignored CUSTOM action with HTTP provider on TCP filter chain",
			policies:  policy("foo", "ext", "action: CUSTOM\nprovider:\n  name: opa\nrules:\n- {}"),
			providers: map[string]ProviderKind{"opa": ProviderExtAuthzHTTP}, req: tcpReq(sleepFoo, 8000), allow: true},
		{name: "CUSTOM with a gRPC provider applies on TCP", cite: "builder.go buildTCP: network ext_authz for gRPC providers",
			policies:  policy("foo", "ext", "action: CUSTOM\nprovider:\n  name: opa\nrules:\n- {}"),
			providers: map[string]ProviderKind{"opa": ProviderExtAuthzGRPC}, req: tcpReq(sleepFoo, 8000), allow: false, rule: "ns[foo]-policy[ext]-rule[0]"},

		// Scope.
		{name: "a policy in another namespace does not apply", cite: "pilot/pkg/model/authorization.go: root and workload namespace only",
			policies: policy("bar", "deny-all", "action: DENY\nrules:\n- {}"), req: httpReq(sleepFoo, "GET", "/"), allow: true},
		{name: "a root namespace policy applies mesh-wide", cite: "authorization_policy.proto: root namespace policies apply to all namespaces",
			policies: policy("istio-system", "deny-all", "action: DENY\nrules:\n- {}"), req: httpReq(sleepFoo, "GET", "/"), allow: false, rule: "ns[istio-system]-policy[deny-all]-rule[0]"},
		{name: "a root namespace selector selects in every namespace", cite: "concept page Policy Target: selector on a root namespace policy",
			policies: policy("istio-system", "deny-httpbin", "selector:\n  matchLabels:\n    app: httpbin\naction: DENY\nrules:\n- {}"), req: httpReq(sleepFoo, "GET", "/"), allow: false, rule: "ns[istio-system]-policy[deny-httpbin]-rule[0]"},
		{name: "a selector that does not match", cite: "policyattachment.go isSelected: matchLabels subset of workload labels",
			policies: policy("foo", "deny-v2", "selector:\n  matchLabels:\n    version: v2\naction: DENY\nrules:\n- {}"), req: httpReq(sleepFoo, "GET", "/"), allow: true},
		{name: "an empty selector selects everything", cite: "labels.Instance.SubsetOf: an empty selector is a subset of anything",
			policies: policy("foo", "deny-all", "selector: {}\naction: DENY\nrules:\n- {}"), req: httpReq(sleepFoo, "GET", "/"), allow: false, rule: "ns[foo]-policy[deny-all]-rule[0]"},
		{name: "targetRefs policies are ignored by sidecars", cite: "policyattachment.go ShouldAttachPolicy: a policy with targetRef(s) is ignored for sidecars",
			policies: policy("foo", "gw", "targetRefs:\n- kind: Gateway\n  group: gateway.networking.k8s.io\n  name: gw\naction: DENY\nrules:\n- {}"), req: httpReq(sleepFoo, "GET", "/"), allow: true},

		// Boolean structure.
		{name: "from entries are ORed", cite: "authorization_policy.proto Rule: at least one source",
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      principals: [cluster.local/ns/x/sa/y]\n  - source:\n      principals: [cluster.local/ns/foo/sa/sleep]"),
			req:      httpReq(sleepFoo, "GET", "/"), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "source fields are ANDed", cite: "authorization_policy.proto Source: fields are ANDed",
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      principals: [cluster.local/ns/foo/sa/sleep]\n      ipBlocks: [192.168.0.0/16]"),
			req:      httpReq(sleepFoo, "GET", "/"), allow: false},
		{name: "from and to are ANDed", cite: "authorization_policy.proto Rule: a source, an operation and all conditions",
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      principals: [cluster.local/ns/foo/sa/sleep]\n  to:\n  - operation:\n      methods: [POST]"),
			req:      httpReq(sleepFoo, "GET", "/"), allow: false},
		{name: "when conditions are ANDed", cite: "authorization_policy.proto Rule: all conditions",
			policies: policy("foo", "p", "rules:\n- when:\n  - key: source.namespace\n    values: [foo]\n  - key: request.headers[x-token]\n    values: [abc]"),
			req:      httpReq(sleepFoo, "GET", "/"), allow: false},
		{name: "rules are ORed", cite: "authorization_policy.proto rules: a match occurs when at least one rule matches",
			policies: policy("foo", "p", "rules:\n- to:\n  - operation:\n      methods: [POST]\n- to:\n  - operation:\n      paths: [/ok]"),
			req:      httpReq(sleepFoo, "GET", "/ok"), allow: true, rule: "ns[foo]-policy[p]-rule[1]"},
		{name: "values and notValues are ANDed", cite: "model.go: values OR, notValues NOT(OR), ANDed; golden allow-full-rule",
			policies: policy("foo", "p", "rules:\n- to:\n  - operation:\n      hosts: [httpbin.foo.svc.cluster.local]\n      notHosts: ['*']"),
			req:      httpReq(sleepFoo, "GET", "/"), allow: false},

		// Identity fields.
		{name: "principals exact", cite: "generator.go srcPrincipalGenerator: spiffe:// prepended",
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      principals: [cluster.local/ns/foo/sa/sleep]"), req: httpReq(sleepFoo, "GET", "/"), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "principals prefix", cite: "golden allow-full-rule: principal-prefix-* → prefix spiffe://principal-prefix-",
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      principals: [cluster.local/ns/bar/*]"), req: httpReq(sleepBar, "GET", "/"), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "principals suffix", cite: "golden allow-full-rule: *-suffix-principal → regex spiffe://.*-suffix-principal",
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      principals: ['*/sa/sleep']"), req: httpReq(sleepBar, "GET", "/"), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "principals * needs an identity", cite: "matcher.StringMatcherWithPrefix: * → .+; AuthenticatedMatcher false without TLS",
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      principals: ['*']"), req: httpReq("", "GET", "/"), allow: false},
		{name: "a spiffe:// principal never matches", cite: "StringMatcherWithPrefix prepends spiffe:// again",
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      principals: [spiffe://cluster.local/ns/foo/sa/sleep]"), req: httpReq(sleepFoo, "GET", "/"), allow: false},
		{name: "notPrincipals * matches plaintext", cite: "ISTIO-SECURITY-2021-004; TestAuthz_DenyPlaintext uses DENY notPrincipals [*]",
			policies: policy("foo", "deny-plaintext", "action: DENY\nrules:\n- from:\n  - source:\n      notPrincipals: ['*']"), req: httpReq("", "GET", "/"), allow: false, rule: "ns[foo]-policy[deny-plaintext]-rule[0]"},
		{name: "ALLOW notNamespaces lets plaintext from that namespace in", cite: "ISTIO-SECURITY-2021-004: mTLS-only fields never match plaintext",
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      notNamespaces: [bar]"), req: with(httpReq("", "GET", "/"), func(r *Request) {}), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "DENY namespaces does not deny plaintext", cite: "ISTIO-SECURITY-2021-004",
			policies: policy("foo", "p", "action: DENY\nrules:\n- from:\n  - source:\n      namespaces: [bar]"), req: httpReq("", "GET", "/"), allow: true},
		{name: "namespaces exact", cite: "generator.go srcNamespaceGenerator: .*/ns/<ns>/.*",
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      namespaces: [bar]"), req: httpReq(sleepBar, "GET", "/"), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "namespaces is not a prefix", cite: "generator_test TestNamespaceMatcherRegex: ns/foo2 does not match foo",
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      namespaces: [ba]"), req: httpReq(sleepBar, "GET", "/"), allow: false},
		{name: "namespaces wildcard anywhere", cite: "generator.go srcNamespaceGenerator: every * becomes .*",
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      namespaces: ['b*r']"), req: httpReq(sleepBar, "GET", "/"), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "serviceAccounts default to the policy namespace", cite: "generator.go serviceAccountRegex: namespace defaults to the policy's",
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      serviceAccounts: [sleep]"), req: httpReq(sleepBar, "GET", "/"), allow: false},
		{name: "serviceAccounts with a namespace", cite: "generator_test TestServiceAccount",
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      serviceAccounts: [bar/sleep]"), req: httpReq(sleepBar, "GET", "/"), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "serviceAccounts is not a prefix", cite: "generator_test TestServiceAccount: sa/my-sa-suffix does not match",
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      serviceAccounts: [bar/slee]"), req: httpReq(sleepBar, "GET", "/"), allow: false},
		{name: "trustDomains", cite: "generator.go srcTrustDomainGenerator: prefix spiffe://<td>/",
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      trustDomains: [cluster.local]"), req: httpReq(sleepBar, "GET", "/"), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "trustDomains wildcard", cite: "golden trust-domains: bad* → spiffe://bad[^/]*/.*",
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      trustDomains: ['cluster*']"), req: httpReq(sleepBar, "GET", "/"), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "ipBlocks", cite: "generator.go srcIPGenerator: direct_remote_ip CidrRange",
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      ipBlocks: [10.1.0.0/16]"), req: httpReq(sleepFoo, "GET", "/"), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "notIpBlocks", cite: "model.go: notValues NOT(OR)",
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      notIpBlocks: [10.1.0.5]"), req: httpReq(sleepFoo, "GET", "/"), allow: false},
		{name: "remoteIpBlocks read the original client", cite: "authorization_policy.proto remoteIpBlocks: X-Forwarded-For",
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      remoteIpBlocks: [203.0.113.0/24]"),
			req:      with(httpReq(sleepFoo, "GET", "/"), func(r *Request) { r.RemoteIP = netip.MustParseAddr("203.0.113.7") }), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "remoteIpBlocks default to the peer", cite: "Envoy remote_ip is the peer without XFF",
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      remoteIpBlocks: [10.1.0.0/16]"), req: httpReq(sleepFoo, "GET", "/"), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},

		// Operation fields.
		{name: "hosts are case-insensitive", cite: "matcher.HostMatcher: ignore_case",
			policies: policy("foo", "p", "rules:\n- to:\n  - operation:\n      hosts: [HTTPBIN.foo.svc.cluster.local]"), req: httpReq(sleepFoo, "GET", "/"), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "hosts do not strip the port", cite: "Istio security best practices: exact hosts match only the exact string",
			policies: policy("foo", "p", "rules:\n- to:\n  - operation:\n      hosts: [httpbin.foo.svc.cluster.local]"),
			req:      with(httpReq(sleepFoo, "GET", "/"), func(r *Request) { r.Host = "httpbin.foo.svc.cluster.local:8000" }), allow: false},
		{name: "hosts with a port wildcard", cite: "Istio security best practices: example.com:*",
			policies: policy("foo", "p", "rules:\n- to:\n  - operation:\n      hosts: ['httpbin.foo.svc.cluster.local:*']"),
			req:      with(httpReq(sleepFoo, "GET", "/"), func(r *Request) { r.Host = "httpbin.foo.svc.cluster.local:8000" }), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "methods are case-sensitive", cite: "generator.go methodGenerator: :method header matcher, case-sensitive",
			policies: policy("foo", "p", "rules:\n- to:\n  - operation:\n      methods: [get]"), req: httpReq(sleepFoo, "GET", "/"), allow: false},
		{name: "paths prefix", cite: "TestAuthz_PathPrecedence; matcher.PathMatcher: /x/* is prefix /x/",
			policies: policy("foo", "p", "rules:\n- to:\n  - operation:\n      paths: [/api/*]"), req: httpReq(sleepFoo, "GET", "/api/v1/users"), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "paths prefix does not match the bare directory", cite: "matcher.PathMatcher: /x/* does not match /x",
			policies: policy("foo", "p", "rules:\n- to:\n  - operation:\n      paths: [/api/*]"), req: httpReq(sleepFoo, "GET", "/api"), allow: false},
		{name: "paths suffix", cite: "matcher.PathMatcher: *.x is a suffix",
			policies: policy("foo", "p", "rules:\n- to:\n  - operation:\n      paths: ['*.json']"), req: httpReq(sleepFoo, "GET", "/a/b.json"), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "paths middle star is literal", cite: "matcher/string.go: a * in the middle is a literal",
			policies: policy("foo", "p", "rules:\n- to:\n  - operation:\n      paths: ['/a*b']"), req: httpReq(sleepFoo, "GET", "/axb"), allow: false},
		{name: "path template {*} is one segment", cite: "authorization_policy.proto paths: {*} matches a single path segment",
			policies: policy("foo", "p", "rules:\n- to:\n  - operation:\n      paths: ['/foo/{*}/bar']"), req: httpReq(sleepFoo, "GET", "/foo/x/bar"), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "path template {*} does not cross segments", cite: "Envoy uri_template: * is [..]+ without /",
			policies: policy("foo", "p", "rules:\n- to:\n  - operation:\n      paths: ['/foo/{*}/bar']"), req: httpReq(sleepFoo, "GET", "/foo/x/y/bar"), allow: false},
		{name: "path template {**} matches deeper paths", cite: "TestAuthz_PathTemplating: /allow/admin/{**} matches /allow/admin/foo/temp.txt",
			policies: policy("foo", "p", "rules:\n- to:\n  - operation:\n      paths: ['/allow/admin/{**}']"), req: httpReq(sleepFoo, "GET", "/allow/admin/foo/temp.txt"), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "path template {**} needs the slash", cite: "TestAuthz_PathTemplating: /allow/admin/{**} does not match /allow/admin",
			policies: policy("foo", "p", "rules:\n- to:\n  - operation:\n      paths: ['/allow/admin/{**}']"), req: httpReq(sleepFoo, "GET", "/allow/admin"), allow: false},
		{name: "path template {**} may be empty", cite: "TestAuthz_PathTemplating: /store/{**}/cart matches /store//cart",
			policies: policy("foo", "p", "rules:\n- to:\n  - operation:\n      paths: ['/store/{**}/cart']"), req: httpReq(sleepFoo, "GET", "/store//cart"), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "ports", cite: "generator.go destPortGenerator: destination_port",
			policies: policy("foo", "p", "rules:\n- to:\n  - operation:\n      ports: ['8000']"), req: tcpReq(sleepFoo, 8000), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "notPorts", cite: "TestAuthz_NotPort",
			policies: policy("foo", "p", "rules:\n- to:\n  - operation:\n      notPorts: ['8000']"), req: tcpReq(sleepFoo, 8000), allow: false},

		// Conditions.
		{name: "request header value", cite: "TestAuthz_Conditions conditions.yaml.tmpl: x-foo: foo allowed",
			policies: policy("foo", "p", "rules:\n- when:\n  - key: request.headers[x-foo]\n    values: [foo]"),
			req:      with(httpReq(sleepFoo, "GET", "/"), func(r *Request) { r.Headers = Headers{{"x-foo", "foo"}} }), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "request header other value", cite: "TestAuthz_Conditions: x-foo: bar denied",
			policies: policy("foo", "p", "rules:\n- when:\n  - key: request.headers[x-foo]\n    values: [foo]"),
			req:      with(httpReq(sleepFoo, "GET", "/"), func(r *Request) { r.Headers = Headers{{"x-foo", "bar"}} }), allow: false},
		{name: "request header absent", cite: "TestAuthz_Conditions: header absent denied",
			policies: policy("foo", "p", "rules:\n- when:\n  - key: request.headers[x-foo]\n    values: [foo]"), req: httpReq(sleepFoo, "GET", "/"), allow: false},
		{name: "request header notValues with the header absent", cite: "Envoy: a missing header fails the matcher, NOT makes it match",
			policies: policy("foo", "p", "rules:\n- when:\n  - key: request.headers[x-foo]\n    notValues: [bar]"), req: httpReq(sleepFoo, "GET", "/"), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "request header * is presence, even empty", cite: "matcher.HeaderMatcher: * → present_match",
			policies: policy("foo", "p", "rules:\n- when:\n  - key: request.headers[X-Foo]\n    values: ['*']"),
			req:      with(httpReq(sleepFoo, "GET", "/"), func(r *Request) { r.Headers = Headers{{"x-foo", ""}} }), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "repeated headers are joined with commas", cite: "Envoy header_utility getAllOfHeaderAsString",
			policies: policy("foo", "p", "rules:\n- when:\n  - key: request.headers[x-foo]\n    values: [a]"),
			req:      with(httpReq(sleepFoo, "GET", "/"), func(r *Request) { r.Headers = Headers{{"x-foo", "a"}, {"x-foo", "a"}} }), allow: false},
		{name: "Bearer prefix", cite: "authorization_policy value matching: prefix",
			policies: policy("foo", "p", "rules:\n- when:\n  - key: request.headers[authorization]\n    values: ['Bearer *']"),
			req:      with(httpReq(sleepFoo, "GET", "/"), func(r *Request) { r.Headers = Headers{{"authorization", "Bearer abc"}} }), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "destination.ip", cite: "TestAuthz_Conditions: destination.ip = workload IPs allowed",
			policies: policy("foo", "p", "rules:\n- when:\n  - key: destination.ip\n    values: [10.2.0.9]"), req: httpReq(sleepFoo, "GET", "/"), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "destination.ip other", cite: "TestAuthz_Conditions: destination.ip = 1.2.3.4 denied",
			policies: policy("foo", "p", "rules:\n- when:\n  - key: destination.ip\n    values: [1.2.3.4]"), req: httpReq(sleepFoo, "GET", "/"), allow: false},
		{name: "destination.port", cite: "conditions page: destination.port",
			policies: policy("foo", "p", "rules:\n- when:\n  - key: destination.port\n    values: ['8000']"), req: tcpReq(sleepFoo, 8000), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "connection.sni suffix", cite: "TestAuthz_Conditions: connection.sni *.<svc FQDN>",
			policies: policy("foo", "p", "rules:\n- when:\n  - key: connection.sni\n    values: ['*.httpbin.foo.svc.cluster.local']"),
			req:      with(httpReq(sleepFoo, "GET", "/"), func(r *Request) { r.SNI = "outbound_.8000_._.httpbin.foo.svc.cluster.local" }), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "connection.sni on plaintext", cite: "Envoy requested_server_name is empty without TLS",
			policies: policy("foo", "p", "rules:\n- when:\n  - key: connection.sni\n    values: ['*']"), req: httpReq("", "GET", "/"), allow: false},
		{name: "source.namespace", cite: "conditions page: source.namespace",
			policies: policy("foo", "p", "rules:\n- when:\n  - key: source.namespace\n    values: [bar]"), req: httpReq(sleepBar, "GET", "/"), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "source.principal notValues", cite: "conditions page: source.principal",
			policies: policy("foo", "p", "rules:\n- when:\n  - key: source.principal\n    notValues: [cluster.local/ns/bar/sa/sleep]"), req: httpReq(sleepBar, "GET", "/"), allow: false},
		{name: "source.ip", cite: "conditions page: source.ip",
			policies: policy("foo", "p", "rules:\n- when:\n  - key: source.ip\n    values: [10.0.0.0/8]"), req: httpReq(sleepFoo, "GET", "/"), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "experimental envoy metadata does not exist offline", cite: "Envoy metadata matcher on a missing key is false",
			policies: policy("foo", "p", "rules:\n- when:\n  - key: experimental.envoy.filters.network.mysql_proxy[db.table]\n    values: ['[update]']"), req: tcpReq(sleepFoo, 8000), allow: false},

		// HTTP-only fields on TCP.
		{name: "ALLOW with HTTP fields matches nothing on TCP", cite: "model.go checkError: ALLOW rule skipped; golden tcp/allow-only-http",
			policies: allowGET, req: tcpReq(sleepFoo, 8000), allow: false},
		{name: "ALLOW with a TCP and an HTTP field is skipped whole", cite: "golden tcp/allow-both-http-tcp: rule with ports and methods skipped",
			policies: policy("foo", "p", "rules:\n- to:\n  - operation:\n      ports: ['8000']\n      methods: [GET]"), req: tcpReq(sleepFoo, 8000), allow: false},
		{name: "ALLOW with only TCP fields applies on TCP", cite: "golden tcp/allow-both-http-tcp: rule with namespaces and ports kept",
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      namespaces: [foo]\n  to:\n  - operation:\n      ports: ['8000']"), req: tcpReq(sleepFoo, 8000), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "DENY with only HTTP fields denies all TCP", cite: "authorization_policy.proto: DENY methods without ports denies all TCP; golden tcp/deny-both-http-tcp",
			policies: policy("foo", "p", "action: DENY\nrules:\n- to:\n  - operation:\n      methods: [POST]"), req: tcpReq(sleepFoo, 9000), allow: false, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "DENY with HTTP fields and ports denies that TCP port", cite: "authorization_policy.proto: DENY methods with ports 8080 denies all TCP on 8080",
			policies: policy("foo", "p", "action: DENY\nrules:\n- to:\n  - operation:\n      methods: [POST]\n      ports: ['8080']"), req: tcpReq(sleepFoo, 8080), allow: false, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "DENY with HTTP fields and ports spares other TCP ports", cite: "authorization_policy.proto ports example",
			policies: policy("foo", "p", "action: DENY\nrules:\n- to:\n  - operation:\n      methods: [POST]\n      ports: ['8080']"), req: tcpReq(sleepFoo, 9000), allow: true},
		{name: "require-JWT DENY denies all TCP", cite: "notes: DENY notRequestPrincipals [*] on a TCP chain becomes deny all",
			policies: policy("foo", "p", "action: DENY\nrules:\n- from:\n  - source:\n      notRequestPrincipals: ['*']"), req: tcpReq(sleepFoo, 8000), allow: false, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "a DENY header condition denies all TCP", cite: "golden tcp/deny-both-http-tcp: when request.headers → any",
			policies: policy("foo", "p", "action: DENY\nrules:\n- when:\n  - key: request.headers[x-a]\n    values: [b]"), req: tcpReq(sleepFoo, 8000), allow: false, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "a DENY rule keeps its TCP fields on TCP", cite: "golden tcp/deny-both-http-tcp: namespaces ns-1 + methods → ns-1 principal",
			policies: policy("foo", "p", "action: DENY\nrules:\n- from:\n  - source:\n      namespaces: [bar]\n  to:\n  - operation:\n      methods: [GET]"), req: tcpReq(sleepFoo, 8000), allow: true},

		// Trust domains.
		{name: "cluster.local principals follow the mesh trust domain", cite: "trustdomain/bundle.go ReplaceTrustDomainAliases: cluster.local is the local trust domain",
			opts:     Options{TrustDomains: []string{"example.org"}},
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      principals: [cluster.local/ns/foo/sa/sleep]"),
			req:      httpReq("spiffe://example.org/ns/foo/sa/sleep", "GET", "/"), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "the literal cluster.local form is replaced", cite: "bundle.go: the principal is rewritten, not kept, unless cluster.local is an alias",
			opts:     Options{TrustDomains: []string{"example.org"}},
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      principals: [cluster.local/ns/foo/sa/sleep]"),
			req:      httpReq(sleepFoo, "GET", "/"), allow: false},
		{name: "trust domain aliases", cite: "golden simple-policy-td-aliases",
			opts:     Options{TrustDomains: []string{"example.org", "cluster.local"}},
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      principals: [example.org/ns/foo/sa/sleep]"),
			req:      httpReq(sleepFoo, "GET", "/"), allow: true, rule: "ns[foo]-policy[p]-rule[0]"},
		{name: "four-part principals are not rewritten", cite: "bundle.go isTrustDomainBeingEnforced: exactly five parts",
			opts:     Options{TrustDomains: []string{"example.org"}},
			policies: policy("foo", "p", "rules:\n- from:\n  - source:\n      principals: [cluster.local/ns/foo/*]"),
			req:      httpReq("spiffe://example.org/ns/foo/sa/sleep", "GET", "/"), allow: false},
	}
	runAuthz(t, cases)
}

// jwt returns a request carrying validated claims.
func jwt(claims Claims) Request {
	return with(httpReq(sleepFoo, "GET", "/"), func(r *Request) { r.Auth = claims })
}

func TestEvaluateRequestAuth(t *testing.T) {
	rp := func(v string) string {
		return policy("foo", "p", "rules:\n- from:\n  - source:\n      requestPrincipals: ['"+v+"']")
	}
	claim := func(key, v string) string {
		return policy("foo", "p", "rules:\n- when:\n  - key: "+key+"\n    values: ['"+v+"']")
	}
	const id = "ns[foo]-policy[p]-rule[0]"
	cases := []authzCase{
		{name: "iss/sub", cite: "generator.go requestPrincipalGenerator: split at the last /",
			policies: rp("https://accounts.google.com/1234"), req: jwt(Claims{"iss": "https://accounts.google.com", "sub": "1234"}), allow: true, rule: id},
		{name: "* needs iss and sub", cite: "requestPrincipalGenerator: * → iss .+ and sub .+",
			policies: rp("*"), req: jwt(Claims{"iss": "a"}), allow: false},
		{name: "* without a token", cite: "Istio jwt_test no-token → 403 with requestPrincipals [*]",
			policies: rp("*"), req: httpReq(sleepFoo, "GET", "/"), allow: false},
		{name: "iss/* any sub", cite: "golden: https://example.com/* → iss exact, sub .+",
			policies: rp("https://example.com/*"), req: jwt(Claims{"iss": "https://example.com", "sub": "u"}), allow: true, rule: id},
		{name: "*/sub any iss", cite: "requestPrincipalGenerator: */sub",
			policies: rp("*/u"), req: jwt(Claims{"iss": "x", "sub": "u"}), allow: true, rule: id},
		{name: "a value without / wants an empty sub", cite: "golden: foo → sub exact \"\"",
			policies: rp("a.com"), req: jwt(Claims{"iss": "a.com", "sub": "u"}), allow: false},
		{name: "*foo is a suffix of sub", cite: "requestPrincipalGenerator: *foo without / → sub suffix",
			policies: rp("*user"), req: jwt(Claims{"iss": "x", "sub": "superuser"}), allow: true, rule: id},
		{name: "prefix on sub", cite: "seed jwt-claims-based-auth: https://auth.company.com/user-*",
			policies: rp("https://auth.company.com/user-*"), req: jwt(Claims{"iss": "https://auth.company.com", "sub": "user-42"}), allow: true, rule: id},
		{name: "claims list contains", cite: "MetadataListValueMatcher: any list element",
			policies: claim("request.auth.claims[groups]", "admin"), req: jwt(Claims{"groups": []any{"dev", "admin"}}), allow: true, rule: id},
		{name: "nested claims", cite: "golden: [nested1][nested2] → payload path",
			policies: claim("request.auth.claims[realm][role]", "admin"), req: jwt(Claims{"realm": map[string]any{"role": "admin"}}), allow: true, rule: id},
		{name: "boolean claims never match", cite: "istio/istio#39703: only string or list of string claims",
			policies: claim("request.auth.claims[verified]", "true"), req: jwt(Claims{"verified": true}), allow: false},
		{name: "split scope no longer matches the whole string", cite: "jwt_authn space_delimited_claims: scope becomes a list",
			policies: claim("request.auth.claims[scope]", "read write"), req: jwt(Claims{"scope": []any{"read", "write"}}), allow: false},
		{name: "split scope matches an element", cite: "jwt_authn space_delimited_claims",
			policies: claim("request.auth.claims[scope]", "write"), req: jwt(Claims{"scope": []any{"read", "write"}}), allow: true, rule: id},
		{name: "audiences", cite: "conditions page: request.auth.audiences → aud",
			policies: claim("request.auth.audiences", "api.company.com"), req: jwt(Claims{"aud": []any{"x", "api.company.com"}}), allow: true, rule: id},
		{name: "presenter", cite: "conditions page: request.auth.presenter → azp",
			policies: claim("request.auth.presenter", "web"), req: jwt(Claims{"azp": "web"}), allow: true, rule: id},
		{name: "request.auth.principal", cite: "conditions page: request.auth.principal",
			policies: claim("request.auth.principal", "iss/sub"), req: jwt(Claims{"iss": "iss", "sub": "sub"}), allow: true, rule: id},
		{name: "notRequestPrincipals * denies anonymous requests", cite: "Istio docs: require a valid token with DENY notRequestPrincipals",
			policies: policy("foo", "p", "action: DENY\nrules:\n- from:\n  - source:\n      notRequestPrincipals: ['*']"), req: httpReq(sleepFoo, "GET", "/"), allow: false, rule: id},
	}
	runAuthz(t, cases)
}

// runAuthz runs every case twice: scanning the rules, and through the
// peer index (see index.go), which must not change any decision.
func runAuthz(t *testing.T, cases []authzCase) {
	t.Helper()
	defer func(old int) { indexThreshold = old }(indexThreshold)
	for _, threshold := range []int{1 << 30, 0} {
		indexThreshold = threshold
		runAuthzOnce(t, cases)
	}
}

func runAuthzOnce(t *testing.T, cases []authzCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := set(t, c.policies, c.opts, c.providers)
			s.AssumeExtAuthzAllows = c.assume
			d := s.Evaluate(&c.req)
			if d.Allowed != c.allow || d.Match.ID() != c.rule {
				t.Errorf("%s\nallowed=%v rule=%q reason=%d, want allowed=%v rule=%q", c.cite, d.Allowed, d.Match.ID(), d.Reason, c.allow, c.rule)
			}
		})
	}
}

func TestShadowAndAudit(t *testing.T) {
	dry := strings.Replace(policy("foo", "dry", "action: DENY\nrules:\n- {}"), "namespace: foo", "namespace: foo\n  annotations:\n    istio.io/dry-run: \"true\"", 1)
	s := set(t, dry+policy("foo", "audit", "action: AUDIT\nrules:\n- {}"), Options{}, nil)
	d := s.Evaluate(&Request{HTTP: true, Method: "GET", Path: "/"})
	if !d.Allowed || !d.DryDeny.Present || d.DryDeny.Allowed || d.DryDeny.Match.ID() != "ns[foo]-policy[dry]-rule[0]" {
		t.Errorf("dry-run DENY: %+v", d)
	}
	if d.Audit.ID() != "ns[foo]-policy[audit]-rule[0]" {
		t.Errorf("audit: %+v", d.Audit)
	}
}

func TestSkippedRulesAreExplained(t *testing.T) {
	s := set(t, policy("foo", "p", "rules:\n- to:\n  - operation:\n      methods: [GET]"), Options{}, nil)
	p := s.Policies[0]
	if p.Skipped[0][0] != "" || p.Skipped[1][0] != "methods is HTTP-only" {
		t.Errorf("Skipped = %q", p.Skipped)
	}
}
