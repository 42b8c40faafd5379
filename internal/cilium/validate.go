package cilium

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Limits from pkg/policy/api/rule_validation.go and the CRD.
const (
	maxPorts      = 40 // maxPorts, CRD ports maxItems
	maxICMPFields = 40 // maxICMPFields, CRD fields maxItems
	maxLogValue   = 32 // LogConfig.Value maxLength
	maxKafkaTopic = 255
)

var (
	// portCRDPattern is the CRD pattern of PortProtocol.port, verbatim.
	// Note the alternation binds looser than the anchors: a value passes
	// if it starts with up to four digits (or a number up to 65535) or
	// ends with a name, so "99999" passes here and is rejected by the
	// agent's numeric parse.
	portCRDPattern = regexp.MustCompile(`^(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})|([a-zA-Z0-9]-?)*[a-zA-Z](-?[a-zA-Z0-9])*$`)
	// svcNamePattern is pkg/iana IsSvcName's pattern (RFC 6335 service
	// name: alphanumerics and non-consecutive inner dashes, at least one
	// letter), used with a 1..15 length limit.
	svcNamePattern = regexp.MustCompile(`^([a-zA-Z0-9]-?)*[a-zA-Z](-?[a-zA-Z0-9])*$`)
	// fqdnNameCRDPattern and fqdnPatternCRDPattern are the CRD patterns of
	// matchName and matchPattern (fqdn.go FQDNMatchNameRegexString,
	// FQDNMatchPatternRegexString); serverNames use the latter.
	fqdnNameCRDPattern    = regexp.MustCompile(`^([-a-zA-Z0-9_]+[.]?)+$`)
	fqdnPatternCRDPattern = regexp.MustCompile(`^([-a-zA-Z0-9_*]+[.]?)+$`)
	// cidrGroupRefPattern is the CRD pattern of cidrGroupRef (a DNS-1123
	// subdomain).
	cidrGroupRefPattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	// icmpTypeCRDPattern is the CRD pattern of a string ICMP type,
	// verbatim, including its upstream quirks ("ExtendedEcho Reply" with a
	// space; no "ExtendedEchoReply").
	icmpTypeCRDPattern = regexp.MustCompile(`^([0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5]|EchoReply|DestinationUnreachable|Redirect|Echo|RouterAdvertisement|RouterSelection|TimeExceeded|ParameterProblem|Timestamp|TimestampReply|Photuris|ExtendedEchoRequest|ExtendedEcho Reply|PacketTooBig|ParameterProblem|EchoRequest|MulticastListenerQuery|MulticastListenerReport|MulticastListenerDone|RouterSolicitation|RouterAdvertisement|NeighborSolicitation|NeighborAdvertisement|RedirectMessage|RouterRenumbering|ICMPNodeInformationQuery|ICMPNodeInformationResponse|InverseNeighborDiscoverySolicitation|InverseNeighborDiscoveryAdvertisement|HomeAgentAddressDiscoveryRequest|HomeAgentAddressDiscoveryReply|MobilePrefixSolicitation|MobilePrefixAdvertisement|DuplicateAddressRequestCodeSuffix|DuplicateAddressConfirmationCodeSuffix)$`)
	// printable is LogConfig.Value's CRD pattern: no Unicode "other"
	// (control, format, unassigned, private use) characters.
	printable = regexp.MustCompile(`^\PC*$`)
	// kafkaTopicChars is kafka.TopicValidChar. Upstream writes it as a Go
	// raw string with doubled backslashes, so a backslash is accepted too.
	kafkaTopicChars = regexp.MustCompile(`^[a-zA-Z0-9\\._\\-]+$`)
)

// crdEntities is the CRD enum of fromEntities/toEntities (entity.go
// kubebuilder marker). The agent's EntitySelectorMapping also knows
// world-ipv4 and world-ipv6, but the API server rejects them first.
var crdEntities = []Entity{"all", "world", "cluster", "host", "init", "ingress", "unmanaged", "remote-node", "health", "none", "kube-apiserver"}

// crdProtocols is the CRD enum of PortProtocol.protocol (l4.go, Cilium
// 1.19; VRRP and IGMP are the "extended IP protocols").
var crdProtocols = []L4Proto{ProtoTCP, ProtoUDP, ProtoSCTP, ProtoVRRP, ProtoIGMP, ProtoAny}

// ICMP type names per family (icmp.go icmpIpv4TypeNameToCode and
// icmpIpv6TypeNameToCode).
var (
	icmpV4Names = []string{"EchoReply", "DestinationUnreachable", "Redirect", "Echo", "EchoRequest", "RouterAdvertisement", "RouterSelection", "TimeExceeded", "ParameterProblem", "Timestamp", "TimestampReply", "Photuris", "ExtendedEchoRequest", "ExtendedEchoReply"}
	icmpV6Names = []string{"DestinationUnreachable", "PacketTooBig", "TimeExceeded", "ParameterProblem", "EchoRequest", "EchoReply", "MulticastListenerQuery", "MulticastListenerReport", "MulticastListenerDone", "RouterSolicitation", "RouterAdvertisement", "NeighborSolicitation", "NeighborAdvertisement", "RedirectMessage", "RouterRenumbering", "ICMPNodeInformationQuery", "ICMPNodeInformationResponse", "InverseNeighborDiscoverySolicitation", "InverseNeighborDiscoveryAdvertisement", "HomeAgentAddressDiscoveryRequest", "HomeAgentAddressDiscoveryReply", "MobilePrefixSolicitation", "MobilePrefixAdvertisement", "DuplicateAddressRequestCodeSuffix", "DuplicateAddressConfirmationCodeSuffix", "ExtendedEchoRequest", "ExtendedEchoReply"}
)

