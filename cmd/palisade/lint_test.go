package main

import (
	"encoding/json"
	"strings"
	"testing"
)

const fixedExample = "../../examples/reference-system-fixed"

func TestLintText(t *testing.T) {
	out, stderr, code := run(t, "", "lint", "-f", example)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (errors found); stderr %s", code, stderr)
	}
	for _, want := range []string{
		// Grouped by file: the file alone on a line, then its findings.
		"\n" + example + "/manifests/security/authorization-policies.yaml\n",
		example + "/manifests/security/authorization-policies.yaml:11 error PAL-1010: AuthorizationPolicy production/deny-all: ALLOW rule 0 matches only requests without a peer identity",
		"      why: ",
		"      fix: For a default deny, write an ALLOW policy without rules",
		"PAL-2010: CiliumNetworkPolicy production/external-api-egress-policy: toFQDNs api.stripe.com never matches",
		"PAL-3001: ConfigMap monitoring/security-monitoring-config: alert UnauthorizedServiceAccess (data key zero-trust-alerts.yml) queries istio_request_total",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q", want)
		}
	}
	if !strings.Contains(out, "error(s),") {
		t.Errorf("no summary line:\n%s", out)
	}
}

func TestLintFixedIsClean(t *testing.T) {
	out, _, code := run(t, "", "lint", "-f", fixedExample)
	if code != 0 || strings.TrimSpace(out) != "0 error(s), 0 warning(s), 0 info" {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	out, _, code = run(t, "", "validate", "-f", fixedExample)
	if code != 0 || !strings.HasPrefix(out, "0 error(s), 0 warning(s)") {
		t.Fatalf("validate: exit %d:\n%s", code, out)
	}
}

func TestLintJSON(t *testing.T) {
	out, _, code := run(t, "", "lint", "-o", "json", "-f", example)
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	var r struct {
		Findings []struct {
			ID       string `json:"id"`
			Severity string `json:"severity"`
			Source   struct {
				File     string `json:"file"`
				Line     int    `json:"line"`
				Document int    `json:"document"`
			} `json:"source"`
			Object, Message, Explanation, Fix string
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(r.Findings) == 0 {
		t.Fatal("no findings")
	}
	for _, f := range r.Findings {
		if !strings.HasPrefix(f.ID, "PAL-") || f.Source.File == "" || f.Source.Line == 0 || f.Source.Document == 0 ||
			f.Message == "" || f.Explanation == "" || f.Fix == "" ||
			(f.Severity != "error" && f.Severity != "warning" && f.Severity != "info") {
			t.Errorf("incomplete finding %+v", f)
		}
	}
	// The minimum severity filters, and the exit status follows the errors.
	out, _, code = run(t, "", "lint", "-o", "json", "--min-severity", "error", "-f", example)
	if code != 1 || strings.Contains(out, `"warning"`) {
		t.Errorf("--min-severity error: exit %d, warnings in output", code)
	}
	out, _, code = run(t, "", "lint", "-o", "json", "-f", fixedExample)
	if code != 0 || strings.TrimSpace(out) != "{\n  \"findings\": []\n}" {
		t.Errorf("fixed: exit %d: %s", code, out)
	}
}

func TestLintSARIF(t *testing.T) {
	out, _, code := run(t, "", "lint", "-o", "sarif", "-f", example)
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	var log struct {
		Version string `json:"version"`
		Schema  string `json:"$schema"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string `json:"name"`
					Rules []struct {
						ID               string `json:"id"`
						ShortDescription struct {
							Text string `json:"text"`
						} `json:"shortDescription"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				RuleIndex int    `json:"ruleIndex"`
				Level     string `json:"level"`
				Message   struct {
					Text string `json:"text"`
				} `json:"message"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct {
							URI string `json:"uri"`
						} `json:"artifactLocation"`
						Region struct {
							StartLine int `json:"startLine"`
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(out), &log); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if log.Version != "2.1.0" || len(log.Runs) != 1 || log.Runs[0].Tool.Driver.Name != "palisade" {
		t.Fatalf("not a SARIF 2.1.0 log of palisade: %.300s", out)
	}
	rules := log.Runs[0].Tool.Driver.Rules
	if len(rules) == 0 {
		t.Fatal("no rules")
	}
	for _, res := range log.Runs[0].Results {
		loc := res.Locations[0].PhysicalLocation
		if res.RuleIndex >= len(rules) || rules[res.RuleIndex].ID != res.RuleID || rules[res.RuleIndex].ShortDescription.Text == "" {
			t.Errorf("result %s does not point at its rule", res.RuleID)
		}
		if res.Level != "error" && res.Level != "warning" && res.Level != "note" {
			t.Errorf("level %q", res.Level)
		}
		// URIs are relative to the working directory, as code scanning
		// wants them for files in the repository.
		if strings.HasPrefix(loc.ArtifactLocation.URI, "/") || !strings.HasPrefix(loc.ArtifactLocation.URI, "../../examples/reference-system/") ||
			loc.Region.StartLine == 0 || res.Message.Text == "" {
			t.Errorf("result %+v", res)
		}
	}
}

func TestLintStdinAndBadInput(t *testing.T) {
	policy := "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a, namespace: b}\nspec:\n  rules:\n    - from: [{source: {notPrincipals: ['*']}}]\n"
	out, _, code := run(t, policy, "lint", "-f", "-")
	if code != 1 || !strings.Contains(out, "<stdin>:6 error PAL-1010") {
		t.Errorf("stdin: exit %d:\n%s", code, out)
	}
	for _, args := range [][]string{
		{"lint"},
		{"lint", "-f", example, "-o", "yaml"},
		{"lint", "-f", example, "--min-severity", "fatal"},
		{"lint", "-f", "/does/not/exist"},
		{"lint", "-f", example, "--cilium-values", "/does/not/exist"},
	} {
		if _, stderr, code := run(t, "", args...); code != 2 || stderr == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 with a message", args, code, stderr)
		}
	}
}
