package main

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var istioOnly = []string{"-f", example + "/inventory.yaml", "-f", example + "/manifests/security"}

func TestReachOutputs(t *testing.T) {
	// JSON: the summary agrees with the connections listed.
	out, stderr, code := run(t, "", append([]string{"reach", "-o", "json"}, istioOnly...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc struct {
		Summary     struct{ Workloads, Connections, Allowed int }
		Connections []struct {
			From, To  string
			Port      int
			Allowed   bool
			StoppedAt string
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	allowed := 0
	for _, c := range doc.Connections {
		if c.Allowed {
			allowed++
			if c.StoppedAt != "" {
				t.Errorf("%+v: allowed with a layer", c)
			}
		} else if c.StoppedAt == "" {
			t.Errorf("%+v: denied without a layer", c)
		}
	}
	if doc.Summary.Workloads != 16 || len(doc.Connections) != doc.Summary.Connections || allowed != doc.Summary.Allowed {
		t.Errorf("summary %+v, listed %d connections, %d allowed", doc.Summary, len(doc.Connections), allowed)
	}
	// frontend reaches backend-api with some request (its ALLOW rules
	// need a token and a path, which the client chooses).
	find := func(from, to string) (bool, string) {
		for _, c := range doc.Connections {
			if c.From == from && c.To == to {
				return c.Allowed, c.StoppedAt
			}
		}
		t.Fatalf("%s -> %s not listed", from, to)
		return false, ""
	}
	if ok, layer := find("production/frontend", "production/backend-api"); !ok {
		t.Errorf("frontend -> backend-api denied at %s, want allowed", layer)
	}

	// A concrete request without the token is denied at authz.
	out, _, _ = run(t, "", append([]string{"reach", "-o", "csv", "--method", "GET", "--path", "/api/v1/users"}, istioOnly...)...)
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rows[0], ","); got != "from,to,port,verdict,stopped_at" {
		t.Errorf("csv header %q", got)
	}
	found := false
	for _, r := range rows[1:] {
		if r[0] == "production/frontend" && r[1] == "production/backend-api" {
			found = true
			if r[3] != "denied" || r[4] != "authz" {
				t.Errorf("frontend -> backend-api GET without a token: %v, want denied at authz", r)
			}
		}
	}
	if !found {
		t.Error("frontend -> backend-api missing from csv")
	}

	// dot lists only allowed edges; --only filters the table.
	out, _, _ = run(t, "", append([]string{"reach", "-o", "dot"}, istioOnly...)...)
	if !strings.HasPrefix(out, "digraph reach {") || !strings.Contains(out, `"production/frontend" -> "production/backend-api"`) {
		t.Errorf("dot output:\n%s", out)
	}
	out, _, _ = run(t, "", append([]string{"reach", "--only", "denied"}, istioOnly...)...)
	if strings.Contains(out, "  allowed  ") || !strings.Contains(out, "  denied  ") {
		t.Errorf("--only denied lists allowed connections:\n%s", out)
	}

	// With every manifest, Cilium's policyEnforcementMode: always cuts
	// every workload off (the reference system's mistake).
	out, _, _ = run(t, "", "reach", "-f", example, "--only", "allowed")
	if !strings.Contains(out, "0 of 306 connections allowed") {
		t.Errorf("whole reference system:\n%s", out)
	}
}

func TestReachBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"reach"},
		{"reach", "-f", example, "-o", "xml"},
		{"reach", "-f", example, "--by", "team"},
		{"reach", "-f", example, "--port", "70000"},
		{"reach", "-f", example, "--header", "nocolon"},
		{"reach", "-f", "/nonexistent"},
	} {
		_, stderr, code := run(t, "", args...)
		if code != exitBadInput || stderr == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 with a message", args, code, stderr)
		}
	}
}

