package lint

import (
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const referenceSystem = "../../examples/reference-system"

// TestReferenceSystem lints the reference system's manifests, published
// with their mistakes, and requires the findings that name its real
// problems: each at its file and line, each explained and with a fix.
func TestLintReferenceSystem(t *testing.T) {
	r, err := Run(Input{Paths: []string{referenceSystem}})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	at := map[string]bool{}
	for _, f := range r.Findings {
		ids[f.ID] = true
		file := f.Source.File[strings.Index(f.Source.File, "reference-system/")+len("reference-system/"):]
		at[file+":"+strconv.Itoa(f.Source.Line)+" "+f.ID] = true
		if f.Explanation == "" || f.Fix == "" || f.Message == "" || f.Object == "" || f.Source.Line == 0 {
			t.Errorf("incomplete finding: %+v", f)
		}
	}
	want := []string{
		"PAL-0001", "PAL-0002", "PAL-0004",
		"PAL-1001", "PAL-1002", "PAL-1003", "PAL-1004", "PAL-1005", "PAL-1010", "PAL-1014", "PAL-1040",
		"PAL-2001", "PAL-2010", "PAL-2012", "PAL-2013", "PAL-2014", "PAL-2021", "PAL-2022", "PAL-2030", "PAL-2031", "PAL-2033",
		"PAL-3001", "PAL-3002", "PAL-3010",
	}
	var got []string
	for id := range ids {
		got = append(got, id)
	}
	sort.Strings(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("IDs:\n got %v\nwant %v", got, want)
	}
	for _, k := range []string{
		// istiod rejects database-access (source.labels[version]) and
		// external-api-access (request.time), and the PeerAuthentication
		// with portLevelMtls but no selector; strict decoding rejects the
		// IstioOperator and the performance DestinationRule.
		"manifests/security/authorization-policies.yaml:55 PAL-0002",
		"manifests/security/authorization-policies.yaml:78 PAL-0002",
		"manifests/security/mtls-policy.yaml:16 PAL-0002",
		"manifests/istio-configuration/production-config.yaml:88 PAL-0001",
		"manifests/performance/istio-performance-config.yaml:33 PAL-0001",
		// deny-all allows only plaintext clients.
		"manifests/security/authorization-policies.yaml:11 PAL-1010",
		// frontend-to-backend's Bearer pattern without RequestAuthentication.
		"manifests/security/authorization-policies.yaml:32 PAL-1004",
		// external-api-access's hosts are external names.
		"manifests/security/authorization-policies.yaml:74 PAL-1002",
		// admin-access: no selector, every method; HTTP fields on
		// postgres's TCP port; a client header as a secret.
		"manifests/security/authorization-policies.yaml:89 PAL-1040",
		"manifests/security/authorization-policies.yaml:94 PAL-1001",
		"manifests/security/authorization-policies.yaml:96 PAL-1003",
		// JWT rules on workloads no RequestAuthentication selects, and a
		// client header as a rate limit.
		"manifests/security/jwt-authentication.yaml:32 PAL-1014",
		"manifests/security/jwt-authentication.yaml:56 PAL-1014",
		"manifests/security/jwt-authentication.yaml:69 PAL-1005",
		// Cilium: empty lists are no default deny (and are rejected).
		"manifests/network-policies/default-deny.yaml:7 PAL-0004",
		"manifests/network-policies/default-deny.yaml:8 PAL-2001",
		"manifests/network-policies/default-deny.yaml:9 PAL-2001",
		"manifests/network-policies/default-deny.yaml:130 PAL-2001",
		// frontend-policy's app: istio-proxy selects no pod.
		"manifests/network-policies/default-deny.yaml:43 PAL-2021",
		// toFQDNs without a DNS rule.
		"manifests/network-policies/default-deny.yaml:59 PAL-2010",
		"manifests/network-policies/layer7-policies.yaml:79 PAL-2010",
		"manifests/network-policies/layer7-policies.yaml:95 PAL-2010",
		// backend-api-policy admits mobile-app, which Istio never allows.
		"manifests/network-policies/default-deny.yaml:77 PAL-2022",
		// Cilium HTTP rules behind Istio mTLS, header "regexes", HTTPS.
		"manifests/network-policies/default-deny.yaml:88 PAL-2013",
		"manifests/network-policies/layer7-policies.yaml:20 PAL-2013",
		"manifests/network-policies/layer7-policies.yaml:55 PAL-2013",
		"manifests/network-policies/layer7-policies.yaml:23 PAL-2012",
		"manifests/network-policies/layer7-policies.yaml:86 PAL-2014",
		// policyEnforcementMode always, and the chart values.
		"manifests/cilium-config/values.yaml:8 PAL-2030",
		"manifests/cilium-config/values.yaml:4 PAL-2031",
		"manifests/cilium-config/values.yaml:12 PAL-2031",
		"manifests/cilium-config/values.yaml:47 PAL-2031",
		// Alerts on metrics nobody exports; a mesh ConfigMap nobody reads.
		"manifests/monitoring/security-monitoring.yaml:46 PAL-3001",
		"manifests/monitoring/security-monitoring.yaml:62 PAL-3001",
		"manifests/monitoring/security-monitoring.yaml:70 PAL-3001",
		"manifests/monitoring/security-monitoring.yaml:124 PAL-3002",
		"manifests/performance/istio-performance-config.yaml:7 PAL-3010",
	} {
		if !at[k] {
			t.Errorf("missing %s", k)
		}
	}
	// policyEnforcementMode always cuts off each system namespace.
	for _, ns := range []string{"kube-system", "istio-system", "monitoring", "spire"} {
		found := false
		for _, f := range r.Findings {
			found = found || (f.ID == "PAL-2030" && strings.Contains(f.Message, "namespace "+ns+":"))
		}
		if !found {
			t.Errorf("no PAL-2030 for namespace %s", ns)
		}
	}
	// The metric names are named and corrected.
	for _, s := range []string{"istio_request_total", "cilium_policy_verdict_total", "istio_cert_expiry_seconds"} {
		found := false
		for _, f := range r.Findings {
			found = found || (f.ID == "PAL-3001" && strings.Contains(f.Message, s))
		}
		if !found {
			t.Errorf("no PAL-3001 names %s", s)
		}
	}
}

// TestReferenceSystemFixed lints the corrected copy: nothing to report.
func TestLintReferenceSystemFixed(t *testing.T) {
	r, err := Run(Input{Paths: []string{"../../examples/reference-system-fixed"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Findings {
		t.Errorf("%s:%d %s %s: %s", f.Source.File, f.Source.Line, f.ID, f.Object, f.Message)
	}
}

// TestEveryCheckIsTested requires a case with a "# want" marker for every
// check of the catalogue, and every ID in a marker to be in it.
func TestLintEveryCheckIsTested(t *testing.T) {
	src, err := os.ReadFile("checks_test.go")
	if err != nil {
		t.Fatal(err)
	}
	tested := map[string]bool{}
	for _, m := range regexp.MustCompile(`# want ((?:PAL-\d{4}\s*)+)`).FindAllStringSubmatch(string(src), -1) {
		for _, id := range strings.Fields(m[1]) {
			tested[id] = true
		}
	}
	// PAL-3002's line inside JSON is also checked by TestDashboardLine.
	for _, r := range Rules {
		if !tested[r.ID] {
			t.Errorf("%s (%s) has no test case", r.ID, r.Name)
		}
		delete(tested, r.ID)
	}
	for id := range tested {
		t.Errorf("%s is tested but not in the catalogue", id)
	}
	seen := map[string]bool{}
	for _, r := range Rules {
		if seen[r.ID] || !regexp.MustCompile(`^PAL-\d{4}$`).MatchString(r.ID) || r.Name == "" || r.Short == "" {
			t.Errorf("bad catalogue entry %+v", r)
		}
		seen[r.ID] = true
	}
}
