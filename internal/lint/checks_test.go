package lint

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// inventory is the workloads most cases lint against: web (HTTP, port
// 8080 behind Service port 80) and db (TCP: Service port tcp-db) in prod,
// and a client in its own namespace, so that a policy in prod does not make
// the client the one unprotected workload of its namespace.
const inventory = `apiVersion: v1
kind: Namespace
metadata: {name: prod}
---
apiVersion: v1
kind: Namespace
metadata: {name: clients}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: prod}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      containers: [{name: web, image: x, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: prod}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db, namespace: prod}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      serviceAccountName: db
      containers: [{name: db, image: x, ports: [{name: tcp, containerPort: 5432}]}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: prod}
spec:
  selector: {app: db}
  ports: [{name: tcp-db, port: 5432, targetPort: 5432}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client, namespace: clients}
spec:
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec:
      serviceAccountName: client
      containers: [{name: client, image: x, ports: [{name: http, containerPort: 8080}]}]
`

// strict is mesh-wide STRICT mTLS, so that ALLOW rules without an identity
// are not also reported as admitting plaintext (PAL-1011).
const strict = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
`

// dbAllow and webAllow let the client call db and web: with both, every
// workload of prod denies by default (no PAL-1041), each rule names an
// identity (no PAL-1011) and its ports (no PAL-1001, PAL-1040).
const dbAllow = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db, namespace: prod}
spec:
  selector: {matchLabels: {app: db}}
  rules:
    - from: [{source: {principals: [cluster.local/ns/clients/sa/client]}}]
      to: [{operation: {ports: ['5432']}}]
`

const webAllow = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web, namespace: prod}
spec:
  selector: {matchLabels: {app: web}}
  rules:
    - from: [{source: {principals: [cluster.local/ns/clients/sa/client]}}]
      to: [{operation: {ports: ['8080']}}]
`

// base is mesh-wide STRICT and the db policy; cases add web's.
const base = strict + "---\n" + dbAllow

// A case's files carry their expectations as comments: "# want PAL-1010"
// on a line means a finding with that ID on that line. The findings of a
// case must be exactly the wanted ones.
type lintCase struct {
	name  string
	files map[string]string
}

var wantMarker = regexp.MustCompile(`# want ((?:PAL-\d{4}\s*)+)`)

func runCase(t *testing.T, c lintCase) []Finding {
	t.Helper()
	dir := t.TempDir()
	want := map[string]bool{}
	var paths []string
	for name, text := range c.files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
		for i, line := range strings.Split(text, "\n") {
			if m := wantMarker.FindStringSubmatch(line); m != nil {
				for _, id := range strings.Fields(m[1]) {
					want[fmt.Sprintf("%s:%d %s", name, i+1, id)] = true
				}
			}
		}
	}
	sort.Strings(paths)
	r, err := Run(Input{Paths: paths})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range r.Findings {
		got[fmt.Sprintf("%s:%d %s", filepath.Base(f.Source.File), f.Source.Line, f.ID)] = true
		if f.Explanation == "" || f.Fix == "" || f.Message == "" {
			t.Errorf("%s: %s has no message, explanation or fix: %+v", c.name, f.ID, f)
		}
		if _, ok := RuleFor(f.ID); !ok {
			t.Errorf("%s: %s is not in the catalogue", c.name, f.ID)
		}
	}
	var missing, extra []string
	for k := range want {
		if !got[k] {
			missing = append(missing, k)
		}
	}
	for k := range got {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	if len(missing)+len(extra) > 0 {
		sort.Strings(missing)
		sort.Strings(extra)
		var all []string
		for _, f := range r.Findings {
			all = append(all, fmt.Sprintf("  %s:%d %s %s", filepath.Base(f.Source.File), f.Source.Line, f.ID, f.Message))
		}
		t.Errorf("%s:\nmissing %v\nunexpected %v\nall findings:\n%s", c.name, missing, extra, strings.Join(all, "\n"))
	}
	return r.Findings
}