func TestExposure(t *testing.T) {
	out, stderr, code := run(t, "", append([]string{"exposure", "-o", "json", "--top", "0"}, istioOnly...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc struct {
		Workloads, LateralPaths, DirectPaths, BaselinePaths int
		Reduction                                           float64
		BlastRadius                                         []struct {
			Workload                     string
			Direct, Transitive, Possible int
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	// 16 workloads, 15 of which listen on a TCP port (migration-job does
	// not): with no policy each reaches the 15 listeners but itself.
	if doc.BaselinePaths != 15*15 || len(doc.BlastRadius) != 16 {
		t.Fatalf("baseline %d, %d workloads listed", doc.BaselinePaths, len(doc.BlastRadius))
	}
	sumT, sumD, sumP := 0, 0, 0
	for i, w := range doc.BlastRadius {
		sumT += w.Transitive
		sumD += w.Direct
		sumP += w.Possible
		if w.Transitive > w.Possible {
			t.Errorf("%s reaches %d of %d", w.Workload, w.Transitive, w.Possible)
		}
		if w.Direct > w.Transitive {
			t.Errorf("%s reaches %d directly but %d transitively", w.Workload, w.Direct, w.Transitive)
		}
		if i > 0 && w.Transitive > doc.BlastRadius[i-1].Transitive {
			t.Errorf("not sorted by blast radius at %s", w.Workload)
		}
	}
	if sumT != doc.LateralPaths || sumD != doc.DirectPaths || sumP != doc.BaselinePaths {
		t.Errorf("paths %d/%d, per-workload sums %d/%d", doc.LateralPaths, doc.DirectPaths, sumT, sumD)
	}
	want := 1 - float64(doc.LateralPaths)/float64(doc.BaselinePaths)
	if doc.Reduction != want || doc.Reduction <= 0 || doc.Reduction >= 1 {
		t.Errorf("reduction %v, want %v", doc.Reduction, want)
	}
	out, _, _ = run(t, "", append([]string{"exposure", "--top", "3"}, istioOnly...)...)
	if !strings.HasPrefix(out, "Policies remove ") || strings.Count(out, "\n") != 6 {
		t.Errorf("text output:\n%s", out)
	}
}

func TestDiff(t *testing.T) {
	dir := t.TempDir()
	sec := example + "/manifests/security"
	entries, err := os.ReadDir(sec)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(sec, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inv := example + "/inventory.yaml"

	// The same policies: nothing changes, exit 0.
	out, stderr, code := run(t, "", "diff", sec, dir, "-f", inv)
	if code != 0 || !strings.Contains(out, "No connection changes verdict.") {
		t.Fatalf("unchanged: exit %d\n%s%s", code, out, stderr)
	}

	// A DENY of every request from the frontend's identity to
	// backend-api closes that path.
	deny := `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-frontend, namespace: production}
spec:
  selector: {matchLabels: {app: backend-api}}
  action: DENY
  rules:
  - from:
    - source: {principals: [cluster.local/ns/production/sa/frontend-service]}
`
	if err := os.WriteFile(filepath.Join(dir, "deny.yaml"), []byte(deny), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = run(t, "", "diff", sec, dir, "-f", inv, "-o", "json")
	if code != exitDenied {
		t.Fatalf("changed: exit %d\n%s%s", code, out, stderr)
	}
	var d struct {
		NowAllowed, NowDenied []struct {
			From, To       string
			Port           int
			StoppedAtAfter string
		}
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.NowAllowed) != 0 || len(d.NowDenied) == 0 {
		t.Fatalf("diff %+v", d)
	}
	for _, c := range d.NowDenied {
		// frontend and frontend-0 both run as frontend-service.
		if (c.From != "production/frontend" && c.From != "production/frontend-0") || c.To != "production/backend-api" || c.StoppedAtAfter != "authz" {
			t.Errorf("unexpected change %+v", c)
		}
	}
	if _, _, code := run(t, "", "diff", sec, "/nonexistent"); code != exitBadInput {
		t.Errorf("missing NEW: exit %d", code)
	}
}
