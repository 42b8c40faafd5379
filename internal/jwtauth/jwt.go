package jwtauth

import (
	"encoding/json"
	"math"
	"strings"
	"unicode/utf8"
)

// token is a JWT parsed the way Envoy's source/common/jwt/jwt.cc parses it.
// Parsing checks the shape and the types of the registered claims only;
// issuer, time, audience and signature are checked later, in that order.
type token struct {
	alg, kid string
	iss      string
	nbf, exp uint64
	aud      []string
	signed   string // the signing input Envoy verifies: header "." payload
	sig      []byte
	payload  map[string]any
}

// implementedAlg lists the algorithms Envoy accepts in a JWT header. "none"
// is deliberately absent: an unsigned token is rejected before any key is
// looked at.
func implementedAlg(alg string) bool {
	switch alg {
	case "ES256", "ES384", "ES512", "HS256", "HS384", "HS512",
		"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA":
		return true
	}
	return false
}

// parseToken mirrors Jwt::parseFromString: the checks run in the same order
// so that a token with several defects reports the same one Envoy does.
func parseToken(raw string) (*token, status) {
	// absl::StrSplit(jwt, '.', SkipEmpty()): empty sections are dropped, so
	// "a..b.c" has three sections and ".a.b.c" too.
	var parts [3]string
	n := 0
	for rest := raw; ; {
		i := strings.IndexByte(rest, '.')
		seg := rest
		if i >= 0 {
			seg = rest[:i]
		}
		if seg != "" {
			if n == 3 {
				return nil, statusBadFormat
			}
			parts[n] = seg
			n++
		}
		if i < 0 {
			break
		}
		rest = rest[i+1:]
	}
	if n != 3 {
		return nil, statusBadFormat
	}

	t := &token{signed: parts[0] + "." + parts[1]}

	hdrJSON, ok := decodeBase64URL(parts[0])
	if !ok {
		return nil, statusHeaderBadBase64
	}
	hdr, ok := decodeObject(hdrJSON)
	if !ok {
		return nil, statusHeaderBadJSON
	}
	if alg, found := hdr["alg"]; !found {
		return nil, statusHeaderBadAlg
	} else if t.alg, ok = alg.(string); !ok {
		return nil, statusHeaderBadAlg
	}
	if !implementedAlg(t.alg) {
		return nil, statusHeaderNotImplementedAlg
	}
	if kid, found := hdr["kid"]; found {
		if t.kid, ok = kid.(string); !ok {
			return nil, statusHeaderBadKid
		}
	}

	payJSON, ok := decodeBase64URL(parts[1])
	if !ok {
		return nil, statusPayloadBadBase64
	}
	if t.payload, ok = decodeObject(payJSON); !ok {
		return nil, statusPayloadBadJSON
	}
	p := t.payload
	var s status
	if t.iss, s = stringClaim(p, "iss", statusIssNotString); s != statusOK {
		return nil, s
	}
	if _, s = stringClaim(p, "sub", statusSubNotString); s != statusOK {
		return nil, s
	}
	if _, s = uintClaim(p, "iat", statusIatNotInteger, statusIatOutOfRange); s != statusOK {
		return nil, s
	}
	if t.nbf, s = uintClaim(p, "nbf", statusNbfNotInteger, statusNbfOutOfRange); s != statusOK {
		return nil, s
	}
	if t.exp, s = uintClaim(p, "exp", statusExpNotInteger, statusExpOutOfRange); s != statusOK {
		return nil, s
	}
	if _, s = stringClaim(p, "jti", statusJtiNotString); s != statusOK {
		return nil, s
	}
	switch aud := p["aud"].(type) {
	case nil:
		if _, found := p["aud"]; found {
			return nil, statusAudNotString // JSON null is neither a string nor a list
		}
	case string:
		t.aud = []string{aud}
	case []any:
		t.aud = make([]string, 0, len(aud))
		for _, a := range aud {
			as, ok := a.(string)
			if !ok {
				return nil, statusAudNotString
			}
			t.aud = append(t.aud, as)
		}
	default:
		return nil, statusAudNotString
	}

	if t.sig, ok = decodeBase64URL(parts[2]); !ok {
		return nil, statusSignatureBadBase64
	}
	return t, statusOK
}