// kafkaAPIKeys is kafka.APIKeyMap's key set.
var kafkaAPIKeys = []string{"produce", "fetch", "offsets", "metadata", "leaderandisr", "stopreplica", "updatemetadata", "controlledshutdown", "offsetcommit", "offsetfetch", "findcoordinator", "joingroup", "heartbeat", "leavegroup", "syncgroup", "describegroups", "listgroups", "saslhandshake", "apiversions", "createtopics", "deletetopics", "deleterecords", "initproducerid", "offsetforleaderepoch", "addpartitionstotxn", "addoffsetstotxn", "endtxn", "writetxnmarkers", "txnoffsetcommit", "describeacls", "createacls", "deleteacls", "describeconfigs", "alterconfigs"}

// ValidateRule checks one Cilium rule (the spec of a CNP or CCNP, or one of
// its specs) with the checks the API server applies through the CRD schema
// and those the agent applies before importing it (Rule.Validate and its
// helpers in pkg/policy/api/rule_validation.go, plus the namespace handling
// of pkg/k8s/apis/cilium.io/utils/utils.go). namespaced is true for a
// CiliumNetworkPolicy and false for a CiliumClusterwideNetworkPolicy.
//
// Unlike the agent, which stops at the first error, ValidateRule reports
// every problem it finds, in document order. Paths are relative to the rule.
func ValidateRule(r *Rule, namespaced bool) []Problem {
	rep := &report{}
	if r == nil {
		rep.errorf("", "rule is empty")
		return rep.probs
	}
	v := ruleValidator{report: rep, namespaced: namespaced, hostPolicy: r.NodeSelector != nil}
	v.rule(r)
	return rep.probs
}

type ruleValidator struct {
	*report
	namespaced bool
	// hostPolicy is set for rules with a nodeSelector, which Cilium
	// enforces on the host firewall (no L7 support).
	hostPolicy bool
}

func (v *ruleValidator) rule(r *Rule) {
	// rule_validation.go Rule.Validate and the CRD oneOf on
	// endpointSelector/nodeSelector.
	switch {
	case r.EndpointSelector == nil && r.NodeSelector == nil:
		v.errorf("", "rule must have one of EndpointSelector or NodeSelector")
	case r.EndpointSelector != nil && r.NodeSelector != nil:
		v.errorf("", "rule cannot have both EndpointSelector and NodeSelector")
	}
	if r.NodeSelector != nil && v.namespaced {
		// cnp_types.go CiliumNetworkPolicy.Parse: host policies are
		// cluster-wide.
		v.errorf("nodeSelector", "rule cannot have NodeSelector: nodeSelector is only allowed in a CiliumClusterwideNetworkPolicy")
	}
	if r.EndpointSelector != nil {
		validateCiliumSelector(v.report, "endpointSelector", r.EndpointSelector)
		if v.namespaced {
			v.namespaceMatch(r.EndpointSelector)
		}
	}
	if r.NodeSelector != nil {
		validateCiliumSelector(v.report, "nodeSelector", r.NodeSelector)
	}

	// The CRD's anyOf requires one of the four keys to be present (an
	// empty list counts); the agent's Rule.Validate then requires one of
	// them to be non-empty, so a rule made only of empty lists is
	// rejected even though it passes admission.
	switch {
	case r.Ingress == nil && r.IngressDeny == nil && r.Egress == nil && r.EgressDeny == nil:
		v.errorf("", "must set at least one of ingress, ingressDeny, egress or egressDeny (CRD anyOf)")
	case len(r.Ingress) == 0 && len(r.IngressDeny) == 0 && len(r.Egress) == 0 && len(r.EgressDeny) == 0:
		v.errorf("", "rule must have at least one of Ingress, IngressDeny, Egress, EgressDeny (empty lists do not count)")
	}

	for i := range r.Ingress {
		v.ingress(index("ingress", i), &r.Ingress[i])
	}
	for i := range r.IngressDeny {
		v.ingressDeny(index("ingressDeny", i), &r.IngressDeny[i])
	}
	for i := range r.Egress {
		v.egress(index("egress", i), &r.Egress[i])
	}
	for i := range r.EgressDeny {
		v.egressDeny(index("egressDeny", i), &r.EgressDeny[i])
	}

	for i, l := range r.Labels {
		if l.Key == "" {
			v.errorf(child(index("labels", i), "key"), "key is required")
		}
	}

	// enableDefaultDeny only acts through the rule's own entries
	// (RulesToPolicyEntries computes it per entry), so asking for
	// default-deny in a direction without entries does nothing
	// (cilium/cilium#35558).
	if d := r.EnableDefaultDeny.Ingress; d != nil && *d && len(r.Ingress) == 0 && len(r.IngressDeny) == 0 {
		v.warnf("enableDefaultDeny.ingress", "has no effect: the rule has no ingress or ingressDeny entries")
	}
	if d := r.EnableDefaultDeny.Egress; d != nil && *d && len(r.Egress) == 0 && len(r.EgressDeny) == 0 {
		v.warnf("enableDefaultDeny.egress", "has no effect: the rule has no egress or egressDeny entries")
	}

	// rule.go LogConfig: +kubebuilder:validation:MaxLength=32,
	// Pattern=`^\PC*$` (the API server counts characters, not bytes).
	if n := utf8.RuneCountInString(r.Log.Value); n > maxLogValue {
		v.errorf("log.value", "may not be longer than %d characters (has %d)", maxLogValue, n)
	}
	if !printable.MatchString(r.Log.Value) {
		v.errorf("log.value", "must contain only printable characters")
	}
}

