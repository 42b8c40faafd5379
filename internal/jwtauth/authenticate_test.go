package jwtauth

import (
	"encoding/base64"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/palisade-security/palisade/internal/authz"
	"github.com/palisade-security/palisade/internal/config"
)

type authCase struct {
	name   string
	ras    []*config.Resource[*securityv1beta1.RequestAuthentication]
	keys   KeySource
	h      authz.Headers
	query  string
	now    time.Time // zero: the package clock
	status int
	detail string // "" when passing
	check  func(t *testing.T, r Result)
}

func runAuthCases(t *testing.T, cases []authCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := New(c.ras, c.keys)
			at := c.now
			if at.IsZero() {
				at = now
			}
			r := p.Authenticate(c.h, c.query, at)
			if r.Status != c.status || r.Detail != c.detail {
				t.Fatalf("got (%d, %q), want (%d, %q); result %+v", r.Status, r.Detail, c.status, c.detail, r)
			}
			if (r.Status == 0) != (r.Detail == "") {
				t.Errorf("Detail %q with status %d", r.Detail, r.Status)
			}
			if c.check != nil {
				c.check(t, r)
			}
		})
	}
}

const (
	bad      = "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
	expired  = "Jwt is expired"
	notYet   = "Jwt not yet valid"
	unknown  = "Jwt issuer is not configured"
	audBad   = "Audiences in Jwt are not allowed"
	verFail  = "Jwt verification fails"
	kidAlg   = "Jwks doesn't have key to match kid or alg from Jwt"
	noKeys   = "Jwks doesn't have any valid public key"
	missing  = "Jwt is missing"
	hdrAlg   = "Jwt header [alg] is not supported"
	hdrNoAlg = "Jwt header [alg] field is required and must be a string"
)

func accepted(iss, source, token string) func(t *testing.T, r Result) {
	return func(t *testing.T, r Result) {
		t.Helper()
		if r.Issuer != iss || r.Source != source || r.Token != token {
			t.Errorf("accepted by (%q, %q, %q), want (%q, %q, %q)", r.Issuer, r.Source, r.Token, iss, source, token)
		}
		if r.Claims == nil || r.Claims["iss"] == nil {
			t.Errorf("no claims: %+v", r)
		}
	}
}

func noClaims(t *testing.T, r Result) {
	t.Helper()
	if r.Claims != nil || r.Token != "" {
		t.Errorf("want an unauthenticated pass, got %+v", r)
	}
}

