// Package lint finds what is wrong with a set of Istio, Cilium and
// Kubernetes policies before they reach a cluster: what istiod, the API
// server or Cilium's agent would reject, and what they would accept but
// cannot do what it seems to do, each with its upstream reason and a fix.
// It judges with the same model that `palisade check` decides with
// (internal/engine), so a finding and a verdict never disagree.
package lint

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/palisade-security/palisade/internal/config"
)

// Severity is how bad a finding is.
type Severity int

// The severities, mildest first. Error means the configuration is rejected,
// or does the opposite of what it says, or breaks traffic it was written
// for; Warning means it does less than it seems to; Info is harmless
// redundancy.
const (
	Info Severity = iota
	Warning
	Error
)

func (s Severity) String() string {
	switch s {
	case Error:
		return "error"
	case Warning:
		return "warning"
	}
	return "info"
}

// ParseSeverity reads "error", "warning" or "info".
func ParseSeverity(s string) (Severity, error) {
	switch strings.ToLower(s) {
	case "error":
		return Error, nil
	case "warning", "warn":
		return Warning, nil
	case "info", "note":
		return Info, nil
	}
	return Info, fmt.Errorf("unknown severity %q (want error, warning or info)", s)
}

// MarshalJSON writes the severity as its name.
func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads a severity name.
func (s *Severity) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return err
	}
	v, err := ParseSeverity(name)
	*s = v
	return err
}

// Source is where a finding is: the file as given, the 1-based line (0 when
// unknown) and the 1-based document within the file.
type Source struct {
	File     string `json:"file"`
	Line     int    `json:"line,omitempty"`
	Document int    `json:"document,omitempty"`
}

func (s Source) String() string {
	if s.Line > 0 {
		return fmt.Sprintf("%s:%d", s.File, s.Line)
	}
	return s.File
}

func sourceOf(s config.Source) Source { return Source{File: s.File, Line: s.Line, Document: s.Doc} }

// Finding is one problem.
type Finding struct {
	ID       string   `json:"id"` // stable, "PAL-XXXX"
	Severity Severity `json:"severity"`
	Source   Source   `json:"source"`
	Object   string   `json:"object,omitempty"` // "Kind namespace/name"
	// Message says what is wrong, in one line.
	Message string `json:"message"`
	// Explanation says why, citing the upstream behaviour.
	Explanation string `json:"explanation"`
	// Fix says what to change, in one line.
	Fix string `json:"fix"`
}

// Rule describes one check: its stable ID, a short name and what it finds.
type Rule struct {
	ID       string
	Name     string // kebab-case, for SARIF
	Severity Severity
	Short    string // one line: what the check finds
	HelpURI  string // upstream documentation of the behaviour
}