// namespaceMatch reports a CNP endpointSelector that names the pod
// namespace label. getEndpointSelector (utils.go) always adds
// k8s:io.kubernetes.pod.namespace=<policy namespace>: a k8s-sourced
// namespace match is logged as illegal and replaced, and any other
// namespace requirement is ANDed with it.
func (v *ruleValidator) namespaceMatch(sel *metav1.LabelSelector) {
	if selectorHasExtKey(sel, extReservedInit) {
		// Selectors for initializing endpoints get no namespace match.
		return
	}
	if selectorHasExtKey(sel, extPodNamespaceK8s) {
		v.warnf("endpointSelector", "k8s:%s is ignored in a CiliumNetworkPolicy: the endpointSelector always applies in the policy's own namespace, and Cilium overrides this match", podNamespaceLabel)
	}
	if selectorHasExtKey(sel, extPodNamespaceAny) {
		v.warnf("endpointSelector", "%s in a CiliumNetworkPolicy is ANDed with the policy's own namespace; unless they agree the rule selects nothing", podNamespaceLabel)
	}
}

// l3Member is one peer field of a rule element, for the "one L3 selector
// type per element" check.
type l3Member struct {
	name string // Cilium's Go field name, as in its error messages
	n    int
}

// exclusiveL3 reports the first two non-empty peer fields of an element
// (IngressCommonRule.Validate / EgressCommonRule.Validate: "combining %s and
// %s is not supported yet"). An empty list does not count.
func (v *ruleValidator) exclusiveL3(path string, members []l3Member) {
	var set []string
	for _, m := range members {
		if m.n > 0 {
			set = append(set, m.name)
		}
	}
	if len(set) > 1 {
		v.errorf(path, "combining %s and %s is not supported yet", set[0], set[1])
	}
}

func (v *ruleValidator) ingressCommon(path string, c *IngressCommonRule) {
	v.exclusiveL3(path, []l3Member{
		{"FromEndpoints", len(c.FromEndpoints)},
		{"FromCIDR", len(c.FromCIDR)},
		{"FromCIDRSet", len(c.FromCIDRSet)},
		{"FromEntities", len(c.FromEntities)},
		{"FromNodes", len(c.FromNodes)},
		{"FromGroups", len(c.FromGroups)},
	})
	for i := range c.FromEndpoints {
		validateCiliumSelector(v.report, index(child(path, "fromEndpoints"), i), &c.FromEndpoints[i])
	}
	v.requires(child(path, "fromRequires"), len(c.FromRequires))
	v.nodes(child(path, "fromNodes"), c.FromNodes)
	for i, cidr := range c.FromCIDR {
		v.cidr(index(child(path, "fromCIDR"), i), cidr)
	}
	for i := range c.FromCIDRSet {
		v.cidrRule(index(child(path, "fromCIDRSet"), i), &c.FromCIDRSet[i])
	}
	v.entities(child(path, "fromEntities"), c.FromEntities)
}

func (v *ruleValidator) egressCommon(path string, c *EgressCommonRule, fqdns int, toPorts int) {
	v.exclusiveL3(path, []l3Member{
		{"ToEndpoints", len(c.ToEndpoints)},
		{"ToCIDR", len(c.ToCIDR)},
		{"ToCIDRSet", len(c.ToCIDRSet)},
		{"ToEntities", len(c.ToEntities)},
		{"ToServices", len(c.ToServices)},
		{"ToGroups", len(c.ToGroups)},
		{"ToNodes", len(c.ToNodes)},
		{"ToFQDNs", fqdns},
	})
	// l3DependentL4Support: ToServices=false in Cilium 1.16-1.18
	// (cilium/cilium#20067, #37057); see the package documentation.
	if len(c.ToServices) > 0 && toPorts > 0 {
		v.errorf(path, "combining ToServices and ToPorts is not supported yet")
	}
	for i := range c.ToEndpoints {
		validateCiliumSelector(v.report, index(child(path, "toEndpoints"), i), &c.ToEndpoints[i])
	}
	v.requires(child(path, "toRequires"), len(c.ToRequires))
	v.nodes(child(path, "toNodes"), c.ToNodes)
	for i, cidr := range c.ToCIDR {
		v.cidr(index(child(path, "toCIDR"), i), cidr)
	}
	for i := range c.ToCIDRSet {
		v.cidrRule(index(child(path, "toCIDRSet"), i), &c.ToCIDRSet[i])
	}
	v.entities(child(path, "toEntities"), c.ToEntities)
	for i, s := range c.ToServices {
		p := index(child(path, "toServices"), i)
		if s.K8sServiceSelector != nil {
			sp := child(p, "k8sServiceSelector")
			if s.K8sServiceSelector.Selector == nil {
				v.errorf(child(sp, "selector"), "required value")
			} else {
				validateK8sSelector(v.report, child(sp, "selector"), s.K8sServiceSelector.Selector)
			}
		}
	}
}

