package cilium

import (
	"fmt"
	"regexp"
	"strings"
)

// This file restates Cilium's pkg/fqdn/matchpattern (Cilium >= 1.19) and the
// matchName handling of pkg/policy/api/fqdn.go (FQDNSelector.ToRegex).
//
// Names are compared in canonical form: lower case, with a trailing dot
// (dns.FQDN). A pattern is made canonical the same way, then turned into an
// anchored regular expression:
//
//   - "." matches a literal dot;
//   - "*" (any run of stars) inside a label matches zero or more DNS
//     characters [-a-zA-Z0-9_], never a dot, so "*.cilium.io" matches
//     "sub.cilium.io." but neither "cilium.io." nor "a.b.cilium.io.";
//   - a pattern made only of stars, optionally followed by one dot ("*",
//     "**", "*.") matches every name, and the root ".";
//   - a leading run of two or more stars followed by a dot ("**.") matches
//     one or more whole labels, so "**.cilium.io" matches "a.cilium.io." and
//     "a.b.cilium.io." but not "cilium.io.". Before Cilium 1.19 the stars
//     were collapsed and "**." behaved like "*.".

// MaxFQDNLength is the longest matchName or matchPattern Cilium accepts
// (matchpattern.MaxFQDNLength, CRD maxLength 255).
const MaxFQDNLength = 255

// dnsChars is the regular-expression class of characters allowed in a DNS
// label (matchpattern.go allowedDNSCharsREGroup).
const dnsChars = "[-a-zA-Z0-9_]"

// multiLabelGroup matches one or more whole labels followed by a dot; it
// replaces a leading "**." (matchpattern.go dnsWildcardREGroup).
const multiLabelGroup = "(" + dnsChars + "+([.]" + dnsChars + "+){0,})[.]"

// matchAllRegexp is what a stars-only pattern compiles to.
const matchAllRegexp = "(^(" + dnsChars + "+[.])+$)|(^[.]$)"

// NormalizeMatchName returns name in the canonical form Cilium compares DNS
// names in: lower case with exactly the trailing dot added when missing
// (dns.FQDN after strings.ToLower). It is used both for matchName values
// and for the names being looked up.
func NormalizeMatchName(name string) string {
	name = strings.ToLower(strings.TrimSpace(name))
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name
}

// CompileFQDNPattern validates a toFQDNs/DNS matchPattern and compiles it
// into the anchored regular expression Cilium uses. The result must be
// matched against names in NormalizeMatchName form.
//
// Validation is matchpattern.Validate's: at most MaxFQDNLength characters
// and only [-a-zA-Z0-9_.*]. The CRD's stricter syntax (no empty labels) is
// checked by ValidateRule, not here.
func CompileFQDNPattern(pattern string) (*regexp.Regexp, error) {
	if err := prevalidatePattern(pattern); err != nil {
		return nil, err
	}
	return regexp.Compile(fqdnPatternRegexp(canonicalPattern(pattern)))
}

// CompileFQDNMatchName compiles a matchName into the anchored regular
// expression Cilium uses for it (FQDNSelector.ToRegex): the canonical name
// with every dot literal. It rejects names with characters outside
// [-a-zA-Z0-9_.] (fqdn.go allowedMatchNameChars) or longer than
// MaxFQDNLength.
func CompileFQDNMatchName(name string) (*regexp.Regexp, error) {
	if len(strings.TrimSpace(name)) > MaxFQDNLength {
		return nil, fmt.Errorf("invalid MatchName %q: must be <= %d characters long", name, MaxFQDNLength)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isDNSChar(c) && c != '.' {
			return nil, fmt.Errorf("invalid characters in MatchName %q: only 0-9, a-z, A-Z and ., - and _ characters are allowed", name)
		}
	}
	return regexp.Compile(fqdnPatternRegexp(NormalizeMatchName(name)))
}

// prevalidatePattern is matchpattern.prevalidate.
func prevalidatePattern(pattern string) error {
	if len(strings.TrimSpace(pattern)) > MaxFQDNLength {
		return fmt.Errorf("invalid MatchPattern %q: must be <= %d characters long", pattern, MaxFQDNLength)
	}
	for i := 0; i < len(pattern); i++ {
		if c := pattern[i]; !isDNSChar(c) && c != '.' && c != '*' {
			return fmt.Errorf("invalid characters in MatchPattern %q: only 0-9, a-z, A-Z and ., -, _ and * characters are allowed", pattern)
		}
	}
	return nil
}

func isDNSChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// isStarsOnly reports whether p is one or more stars with at most one
// trailing dot (matchpattern.isDNSWildcard).
func isStarsOnly(p string) bool {
	p = strings.TrimSuffix(p, ".")
	if p == "" {
		return false
	}
	return strings.Trim(p, "*") == ""
}

// canonicalPattern adds the trailing dot to every pattern except the
// stars-only ones (matchpattern.Sanitize).
func canonicalPattern(p string) string {
	if isStarsOnly(p) || strings.HasSuffix(p, ".") {
		return p
	}
	return p + "."
}

// fqdnPatternRegexp turns a canonical pattern into an anchored regular
// expression (matchpattern.ToAnchoredRegexp).
func fqdnPatternRegexp(p string) string {
	p = strings.ToLower(strings.TrimSpace(p))
	if isStarsOnly(p) {
		return matchAllRegexp
	}
	var b strings.Builder
	b.WriteByte('^')
	i := 0
	stars := 0
	for stars < len(p) && p[stars] == '*' {
		stars++
	}
	if stars >= 2 && stars < len(p) && p[stars] == '.' {
		b.WriteString(multiLabelGroup)
		i = stars + 1
	}
	for ; i < len(p); i++ {
		switch c := p[i]; c {
		case '.':
			b.WriteString("[.]")
		case '*':
			for i+1 < len(p) && p[i+1] == '*' {
				i++
			}
			b.WriteString(dnsChars + "*")
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('$')
	return b.String()
}
