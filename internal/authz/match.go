package authz

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// strKind is how a strMatch compares: the Envoy StringMatcher forms Istio
// generates.
type strKind uint8

const (
	strExact strKind = iota
	strPrefix
	strSuffix
	strNonEmpty // Istio's "*" in StringMatcher: regex ".+"
	strPresent  // Istio's "*" in header matchers: present_match, empty counts
	strRegex    // a full-match RE2 regex
	strContains // a regex of the form ".*x.*", without the regex
)

// strMatch is one value of an Istio string field, compiled.
type strMatch struct {
	kind strKind
	s    string
	// prefix must also be present before a suffix: Istio turns "*x" with a
	// "spiffe://" prefix into the regex "spiffe://.*x".
	pre  string
	fold bool // case-insensitive (hosts)
	re   *regexp.Regexp
}

// stringMatcher converts a value the way Istio's matcher.StringMatcherWithPrefix
// does (pilot/pkg/security/authz/matcher/string.go): "*" is any non-empty
// value, "*x" a suffix, "x*" a prefix, anything else exact. A leading "*"
// wins over a trailing one, and a "*" in the middle is a literal character.
func stringMatcher(v, prefix string) strMatch {
	switch {
	case v == "*":
		return strMatch{kind: strNonEmpty}
	case strings.HasPrefix(v, "*"):
		return strMatch{kind: strSuffix, s: v[1:], pre: prefix}
	case strings.HasSuffix(v, "*"):
		return strMatch{kind: strPrefix, s: prefix + v[:len(v)-1]}
	}
	return strMatch{kind: strExact, s: prefix + v}
}

// headerMatcher converts a value the way Istio's matcher.HeaderMatcher does:
// like stringMatcher, except that "*" means the header is present, even
// with an empty value.
func headerMatcher(v string, fold bool) strMatch {
	m := stringMatcher(v, "")
	if m.kind == strNonEmpty {
		m.kind = strPresent
	}
	m.fold = fold
	return m
}

func regexMatcher(re string) (strMatch, error) {
	c, err := regexp.Compile("^(?:" + re + ")$")
	if err != nil {
		return strMatch{}, fmt.Errorf("invalid regex %q: %v", re, err)
	}
	return strMatch{kind: strRegex, re: c, s: re}, nil
}

// match reports whether v, which is present or not, matches. An absent
// value matches nothing, as in Envoy, where a missing header or claim fails
// every string matcher.
func (m *strMatch) match(v string, present bool) bool {
	if !present {
		return false
	}
	switch m.kind {
	case strExact:
		if m.fold {
			return strings.EqualFold(v, m.s)
		}
		return v == m.s
	case strPrefix:
		if m.fold {
			return len(v) >= len(m.s) && strings.EqualFold(v[:len(m.s)], m.s)
		}
		return strings.HasPrefix(v, m.s)
	case strSuffix:
		if len(v) < len(m.pre)+len(m.s) || !strings.HasPrefix(v, m.pre) {
			return false
		}
		if m.fold {
			return strings.EqualFold(v[len(v)-len(m.s):], m.s)
		}
		return strings.HasSuffix(v, m.s)
	case strNonEmpty:
		return v != ""
	case strPresent:
		return true
	case strRegex:
		return m.re.MatchString(v)
	case strContains:
		return strings.Contains(v, m.s)
	}
	return false
}

func (m *strMatch) String() string {
	switch m.kind {
	case strExact:
		return fmt.Sprintf("exact %q", m.s)
	case strPrefix:
		return fmt.Sprintf("prefix %q", m.s)
	case strSuffix:
		return fmt.Sprintf("suffix %q", m.s)
	case strNonEmpty:
		return "any non-empty value"
	case strPresent:
		return "present"
	case strContains:
		return fmt.Sprintf("contains %q", m.s)
	}
	return fmt.Sprintf("regex %q", m.s)
}

// parseCIDR reads an ipBlocks or source.ip value: an address or a prefix.
// Envoy masks the address, so "10.1.2.3/16" is 10.1.0.0/16.
func parseCIDR(v string) (netip.Prefix, error) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", v)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid IP address %q", v)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
