package cilium

import (
	"fmt"
	"strings"
	"testing"
)

// e and w build expected problems: the path must be equal and the message
// must contain msg.
func e(path, msg string) Problem { return Problem{Path: path, Msg: msg} }
func w(path, msg string) Problem { return Problem{Path: path, Msg: msg, Warning: true} }

type ruleCase struct {
	name string
	// src cites the upstream rule or test the row encodes.
	src string
	// ccnp validates as a CiliumClusterwideNetworkPolicy.
	ccnp bool
	doc  string
	want []Problem
}

func runRuleCases(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := decodeStrict(t, c.doc)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			got := ValidateRule(r, !c.ccnp)
			if !matchProblems(got, c.want) {
				t.Errorf("[%s]\n got:  %s\n want: %s", c.src, fmtProblems(got), fmtProblems(c.want))
			}
		})
	}
}

func matchProblems(got, want []Problem) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].Path != want[i].Path || got[i].Warning != want[i].Warning || !strings.Contains(got[i].Msg, want[i].Msg) {
			return false
		}
	}
	return true
}

func fmtProblems(ps []Problem) string {
	if len(ps) == 0 {
		return "(none)"
	}
	var b strings.Builder
	for _, p := range ps {
		b.WriteString("\n   " + p.String())
	}
	return b.String()
}

// rule wraps one egress element into a valid CNP rule.
func egressRule(elem string) string {
	return `{"endpointSelector":{},"egress":[` + elem + `]}`
}

func ingressRule(elem string) string {
	return `{"endpointSelector":{},"ingress":[` + elem + `]}`
}

func ports(n int) string {
	ps := make([]string, n)
	for i := range ps {
		ps[i] = fmt.Sprintf(`{"port":"%d","protocol":"TCP"}`, 1000+i)
	}
	return "[" + strings.Join(ps, ",") + "]"
}

