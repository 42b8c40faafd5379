package validation

import (
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	securityv1beta1 "istio.io/api/security/v1beta1"
)

// FuzzAuthorizationPolicy decodes arbitrary JSON as an AuthorizationPolicy
// spec, as the loader would, and checks that validation never panics and
// always names a field and a message. The dry-run annotation value is fuzzed
// too, since it reaches strconv.ParseBool and the error text.
func FuzzAuthorizationPolicy(f *testing.F) {
	seeds := []string{
		`{}`,
		`{"action":"DENY"}`,
		`{"action":"DENY","rules":[]}`,
		`{"action":"CUSTOM","provider":{"name":"ext"},"rules":[{"from":[{"source":{"principals":["a"]}}],"when":[{"key":"source.namespace","values":["x"]}]}]}`,
		`{"selector":{"matchLabels":{"app":"a*","":"v"}},"targetRef":{"kind":"Gateway","name":"gw","namespace":"x"},"targetRefs":[{"group":"Bad.Group","kind":"-"}]}`,
		`{"rules":[{"from":[{}],"to":[{}],"when":[{}]}]}`,
		`{"rules":[{"from":[{"source":{}}],"to":[{"operation":{}}]}]}`,
		`{"rules":[{"from":[{"source":{"serviceAccounts":["a/b/c","/x","y/","*"],"namespaces":["n"],"trustDomains":["a*b*","x/y"],"ipBlocks":["1.2.3.4/33","010.0.0.1","::1%eth0"]}}]}]}`,
		`{"rules":[{"to":[{"operation":{"ports":["70000","+1",""],"paths":["/{**}/{*}","/a{b","/{*}//x","/{*}/?"]}}]}]}`,
		`{"action":"DENY","rules":[{"when":[{"key":"request.headers[","values":["v"]},{"key":"destination.port","notValues":["x"]},{"key":"experimental.envoy.filters.a[b]","values":[""]}]}]}`,
		`{"action":7,"provider":{}}`,
	}
	for _, s := range seeds {
		f.Add(s, "true")
	}
	f.Add(`{"action":"AUDIT"}`, "maybe")
	f.Fuzz(func(t *testing.T, doc, dryRun string) {
		var spec securityv1beta1.AuthorizationPolicy
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal([]byte(doc), &spec); err != nil {
			return
		}
		for _, meta := range [...]map[string]string{nil, {"istio.io/dry-run": dryRun}} {
			for _, p := range AuthorizationPolicy(testMeta(meta), &spec) {
				if p.Path == "" || p.Msg == "" {
					t.Fatalf("problem without path or message: %#v", p)
				}
			}
		}
		AuthorizationPolicy(nil, &spec)
	})
}
