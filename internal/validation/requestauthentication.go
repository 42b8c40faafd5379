package validation

import (
	"fmt"
	"net/url"
	"regexp"
	"unicode/utf8"

	securityv1beta1 "istio.io/api/security/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RequestAuthentication reports why the API server or istiod would refuse a
// RequestAuthentication, plus istiod's admission warnings. meta may be nil.
func RequestAuthentication(meta *metav1.ObjectMeta, spec *securityv1beta1.RequestAuthentication) []Problem {
	if spec == nil {
		spec = &securityv1beta1.RequestAuthentication{}
	}
	r := &report{}
	schemaRequestAuthentication(r, spec)
	if metadata(r, meta, nil) {
		return r.problems
	}
	policyTarget(r, spec.GetSelector(), spec.GetTargetRef(), spec.GetTargetRefs())
	for i, rule := range spec.GetJwtRules() {
		if rule == nil {
			continue
		}
		rp := at("spec.jwtRules", i)
		jwtRule(r, rp, rule)
		privateJwks(r, rp+".jwks", rule.GetJwks())
	}
	return r.problems
}

// Schema limits of the RequestAuthentication CRD.
const (
	maxJwtRules             = 4096
	maxSpaceDelimitedClaims = 64
	maxJwksURILen           = 2048
	headerNamePattern       = `^[-_A-Za-z0-9]+$`
)

var headerNameRE = regexp.MustCompile(headerNamePattern)

// schemaRequestAuthentication applies the CRD schema. Notably the schema,
// not istiod, refuses jwks together with jwksUri: istiod would silently
// prefer one of them. issuer's minLength cannot be checked because
// protojson cannot tell an absent issuer from an empty one.
func schemaRequestAuthentication(r *report, spec *securityv1beta1.RequestAuthentication) {
	schemaPolicyTarget(r, spec.GetSelector(), spec.GetTargetRef(), spec.GetTargetRefs())
	schemaEnums(r, "spec", spec)
	if n := len(spec.GetJwtRules()); n > maxJwtRules {
		r.err("spec.jwtRules", schemaTooMany(n, maxJwtRules))
	}
	for i, rule := range spec.GetJwtRules() {
		if rule == nil {
			continue
		}
		rp := at("spec.jwtRules", i)
		schemaNonEmptyItems(r, rp+".audiences", rule.GetAudiences())
		if u := rule.GetJwksUri(); u != "" {
			if utf8.RuneCountInString(u) > maxJwksURILen {
				r.err(rp+".jwksUri", schemaTooLong(maxJwksURILen))
			}
			// CEL's url() parses with url.ParseRequestURI and fails on
			// anything that is not absolute, which also fails the rule.
			if parsed, err := url.ParseRequestURI(u); err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") {
				r.err(rp+".jwksUri", "url must have scheme http:// or https://")
			}
		}
		if rule.GetJwksUri() != "" && rule.GetJwks() != "" {
			r.err(rp, "only one of jwks or jwksUri can be set")
		}
		for j, h := range rule.GetFromHeaders() {
			if h != nil && h.GetName() == "" {
				r.err(at(rp+".fromHeaders", j)+".name", schemaRequired)
			}
		}
		schemaNonEmptyItems(r, rp+".fromParams", rule.GetFromParams())
		schemaNonEmptyItems(r, rp+".fromCookies", rule.GetFromCookies())
		for j, c := range rule.GetOutputClaimToHeaders() {
			if c == nil {
				continue
			}
			cp := at(rp+".outputClaimToHeaders", j)
			if c.GetHeader() == "" {
				r.err(cp+".header", schemaRequired)
			} else if !headerNameRE.MatchString(c.GetHeader()) {
				r.err(cp+".header", schemaPattern(c.GetHeader(), headerNamePattern))
			}
			if c.GetClaim() == "" {
				r.err(cp+".claim", schemaRequired)
			}
		}
		if t := rule.GetTimeout(); t != nil {
			schemaDuration(r, rp+".timeout", t)
		}
		if n := len(rule.GetSpaceDelimitedClaims()); n > maxSpaceDelimitedClaims {
			r.err(rp+".spaceDelimitedClaims", schemaTooMany(n, maxSpaceDelimitedClaims))
		}
		schemaNonEmptyItems(r, rp+".spaceDelimitedClaims", rule.GetSpaceDelimitedClaims())
	}
}

// schemaNonEmptyItems is minLength 1 on the items of a string list.
func schemaNonEmptyItems(r *report, path string, values []string) {
	for i, v := range values {
		if v == "" {
			r.err(at(path, i), schemaTooShort(v, 1))
		}
	}
}

// jwtRule is istiod's validateJwtRule.
func jwtRule(r *report, rp string, rule *securityv1beta1.JWTRule) {
	for i, aud := range rule.GetAudiences() {
		if aud == "" {
			r.err(at(rp+".audiences", i), "audience must be non-empty string")
		}
	}
	// The issuer may be left out only when the keys' location is given.
	if rule.GetIssuer() == "" && rule.GetJwksUri() == "" {
		r.err(rp+".issuer", "issuer or jwksUri must be non-empty string")
	}
	if u := rule.GetJwksUri(); u != "" {
		if err := parseJwksURI(u); err != nil {
			r.err(rp+".jwksUri", err.Error())
		}
	}
	if j := rule.GetJwks(); j != "" {
		if _, err := parseJwks(j); err != nil {
			r.errf(rp+".jwks", "jwks parse error: %v", err)
		}
	}
	for i, h := range rule.GetFromHeaders() {
		hp := at(rp+".fromHeaders", i)
		if h == nil {
			r.err(hp, "location header name must be non-null")
			continue
		}
		if h.GetName() == "" {
			r.err(hp+".name", "location header name must be non-empty string")
		}
	}
	for i, p := range rule.GetFromParams() {
		if p == "" {
			r.err(at(rp+".fromParams", i), "location query must be non-empty string")
		}
	}
	for i, c := range rule.GetFromCookies() {
		if c == "" {
			r.err(at(rp+".fromCookies", i), "cookie name must be non-empty string")
		}
	}
	for i, c := range rule.GetOutputClaimToHeaders() {
		cp := at(rp+".outputClaimToHeaders", i)
		switch {
		case c == nil:
			r.err(cp, "outputClaimToHeaders must not be null")
		case c.GetClaim() == "" || c.GetHeader() == "":
			r.err(cp, "outputClaimToHeaders header and claim value must be non-empty string")
		case !headerNameRE.MatchString(c.GetHeader()):
			// ValidateStrictHTTPHeaderName; the empty case is excluded above.
			r.errf(cp+".header", "header name %s is not a valid header name", c.GetHeader())
		}
	}
	if t := rule.GetTimeout(); t != nil {
		if msg := duration(t); msg != "" {
			r.err(rp+".timeout", msg)
		}
	}
}

// privateJwks is warnPrivateJwksKeys: Envoy verifies with public keys only,
// so private or symmetric key material in a cluster object is a needless
// secret leak. An unparsable set was already reported by jwtRule.
func privateJwks(r *report, path, s string) {
	if s == "" {
		return
	}
	keys, err := parseJwks(s)
	if err != nil {
		return
	}
	for i, k := range keys {
		if k.private {
			r.warn(path, fmt.Sprintf("jwks key at index %d contains private key material; only public keys are used for verification", i))
		}
	}
}