// requires reports fromRequires/toRequires entries: deprecated in Cilium
// 1.17, support removed in 1.19 (cilium/cilium#42615), where the CRD keeps
// the field only with maxItems 0 (#43167).
func (v *ruleValidator) requires(path string, n int) {
	if n > 0 {
		v.errorf(path, "must have at most 0 items: FromRequires/ToRequires were deprecated in Cilium 1.17 and removed in 1.19")
	}
}

// nodes checks fromNodes/toNodes selectors. They need the agent flag
// enable-node-selector-labels, which is off by default
// (ErrFromToNodesRequiresNodeSelectorOption).
func (v *ruleValidator) nodes(path string, sels []metav1.LabelSelector) {
	if len(sels) > 0 {
		v.warnf(path, "FromNodes/ToNodes rules can only be applied when the \"enable-node-selector-labels\" flag is set (it is off by default; otherwise Cilium rejects the rule)")
	}
	for i := range sels {
		validateCiliumSelector(v.report, index(path, i), &sels[i])
	}
}

func (v *ruleValidator) entities(path string, es []Entity) {
	for i, e := range es {
		if slices.Contains(crdEntities, e) {
			continue
		}
		if e == "world-ipv4" || e == "world-ipv6" {
			v.errorf(index(path, i), "unsupported value %q: the agent knows this entity but the CRD enum does not (use toCIDR 0.0.0.0/0 or ::/0)", e)
			continue
		}
		v.errorf(index(path, i), "unsupported entity: %s", e)
	}
}

// cidr checks a fromCIDR/toCIDR entry: CRD format "cidr" (net.ParseCIDR),
// which rejects a bare IP address, and the agent's CIDR.Validate
// (netip.ParsePrefix).
func (v *ruleValidator) cidr(path string, c CIDR) (netip.Prefix, bool) {
	s := string(c)
	if s == "" {
		v.errorf(path, "IP must be specified")
		return netip.Prefix{}, false
	}
	if _, _, err := net.ParseCIDR(s); err != nil {
		if _, aerr := netip.ParseAddr(s); aerr == nil {
			v.errorf(path, "%q is not a CIDR: the CRD (format: cidr) rejects bare IP addresses; write it with a prefix length such as /32 or /128", s)
		} else {
			v.errorf(path, "%q is not a valid CIDR", s)
		}
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		v.errorf(path, "unable to parse CIDR: %v", err)
		return netip.Prefix{}, false
	}
	return p, true
}

// cidrRule checks a fromCIDRSet/toCIDRSet entry (CIDRRule.Validate and the
// CRD oneOf).
func (v *ruleValidator) cidrRule(path string, c *CIDRRule) {
	n := 0
	for _, set := range []bool{c.Cidr != "", c.CIDRGroupRef != "", c.CIDRGroupSelector != nil} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		v.errorf(path, "one of cidr, cidrGroupRef, or cidrGroupSelector is required")
	case n > 1:
		v.errorf(path, "more than one of cidr, cidrGroupRef, or cidrGroupSelector may not be set")
	}
	if c.CIDRGroupRef != "" {
		p := child(path, "cidrGroupRef")
		if len(c.CIDRGroupRef) > 253 {
			v.errorf(p, "may not be longer than 253 characters")
		}
		if !cidrGroupRefPattern.MatchString(c.CIDRGroupRef) {
			v.errorf(p, "%q must be a lowercase DNS-1123 subdomain", c.CIDRGroupRef)
		}
	}
	if c.CIDRGroupSelector != nil {
		validateK8sSelector(v.report, child(path, "cidrGroupSelector"), c.CIDRGroupSelector)
	}
	if (c.CIDRGroupRef != "" || c.CIDRGroupSelector != nil) && len(c.ExceptCIDRs) > 0 {
		// CIDRRule.Validate returns before looking at except for group
		// references; the CRD says the combination is not supported yet.
		v.warnf(child(path, "except"), "except is not supported together with cidrGroupRef or cidrGroupSelector and is ignored")
	}
	if c.Cidr == "" {
		return
	}
	prefix, ok := v.cidr(child(path, "cidr"), c.Cidr)
	for i, e := range c.ExceptCIDRs {
		p := index(child(path, "except"), i)
		if _, _, err := net.ParseCIDR(string(e)); err != nil {
			v.errorf(p, "%q is not a valid CIDR", string(e))
			continue
		}
		except, err := netip.ParsePrefix(string(e))
		if err != nil {
			v.errorf(p, "unable to parse CIDR: %v", err)
			continue
		}
		// Containment also rules out mixing address families. The prefix
		// length test is the fix of cilium/cilium#44637.
		if ok && (prefix.Bits() > except.Bits() || !prefix.Contains(except.Addr())) {
			v.errorf(p, "allow CIDR prefix %s does not contain exclude CIDR prefix %s", c.Cidr, e)
		}
	}
}

