package validation

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// This file mirrors istio/istio pkg/config/security/security.go, the value
// checks shared by AuthorizationPolicy sources, operations and conditions.
// Each helper reports the index of the value it objects to so the caller can
// point at it; the messages are security.go's.

// checkEmptyValues is CheckEmptyValues: the first empty value is an error.
func checkEmptyValues(field string, values []string) []finding {
	for i, v := range values {
		if v == "" {
			return []finding{{i, fmt.Sprintf("empty value not allowed, found in %s", field)}}
		}
	}
	return nil
}

// checkWildcardValues is CheckWildcardValues: besides being non-empty, a
// value may hold one "*", and only at its start or end, because that is all
// the prefix/suffix/presence matchers Envoy is given can express.
func checkWildcardValues(field string, values []string) []finding {
	if f := checkEmptyValues(field, values); f != nil {
		return f
	}
	for i, v := range values {
		switch n := strings.Count(v, "*"); {
		case n > 1:
			return []finding{{i, fmt.Sprintf("at most one wildcard is allowed, found in %s: %q", field, v)}}
		case n == 1 && !strings.HasPrefix(v, "*") && !strings.HasSuffix(v, "*"):
			return []finding{{i, fmt.Sprintf("wildcard is only allowed at the start or end, found in %s: %q", field, v)}}
		}
	}
	return nil
}

// checkTrustDomainValues is CheckTrustDomainValues: a wildcard value that is
// also free of "/", since a trust domain is only the first part of a SPIFFE
// identity.
func checkTrustDomainValues(field string, values []string) []finding {
	if f := checkWildcardValues(field, values); f != nil {
		return f
	}
	for i, v := range values {
		if strings.Contains(v, "/") {
			return []finding{{i, fmt.Sprintf("trust domain must not contain '/', found in %s: %q", field, v)}}
		}
	}
	return nil
}

// maxServiceAccounts and maxServiceAccountLen bound serviceAccounts lists in
// both istiod (CheckServiceAccount) and the CRD schema.
const (
	maxServiceAccounts   = 16
	maxServiceAccountLen = 320
)

// checkServiceAccount is CheckServiceAccount: at most 16 values, each
// "sa" or "ns/sa" without wildcards. It stops at the first problem, as
// istiod does.
func checkServiceAccount(field string, values []string) []finding {
	if len(values) > maxServiceAccounts {
		return []finding{{-1, "may not have more than 16 values"}}
	}
	const format = "expected format 'serviceAccount' or 'namespace/serviceAccount'"
	for i, v := range values {
		var msg string
		switch slashes := strings.Count(v, "/"); {
		case v == "":
			msg = fmt.Sprintf("empty value not allowed, found in %s", field)
		case strings.Contains(v, "*"):
			msg = fmt.Sprintf("wildcard not allowed, found in %s", field)
		case slashes > 1:
			msg = fmt.Sprintf("%s, found %q in %s", format, v, field)
		case len(v) > maxServiceAccountLen:
			msg = fmt.Sprintf("value cannot exceed 320 characters, found %q in %s", v, field)
		case strings.HasPrefix(v, "/"):
			msg = fmt.Sprintf("%s, found empty namespace %q in %s", format, v, field)
		case strings.HasSuffix(v, "/"):
			msg = fmt.Sprintf("%s, found empty serviceAccount %q in %s", format, v, field)
		default:
			continue
		}
		return []finding{{i, msg}}
	}
	return nil
}

// validateIPs is ValidateIPs: every value must be an address or, when it
// has a "/", a prefix. Unlike the checks above it reports every bad value.
func validateIPs(values []string) []finding {
	var out []finding
	for i, v := range values {
		if strings.Contains(v, "/") {
			if _, err := netip.ParsePrefix(v); err != nil {
				out = append(out, finding{i, fmt.Sprintf("bad CIDR range (%s): %v", v, err)})
			}
		} else if _, err := netip.ParseAddr(v); err != nil {
			out = append(out, finding{i, fmt.Sprintf("bad IP address (%s)", v)})
		}
	}
	return out
}

// validatePorts is ValidatePorts. A value above 65535 parses without error,
// so istiod's message then ends in "<nil>"; that text is reproduced.
func validatePorts(values []string) []finding {
	var out []finding
	for i, v := range values {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n > 65535 {
			out = append(out, finding{i, fmt.Sprintf("bad port (%s): %v", v, err)})
		}
	}
	return out
}

// validateMapKey accepts keys of the form a[b]: something before the first
// "[", at least one character after it, and a closing "]" at the end.
func validateMapKey(k string) []finding {
	open := strings.Index(k, "[")
	if strings.HasSuffix(k, "]") && open > 0 && open < len(k)-2 {
		return nil
	}
	return []finding{{-1, fmt.Sprintf("bad key (%s): should have format a[b]", k)}}
}