// files builds a case's files: the inventory, then name/content pairs.
func files(kv ...string) map[string]string {
	m := map[string]string{"inventory.yaml": inventory}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestLintValidationChecks(t *testing.T) {
	for _, c := range []lintCase{
		{"PAL-0001 unknown field", files("p.yaml", strict+`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: a, namespace: prod}
spec:
  rulez: []  # want PAL-0001
`)},
		{"PAL-0002 unknown attribute", files("p.yaml", base+"---\n"+webAllow+`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: hours, namespace: prod}
spec:
  selector: {matchLabels: {app: web}}
  rules:
    - from: [{source: {principals: [cluster.local/ns/clients/sa/client]}}]
      when:
        - key: request.time  # want PAL-0002
          values: ['09:00:00']
`)},
		{"PAL-0003 DENY with only HTTP fields", files("p.yaml", base+"---\n"+webAllow+`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: d, namespace: prod}
spec:
  selector: {matchLabels: {app: web}}
  action: DENY
  rules:
    - to:  # want PAL-0003
        - operation:
            methods: [DELETE]
`)},
		{"PAL-0004 and PAL-2001 empty lists", files("n.yaml", `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c, namespace: clients}
spec:
  endpointSelector: {}  # want PAL-0004
  ingress: []  # want PAL-2001
  egress: []  # want PAL-2001
`)},
		{"PAL-0005 endPort on a named port", files("n.yaml", `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c, namespace: clients}
spec:
  endpointSelector: {}
  egress:
    - toPorts:
        - ports:
            - port: http
              endPort: 90  # want PAL-0005
              protocol: TCP
`)},
	} {
		t.Run(c.name, func(t *testing.T) { runCase(t, c) })
	}
}

func TestLintIstioChecks(t *testing.T) {
	for _, c := range []lintCase{
		{"PAL-1001 ALLOW with methods on a TCP port", files("p.yaml", strict+`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db, namespace: prod}
spec:
  rules:
    - from: [{source: {principals: [cluster.local/ns/clients/sa/client]}}]
      to:
        - operation:
            methods: [GET]  # want PAL-1001
`)},
		{"PAL-1001 DENY with paths reaches TCP ports", files("p.yaml", base+"---\n"+webAllow+`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: d, namespace: prod}
spec:
  action: DENY
  rules:
    - from: [{source: {namespaces: [clients]}}]  # want PAL-0003
      to:
        - operation:
            paths: [/admin]  # want PAL-1001
`)},
		{"PAL-1001 not for a rule limited to HTTP ports", files("p.yaml", base+`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web, namespace: prod}
spec:
  rules:
    - from: [{source: {principals: [cluster.local/ns/clients/sa/client]}}]
      to:
        - operation:
            ports: ['8080']
            methods: [GET]
`)},
		{"PAL-1002 hosts of another service", files("p.yaml", base+`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web, namespace: prod}
spec:
  selector: {matchLabels: {app: web}}
  rules:
    - from: [{source: {principals: [cluster.local/ns/clients/sa/client]}}]
      to:
        - operation:
            hosts: [api.stripe.com]  # want PAL-1002
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: own-host, namespace: prod}
spec:
  selector: {matchLabels: {app: web}}
  rules:
    - from: [{source: {principals: [cluster.local/ns/clients/sa/client]}}]
      to:
        - operation:
            hosts: [web.prod.svc.cluster.local, 'web:*']
`)},
		{"PAL-1003 header as a secret", files("p.yaml", base+"---\n"+webAllow+`      when:
        - key: request.headers[x-api-key]  # want PAL-1003
          values: ['s3cret-*']
`)},
		{"PAL-1004 Bearer pattern without RequestAuthentication", files("p.yaml", base+"---\n"+webAllow+`      when:
        - key: request.headers[authorization]  # want PAL-1004
          values: ['Bearer *']
`)},
		{"PAL-1004 not with a RequestAuthentication", files("p.yaml", base+"---\n"+webAllow+`      when:
        - key: request.headers[authorization]
          values: ['Bearer *']
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: prod}
spec:
  jwtRules: [{issuer: https://issuer.example, jwksUri: https://issuer.example/jwks}]
`)},
		{"PAL-1005 header as a rate limit", files("p.yaml", base+"---\n"+webAllow+`      when:
        - key: request.headers[x-request-count]  # want PAL-1005
          values: ['1', '2']
`)},
		{"PAL-1010 ALLOW only for unauthenticated clients", files("p.yaml", strict+`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: prod}
spec:
  rules:
    - from:
        - source:
            notPrincipals: ['*']  # want PAL-1010
`)},
		{"PAL-1011 ALLOW without identity under PERMISSIVE", files("p.yaml", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web, namespace: prod}
spec:
  selector: {matchLabels: {app: web}}
  rules:
    - to: [{operation: {ports: ['8080']}}]  # want PAL-1011
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db, namespace: prod}
spec:
  selector: {matchLabels: {app: db}}
  rules:
    - from: [{source: {principals: [cluster.local/ns/clients/sa/client]}}]
`)},
		{"PAL-1012 DENY on principals under PERMISSIVE", files("p.yaml", dbAllow+"---\n"+webAllow+`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: d, namespace: prod}
spec:
  selector: {matchLabels: {app: db}}
  action: DENY
  rules:
    - from: [{source: {namespaces: [clients]}}]  # want PAL-1012
`)},
		{"PAL-1014 JWT rule without RequestAuthentication", files("p.yaml", base+`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web, namespace: prod}
spec:
  selector: {matchLabels: {app: web}}
  rules:
    - from:
        - source:
            requestPrincipals: ['https://issuer.example/*']  # want PAL-1014
`)},
		{"PAL-1015 issuer no RequestAuthentication accepts", files("p.yaml", base+`---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: prod}