func TestValidateRuleSelectors(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{name: "deny-all ingress [{}] is valid", src: `examples/policies/l3/egress-default-deny; policyentry.go empty L3 selects nothing`,
			doc: `{"endpointSelector":{},"ingress":[{}]}`},
		{name: "no selector", src: `rule_validation.go: "rule must have one of EndpointSelector or NodeSelector"`,
			doc:  `{"ingress":[{}]}`,
			want: []Problem{e("", "rule must have one of EndpointSelector or NodeSelector")}},
		{name: "both selectors", src: `rule_validation.go: "rule cannot have both EndpointSelector and NodeSelector"`, ccnp: true,
			doc:  `{"endpointSelector":{},"nodeSelector":{},"ingress":[{}]}`,
			want: []Problem{e("", "rule cannot have both EndpointSelector and NodeSelector")}},
		{name: "nodeSelector in CNP", src: `cnp_types.go CiliumNetworkPolicy.Parse: "rule cannot have NodeSelector"`,
			doc:  `{"nodeSelector":{},"ingress":[{}]}`,
			want: []Problem{e("nodeSelector", "rule cannot have NodeSelector")}},
		{name: "nodeSelector in CCNP", src: `rule.go NodeSelector (host policy)`, ccnp: true,
			doc: `{"nodeSelector":{"matchLabels":{"node-role.kubernetes.io/control-plane":""}},"ingress":[{}]}`},
		{name: "no rule lists", src: `CRD spec anyOf ingress|ingressDeny|egress|egressDeny (+kubebuilder:validation:AnyOf in rule.go)`,
			doc:  `{"endpointSelector":{}}`,
			want: []Problem{e("", "CRD anyOf")}},
		{name: "only empty rule lists", src: `rule_validation.go Rule.Validate: "rule must have at least one of Ingress, IngressDeny, Egress, EgressDeny"`,
			doc:  `{"endpointSelector":{},"ingress":[],"egressDeny":[]}`,
			want: []Problem{e("", "rule must have at least one of Ingress, IngressDeny, Egress, EgressDeny")}},
		{name: "one empty list and one entry", src: `rule_validation.go Rule.Validate (len checks)`,
			doc: `{"endpointSelector":{},"ingressDeny":[],"egress":[{}]}`},
		{name: "namespace label in CNP endpointSelector", src: `utils.go getEndpointSelector: "CiliumNetworkPolicy contains illegal namespace match in EndpointSelector"`,
			doc:  `{"endpointSelector":{"matchLabels":{"k8s:io.kubernetes.pod.namespace":"other","app":"a"}},"ingress":[{}]}`,
			want: []Problem{w("endpointSelector", "Cilium overrides this match")}},
		{name: "namespace expression in CNP endpointSelector", src: `utils.go getEndpointSelector (HasKey / AddMatch)`,
			doc:  `{"endpointSelector":{"matchExpressions":[{"key":"k8s:io.kubernetes.pod.namespace","operator":"Exists"}]},"ingress":[{}]}`,
			want: []Problem{w("endpointSelector", "is ignored in a CiliumNetworkPolicy")}},
		{name: "any-source namespace label in CNP", src: `utils.go getEndpointSelector adds k8s:io.kubernetes.pod.namespace, ANDed`,
			doc:  `{"endpointSelector":{"matchLabels":{"io.kubernetes.pod.namespace":"other"}},"ingress":[{}]}`,
			want: []Problem{w("endpointSelector", "ANDed with the policy's own namespace")}},
		{name: "namespace label in CCNP", src: `utils.go: namespace handling only for namespaced policies`, ccnp: true,
			doc: `{"endpointSelector":{"matchLabels":{"k8s:io.kubernetes.pod.namespace":"kube-system"}},"ingress":[{}]}`},
		{name: "namespace label with reserved:init", src: `utils.go: selectors for initializing pods get no namespace match`,
			doc: `{"endpointSelector":{"matchLabels":{"reserved:init":"","k8s:io.kubernetes.pod.namespace":"x"}},"ingress":[{}]}`},
		{name: "invalid selector key", src: `selector.go sanitize/Validate: validation.ValidateLabelSelector on extended keys`,
			doc:  `{"endpointSelector":{"matchLabels":{"k8s:bad key":"x"}},"ingress":[{}]}`,
			want: []Problem{e(`endpointSelector.matchLabels["k8s:bad key"]`, `invalid label key "k8s:bad key" (checked as "k8s.bad key")`)}},
		{name: "key made too long by the any. prefix", src: `labels.GetExtendedKeyFrom: "foo" -> "any.foo", then IsQualifiedName (63-byte name)`,
			doc:  `{"endpointSelector":{"matchLabels":{"` + strings.Repeat("a", 60) + `":"x"}},"ingress":[{}]}`,
			want: []Problem{e(`endpointSelector.matchLabels["`+strings.Repeat("a", 60)+`"]`, "no more than 63")}},
		{name: "invalid selector value", src: `CRD matchLabels additionalProperties pattern/maxLength 63; IsValidLabelValue`,
			doc:  `{"endpointSelector":{"matchLabels":{"app":"-bad"}},"ingress":[{}]}`,
			want: []Problem{e(`endpointSelector.matchLabels["app"]`, `invalid label value "-bad"`)}},
		{name: "matchExpressions operators", src: `k8s ValidateLabelSelectorRequirement; CRD operator enum In|NotIn|Exists|DoesNotExist`,
			doc: `{"endpointSelector":{},"ingress":[{"fromEndpoints":[{"matchExpressions":[
				{"key":"a","operator":"In"},{"key":"b","operator":"Exists","values":["x"]},{"key":"c","operator":"Gt","values":["1"]},
				{"key":"d","operator":"NotIn","values":["ok","no pe"]},{"key":"e","operator":"DoesNotExist"}]}]}]}`,
			want: []Problem{
				e("ingress[0].fromEndpoints[0].matchExpressions[0].values", "must be specified when `operator` is 'In' or 'NotIn'"),
				e("ingress[0].fromEndpoints[0].matchExpressions[1].values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"),
				e("ingress[0].fromEndpoints[0].matchExpressions[2].operator", `unsupported value "Gt"`),
				e("ingress[0].fromEndpoints[0].matchExpressions[3].values[1]", `invalid label value "no pe"`),
			}},
		{name: "Cilium source prefixes are valid keys", src: `labels.GetExtendedKeyFrom examples k8s:foo=bar -> k8s.foo; $host -> reserved.host`,
			doc: `{"endpointSelector":{"matchLabels":{"k8s:app.kubernetes.io/name":"a","$host":"","reserved:world":"","any:x":"y"}},"ingress":[{}]}`},
		{name: "labels key required", src: `CRD labels items required: key`,
			doc:  `{"endpointSelector":{},"ingress":[{}],"labels":[{"value":"v"}]}`,
			want: []Problem{e("labels[0].key", "required")}},
		{name: "enableDefaultDeny without entries", src: `cilium/cilium#35558: enableDefaultDeny.ingress=true with no ingress rules does not enforce default deny`,
			doc:  `{"endpointSelector":{},"egress":[{}],"enableDefaultDeny":{"ingress":true,"egress":false}}`,
			want: []Problem{w("enableDefaultDeny.ingress", "has no effect")}},
		{name: "log value too long", src: `rule.go LogConfig: +kubebuilder:validation:MaxLength=32`,
			doc:  `{"endpointSelector":{},"ingress":[{}],"log":{"value":"` + strings.Repeat("x", 33) + `"}}`,
			want: []Problem{e("log.value", "may not be longer than 32 characters")}},
		{name: "log value 32 multi-byte characters", src: `rule.go LogConfig MaxLength counts characters`,
			doc: `{"endpointSelector":{},"ingress":[{}],"log":{"value":"` + strings.Repeat("é", 32) + `"}}`},
		{name: "log value not printable", src: `rule.go LogConfig: +kubebuilder:validation:Pattern=^\PC*$`,
			doc:  `{"endpointSelector":{},"ingress":[{}],"log":{"value":"bell\u0007"}}`,
			want: []Problem{e("log.value", "printable")}},
	})
}

