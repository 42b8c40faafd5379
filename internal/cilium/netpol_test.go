package cilium

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	sigsjson "sigs.k8s.io/json"
)

// TestValidateNetworkPolicy encodes the API server's rules for
// networking.k8s.io/v1 NetworkPolicy (kubernetes
// pkg/apis/networking/validation/validation.go and its tests).
func TestValidateNetworkPolicy(t *testing.T) {
	for _, c := range []struct {
		name, src, doc string
		want           []Problem
	}{
		{"default deny", "validation_test.go TestValidateNetworkPolicy success cases",
			`{"podSelector":{},"policyTypes":["Ingress","Egress"]}`, nil},
		{"full valid policy", "validation_test.go success cases (ports, endPort, peers, ipBlock)",
			`{"podSelector":{"matchLabels":{"app":"db"}},"ingress":[{"from":[{"podSelector":{}},{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"x"}},"podSelector":{"matchExpressions":[{"key":"a","operator":"Exists"}]}},{"ipBlock":{"cidr":"10.0.0.0/8","except":["10.1.0.0/16"]}}],
			  "ports":[{"port":80},{"protocol":"UDP","port":"dns"},{"protocol":"SCTP","port":3000,"endPort":3100},{}]}],
			  "egress":[{"to":[{"ipBlock":{"cidr":"::/0"}}]},{}],"policyTypes":["Egress"]}`, nil},
		{"protocol", `ValidateNetworkPolicyPort: field.NotSupported(protocol, TCP/UDP/SCTP)`,
			`{"podSelector":{},"ingress":[{"ports":[{"protocol":"ICMP"},{"protocol":"tcp"}]}]}`,
			[]Problem{e("ingress[0].ports[0].protocol", `unsupported value "ICMP"`), e("ingress[0].ports[1].protocol", `unsupported value "tcp"`)}},
		{"port numbers", `ValidateNetworkPolicyPort: IsValidPortNum`,
			`{"podSelector":{},"egress":[{"ports":[{"port":0},{"port":65536},{"port":65535}]}]}`,
			[]Problem{e("egress[0].ports[0].port", "between 1 and 65535"), e("egress[0].ports[1].port", "between 1 and 65535")}},
		{"port names", `ValidateNetworkPolicyPort: IsValidPortName (IANA_SVC_NAME)`,
			`{"podSelector":{},"egress":[{"ports":[{"port":"80"},{"port":"http-alt-long-name"},{"port":"Http"},{"port":"a--b"},{"port":"-ab"}]}]}`,
			[]Problem{e("egress[0].ports[0].port", "at least one letter"), e("egress[0].ports[1].port", "no more than 15"),
				e("egress[0].ports[2].port", "alpha-numeric"), e("egress[0].ports[3].port", "consecutive hyphens"), e("egress[0].ports[4].port", "begin or end with a hyphen")}},
		{"endPort", "ValidateNetworkPolicyPort: endPort rules",
			`{"podSelector":{},"ingress":[{"ports":[{"port":100,"endPort":99},{"port":"http","endPort":90},{"endPort":90},{"port":1,"endPort":70000}]}]}`,
			[]Problem{e("ingress[0].ports[0].endPort", "must be greater than or equal to `port`"),
				e("ingress[0].ports[1].endPort", "may not be specified when `port` is non-numeric"),
				e("ingress[0].ports[2].endPort", "may not be specified when `port` is not specified"),
				e("ingress[0].ports[3].endPort", "between 1 and 65535")}},
		{"peers", "ValidateNetworkPolicyPeer: \"must specify a peer\", \"may not specify both ipBlock and another peer\"",
			`{"podSelector":{},"ingress":[{"from":[{},{"ipBlock":{"cidr":"10.0.0.0/8"},"podSelector":{}},{"podSelector":{},"namespaceSelector":{}}]}]}`,
			[]Problem{e("ingress[0].from[0]", "must specify a peer"), e("ingress[0].from[1]", "may not specify both ipBlock and another peer")}},
		{"ipBlock cidr", "ValidateIPBlock: cidr required, IsValidCIDRForLegacyField",
			`{"podSelector":{},"egress":[{"to":[{"ipBlock":{"cidr":""}},{"ipBlock":{"cidr":"10.0.0.1"}},{"ipBlock":{"cidr":"10.0.0.0/33"}}]}]}`,
			[]Problem{e("egress[0].to[0].ipBlock.cidr", "required"), e("egress[0].to[1].ipBlock.cidr", "must be a valid CIDR value"),
				e("egress[0].to[2].ipBlock.cidr", "must be a valid CIDR value")}},
		{"ipBlock legacy forms are warnings", "IsValidCIDRForLegacyField(strict=false) + GetWarningsForCIDR (KEP-4858)",
			`{"podSelector":{},"egress":[{"to":[{"ipBlock":{"cidr":"10.0.0.1/8"}},{"ipBlock":{"cidr":"010.0.0.0/8"}}]}]}`,
			[]Problem{w("egress[0].to[0].ipBlock.cidr", "ambiguous"), w("egress[0].to[1].ipBlock.cidr", "non-standard CIDR value")}},
		{"ipBlock except", "ValidateIPBlock: \"must be a strict subset of `cidr`\"",
			`{"podSelector":{},"ingress":[{"from":[{"ipBlock":{"cidr":"10.0.0.0/16","except":["10.0.1.0/24","10.0.0.0/16","10.0.0.0/8","192.168.0.0/24","::/64","x"]}}]}]}`,
			[]Problem{e("ingress[0].from[0].ipBlock.except[1]", "strict subset"), e("ingress[0].from[0].ipBlock.except[2]", "strict subset"),
				e("ingress[0].from[0].ipBlock.except[3]", "strict subset"), e("ingress[0].from[0].ipBlock.except[4]", "strict subset"),
				e("ingress[0].from[0].ipBlock.except[5]", "must be a valid CIDR value")}},
		{"except with leading zeros", "ValidateIPBlock uses ParseCIDRSloppy for containment",
			`{"podSelector":{},"ingress":[{"from":[{"ipBlock":{"cidr":"10.0.0.0/8","except":["010.001.0.0/16"]}}]}]}`,
			[]Problem{w("ingress[0].from[0].ipBlock.except[0]", "non-standard CIDR value")}},
		{"policyTypes", "ValidateNetworkPolicySpec: NotSupported policyTypes, \"may not specify more than two policyTypes\"",
			`{"podSelector":{},"policyTypes":["Ingress","ingress"]}`,
			[]Problem{e("policyTypes[1]", `unsupported value "ingress"`)}},
		{"too many policyTypes", "ValidateNetworkPolicySpec",
			`{"podSelector":{},"policyTypes":["Ingress","Egress","Ingress"]}`,
			[]Problem{e("policyTypes", "may not specify more than two policyTypes")}},
		{"selectors", "ValidateLabelSelector (AllowInvalidLabelValueInSelector=false)",
			`{"podSelector":{"matchLabels":{"bad key":"x","app":"-v"}},"ingress":[{"from":[{"namespaceSelector":{"matchExpressions":[{"key":"a","operator":"In"},{"key":"b","operator":"Foo"}]}}]}]}`,
			[]Problem{e(`podSelector.matchLabels["app"]`, "invalid label value"), e(`podSelector.matchLabels["bad key"]`, "invalid label key"),
				e("ingress[0].from[0].namespaceSelector.matchExpressions[0].values", "must be specified"),
				e("ingress[0].from[0].namespaceSelector.matchExpressions[1].operator", `unsupported value "Foo"`)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var spec networkingv1.NetworkPolicySpec
			strict, err := sigsjson.UnmarshalStrict([]byte(c.doc), &spec)
			if err != nil || len(strict) > 0 {
				t.Fatalf("decode: %v %v", err, strict)
			}
			got := ValidateNetworkPolicy(&spec)
			if !matchProblems(got, c.want) {
				t.Errorf("[%s]\n got:  %s\n want: %s", c.src, fmtProblems(got), fmtProblems(c.want))
			}
		})
	}
	if ValidateNetworkPolicy(nil) != nil {
		t.Error("nil spec")
	}
}

func TestParseCIDRSloppy(t *testing.T) {
	for in, want := range map[string]string{"010.001.0.0/016": "10.1.0.0/16", "10.0.0.1/8": "10.0.0.0/8", "::ffff:01.2.3.4/128": "1.2.3.4/32", "2001:db8::/32": "2001:db8::/32"} {
		_, n, err := parseCIDRSloppy(in)
		if err != nil || n.String() != want {
			t.Errorf("parseCIDRSloppy(%q) = %v, %v; want %s", in, n, err, want)
		}
	}
}