spec:
  selector: {matchLabels: {app: web}}
  jwtRules: [{issuer: https://issuer.example, jwksUri: https://issuer.example/jwks}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web, namespace: prod}
spec:
  selector: {matchLabels: {app: web}}
  rules:
    - from:
        - source:
            requestPrincipals: ['https://other.example/*']  # want PAL-1015
    - from:
        - source:
            requestPrincipals: ['https://issuer.example']  # want PAL-1015
`)},
		{"PAL-1020 selectors that select nothing", files("p.yaml", strict+`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: a, namespace: prod}
spec:
  selector:
    matchLabels: {app: wbe}  # want PAL-1020
  rules:
    - from: [{source: {principals: [cluster.local/ns/clients/sa/client]}}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: prod}
spec:
  selector:
    matchLabels: {app: api}  # want PAL-1020
  jwtRules: [{issuer: https://issuer.example, jwksUri: https://issuer.example/jwks}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: root-selector, namespace: istio-system}
spec:
  selector:
    matchLabels: {app: web}  # want PAL-1020
  mtls: {mode: DISABLE}
`)},
		{"PAL-1021 identities nobody has", files("p.yaml", base+`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: a, namespace: prod}
spec:
  selector: {matchLabels: {app: web}}
  rules:
    - from:
        - source:
            principals: [cluster.local/ns/clients/sa/clinet]  # want PAL-1021
    - from:
        - source:
            namespaces: [frontend]  # want PAL-1021
    - from:
        - source:
            principals: [spiffe://cluster.local/ns/clients/sa/client]  # want PAL-1021
    - from:
        - source:
            serviceAccounts: [clients/client]
`)},
		{"PAL-1030 ALLOW shadowed by DENY", files("p.yaml", strict+`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: prod}
spec:
  selector: {matchLabels: {app: web}}
  rules:
    - from: [{source: {principals: [cluster.local/ns/clients/sa/client]}}]  # want PAL-1030
      to: [{operation: {ports: ['8080'], methods: [DELETE], paths: [/admin/users]}}]
    - from: [{source: {principals: [cluster.local/ns/clients/sa/client]}}]
      to: [{operation: {ports: ['8080'], methods: [GET]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: prod}
spec:
  action: DENY
  rules:
    - to: [{operation: {paths: ['/admin/*'], ports: ['8080']}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db, namespace: prod}
spec:
  selector: {matchLabels: {app: db}}
  rules:
    - from: [{source: {principals: [cluster.local/ns/clients/sa/client]}}]
`)},
		{"PAL-1031 redundant rule", files("p.yaml", strict+`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: a, namespace: prod}
spec:
  rules:
    - from: [{source: {namespaces: [clients]}}]
      to: [{operation: {ports: ['8080', '5432']}}]
    - from: [{source: {namespaces: [clients], ipBlocks: [10.0.0.0/8]}}]  # want PAL-1031
      to: [{operation: {ports: ['8080']}}]
`)},
		{"PAL-1040 every operation on every workload", files("p.yaml", strict+`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: admin, namespace: prod}
spec:
  rules:
    - from: [{source: {principals: [cluster.local/ns/clients/sa/client]}}]  # want PAL-1040
      to: [{operation: {methods: [GET, POST, PUT, DELETE]}}]  # want PAL-1001
`)},
		{"PAL-1040 an empty rule", files("p.yaml", strict+`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: all, namespace: prod}
spec:
  selector: {matchLabels: {app: web}}
  rules:
    - {}  # want PAL-1040
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db, namespace: prod}
spec:
  selector: {matchLabels: {app: db}}
  rules:
    - from: [{source: {principals: [cluster.local/ns/clients/sa/client]}}]
`)},
		{"PAL-1041 a workload without ALLOW policy", map[string]string{
			"inventory.yaml": strings.Replace(inventory, "metadata: {name: db, namespace: prod}\nspec:\n  selector: {matchLabels: {app: db}}", "metadata: {name: db, namespace: prod}  # want PAL-1041\nspec:\n  selector: {matchLabels: {app: db}}", 1),
			"p.yaml": strict + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web, namespace: prod}
spec:
  selector: {matchLabels: {app: web}}
  rules:
    - from: [{source: {principals: [cluster.local/ns/clients/sa/client]}}]
`}},
	} {
		t.Run(c.name, func(t *testing.T) { runCase(t, c) })
	}
}

