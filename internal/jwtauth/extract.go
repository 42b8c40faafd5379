package jwtauth

import (
	"sort"
	"strings"

	"github.com/palisade-security/palisade/internal/authz"
)

// location is one place a provider looks for its token.
type location struct {
	kind   byte   // 'h' header, 'q' query parameter, 'c' cookie
	name   string // lowercase header name, parameter or cookie name
	prefix string // header value prefix; "" for none
	label  string // how Result.Token names it, e.g. "header Authorization"
}

// locations builds a provider's token locations in the order Envoy's
// extractor visits them: headers keyed by lowercase name + prefix, then
// query parameters, then cookies, each set sorted (std::map / btree_map)
// and de-duplicated. The order matters because every token found must be
// valid and Envoy checks them from the last one back, so it decides which
// failure is reported.
//
// Only when the rule names no location at all do the defaults apply: the
// Authorization header with the case-sensitive prefix "Bearer " and the
// access_token query parameter. Naming any location disables both.
func locations(headers []headerSpec, params, cookies []string) []location {
	var out []location
	if len(headers) == 0 && len(params) == 0 && len(cookies) == 0 {
		headers = []headerSpec{{name: "Authorization", prefix: "Bearer "}}
		params = []string{"access_token"}
	}

	byKey := map[string]location{}
	for _, h := range headers {
		lower := asciiLower(h.name)
		key := lower + h.prefix
		if _, dup := byKey[key]; dup {
			continue
		}
		byKey[key] = location{kind: 'h', name: lower, prefix: h.prefix, label: "header " + h.name}
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, byKey[k])
	}

	for _, p := range sortedUnique(params) {
		out = append(out, location{kind: 'q', name: p, label: "query " + p})
	}
	for _, c := range sortedUnique(cookies) {
		out = append(out, location{kind: 'c', name: c, label: "cookie " + c})
	}
	return out
}

type headerSpec struct{ name, prefix string }

func sortedUnique(in []string) []string {
	s := append([]string(nil), in...)
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// asciiLower is Envoy's LowerCaseString: ASCII only.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// request is what extraction reads of one request, plus the header
// removals earlier providers made: Envoy runs the providers one after
// another on the same header map, each first deleting its own output
// headers (outputPayloadToHeader, outputClaimToHeaders) and, after
// accepting a token with forwardOriginalToken false, the header it came
// from. A later provider no longer sees those headers.
type request struct {
	h        authz.Headers
	rawQuery string
	removed  []string
}

func (r *request) remove(name string) {
	for _, n := range r.removed {
		if n == name {
			return
		}
	}
	r.removed = append(r.removed, name)
}

func (r *request) isRemoved(name string) bool {
	for _, n := range r.removed {
		if n == name {
			return true
		}
	}
	return false
}

// header returns every value of name joined with ",", as Envoy's
// getAllOfHeaderAsString does.
func (r *request) header(name string) (string, bool) {
	if r.isRemoved(name) {
		return "", false
	}
	var joined string
	found := false
	for _, kv := range r.h {
		if kv.Name != name {
			continue
		}
		if found {
			joined += "," + kv.Value
		} else {
			joined, found = kv.Value, true
		}
	}
	return joined, found
}

// extracted is one token found at one location.
type extracted struct {
	value string
	loc   *location
}

// extract lists the tokens at a provider's locations, in Envoy's order.
func (r *request) extract(locs []location, buf []extracted) []extracted {
	out := buf[:0]
	for i := range locs {
		l := &locs[i]
		var v string
		var ok bool
		switch l.kind {
		case 'h':
			v, ok = r.header(l.name)
			if ok && l.prefix != "" {
				// The prefix may appear anywhere in the value; without it
				// the location simply holds no token.
				pos := strings.Index(v, l.prefix)
				if pos < 0 {
					continue
				}
				v = tokenAfter(v, pos+len(l.prefix))
			}
		case 'q':
			v, ok = queryParam(r.rawQuery, l.name)
		case 'c':
			v, ok = r.cookie(l.name)
		}
		if ok {
			out = append(out, extracted{value: v, loc: l})
		}
	}
	return out
}

func isTokenChar(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.'
}

// tokenAfter is Envoy's extractJWT: skip to the first base64url-or-dot
// character at or after from and take the run of such characters. With no
// such character the whole header value, prefix included, is the token
// (and then fails to parse).
func tokenAfter(v string, from int) string {
	start := -1
	for i := from; i < len(v); i++ {
		if isTokenChar(v[i]) {
			start = i
			break
		}
	}
	if start < 0 {
		return v
	}
	end := start
	for end < len(v) && isTokenChar(v[end]) {
		end++
	}
	return v[start:end]
}

// queryParam returns the first value of name in the query, both sides
// percent-decoded as Envoy's parseAndDecodeQueryString does ('+' stays '+';
// a malformed escape stays as it is). A parameter without "=" has the
// value "", which is a present, and malformed, token.
func queryParam(rawQuery, name string) (string, bool) {
	for rest := rawQuery; rest != ""; {
		var param string
		if i := strings.IndexByte(rest, '&'); i >= 0 {
			param, rest = rest[:i], rest[i+1:]
		} else {
			param, rest = rest, ""
		}
		if param == "" {
			continue
		}
		k, v, _ := strings.Cut(param, "=")
		if percentDecode(k) == name {
			return percentDecode(v), true
		}
	}
	return "", false
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// percentDecode is Envoy's PercentEncoding::decode.
func percentDecode(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				b = append(b, hi<<4|lo)
				i += 2
				continue
			}
		}
		b = append(b, c)
	}
	return string(b)
}

// cookie returns the first cookie called name across all Cookie headers,
// parsed as Envoy's forEachCookie does: pairs split on ';', leading spaces
// dropped from the name (trailing ones kept), the value taken as is apart
// from one pair of surrounding double quotes.
func (r *request) cookie(name string) (string, bool) {
	if r.isRemoved("cookie") {
		return "", false
	}
	for _, kv := range r.h {
		if kv.Name != "cookie" {
			continue
		}
		for rest := kv.Value; rest != ""; {
			var pair string
			if i := strings.IndexByte(rest, ';'); i >= 0 {
				pair, rest = rest[:i], rest[i+1:]
			} else {
				pair, rest = rest, ""
			}
			eq := strings.IndexByte(pair, '=')
			if eq < 0 {
				continue
			}
			k := strings.TrimLeft(pair[:eq], " ")
			if k != name {
				continue
			}
			v := pair[eq+1:]
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return "", false
}