// countL7 mirrors countL7Rules: per L7 type, how many rules the element's
// ports carry, and whether any port has a non-empty Rules at all.
func countL7(ports []PortRule) (dns, http, kafka int, any bool) {
	for _, p := range ports {
		if p.Rules.IsEmpty() {
			continue
		}
		any = true
		dns += len(p.Rules.DNS)
		http += len(p.Rules.HTTP)
		kafka += len(p.Rules.Kafka)
	}
	return
}

func (v *ruleValidator) ingress(path string, r *IngressRule) {
	v.ingressCommon(path, &r.IngressCommonRule)
	_, _, _, anyL7 := countL7(r.ToPorts)
	if v.hostPolicy && anyL7 {
		v.errorf(path, "L7 policy is not supported on host ingress yet")
	}
	v.icmpWithPorts(path, len(r.ICMPs), len(r.ToPorts))
	for i := range r.ToPorts {
		v.portRule(index(child(path, "toPorts"), i), &r.ToPorts[i], true)
	}
	v.icmps(child(path, "icmps"), r.ICMPs)
	v.authentication(child(path, "authentication"), r.Authentication)
}

func (v *ruleValidator) ingressDeny(path string, r *IngressDenyRule) {
	v.ingressCommon(path, &r.IngressCommonRule)
	v.icmpWithPorts(path, len(r.ICMPs), len(r.ToPorts))
	for i := range r.ToPorts {
		v.portDenyRule(index(child(path, "toPorts"), i), &r.ToPorts[i])
	}
	v.icmps(child(path, "icmps"), r.ICMPs)
}

func (v *ruleValidator) egress(path string, r *EgressRule) {
	v.egressCommon(path, &r.EgressCommonRule, len(r.ToFQDNs), len(r.ToPorts))
	_, http, kafka, _ := countL7(r.ToPorts)
	if v.hostPolicy {
		// EgressRule.Validate: DNS is the only L7 type on host egress.
		if http > 0 {
			v.errorf(path, "L7 protocol HTTP is not supported on host egress yet")
		}
		if kafka > 0 {
			v.errorf(path, "L7 protocol Kafka is not supported on host egress yet")
		}
	}
	v.icmpWithPorts(path, len(r.ICMPs), len(r.ToPorts))
	for i := range r.ToPorts {
		v.portRule(index(child(path, "toPorts"), i), &r.ToPorts[i], false)
	}
	v.icmps(child(path, "icmps"), r.ICMPs)
	for i, f := range r.ToFQDNs {
		v.fqdnSelector(index(child(path, "toFQDNs"), i), f.MatchName, f.MatchPattern)
	}
	v.authentication(child(path, "authentication"), r.Authentication)
}

func (v *ruleValidator) egressDeny(path string, r *EgressDenyRule) {
	v.egressCommon(path, &r.EgressCommonRule, 0, len(r.ToPorts))
	v.icmpWithPorts(path, len(r.ICMPs), len(r.ToPorts))
	for i := range r.ToPorts {
		v.portDenyRule(index(child(path, "toPorts"), i), &r.ToPorts[i])
	}
	v.icmps(child(path, "icmps"), r.ICMPs)
}

// icmpWithPorts is errUnsupportedICMPWithToPorts.
func (v *ruleValidator) icmpWithPorts(path string, icmps, ports int) {
	if icmps > 0 && ports > 0 {
		v.errorf(child(path, "icmps"), "the ICMPs block may only be present without ToPorts. Define a separate rule to use ToPorts")
	}
}

func (v *ruleValidator) authentication(path string, a *Authentication) {
	if a == nil {
		return
	}
	switch a.Mode {
	case "disabled", "required", "test-always-fail":
	case "":
		v.errorf(child(path, "mode"), "required value")
	default:
		v.errorf(child(path, "mode"), "unsupported value %q: supported values: \"disabled\", \"required\", \"test-always-fail\"", a.Mode)
	}
}

