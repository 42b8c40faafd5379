package config

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestErrorsNameFileDocumentAndLine checks that each kind of bad input is
// reported with the line it is on, and that one bad document does not hide
// the others.
func TestErrorsNameFileDocumentAndLine(t *testing.T) {
	cases := []struct {
		name string
		in   string
		doc  int
		line int
		msg  string
	}{
		{"unknown field in an Istio spec", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: foo}
spec:
  rules:
  - from:
    - source:
        principal: [a]
`, 1, 8, `spec.rules[0].from[0].source.principal: unknown field "principal" in Source`},
		{"wrong type in an Istio spec", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: foo}
spec:
  rules:
  - to:
    - operation:
        ports: [5432]
`, 1, 8, `spec.rules[0].to[0].operation.ports[0]: expected a string, got number 5432 (quote it)`},
		{"unknown enum value", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: foo}
spec:
  action: deny
`, 1, 5, `unknown value "deny" for Action`},
		{"duplicate key", `apiVersion: v1
kind: Namespace
metadata:
  name: a
  name: b
`, 1, 5, `duplicate key "name" (first at line 4)`},
		{"malformed YAML", "apiVersion: v1\nkind: Namespace\nmetadata: [a\n", 1, 3, "invalid YAML"},
		{"unknown field in a Kubernetes object", `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
      - name: web
        imagee: nginx
`, 1, 9, `unknown field "spec.template.spec.containers[0].imagee"`},
		{"wrong type in a Kubernetes object", `apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: web
    ports:
    - containerPort: "80"
`, 1, 8, "expected int32"},
		{"unknown top-level field", "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata: {name: p}\nspek: {}\n", 1, 4, `unknown field "spek"`},
		{"second document", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n# comment\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: a}\nspec:\n  mtls:\n    mode: STRICTER\n", 2, 11, `unknown value "STRICTER"`},
		{"unsupported version", "apiVersion: security.istio.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: p}\n", 1, 1, `unsupported apiVersion "security.istio.io/v1alpha1"`},
		{"missing kind", "apiVersion: v1\nmetadata: {name: p}\n", 1, 1, "no apiVersion or kind"},
		{"not a mapping", "- a\n- b\n", 1, 1, "expected a mapping"},
		{"duplicate object", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n", 2, 5, "defined twice; first definition at in.yaml:1 (document 1)"},
		{"duration form", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: a\n  trafficPolicy:\n    outlierDetection:\n      interval: 1m\n", 1, 8, `expected a duration in seconds`},
		{"alias bomb", "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: *f}\n", 1, 0, "more than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, errs := Parse("in.yaml", []byte(c.in))
			if len(errs) == 0 {
				t.Fatalf("no error, want %q", c.msg)
			}
			e := errs[0]
			if e.Source.File != "in.yaml" || e.Source.Doc != c.doc || (c.line > 0 && e.Source.Line != c.line) || !strings.Contains(e.Error(), c.msg) {
				t.Errorf("got %v (doc %d line %d)\nwant document %d line %d containing %q", e, e.Source.Doc, e.Source.Line, c.doc, c.line, c.msg)
			}
		})
	}
}

func TestEveryErrorIsReported(t *testing.T) {
	in := `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: a, namespace: x}
spec:
  foo: 1
  bar: 2
---
apiVersion: v1
kind: Namespace
metadata: [broken
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ok, namespace: x}
spec: {}
`
	snap, errs := Parse("in.yaml", []byte(in))
	if len(errs) != 3 {
		t.Fatalf("want 3 errors (two fields, one syntax), got %d: %v", len(errs), errs)
	}
	if len(snap.AuthorizationPolicies) != 1 || snap.AuthorizationPolicies[0].Meta.Name != "ok" {
		t.Errorf("the valid document after a broken one must load: %v", snap.AuthorizationPolicies)
	}
}

func TestInventory(t *testing.T) {
	in := `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web-sa
      containers:
      - name: web
        ports: [{containerPort: 8080, name: http}, {containerPort: 9090, protocol: UDP}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: shop, labels: {app: db}}
spec:
  containers: [{name: db, ports: [{containerPort: 5432}]}]
status:
  podIP: 10.0.0.7
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: report, namespace: shop}
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: r}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: shop, labels: {team: a}}
`
	snap, errs := Parse("inv.yaml", []byte(in))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	inv := snap.Inventory
	web, err := inv.Workload("shop/web")
	if err != nil {
		t.Fatal(err)
	}
	if web.ServiceAccount != "web-sa" || web.Labels["app"] != "web" || len(web.Ports) != 2 || web.Ports[1].Protocol != "UDP" {
		t.Errorf("web = %+v", web)
	}
	db, _ := inv.Workload("shop/db-0")
	if db == nil || db.ServiceAccount != "default" || len(db.IPs) != 1 || db.IPs[0].String() != "10.0.0.7" {
		t.Errorf("db = %+v", db)
	}
	if _, err := inv.Workload("shop/report"); err != nil {
		t.Error(err)
	}
	if svcs := inv.ServicesFor(web); len(svcs) != 1 || svcs[0].Ports[0].TargetName != "http" {
		t.Errorf("services for web = %v", svcs)
	}
	if ns := inv.Namespaces["shop"]; !ns.Declared || ns.Labels["team"] != "a" || ns.Labels["kubernetes.io/metadata.name"] != "shop" {
		t.Errorf("namespace = %+v", ns)
	}
	if _, err := inv.Workload("shop/nope"); err == nil || !strings.Contains(err.Error(), "namespace shop has") {
		t.Errorf("missing workload error = %v", err)
	}
}

func TestMeshConfig(t *testing.T) {
	snap, errs := Parse("mesh.yaml", []byte(`apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