func TestLintIdentityRuleOnDisabledPort(t *testing.T) {
	// The marker cannot sit in the shared allowClient text, so this case
	// spells it out.
	runCase(t, lintCase{"PAL-1013", files("p.yaml", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-client, namespace: prod}
spec:
  rules:
    - from: [{source: {principals: [cluster.local/ns/clients/sa/client]}}]  # want PAL-1013
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: prod}
spec: {mtls: {mode: DISABLE}}
`)})
}

func TestLintNetworkChecks(t *testing.T) {
	for _, c := range []lintCase{
		{"PAL-2002 NetworkPolicy egress without Egress policy type", files("n.yaml", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: n, namespace: clients}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  ingress:
    - {}
  egress:
    - to: [{ipBlock: {cidr: 10.0.0.0/8}}]  # want PAL-2002
`)},
		{"PAL-2010 toFQDNs without a DNS rule", files("n.yaml", `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c, namespace: clients}
spec:
  endpointSelector: {}
  egress:
    - toFQDNs:
        - matchName: api.example.com  # want PAL-2010
      toPorts: [{ports: [{port: '443', protocol: TCP}]}]
`)},
		{"PAL-2010 not with a DNS rule", files("n.yaml", `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c, namespace: clients}
spec:
  endpointSelector: {}
  egress:
    - toFQDNs:
        - matchPattern: '*.example.com'
      toPorts: [{ports: [{port: '443', protocol: TCP}]}]
    - toEntities: [cluster]
      toPorts:
        - ports: [{port: '53', protocol: ANY}]
          rules:
            dns: [{matchPattern: '*'}]
`)},
		{"PAL-2011 L7 rules off the pod's port, DNS rules off 53", files("n.yaml", `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c, namespace: clients}
spec:
  endpointSelector: {}
  ingress:
    - fromEntities: [world]
      toPorts:
        - ports:
            - port: '80'  # want PAL-2011
              protocol: TCP
          rules:
            http: [{method: GET}]
  egress:
    - toEntities: [cluster]
      toPorts:
        - ports: [{port: '5353', protocol: UDP}]
          rules:
            dns:
              - matchPattern: '*'  # want PAL-2011
`)},
		{"PAL-2012 and PAL-2013 header regex on an mTLS port", files("n.yaml", `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: prod}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints:
        - matchLabels: {k8s:io.kubernetes.pod.namespace: clients, app: client}
      toPorts:
        - ports: [{port: '8080', protocol: TCP}]
          rules:
            http:
              - method: GET  # want PAL-2013
                headers:
                  - 'Authorization: Bearer .*'  # want PAL-2012
                  - 'Content-Type: application/json'
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: db, namespace: prod}
spec:
  endpointSelector: {matchLabels: {app: db}}
  ingress:
    - fromEntities: [cluster]
`)},
		{"PAL-2014 HTTP rules on port 443 without TLS interception", files("n.yaml", `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c, namespace: clients}
spec:
  endpointSelector: {}
  egress:
    - toCIDR: [203.0.113.0/24]
      toPorts:
        - ports: [{port: '443', protocol: TCP}]
          rules:
            http:
              - method: POST  # want PAL-2014
`)},
		{"PAL-2020 and PAL-2021 selectors that match nothing", files("n.yaml", `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c, namespace: clients}
spec:
  endpointSelector:
    matchLabels: {app: nobody}  # want PAL-2020
  ingress:
    - fromEndpoints:
        - matchLabels: {k8s:io.kubernetes.pod.namespace: istio-system, app: istio-proxy}  # want PAL-2021
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: n, namespace: clients}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Ingress]
  ingress:
    - from:
        - podSelector: {matchLabels: {app: ghost}}  # want PAL-2021
`)},
		{"PAL-2022 and PAL-2033 a peer Istio denies, a one-sided allow", files("p.yaml", strict+`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web, namespace: prod}
spec:
  rules:
    - from: [{source: {principals: [cluster.local/ns/prod/sa/web]}}]
      to: [{operation: {ports: ['8080', '5432']}}]
`, "n.yaml", `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: prod}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints:  # want PAL-2022
        - matchLabels: {k8s:io.kubernetes.pod.namespace: clients, app: client}
      toPorts: [{ports: [{port: '8080', protocol: TCP}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client, namespace: clients}
spec:
  endpointSelector: {}
  egress:
    - toEndpoints:  # want PAL-2033
        - matchLabels: {k8s:io.kubernetes.pod.namespace: prod, app: db}
      toPorts: [{ports: [{port: '5432', protocol: TCP}]}]
    - toEndpoints:
        - matchLabels: {k8s:io.kubernetes.pod.namespace: prod, app: web}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: db, namespace: prod}
spec:
  endpointSelector: {matchLabels: {app: db}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: web}}]
`)},
		{"PAL-2032 a workload outside the namespace's default deny", map[string]string{
			"inventory.yaml": strings.Replace(inventory, "metadata: {name: db, namespace: prod}\nspec:\n  selector: {matchLabels: {app: db}}", "metadata: {name: db, namespace: prod}  # want PAL-2032\nspec:\n  selector: {matchLabels: {app: db}}", 1),
			"n.yaml": `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: prod}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEntities: [cluster]
`}},
	} {
		t.Run(c.name, func(t *testing.T) { runCase(t, c) })
	}
}