func TestAuthenticateBasics(t *testing.T) {
	k := keys(t)
	one := ras(ra("foo", "jwt", rule(t, iss1)))
	exp := now.Unix()
	runAuthCases(t, []authCase{
		// Istio jwt_test.go "valid-token-noauthz" → 200
		{name: "valid RS256", ras: one, h: bearer(rs1(t, nil)),
			check: accepted(iss1, "foo/jwt", "header Authorization")},
		// Istio jwt_test.go "valid-token-noauthz" with an EC issuer key → 200
		{name: "valid ES256", ras: one, h: bearer(mint(t, jose.ES256, k.ec1, "ec1", claims(iss1, nil))),
			check: accepted(iss1, "foo/jwt", "header Authorization")},
		// Istio jwt_test.go "no-token-noauthz" → 200, no identity
		{name: "no token", ras: one, h: hdrs(), check: noClaims},
		// Istio jwt_test.go "expired-token-noauthz" → 401
		{name: "expired", ras: one, h: bearer(rs1(t, map[string]any{"exp": exp - 61})), status: 401, detail: expired,
			check: func(t *testing.T, r Result) {
				if r.Issuer != iss1 || r.Source != "foo/jwt" || r.Token != "header Authorization" {
					t.Errorf("rejection attributed to %+v", r)
				}
			}},
		// Envoy jwt.cc verifyTimeConstraint: expired only when now > exp + 60
		{name: "expired within skew", ras: one, h: bearer(rs1(t, map[string]any{"exp": exp - 60}))},
		// Envoy jwt.cc verifyTimeConstraint: a missing exp never expires
		{name: "no exp", ras: one, h: bearer(rs1(t, map[string]any{"exp": nil}))},
		// Envoy jwt.cc verifyTimeConstraint: now + 60 < nbf → JwtNotYetValid
		{name: "nbf in future", ras: one, h: bearer(rs1(t, map[string]any{"nbf": exp + 61})), status: 401, detail: notYet},
		// Envoy jwt.cc verifyTimeConstraint: nbf within the 60s skew passes
		{name: "nbf within skew", ras: one, h: bearer(rs1(t, map[string]any{"nbf": exp + 60}))},
		// Envoy struct_utils.cc GetUInt64: a fractional NumericDate is truncated
		{name: "fractional exp", ras: one, h: bearer(rs1(t, map[string]any{"exp": float64(exp) + 0.5}))},
		// Istio istio-semantics §3: unregistered issuer → 401 "Jwt issuer is not configured" (istio#24371)
		{name: "wrong issuer", ras: one, h: bearer(mint(t, jose.RS256, k.rsa1, "rsa1", claims("other@istio.io", nil))),
			status: 401, detail: unknown},
		// Envoy authenticator.cc: a token without iss is not the provider's
		{name: "no iss", ras: one, h: bearer(rs1(t, map[string]any{"iss": nil})), status: 401, detail: unknown},
		// Envoy status.cc JwtVerificationFail: signed by a key not in the JWKS
		{name: "bad signature", ras: one, h: bearer(mint(t, jose.RS256, k.rogue, "rsa1", claims(iss1, nil))),
			status: 401, detail: verFail},
		// Envoy verify.cc: tampered payload fails verification
		{name: "tampered payload", ras: one, h: bearer(tamper(rs1(t, nil))), status: 401, detail: verFail},
		// Envoy status.cc JwksKidAlgMismatch: no JWK with the token's kid
		{name: "kid mismatch", ras: one, h: bearer(mint(t, jose.RS256, k.rsa1, "other", claims(iss1, nil))),
			status: 401, detail: kidAlg},
		// Envoy verify.cc: every JWK has an alg, none is PS256
		{name: "alg mismatch", ras: one, h: bearer(mint(t, jose.PS256, k.rsa1, "", claims(iss1, nil))),
			status: 401, detail: kidAlg},
		// Envoy verify.cc: a token without kid tries every key
		{name: "no kid tries all keys", ras: one, h: bearer(mint(t, jose.RS256, k.rsa1, "", claims(iss1, nil)))},
		// Envoy verify.cc: a JWK without kid matches any token kid
		{name: "jwk without kid", h: bearer(mint(t, jose.RS256, k.rsa1, "anything", claims(iss1, nil))),
			ras: ras(ra("foo", "jwt", rule(t, iss1, withJwks(jwksJSON(t, jose.JSONWebKey{Key: k.rsa1})))))},
		// Envoy verify.cc: PS256, HS256 and EdDSA are implemented
		{name: "PS256", h: bearer(mint(t, jose.PS256, k.rsa1, "", claims(iss1, nil))),
			ras: ras(ra("foo", "jwt", rule(t, iss1, withJwks(jwksJSON(t, jose.JSONWebKey{Key: k.rsa1, Algorithm: "PS256"})))))},
		{name: "HS256", h: bearer(mint(t, jose.HS256, k.hmac1, "", claims(iss1, nil))),
			ras: ras(ra("foo", "jwt", rule(t, iss1, withJwks(jwksJSON(t, jose.JSONWebKey{Key: k.hmac1, Algorithm: "HS256"})))))},
		{name: "EdDSA", h: bearer(mint(t, jose.EdDSA, k.ed1, "", claims(iss1, nil))),
			ras: ras(ra("foo", "jwt", rule(t, iss1, withJwks(jwksJSON(t, jose.JSONWebKey{Key: k.ed1})))))},
		// Envoy jwks.cc createFromJwksCore: no usable key → JwksNoValidKeys at verification
		{name: "inline jwks without usable key", h: bearer(rs1(t, nil)), status: 401, detail: noKeys,
			ras: ras(ra("foo", "jwt", rule(t, iss1, withJwks(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`))))},
		// Envoy jwks.cc: an unparsable inline jwks leaves no keys; time is checked first
		{name: "inline jwks garbage, expired token", h: bearer(rs1(t, map[string]any{"exp": exp - 120})),
			status: 401, detail: expired, ras: ras(ra("foo", "jwt", rule(t, iss1, withJwks("not json"))))},
		// Istio jwt_test.go "forward" suite: forwardOriginalToken keeps the header
		{name: "forward", h: bearer(rs1(t, nil)),
			ras: ras(ra("foo", "jwt", rule(t, iss1, func(r *securityv1beta1.JWTRule) { r.ForwardOriginalToken = true }))),
			check: func(t *testing.T, r Result) {
				if !r.Forward {
					t.Error("Forward = false")
				}
			}},
		// No RequestAuthentication: no jwt_authn filter at all
		{name: "no policy", h: bearer("garbage")},
	})
}

// tamper swaps the subject in a signed token's payload, keeping the token
// well-formed.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	p, _ := base64.RawURLEncoding.DecodeString(parts[1])
	p = []byte(strings.Replace(string(p), "sub-1", "sub-2", 1))
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(p) + "." + parts[2]
}

func TestAuthenticateMalformed(t *testing.T) {
	one := ras(ra("foo", "jwt", rule(t, iss1)))
	valid := rs1(t, nil)
	parts := strings.Split(valid, ".")
	cases := []struct {
		name, value, detail string
	}{
		// Envoy jwt.cc parseFromString, each check in order; Istio istio-semantics §3: malformed → 401
		{"one section", "Bearer abc", bad},
		{"four sections", "Bearer a.b.c.d", bad},
		{"empty token", "Bearer ", bad},                                            // no token character after the prefix: the whole value is the token
		{"header not base64", "Bearer " + "!!!." + parts[1] + "." + parts[2], bad}, // '!' ends the token run
		{"header bad base64", "Bearer a." + parts[1] + "." + parts[2], "Jwt header is an invalid Base64url encoded"},
		{"header not JSON", "Bearer " + raw("nope", "{}", nil) + "sig", "Jwt header is an invalid JSON"},
		{"header JSON array", "Bearer " + raw("[]", "{}", []byte("x")), "Jwt header is an invalid JSON"},
		{"no alg", "Bearer " + raw(`{"typ":"JWT"}`, "{}", []byte("x")), hdrNoAlg},
		{"alg not string", "Bearer " + raw(`{"alg":256}`, "{}", []byte("x")), hdrNoAlg},
		{"alg none", "Bearer " + raw(`{"alg":"none"}`, `{"iss":"`+iss1+`"}`, []byte("x")), hdrAlg},
		{"alg lowercase", "Bearer " + raw(`{"alg":"rs256"}`, "{}", []byte("x")), hdrAlg},
		{"kid not string", "Bearer " + raw(`{"alg":"RS256","kid":1}`, "{}", []byte("x")), "Jwt header [kid] field is not a string"},
		{"payload bad base64", "Bearer " + parts[0] + ".a." + parts[2], "Jwt payload is an invalid Base64url encoded"},
		{"payload not JSON", "Bearer " + raw(`{"alg":"RS256"}`, "iss", []byte("x")), "Jwt payload is an invalid JSON"},
		{"payload not UTF-8", "Bearer " + raw(`{"alg":"RS256"}`, "{\"iss\":\"\xff\"}", []byte("x")), "Jwt payload is an invalid JSON"},
		{"iss not string", "Bearer " + raw(`{"alg":"RS256"}`, `{"iss":1}`, []byte("x")), "Jwt payload [iss] field is not a string"},
		{"sub not string", "Bearer " + raw(`{"alg":"RS256"}`, `{"sub":[]}`, []byte("x")), "Jwt payload [sub] field is not a string"},
		{"iat not integer", "Bearer " + raw(`{"alg":"RS256"}`, `{"iat":"1"}`, []byte("x")), "Jwt payload [iat] field is not an integer"},
		{"nbf negative", "Bearer " + raw(`{"alg":"RS256"}`, `{"nbf":-1}`, []byte("x")), "Jwt payload [nbf] field is not a positive 64 bit integer"},
		{"exp string", "Bearer " + raw(`{"alg":"RS256"}`, `{"exp":"soon"}`, []byte("x")), "Jwt payload [exp] field is not an integer"},
		{"exp too large", "Bearer " + raw(`{"alg":"RS256"}`, `{"exp":1.9e19}`, []byte("x")), "Jwt payload [exp] field is not a positive 64 bit integer"},
		{"jti not string", "Bearer " + raw(`{"alg":"RS256"}`, `{"jti":{}}`, []byte("x")), "Jwt payload [jti] field is not a string"},
		{"aud number", "Bearer " + raw(`{"alg":"RS256"}`, `{"aud":1}`, []byte("x")), "Jwt payload [aud] field is not a string or string list"},
		{"aud list of numbers", "Bearer " + raw(`{"alg":"RS256"}`, `{"aud":["a",1]}`, []byte("x")), "Jwt payload [aud] field is not a string or string list"},
		{"signature bad base64", "Bearer " + parts[0] + "." + parts[1] + ".a", "Jwt signature is an invalid Base64url encoded"},
		// parse errors precede the issuer check (Envoy authenticator.cc startVerify)
		{"bad payload of foreign issuer", "Bearer " + raw(`{"alg":"RS256"}`, `{"iss":"x","exp":"y"}`, []byte("x")), "Jwt payload [exp] field is not an integer"},
		// issuer check precedes time: an expired token of another issuer is "not configured"
		{"expired foreign", "Bearer " + mint(t, jose.RS256, keys(t).rsa1, "rsa1", claims("x", map[string]any{"exp": 1})), unknown},
		// Envoy extractor.cc extractJWT: the token is the run of [A-Za-z0-9-_.] after the prefix
		{"trailing garbage ignored", "Bearer " + valid + " trailing", ""},
		{"prefix found mid-value", "xyz Bearer " + valid, ""},
		{"spaces after prefix skipped", "Bearer    " + valid, ""},
		// absl::StrSplit(SkipEmpty): empty sections vanish, and the signing
		// input is rebuilt from the three that remain, so h..p.s verifies
		{"doubled dot", "Bearer " + parts[0] + ".." + parts[1] + "." + parts[2], ""},
		{"leading dot", "Bearer ." + valid, ""},
		// '=' is not a token character: padding after a prefix is cut off
		{"padded signature", "Bearer " + valid + "==", ""},
	}
	var rows []authCase
	for _, c := range cases {
		status := 401
		if c.detail == "" {
			status = 0
		}
		rows = append(rows, authCase{name: c.name, ras: one, h: hdrs("authorization", c.value), status: status, detail: c.detail})
	}
	runAuthCases(t, rows)
}

func TestAuthenticateAudiences(t *testing.T) {
	withAudRule := func(a ...string) []*config.Resource[*securityv1beta1.RequestAuthentication] {
		return ras(ra("foo", "jwt", rule(t, iss1, withAud(a...))))
	}
	runAuthCases(t, []authCase{
		// Istio jwt_test.go "valid-aud" → 200
		{name: "match", ras: withAudRule("foo"), h: bearer(rs1(t, map[string]any{"aud": "foo"}))},
		// Istio jwt_test.go "invalid-aud" → 403; Envoy status.cc JwtAudienceNotAllowed → 403
		{name: "mismatch", ras: withAudRule("foo"), h: bearer(rs1(t, map[string]any{"aud": "bar"})), status: 403, detail: audBad},
		// Envoy check_audience.cc: a token without aud fails a configured list
		{name: "no aud in token", ras: withAudRule("foo"), h: bearer(rs1(t, nil)), status: 403, detail: audBad},
		// Envoy check_audience.cc: any one of a list matches
		{name: "list match", ras: withAudRule("a", "b"), h: bearer(rs1(t, map[string]any{"aud": []string{"x", "b"}}))},
		// Envoy check_audience.cc sanitizeAudience strips http(s):// and one trailing '/' on both sides
		{name: "https and slash in config", ras: withAudRule("https://foo.example.com/"), h: bearer(rs1(t, map[string]any{"aud": "foo.example.com"}))},
		{name: "http in token", ras: withAudRule("foo.example.com"), h: bearer(rs1(t, map[string]any{"aud": "http://foo.example.com/"}))},
		{name: "only one slash stripped", ras: withAudRule("foo"), h: bearer(rs1(t, map[string]any{"aud": "foo//"})), status: 403, detail: audBad},
		{name: "scheme is case-sensitive", ras: withAudRule("foo"), h: bearer(rs1(t, map[string]any{"aud": "HTTPS://foo"})), status: 403, detail: audBad},
		// istio-validation-authn.md §12.3: empty audiences → no check at all
		{name: "empty list accepts any", ras: withAudRule(), h: bearer(rs1(t, map[string]any{"aud": "anything"}))},
		{name: "empty list accepts none", ras: withAudRule(), h: bearer(rs1(t, nil))},
		// Envoy authenticator.cc: audience is checked before the signature
		{name: "audience before signature", ras: withAudRule("foo"), status: 403, detail: audBad,
			h: bearer(mint(t, jose.RS256, keys(t).rogue, "rsa1", claims(iss1, map[string]any{"aud": "bar"})))},
	})
}

func TestSanitizeAudience(t *testing.T) {
	// Envoy check_audience.cc sanitizeAudience
	for in, want := range map[string]string{
		"":                "",
		"foo":             "foo",
		"foo/":            "foo",
		"https://foo/":    "foo",
		"http://foo":      "foo",
		"https://":        "",
		"http://":         "",
		"/":               "",
		"ftp://foo/":      "ftp://foo",
		"https://foo/bar": "foo/bar",
	} {
		if got := sanitizeAudience(in); got != want {
			t.Errorf("sanitizeAudience(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAuthenticateLocations(t *testing.T) {
	valid := rs1(t, nil)
	old := rs1(t, map[string]any{"exp": now.Unix() - 3600})
	def := ras(ra("foo", "jwt", rule(t, iss1)))
	// Istio tests/integration/security/testdata/requestauthn/headers-params.yaml.tmpl
	hp := ras(ra("foo", "jwt", rule(t, iss1,
		withHeader("x-jwt-token", "Value "), withHeader("Auth-Token", "Token "),
		withParams("token", "secondary_token"))))
	noPrefix := ras(ra("foo", "jwt", rule(t, iss1, withHeader("x-jwt", ""))))
	cookies := ras(ra("foo", "jwt", rule(t, iss1, withCookies("session"))))
	runAuthCases(t, []authCase{
		// istio-validation-authn.md §11: "Authorization: bearer x" (lowercase) is invisible → JwtMissed → pass
		{name: "lowercase bearer is missing", ras: def, h: hdrs("authorization", "bearer "+old), check: noClaims},
		// Envoy extractor.cc: a token in a header no rule names is invisible
		{name: "unconfigured header is missing", ras: def, h: hdrs("x-token", "Bearer "+old), check: noClaims},
		// Envoy extractor.cc defaults: query parameter access_token
		{name: "default access_token", ras: def, h: hdrs(), query: "a=1&access_token=" + valid,
			check: accepted(iss1, "foo/jwt", "query access_token")},
		// Envoy utility.cc parseParameters: "access_token" without "=" is an empty, present token
		{name: "access_token without value", ras: def, h: hdrs(), query: "access_token", status: 401, detail: bad},
		// Envoy extractor.cc: every extracted token must verify; the query token is checked first
		{name: "valid header, expired query", ras: def, h: bearer(valid), query: "access_token=" + old, status: 401, detail: expired,
			check: func(t *testing.T, r Result) {
				if r.Token != "query access_token" {
					t.Errorf("Token = %q", r.Token)
				}
			}},
		// Envoy HeaderUtility::getAllOfHeaderAsString: repeated headers are joined with ','
		{name: "repeated authorization", ras: def, h: hdrs("authorization", "Bearer "+valid, "authorization", "Bearer "+old)},
		// Istio jwt_test.go "valid-header" → 200
		{name: "fromHeaders with prefix", ras: hp, h: hdrs("x-jwt-token", "Value "+valid),
			check: accepted(iss1, "foo/jwt", "header x-jwt-token")},
		// Istio jwt_test.go "valid-header-secondary" → 200 (header name matched case-insensitively)
		{name: "fromHeaders secondary", ras: hp, h: hdrs("auth-token", "Token "+valid),
			check: accepted(iss1, "foo/jwt", "header Auth-Token")},
		// istio-validation-authn.md §12.2: a header without the prefix is skipped → missing → pass
		{name: "fromHeaders prefix absent", ras: hp, h: hdrs("x-jwt-token", "Bearer "+old), check: noClaims},
		// Istio jwt_test.go "invalid-header" → 403 from authz only: configuring locations disables Authorization
		{name: "fromHeaders disables default", ras: hp, h: bearer(old), check: noClaims},
		{name: "fromHeaders prefix present, expired", ras: hp, h: hdrs("x-jwt-token", "Value "+old), status: 401, detail: expired},
		// Envoy extractor.cc: without a prefix the whole value is the token
		{name: "fromHeaders no prefix", ras: noPrefix, h: hdrs("x-jwt", valid), check: accepted(iss1, "foo/jwt", "header x-jwt")},
		// ... "Bearer " included: absl's base64 skips the space and decodes
		// "Bearer" as data, so the header section is not JSON
		{name: "fromHeaders no prefix keeps Bearer", ras: noPrefix, h: hdrs("x-jwt", "Bearer "+valid), status: 401, detail: "Jwt header is an invalid JSON"},
		// Istio jwt_test.go "valid-params" / "valid-params-secondary" → 200
		{name: "fromParams", ras: hp, h: hdrs(), query: "token=" + valid, check: accepted(iss1, "foo/jwt", "query token")},
		{name: "fromParams secondary", ras: hp, h: hdrs(), query: "secondary_token=" + valid},
		// Istio jwt_test.go "invalid-params" → 403 from authz only: the token is missing
		{name: "fromParams other name", ras: hp, h: hdrs(), query: "token_value=" + old, check: noClaims},
		// Istio jwt_test.go "valid-token-set" → 200, "invalid-token-set" → 401
		{name: "valid token set", ras: hp, h: hdrs(), query: "token=" + valid + "&secondary_token=" + valid},
		{name: "invalid token set", ras: hp, h: hdrs(), query: "token=" + valid + "&secondary_token=" + old, status: 401, detail: expired},
		// Envoy PercentEncoding::decode on query parameters
		{name: "percent-encoded param", ras: hp, h: hdrs(), query: "tok%65n=" + strings.ReplaceAll(valid, ".", "%2E")},
		{name: "first value wins", ras: hp, h: hdrs(), query: "token=" + valid + "&token=" + old},
		{name: "default access_token encoded", ras: def, h: hdrs(), query: "access_token=" + url.QueryEscape(valid)},
		// Envoy forEachCookie: cookies matched by name; quotes stripped
		{name: "fromCookies", ras: cookies, h: hdrs("cookie", "a=b; session="+valid+"; c=d"),
			check: accepted(iss1, "foo/jwt", "cookie session")},
		{name: "fromCookies quoted", ras: cookies, h: hdrs("cookie", `session="`+valid+`"`)},
		{name: "fromCookies second header", ras: cookies, h: hdrs("cookie", "a=b", "cookie", "session="+valid)},
		{name: "fromCookies absent", ras: cookies, h: hdrs("cookie", "sessionx="+old), check: noClaims},
		{name: "fromCookies expired", ras: cookies, h: hdrs("cookie", "session="+old), status: 401, detail: expired},
		{name: "fromCookies disables default", ras: cookies, h: bearer(old), check: noClaims},
	})
}

func TestAuthenticateMultipleRules(t *testing.T) {
	k := keys(t)
	rsa2JWKS := jwksJSON(t, jose.JSONWebKey{Key: k.rsa2, KeyID: "rsa2", Algorithm: "RS256"})
	tok2 := mint(t, jose.RS256, k.rsa1, "rsa1", claims(iss2, nil))
	two := ras(ra("foo", "one", rule(t, iss1)), ra("foo", "two", rule(t, iss2)))
	// Two RequestAuthentications with the same issuer but different keys.
	union := ras(ra("foo", "a", rule(t, iss1)), ra("foo", "b", rule(t, iss1, withJwks(rsa2JWKS))))
	perLoc := ras(ra("foo", "a", rule(t, iss1, withHeader("x-a", ""))), ra("foo", "b", rule(t, iss2, withHeader("x-b", ""))))
	runAuthCases(t, []authCase{
		// Istio jwt_test.go "valid-token-2-noauthz" → 200
		{name: "second issuer", ras: two, h: bearer(tok2), check: accepted(iss2, "foo/two", "header Authorization")},
		{name: "first issuer", ras: two, h: bearer(rs1(t, nil)), check: accepted(iss1, "foo/one", "header Authorization")},
		{name: "neither issuer", ras: two, h: bearer(mint(t, jose.RS256, k.rsa1, "rsa1", claims("x", nil))), status: 401, detail: unknown},
		// Envoy verifier.cc AnyVerifierImpl: a real error beats "issuer not configured"
		{name: "expired second issuer", ras: two, h: bearer(mint(t, jose.RS256, k.rsa1, "rsa1", claims(iss2, map[string]any{"exp": 1}))),
			status: 401, detail: expired, check: func(t *testing.T, r Result) {
				if r.Issuer != iss2 || r.Source != "foo/two" {
					t.Errorf("attributed to %q %q", r.Issuer, r.Source)
				}
			}},
		{name: "no token", ras: two, h: hdrs(), check: noClaims},
		// istio-validation-authn.md §11: same-issuer rules are separate providers; their keys form a union
		{name: "union first key", ras: union, h: bearer(rs1(t, nil)), check: accepted(iss1, "foo/a", "header Authorization")},
		{name: "union second key", ras: union, h: bearer(mint(t, jose.RS256, k.rsa2, "rsa2", claims(iss1, nil))),
			check: accepted(iss1, "foo/b", "header Authorization")},
		// Both fail: foo/a has no key with kid rsa2, foo/b's key does not verify.
		// The requires_all branch fails on foo/a first and is the last child of
		// the outer requires_any, so its error is the one reported.
		{name: "union neither key", ras: union, h: bearer(mint(t, jose.RS256, k.rogue, "rsa2", claims(iss1, nil))), status: 401, detail: kidAlg,
			check: func(t *testing.T, r Result) {
				if r.Source != "foo/a" {
					t.Errorf("attributed to %q", r.Source)
				}
			}},
		{name: "union neither key, kid of both", ras: union, h: bearer(mint(t, jose.RS256, k.rogue, "", claims(iss1, nil))), status: 401, detail: verFail},
		// Istio jwt_test.go "verify-policies-are-combined" → 200 (aud.yaml.tmpl: issuer-2 with audience bar, and without)
		{name: "policies are combined", h: bearer(tok2), ras: ras(
			ra("foo", "part1", rule(t, iss1, withAud("foo")), rule(t, iss2, withAud("bar"))),
			ra("foo", "part2", rule(t, iss2)))},
		// Envoy verifier.cc AnyVerifierImpl::onComplete keeps the LAST error that is
		// neither missing nor unknown issuer: here [unknown, 403, 401, requires_all=unknown]
		// ends on the 401 of the second same-issuer rule, not the 403 of the first.
		{name: "last real error wins", status: 401, detail: verFail,
			h:   bearer(mint(t, jose.RS256, k.rogue, "rsa1", claims(iss2, map[string]any{"aud": "y"}))),
			ras: ras(ra("foo", "a", rule(t, iss1)), ra("foo", "b", rule(t, iss2, withAud("x"))), ra("foo", "c", rule(t, iss2))),
			check: func(t *testing.T, r Result) {
				if r.Source != "foo/c" {
					t.Errorf("attributed to %q", r.Source)
				}
			}},
		// One rule per location. Envoy verifier.cc AnyVerifierImpl completes at
		// the first child that succeeds, so once any rule accepts its token a
		// bad token at another rule's location no longer matters.
		{name: "rules at different locations", h: hdrs("x-a", rs1(t, nil)), ras: perLoc,
			check: accepted(iss1, "foo/a", "header x-a")},
		{name: "bad token elsewhere, first rule accepts", h: hdrs("x-a", rs1(t, nil), "x-b", "garbage"), ras: perLoc},
		{name: "bad token elsewhere, second rule accepts", h: hdrs("x-a", "garbage", "x-b", tok2), ras: perLoc,
			check: accepted(iss2, "foo/b", "header x-b")},
		// Only when no rule accepts does the requires_all branch reject the bad token.
		{name: "bad token, nothing accepted", h: hdrs("x-a", "garbage"), ras: perLoc, status: 401, detail: bad},
	})
}

func TestAuthenticateCORS(t *testing.T) {
	old := rs1(t, map[string]any{"exp": 1})
	one := ras(ra("foo", "jwt", rule(t, iss1)))
	pre := func(kv ...string) authz.Headers {
		h := authz.Headers{{Name: ":method", Value: "OPTIONS"}, {Name: ":path", Value: "/"}, {Name: "authorization", Value: "Bearer " + old}}
		for i := 0; i+1 < len(kv); i += 2 {
			h = append(h, authz.Header{Name: kv[i], Value: kv[i+1]})
		}
		return h
	}
	runAuthCases(t, []authCase{
		// Istio jwt_test.go "expired-token-cors-preflight-request-allowed" → 200
		{name: "preflight bypasses", ras: one, h: pre("origin", "https://istio.io", "access-control-request-method", "POST"), check: noClaims},
		// Istio jwt_test.go "expired-token-bad-cors-preflight-request-rejected" → 401
		{name: "no origin", ras: one, h: pre("access-control-request-method", "POST"), status: 401, detail: expired},
		{name: "empty method header", ras: one, h: pre("origin", "https://istio.io", "access-control-request-method", ""), status: 401, detail: expired},
		// Envoy filter.cc isCorsPreflightRequest needs method OPTIONS
		{name: "not OPTIONS", ras: one, h: append(bearer(old), authz.Header{Name: "origin", Value: "o"}, authz.Header{Name: "access-control-request-method", Value: "POST"}), status: 401, detail: expired},
		// istiod attaches the requirement to path prefix "/"; "OPTIONS *" matches no rule
		{name: "asterisk path", ras: one, h: authz.Headers{{Name: ":method", Value: "OPTIONS"}, {Name: ":path", Value: "*"}, {Name: "authorization", Value: "Bearer " + old}}},
	})
}

func TestAuthenticateClaims(t *testing.T) {
	r := rule(t, iss1, func(r *securityv1beta1.JWTRule) { r.SpaceDelimitedClaims = []string{"roles", "realm.scope"} })
	p := New(ras(ra("foo", "jwt", r)), nil)
	tok := rs1(t, map[string]any{
		"scope":      "read  write",
		"permission": "admin",
		"roles":      "a b",
		"other":      "x y",
		"tabbed":     "a\tb",
		"aud":        []string{"one", "two"},
		// nested claims are kept as objects; Envoy looks space-delimited
		// claims up at the top level only, so realm.scope is not split
		"realm": map[string]any{"scope": "p q", "roles": []string{"r1", "r2"}},
	})
	// Envoy builds the list element by element: a space-only scope stays a string
	tok2 := rs1(t, map[string]any{"scope": "  "})
	res := p.Authenticate(bearer(tok), "", now)
	if res.Status != 0 {
		t.Fatalf("%+v", res)
	}
	want := map[string]any{
		"scope":      []any{"read", "write"},     // Envoy authenticator.cc setPayloadMetadata
		"permission": []any{"admin"},             // default space-delimited claim
		"roles":      []any{"a", "b"},            // spaceDelimitedClaims
		"other":      "x y",                      // not listed: untouched
		"tabbed":     "a\tb",                     // split on ' ' only
		"aud":        []any{"one", "two"},        // aud untouched
		"sub":        "sub-1",                    // plain claims as decoded
		"exp":        float64(now.Unix() + 3600), // numbers are float64
	}
	for k, v := range want {
		if !reflect.DeepEqual(res.Claims[k], v) {
			t.Errorf("claim %s = %#v, want %#v", k, res.Claims[k], v)
		}
	}
	realm, ok := res.Claims["realm"].(map[string]any)
	if !ok || realm["scope"] != "p q" || !reflect.DeepEqual(realm["roles"], []any{"r1", "r2"}) {
		t.Errorf("nested claims = %#v", res.Claims["realm"])
	}
	if res2 := p.Authenticate(bearer(tok2), "", now); res2.Claims["scope"] != "  " {
		t.Errorf("space-only scope = %#v", res2.Claims["scope"])
	}
	// Each call decodes a fresh payload: callers may keep or change it.
	res3 := p.Authenticate(bearer(tok), "", now)
	res3.Claims["sub"] = "changed"
	if res4 := p.Authenticate(bearer(tok), "", now); res4.Claims["sub"] != "sub-1" {
		t.Error("claims shared between calls")
	}
}

// TestHeaderRemoval covers Envoy running providers one after another on the
// same header map.
func TestHeaderRemoval(t *testing.T) {
	old := rs1(t, map[string]any{"exp": 1})
	runAuthCases(t, []authCase{
		// Envoy verifier.cc ProviderVerifierImpl::verify sanitizes the
		// provider's output headers before extracting: a token in the
		// outputPayloadToHeader header is never seen.
		{name: "payload header sanitized first", h: hdrs("x-jwt", old), check: noClaims,
			ras: ras(ra("foo", "jwt", rule(t, iss1, withHeader("x-jwt", ""),
				func(r *securityv1beta1.JWTRule) { r.OutputPayloadToHeader = "X-JWT" })))},
		// Envoy authenticator.cc handleGoodJwt removes an accepted header
		// token (forwardOriginalToken false) even if a later token of the same
		// provider then fails. Rule a checks x-b (accepted, removed), then x-a
		// (garbage): a fails, and rule b, which would have accepted x-b, no
		// longer sees it.
		{name: "accepted header removed for later rules", h: hdrs("x-a", "garbage", "x-b", rs1(t, nil)), status: 401, detail: bad,
			ras: ras(ra("foo", "a", rule(t, iss1, withHeader("x-a", ""), withHeader("x-b", ""))),
				ra("foo", "b", rule(t, iss1, withHeader("x-b", ""))))},
		// ... whereas with forwardOriginalToken the header stays and rule b accepts it.
		{name: "forwarded header kept for later rules", h: hdrs("x-a", "garbage", "x-b", rs1(t, nil)),
			check: accepted(iss1, "foo/b", "header x-b"),
			ras: ras(ra("foo", "a", rule(t, iss1, withHeader("x-a", ""), withHeader("x-b", ""),
				func(r *securityv1beta1.JWTRule) { r.ForwardOriginalToken = true })),
				ra("foo", "b", rule(t, iss1, withHeader("x-b", ""))))},
	})
}

func TestNilAndEmptyPolicy(t *testing.T) {
	var p *Policy
	if r := p.Authenticate(bearer("x"), "", now); r.Status != 0 {
		t.Errorf("nil policy: %+v", r)
	}
	if r := New(nil, nil).Authenticate(bearer("x"), "", now); r.Status != 0 {
		t.Errorf("empty policy: %+v", r)
	}
	// nil entries are skipped, as validation skips nil rules
	p = New(ras(nil, &config.Resource[*securityv1beta1.RequestAuthentication]{}, ra("a", "b", nil)), nil)
	if r := p.Authenticate(bearer("x"), "", now); r.Status != 0 {
		t.Errorf("nil entries: %+v", r)
	}
}