func TestValidateRuleL3(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{name: "fromEndpoints and fromCIDR", src: `rule_validation.go IngressCommonRule.Validate: "Combining FromEndpoints and FromCIDR is not supported yet"`,
			doc:  ingressRule(`{"fromEndpoints":[{}],"fromCIDR":["10.0.0.0/8"]}`),
			want: []Problem{e("ingress[0]", "combining FromEndpoints and FromCIDR is not supported yet")}},
		{name: "fromCIDR and fromCIDRSet", src: `rule_validation.go l3Members lists FromCIDR and FromCIDRSet separately`,
			doc:  ingressRule(`{"fromCIDR":["10.0.0.0/8"],"fromCIDRSet":[{"cidr":"11.0.0.0/8"}]}`),
			want: []Problem{e("ingress[0]", "combining FromCIDR and FromCIDRSet")}},
		{name: "fromEntities and fromNodes in a deny rule", src: `rule_validation.go IngressDenyRule.Validate -> IngressCommonRule.Validate`,
			doc:  `{"endpointSelector":{},"ingressDeny":[{"fromEntities":["world"],"fromNodes":[{}]}]}`,
			want: []Problem{e("ingressDeny[0]", "combining FromEntities and FromNodes"), w("ingressDeny[0].fromNodes", "enable-node-selector-labels")}},
		{name: "empty peer list does not count", src: `rule_validation.go l3Members uses len(): an empty list is not a member`,
			doc: ingressRule(`{"fromEntities":["world"],"fromEndpoints":[]}`)},
		{name: "toFQDNs and toEndpoints", src: `rule_validation.go EgressRule.l3Members adds ToFQDNs; CRD "ToFQDN cannot occur in the same policy as other To* rules"`,
			doc:  egressRule(`{"toEndpoints":[{}],"toFQDNs":[{"matchName":"a.example.com"}]}`),
			want: []Problem{e("egress[0]", "combining ToEndpoints and ToFQDNs")}},
		{name: "toFQDNs with toPorts", src: `rule_validation.go l3DependentL4Support ToFQDNs=true`,
			doc: egressRule(`{"toFQDNs":[{"matchPattern":"*.example.com"}],"toPorts":[{"ports":[{"port":"443","protocol":"TCP"}]}]}`)},
		{name: "toServices with toPorts", src: `rule_validation.go (1.16-1.18): "Combining ToServices and ToPorts is not supported yet" (cilium/cilium#37057)`,
			doc:  egressRule(`{"toServices":[{"k8sService":{"serviceName":"s","namespace":"n"}}],"toPorts":[{"ports":[{"port":"80"}]}]}`),
			want: []Problem{e("egress[0]", "combining ToServices and ToPorts is not supported yet")}},
		{name: "toServices and toEntities", src: `rule_validation.go EgressCommonRule.Validate (DataDog/datadog-operator#1930)`,
			doc:  egressRule(`{"toServices":[{"k8sService":{"serviceName":"s"}}],"toEntities":["world"]}`),
			want: []Problem{e("egress[0]", "combining ToEntities and ToServices")}},
		{name: "toServices selector required", src: `CRD k8sServiceSelector required: selector`,
			doc:  egressRule(`{"toServices":[{"k8sServiceSelector":{"namespace":"n"}}]}`),
			want: []Problem{e("egress[0].toServices[0].k8sServiceSelector.selector", "required")}},
		{name: "egressDeny toEntities and toCIDR", src: `rule_validation.go EgressDenyRule.Validate -> EgressCommonRule.Validate`,
			doc:  `{"endpointSelector":{},"egressDeny":[{"toEntities":["world"],"toCIDR":["1.1.1.1/32"]}]}`,
			want: []Problem{e("egressDeny[0]", "combining ToCIDR and ToEntities")}},
		{name: "fromRequires and toRequires", src: `cilium/cilium#42615 (removed in 1.19), #43167 (CRD maxItems 0)`,
			doc:  `{"endpointSelector":{},"ingress":[{"fromRequires":[{"matchLabels":{"env":"prod"}}]}],"egress":[{"toRequires":[{}]}]}`,
			want: []Problem{e("ingress[0].fromRequires", "removed in 1.19"), e("egress[0].toRequires", "removed in 1.19")}},
		{name: "entities enum", src: `entity.go +kubebuilder:validation:Enum=all;world;cluster;host;init;ingress;unmanaged;remote-node;health;none;kube-apiserver`,
			doc: egressRule(`{"toEntities":["kube-apiserver","world-ipv4","World","none"]}`),
			want: []Problem{e("egress[0].toEntities[1]", `unsupported value "world-ipv4"`),
				e("egress[0].toEntities[2]", "unsupported entity: World")}},
		{name: "every CRD entity", src: `entity.go EntitySelectorMapping`,
			doc: ingressRule(`{"fromEntities":["all","world","cluster","host","init","ingress","unmanaged","remote-node","health","none","kube-apiserver"]}`)},
		{name: "bare IP in toCIDR", src: `CRD format: cidr (cilium/cilium#47150: bare IPs rejected at admission)`,
			doc:  egressRule(`{"toCIDR":["10.0.0.1"]}`),
			want: []Problem{e("egress[0].toCIDR[0]", "rejects bare IP addresses")}},
		{name: "CIDR syntax", src: `rule_validation.go CIDR.Validate: "unable to parse CIDR"; CRD format: cidr`,
			doc: egressRule(`{"toCIDR":["10.0.0.0/33","010.0.0.0/8","","10.0.0.1/24","2001:db8::/32"]}`),
			want: []Problem{e("egress[0].toCIDR[0]", "not a valid CIDR"), e("egress[0].toCIDR[1]", "not a valid CIDR"),
				e("egress[0].toCIDR[2]", "IP must be specified")}},
		{name: "except outside cidr", src: `rule_validation.go CIDRRule.Validate: "allow CIDR prefix %s does not contain exclude CIDR prefix %s"`,
			doc: egressRule(`{"toCIDRSet":[{"cidr":"10.0.0.0/16","except":["10.0.1.0/24","192.168.0.0/24","10.0.0.0/8","10.0.0.0/16","::/64"]}]}`),
			want: []Problem{e("egress[0].toCIDRSet[0].except[1]", "does not contain exclude CIDR prefix 192.168.0.0/24"),
				e("egress[0].toCIDRSet[0].except[2]", "does not contain exclude CIDR prefix 10.0.0.0/8"), // cilium/cilium#44637
				e("egress[0].toCIDRSet[0].except[4]", "does not contain exclude CIDR prefix ::/64")}},
		{name: "except not a CIDR", src: `CRD except items format: cidr; CIDRRule.Validate netip.ParsePrefix`,
			doc:  ingressRule(`{"fromCIDRSet":[{"cidr":"10.0.0.0/8","except":["10.1.2.3"]}]}`),
			want: []Problem{e("ingress[0].fromCIDRSet[0].except[0]", "not a valid CIDR")}},
		{name: "cidr rule oneOf", src: `rule_validation.go CIDRRule.Validate: "one of cidr, cidrGroupRef, or cidrGroupSelector is required" / "more than one ... may not be set"`,
			doc: ingressRule(`{"fromCIDRSet":[{},{"cidr":"10.0.0.0/8","cidrGroupRef":"g"}]}`),
			want: []Problem{e("ingress[0].fromCIDRSet[0]", "one of cidr, cidrGroupRef, or cidrGroupSelector is required"),
				e("ingress[0].fromCIDRSet[1]", "more than one of cidr, cidrGroupRef, or cidrGroupSelector may not be set")}},
		{name: "cidr group ref and selector", src: `CRD cidrGroupRef pattern/maxLength 253; CIDRRule.Validate returns before except for group refs`,
			doc: ingressRule(`{"fromCIDRSet":[{"cidrGroupRef":"Bad_Ref"},{"cidrGroupSelector":{"matchLabels":{"a":"b"}},"except":["10.0.0.0/8"]}]}`),
			want: []Problem{e("ingress[0].fromCIDRSet[0].cidrGroupRef", "DNS-1123 subdomain"),
				w("ingress[0].fromCIDRSet[1].except", "ignored")}},
	})
}

