package lint

import (
	"regexp"
	"strings"

	"github.com/palisade-security/palisade/internal/config"
)

// validation turns everything `palisade validate` reports into findings:
// loader errors (PAL-0001) and the admission rules of istiod (PAL-0002,
// PAL-0003) and of Cilium and the API server (PAL-0004, PAL-0005).
func (l *linter) validation(loadErrs []*config.Error) {
	l.suppressRawDocuments()
	for _, e := range loadErrs {
		src := sourceOf(e.Source)
		if l.suppressed[Source{File: src.File, Document: src.Document}] {
			continue
		}
		l.add("PAL-0001", src, e.Object, e.Msg,
			"Documents are decoded strictly, as the API server does with kubectl apply --validate=strict and istiod does for its resources: the whole document is rejected, so nothing in it takes effect.",
			loadFix(e.Msg))
	}
	istioKinds := map[string]bool{"AuthorizationPolicy": true, "PeerAuthentication": true, "RequestAuthentication": true, "DestinationRule": true}
	for _, p := range l.eng.Problems {
		kind, _, _ := strings.Cut(p.Object, " ")
		msg := p.Msg
		if strings.Contains(msg, "invalid `notValue` for `key`") {
			// istiod checks values and notValues of a condition with
			// the same attribute check and reports both; one finding
			// says it.
			continue
		}
		src := sourceOf(p.Source)
		switch {
		case istioKinds[kind] && p.Warning:
			l.add("PAL-0003", src, p.Object, msg,
				"istiod's validating webhook (pkg/config/validation) accepts the resource but returns this warning with kubectl apply.",
				istioFix(msg))
		case istioKinds[kind]:
			l.add("PAL-0002", src, p.Object, msg,
				"istiod's validating webhook (pkg/config/validation) or the CRD schema rejects this resource, so kubectl apply fails and none of it is in effect; `palisade check` leaves it out as a cluster would.",
				istioFix(msg))
		case p.Warning:
			l.add("PAL-0005", src, p.Object, msg,
				"Cilium's agent accepts the rule but logs this warning.",
				networkFix(msg))
		default:
			l.add("PAL-0004", src, p.Object, msg,
				"Cilium's rule validation (pkg/policy/api, the CRD schema) or the API server's NetworkPolicy validation rejects this policy, so none of it is enforced.",
				networkFix(msg))
		}
	}
}

// suppressRawDocuments marks documents that are not Kubernetes objects but
// that lint reads itself (Prometheus rule and configuration files), so the
// loader's "no apiVersion or kind" is not reported for them.
func (l *linter) suppressRawDocuments() {
	for i := range l.raw {
		d := &l.raw[i]
		if d.kindOf() != "" {
			continue
		}
		if field(d.root, "groups") != nil || field(d.root, "scrape_configs") != nil || field(d.root, "rule_files") != nil {
			l.suppressed[Source{File: d.file, Document: d.doc}] = true
		}
	}
}

var unknownField = regexp.MustCompile(`unknown field "([^"]+)"`)

// fieldHints are the corrections for unknown fields seen in practice:
// fields from another message, or from an older or invented API.
var fieldHints = map[string]string{
	"keepAlive":                "The TCP keepalive field of connectionPool.tcp is tcpKeepalive (probes, time, interval).",
	"consecutiveGatewayErrors": "consecutiveGatewayErrors belongs to trafficPolicy.outlierDetection, not to connectionPool.http.",
	"exclusionRegexps":         "ProxyStatsMatcher has inclusionPrefixes, inclusionSuffixes and inclusionRegexps only: drop exclusionRegexps and narrow the inclusions.",
}

func loadFix(msg string) string {
	if m := unknownField.FindStringSubmatch(msg); m != nil {
		if h, ok := fieldHints[m[1]]; ok {
			return h
		}
		return "Remove or rename " + m[1] + ": check it against the API reference of this kind and version."
	}
	switch {
	case strings.HasPrefix(msg, "invalid YAML"):
		return "Fix the YAML syntax at this line."
	case strings.Contains(msg, "defined twice"):
		return "Keep one definition of the object: the API server would keep only the last one applied."
	case strings.Contains(msg, "unsupported apiVersion"):
		return "Use one of the supported API versions listed in the message."
	case strings.Contains(msg, "no apiVersion or kind"):
		return "Give the document apiVersion and kind, or keep files that are not Kubernetes objects out of the input."
	}
	return "Correct the field as the message says."
}

func istioFix(msg string) string {
	switch {
	case strings.Contains(msg, "unknown attribute: source.labels"):
		return "Istio has no source.labels attribute: identify the clients by principals or serviceAccounts (give each version its own service account if versions must differ)."
	case strings.Contains(msg, "unknown attribute: request.time"):
		return "Istio has no time attribute: enforce time windows in the application or in an ext_authz (CUSTOM) provider, and remove the condition."
	case strings.Contains(msg, "unknown attribute"):
		return "Use a condition key Istio supports (istio.io/latest/docs/reference/config/security/conditions/)."
	case strings.Contains(msg, "portLevelMtls requires selector"), strings.Contains(msg, "cannot have port level mTLS"):
		return "Give the PeerAuthentication a workload selector, or drop portLevelMtls and set one mode for the namespace."
	case strings.Contains(msg, "deny all traffic to TCP ports"):
		return "Add `ports` with the HTTP ports to the rule's operation so that TCP ports are not denied."
	}
	return "Change the resource so that istiod accepts it; until then it is not in effect."
}

func networkFix(msg string) string {
	switch {
	case strings.Contains(msg, "empty lists do not count"):
		return "For default deny write `ingress: [{}]` and `egress: [{}]`: one empty rule that allows nothing."
	case strings.Contains(msg, "port 53 must be specified"):
		return "List port 53 (UDP and TCP) in the toPorts of the DNS rule."
	}
	return "Correct the rule as the message says; until then Cilium does not enforce this policy."
}
