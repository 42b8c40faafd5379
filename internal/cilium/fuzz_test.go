package cilium

import (
	"encoding/json"
	"testing"
)

// FuzzValidateRule decodes arbitrary JSON into a Rule and validates it as
// both a CNP and a CCNP; it must never panic. The seeds cover every
// section of the schema.
func FuzzValidateRule(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`null`,
		`{"endpointSelector":{},"ingress":[{}]}`,
		`{"nodeSelector":{"matchLabels":{"a":"b"}},"egress":[{"toPorts":[{"ports":[{"port":"53","protocol":"ANY"}],"rules":{"dns":[{"matchPattern":"**.x"}]}}]}]}`,
		`{"endpointSelector":{"matchExpressions":[{"key":"k8s:io.kubernetes.pod.namespace","operator":"In","values":["a"]}]},"ingress":[{"fromCIDRSet":[{"cidr":"10.0.0.0/8","except":["10.1.0.0/16","::/0"]}],"toPorts":[{"ports":[{"port":"0x1f","endPort":-3}],"rules":{"http":[{"path":"(","headers":[""],"headerMatches":[null,{"name":""}]}],"kafka":[{}],"l7proto":"x","l7":[{"":""}]},"listener":{"name":"l","priority":200},"serverNames":[],"terminatingTLS":{}}],"icmps":[{"fields":[{"type":"Echo","family":"IPv6"},{"type":-1}]}],"authentication":{"mode":"x"}}]}`,
		`{"endpointSelector":{},"egress":[{"toFQDNs":[{"matchName":"a","matchPattern":"*"}],"toServices":[{"k8sServiceSelector":{}}],"toCIDR":["1.2.3.4"],"toEntities":["world-ipv6"]}],"egressDeny":[{"toPorts":[{"ports":[{"port":"99999","protocol":"IGMP"}]}]}],"log":{"value":"\u0000"},"enableDefaultDeny":{"ingress":true}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Rule
		if json.Unmarshal(data, &r) != nil {
			return
		}
		ValidateRule(&r, true)
		ValidateRule(&r, false)
		for _, fq := range append([]FQDNSelector(nil), collectFQDNs(&r)...) {
			_, _ = CompileFQDNPattern(fq.MatchPattern)
			_, _ = CompileFQDNMatchName(fq.MatchName)
		}
	})
}

func collectFQDNs(r *Rule) []FQDNSelector {
	var out []FQDNSelector
	for _, e := range r.Egress {
		out = append(out, e.ToFQDNs...)
	}
	return out
}
