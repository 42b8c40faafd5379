package validation

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Host and label syntax as istiod checks it (pkg/config/labels and
// pkg/config/validation/agent). Istio's DNS-1123 label admits upper case,
// unlike Kubernetes', so these are not k8s.io/apimachinery's validators.
const (
	dnsLabelMaxLen    = 63
	dnsPrefixMaxLen   = 253
	domainMaxLen      = 255
	dnsLabelExpr      = `[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?`
	qualifiedNameExpr = `(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
)

var (
	dnsLabelRE         = regexp.MustCompile(`^` + dnsLabelExpr + `$`)
	wildcardDNSLabelRE = regexp.MustCompile(`^(\*|(\*|\*-)?` + dnsLabelExpr + `)$`)
	labelKeyRE         = regexp.MustCompile(`^(` + dnsLabelExpr + `(?:\.` + dnsLabelExpr + `)*/)?(` + qualifiedNameExpr + `)$`)
	labelValueRE       = regexp.MustCompile(`^(` + qualifiedNameExpr + `)?$`)
)

func isDNSLabel(s string) bool {
	return len(s) <= dnsLabelMaxLen && dnsLabelRE.MatchString(s)
}

// isWildcardDNSLabel also admits "*", "*foo" and "*-foo", the forms a
// wildcard host's first label may take.
func isWildcardDNSLabel(s string) bool {
	return len(s) <= dnsLabelMaxLen && wildcardDNSLabelRE.MatchString(s)
}

// domainPreconditions is CheckDNS1123Preconditions.
func domainPreconditions(name string) string {
	if len(name) > domainMaxLen {
		return fmt.Sprintf("domain name %q too long (max 255)", name)
	}
	if name == "" {
		return "empty domain name not allowed"
	}
	return ""
}

// dnsLabels is ValidateDNS1123Labels: every label valid, a trailing dot
// allowed, and the last label not a number (strconv.Atoi's notion, so "+1"
// counts), since an all-numeric name would read as an IP address.
func dnsLabels(domain string) string {
	parts := strings.Split(domain, ".")
	tld := parts[len(parts)-1]
	if _, err := strconv.Atoi(tld); err == nil {
		return fmt.Sprintf("domain name %q invalid (top level domain %q cannot be all-numeric)", domain, tld)
	}
	for i, label := range parts {
		if i == len(parts)-1 && label == "" {
			return ""
		}
		if !isDNSLabel(label) {
			return fmt.Sprintf("domain name %q invalid (label %q invalid)", domain, label)
		}
	}
	return ""
}

// wildcardDomain is ValidateWildcardDomain: an FQDN whose first label alone
// may be a wildcard. IP addresses fail (their last label is numeric).
func wildcardDomain(domain string) string {
	if msg := domainPreconditions(domain); msg != "" {
		return msg
	}
	first, rest, hasRest := strings.Cut(domain, ".")
	if !isWildcardDNSLabel(first) {
		return fmt.Sprintf("domain name %q invalid (label %q invalid)", domain, first)
	}
	if hasRest {
		return dnsLabels(rest)
	}
	return ""
}

// fqdn is ValidateFQDN.
func fqdn(name string) string {
	if msg := domainPreconditions(name); msg != "" {
		return msg
	}
	return dnsLabels(name)
}

// labelKey is labels.validateTagKey: an optional DNS prefix ending in "/"
// and a qualified name, with Kubernetes' length limits.
func labelKey(k string) string {
	m := labelKeyRE.FindStringSubmatch(k)
	if m == nil {
		return fmt.Sprintf("invalid tag key: %q", k)
	}
	if len(m[1]) > 0 && len(m[1])-1 > dnsPrefixMaxLen {
		return fmt.Sprintf("invalid tag key: %q (DNS prefix is too long)", k)
	}
	if len(m[2]) > dnsLabelMaxLen {
		return fmt.Sprintf("invalid tag key: %q (name is too long)", k)
	}
	return ""
}