// portRule is PortRule.Validate plus the CRD constraints of PortRule.
func (v *ruleValidator) portRule(path string, pr *PortRule, ingress bool) {
	hasDNS := pr.Rules != nil && len(pr.Rules.DNS) > 0
	rulesEmpty := pr.Rules.IsEmpty()
	if ingress && hasDNS {
		v.errorf(child(child(path, "rules"), "dns"), "DNS rules are not allowed on ingress")
	}

	snPath := child(path, "serverNames")
	if pr.ServerNames != nil && len(pr.ServerNames) == 0 {
		v.errorf(snPath, "must have at least 1 item")
	}
	if len(pr.ServerNames) > 0 && !rulesEmpty && pr.TerminatingTLS == nil {
		v.errorf(snPath, "ServerNames are not allowed with L7 rules without TLS termination")
	}
	for i, sn := range pr.ServerNames {
		p := index(snPath, i)
		switch {
		case sn == "":
			v.errorf(p, "empty server name is not allowed")
		case len(sn) > MaxFQDNLength:
			v.errorf(p, "may not be longer than %d characters", MaxFQDNLength)
		case !fqdnPatternCRDPattern.MatchString(sn):
			v.errorf(p, "%q must match %s", sn, fqdnPatternCRDPattern)
		}
		if slices.Index(pr.ServerNames, sn) < i {
			v.errorf(p, "duplicate value %q", sn)
		}
	}

	if len(pr.Ports) > maxPorts {
		v.errorf(child(path, "ports"), "too many ports, the max is %d", maxPorts)
	}
	haveZero := false
	for i := range pr.Ports {
		pp := &pr.Ports[i]
		p := index(child(path, "ports"), i)
		if v.portProtocol(p, pp, hasDNS) {
			haveZero = true
		}
		// DNS L7 rules can be TCP, UDP or ANY; all other L7 rules are TCP
		// only. The agent compares the protocol as written, so an omitted
		// protocol (ANY) is rejected too.
		if !rulesEmpty && !hasDNS && pp.Protocol != ProtoTCP {
			proto := pp.Protocol
			if proto == "" {
				proto = ProtoAny
			}
			v.errorf(child(p, "protocol"), "L7 rules can only apply to TCP (not %s) except for DNS rules", proto)
		}
	}

	if l := pr.Listener; l != nil {
		lp := child(path, "listener")
		if ingress {
			v.errorf(lp, "Listener is not allowed on ingress (%s)", l.Name)
		}
		if !rulesEmpty {
			v.errorf(lp, "Listener is not allowed with L7 rules (%s)", l.Name)
		}
		if l.Name == "" {
			v.errorf(child(lp, "name"), "required value")
		}
		if l.EnvoyConfig == nil {
			v.errorf(child(lp, "envoyConfig"), "required value")
		} else {
			if l.EnvoyConfig.Name == "" {
				v.errorf(child(child(lp, "envoyConfig"), "name"), "required value")
			}
			switch l.EnvoyConfig.Kind {
			case "", "CiliumEnvoyConfig", "CiliumClusterwideEnvoyConfig":
			default:
				v.errorf(child(child(lp, "envoyConfig"), "kind"), "unsupported value %q: supported values: \"CiliumEnvoyConfig\", \"CiliumClusterwideEnvoyConfig\"", l.EnvoyConfig.Kind)
			}
		}
		if l.Priority != nil && (*l.Priority < 1 || *l.Priority > 100) {
			v.errorf(child(lp, "priority"), "must be between 1 and 100, inclusive")
		}
	}
	v.tls(child(path, "terminatingTLS"), pr.TerminatingTLS)
	v.tls(child(path, "originatingTLS"), pr.OriginatingTLS)

	if !rulesEmpty {
		rp := child(path, "rules")
		if haveZero {
			v.errorf(rp, "L7 rules can not be used when a port is 0")
		}
		v.l7Rules(rp, pr.Rules, len(pr.Ports))
	}
}

// portDenyRule is PortDenyRule.Validate.
func (v *ruleValidator) portDenyRule(path string, pr *PortDenyRule) {
	if len(pr.Ports) > maxPorts {
		v.errorf(child(path, "ports"), "too many ports, the max is %d", maxPorts)
	}
	for i := range pr.Ports {
		v.portProtocol(index(child(path, "ports"), i), &pr.Ports[i], false)
	}
}

func (v *ruleValidator) tls(path string, t *TLSContext) {
	if t == nil {
		return
	}
	if t.Secret == nil {
		v.errorf(child(path, "secret"), "required value")
	} else if t.Secret.Name == "" {
		v.errorf(child(child(path, "secret"), "name"), "required value")
	}
}

// IsNamedPort reports whether a PortProtocol port is a port name rather
// than a number: an IANA service name (pkg/iana IsSvcName, RFC 6335), 1 to
// 15 alphanumerics and inner non-consecutive dashes with at least one
// letter. Cilium compares named ports case-insensitively (it lower-cases
// them in PortProtocol.Sanitize). Note that "0x10" is a name, not 16.
func IsNamedPort(port string) bool { return isSvcName(port) }

// isSvcName is pkg/iana IsSvcName.
func isSvcName(s string) bool {
	return len(s) > 0 && len(s) <= 15 && svcNamePattern.MatchString(s)
}

