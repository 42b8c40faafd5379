package analysis

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/engine"
)

// cluster generates a cluster shaped like a multi-team one: namespaces of
// 50 Deployments each (web, api, db and worker tiers, half with their own
// service account), a Service per Deployment, and ten policies per
// namespace mixing Kubernetes NetworkPolicy (default deny, same namespace,
// tiers), CiliumNetworkPolicy (egress by tier, L7 HTTP) and Istio
// AuthorizationPolicy (principals, namespaces, paths, DENY).
func cluster(namespaces int) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system, labels: {role: ingress}}\n---\n")
	tiers := []string{"web", "api", "db", "worker"}
	ports := map[string]string{
		"web":    "[{name: http, containerPort: 8080}]",
		"api":    "[{name: http, containerPort: 8080}, {name: grpc, containerPort: 9090}]",
		"db":     "[{name: tcp-postgres, containerPort: 5432}]",
		"worker": "[{name: http, containerPort: 9000}]",
	}
	for n := 0; n < namespaces; n++ {
		ns := fmt.Sprintf("team%d", n)
		fmt.Fprintf(&b, "apiVersion: v1\nkind: Namespace\nmetadata: {name: %s, labels: {team: %s}}\n---\n", ns, ns)
		for i := 0; i < 50; i++ {
			app := fmt.Sprintf("%s-a%d", ns, i)
			tier := tiers[i%4]
			sa := "default"
			if i%2 == 0 {
				sa = app
			}
			fmt.Fprintf(&b, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: %s, namespace: %s}\nspec:\n  template:\n    metadata: {labels: {app: %s, tier: %s, version: v%d}}\n    spec: {serviceAccountName: %s, containers: [{name: main, ports: %s}]}\n---\n",
				app, ns, app, tier, i%3, sa, ports[tier])
			fmt.Fprintf(&b, "apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s}\nspec:\n  selector: {app: %s}\n  ports: [{name: main, port: 80, targetPort: %s}]\n---\n",
				app, ns, app, map[string]string{"web": "8080", "api": "8080", "db": "5432", "worker": "9000"}[tier])
		}
		next := fmt.Sprintf("team%d", (n+1)%namespaces)
		policies := []string{
			"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: default-deny, namespace: %[1]s}\nspec: {podSelector: {}, policyTypes: [Ingress]}\n",
			"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: same-namespace, namespace: %[1]s}\nspec:\n  podSelector: {matchExpressions: [{key: tier, operator: In, values: [web, api, worker]}]}\n  ingress: [{from: [{podSelector: {}}]}]\n",
			"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db-from-api, namespace: %[1]s}\nspec:\n  podSelector: {matchLabels: {tier: db}}\n  ingress: [{from: [{podSelector: {matchLabels: {tier: api}}}], ports: [{port: 5432}]}]\n",
			"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web-from-ingress, namespace: %[1]s}\nspec:\n  podSelector: {matchLabels: {tier: web}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {role: ingress}}}, {namespaceSelector: {matchLabels: {team: %[2]s}}, podSelector: {matchLabels: {tier: web}}}]}]\n",
			"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a0-callers, namespace: %[1]s}\nspec:\n  selector: {matchLabels: {app: %[1]s-a0}}\n  rules: [{from: [{source: {principals: [cluster.local/ns/%[1]s/sa/%[1]s-a2, cluster.local/ns/%[1]s/sa/%[1]s-a4]}}]}]\n",
			"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: api-namespaces, namespace: %[1]s}\nspec:\n  selector: {matchLabels: {tier: api}}\n  rules: [{from: [{source: {namespaces: [%[1]s, %[2]s]}}], to: [{operation: {methods: [GET, POST]}}]}]\n",
			"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny-admin, namespace: %[1]s}\nspec:\n  action: DENY\n  rules: [{from: [{source: {notNamespaces: [%[1]s]}}], to: [{operation: {paths: [/admin*]}}]}]\n",
			"apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: web-egress, namespace: %[1]s}\nspec:\n  endpointSelector: {matchLabels: {tier: web}}\n  egress:\n  - toEndpoints: [{matchLabels: {tier: api}}]\n    toPorts: [{ports: [{port: \"8080\", protocol: TCP}]}]\n  - toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: %[2]s}}]\n",
			"apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: worker-jobs, namespace: %[1]s}\nspec:\n  endpointSelector: {matchLabels: {tier: worker}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: %[1]s-a1}}]\n    toPorts: [{ports: [{port: \"9000\", protocol: TCP}], rules: {http: [{method: GET, path: /jobs/.*}]}}]\n",
			"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a4-public, namespace: %[1]s}\nspec:\n  selector: {matchLabels: {app: %[1]s-a4}}\n  rules: [{to: [{operation: {paths: [/public/*]}}]}]\n",
		}
		for _, p := range policies {
			fmt.Fprintf(&b, p+"---\n", ns, next)
		}
	}
	return b.String()
}

func benchmarkReach(b *testing.B, namespaces int) {
	docs := cluster(namespaces)
	snap, errs := config.Parse("cluster.yaml", []byte(docs))
	if len(errs) > 0 {
		b.Fatal(errs[0])
	}
	e := engine.New(snap, engine.Options{})
	if len(e.Rejected) > 0 {
		b.Fatalf("rejected: %+v", e.Rejected[0])
	}
	var m *Matrix
	b.ResetTimer()
	for b.Loop() {
		m = Reach(e, ReachOptions{})
		m.Exposure()
	}
	b.StopTimer()
	pairs, allowed := m.Stats()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(len(m.Workloads)), "workloads")
	b.ReportMetric(float64(len(m.Classes)), "classes")
	b.ReportMetric(float64(pairs), "connections")
	b.ReportMetric(float64(allowed)/float64(pairs)*100, "%allowed")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heapMB")
}

// BenchmarkReach1k is 1,000 workloads and 200 policies; 10k is 10,000
// workloads and 2,000 policies.
func BenchmarkReach1k(b *testing.B)  { benchmarkReach(b, 20) }
func BenchmarkReach10k(b *testing.B) { benchmarkReach(b, 200) }

// BenchmarkReachEndToEnd10k is what `palisade exposure` does with the
// 10,000-workload cluster: parse and validate the YAML, compile, decide
// every pair and compute the exposure.
func BenchmarkReachEndToEnd10k(b *testing.B) {
	docs := []byte(cluster(200))
	b.SetBytes(int64(len(docs)))
	for b.Loop() {
		snap, errs := config.Parse("cluster.yaml", docs)
		if len(errs) > 0 {
			b.Fatal(errs[0])
		}
		Reach(engine.New(snap, engine.Options{}), ReachOptions{}).Exposure()
	}
}