// stringClaim reads an optional claim that must be a string when present.
func stringClaim(p map[string]any, name string, wrong status) (string, status) {
	v, found := p[name]
	if !found {
		return "", statusOK
	}
	s, ok := v.(string)
	if !ok {
		return "", wrong
	}
	return s, statusOK
}

// uintClaim reads an optional NumericDate the way StructUtils::GetUInt64
// does: any JSON number in [0, 2^64) is accepted and truncated, so 1.9
// reads as 1; anything else that is a number is out of range.
func uintClaim(p map[string]any, name string, wrong, outOfRange status) (uint64, status) {
	v, found := p[name]
	if !found {
		return 0, statusOK
	}
	f, ok := v.(float64)
	if !ok {
		return 0, wrong
	}
	if f < 0 || f >= math.MaxUint64 { // float64(MaxUint64) is 2^64, as in C++
		return 0, outOfRange
	}
	return uint64(f), statusOK
}

// decodeObject parses JSON the way protobuf's JsonStringToMessage fills a
// google.protobuf.Struct: the document must be an object, and text that is
// not UTF-8 is rejected rather than repaired as encoding/json would.
func decodeObject(data []byte) (map[string]any, bool) {
	if !utf8.Valid(data) {
		return nil, false
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		return nil, false
	}
	return m, true
}

// b64url maps a base64url character to its value, or -1.
var b64url = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = int8(i)
	}
	return t
}()

// isSpace is absl::ascii_isspace.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// decodeBase64URL decodes like absl::WebSafeBase64Unescape, which Envoy uses
// for every JWT section and JWK field. It is more lenient than Go's
// decoders, and the differences decide whether some tokens parse at all:
// whitespace anywhere is skipped, padding ('=' or '.') is optional but, when
// present, must be exactly right, and the unused low bits of the last
// character are ignored.
func decodeBase64URL(s string) ([]byte, bool) {
	out := make([]byte, 0, len(s)*3/4+2)
	var acc uint32
	n := 0
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if v := b64url[c]; v >= 0 {
			acc = acc<<6 | uint32(v)
			if n++; n == 4 {
				out = append(out, byte(acc>>16), byte(acc>>8), byte(acc))
				acc, n = 0, 0
			}
			continue
		}
		if isSpace(c) {
			continue
		}
		if c == '=' || c == '.' {
			break
		}
		return nil, false
	}
	expected := 0
	switch n {
	case 1:
		return nil, false // six bits cannot make a byte
	case 2:
		out = append(out, byte(acc>>4))
		expected = 2
	case 3:
		out = append(out, byte(acc>>10), byte(acc>>2))
		expected = 1
	}
	pads := 0
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c == '=' || c == '.':
			pads++
		case !isSpace(c):
			return nil, false
		}
	}
	return out, pads == 0 || pads == expected
}

// clockSkew is Envoy's default clock_skew_seconds; istiod never sets the
// field, so the default always applies.
const clockSkew = 60

// checkTime is Jwt::verifyTimeConstraint: nbf and exp are both allowed 60s
// of skew, and a missing (zero) exp never expires.
func (t *token) checkTime(now uint64) status {
	if now+clockSkew < t.nbf {
		return statusNotYetValid
	}
	if t.exp != 0 && now > t.exp+clockSkew {
		return statusExpired
	}
	return statusOK
}

// sanitizeAudience is CheckAudience's normalization, applied to both the
// configured and the presented audiences: one leading "http://" or
// "https://" and one trailing "/" are dropped, case-sensitively.
func sanitizeAudience(aud string) string {
	if aud == "" {
		return aud
	}
	beg := 0
	if strings.HasPrefix(aud, "http://") {
		beg = len("http://")
	} else if strings.HasPrefix(aud, "https://") {
		beg = len("https://")
	}
	end := len(aud)
	if aud[end-1] == '/' {
		end--
	}
	if end < beg { // "https://": C++ substr(beg, npos) yields ""
		return ""
	}
	return aud[beg:end]
}