func TestValidateRulePorts(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{name: "40 ports", src: `rule_validation.go maxPorts = 40`,
			doc: ingressRule(`{"toPorts":[{"ports":` + ports(40) + `}]}`)},
		{name: "41 ports", src: `rule_validation.go PortRule.Validate: "too many ports, the max is 40"`,
			doc:  ingressRule(`{"toPorts":[{"ports":` + ports(41) + `}]}`),
			want: []Problem{e("ingress[0].toPorts[0].ports", "too many ports, the max is 40")}},
		{name: "41 deny ports", src: `rule_validation.go PortDenyRule.Validate: "too many ports, the max is 40"`,
			doc:  `{"endpointSelector":{},"egressDeny":[{"toPorts":[{"ports":` + ports(41) + `}]}]}`,
			want: []Problem{e("egressDeny[0].toPorts[0].ports", "too many ports, the max is 40")}},
		{name: "port numbers and names", src: `rule_validation.go PortProtocol.Validate (iana.IsSvcName, strconv.ParseUint(port, 0, 16)); CRD port pattern`,
			doc: ingressRule(`{"toPorts":[{"ports":[{"port":"0"},{"port":"65535"},{"port":"http"},{"port":"HTTP-alt"},{"port":"0x10"},
				{"port":""},{"port":"65536"},{"port":"-1"},{"port":"my_port"},{"port":"sixteen-chars-xx"},{"port":"08"}]}]}`),
			want: []Problem{
				e("ingress[0].toPorts[0].ports[5].port", "port must be specified"),
				e("ingress[0].toPorts[0].ports[6].port", "unable to parse port"),
				e("ingress[0].toPorts[0].ports[7].port", "must be a port number (0-65535) or a port name"),
				e("ingress[0].toPorts[0].ports[8].port", "unable to parse port"),
				e("ingress[0].toPorts[0].ports[9].port", "unable to parse port"),
				e("ingress[0].toPorts[0].ports[10].port", "unable to parse port"),
			}},
		{name: "endPort", src: `CRD endPort minimum 0 maximum 65535; reference §1.8 "endPort is ignored for named ports"`,
			doc: ingressRule(`{"toPorts":[{"ports":[{"port":"8000","endPort":9000},{"port":"9000","endPort":8000},{"port":"80","endPort":70000},{"port":"http","endPort":90}]}]}`),
			want: []Problem{w("ingress[0].toPorts[0].ports[1].endPort", "lower than port"),
				e("ingress[0].toPorts[0].ports[2].endPort", "between 0 and 65535"),
				w("ingress[0].toPorts[0].ports[3].endPort", "ignored for a named port")}},
		{name: "protocol enum", src: `l4.go CRD enum TCP;UDP;SCTP;VRRP;IGMP;ANY (case-sensitive; ICMP goes in icmps)`,
			doc: ingressRule(`{"toPorts":[{"ports":[{"port":"1","protocol":"TCP"},{"port":"2","protocol":"UDP"},{"port":"3","protocol":"SCTP"},{"port":"4","protocol":"ANY"},
				{"port":"5","protocol":"tcp"},{"port":"6","protocol":"ICMP"},{"port":"7","protocol":"QUIC"}]}]}`),
			want: []Problem{e("ingress[0].toPorts[0].ports[4].protocol", `case-sensitive: use "TCP"`),
				e("ingress[0].toPorts[0].ports[5].protocol", "use icmps"),
				e("ingress[0].toPorts[0].ports[6].protocol", `unsupported value "QUIC"`)}},
		{name: "extended IP protocols need port 0", src: `rule_validation.go PortProtocol.Validate: "port must be empty or 0"`,
			doc:  ingressRule(`{"toPorts":[{"ports":[{"port":"0","protocol":"VRRP"},{"port":"80","protocol":"IGMP"}]}]}`),
			want: []Problem{e("ingress[0].toPorts[0].ports[1].port", "port must be empty or 0")}},
		{name: "icmps with toPorts", src: `rule_validation.go errUnsupportedICMPWithToPorts`,
			doc:  ingressRule(`{"toPorts":[{"ports":[{"port":"80"}]}],"icmps":[{"fields":[{"type":8}]}]}`),
			want: []Problem{e("ingress[0].icmps", "the ICMPs block may only be present without ToPorts")}},
		{name: "icmps with toPorts in deny rule", src: `rule_validation.go EgressDenyRule.Validate errUnsupportedICMPWithToPorts`,
			doc:  `{"endpointSelector":{},"egressDeny":[{"toPorts":[{"ports":[{"port":"80"}]}],"icmps":[{"fields":[{"type":8}]}]}]}`,
			want: []Problem{e("egressDeny[0].icmps", "the ICMPs block may only be present without ToPorts")}},
		{name: "icmp fields", src: `icmp.go ICMPRule.Validate ("wrong family", "too many types"), ICMPField.UnmarshalJSON ("ICMP type %s not found in %s"), CRD type pattern`,
			doc: ingressRule(`{"icmps":[{"fields":[{"type":8},{"family":"IPv6","type":"EchoRequest"},{"type":"PacketTooBig"},{"family":"IPv5","type":0},
				{"type":300},{"family":"IPv4"},{"type":"ExtendedEchoReply"},{"type":"255"},{"family":"IPv6","type":"Echo"}]}]}`),
			want: []Problem{
				e("ingress[0].icmps[0].fields[2].type", "ICMP type PacketTooBig not found in IPv4"),
				e("ingress[0].icmps[0].fields[3].family", "wrong family: IPv5"),
				w("ingress[0].icmps[0].fields[4].type", "not an 8-bit code"),
				e("ingress[0].icmps[0].fields[5].type", "required"),
				e("ingress[0].icmps[0].fields[6].type", "must be a number 0-255 or an ICMP type name"),
				e("ingress[0].icmps[0].fields[8].type", "ICMP type Echo not found in IPv6"),
			}},
		{name: "41 icmp fields", src: `icmp.go ICMPRule.Validate: "too many types, the max is 40"`,
			doc:  ingressRule(`{"icmps":[{"fields":[` + strings.Repeat(`{"type":8},`, 40) + `{"type":0}]}]}`),
			want: []Problem{e("ingress[0].icmps[0].fields", "too many types, the max is 40")}},
		{name: "authentication mode", src: `rule.go Authentication: +kubebuilder:validation:Enum=disabled;required;test-always-fail, Required`,
			doc:  `{"endpointSelector":{},"ingress":[{"authentication":{"mode":"required"}}],"egress":[{"authentication":{"mode":""}},{"authentication":{"mode":"mtls"}}]}`,
			want: []Problem{e("egress[0].authentication.mode", "required"), e("egress[1].authentication.mode", `unsupported value "mtls"`)}},
	})
}