func TestLintCiliumValuesChecks(t *testing.T) {
	runCase(t, lintCase{"PAL-2030 and PAL-2031", files("values.yaml", `cluster:
  name: prod
kubeProxyReplacement: strict  # want PAL-2031
policyEnforcementMode: always  # want PAL-2030 PAL-2030
identityGCInterval: 15m0s  # want PAL-2031
bandwidthManager: true  # want PAL-2031
`, "n.yaml", `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: prod}
spec:
  endpointSelector: {}
  ingress:
    - fromEntities: [world]
`)})
	// The same values with the chart's current forms are clean.
	runCase(t, lintCase{"clean values", files("values.yaml", `kubeProxyReplacement: true
policyEnforcementMode: default
operator: {identityGCInterval: 15m0s}
bandwidthManager: {enabled: true}
`)})
}

func TestLintTelemetryChecks(t *testing.T) {
	for _, c := range []lintCase{
		{"PAL-3001 and PAL-3002 in ConfigMaps", files("m.yaml", `apiVersion: v1
kind: ConfigMap
metadata: {name: rules, namespace: monitoring}
data:
  alerts.yml: |
    groups:
      - name: g
        rules:
          - alert: Denied
            expr: increase(cilium_policy_verdict_total{verdict="DENIED"}[5m]) > 0  # want PAL-3001
          - alert: Forbidden
            expr: |
              sum by (destination_service_name) (
                rate(istio_requests_total{response_code="403"}[5m])
              ) / sum(rate(istio_request_total[5m])) > 0.1  # want PAL-3001
          - record: job:denied:rate5m
            expr: sum(rate(hubble_policy_verdicts_total{action="dropped"}[5m]))
          - alert: Fine
            expr: job:denied:rate5m > 1 and on() histogram_quantile(0.9, sum by (le) (rate(istio_request_duration_milliseconds_bucket[5m]))) > 100 unless up == 0
---
apiVersion: v1
kind: ConfigMap
metadata: {name: dash, namespace: monitoring}
data:
  board.json: |
    {"panels": [{"targets": [
      {"expr": "(istio_cert_expiry_seconds - time()) / 86400"},  # want PAL-3002
      {"expr": "sum(rate(node_cpu_seconds_total[5m]))"}
    ]}]}
`)},
		{"PAL-3001 in a PrometheusRule and a rule file", files("rule.yaml", `apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: r, namespace: monitoring}
spec:
  groups:
    - name: g
      rules:
        - alert: A
          expr: hubble_policy_verdict_total > 0  # want PAL-3001
`, "alerts.yml", `groups:
  - name: g
    rules:
      - alert: B
        expr: cilium_drop_count_total{reason="Policy denied"} > 0 or cilium_policy_verdicts_total > 0  # want PAL-3001
`)},
		{"PAL-3010 mesh config in a ConfigMap istiod does not read", files("m.yaml", `apiVersion: v1
kind: ConfigMap
metadata: {name: istio-tuning, namespace: istio-system}
data:
  mesh: |  # want PAL-3010
    defaultConfig: {concurrency: 2}
`)},
	} {
		t.Run(c.name, func(t *testing.T) { runCase(t, c) })
	}
}