// Rules is the catalogue of checks, in ID order. IDs are never reused.
var Rules = []Rule{
	{"PAL-0001", "document-rejected", Error, "A document does not load: YAML syntax, unknown field, wrong type or duplicate", "https://kubernetes.io/docs/reference/using-api/api-concepts/"},
	{"PAL-0002", "istio-admission-error", Error, "istiod's validating webhook or the CRD schema rejects the resource", "https://istio.io/latest/docs/reference/config/security/authorization-policy/"},
	{"PAL-0003", "istio-admission-warning", Warning, "istiod accepts the resource with a warning", "https://istio.io/latest/docs/reference/config/security/authorization-policy/"},
	{"PAL-0004", "network-policy-rejected", Error, "Cilium's agent or the API server rejects the network policy", "https://docs.cilium.io/en/stable/security/policy/language/"},
	{"PAL-0005", "network-policy-warning", Warning, "Cilium accepts the network policy with a warning", "https://docs.cilium.io/en/stable/security/policy/language/"},

	{"PAL-1001", "http-fields-on-tcp", Warning, "HTTP-only fields in a rule that applies to a TCP port: ALLOW rules are dropped there, DENY rules lose the fields", "https://istio.io/latest/docs/ops/common-problems/security-issues/"},
	{"PAL-1002", "inbound-hosts-never-match", Warning, "to.hosts in a sidecar policy names hosts the selected workloads are never called by", "https://istio.io/latest/docs/reference/config/security/authorization-policy/"},
	{"PAL-1003", "header-as-secret", Warning, "A condition compares a client-supplied header with a fixed value as if it were a secret", "https://istio.io/latest/docs/reference/config/security/conditions/"},
	{"PAL-1004", "header-as-authentication", Warning, "A condition on the Authorization header stands in for token validation that no RequestAuthentication does", "https://istio.io/latest/docs/tasks/security/authentication/authn-policy/"},
	{"PAL-1005", "header-as-rate-limit", Warning, "A condition on a client-supplied counter header stands in for a rate limit", "https://istio.io/latest/docs/tasks/policy-enforcement/rate-limit/"},
	{"PAL-1010", "allow-unauthenticated-only", Error, "An ALLOW rule matches only requests without an identity", "https://istio.io/latest/docs/concepts/security/#dependency-on-mutual-tls"},
	{"PAL-1011", "allow-plaintext", Warning, "An ALLOW rule without an identity requirement on ports that accept plaintext", "https://istio.io/latest/docs/concepts/security/#dependency-on-mutual-tls"},
	{"PAL-1012", "deny-bypassed-by-plaintext", Warning, "A DENY rule on principals or namespaces on ports that accept plaintext, which it cannot see", "https://istio.io/latest/news/security/istio-security-2021-004/"},
	{"PAL-1013", "identity-rule-without-mtls", Warning, "An ALLOW rule requires a peer identity on ports where mTLS is disabled", "https://istio.io/latest/docs/concepts/security/#dependency-on-mutual-tls"},
	{"PAL-1014", "jwt-rule-without-requestauthentication", Error, "A rule on request principals or JWT claims selects workloads no RequestAuthentication applies to", "https://istio.io/latest/docs/reference/config/security/request_authentication/"},
	{"PAL-1015", "request-principal-issuer-unknown", Warning, "A requestPrincipals value names an issuer no RequestAuthentication of the workload accepts", "https://istio.io/latest/docs/reference/config/security/authorization-policy/"},
	{"PAL-1020", "selector-matches-nothing", Warning, "A policy's workload selector selects no workload in the inventory", "https://istio.io/latest/docs/reference/config/type/workload-selector/"},
	{"PAL-1021", "identity-matches-nothing", Warning, "A principal, namespace or service account in a rule matches no workload in the inventory", "https://istio.io/latest/docs/reference/config/security/authorization-policy/"},
	{"PAL-1030", "rule-shadowed-by-deny", Warning, "An ALLOW rule allows nothing that a DENY rule does not deny first", "https://istio.io/latest/docs/concepts/security/"},
	{"PAL-1031", "rule-redundant", Info, "A rule matches nothing that an earlier rule of the same action does not already match", "https://istio.io/latest/docs/concepts/security/"},
	{"PAL-1040", "overly-broad-allow", Warning, "An ALLOW rule grants every operation to every workload of a namespace, or everything to everyone", "https://istio.io/latest/docs/ops/best-practices/security/"},
	{"PAL-1041", "workload-without-allow-policy", Warning, "A workload has no ALLOW policy while the rest of its namespace denies by default", "https://istio.io/latest/docs/ops/best-practices/security/"},

	{"PAL-2001", "default-deny-not-in-effect", Error, "A network policy's default deny does not take effect the way the manifest suggests", "https://docs.cilium.io/en/stable/security/policy/intro/"},
	{"PAL-2002", "networkpolicy-rules-ignored", Warning, "NetworkPolicy rules of a direction its policyTypes leaves out are ignored", "https://kubernetes.io/docs/concepts/services-networking/network-policies/"},
	{"PAL-2010", "tofqdns-without-dns-rule", Error, "toFQDNs without an egress rules.dns rule, so Cilium never learns the addresses", "https://docs.cilium.io/en/stable/security/policy/language/"},
	{"PAL-2011", "l7-rule-without-port", Warning, "L7 rules on ports the selected workloads do not listen on, or DNS rules off port 53", "https://docs.cilium.io/en/stable/security/policy/language/"},
	{"PAL-2012", "cilium-header-regex", Warning, "A Cilium HTTP header value written as a regex, which Cilium matches literally", "https://docs.cilium.io/en/stable/security/policy/language/"},
	{"PAL-2013", "cilium-http-behind-mtls", Error, "Cilium HTTP rules on a port that carries Istio mutual TLS", "https://docs.cilium.io/en/stable/network/servicemesh/istio/"},
	{"PAL-2014", "cilium-http-on-tls-port", Warning, "Cilium HTTP rules on a TLS port without TLS interception", "https://docs.cilium.io/en/stable/security/tls-visibility/"},
	{"PAL-2020", "network-selector-matches-nothing", Warning, "A network policy selects no workload in the inventory", "https://docs.cilium.io/en/stable/security/policy/kubernetes/"},
	{"PAL-2021", "network-peer-matches-nothing", Warning, "A network policy peer selector matches no workload in the inventory", "https://docs.cilium.io/en/stable/security/policy/kubernetes/"},
	{"PAL-2022", "network-allows-what-istio-denies", Warning, "A network policy admits a peer that Istio authorization always denies on that port", "https://istio.io/latest/docs/concepts/security/"},
	{"PAL-2030", "enforcement-always-cuts-off", Error, "policyEnforcementMode always with namespaces that no policy allows anything", "https://docs.cilium.io/en/stable/security/policy/intro/"},
	{"PAL-2031", "cilium-values-key", Warning, "A Cilium Helm value that the chart does not read as written", "https://docs.cilium.io/en/stable/helm-reference/"},
	{"PAL-2032", "workload-without-network-policy", Warning, "A workload is not in ingress default deny while the rest of its namespace is", "https://docs.cilium.io/en/stable/security/policy/intro/"},
	{"PAL-2033", "one-sided-network-allow", Warning, "One side of a connection allows it and the other side's policy drops it", "https://docs.cilium.io/en/stable/security/policy/intro/"},

	{"PAL-3001", "alert-unknown-metric", Error, "An alerting or recording rule queries a metric no Istio, Cilium, Hubble or Palisade component exports", "https://istio.io/latest/docs/reference/config/metrics/"},
	{"PAL-3002", "dashboard-unknown-metric", Warning, "A dashboard query uses a metric no Istio, Cilium, Hubble or Palisade component exports", "https://docs.cilium.io/en/stable/observability/metrics/"},
	{"PAL-3010", "mesh-config-not-read", Warning, "A ConfigMap carries mesh configuration istiod never reads", "https://istio.io/latest/docs/reference/config/istio.mesh.v1alpha1/"},
}

var ruleByID = func() map[string]*Rule {
	m := map[string]*Rule{}
	for i := range Rules {
		m[Rules[i].ID] = &Rules[i]
	}
	return m
}()

// RuleFor returns the catalogue entry of an ID.
func RuleFor(id string) (Rule, bool) {
	r, ok := ruleByID[id]
	if !ok {
		return Rule{}, false
	}
	return *r, true
}

// Report is the outcome of a lint run.
type Report struct {
	Findings []Finding `json:"findings"`
}

// Filter returns the findings at or above min.
func (r *Report) Filter(min Severity) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Severity >= min {
			out = append(out, f)
		}
	}
	return out
}

// HasErrors reports whether any finding is an error.
func HasErrors(fs []Finding) bool {
	for _, f := range fs {
		if f.Severity == Error {
			return true
		}
	}
	return false
}

// sortFindings orders by file, line, ID, then message, so that output is
// stable.
func sortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Source.File != b.Source.File {
			return a.Source.File < b.Source.File
		}
		if a.Source.Line != b.Source.Line {
			return a.Source.Line < b.Source.Line
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Message < b.Message
	})
}