func TestValidateRuleL7(t *testing.T) {
	http := `"rules":{"http":[{"method":"GET","path":"/"}]}`
	runRuleCases(t, []ruleCase{
		{name: "http on TCP", src: `rule_validation.go PortRule.Validate (L7 on TCP)`,
			doc: ingressRule(`{"toPorts":[{"ports":[{"port":"80","protocol":"TCP"}],` + http + `}]}`)},
		{name: "http on ANY and UDP", src: `rule_validation.go PortRule.Validate: "L7 rules can only apply to TCP (not %s) except for DNS rules"`,
			doc: ingressRule(`{"toPorts":[{"ports":[{"port":"80"},{"port":"81","protocol":"UDP"},{"port":"82","protocol":"ANY"}],` + http + `}]}`),
			want: []Problem{e("ingress[0].toPorts[0].ports[0].protocol", "L7 rules can only apply to TCP (not ANY)"),
				e("ingress[0].toPorts[0].ports[1].protocol", "L7 rules can only apply to TCP (not UDP)"),
				e("ingress[0].toPorts[0].ports[2].protocol", "L7 rules can only apply to TCP (not ANY)")}},
		{name: "empty http list still counts as L7", src: `l4.go L7Rules.IsEmpty compares lists with nil`,
			doc:  ingressRule(`{"toPorts":[{"ports":[{"port":"80","protocol":"UDP"}],"rules":{"http":[]}}]}`),
			want: []Problem{e("ingress[0].toPorts[0].ports[0].protocol", "L7 rules can only apply to TCP (not UDP)")}},
		{name: "http on port 0", src: `rule_validation.go PortRule.Validate: "L7 rules can not be used when a port is 0"`,
			doc:  ingressRule(`{"toPorts":[{"ports":[{"port":"0","protocol":"TCP"}],` + http + `}]}`),
			want: []Problem{e("ingress[0].toPorts[0].rules", "L7 rules can not be used when a port is 0")}},
		{name: "dns on UDP and ANY", src: `rule_validation.go PortRule.Validate: "DNS L7 rules can be TCP, UDP or ANY"`,
			doc: egressRule(`{"toEndpoints":[{}],"toPorts":[{"ports":[{"port":"53","protocol":"UDP"},{"port":"53","protocol":"ANY"},{"port":"53"}],"rules":{"dns":[{"matchPattern":"*"}]}}]}`)},
		{name: "dns on ingress", src: `rule_validation.go PortRule.Validate(ingress): "DNS rules are not allowed on ingress"`,
			doc:  ingressRule(`{"toPorts":[{"ports":[{"port":"53","protocol":"UDP"}],"rules":{"dns":[{"matchName":"a.b"}]}}]}`),
			want: []Problem{e("ingress[0].toPorts[0].rules.dns", "DNS rules are not allowed on ingress")}},
		{name: "dns without ports", src: `rule_validation.go L7Rules.Validate: "port 53 must be specified for DNS rules"`,
			doc:  egressRule(`{"toPorts":[{"rules":{"dns":[{"matchPattern":"*"}]}}]}`),
			want: []Problem{e("egress[0].toPorts[0].rules.dns", "port 53 must be specified for DNS rules")}},
		{name: "dns with a port range", src: `rule_validation.go PortProtocol.Validate: "DNS rules do not support port ranges"`,
			doc:  egressRule(`{"toPorts":[{"ports":[{"port":"53","endPort":54,"protocol":"UDP"}],"rules":{"dns":[{"matchPattern":"*"}]}}]}`),
			want: []Problem{e("egress[0].toPorts[0].ports[0].endPort", "DNS rules do not support port ranges")}},
		{name: "http and dns together", src: `rule_validation.go L7Rules.Validate: "multiple L7 protocol rule types specified in single rule"`,
			doc:  egressRule(`{"toPorts":[{"ports":[{"port":"53","protocol":"TCP"}],"rules":{"http":[{}],"dns":[{"matchPattern":"*"}]}}]}`),
			want: []Problem{e("egress[0].toPorts[0].rules", "multiple L7 protocol rule types specified in single rule")}},
		{name: "http regexes", src: `http.go PortRuleHTTP Sanitize/Validate: regexp.Compile(path), regexp.Compile(method); host compiled by Envoy (RE2)`,
			doc: ingressRule(`{"toPorts":[{"ports":[{"port":"80","protocol":"TCP"}],"rules":{"http":[{"path":"/api/(v1","method":"GET|[","host":"*.example.com"},{"path":"/api/v1/.*","method":"GET|POST","host":"api\\.example\\.com"}]}}]}`),
			want: []Problem{e("ingress[0].toPorts[0].rules.http[0].path", "invalid regular expression"),
				e("ingress[0].toPorts[0].rules.http[0].method", "invalid regular expression"),
				e("ingress[0].toPorts[0].rules.http[0].host", "invalid regular expression")}},
		{name: "header strings", src: `reference §1.9: headers split at the first space, trailing ':' trimmed from the name`,
			doc: ingressRule(`{"toPorts":[{"ports":[{"port":"80","protocol":"TCP"}],"rules":{"http":[{"headers":["X-Ok","X-Ok: v","","Bad(Name): x"]}]}}]}`),
			want: []Problem{e("ingress[0].toPorts[0].rules.http[0].headers[2]", "has no name"),
				w("ingress[0].toPorts[0].rules.http[0].headers[3]", "not a valid HTTP header name")}},
		{name: "headerMatches", src: `http.go HeaderMatch: Name required MinLength=1, Mismatch Enum=LOG;ADD;DELETE;REPLACE; "Secret name missing"`,
			doc: ingressRule(`{"toPorts":[{"ports":[{"port":"80","protocol":"TCP"}],"rules":{"http":[{"headerMatches":[{"name":""},{"name":"x","mismatch":"DROP"},{"name":"y","secret":{"namespace":"n","name":""}},{"name":"z","value":"v","mismatch":"REPLACE"}]}]}}]}`),
			want: []Problem{e("ingress[0].toPorts[0].rules.http[0].headerMatches[0].name", "header name missing"),
				e("ingress[0].toPorts[0].rules.http[0].headerMatches[1].mismatch", "invalid header action: DROP"),
				e("ingress[0].toPorts[0].rules.http[0].headerMatches[2].secret.name", "secret name missing")}},
		{name: "serverNames", src: `rule_validation.go PortRule.Validate ("ServerNames are not allowed with L7 rules without TLS termination", errEmptyServerName); CRD serverNames minItems 1, set, pattern`,
			doc: egressRule(`{"toPorts":[{"ports":[{"port":"443","protocol":"TCP"}],"serverNames":["a.example.com","","a.example.com","a..b"],` + http + `},{"ports":[{"port":"443"}],"serverNames":[]}]}`),
			want: []Problem{e("egress[0].toPorts[0].serverNames", "ServerNames are not allowed with L7 rules without TLS termination"),
				e("egress[0].toPorts[0].serverNames[1]", "empty server name is not allowed"),
				e("egress[0].toPorts[0].serverNames[2]", "duplicate value"),
				e("egress[0].toPorts[0].serverNames[3]", "must match"),
				e("egress[0].toPorts[1].serverNames", "at least 1 item")}},
		{name: "serverNames with TLS termination", src: `rule_validation.go PortRule.Validate (TerminatingTLS set)`,
			doc: egressRule(`{"toPorts":[{"ports":[{"port":"443","protocol":"TCP"}],"serverNames":["*.example.com"],"terminatingTLS":{"secret":{"name":"s"}},` + http + `}]}`)},
		{name: "TLS contexts need a secret", src: `l4.go TLSContext Secret +kubebuilder:validation:Required; Secret.Name Required`,
			doc: egressRule(`{"toPorts":[{"ports":[{"port":"443","protocol":"TCP"}],"terminatingTLS":{"trustedCA":"ca"},"originatingTLS":{"secret":{"namespace":"n","name":""}}}]}`),
			want: []Problem{e("egress[0].toPorts[0].terminatingTLS.secret", "required"),
				e("egress[0].toPorts[0].originatingTLS.secret.name", "required")}},
		{name: "listener", src: `rule_validation.go PortRule.Validate: "Listener is not allowed on ingress (%s)", "Listener is not allowed with L7 rules (%s)"; CRD listener required envoyConfig/name, priority 1..100`,
			doc: `{"endpointSelector":{},"ingress":[{"toPorts":[{"ports":[{"port":"80"}],"listener":{"envoyConfig":{"name":"c"},"name":"l"}}]}],
				"egress":[{"toPorts":[{"ports":[{"port":"80","protocol":"TCP"}],"listener":{"name":"l2","priority":0},` + http + `}]}]}`,
			want: []Problem{e("ingress[0].toPorts[0].listener", "Listener is not allowed on ingress (l)"),
				e("egress[0].toPorts[0].listener", "Listener is not allowed with L7 rules (l2)"),
				e("egress[0].toPorts[0].listener.envoyConfig", "required"),
				e("egress[0].toPorts[0].listener.priority", "between 1 and 100")}},
		{name: "l7 without l7proto", src: `rule_validation.go L7Rules.Validate: "'l7' may only be specified when a 'l7proto' is also specified"`,
			doc:  egressRule(`{"toPorts":[{"ports":[{"port":"9000","protocol":"TCP"}],"rules":{"l7":[{"k":"v"}]}}]}`),
			want: []Problem{e("egress[0].toPorts[0].rules.l7", "'l7' may only be specified when a 'l7proto' is also specified")}},
		{name: "l7proto", src: `l7.go PortRuleL7.Sanitize: "Empty key not allowed"; proxylib removed by cilium/cilium#43557`,
			doc: egressRule(`{"toPorts":[{"ports":[{"port":"9000","protocol":"TCP"}],"rules":{"l7proto":"r2d2","l7":[{"cmd":"READ"},{"":"x"}]}}]}`),
			want: []Problem{w("egress[0].toPorts[0].rules.l7proto", "deprecated"),
				e("egress[0].toPorts[0].rules.l7[1]", "empty key not allowed")}},
		{name: "kafka", src: `kafka/kafka.go PortRule.Sanitize ("cannot set both Role %q and APIKey %q together", "invalid Kafka Role", "invalid Kafka APIVersion", "invalid Kafka Topic name")`,
			doc: egressRule(`{"toPorts":[{"ports":[{"port":"9092","protocol":"TCP"}],"rules":{"kafka":[{"role":"produce","topic":"t1"},{"role":"consume","apiKey":"fetch"},{"role":"admin"},{"apiKey":"nope","apiVersion":"-1"},{"topic":"bad topic"}]}}]}`),
			want: []Problem{w("egress[0].toPorts[0].rules.kafka", "deprecated"),
				e("egress[0].toPorts[0].rules.kafka[1]", "cannot set both Role"),
				e("egress[0].toPorts[0].rules.kafka[2].role", `invalid Kafka Role "admin"`),
				e("egress[0].toPorts[0].rules.kafka[3].apiKey", `invalid Kafka APIKey "nope"`),
				e("egress[0].toPorts[0].rules.kafka[3].apiVersion", `invalid Kafka APIVersion "-1"`),
				e("egress[0].toPorts[0].rules.kafka[4].topic", `invalid Kafka Topic name "bad topic"`)}},
		{name: "host policy L7", src: `rule_validation.go: "L7 policy is not supported on host ingress yet", "L7 protocol %s is not supported on %segress yet"`, ccnp: true,
			doc: `{"nodeSelector":{},"ingress":[{"toPorts":[{"ports":[{"port":"80","protocol":"TCP"}],` + http + `}]}],
				"egress":[{"toPorts":[{"ports":[{"port":"80","protocol":"TCP"}],` + http + `}]},{"toPorts":[{"ports":[{"port":"53","protocol":"ANY"}],"rules":{"dns":[{"matchPattern":"*"}]}}]}]}`,
			want: []Problem{e("ingress[0]", "L7 policy is not supported on host ingress yet"),
				e("egress[0]", "L7 protocol HTTP is not supported on host egress yet")}},
	})
}