// TestDashboardLine checks the line of a finding inside a JSON dashboard,
// which the markers cannot carry.
func TestLintDashboardLine(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.yaml")
	text := `apiVersion: v1
kind: ConfigMap
metadata: {name: dash, namespace: monitoring}
data:
  board.json: |
    {"panels": [{"targets": [
      {"expr": "sum(rate(istio_requests_total[5m]))"},
      {"expr": "(istio_cert_expiry_seconds - time()) / 86400"}
    ]}]}
`
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Run(Input{Paths: []string{p}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Findings) != 1 || r.Findings[0].ID != "PAL-3002" || r.Findings[0].Source.Line != 8 {
		t.Fatalf("want one PAL-3002 on line 8, got %+v", r.Findings)
	}
}

func TestLintMetricNames(t *testing.T) {
	for expr, want := range map[string]string{
		`increase(cilium_policy_verdict_total{verdict="DENIED"}[5m]) > 0`:                    "cilium_policy_verdict_total",
		`sum by (source, destination) (rate(x_total{a="b"}[5m]))`:                            "x_total",
		`(istio_cert_expiry_seconds - time()) / 86400 < 7`:                                   "istio_cert_expiry_seconds",
		`a / on(job) group_left(instance) b offset 5m`:                                       "a b",
		`{__name__="foo_total", job="x"} or bar`:                                             "foo_total bar",
		`rate(http_requests_total[$__rate_interval]) * 1e3 > bool 2 and vector(1)`:           "http_requests_total",
		`label_join(sum(up{job="a b"}), "dst", ".", "x", "y")`:                               "up",
		`histogram_quantile(0.99, sum without (pod) (rate(m_bucket{le!="+Inf"}[1m]))) > inf`: "m_bucket",
	} {
		var got []string
		for _, m := range metricNames(expr) {
			got = append(got, m.name)
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%s: got %v, want %s", expr, got, want)
		}
	}
}
