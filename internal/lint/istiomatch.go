package lint

import (
	"net/netip"
	"regexp"
	"strings"
	"sync"

	"github.com/palisade-security/palisade/internal/config"
)

// The helpers below apply Istio's value matching to what the inventory
// knows: which identities, namespaces and hosts exist. They follow
// pilot/pkg/security/authz/matcher (see /work/notes/istio-authz-matchers.md):
// "*" is any non-empty value, a leading "*" a suffix, a trailing "*" a
// prefix, anything else exact; a "*" in the middle is a literal.

// istioString reports whether value matches an Istio string pattern.
func istioString(pattern, value string) bool {
	switch {
	case pattern == "*":
		return value != ""
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(value, pattern[1:])
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(value, pattern[:len(pattern)-1])
	}
	return value == pattern
}

// principalMatches reports whether a principals value matches a SPIFFE
// identity, after istiod's trust domain rewriting: a five-part principal
// whose trust domain is cluster.local or one of the mesh's stands for that
// identity in every trust domain of the mesh. Istio prepends "spiffe://".
func principalMatches(value, identity string, tds []string) bool {
	if value == "*" {
		return identity != ""
	}
	candidates := []string{value}
	if parts := strings.Split(value, "/"); len(parts) == 5 && parts[0] != "*" {
		td := parts[0]
		rewrite := td == config.DefaultTrustDomain
		for _, t := range tds {
			rewrite = rewrite || t == td
		}
		if rewrite {
			for _, t := range tds {
				candidates = append(candidates, t+"/"+strings.Join(parts[1:], "/"))
			}
		}
	}
	for _, c := range candidates {
		switch {
		case strings.HasPrefix(c, "*"):
			if strings.HasPrefix(identity, "spiffe://") && strings.HasSuffix(identity, c[1:]) {
				return true
			}
		case strings.HasSuffix(c, "*"):
			if strings.HasPrefix(identity, "spiffe://"+c[:len(c)-1]) {
				return true
			}
		case identity == "spiffe://"+c:
			return true
		}
	}
	return false
}

// namespaceMatches applies a namespaces value, where every "*" stands for
// any run of characters (istiod's srcNamespaceGenerator).
func namespaceMatches(value, ns string) bool {
	if !strings.Contains(value, "*") {
		return value == ns
	}
	re, ok := namespaceRegexps.Load(value)
	if !ok {
		parts := strings.Split(value, "*")
		for i := range parts {
			parts[i] = regexp.QuoteMeta(parts[i])
		}
		re, _ = namespaceRegexps.LoadOrStore(value, regexp.MustCompile("^"+strings.Join(parts, ".*")+"$"))
	}
	return re.(*regexp.Regexp).MatchString(ns)
}

// namespaceRegexps caches the compiled form of wildcard namespaces values:
// checks match them against every workload.
var namespaceRegexps sync.Map

// serviceAccountMatches applies a serviceAccounts value ("ns/sa", or "sa"
// in the policy's namespace) to a workload.
func serviceAccountMatches(value, policyNS string, w *config.Workload) bool {
	ns, sa, ok := strings.Cut(value, "/")
	if !ok {
		ns, sa = policyNS, value
	}
	return w.Namespace == ns && w.ServiceAccount == sa
}

// hostMatches applies a hosts value to a Host header: like istioString but
// case-insensitive, and "*" is any present value.
func hostMatches(pattern, host string) bool {
	p, h := strings.ToLower(pattern), strings.ToLower(host)
	if p == "*" {
		return true
	}
	return istioString(p, h)
}

// covers reports whether Istio value a matches every value that value b
// matches, for string fields. It is conservative: false when unsure.
func covers(a, b string) bool {
	switch {
	case a == b:
		return true
	case a == "*":
		return true // b matches only non-empty values (or is "*" itself)
	case b == "*":
		return false
	case strings.HasPrefix(a, "*"):
		suffix := a[1:]
		if strings.HasPrefix(b, "*") {
			return strings.HasSuffix(b[1:], suffix)
		}
		if strings.HasSuffix(b, "*") {
			return false
		}
		return strings.HasSuffix(b, suffix)
	case strings.HasSuffix(a, "*"):
		prefix := a[:len(a)-1]
		if strings.HasPrefix(b, "*") {
			return false
		}
		return strings.HasPrefix(strings.TrimSuffix(b, "*"), prefix)
	}
	return false
}

// coversCIDR reports whether ipBlocks value a contains b.
func coversCIDR(a, b string) bool {
	pa, err1 := parsePrefix(a)
	pb, err2 := parsePrefix(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return pa.Bits() <= pb.Bits() && pa.Contains(pb.Addr())
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
