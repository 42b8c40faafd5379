package validation

import (
	"fmt"
	"strings"
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"
)

// Keys from istio's TestValidateRequestAuthentication.
const (
	rsaN      = "xAE7eB6qugXyCAG3yhh7pkDkT65pHymX-P7KfIupjf59vsdo91bSP9C8H07pSAGQO1MV_xFj9VswgsCg4R6otmg5PV2He95lZdHtOcU5DXIg_pbhLdKXbi66GlVeK6ABZOUW3WYtnNHD-91gVuoeJT_DwtGGcp4ignkgXfkiEm4sw-4sfb4qdt5oLbyVpmW6x9cfa7vs2WTfURiCrBoUqgBo_-4WTiULmmHSGZHOjzwa8WtrtOQGsAFjIbno85jp6MnGGGZPYZbDAa_b3y5u-YpW7ypZrvD8BgtKVjgtQgZhLAGezMt0ua3DRrWnKqTZ0BJ_EyxOGuHJrLsn00fnMQ"
	rsaD      = "jJVKLOMXjlSnICzfP_eWshwR_DQp1U_GBLn-bL2qf90U5GMRDg5fT7Df3M2zL3DhMzdLDIeBmh-ujMTPjU0PWyVN5JX9LBhAOgsX3DKAdR2KMlEsBM4HE6VV1JhqQozqAcSPwhBHJM_pBM21S94EZf_RbA0PvyLcjeLP4WqAOY-J4OXVR3rzKwAH02NjLBR-Tnoiv-WlPZbE9SmYJL0G3xRFVELYwf4l7t-PSrZxk6V_xrTLpsScA-WICTaXmRGyDOSBuiBfHfDQyiTfQEUjcc6aQ7slLAwfmU2AeYJqHk1zwZpDJpgEf9G3eYi09Q2MLpzSjMxWVqV5L7TtcoGv5Q"
	publicRSA = `{"e":"AQAB","kid":"DHFbpoIUqrY8t2zpA2qXfCmr5VO5ZEr4RzHU_-envvQ","kty":"RSA","n":"` + rsaN + `"}`
)

const privateKeyWarning = "jwks key at index %d contains private key material; only public keys are used for verification"

type raRow struct {
	name string
	ann  map[string]string
	spec string
	expect
}

func runRA(t *testing.T, rows []raRow) {
	t.Helper()
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			spec := decode(t, &securityv1beta1.RequestAuthentication{}, row.spec)
			checkReport(t, RequestAuthentication(testMeta(row.ann), spec), row.expect)
		})
	}
}

// jwtRule renders one jwtRules entry with the given jwks (JSON-quoted).
func jwksRule(jwks string) string {
	return fmt.Sprintf(`{"jwtRules":[{"issuer":"foo.com","jwks":%q}]}`, jwks)
}

