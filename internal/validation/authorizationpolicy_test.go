package validation

import (
	"fmt"
	"strings"
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"
)

// Fragments of the specs in istio's TestValidateAuthorizationPolicy.
const (
	// selectorS is the selector most upstream rows use.
	selectorS = `"selector":{"matchLabels":{"app":"httpbin","version":"v1"}}`
	// gatewayRef is upstream's Gateway target reference.
	gatewayRef = `{"group":"gateway.networking.k8s.io","kind":"Gateway","name":"foo"}`
	// denyRule is the DENY rule upstream pairs with target references.
	denyRule = `"action":"DENY","rules":[{"from":[{"source":{"principals":["temp"]}}],"to":[{"operation":{"ports":["8080"],"methods":["GET","DELETE"]}}]}]`
)

const denyNoRules = "DENY action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request"

const allowedRefs = "[core/v1/Service networking.istio.io/v1/ServiceEntry gateway.networking.k8s.io/v1/Gateway gateway.networking.k8s.io/v1/GatewayClass]"

type apRow struct {
	name  string
	ann   map[string]string
	spec  string                                      // protojson form, or
	build func() *securityv1beta1.AuthorizationPolicy // a Go-built spec (shapes JSON cannot express)
	expect
}

func runAP(t *testing.T, rows []apRow) {
	t.Helper()
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			var spec *securityv1beta1.AuthorizationPolicy
			if row.build != nil {
				spec = row.build()
			} else {
				spec = decode(t, &securityv1beta1.AuthorizationPolicy{}, row.spec)
			}
			checkReport(t, AuthorizationPolicy(testMeta(row.ann), spec), row.expect)
		})
	}
}

