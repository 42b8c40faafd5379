package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// binary is the palisade command built once for these tests, which run it
// as a user would: as a process, reading its exit status and output.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "palisade-cli")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "palisade")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const example = "../../examples/reference-system"

func run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestCheckExitStatusAndJSON(t *testing.T) {
	// The Istio layers alone, and the whole reference system.
	istio := []string{"-f", example + "/inventory.yaml", "-f", example + "/manifests/security"}
	all := []string{"-f", example}
	cases := []struct {
		name   string
		files  []string
		args   []string
		code   int
		status int
		layer  string
	}{
		{"allowed", istio, []string{"--from", "production/frontend", "--to", "production/backend-api", "--method", "GET", "--path", "/api/v1/users", "--header", "Authorization: Bearer x"}, 0, 200, "authz"},
		{"denied", istio, []string{"--from", "production/frontend", "--to", "production/backend-api", "--method", "GET", "--path", "/api/v1/users"}, 1, 403, "authz"},
		{"tcp denied", all, []string{"--from", "production/backend-api", "--to", "production/postgres"}, 1, 0, "authz"},
		{"refused", istio, []string{"--from", "ip:203.0.113.9", "--to", "production/frontend", "--port", "8080"}, 1, 0, "mtls"},
		{"l7 meets mTLS", all, []string{"--from", "production/frontend", "--to", "production/backend-api", "--method", "GET", "--path", "/api/v1/users"}, 1, 503, "l7"},
		{"egress to a name", all, []string{"--from", "production/payment-service", "--to", "fqdn:api.stripe.com", "--port", "443", "--resolved-ip", "198.51.100.7"}, 1, 0, "network-egress"},
		{"dropped at ingress", all, []string{"--from", "production/frontend", "--to", "kube-system/kube-dns", "--port", "53", "--protocol", "udp"}, 1, 0, "network-ingress"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append(append([]string{"check", "-o", "json"}, c.files...), c.args...)
			out, stderr, code := run(t, "", args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, c.code, stderr)
			}
			var v struct {
				Allowed   *bool `json:"allowed"`
				Status    *int  `json:"status"`
				DecidedBy struct {
					Layer string `json:"layer"`
				} `json:"decidedBy"`
			}
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("output is not one JSON object: %v\n%s", err, out)
			}
			if v.Allowed == nil || *v.Allowed != (c.code == 0) || v.Status == nil || *v.Status != c.status || v.DecidedBy.Layer != c.layer {
				t.Errorf("got %s", out)
			}
		})
	}
}

func TestCheckBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"check", "-f", example, "--from", "production/nope", "--to", "production/frontend"},
		{"check", "-f", example, "--from", "ip:not-an-ip", "--to", "production/frontend"},
		{"check", "-f", example, "--from", "production/frontend"},
		{"check", "-f", "/does/not/exist", "--from", "a/b", "--to", "a/c"},
		{"check", "-f", example, "--from", "production/frontend", "--to", "production/backend-api", "--header", "no colon", "--path", "/"},
		{"check", "-f", example, "--from", "production/frontend", "--to", "production/backend-api", "--strict"},
		{"check", "-f", example, "--from", "production/frontend", "--to", "production/backend-api", "-o", "yaml"},
		{"check", "-f", example, "--from", "production/frontend", "--to", "fqdn:api.stripe.com"},
		{"check", "-f", example, "--from", "production/frontend", "--to", "production/backend-api", "--protocol", "icmp"},
		{"check", "-f", example, "--from", "production/frontend", "--to", "production/backend-api", "--resolved-ip", "1.2.3.4"},
		{"validate"},
	} {
		if _, stderr, code := run(t, "", args...); code != 2 || stderr == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 with a message", args, code, stderr)
		}
	}
}

func TestValidate(t *testing.T) {
	out, _, code := run(t, "", "validate", "-f", example)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{
		"manifests/security/authorization-policies.yaml:55 (document 3): AuthorizationPolicy production/database-access: invalid `value` for `key` source.labels[version]: unknown attribute: source.labels[version]",
		"manifests/security/authorization-policies.yaml:78 (document 4): AuthorizationPolicy production/external-api-access: invalid `value` for `key` request.time: unknown attribute: request.time",
		"manifests/security/mtls-policy.yaml:16 (document 2): PeerAuthentication production/production-workloads: portLevelMtls requires selector",
		"manifests/istio-configuration/production-config.yaml:88 (document 1): IstioOperator istio-system/production-istio: spec.meshConfig.defaultConfig.proxyStatsMatcher.exclusionRegexps: unknown field",
		"manifests/network-policies/default-deny.yaml:7 (document 1): CiliumNetworkPolicy production/default-deny-all: rule must have at least one of Ingress, IngressDeny, Egress, EgressDeny",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	// A clean policy from stdin validates.
	out, _, code = run(t, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a, namespace: b}\nspec: {}\n", "validate", "-f", "-")
	if code != 0 || !strings.HasPrefix(out, "0 error(s)") {
		t.Errorf("exit %d: %s", code, out)
	}
}
