package engine

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/palisade-security/palisade/internal/config"
)

type e2eCase struct {
	Name     string `yaml:"name"`
	Cite     string `yaml:"cite"`
	Policies string `yaml:"policies"`
	Port     uint16 `yaml:"port"`
	Protocol string `yaml:"protocol"`
	Default  bool   `yaml:"default"`
	Expect   []struct {
		From    string `yaml:"from"`
		To      string `yaml:"to"`
		Allowed bool   `yaml:"allowed"`
	} `yaml:"expect"`
}

// e2eModel is the e2e tests' cluster: namespaces x, y, z with pods a, b, c
// serving on 80 and 81 over TCP and UDP.
func e2eModel() string {
	var b strings.Builder
	for ni, ns := range []string{"x", "y", "z"} {
		fmt.Fprintf(&b, "apiVersion: v1\nkind: Namespace\nmetadata: {name: %s, labels: {ns: %s}}\n---\n", ns, ns)
		for pi, pod := range []string{"a", "b", "c"} {
			fmt.Fprintf(&b, `apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: %s, labels: {pod: %s}}
spec:
  containers:
  - name: c
    ports:
    - {name: serve-80-tcp, containerPort: 80}
    - {name: serve-81-tcp, containerPort: 81}
    - {name: serve-80-udp, containerPort: 80, protocol: UDP}
    - {name: serve-81-udp, containerPort: 81, protocol: UDP}
status: {podIP: 10.0.%d.%d}
---
`, pod, ns, pod, ni+1, pi+1)
		}
	}
	return b.String()
}

func matchPattern(pattern, pod string) bool {
	if pattern == "" || pattern == "*" {
		return true
	}
	pns, pname, _ := strings.Cut(pattern, "/")
	ns, name, _ := strings.Cut(pod, "/")
	return (pns == "*" || pns == ns) && (pname == "*" || pname == name)
}

// TestNetworkPolicyE2E runs the ported Kubernetes e2e network policy cases
// through Check, the engine behind `palisade check`, on every pair of pods.
func TestNetworkPolicyE2E(t *testing.T) {
	data, err := os.ReadFile("testdata/netpol-e2e.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []e2eCase `yaml:"cases"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) < 25 {
		t.Fatalf("only %d cases", len(file.Cases))
	}
	var pods []string
	for _, ns := range []string{"x", "y", "z"} {
		for _, p := range []string{"a", "b", "c"} {
			pods = append(pods, ns+"/"+p)
		}
	}
	for _, c := range file.Cases {
		t.Run(c.Name, func(t *testing.T) {
			var policies []struct {
				Namespace string    `yaml:"namespace"`
				Name      string    `yaml:"name"`
				Spec      yaml.Node `yaml:"spec"`
			}
			if err := yaml.Unmarshal([]byte(c.Policies), &policies); err != nil {
				t.Fatal(err)
			}
			docs := e2eModel()
			for _, p := range policies {
				spec, err := yaml.Marshal(&p.Spec)
				if err != nil {
					t.Fatal(err)
				}
				docs += fmt.Sprintf("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: %s, namespace: %s}\nspec:\n%s---\n", p.Name, p.Namespace, indentLines(string(spec)))
			}
			snap, errs := config.Parse("e2e.yaml", []byte(docs))
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			e := New(snap, Options{Keys: keys{}})
			if len(e.Rejected) > 0 {
				t.Fatalf("rejected: %+v", e.Rejected)
			}
			var wrong []string
			for _, from := range pods {
				for _, to := range pods {
					if from == to {
						continue // ignoreLoopback
					}
					want := c.Default
					for _, x := range c.Expect {
						if matchPattern(x.From, from) && matchPattern(x.To, to) {
							want = x.Allowed
						}
					}
					fw, _ := snap.Inventory.Workload(from)
					tw, _ := snap.Inventory.Workload(to)
					v, err := e.Check(Request{From: fw, To: tw, Port: c.Port, Transport: c.Protocol})
					if err != nil {
						t.Fatal(err)
					}
					if v.Allowed != want {
						wrong = append(wrong, fmt.Sprintf("%s -> %s: allowed=%v, want %v (%s: %s)", from, to, v.Allowed, want, v.DecidedBy.Layer, v.DecidedBy.Reason))
					}
				}
			}
			if len(wrong) > 0 {
				t.Errorf("e2e %q:\n%s", c.Cite, strings.Join(wrong, "\n"))
			}
		})
	}
}

func indentLines(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = "  " + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}