// TestAuthorizationPolicyUpstream ports every row of istio
// pkg/config/validation/validation_test.go TestValidateAuthorizationPolicy.
func TestAuthorizationPolicyUpstream(t *testing.T) {
	rows := []apRow{
		// istio validation_test.go TestValidateAuthorizationPolicy "good"
		{name: "good", spec: `{` + selectorS + `,"rules":[{
			"from":[{"source":{"principals":["sa1"]}},{"source":{"principals":["sa2"]}}],
			"to":[{"operation":{"methods":["GET"]}},{"operation":{"methods":["POST"]}}],
			"when":[{"key":"source.ip","values":["1.2.3.4","5.6.7.0/24"]},{"key":"request.headers[:authority]","values":["v1","v2"]}]}]}`,
			expect: expect{valid: true, only: true}},
		// "good serviceAccounts"
		{name: "good serviceAccounts", spec: `{` + selectorS + `,"rules":[{
			"from":[{"source":{"serviceAccounts":["ns1/sa1","ns2/sa2"]}},{"source":{"principals":["sa2"]}}],
			"to":[{"operation":{"methods":["GET"]}},{"operation":{"methods":["POST"]}}],
			"when":[{"key":"source.ip","values":["1.2.3.4","5.6.7.0/24"]},{"key":"request.headers[:authority]","values":["v1","v2"]}]}]}`,
			expect: expect{valid: true, only: true}},
		// "serviceAccounts and namespaces"
		{name: "serviceAccounts and namespaces", spec: `{` + selectorS + `,"rules":[{
			"from":[{"source":{"serviceAccounts":["ns1/sa1","ns2/sa2"],"namespaces":["ns"]}}]}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.rules[0].from[0].source", "Cannot set serviceAccounts with namespaces or principals"),
				errAt("spec.rules[0].from[0].source", "cannot set serviceAccounts with namespaces or principals, found at rule 0"),
			}}},
		// "custom-good"
		{name: "custom-good", spec: `{"action":"CUSTOM","provider":{"name":"my-custom-authz"},"rules":[{}]}`,
			expect: expect{valid: true, only: true}},
		// "custom-empty-provider"
		{name: "custom-empty-provider", spec: `{"action":"CUSTOM","provider":{"name":""},"rules":[{}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.provider.name", "`provider.name` must not be empty")}}},
		// "custom-nil-provider"
		{name: "custom-nil-provider", spec: `{"action":"CUSTOM","rules":[{}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.provider", "`provider.name` must not be empty")}}},
		// "custom-invalid-rule"
		{name: "custom-invalid-rule", spec: `{"action":"CUSTOM","provider":{"name":"my-custom-authz"},"rules":[{
			"from":[{"source":{"namespaces":["ns"],"notNamespaces":["ns"],"principals":["id"],"notPrincipals":["id"],"requestPrincipals":["req"],"notRequestPrincipals":["req"]}}],
			"when":[{"key":"source.namespace","values":["source.namespace1"],"notValues":["source.namespace2"]},
				{"key":"source.principal","values":["source.principal1"],"notValues":["source.principal2"]},
				{"key":"request.auth.claims[a]","values":["claims1"],"notValues":["claims2"]}]}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.rules[0].from[0].source.namespaces", "From.Namespaces is currently not supported with CUSTOM action"),
				errAt("spec.rules[0].from[0].source.notNamespaces", "From.NotNamespaces is currently not supported with CUSTOM action"),
				errAt("spec.rules[0].from[0].source.principals", "From.Principals is currently not supported with CUSTOM action"),
				errAt("spec.rules[0].from[0].source.notPrincipals", "From.NotPrincipals is currently not supported with CUSTOM action"),
				errAt("spec.rules[0].from[0].source.requestPrincipals", "From.RequestPrincipals is currently not supported with CUSTOM action"),
				errAt("spec.rules[0].from[0].source.notRequestPrincipals", "From.NotRequestPrincipals is currently not supported with CUSTOM action"),
				errAt("spec.rules[0].when[0].key", "source.namespace is currently not supported with CUSTOM action"),
				errAt("spec.rules[0].when[1].key", "source.principal is currently not supported with CUSTOM action"),
				errAt("spec.rules[0].when[2].key", "request.auth.claims[a] is currently not supported with CUSTOM action"),
			}}},
		// "provider-wrong-action"
		{name: "provider-wrong-action", spec: `{"action":"ALLOW","provider":{"name":""},"rules":[{}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.provider", "`provider` must not be with non CUSTOM action, found ALLOW")}}},
		// "allow-rules-nil"
		{name: "allow-rules-nil", spec: `{"action":"ALLOW"}`, expect: expect{valid: true, only: true}},
		// "dry-run-valid-allow"
		{name: "dry-run-valid-allow", ann: map[string]string{"istio.io/dry-run": "true"}, spec: `{"action":"ALLOW"}`,
			expect: expect{valid: true, only: true}},
		// "dry-run-valid-deny"
		{name: "dry-run-valid-deny", ann: map[string]string{"istio.io/dry-run": "false"}, spec: `{"action":"DENY","rules":[{}]}`,
			expect: expect{valid: true, only: true}},
		// "dry-run-invalid-value"
		{name: "dry-run-invalid-value", ann: map[string]string{"istio.io/dry-run": "foo"}, spec: `{"action":"ALLOW"}`,
			expect: expect{only: true, want: []Problem{errAt("metadata.annotations",
				`namespace/name has annotation istio.io/dry-run with invalid value (foo): strconv.ParseBool: parsing "foo": invalid syntax`)}}},
		// "dry-run-invalid-action-custom": the metadata check returns before the
		// kind's checks, so the missing rules and provider go unreported.
		{name: "dry-run-invalid-action-custom", ann: map[string]string{"istio.io/dry-run": "true"}, spec: `{"action":"CUSTOM"}`,
			expect: expect{only: true, want: []Problem{errAt("metadata.annotations",
				"the annotation istio.io/dry-run currently only supports action ALLOW/DENY, found action CUSTOM in namespace/name")}}},
		// "dry-run-invalid-action-audit"
		{name: "dry-run-invalid-action-audit", ann: map[string]string{"istio.io/dry-run": "true"}, spec: `{"action":"AUDIT"}`,
			expect: expect{only: true, want: []Problem{errAt("metadata.annotations",
				"the annotation istio.io/dry-run currently only supports action ALLOW/DENY, found action AUDIT in namespace/name")}}},
		// "deny-rules-nil"
		{name: "deny-rules-nil", spec: `{"action":"DENY"}`,
			expect: expect{only: true, want: []Problem{errAt("spec.rules", denyNoRules)}}},
		// "selector-empty-value"
		{name: "selector-empty-value", spec: `{"selector":{"matchLabels":{"app":"","version":"v1"}}}`,
			expect: expect{valid: true, only: true}},
		// "selector-empty-key"
		{name: "selector-empty-key", spec: `{"selector":{"matchLabels":{"app":"httpbin","":"v1"}}}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.selector.matchLabels", "key must not be empty"),
				errAt("spec.selector.matchLabels[]", `empty key is not supported in selector: "=v1"`),
			}}},
		// "selector-empty-labels"
		{name: "selector-empty-labels", spec: `{"selector":{}}`,
			expect: expect{valid: true, warn: true, only: true, want: []Problem{
				warnAt("spec.selector", "workload selector specified without labels"),
			}}},
		// "selector-wildcard-value"
		{name: "selector-wildcard-value", spec: `{"selector":{"matchLabels":{"app":"httpbin-*"}}}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.selector.matchLabels[app]", "wildcard not allowed in label value match"),
				errAt("spec.selector.matchLabels[app]", `wildcard is not supported in selector: "app=httpbin-*"`),
			}}},
		// "selector-wildcard-key"
		{name: "selector-wildcard-key", spec: `{"selector":{"matchLabels":{"app-*":"httpbin"}}}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.selector.matchLabels", "wildcard not allowed in label key match"),
				errAt("spec.selector.matchLabels[app-*]", `wildcard is not supported in selector: "app-*=httpbin"`),
			}}},
		// "target-ref-good"
		{name: "target-ref-good", spec: `{"targetRef":` + gatewayRef + `,` + denyRule + `}`,
			expect: expect{valid: true, only: true}},
		// "target-refs-good"
		{name: "target-refs-good", spec: `{"targetRefs":[` + gatewayRef + `],` + denyRule + `}`,
			expect: expect{valid: true, only: true}},
		// "target-refs-good-service"
		{name: "target-refs-good-service", spec: `{"targetRefs":[{"group":"","kind":"Service","name":"foo"}],` + denyRule + `}`,
			expect: expect{valid: true, only: true}},
		// "target-ref-non-empty-namespace"
		{name: "target-ref-non-empty-namespace",
			spec: `{"targetRef":{"group":"gateway.networking.k8s.io","kind":"Gateway","name":"foo","namespace":"bar"},` + denyRule + `}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.targetRef.namespace", "cross namespace referencing is not currently supported"),
				errAt("spec.targetRef.namespace", "targetRef namespace must not be set; cross namespace referencing is not supported"),
			}}},
		// "target-ref-empty-name"
		{name: "target-ref-empty-name", spec: `{"targetRef":{"group":"gateway.networking.k8s.io","kind":"Gateway"},` + denyRule + `}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.targetRef.name", "Required value"),
				errAt("spec.targetRef.name", "targetRef name must be set"),
			}}},
		// "target-ref-wrong-group"
		{name: "target-ref-wrong-group", spec: `{"targetRef":{"group":"wrong-group","kind":"Gateway","name":"foo"},` + denyRule + `}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.targetRef", "targetRef must be to one of "+allowedRefs+" but was wrong-group/Gateway"),
			}}},
		// "target-ref-wrong-kind"
		{name: "target-ref-wrong-kind", spec: `{"targetRef":{"group":"gateway.networking.k8s.io","kind":"wrong-kind","name":"foo"},` + denyRule + `}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.targetRef", "targetRef must be to one of "+allowedRefs+" but was gateway.networking.k8s.io/wrong-kind"),
			}}},
		// "target-ref-and-selector-cannot-both-be-set"
		{name: "target-ref-and-selector-cannot-both-be-set",
			spec: `{"targetRef":` + gatewayRef + `,"selector":{"matchLabels":{"app":"httpbin"}},` + denyRule + `}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec", "only one of targetRefs or selector can be set"),
				errAt("spec", "only one of targetRefs or workloadSelector can be set"),
			}}},
		// "target-refs-and-selector-cannot-both-be-set"
		{name: "target-refs-and-selector-cannot-both-be-set",
			spec: `{"targetRefs":[` + gatewayRef + `],"selector":{"matchLabels":{"app":"httpbin"}},` + denyRule + `}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec", "only one of targetRefs or selector can be set"),
				errAt("spec", "only one of targetRefs or workloadSelector can be set"),
			}}},
		// "from-empty": an empty, non-nil Go slice (JSON `from: []` decodes to nil).
		{name: "from-empty", build: func() *securityv1beta1.AuthorizationPolicy {
			return &securityv1beta1.AuthorizationPolicy{Rules: []*securityv1beta1.Rule{{From: []*securityv1beta1.Rule_From{}}}}
		}, expect: expect{only: true, want: []Problem{errAt("spec.rules[0].from", "`from` must not be empty, found at rule 0")}}},
		// "source-nil"
		{name: "source-nil", spec: `{"rules":[{"from":[{}]}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.rules[0].from[0].source", "`from.source` must not be nil, found at rule 0")}}},
		// "source-empty"
		{name: "source-empty", spec: `{"rules":[{"from":[{"source":{}}]}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.rules[0].from[0].source", "`from.source` must not be empty, found at rule 0")}}},
		// "to-empty"
		{name: "to-empty", build: func() *securityv1beta1.AuthorizationPolicy {
			return &securityv1beta1.AuthorizationPolicy{Rules: []*securityv1beta1.Rule{{To: []*securityv1beta1.Rule_To{}}}}
		}, expect: expect{only: true, want: []Problem{errAt("spec.rules[0].to", "`to` must not be empty, found at rule 0")}}},
		// "operation-nil"
		{name: "operation-nil", spec: `{"rules":[{"to":[{}]}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.rules[0].to[0].operation", "`to.operation` must not be nil, found at rule 0")}}},
		// "operation-empty"
		{name: "operation-empty", spec: `{"rules":[{"to":[{"operation":{}}]}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.rules[0].to[0].operation", "`to.operation` must not be empty, found at rule 0")}}},
	}

	// "Principals-empty" … "NotRemoteIpBlocks-empty": one source field holds a
	// good value then "". The IP fields also fail ValidateIPs on "".
	for _, f := range []struct{ upstream, json, good string }{
		{"Principals", "principals", "p1"},
		{"NotPrincipals", "notPrincipals", "p1"},
		{"RequestPrincipals", "requestPrincipals", "p1"},
		{"NotRequestPrincipals", "notRequestPrincipals", "p1"},
		{"Namespaces", "namespaces", "ns"},
		{"ServiceAccounts", "serviceAccounts", "ns/sa"},
		{"NotNamespaces", "notNamespaces", "ns"},
		{"IpBlocks", "ipBlocks", "1.2.3.4"},
		{"NotIpBlocks", "notIpBlocks", "1.2.3.4"},
		{"RemoteIpBlocks", "remoteIpBlocks", "1.2.3.4"},
		{"NotRemoteIpBlocks", "notRemoteIpBlocks", "1.2.3.4"},
	} {
		path := "spec.rules[0].from[0].source." + f.json + "[1]"
		want := []Problem{errAt(path, "empty value not allowed, found in "+f.upstream)}
		if strings.Contains(f.json, "pBlocks") {
			want = append(want, errAt(path, "bad IP address ()"))
		}
		rows = append(rows, apRow{
			name:   f.upstream + "-empty", // istio TestValidateAuthorizationPolicy "<Field>-empty"
			spec:   fmt.Sprintf(`{"rules":[{"from":[{"source":{%q:[%q,""]}}]}]}`, f.json, f.good),
			expect: expect{only: true, want: want},
		})
	}
	// "Hosts-empty" … "NotPaths-empty": the same for operation fields.
	for _, f := range []struct{ upstream, json, good string }{
		{"Hosts", "hosts", "host"},
		{"NotHosts", "notHosts", "host"},
		{"Ports", "ports", "80"},
		{"NotPorts", "notPorts", "80"},
		{"Methods", "methods", "GET"},
		{"NotMethods", "notMethods", "GET"},
		{"Paths", "paths", "/path"},
		{"NotPaths", "notPaths", "/path"},
	} {
		path := "spec.rules[0].to[0].operation." + f.json + "[1]"
		want := []Problem{errAt(path, "empty value not allowed, found in "+f.upstream)}
		if strings.HasSuffix(f.json, "orts") {
			want = append(want, errAt(path, `bad port (): strconv.ParseUint: parsing "": invalid syntax`))
		}
		rows = append(rows, apRow{
			name:   f.upstream + "-empty",
			spec:   fmt.Sprintf(`{"rules":[{"to":[{"operation":{%q:[%q,""]}}]}]}`, f.json, f.good),
			expect: expect{only: true, want: want},
		})
	}

	rows = append(rows, []apRow{
		// "value-empty"
		{name: "value-empty", spec: `{"rules":[{"when":[{"key":"request.headers[:authority]","values":["v1",""]}]}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.rules[0].when[0].values[1]",
				"invalid `value` for `key` request.headers[:authority]: empty value not allowed, found in request.headers[:authority]")}}},
		// "invalid ip and port in ipBlocks"
		{name: "invalid ip and port in ipBlocks", spec: `{"rules":[{
			"from":[{"source":{"ipBlocks":["1.2.3.4","ip1"],"notIpBlocks":["5.6.7.8","ip2"]}}],
			"to":[{"operation":{"ports":["80","port1"],"notPorts":["90","port2"]}}]}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.rules[0].from[0].source.ipBlocks[1]", "bad IP address (ip1)"),
				errAt("spec.rules[0].from[0].source.notIpBlocks[1]", "bad IP address (ip2)"),
				errAt("spec.rules[0].to[0].operation.ports[1]", `bad port (port1): strconv.ParseUint: parsing "port1": invalid syntax`),
				errAt("spec.rules[0].to[0].operation.notPorts[1]", `bad port (port2): strconv.ParseUint: parsing "port2": invalid syntax`),
			}}},
		// "invalid ip and port in remoteIpBlocks"
		{name: "invalid ip and port in remoteIpBlocks", spec: `{"rules":[{
			"from":[{"source":{"remoteIpBlocks":["1.2.3.4","ip1"],"notRemoteIpBlocks":["5.6.7.8","ip2"]}}],
			"to":[{"operation":{"ports":["80","port1"],"notPorts":["90","port2"]}}]}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.rules[0].from[0].source.remoteIpBlocks[1]", "bad IP address (ip1)"),
				errAt("spec.rules[0].from[0].source.notRemoteIpBlocks[1]", "bad IP address (ip2)"),
				errAt("spec.rules[0].to[0].operation.ports[1]", `bad port (port1): strconv.ParseUint: parsing "port1": invalid syntax`),
				errAt("spec.rules[0].to[0].operation.notPorts[1]", `bad port (port2): strconv.ParseUint: parsing "port2": invalid syntax`),
			}}},
		// "condition-key-missing"
		{name: "condition-key-missing", spec: `{"selector":{"matchLabels":{"app":"httpbin"}},"rules":[{"when":[{"values":["v1","v2"]}]}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.rules[0].when[0].key", "`key` must not be empty")}}},
		// "condition-key-empty"
		{name: "condition-key-empty", spec: `{"selector":{"matchLabels":{"app":"httpbin"}},"rules":[{"when":[{"key":"","values":["v1","v2"]}]}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.rules[0].when[0].key", "`key` must not be empty")}}},
		// "condition-value-missing"
		{name: "condition-value-missing", spec: `{"selector":{"matchLabels":{"app":"httpbin"}},"rules":[{"when":[{"key":"source.principal"}]}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.rules[0].when[0]",
				"at least one of `values` or `notValues` must be set for key source.principal")}}},
		// "condition-value-invalid"
		{name: "condition-value-invalid", spec: `{"rules":[{"when":[{"key":"source.ip","values":["a.b.c.d"]}]}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.rules[0].when[0].values[0]",
				"invalid `value` for `key` source.ip: bad IP address (a.b.c.d)")}}},
		// "condition-notValue-invalid"
		{name: "condition-notValue-invalid", spec: `{"rules":[{"when":[{"key":"source.ip","notValues":["a.b.c.d"]}]}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.rules[0].when[0].notValues[0]",
				"invalid `notValue` for `key` source.ip: bad IP address (a.b.c.d)")}}},
		// "condition-unknown": the key check runs for the empty notValues list
		// too, so istiod reports it twice.
		{name: "condition-unknown", spec: `{"selector":{"matchLabels":{"app":"httpbin"}},"rules":[{"when":[{"key":"key1","values":["v1"]}]}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.rules[0].when[0].key", "invalid `value` for `key` key1: unknown attribute: key1"),
				errAt("spec.rules[0].when[0].key", "invalid `notValue` for `key` key1: unknown attribute: key1"),
			}}},
		// "L7DenyWithFrom"
		{name: "L7DenyWithFrom", spec: `{"action":"DENY","selector":{"matchLabels":{"app":"httpbin"}},
			"rules":[{"from":[{"source":{"requestPrincipals":["example.com/sub-1"]}}]}]}`,
			expect: expect{valid: true, warn: true, only: true, want: []Problem{warnAt("spec.rules[0]", denyTCPWarning)}}},
		// "L7DenyWithTo"
		{name: "L7DenyWithTo", spec: `{"action":"DENY","selector":{"matchLabels":{"app":"httpbin"}},
			"rules":[{"to":[{"operation":{"methods":["GET","DELETE"]}}]}]}`,
			expect: expect{valid: true, warn: true, only: true, want: []Problem{warnAt("spec.rules[0]", denyTCPWarning)}}},
		// "L7DenyWithFromAndTo"
		{name: "L7DenyWithFromAndTo", spec: `{"action":"DENY","selector":{"matchLabels":{"app":"httpbin"}},
			"rules":[{"from":[{"source":{"principals":["temp"]}}],"to":[{"operation":{"methods":["GET","DELETE"]}}]}]}`,
			expect: expect{valid: true, warn: true, only: true, want: []Problem{warnAt("spec.rules[0]", denyTCPWarning)}}},
		// "L7DenyWithFromAndToWithPort"
		{name: "L7DenyWithFromAndToWithPort", spec: `{"action":"DENY","selector":{"matchLabels":{"app":"httpbin"}},
			"rules":[{"from":[{"source":{"principals":["temp"]}}],"to":[{"operation":{"ports":["8080"],"methods":["GET","DELETE"]}}]}]}`,
			expect: expect{valid: true, only: true}},
	}...)

	if len(rows) != 67 {
		t.Fatalf("upstream table has 67 rows, ported %d", len(rows))
	}
	runAP(t, rows)
}

// TestAuthorizationPolicyRules covers istiod behaviours the upstream table
// leaves out, each citing the rule in ValidateAuthorizationPolicy or
// validateMetadata (istio pkg/config/validation/validation.go) it encodes.
func TestAuthorizationPolicyRules(t *testing.T) {
	runAP(t, []apRow{
		// webhook pipeline: `rules: []` decodes to nil, so DENY fails as if absent.
		{name: "deny rules empty list decodes to nil", spec: `{"action":"DENY","rules":[]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.rules", denyNoRules)}}},
		// webhook pipeline: `from: []` and `to: []` decode to nil and are accepted.
		{name: "from and to empty lists accepted", spec: `{"rules":[{"from":[],"to":[]}]}`,
			expect: expect{valid: true, only: true}},
		// CUSTOM without rules: the provider is then not checked.
		{name: "custom without rules skips provider check", spec: `{"action":"CUSTOM","provider":{"name":""}}`,
			expect: expect{only: true, want: []Problem{errAt("spec.rules",
				"CUSTOM action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request")}}},
		// CUSTOM: identity sources are unsupported, including serviceAccounts and trustDomains.
		{name: "custom serviceAccounts and trustDomains", spec: `{"action":"CUSTOM","provider":{"name":"ext"},
			"rules":[{"from":[{"source":{"serviceAccounts":["sa"],"notTrustDomains":["td"]}}],"when":[{"key":"source.trustDomain","values":["td"]},{"key":"request.auth.presenter","values":["p"]}]}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.rules[0].from[0].source.serviceAccounts", "From.ServiceAccounts is currently not supported with CUSTOM action"),
				errAt("spec.rules[0].from[0].source.notTrustDomains", "From.NotTrustDomains is currently not supported with CUSTOM action"),
				errAt("spec.rules[0].when[0].key", "source.trustDomain is currently not supported with CUSTOM action"),
				errAt("spec.rules[0].when[1].key", "request.auth.presenter is currently not supported with CUSTOM action"),
			}}},
		// CUSTOM: a nil condition is reported by the CUSTOM loop and again, as
		// an empty key, by the general condition loop.
		{name: "custom nil when", build: func() *securityv1beta1.AuthorizationPolicy {
			return &securityv1beta1.AuthorizationPolicy{
				Action:       securityv1beta1.AuthorizationPolicy_CUSTOM,
				ActionDetail: &securityv1beta1.AuthorizationPolicy_Provider{Provider: &securityv1beta1.AuthorizationPolicy_ExtensionProvider{Name: "ext"}},
				Rules:        []*securityv1beta1.Rule{{When: []*securityv1beta1.Condition{nil}}},
			}
		}, expect: expect{only: true, want: []Problem{
			errAt("spec.rules[0].when[0]", "when field cannot be nil"),
			errAt("spec.rules[0].when[0].key", "`key` must not be empty"),
		}}},
		// provider with a non-CUSTOM action, even an empty provider.
		{name: "deny with empty provider", spec: `{"action":"DENY","provider":{},"rules":[{}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.provider", "`provider` must not be with non CUSTOM action, found DENY")}}},
		// AUDIT without rules is valid.
		{name: "audit rules nil", spec: `{"action":"AUDIT"}`, expect: expect{valid: true, only: true}},
		// nil rule, nil from and nil to entries (Go callers only).
		{name: "nil rule from and to entries", build: func() *securityv1beta1.AuthorizationPolicy {
			return &securityv1beta1.AuthorizationPolicy{Rules: []*securityv1beta1.Rule{
				nil,
				{From: []*securityv1beta1.Rule_From{nil}, To: []*securityv1beta1.Rule_To{nil}},
			}}
		}, expect: expect{only: true, want: []Problem{
			errAt("spec.rules[0]", "`rule` must not be nil, found at rule 0"),
			errAt("spec.rules[1].from[0]", "`from` must not be nil, found at rule 1"),
			errAt("spec.rules[1].to[0]", "`to` must not be nil, found at rule 1"),
		}}},
		// validateMetadata: dry-run accepts every strconv.ParseBool spelling.
		{name: "dry-run value 1", ann: map[string]string{"istio.io/dry-run": "1"}, spec: `{"action":"DENY","rules":[{}]}`,
			expect: expect{valid: true, only: true}},
		// validateMetadata: "yes" is not a Go boolean.
		{name: "dry-run value yes", ann: map[string]string{"istio.io/dry-run": "yes"}, spec: `{}`,
			expect: expect{only: true, want: []Problem{errAt("metadata.annotations",
				`namespace/name has annotation istio.io/dry-run with invalid value (yes): strconv.ParseBool: parsing "yes": invalid syntax`)}}},
		// validateMetadata: the always-reject annotation.
		{name: "always reject annotation", ann: map[string]string{"internal.istio.io/webhook-always-reject": ""}, spec: `{"action":"DENY"}`,
			expect: expect{only: true, want: []Problem{errAt("metadata.annotations", `"internal.istio.io/webhook-always-reject" annotation found, rejecting`)}}},
		// validateMetadata: internal parent annotations may not be set by users.
		{name: "parent namespace annotation", ann: map[string]string{"internal.istio.io/parent-namespace": "x"}, spec: `{}`,
			expect: expect{only: true, want: []Problem{errAt("metadata.annotations", `"internal.istio.io/parent-namespace" annotation found, this may not be set by users`)}}},
		{name: "parents annotation", ann: map[string]string{"internal.istio.io/parents": "x"}, spec: `{}`,
			expect: expect{only: true, want: []Problem{errAt("metadata.annotations", `"internal.istio.io/parents" annotation found, this may not be set by users`)}}},
		// ValidatePorts: above 65535 parses, so the message ends in <nil>; port 0 passes.
		{name: "port out of range and port zero", spec: `{"rules":[{"to":[{"operation":{"ports":["0","70000"]}}]}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.rules[0].to[0].operation.ports[1]", "bad port (70000): <nil>")}}},
		// ValidatePorts: signs and spaces are not digits.
		{name: "port with sign", spec: `{"rules":[{"to":[{"operation":{"notPorts":["+80"]}}]}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.rules[0].to[0].operation.notPorts[0]", `bad port (+80): strconv.ParseUint: parsing "+80": invalid syntax`)}}},
		// ValidateIPs: host bits and zones pass, leading zeros and long prefixes do not.
		{name: "ip forms", spec: `{"rules":[{"from":[{"source":{"ipBlocks":["10.0.0.1/8","fe80::1%eth0","::ffff:1.2.3.4","010.0.0.1","1.2.3.4/33"]}}]}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.rules[0].from[0].source.ipBlocks[3]", "bad IP address (010.0.0.1)"),
				errAt("spec.rules[0].from[0].source.ipBlocks[4]", `bad CIDR range (1.2.3.4/33): netip.ParsePrefix("1.2.3.4/33"): prefix length out of range`),
			}}},
		// CheckServiceAccount: wildcards, too many slashes, empty halves.
		{name: "service account formats", spec: `{"rules":[{"from":[{"source":{"serviceAccounts":["ns/*"]}},{"source":{"serviceAccounts":["a/b/c"]}},{"source":{"notServiceAccounts":["ok","/sa"]}},{"source":{"serviceAccounts":["ns/"]}}]}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.rules[0].from[0].source.serviceAccounts[0]", "wildcard not allowed, found in ServiceAccounts"),
				errAt("spec.rules[0].from[1].source.serviceAccounts[0]", `expected format 'serviceAccount' or 'namespace/serviceAccount', found "a/b/c" in ServiceAccounts`),
				errAt("spec.rules[0].from[2].source.notServiceAccounts[1]", `expected format 'serviceAccount' or 'namespace/serviceAccount', found empty namespace "/sa" in NotServiceAccounts`),
				errAt("spec.rules[0].from[3].source.serviceAccounts[0]", `expected format 'serviceAccount' or 'namespace/serviceAccount', found empty serviceAccount "ns/" in ServiceAccounts`),
			}}},
		// CheckTrustDomainValues on trustDomains and notTrustDomains.
		{name: "trust domain values", spec: `{"rules":[{"from":[{"source":{"trustDomains":["spiffe://cluster.local"],"notTrustDomains":["a*b"]}}]}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.rules[0].from[0].source.trustDomains[0]", `trust domain must not contain '/', found in TrustDomains: "spiffe://cluster.local"`),
				errAt("spec.rules[0].from[0].source.notTrustDomains[0]", `wildcard is only allowed at the start or end, found in NotTrustDomains: "a*b"`),
			}}},
		// No wildcard-position check on principals, namespaces or hosts; methods unchecked.
		{name: "wildcards elsewhere unchecked", spec: `{"rules":[{"from":[{"source":{"principals":["a*b*c"],"namespaces":["*x*"]}}],"to":[{"operation":{"hosts":["*.*"],"methods":["get"],"paths":["/a*b"]}}]}]}`,
			expect: expect{valid: true, only: true}},
		// CheckValidPathTemplate on paths and notPaths.
		{name: "path templates", spec: `{"rules":[{"to":[{"operation":{"paths":["/ok/{*}","/{**}/{*}"],"notPaths":["/a{b"]}}]}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.rules[0].to[0].operation.paths[1]", "invalid or unsupported path {**}/{*}, found in Paths. {**} is not the last operator"),
				errAt("spec.rules[0].to[0].operation.notPaths[0]", "invalid or unsupported path a{b, found in NotPaths. Contains '{' or '}' beyond a supported path template"),
			}}},
		// Conditions: several bad values are each reported with the prefix.
		{name: "condition several bad ports", spec: `{"rules":[{"when":[{"key":"destination.port","values":["80","x","70000"]}]}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.rules[0].when[0].values[1]", "invalid `value` for `key` destination.port: bad port (x): strconv.ParseUint: parsing \"x\": invalid syntax"),
				errAt("spec.rules[0].when[0].values[2]", "invalid `value` for `key` destination.port: bad port (70000): <nil>"),
			}}},
		// DENY warning: trustDomains are not a TCP attribute.
		{name: "deny warning trustDomains only", spec: `{"action":"DENY","rules":[{"from":[{"source":{"trustDomains":["td"]}}]}]}`,
			expect: expect{valid: true, warn: true, only: true, want: []Problem{warnAt("spec.rules[0]", denyTCPWarning)}}},
		// DENY warning: a rule with only conditions never warns.
		{name: "deny when only no warning", spec: `{"action":"DENY","rules":[{"when":[{"key":"request.auth.claims[iss]","values":["x"]}]}]}`,
			expect: expect{valid: true, only: true}},
		// DENY warning: TCP attributes in from, nothing in to.
		{name: "deny notPrincipals no warning", spec: `{"action":"DENY","rules":[{"from":[{"source":{"notPrincipals":["x"]}}]}]}`,
			expect: expect{valid: true, only: true}},
		// DENY warning: per rule, so two HTTP-only rules warn twice.
		{name: "deny warning per rule", spec: `{"action":"DENY","rules":[{"to":[{"operation":{"paths":["/a"]}}]},{"to":[{"operation":{"notPorts":["1"]}}]},{"to":[{"operation":{"hosts":["h"]}}]}]}`,
			expect: expect{valid: true, warn: true, only: true, want: []Problem{
				warnAt("spec.rules[0]", denyTCPWarning),
				warnAt("spec.rules[2]", denyTCPWarning),
			}}},
		// DENY warning: only DENY warns.
		{name: "allow http only no warning", spec: `{"action":"ALLOW","rules":[{"to":[{"operation":{"paths":["/a"]}}]}]}`,
			expect: expect{valid: true, only: true}},
	})
}

// TestAuthorizationPolicySchema covers the AuthorizationPolicy CRD schema
// (istio/api kubernetes/customresourcedefinitions.gen.yaml), which the API
// server enforces before istiod sees the object.
func TestAuthorizationPolicySchema(t *testing.T) {
	nRules := func(n int) func() *securityv1beta1.AuthorizationPolicy {
		return func() *securityv1beta1.AuthorizationPolicy {
			p := &securityv1beta1.AuthorizationPolicy{}
			for i := 0; i < n; i++ {
				p.Rules = append(p.Rules, &securityv1beta1.Rule{})
			}
			return p
		}
	}
	long := strings.Repeat("a", 321)
	labels := map[string]string{}
	for i := 0; i < 4097; i++ {
		labels[fmt.Sprintf("k%d", i)] = "v"
	}
	runAP(t, []apRow{
		// CRD rules maxItems 512.
		{name: "rules maxItems 512 ok", build: nRules(512), expect: expect{valid: true, only: true}},
		{name: "rules maxItems 513", build: nRules(513), expect: expect{only: true, want: []Problem{
			errAt("spec.rules", "Too many: 513: must have at most 512 items")}}},
		// CRD rules[].from maxItems 512.
		{name: "from maxItems 513", build: func() *securityv1beta1.AuthorizationPolicy {
			rule := &securityv1beta1.Rule{}
			for i := 0; i < 513; i++ {
				rule.From = append(rule.From, &securityv1beta1.Rule_From{Source: &securityv1beta1.Source{Principals: []string{"p"}}})
			}
			return &securityv1beta1.AuthorizationPolicy{Rules: []*securityv1beta1.Rule{rule}}
		}, expect: expect{only: true, want: []Problem{errAt("spec.rules[0].from", "Too many: 513: must have at most 512 items")}}},
		// CRD serviceAccounts maxItems 16 (istiod's CheckServiceAccount agrees).
		{name: "serviceAccounts maxItems 16", spec: `{"rules":[{"from":[{"source":{"serviceAccounts":["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q"]}}]}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.rules[0].from[0].source.serviceAccounts", "Too many: 17: must have at most 16 items"),
				errAt("spec.rules[0].from[0].source.serviceAccounts", "may not have more than 16 values"),
			}}},
		// CRD serviceAccounts items maxLength 320 (istiod agrees).
		{name: "notServiceAccounts item maxLength 320", spec: `{"rules":[{"from":[{"source":{"notServiceAccounts":["` + long + `"]}}]}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.rules[0].from[0].source.notServiceAccounts[0]", "Too long: may not be more than 320 bytes"),
				errAt("spec.rules[0].from[0].source.notServiceAccounts[0]", `value cannot exceed 320 characters, found "`+long+`" in NotServiceAccounts`),
			}}},
		// CRD source CEL: serviceAccounts excludes principals too.
		{name: "source CEL serviceAccounts with notPrincipals", spec: `{"rules":[{"from":[{"source":{"notServiceAccounts":["sa"],"notPrincipals":["p"]}}]}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.rules[0].from[0].source", "Cannot set serviceAccounts with namespaces or principals"),
				errAt("spec.rules[0].from[0].source", "cannot set serviceAccounts with namespaces or principals, found at rule 0"),
			}}},
		// CRD targetRefs maxItems 16 (istiod has no limit).
		{name: "targetRefs maxItems 16", spec: `{"targetRefs":[` + strings.Repeat(gatewayRef+",", 16) + gatewayRef + `]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.targetRefs", "Too many: 17: must have at most 16 items")}}},
		// CRD targetRef kind pattern and group pattern.
		{name: "targetRef kind and group patterns", spec: `{"targetRef":{"group":"Gateway.Networking","kind":"Gate way","name":"x"}}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.targetRef.group", `Invalid value: "Gateway.Networking": should match '`+targetGroupPattern+`'`),
				errAt("spec.targetRef.kind", `Invalid value: "Gate way": should match '`+targetKindPattern+`'`),
				errAt("spec.targetRef", "targetRef must be to one of "+allowedRefs+" but was Gateway.Networking/Gate way"),
			}}},
		// CRD targetRef kind required, name maxLength 253.
		{name: "targetRefs kind required and name too long", spec: `{"targetRefs":[{"name":"` + strings.Repeat("n", 254) + `"}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.targetRefs[0].kind", "Required value"),
				errAt("spec.targetRefs[0].name", "Too long: may not be more than 253 bytes"),
				errAt("spec.targetRefs[0]", "targetRef must be to one of "+allowedRefs+" but was /"),
			}}},
		// CRD selector value maxLength 63 (istiod has no limit).
		{name: "selector value maxLength 63", spec: `{"selector":{"matchLabels":{"app":"` + strings.Repeat("v", 64) + `"}}}`,
			expect: expect{only: true, want: []Problem{errAt("spec.selector.matchLabels[app]", "Too long: may not be more than 63 bytes")}}},
		{name: "selector value 63 ok", spec: `{"selector":{"matchLabels":{"app":"` + strings.Repeat("v", 63) + `"}}}`,
			expect: expect{valid: true, only: true}},
		// CRD selector maxProperties 4096.
		{name: "selector maxProperties 4096", build: func() *securityv1beta1.AuthorizationPolicy {
			p := decode(t, &securityv1beta1.AuthorizationPolicy{}, `{"selector":{}}`)
			p.Selector.MatchLabels = labels
			return p
		}, expect: expect{only: true, want: []Problem{errAt("spec.selector.matchLabels", "Too many: 4097: must have at most 4096 items")}}},
		// CRD action enum: a number that names no action.
		{name: "action enum", spec: `{"action":9}`,
			expect: expect{only: true, want: []Problem{errAt("spec.action", `Unsupported value: 9: supported values: "ALLOW", "DENY", "AUDIT", "CUSTOM"`)}}},
	})
}

func TestAuthorizationPolicyNilInputs(t *testing.T) {
	// A nil spec is an empty policy (ALLOW nothing) and nil metadata has no
	// annotations; neither may panic.
	checkReport(t, AuthorizationPolicy(nil, nil), expect{valid: true, only: true})
}