// attribute is security.ValidateAttribute for one `when` key and one of its
// value lists. Findings with index < 0 are about the key.
func attribute(k string, values []string) []finding {
	if f := checkEmptyValues(k, values); f != nil {
		return f
	}
	// The first matching case decides, so the prefix cases shadow any exact
	// key that happens to share their prefix.
	switch {
	case strings.HasPrefix(k, "request.headers"):
		return validateMapKey(k)
	case k == "source.ip", k == "remote.ip":
		return validateIPs(values)
	case k == "source.namespace":
	case k == "source.serviceAccount":
		return checkServiceAccount(k, values)
	case k == "source.principal":
	case k == "source.trustDomain":
		return checkWildcardValues(k, values)
	case k == "request.auth.principal", k == "request.auth.audiences", k == "request.auth.presenter":
	case strings.HasPrefix(k, "request.auth.claims"):
		return validateMapKey(k)
	case k == "destination.ip":
		return validateIPs(values)
	case k == "destination.port":
		return validatePorts(values)
	case k == "connection.sni":
	case strings.HasPrefix(k, "experimental.envoy.filters."):
		return validateMapKey(k)
	case k == "destination.namespace":
		return []finding{{-1, fmt.Sprintf("attribute %s is replaced by the metadata.namespace", k)}}
	case strings.HasPrefix(k, "destination.labels"):
		return []finding{{-1, fmt.Sprintf("attribute %s is replaced by the workload selector", k)}}
	case k == "destination.name", k == "destination.user":
		return []finding{{-1, fmt.Sprintf("deprecated attribute %s: only supported in v1alpha1", k)}}
	default:
		return []finding{{-1, fmt.Sprintf("unknown attribute: %s", k)}}
	}
	return nil
}

// Attribute validates one `when` key and its values exactly as istiod's
// security.ValidateAttribute does. When istiod would report several
// problems (several bad IPs or ports), the error is an errors.Join of one
// error per problem, each carrying istiod's text.
func Attribute(key string, values []string) error {
	return findingsError(attribute(key, values))
}

func findingsError(fs []finding) error {
	switch len(fs) {
	case 0:
		return nil
	case 1:
		return errors.New(fs[0].msg)
	}
	errs := make([]error, len(fs))
	for i, f := range fs {
		errs[i] = errors.New(f.msg)
	}
	return errors.Join(errs...)
}

// Path templates, as Envoy's uri_template matcher understands them.
const (
	matchOneTemplate = "{*}"
	matchAnyTemplate = "{**}"
)

// checkValidPathTemplate is CheckValidPathTemplate over a paths list; it
// stops at the first bad path, as istiod does.
func checkValidPathTemplate(field string, paths []string) []finding {
	for i, p := range paths {
		if msg := pathTemplate(field, p); msg != "" {
			return []finding{{i, msg}}
		}
	}
	return nil
}

// pathTemplate checks one path. It runs on every path, template or not: any
// brace outside a whole {*} or {**} segment is refused because Envoy would
// reject the generated template, and in template paths every other segment
// must be a plain RFC 3986 pchar literal.
func pathTemplate(field, path string) string {
	isTemplate := strings.Contains(path, matchOneTemplate) || strings.Contains(path, matchAnyTemplate)
	trimmed := strings.Trim(path, "/")
	seenAny := false
	for _, seg := range strings.Split(trimmed, "/") {
		if seg == matchOneTemplate || seg == matchAnyTemplate {
			if seenAny {
				return fmt.Sprintf("invalid or unsupported path %s, found in %s. {**} is not the last operator", trimmed, field)
			}
			seenAny = seg == matchAnyTemplate
			continue
		}
		if strings.ContainsAny(seg, "{}") {
			return fmt.Sprintf("invalid or unsupported path %s, found in %s. Contains '{' or '}' beyond a supported path template", trimmed, field)
		}
		if isTemplate && !isValidLiteral(seg) {
			return fmt.Sprintf("invalid or unsupported path %s, found in %s. Contains segment %s with invalid string literal", trimmed, field, seg)
		}
	}
	return ""
}

// PathTemplate is istiod's CheckValidPathTemplate for a single `paths`
// value; messages name the field as "Paths", as istiod does for `paths`.
func PathTemplate(path string) error {
	if msg := pathTemplate("Paths", path); msg != "" {
		return errors.New(msg)
	}
	return nil
}

// isValidLiteral reports whether s is a non-empty run of RFC 3986 pchar
// characters (unreserved, pct-encoded marker, sub-delims other than "*",
// ":" and "@"), the only segments Envoy accepts beside template operators.
func isValidLiteral(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~%!$&'()+,;:@=", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// parseJwksURI is the error half of security.ParseJwksURI: the URI must
// parse, use http or https (url.Parse lower-cases the scheme) and carry a
// numeric port if any.
func parseJwksURI(uri string) error {
	u, err := url.Parse(uri)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("URI scheme %q is not supported", u.Scheme)
	}
	if p := u.Port(); p != "" {
		if _, err := strconv.Atoi(p); err != nil {
			return err
		}
	}
	return nil
}