// TestRequestAuthenticationUpstream ports every row of istio
// pkg/config/validation/validation_test.go TestValidateRequestAuthentication.
func TestRequestAuthenticationUpstream(t *testing.T) {
	const j = `"issuer":"foo.com","jwksUri":"https://foo.com/cert"`
	const u = `"issuer":"foo.com","jwksUri":"https://foo.com"`
	rows := []raRow{
		// istio validation_test.go TestValidateRequestAuthentication "empty spec"
		{name: "empty spec", spec: `{}`, expect: expect{valid: true, only: true}},
		// "another empty spec"
		{name: "another empty spec", spec: `{"selector":{}}`,
			expect: expect{valid: true, warn: true, only: true, want: []Problem{warnAt("spec.selector", "workload selector specified without labels")}}},
		// "empty spec with non default name"
		{name: "empty spec with non default name", spec: `{}`, expect: expect{valid: true, only: true}},
		// "dry run annotation not supported"
		{name: "dry run annotation not supported", ann: map[string]string{"istio.io/dry-run": "true"}, spec: `{}`,
			expect: expect{only: true, want: []Problem{errAt("metadata.annotations",
				"namespace/name has unsupported annotation istio.io/dry-run, please remove the annotation")}}},
		// "default name with non empty selector"
		{name: "default name with non empty selector", spec: `{"selector":{"matchLabels":{"app":"httpbin"}}}`,
			expect: expect{valid: true, only: true}},
		// "empty jwt rule"
		{name: "empty jwt rule", spec: `{"jwtRules":[{}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.jwtRules[0].issuer", "issuer or jwksUri must be non-empty string")}}},
		// "empty issuer and jwksUri"
		{name: "empty issuer and jwksUri", spec: `{"jwtRules":[{"issuer":""}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.jwtRules[0].issuer", "issuer or jwksUri must be non-empty string")}}},
		// "empty issuer and set jwksUri"
		{name: "empty issuer and set jwksUri", spec: `{"jwtRules":[{"jwksUri":"https://foo.com/cert"}]}`,
			expect: expect{valid: true, only: true}},
		// "bad JwksUri - no protocol"
		{name: "bad JwksUri - no protocol", spec: `{"jwtRules":[{"issuer":"foo.com","jwksUri":"foo.com"}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.jwtRules[0].jwksUri", "url must have scheme http:// or https://"),
				errAt("spec.jwtRules[0].jwksUri", `URI scheme "" is not supported`),
			}}},
		// "bad JwksUri - invalid port"
		{name: "bad JwksUri - invalid port", spec: `{"jwtRules":[{"issuer":"foo.com","jwksUri":"https://foo.com:not-a-number"}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.jwtRules[0].jwksUri", "url must have scheme http:// or https://"),
				errAt("spec.jwtRules[0].jwksUri", `parse "https://foo.com:not-a-number": invalid port ":not-a-number" after host`),
			}}},
		// "empty value"
		{name: "empty value", spec: `{"selector":{"matchLabels":{"app":"httpbin","version":""}},"jwtRules":[{` + j + `}]}`,
			expect: expect{valid: true, only: true}},
		// "bad workload selector - empty key"
		{name: "bad workload selector - empty key", spec: `{"selector":{"matchLabels":{"app":"httpbin","":"v1"}},"jwtRules":[{` + j + `}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.selector.matchLabels", "key must not be empty"),
				errAt("spec.selector.matchLabels[]", `empty key is not supported in selector: "=v1"`),
			}}},
		// "good targetRef"
		{name: "good targetRef", spec: `{"targetRef":` + gatewayRef + `,"jwtRules":[{` + j + `}]}`,
			expect: expect{valid: true, only: true}},
		// "bad targetRef - empty name"
		{name: "bad targetRef - empty name", spec: `{"targetRef":{"group":"gateway.networking.k8s.io","kind":"Gateway"},"jwtRules":[{` + j + `}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.targetRef.name", "Required value"),
				errAt("spec.targetRef.name", "targetRef name must be set"),
			}}},
		// "bad targetRef - non-empty namespace"
		{name: "bad targetRef - non-empty namespace", spec: `{"targetRef":{"group":"gateway.networking.k8s.io","kind":"Gateway","name":"foo","namespace":"bar"},"jwtRules":[{` + j + `}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.targetRef.namespace", "cross namespace referencing is not currently supported"),
				errAt("spec.targetRef.namespace", "targetRef namespace must not be set; cross namespace referencing is not supported"),
			}}},
		// "bad targetRef - wrong group"
		{name: "bad targetRef - wrong group", spec: `{"targetRef":{"group":"wrong-group","kind":"Gateway","name":"foo"},"jwtRules":[{` + j + `}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.targetRef", "targetRef must be to one of "+allowedRefs+" but was wrong-group/Gateway")}}},
		// "bad targetRef - wrong kind"
		{name: "bad targetRef - wrong kind", spec: `{"targetRef":{"group":"gateway.networking.k8s.io","kind":"wrong-kind","name":"foo"},"jwtRules":[{` + j + `}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.targetRef", "targetRef must be to one of "+allowedRefs+" but was gateway.networking.k8s.io/wrong-kind")}}},
		// "targetRef and selector cannot both be set"
		{name: "targetRef and selector cannot both be set", spec: `{"targetRef":` + gatewayRef + `,"selector":{"matchLabels":{"app":"httpbin"}},"jwtRules":[{` + j + `}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec", "only one of targetRefs or selector can be set"),
				errAt("spec", "only one of targetRefs or workloadSelector can be set"),
			}}},
		// "bad header location"
		{name: "bad header location", spec: `{"jwtRules":[{` + u + `,"fromHeaders":[{"name":"","prefix":"Bearer "}]}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.jwtRules[0].fromHeaders[0].name", "Required value"),
				errAt("spec.jwtRules[0].fromHeaders[0].name", "location header name must be non-empty string"),
			}}},
		// "bad param location"
		{name: "bad param location", spec: `{"jwtRules":[{` + u + `,"fromParams":[""]}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.jwtRules[0].fromParams[0]", `Invalid value: "": should be at least 1 chars long`),
				errAt("spec.jwtRules[0].fromParams[0]", "location query must be non-empty string"),
			}}},
		// "good"
		{name: "good", spec: `{"jwtRules":[{` + u + `,"fromHeaders":[{"name":"x-foo","prefix":"Bearer "}]}]}`,
			expect: expect{valid: true, only: true}},
		// "bad cookie location"
		{name: "bad cookie location", spec: `{"jwtRules":[{` + u + `,"fromCookies":["","foo"]}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.jwtRules[0].fromCookies[0]", `Invalid value: "": should be at least 1 chars long`),
				errAt("spec.jwtRules[0].fromCookies[0]", "cookie name must be non-empty string"),
			}}},
		// "jwks ok"
		{name: "jwks ok", spec: fmt.Sprintf(`{"jwtRules":[{"issuer":"foo.com","jwks":%q,"fromHeaders":[{"name":"x-foo"}]}]}`, `{ "keys":[ `+publicRSA+`]}`),
			expect: expect{valid: true, only: true}},
		// "jwks error"
		{name: "jwks error", spec: `{"jwtRules":[{"issuer":"foo.com","jwks":"foo","fromHeaders":[{"name":"x-foo"}]}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.jwtRules[0].jwks",
				"jwks parse error: failed to unmarshal JWK set: invalid character 'o' in literal false (expecting 'a')")}}},
		// "jwks with private RSA key warns": upstream's key has "d" but no
		// p/q, which jwx v1 accepts.
		{name: "jwks with private RSA key warns", spec: jwksRule(`{"keys":[{"kty":"RSA","e":"AQAB","kid":"private","n":"` + rsaN + `","d":"` + rsaD + `"}]}`),
			expect: expect{valid: true, warn: true, only: true, want: []Problem{warnAt("spec.jwtRules[0].jwks", fmt.Sprintf(privateKeyWarning, 0))}}},
		// "null outputClaimToHeader"
		{name: "null outputClaimToHeader", spec: `{"jwtRules":[{` + u + `,"outputClaimToHeaders":[{}]}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.jwtRules[0].outputClaimToHeaders[0].header", "Required value"),
				errAt("spec.jwtRules[0].outputClaimToHeaders[0].claim", "Required value"),
				errAt("spec.jwtRules[0].outputClaimToHeaders[0]", "outputClaimToHeaders header and claim value must be non-empty string"),
			}}},
		// "null claim value in outputClaimToHeader "
		{name: "null claim value in outputClaimToHeader", spec: `{"jwtRules":[{` + u + `,"outputClaimToHeaders":[{"header":"x-jwt-claim","claim":""}]}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.jwtRules[0].outputClaimToHeaders[0].claim", "Required value"),
				errAt("spec.jwtRules[0].outputClaimToHeaders[0]", "outputClaimToHeaders header and claim value must be non-empty string"),
			}}},
		// "null header value in outputClaimToHeader "
		{name: "null header value in outputClaimToHeader", spec: `{"jwtRules":[{` + u + `,"outputClaimToHeaders":[{"header":"","claim":"sub"}]}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.jwtRules[0].outputClaimToHeaders[0].header", "Required value"),
				errAt("spec.jwtRules[0].outputClaimToHeaders[0]", "outputClaimToHeaders header and claim value must be non-empty string"),
			}}},
		// "invalid header value in outputClaimToHeader "
		{name: "invalid header value in outputClaimToHeader", spec: `{"jwtRules":[{` + u + `,"outputClaimToHeaders":[{"header":"abc%123","claim":"sub"}]}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.jwtRules[0].outputClaimToHeaders[0].header", `Invalid value: "abc%123": should match '^[-_A-Za-z0-9]+$'`),
				errAt("spec.jwtRules[0].outputClaimToHeaders[0].header", "header name abc%123 is not a valid header name"),
			}}},
	}
	if len(rows) != 29 {
		t.Fatalf("upstream table has 29 rows, ported %d", len(rows))
	}
	runRA(t, rows)
}

// TestRequestAuthenticationRules covers validateJwtRule and
// warnPrivateJwksKeys behaviours beyond the upstream table, and the CRD
// schema of RequestAuthentication.
func TestRequestAuthenticationRules(t *testing.T) {
	runRA(t, []raRow{
		// CRD per-rule CEL: jwks and jwksUri together (istiod accepts it).
		{name: "CRD jwks with jwksUri", spec: fmt.Sprintf(`{"jwtRules":[{"issuer":"a","jwksUri":"https://a/keys","jwks":%q}]}`, `{"keys":[`+publicRSA+`]}`),
			expect: expect{only: true, want: []Problem{errAt("spec.jwtRules[0]", "only one of jwks or jwksUri can be set")}}},
		// CRD jwksUri maxLength 2048.
		{name: "CRD jwksUri maxLength", spec: `{"jwtRules":[{"jwksUri":"https://a/` + strings.Repeat("p", 2040) + `"}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.jwtRules[0].jwksUri", "Too long: may not be more than 2048 bytes")}}},
		// CRD jwksUri CEL scheme; url.Parse lower-cases the scheme for both layers.
		{name: "jwksUri upper-case scheme", spec: `{"jwtRules":[{"jwksUri":"HTTPS://a/keys"}]}`, expect: expect{valid: true, only: true}},
		{name: "jwksUri ftp scheme", spec: `{"jwtRules":[{"jwksUri":"ftp://a/keys"}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.jwtRules[0].jwksUri", "url must have scheme http:// or https://"),
				errAt("spec.jwtRules[0].jwksUri", `URI scheme "ftp" is not supported`),
			}}},
		// CRD audiences items minLength 1; istiod's "audience must be non-empty string".
		{name: "empty audience", spec: `{"jwtRules":[{"issuer":"a","audiences":["x",""]}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.jwtRules[0].audiences[1]", `Invalid value: "": should be at least 1 chars long`),
				errAt("spec.jwtRules[0].audiences[1]", "audience must be non-empty string"),
			}}},
		// CRD spaceDelimitedClaims maxItems 64 and items minLength 1 (istiod checks neither).
		{name: "spaceDelimitedClaims limits", spec: `{"jwtRules":[{"issuer":"a","spaceDelimitedClaims":[""` + strings.Repeat(`,"c"`, 64) + `]}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.jwtRules[0].spaceDelimitedClaims", "Too many: 65: must have at most 64 items"),
				errAt("spec.jwtRules[0].spaceDelimitedClaims[0]", `Invalid value: "": should be at least 1 chars long`),
			}}},
		// CRD timeout CEL >= 1ms and istiod's ValidateDuration.
		{name: "timeout below 1ms", spec: `{"jwtRules":[{"issuer":"a","timeout":"0.0005s"}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.jwtRules[0].timeout", "must be a valid duration greater than 1ms"),
				errAt("spec.jwtRules[0].timeout", "duration must be greater than 1ms"),
			}}},
		// ValidateDuration: millisecond precision is istiod's rule only.
		{name: "timeout sub-ms precision", spec: `{"jwtRules":[{"issuer":"a","timeout":"0.0015s"}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.jwtRules[0].timeout", "only durations to ms precision are supported")}}},
		{name: "timeout 1ms ok", spec: `{"jwtRules":[{"issuer":"a","timeout":"0.001s"}]}`, expect: expect{valid: true, only: true}},
		// validateJwtRule: no checks on header prefix, issuer form or duplicates.
		{name: "unchecked fields", spec: `{"jwtRules":[{"issuer":"not a url","fromHeaders":[{"name":"Authorization","prefix":""}],"outputPayloadToHeader":"%%"},{"issuer":"not a url"}]}`,
			expect: expect{valid: true, only: true}},
		// CRD targetRefs maxItems 16 applies to RequestAuthentication too.
		{name: "targetRefs maxItems", spec: `{"targetRefs":[` + strings.Repeat(gatewayRef+",", 16) + gatewayRef + `]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.targetRefs", "Too many: 17: must have at most 16 items")}}},
		// warnPrivateJwksKeys: every private key is named by index; symmetric keys count.
		{name: "jwks private keys by index", spec: jwksRule(`{"keys":[` + publicRSA + `,{"kty":"oct","k":"c2VjcmV0"},{"kty":"EC","crv":"P-256","x":"eA","y":"eQ","d":"ZA"}]}`),
			expect: expect{valid: true, warn: true, only: true, want: []Problem{
				warnAt("spec.jwtRules[0].jwks", fmt.Sprintf(privateKeyWarning, 1)),
				warnAt("spec.jwtRules[0].jwks", fmt.Sprintf(privateKeyWarning, 2)),
			}}},
		// jwx v1: a lone key object stands for a one-key set.
		{name: "jwks single key object", spec: jwksRule(publicRSA), expect: expect{valid: true, only: true}},
		{name: "jwks single private key object warns", spec: jwksRule(`{"kty":"OKP","crv":"Ed25519","x":"eA","d":"ZA"}`),
			expect: expect{valid: true, warn: true, only: true, want: []Problem{warnAt("spec.jwtRules[0].jwks", fmt.Sprintf(privateKeyWarning, 0))}}},
		// jwx v1: an empty set and unknown members are fine; crv is not checked.
		{name: "jwks empty set", spec: jwksRule(`{"keys":[]}`), expect: expect{valid: true, only: true}},
		{name: "jwks unknown members and curve", spec: jwksRule(`{"keys":[{"kty":"EC","crv":"P-999","x":"eA","y":"eQ","extra":{"a":[1]}}]}`),
			expect: expect{valid: true, only: true}},
		// jwx v1: required members, key types, base64 and JSON types are checked.
		{name: "jwks missing n", spec: jwksRule(`{"keys":[{"kty":"RSA","e":"AQAB"}]}`),
			expect: expect{only: true, want: []Problem{errAt("spec.jwtRules[0].jwks",
				`jwks parse error: failed to unmarshal JWK set: failed to decode key #0 in "keys": required field n is missing`)}}},
		{name: "jwks unknown kty", spec: jwksRule(`{"keys":[{"kty":"DSA"}]}`),
			expect: expect{only: true, want: []Problem{errAt("spec.jwtRules[0].jwks",
				`jwks parse error: failed to unmarshal JWK set: failed to decode key #0 in "keys": invalid key type from JSON (DSA)`)}}},
		{name: "jwks bad base64", spec: jwksRule(`{"keys":[{"kty":"oct","k":"!!"}]}`), expect: expect{}},
		{name: "jwks kid not a string", spec: jwksRule(`{"keys":[{"kty":"oct","k":"eA","kid":5}]}`), expect: expect{}},
		{name: "jwks bad x5c", spec: jwksRule(`{"keys":[{"kty":"oct","k":"eA","x5c":["eA"]}]}`), expect: expect{}},
		{name: "jwks keys not a list", spec: jwksRule(`{"keys":{}}`), expect: expect{}},
		{name: "jwks top level list", spec: jwksRule(`[]`), expect: expect{}},
		{name: "jwks sole key without kty", spec: jwksRule(`{"foo":1}`),
			expect: expect{only: true, want: []Problem{errAt("spec.jwtRules[0].jwks",
				"jwks parse error: failed to unmarshal JWK set: failed to parse sole key in key set: invalid key type from JSON ()")}}},
	})

	// Go-only shapes: a nil rule is skipped; a nil header or claim mapping is an error.
	spec := &securityv1beta1.RequestAuthentication{JwtRules: []*securityv1beta1.JWTRule{
		nil,
		{Issuer: "a", FromHeaders: []*securityv1beta1.JWTHeader{nil}, OutputClaimToHeaders: []*securityv1beta1.ClaimToHeader{nil}},
	}}
	checkReport(t, RequestAuthentication(nil, spec), expect{only: true, want: []Problem{
		errAt("spec.jwtRules[1].fromHeaders[0]", "location header name must be non-null"),
		errAt("spec.jwtRules[1].outputClaimToHeaders[0]", "outputClaimToHeaders must not be null"),
	}})
	checkReport(t, RequestAuthentication(nil, nil), expect{valid: true, only: true})
}
