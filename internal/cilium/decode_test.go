package cilium

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	sigsjson "sigs.k8s.io/json"
)

// decodeStrict decodes a rule the way the loader does: sigs.k8s.io/json,
// case-sensitive, unknown and duplicate fields reported.
func decodeStrict(t *testing.T, doc string) (*Rule, error) {
	t.Helper()
	var r Rule
	strict, err := sigsjson.UnmarshalStrict([]byte(doc), &r)
	if err != nil {
		return nil, err
	}
	if len(strict) > 0 {
		return nil, errors.Join(strict...)
	}
	return &r, nil
}

// TestDecodePreservesPresence checks that both decoders keep absent/null
// lists nil and "[]" lists non-nil, the distinction RulesToPolicyEntries and
// mergeEndpointSelectors depend on (policyentry.go: "Nil selects nothing.
// Non-nil but empty L3 is implicitly treated as a wildcard selector if any
// L4 PortRules are also specified"; rule.go: "If omitted or empty, this rule
// does not apply at ingress").
func TestDecodePreservesPresence(t *testing.T) {
	const doc = `{
		"endpointSelector": {},
		"ingress": [],
		"egress": [{}, {"toEntities": []}, {"toEndpoints": [{}], "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}], "rules": {"http": []}}]}],
		"egressDeny": null
	}`
	decoders := map[string]func([]byte, any) error{
		"encoding/json": json.Unmarshal,
		"sigs.k8s.io/json strict": func(b []byte, v any) error {
			strict, err := sigsjson.UnmarshalStrict(b, v)
			if err != nil {
				return err
			}
			return errors.Join(strict...)
		},
	}
	for name, decode := range decoders {
		t.Run(name, func(t *testing.T) {
			var r Rule
			if err := decode([]byte(doc), &r); err != nil {
				t.Fatal(err)
			}
			checks := []struct {
				what      string
				got, want bool // got: is nil
			}{
				{"endpointSelector {} is non-nil", r.EndpointSelector == nil, false},
				{"nodeSelector absent is nil", r.NodeSelector == nil, true},
				{"ingress [] is non-nil", r.Ingress == nil, false},
				{"ingressDeny absent is nil", r.IngressDeny == nil, true},
				{"egressDeny null is nil", r.EgressDeny == nil, true},
				{"egress[0] {} has nil toEntities", r.Egress[0].ToEntities == nil, true},
				{"egress[0] {} has nil toEndpoints", r.Egress[0].ToEndpoints == nil, true},
				{"egress[1] toEntities [] is non-nil", r.Egress[1].ToEntities == nil, false},
				{"egress[2] rules.http [] is non-nil", r.Egress[2].ToPorts[0].Rules.HTTP == nil, false},
				{"egress[2] rules.dns absent is nil", r.Egress[2].ToPorts[0].Rules.DNS == nil, true},
				{"enableDefaultDeny.ingress absent is nil", r.EnableDefaultDeny.Ingress == nil, true},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s: nil=%v, want nil=%v", c.what, c.got, c.want)
				}
			}
			if len(r.Ingress) != 0 || len(r.Egress) != 3 || len(r.Egress[1].ToEntities) != 0 {
				t.Errorf("unexpected lengths: %+v", r)
			}
			if r.Egress[2].ToPorts[0].Rules.IsEmpty() {
				t.Error("rules with http: [] must not be empty (L7Rules.IsEmpty compares with nil)")
			}
		})
	}
}

// TestDecodeEnableDefaultDeny checks that an explicit false survives
// decoding (CFP-30572: nil means "derive from the rule").
func TestDecodeEnableDefaultDeny(t *testing.T) {
	r, err := decodeStrict(t, `{"endpointSelector":{},"egress":[{}],"enableDefaultDeny":{"egress":false},"log":{"value":"x"}}`)
	if err != nil {
		t.Fatal(err)
	}
	if r.EnableDefaultDeny.Egress == nil || *r.EnableDefaultDeny.Egress || r.EnableDefaultDeny.Ingress != nil {
		t.Errorf("enableDefaultDeny = %+v", r.EnableDefaultDeny)
	}
	if r.Log.Value != "x" {
		t.Errorf("log = %+v", r.Log)
	}
}

