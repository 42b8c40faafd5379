package mtls

import (
	"fmt"
	"strings"
	"testing"

	"github.com/palisade-security/palisade/internal/config"
)

var workload = &config.Workload{Namespace: "foo", Name: "httpbin", Labels: map[string]string{"app": "httpbin"}}

// pa renders a PeerAuthentication; created is an RFC 3339 time or "".
func pa(ns, name, created, spec string) string {
	ts := ""
	if created != "" {
		ts = "\n  creationTimestamp: " + created
	}
	return fmt.Sprintf("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: %s\n  namespace: %s%s\nspec: %s\n---\n", name, ns, ts, spec)
}

func TestResolve(t *testing.T) {
	cases := []struct {
		name, cite, docs string
		port             uint32
		want             Mode
		level            Level
		from             string
	}{
		{name: "no policy", cite: "ComposePeerAuthentication starts from PERMISSIVE; TestComposePeerAuthentication 'no config'",
			want: Permissive, level: LevelDefault},
		{name: "mesh STRICT", cite: "TestComposePeerAuthentication 'mesh STRICT'",
			docs: pa("istio-system", "default", "", "{mtls: {mode: STRICT}}"), want: Strict, level: LevelMesh, from: "istio-system/default"},
		{name: "namespace overrides mesh", cite: "TestComposePeerAuthentication 'ns PERMISSIVE + mesh DISABLE'",
			docs: pa("istio-system", "default", "", "{mtls: {mode: DISABLE}}") + pa("foo", "ns", "", "{mtls: {mode: PERMISSIVE}}"), want: Permissive, level: LevelNamespace, from: "foo/ns"},
		{name: "an empty selector is namespace level", cite: "TestComposePeerAuthentication: selector {matchLabels: {}} counts as mesh/namespace level",
			docs: pa("foo", "ns", "", "{selector: {matchLabels: {}}, mtls: {mode: STRICT}}"), want: Strict, level: LevelNamespace, from: "foo/ns"},
		{name: "workload overrides namespace", cite: "concept page: the narrowest scope wins",
			docs: pa("foo", "ns", "", "{mtls: {mode: STRICT}}") + pa("foo", "wl", "", "{selector: {matchLabels: {app: httpbin}}, mtls: {mode: DISABLE}}"), want: Disable, level: LevelWorkload, from: "foo/wl"},
		{name: "a root namespace selector is ignored", cite: "ComposePeerAuthentication: a selector policy in the root namespace is ignored",
			docs: pa("istio-system", "sel", "", "{selector: {matchLabels: {app: httpbin}}, mtls: {mode: STRICT}}"), want: Permissive, level: LevelDefault},
		{name: "a non-matching selector", cite: "getConfigsForWorkload: selector must be a subset of the labels",
			docs: pa("foo", "wl", "", "{selector: {matchLabels: {app: other}}, mtls: {mode: STRICT}}"), want: Permissive, level: LevelDefault},
		{name: "UNSET inherits", cite: "TestComposePeerAuthentication 'mesh STRICT, ns UNSET, workload with no mtls'",
			docs: pa("istio-system", "default", "", "{mtls: {mode: STRICT}}") + pa("foo", "ns", "", "{mtls: {mode: UNSET}}") + pa("foo", "wl", "", "{selector: {matchLabels: {app: httpbin}}}"), want: Strict, level: LevelMesh, from: "istio-system/default"},
		{name: "mesh UNSET is PERMISSIVE", cite: "TestComposePeerAuthentication 'mesh UNSET'",
			docs: pa("istio-system", "default", "", "{mtls: {mode: UNSET}}"), want: Permissive, level: LevelDefault},
		{name: "oldest namespace policy wins", cite: "concept page: Istio ignores the newer policies; sortConfigByCreationTime",
			docs: pa("foo", "b-new", "2024-01-02T00:00:00Z", "{mtls: {mode: DISABLE}}") + pa("foo", "a-old", "2024-01-01T00:00:00Z", "{mtls: {mode: STRICT}}"), want: Strict, level: LevelNamespace, from: "foo/a-old"},
		{name: "equal times: the lower name wins", cite: "sortConfigByCreationTime: tie broken by name",
			docs: pa("foo", "zeta", "2024-01-01T00:00:00Z", "{mtls: {mode: DISABLE}}") + pa("foo", "alpha", "2024-01-01T00:00:00Z", "{mtls: {mode: STRICT}}"), want: Strict, level: LevelNamespace, from: "foo/alpha"},
		{name: "oldest workload policy wins", cite: "TestComposePeerAuthentication '3 workload policies'",
			docs: pa("foo", "new", "2024-01-02T00:00:00Z", "{selector: {matchLabels: {app: httpbin}}, mtls: {mode: DISABLE}}") + pa("foo", "old", "2024-01-01T00:00:00Z", "{selector: {matchLabels: {app: httpbin}}, mtls: {mode: PERMISSIVE}}"), want: Permissive, level: LevelWorkload, from: "foo/old"},
		{name: "port level", cite: "TestComposePeerAuthentication 'port level': 80 DISABLE",
			docs: pa("istio-system", "default", "", "{mtls: {mode: STRICT}}") + pa("foo", "wl", "", "{selector: {matchLabels: {app: httpbin}}, portLevelMtls: {80: {mode: DISABLE}, 90: {mode: UNSET}}}"),
			port: 80, want: Disable, level: LevelPort, from: "foo/wl"},
		{name: "port level UNSET inherits the workload mode", cite: "TestComposePeerAuthentication 'port level': 90 UNSET → STRICT",
			docs: pa("istio-system", "default", "", "{mtls: {mode: STRICT}}") + pa("foo", "wl", "", "{selector: {matchLabels: {app: httpbin}}, portLevelMtls: {80: {mode: DISABLE}, 90: {mode: UNSET}}}"),
			port: 90, want: Strict, level: LevelPort, from: "foo/wl"},
		{name: "other ports keep the workload mode", cite: "GetMutualTLSModeForPort: PerPort, else Mode",
			docs: pa("istio-system", "default", "", "{mtls: {mode: STRICT}}") + pa("foo", "wl", "", "{selector: {matchLabels: {app: httpbin}}, portLevelMtls: {80: {mode: DISABLE}}}"),
			port: 8000, want: Strict, level: LevelMesh, from: "istio-system/default"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			snap, errs := config.Parse("pa.yaml", []byte(c.docs))
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			p := Resolve(snap.PeerAuthentications, workload, "istio-system")
			mode, level, from := p.ForPort(c.port)
			got := ""
			if from != nil {
				got = from.Namespace + "/" + from.Name
			}
			if mode != c.want || level != c.level || got != c.from {
				t.Errorf("%s\ngot %s at %s level from %q, want %s at %s level from %q", c.cite, mode, level, got, c.want, c.level, c.from)
			}
		})
	}
}

func TestAccepts(t *testing.T) {
	// filterchain_options.go: STRICT chains match only TLS; PERMISSIVE adds
	// raw-buffer chains.
	for _, c := range []struct {
		m          Mode
		mtls, want bool
	}{{Strict, false, false}, {Strict, true, true}, {Permissive, false, true}, {Permissive, true, true}, {Disable, false, true}} {
		if got := c.m.Accepts(c.mtls); got != c.want {
			t.Errorf("%s.Accepts(mtls=%v) = %v", c.m, c.mtls, got)
		}
	}
	if !strings.Contains(Strict.String(), "STRICT") {
		t.Error(Strict.String())
	}
}