func TestValidateRuleFQDN(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{name: "valid names and patterns", src: `fqdn.go FQDNSelector; CRD matchName/matchPattern patterns`,
			doc: egressRule(`{"toFQDNs":[{"matchName":"cilium.io"},{"matchName":"cilium.io."},{"matchName":"_srv.Example-1.COM"},{"matchPattern":"*"},{"matchPattern":"*.cilium.io"},{"matchPattern":"**.cilium.io"},{"matchPattern":"sub*.cilium.io"}]}`)},
		{name: "oneOf matchName matchPattern", src: `fqdn.go: "only one of MatchName or MatchPattern is allowed in an FQDNSelector"; CRD toFQDNs items oneOf`,
			doc: egressRule(`{"toFQDNs":[{"matchName":"a.b","matchPattern":"*.b"},{}]}`),
			want: []Problem{e("egress[0].toFQDNs[0]", "only one of MatchName or MatchPattern is allowed"),
				e("egress[0].toFQDNs[1]", "one of matchName or matchPattern is required")}},
		{name: "matchName syntax", src: `fqdn.go FQDNMatchNameRegexString ^([-a-zA-Z0-9_]+[.]?)+$; allowedMatchNameChars`,
			doc: egressRule(`{"toFQDNs":[{"matchName":"*.cilium.io"},{"matchName":"a..b"},{"matchName":".a"},{"matchName":"exa mple.com"}]}`),
			want: []Problem{e("egress[0].toFQDNs[0].matchName", "must match"), e("egress[0].toFQDNs[1].matchName", "must match"),
				e("egress[0].toFQDNs[2].matchName", "must match"), e("egress[0].toFQDNs[3].matchName", "must match")}},
		{name: "matchPattern syntax", src: `matchpattern.go prevalidate (allowed chars [-a-zA-Z0-9_.*]); CRD pattern ^([-a-zA-Z0-9_*]+[.]?)+$`,
			doc: egressRule(`{"toFQDNs":[{"matchPattern":"a..b"},{"matchPattern":"*.exa$mple.com"},{"matchPattern":"."}]}`),
			want: []Problem{e("egress[0].toFQDNs[0].matchPattern", "must match"), e("egress[0].toFQDNs[1].matchPattern", "must match"),
				e("egress[0].toFQDNs[2].matchPattern", "must match")}},
		{name: "length limit", src: `matchpattern.MaxFQDNLength = 255; CRD maxLength 255`,
			doc:  egressRule(`{"toFQDNs":[{"matchName":"` + strings.Repeat("a.", 127) + `ab"},{"matchPattern":"` + strings.Repeat("a.", 127) + `a"}]}`),
			want: []Problem{e("egress[0].toFQDNs[0].matchName", "may not be longer than 255 characters")}},
		{name: "dns rule selectors", src: `fqdn.go PortRuleDNS Validate (same checks as FQDNSelector); CRD dns items oneOf`,
			doc: egressRule(`{"toEndpoints":[{}],"toPorts":[{"ports":[{"port":"53","protocol":"UDP"}],"rules":{"dns":[{"matchPattern":"*.svc.cluster.local"},{"matchName":"a*"},{}]}}]}`),
			want: []Problem{e("egress[0].toPorts[0].rules.dns[1].matchName", "must match"),
				e("egress[0].toPorts[0].rules.dns[2]", "one of matchName or matchPattern is required")}},
	})
}

// TestIsNamedPort is pkg/iana svcname_test.go's IsSvcName behaviour.
func TestIsNamedPort(t *testing.T) {
	for port, want := range map[string]bool{"http": true, "HTTP-alt": true, "0x10": true, "h2c": true, "80": false, "": false,
		"-http": false, "http-": false, "a--b": false, "my_port": false, "sixteen-chars-xx": false, "fifteen-chars-x": true} {
		if got := IsNamedPort(port); got != want {
			t.Errorf("IsNamedPort(%q) = %v, want %v", port, got, want)
		}
	}
}