// TestDecodeEveryField decodes a rule using every field of the schema, so
// that a wrong json tag shows up as an unknown field.
func TestDecodeEveryField(t *testing.T) {
	const doc = `{
	  "endpointSelector": {"matchLabels": {"k8s:app": "a"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["x"]}]},
	  "labels": [{"key": "k", "value": "v", "source": "unspec"}],
	  "description": "d",
	  "enableDefaultDeny": {"ingress": true, "egress": false},
	  "log": {"value": "audit-me"},
	  "ingress": [
	    {"fromEndpoints": [{}], "fromRequires": [{}], "toPorts": [{"ports": [{"port": "80", "endPort": 90, "protocol": "TCP"}],
	      "terminatingTLS": {"secret": {"namespace": "n", "name": "s"}, "trustedCA": "ca", "certificate": "c", "privateKey": "k"},
	      "originatingTLS": {"secret": {"name": "s"}},
	      "serverNames": ["a.example.com"],
	      "rules": {"http": [{"path": "/", "method": "GET", "host": "h", "headers": ["X-A: b"],
	        "headerMatches": [{"name": "X-B", "value": "v", "mismatch": "LOG", "secret": {"namespace": "n", "name": "s"}}]}]}}],
	     "authentication": {"mode": "required"}},
	    {"fromCIDR": ["10.0.0.0/8"]},
	    {"fromCIDRSet": [{"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}, {"cidrGroupRef": "g"}, {"cidrGroupSelector": {"matchLabels": {"a": "b"}}}]},
	    {"fromEntities": ["world"]},
	    {"fromGroups": [{"aws": {"labels": {"a": "b"}, "securityGroupsIds": ["sg-1"], "securityGroupsNames": ["n"], "region": "r"}}]},
	    {"fromNodes": [{"matchLabels": {"node-role": "x"}}]},
	    {"icmps": [{"fields": [{"family": "IPv4", "type": 8}, {"family": "IPv6", "type": "EchoRequest"}]}]}
	  ],
	  "ingressDeny": [{"fromEntities": ["world"], "toPorts": [{"ports": [{"port": "22"}]}], "icmps": [{"fields": [{"type": 0}]}]}],
	  "egress": [
	    {"toEndpoints": [{}], "toRequires": [{}], "toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}], "rules": {"dns": [{"matchPattern": "*"}, {"matchName": "a.b"}]}}]},
	    {"toCIDR": ["0.0.0.0/0"]},
	    {"toCIDRSet": [{"cidr": "::/0"}]},
	    {"toEntities": ["kube-apiserver"]},
	    {"toServices": [{"k8sService": {"serviceName": "s", "namespace": "n"}}, {"k8sServiceSelector": {"selector": {"matchLabels": {"a": "b"}}, "namespace": "n"}}]},
	    {"toFQDNs": [{"matchName": "a.b"}, {"matchPattern": "*.b"}], "toPorts": [{"ports": [{"port": "443"}], "listener": {"envoyConfig": {"kind": "CiliumEnvoyConfig", "name": "cec"}, "name": "l", "priority": 5}}]},
	    {"toGroups": [{"aws": {"securityGroupsIds": ["sg-1"]}}]},
	    {"toNodes": [{}]},
	    {"toEndpoints": [{}], "toPorts": [{"ports": [{"port": "9092"}], "rules": {"kafka": [{"role": "produce", "apiKey": "", "apiVersion": "1", "clientID": "c", "topic": "t"}]}}]},
	    {"toEndpoints": [{}], "toPorts": [{"ports": [{"port": "9000"}], "rules": {"l7proto": "p", "l7": [{"k": "v"}]}}]},
	    {"icmps": [{"fields": [{"type": "8"}]}], "authentication": {"mode": "disabled"}}
	  ],
	  "egressDeny": [{"toCIDR": ["1.2.3.4/32"], "toPorts": [{"ports": [{"port": "80", "protocol": "UDP"}]}]}]
	}`
	r, err := decodeStrict(t, doc)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Egress[5].ToPorts[0].Listener; got == nil || got.Priority == nil || *got.Priority != 5 {
		t.Errorf("listener = %+v", got)
	}
	if got := r.Ingress[6].ICMPs[0].Fields[1].Type.StrVal; got != "EchoRequest" {
		t.Errorf("icmp type = %q", got)
	}
	// Round trip: encoding and decoding again gives the same rule.
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := decodeStrict(t, string(b))
	if err != nil {
		t.Fatalf("re-decoding %s: %v", b, err)
	}
	if !reflect.DeepEqual(r, r2) {
		t.Errorf("round trip changed the rule:\n%+v\n%+v", r, r2)
	}
}