// portProtocol is PortProtocol.Validate plus the CRD constraints. It
// reports whether the port is the numeric port 0 (all ports).
func (v *ruleValidator) portProtocol(path string, pp *PortProtocol, hasDNS bool) (isZero bool) {
	portPath, endPath, protoPath := child(path, "port"), child(path, "endPort"), child(path, "protocol")

	if pp.Protocol != "" && !slices.Contains(crdProtocols, pp.Protocol) {
		hint := ""
		switch up := L4Proto(strings.ToUpper(string(pp.Protocol))); {
		case slices.Contains(crdProtocols, up):
			hint = fmt.Sprintf(" (the CRD enum is case-sensitive: use %q)", up)
		case up == "ICMP" || up == "ICMPV6":
			hint = " (use icmps for ICMP)"
		}
		v.errorf(protoPath, "unsupported value %q: supported values: \"TCP\", \"UDP\", \"SCTP\", \"VRRP\", \"IGMP\", \"ANY\"%s", pp.Protocol, hint)
	}
	if pp.EndPort < 0 || pp.EndPort > 65535 {
		v.errorf(endPath, "must be between 0 and 65535, inclusive")
	}

	switch {
	case pp.Port == "":
		// Only allowed with enable-extended-ip-protocols (off by default).
		v.errorf(portPath, "port must be specified")
		return false
	case !portCRDPattern.MatchString(pp.Port):
		v.errorf(portPath, "%q must be a port number (0-65535) or a port name (IANA service name)", pp.Port)
		return false
	case isSvcName(pp.Port):
		// A named port; Cilium lower-cases it and ignores endPort.
		if pp.EndPort != 0 {
			v.warnf(endPath, "endPort is ignored for a named port")
		}
		return false
	}
	if pp.Port != "0" && (pp.Protocol == ProtoVRRP || pp.Protocol == ProtoIGMP) {
		v.errorf(portPath, "port must be empty or 0")
	}
	// Base 0 as upstream: "010" is octal 8 and "08" does not parse.
	n, err := strconv.ParseUint(pp.Port, 0, 16)
	if err != nil {
		v.errorf(portPath, "unable to parse port: %v", err)
		return false
	}
	if hasDNS && pp.EndPort > int32(n) {
		v.errorf(endPath, "DNS rules do not support port ranges")
	} else if pp.EndPort != 0 && pp.EndPort < int32(n) {
		// rule_validation.go has no such check, so Cilium accepts it.
		v.warnf(endPath, "endPort %d is lower than port %d: the range is empty", pp.EndPort, n)
	}
	return n == 0
}

// l7Rules is L7Rules.Validate.
func (v *ruleValidator) l7Rules(path string, r *L7Rules, nPorts int) {
	types := 0
	if r.HTTP != nil {
		types++
		for i := range r.HTTP {
			v.http(index(child(path, "http"), i), &r.HTTP[i])
		}
	}
	if r.Kafka != nil {
		types++
		v.warnf(child(path, "kafka"), "Kafka rules are deprecated (since Cilium 1.16) and no longer supported by newer Cilium releases")
		for i := range r.Kafka {
			v.kafka(index(child(path, "kafka"), i), &r.Kafka[i])
		}
	}
	if r.DNS != nil {
		if nPorts == 0 {
			v.errorf(child(path, "dns"), "port 53 must be specified for DNS rules")
		} else {
			types++
		}
		for i, d := range r.DNS {
			v.fqdnSelector(index(child(path, "dns"), i), d.MatchName, d.MatchPattern)
		}
	}
	if r.L7 != nil && r.L7Proto == "" {
		v.errorf(child(path, "l7"), "'l7' may only be specified when a 'l7proto' is also specified")
	}
	if r.L7Proto != "" {
		types++
		v.warnf(child(path, "l7proto"), "generic L7 (proxylib) rules are deprecated and no longer supported by newer Cilium releases")
		for i, kv := range r.L7 {
			if _, ok := kv[""]; ok {
				v.errorf(index(child(path, "l7"), i), "empty key not allowed")
			}
		}
	}
	if types > 1 {
		v.errorf(path, "multiple L7 protocol rule types specified in single rule")
	}
}

// http is PortRuleHTTP.Validate, plus a compile check of host (the agent
// leaves it to Envoy, which rejects the listener configuration).
func (v *ruleValidator) http(path string, h *PortRuleHTTP) {
	for _, f := range []struct{ name, re string }{{"path", h.Path}, {"method", h.Method}, {"host", h.Host}} {
		if f.re == "" {
			continue
		}
		if _, err := regexp.Compile(f.re); err != nil {
			v.errorf(child(path, f.name), "invalid regular expression %q: %v", f.re, err)
		}
	}
	for i, hdr := range h.Headers {
		p := index(child(path, "headers"), i)
		name, _, _ := ParseHeaderRule(hdr)
		switch {
		case name == "":
			v.errorf(p, "header %q has no name", hdr)
		case !isHTTPToken(name):
			v.warnf(p, "header name %q is not a valid HTTP header name; no request can match it", name)
		}
	}
	for i, m := range h.HeaderMatches {
		p := index(child(path, "headerMatches"), i)
		if m == nil {
			v.errorf(p, "must be an object")
			continue
		}
		if m.Name == "" {
			v.errorf(child(p, "name"), "header name missing")
		}
		switch m.Mismatch {
		case "", "LOG", "ADD", "DELETE", "REPLACE":
		default:
			v.errorf(child(p, "mismatch"), "invalid header action: %s", m.Mismatch)
		}
		if m.Secret != nil && m.Secret.Name == "" {
			v.errorf(child(child(p, "secret"), "name"), "secret name missing")
		}
	}
}

