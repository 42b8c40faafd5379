package validation

import (
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"
)

type paRow struct {
	name  string
	ann   map[string]string
	spec  string
	build func() *securityv1beta1.PeerAuthentication
	expect
}

func runPA(t *testing.T, rows []paRow) {
	t.Helper()
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			var spec *securityv1beta1.PeerAuthentication
			if row.build != nil {
				spec = row.build()
			} else {
				spec = decode(t, &securityv1beta1.PeerAuthentication{}, row.spec)
			}
			checkReport(t, PeerAuthentication(testMeta(row.ann), spec), row.expect)
		})
	}
}

// TestPeerAuthenticationUpstream ports every row of istio
// pkg/config/validation/validation_test.go TestValidatePeerAuthentication.
func TestPeerAuthenticationUpstream(t *testing.T) {
	rows := []paRow{
		// istio validation_test.go TestValidatePeerAuthentication "empty spec"
		{name: "empty spec", spec: `{}`, expect: expect{valid: true, only: true}},
		// "empty mtls with selector of empty labels"
		{name: "empty mtls with selector of empty labels", spec: `{"selector":{}}`,
			expect: expect{valid: true, warn: true, only: true, want: []Problem{warnAt("spec.selector", "workload selector specified without labels")}}},
		// "empty spec with non default name"
		{name: "empty spec with non default name", spec: `{}`, expect: expect{valid: true, only: true}},
		// "default name with non empty selector"
		{name: "default name with non empty selector", spec: `{"selector":{"matchLabels":{"app":"httpbin"}}}`,
			expect: expect{valid: true, only: true}},
		// "empty port level mtls": `portLevelMtls: {}` decodes to an empty, non-nil map.
		{name: "empty port level mtls", spec: `{"selector":{"matchLabels":{"app":"httpbin"}},"portLevelMtls":{}}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.portLevelMtls", "Invalid value: 0: should have at least 1 properties"),
				errAt("spec.portLevelMtls", "port level mTLS, if defined, must have at least one element"),
			}}},
		// "empty selector with port level mtls"
		{name: "empty selector with port level mtls", spec: `{"portLevelMtls":{"8080":{"mode":"UNSET"}}}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec", "portLevelMtls requires selector"),
				errAt("spec.portLevelMtls", "mesh/namespace peer authentication cannot have port level mTLS"),
			}}},
		// "port 0"
		{name: "port 0", spec: `{"portLevelMtls":{"0":{"mode":"UNSET"}}}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec", "portLevelMtls requires selector"),
				errAt("spec.portLevelMtls", "port must be between 1-65535"),
				errAt("spec.portLevelMtls", "mesh/namespace peer authentication cannot have port level mTLS"),
				errAt("spec.portLevelMtls[0]", "port must be in range 1..65535"),
			}}},
		// "unset mode"
		{name: "unset mode", spec: `{"mtls":{"mode":"UNSET"}}`, expect: expect{valid: true, only: true}},
		// "port level"
		{name: "port level", spec: `{"selector":{"matchLabels":{"app":"httpbin"}},"portLevelMtls":{"8080":{"mode":"UNSET"}}}`,
			expect: expect{valid: true, only: true}},
	}
	if len(rows) != 9 {
		t.Fatalf("upstream table has 9 rows, ported %d", len(rows))
	}
	runPA(t, rows)
}

// TestPeerAuthenticationRules covers ValidatePeerAuthentication and the
// PeerAuthentication CRD beyond the upstream table.
func TestPeerAuthenticationRules(t *testing.T) {
	runPA(t, []paRow{
		// ValidatePeerAuthentication: ports above 65535 decode (keys are uint32).
		{name: "port above 65535", spec: `{"selector":{"matchLabels":{"app":"a"}},"portLevelMtls":{"70000":{"mode":"STRICT"},"80":{"mode":"DISABLE"}}}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.portLevelMtls", "port must be between 1-65535"),
				errAt("spec.portLevelMtls[70000]", "port must be in range 1..65535"),
			}}},
		// CRD portLevelMtls CEL: an empty selector map counts as no selector.
		{name: "empty matchLabels with port level mtls", spec: `{"selector":{"matchLabels":{}},"portLevelMtls":{"80":{}}}`,
			expect: expect{valid: false, warn: true, only: true, want: []Problem{
				errAt("spec", "portLevelMtls requires selector"),
				errAt("spec.portLevelMtls", "mesh/namespace peer authentication cannot have port level mTLS"),
				warnAt("spec.selector", "workload selector specified without labels"),
			}}},
		// CRD mode enum: an undefined number.
		{name: "mode enum", spec: `{"mtls":{"mode":7}}`,
			expect: expect{only: true, want: []Problem{errAt("spec.mtls.mode", `Unsupported value: 7: supported values: "UNSET", "DISABLE", "PERMISSIVE", "STRICT"`)}}},
		{name: "port mode enum", spec: `{"selector":{"matchLabels":{"a":"b"}},"portLevelMtls":{"80":{"mode":9}}}`,
			expect: expect{only: true, want: []Problem{errAt("spec.portLevelMtls[80].mode", `Unsupported value: 9: supported values: "UNSET", "DISABLE", "PERMISSIVE", "STRICT"`)}}},
		// CRD selector rules apply to PeerAuthentication.
		{name: "selector wildcard", spec: `{"selector":{"matchLabels":{"a":"*"}}}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.selector.matchLabels[a]", "wildcard not allowed in label value match"),
				errAt("spec.selector.matchLabels[a]", `wildcard is not supported in selector: "a=*"`),
			}}},
		// validateMetadata: dry-run is an AuthorizationPolicy-only annotation.
		{name: "dry run annotation", ann: map[string]string{"istio.io/dry-run": "false"}, spec: `{}`,
			expect: expect{only: true, want: []Problem{errAt("metadata.annotations",
				"namespace/name has unsupported annotation istio.io/dry-run, please remove the annotation")}}},
	})
	checkReport(t, PeerAuthentication(nil, nil), expect{valid: true, only: true})
}