// TestDecodeRejectsDenyL7AndFQDN checks that the parts the CRD does not
// have for deny rules are unknown fields (language.rst "Deny Policies": no
// L7 rules and no toFQDNs; PortDenyRule has ports only; egressDeny has no
// authentication), and that wrong field names are too.
func TestDecodeRejectsUnknownFields(t *testing.T) {
	for _, doc := range []string{
		`{"endpointSelector":{},"egressDeny":[{"toFQDNs":[{"matchName":"a.b"}]}]}`,
		`{"endpointSelector":{},"egressDeny":[{"toPorts":[{"ports":[{"port":"80"}],"rules":{"http":[{}]}}]}]}`,
		`{"endpointSelector":{},"ingressDeny":[{"toPorts":[{"ports":[{"port":"80"}],"rules":{"http":[{}]}}]}]}`,
		`{"endpointSelector":{},"egressDeny":[{"authentication":{"mode":"required"}}]}`,
		`{"endpointSelector":{},"ingress":[{"fromFQDNs":[{"matchName":"a.b"}]}]}`,
		`{"endpointSelector":{},"ingress":[{"fromPorts":[{"ports":[{"port":"80"}]}]}]}`, // cilium/cilium#8426
		`{"endpointSelector":{},"ingress":[{"FromEndpoints":[{}]}]}`,                    // case-sensitive
		`{"endpointSelector":{},"egress":[{"toFQDNs":[{"matchRegex":"x"}]}]}`,
		`{"endpointSelector":{},"egress":[{"toPorts":[{"ports":[{"port":80}]}]}]}`, // port is a string
		`{"endpointSelector":{},"ingress":[{}],"ingress":[{}]}`,                    // duplicate key
	} {
		if _, err := decodeStrict(t, doc); err == nil {
			t.Errorf("decoded without error: %s", doc)
		}
	}
}

// seedDir holds example manifests shared by the project's components.
const seedDir = "/work/shared/seed/manifests/network-policies"

// TestSeedManifests strictly decodes the spec of every CiliumNetworkPolicy
// in the seed manifests and validates it, comparing the problems with the
// ones Cilium reports for them.
func TestSeedManifests(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(seedDir, "*.yaml"))
	if len(files) == 0 {
		t.Skipf("no seed manifests in %s", seedDir)
	}
	// Expected problems per policy name. Only default-deny-all is
	// rejected: its ingress and egress are both empty lists, which pass
	// the CRD's anyOf but fail Rule.Validate in the agent
	// (rule_validation.go: "rule must have at least one of Ingress,
	// IngressDeny, Egress, EgressDeny"). Cilium would have ignored those
	// empty lists anyway: they create no entries, so no default-deny.
	want := map[string][]string{
		"default-deny-all": {"rule must have at least one of Ingress, IngressDeny, Egress, EgressDeny (empty lists do not count)"},
	}
	seen := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var obj map[string]any
			err := dec.Decode(&obj)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if obj == nil || obj["kind"] != "CiliumNetworkPolicy" {
				continue
			}
			name := obj["metadata"].(map[string]any)["name"].(string)
			specJSON, err := json.Marshal(obj["spec"])
			if err != nil {
				t.Fatalf("%s/%s: %v", f, name, err)
			}
			r, err := decodeStrict(t, string(specJSON))
			if err != nil {
				t.Errorf("%s/%s: strict decode: %v", filepath.Base(f), name, err)
				continue
			}
			seen++
			var got []string
			for _, p := range ValidateRule(r, true) {
				got = append(got, p.Msg)
			}
			if !slices.Equal(got, want[name]) {
				t.Errorf("%s/%s: problems\n got  %q\n want %q", filepath.Base(f), name, got, want[name])
			}
		}
	}
	if seen < 5 {
		t.Errorf("decoded only %d CiliumNetworkPolicies", seen)
	}
}

// TestParseHeaderRule checks the headers string format (reference notes
// §1.9, Envoy header matcher built by Cilium): split at the first space, a
// trailing ':' dropped from the name, the value matched exactly.
func TestParseHeaderRule(t *testing.T) {
	for _, c := range []struct {
		in, name, value string
		has             bool
	}{
		{"X-My-Header", "X-My-Header", "", false},
		{"X-My-Header: true", "X-My-Header", "true", true},
		{"X-My-Header true", "X-My-Header", "true", true},
		{"Authorization: Bearer .*", "Authorization", "Bearer .*", true},
		{"Content-Type: application/json", "Content-Type", "application/json", true},
		{": x", "", "x", true},
	} {
		name, value, has := ParseHeaderRule(c.in)
		if name != c.name || value != c.value || has != c.has {
			t.Errorf("ParseHeaderRule(%q) = %q, %q, %v", c.in, name, value, has)
		}
	}
	if !strings.Contains(Problem{Path: "a", Msg: "b", Warning: true}.String(), "warning: a: b") {
		t.Error("Problem.String")
	}
}