// ParseHeaderRule splits a PortRuleHTTP.headers entry the way Cilium builds
// the Envoy header matcher: at the first space into name and value, with a
// trailing ':' removed from the name. hasValue is false for a bare name,
// which only requires the header to be present; otherwise the value must
// match exactly (it is not a regular expression).
func ParseHeaderRule(s string) (name, value string, hasValue bool) {
	name, value, hasValue = strings.Cut(s, " ")
	return strings.TrimSuffix(name, ":"), value, hasValue
}

// isHTTPToken reports whether s is an RFC 7230 token, the syntax of an HTTP
// header name.
func isHTTPToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// kafka is kafka.PortRule.Sanitize.
func (v *ruleValidator) kafka(path string, k *PortRuleKafka) {
	if k.APIKey != "" && k.Role != "" {
		v.errorf(path, "cannot set both Role %q and APIKey %q together", k.Role, k.APIKey)
	}
	if k.APIKey != "" && !slices.Contains(kafkaAPIKeys, strings.ToLower(k.APIKey)) {
		v.errorf(child(path, "apiKey"), "invalid Kafka APIKey %q", k.APIKey)
	}
	if k.Role != "" {
		if r := strings.ToLower(k.Role); r != "produce" && r != "consume" {
			v.errorf(child(path, "role"), "invalid Kafka Role %q", k.Role)
		}
	}
	if k.APIVersion != "" {
		if n, err := strconv.ParseInt(k.APIVersion, 10, 16); err != nil || n < 0 {
			v.errorf(child(path, "apiVersion"), "invalid Kafka APIVersion %q", k.APIVersion)
		}
	}
	if k.Topic != "" {
		if len(k.Topic) > maxKafkaTopic {
			v.errorf(child(path, "topic"), "kafka topic exceeds maximum len of %d", maxKafkaTopic)
		}
		if !kafkaTopicChars.MatchString(k.Topic) {
			v.errorf(child(path, "topic"), "invalid Kafka Topic name %q", k.Topic)
		}
	}
}

// fqdnSelector checks a toFQDNs entry or a DNS rule: the CRD oneOf,
// maxLength and patterns, then FQDNSelector.Validate / matchpattern.
func (v *ruleValidator) fqdnSelector(path, name, pattern string) {
	switch {
	case name != "" && pattern != "":
		v.errorf(path, "only one of MatchName or MatchPattern is allowed in an FQDNSelector")
	case name == "" && pattern == "":
		v.errorf(path, "one of matchName or matchPattern is required")
	}
	if name != "" {
		p := child(path, "matchName")
		switch {
		case len(name) > MaxFQDNLength:
			v.errorf(p, "may not be longer than %d characters", MaxFQDNLength)
		case !fqdnNameCRDPattern.MatchString(name):
			v.errorf(p, "%q must match %s: only 0-9, a-z, A-Z and ., - and _ characters, with no empty labels", name, fqdnNameCRDPattern)
		}
	}
	if pattern != "" {
		p := child(path, "matchPattern")
		switch {
		case len(pattern) > MaxFQDNLength:
			v.errorf(p, "may not be longer than %d characters", MaxFQDNLength)
		case !fqdnPatternCRDPattern.MatchString(pattern):
			v.errorf(p, "%q must match %s: only 0-9, a-z, A-Z and ., -, _ and * characters, with no empty labels", pattern, fqdnPatternCRDPattern)
		default:
			if _, err := CompileFQDNPattern(pattern); err != nil {
				v.errorf(p, "%v", err)
			}
		}
	}
}

// icmps checks ICMPRule entries (ICMPRule.Validate, ICMPField.UnmarshalJSON
// and the CRD).
func (v *ruleValidator) icmps(path string, rules []ICMPRule) {
	for i, r := range rules {
		rp := index(path, i)
		if len(r.Fields) > maxICMPFields {
			v.errorf(child(rp, "fields"), "too many types, the max is %d", maxICMPFields)
		}
		for j, f := range r.Fields {
			fp := index(child(rp, "fields"), j)
			names := icmpV4Names
			switch f.Family {
			case "", "IPv4":
			case "IPv6":
				names = icmpV6Names
			default:
				v.errorf(child(fp, "family"), "wrong family: %s", f.Family)
			}
			tp := child(fp, "type")
			switch {
			case f.Type == nil:
				v.errorf(tp, "required value")
			case f.Type.Type == intstr.Int:
				if f.Type.IntVal < 0 || f.Type.IntVal > 255 {
					v.warnf(tp, "ICMP type %d is not an 8-bit code (0-255); Cilium accepts it but it can never match", f.Type.IntVal)
				}
			case !icmpTypeCRDPattern.MatchString(f.Type.StrVal):
				v.errorf(tp, "%q must be a number 0-255 or an ICMP type name", f.Type.StrVal)
			default:
				if _, err := strconv.Atoi(f.Type.StrVal); err != nil && !slices.Contains(names, f.Type.StrVal) {
					family := f.Family
					if family == "" {
						family = "IPv4"
					}
					v.errorf(tp, "ICMP type %s not found in %s", f.Type.StrVal, family)
				}
			}
		}
	}
}
