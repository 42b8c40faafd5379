package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDemo runs `palisade demo` as a user would, on the bundled example.
func TestDemo(t *testing.T) {
	state := t.TempDir()
	out, stderr, code := run(t, "", "demo", "--state-dir", state)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, stderr)
	}
	if !strings.Contains(out, "19 of 19 calls behaved on the wire as `palisade check` predicts.") {
		t.Errorf("output:\n%s", out)
	}
	for _, f := range []string{"routes.json", "logs/production.backend-api.access.log", "logs/production.postgres.flow.log"} {
		if st, err := os.Stat(filepath.Join(state, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestUpFollowsPolicyEdits runs `palisade up` on a copy of the corrected
// reference system, calls through a proxy, edits a policy file and sees the
// next requests decided by the new policy; then interrupts it.
func TestUpFollowsPolicyEdits(t *testing.T) {
	dir := t.TempDir()
	src := "../../examples/reference-system-fixed"
	if err := copyTree(src, filepath.Join(dir, "system")); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	cmd := exec.Command(binary, "up", "-f", filepath.Join(dir, "system"), "--state-dir", state)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var routes struct {
		Workloads []struct {
			Workload string
			Outbound map[string]string
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		data, err := os.ReadFile(filepath.Join(state, "routes.json"))
		if err == nil && json.Unmarshal(data, &routes) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no routes.json\n%s%s", stdout.String(), stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var addr string
	for _, w := range routes.Workloads {
		if w.Workload == "production/payment-processor" {
			addr = w.Outbound["production/payment-service:8080"]
		}
	}
	if addr == "" {
		t.Fatalf("no route payment-processor -> payment-service:8080 in %+v", routes)
	}
	post := func() int {
		resp, err := http.Post("http://"+addr+"/v1/refunds", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(); code != 403 {
		t.Fatalf("POST /v1/refunds before the edit: %d, want 403", code)
	}

	// Allow /v1/refunds too.
	path := filepath.Join(dir, "system", "manifests", "security", "authorization-policies.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(data), "paths: ['/v1/charges', '/v1/payments']", "paths: ['/v1/charges', '/v1/payments', '/v1/refunds']", 1)
	if edited == string(data) {
		t.Fatal("the policy to edit was not found")
	}
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	edit := time.Now()
	for post() != 200 {
		if time.Since(edit) > 10*time.Second {
			t.Fatalf("the edit was not enforced after 10s\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("edit enforced after %v", time.Since(edit).Round(time.Millisecond))

	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("up after SIGINT: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Error("up did not stop after SIGINT")
	}
}

func copyTree(src, dst string) error {
	return filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}