metadata: {name: op, namespace: istio-system}
spec:
  profile: default
  meshConfig:
    rootNamespace: mesh-root
    trustDomain: example.org
    trustDomainAliases: [old.example.org]
    pathNormalization: {normalization: MERGE_SLASHES}
`))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	m := snap.Mesh
	if m.RootNamespace() != "mesh-root" || m.TrustDomain() != "example.org" || m.TrustDomainAliases()[0] != "old.example.org" || m.PathNormalization().String() != "MERGE_SLASHES" {
		t.Errorf("mesh = %v", m.Config)
	}
	snap, _ = Parse("none.yaml", nil)
	if snap.Mesh.RootNamespace() != "istio-system" || snap.Mesh.TrustDomain() != "cluster.local" {
		t.Errorf("defaults: %s %s", snap.Mesh.RootNamespace(), snap.Mesh.TrustDomain())
	}
	snap, errs = Parse("cm.yaml", []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |\n    trustDomain: td.example\n    rootNamespace: r\n"))
	if len(errs) > 0 || snap.Mesh.TrustDomain() != "td.example" || snap.Mesh.RootNamespace() != "r" {
		t.Errorf("ConfigMap mesh: %v %v", errs, snap.Mesh.Config)
	}
}

// TestSeedManifests loads the reference system's manifests: what istiod or
// the API server would reject is reported with its line, and the rest loads.
func TestSeedManifests(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "seed", "manifests")
	if _, err := os.Stat(dir); err != nil {
		t.Skip("seed manifests not present:", err)
	}
	snap, errs := Load([]string{dir}, nil)
	var got []string
	for _, e := range errs {
		got = append(got, filepath.Base(e.Source.File)+":"+strconv.Itoa(e.Source.Line)+": "+e.Msg)
	}
	want := []string{
		`production-config.yaml:88: spec.meshConfig.defaultConfig.proxyStatsMatcher.exclusionRegexps: unknown field "exclusionRegexps" in ProxyStatsMatcher`,
		`istio-performance-config.yaml:33: spec.trafficPolicy.connectionPool.tcp.keepAlive: unknown field "keepAlive" in TCPSettings`,
		`istio-performance-config.yaml:41: spec.trafficPolicy.connectionPool.http.consecutiveGatewayErrors: unknown field "consecutiveGatewayErrors" in HTTPSettings`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(snap.AuthorizationPolicies) != 7 || len(snap.PeerAuthentications) != 2 || len(snap.RequestAuthentications) != 1 || len(snap.DestinationRules) != 2 {
		t.Errorf("loaded %d AuthorizationPolicies, %d PeerAuthentications, %d RequestAuthentications, %d DestinationRules",
			len(snap.AuthorizationPolicies), len(snap.PeerAuthentications), len(snap.RequestAuthentications), len(snap.DestinationRules))
	}
}

// FuzzParse feeds arbitrary bytes to the loader: it must never panic, and
// every error must name the input.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a, namespace: b}\nspec:\n  rules:\n  - from:\n    - source: {principals: [x]}\n",
		"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, ports: [{containerPort: 80}]}]}\nstatus: {podIP: 10.0.0.1}\n",
		"a: &a [x]\nb: [*a, *a]\n",
		"---\n---\n- a\n",
		`{"apiVersion":"networking.istio.io/v1","kind":"DestinationRule","metadata":{"name":"d"},"spec":{"host":"h","trafficPolicy":{"tls":{"mode":"ISTIO_MUTUAL"}}}}`,
		"apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: x}}\n",
		"<<: *x\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio}\ndata: {mesh: \"rootNamespace: [\"}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, errs := Parse("fuzz.yaml", data)
		for _, e := range errs {
			if e.Source.File != "fuzz.yaml" || e.Msg == "" {
				t.Fatalf("error without a source or message: %#v", e)
			}
		}
	})
}

// TestDirectivesStayWithTheirDocument: a %YAML directive belongs to the
// document its "---" starts (YAML 1.2 §9.2), and line numbers after it
// are the file's.
func TestDirectivesStayWithTheirDocument(t *testing.T) {
	in := `apiVersion: v1
kind: Namespace
metadata: {name: a}
---
%YAML 1.1
---
apiVersion: v1
kind: Namespace
metadata: {name: b}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: b}
spec:
  unknown: 1
`
	snap, errs := Parse("in.yaml", []byte(in))
	if len(errs) != 1 || errs[0].Source.Line != 15 || errs[0].Source.Doc != 3 {
		t.Fatalf("want one error at line 15 of document 3, got %v", errs)
	}
	for _, ns := range []string{"a", "b"} {
		if n := snap.Inventory.Namespaces[ns]; n == nil || !n.Declared {
			t.Errorf("namespace %s not read", ns)
		}
	}
}
