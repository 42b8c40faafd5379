package cilium

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Rule is one CiliumNetworkPolicy rule: the value of a CNP's "spec" or one
// element of its "specs" (pkg/policy/api/rule.go).
//
// Exactly one of EndpointSelector and NodeSelector must be set (CRD oneOf);
// NodeSelector makes a host policy and is only allowed in a
// CiliumClusterwideNetworkPolicy. Selector keys are Cilium label keys
// ("k8s:app", "reserved:host", or an unprefixed key that matches any
// source); they are kept exactly as written.
//
// The four rule lists follow three distinct states, which decoding
// preserves and callers must not conflate (policyentry.go, RulesToPolicyEntries):
//
//   - nil (key absent or null): the rule does not touch that direction.
//   - empty, non-nil ("ingress: []"): present for the CRD's anyOf check, but
//     it yields no policy entry, so it does not put the endpoint into
//     default-deny either; the newest agent rejects a rule whose four lists
//     are all empty.
//   - one or more elements: each element is one policy entry, and by default
//     puts the direction into default-deny. "ingress: [{}]" is therefore
//     deny-all: an entry whose empty L3 selects nothing.
type Rule struct {
	// EndpointSelector selects the endpoints the rule applies to. nil means
	// the key was absent; a non-nil empty selector ("{}") selects every
	// endpoint (in a CNP: every endpoint of the policy's namespace).
	EndpointSelector *metav1.LabelSelector `json:"endpointSelector,omitempty"`
	// NodeSelector selects nodes (host policy). Only valid in a CCNP.
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`

	Ingress     []IngressRule     `json:"ingress,omitempty"`
	IngressDeny []IngressDenyRule `json:"ingressDeny,omitempty"`
	Egress      []EgressRule      `json:"egress,omitempty"`
	EgressDeny  []EgressDenyRule  `json:"egressDeny,omitempty"`

	// Labels are metadata used to re-identify the rule.
	Labels []Label `json:"labels,omitempty"`
	// EnableDefaultDeny overrides, per direction, whether this rule puts
	// the selected endpoints into default-deny (Cilium >= 1.16, CFP-30572).
	EnableDefaultDeny DefaultDenyConfig `json:"enableDefaultDeny,omitzero"`
	// Description is free text.
	Description string `json:"description,omitempty"`
	// Log carries a string copied into Hubble flows matched by this rule.
	Log LogConfig `json:"log,omitzero"`
}

// DefaultDenyConfig is Rule.enableDefaultDeny. A nil field means "not
// specified": the direction defaults to true when the rule has entries for
// it and false otherwise (rule.go, Sanitize). The pointer keeps "false"
// distinguishable from "absent".
type DefaultDenyConfig struct {
	Ingress *bool `json:"ingress,omitempty"`
	Egress  *bool `json:"egress,omitempty"`
}

// LogConfig is Rule.log. Value is at most 32 printable characters (CRD
// maxLength 32, pattern ^\PC*$).
type LogConfig struct {
	Value string `json:"value,omitempty"`
}

// Label is an element of Rule.labels (labels.Label in its object form; the
// CRD types the items as objects with a required key).
type Label struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Source string `json:"source,omitempty"`
}

// IngressCommonRule holds the peer (L3) fields shared by IngressRule and
// IngressDenyRule (ingress.go).
//
// A nil peer slice means the field is absent. A non-nil empty slice
// ("fromEntities: []") makes the element's L3 select nothing
// (mergeEndpointSelectors: "Explicitly check for empty non-nil slices, it
// should not result in any identity being selected"), while an element with
// every peer field absent has an L3 that is a wildcard when toPorts is set.
// Only one peer field may be non-empty per element (rule_validation.go).
type IngressCommonRule struct {
	FromEndpoints []metav1.LabelSelector `json:"fromEndpoints,omitempty"`
	// FromRequires is deprecated since Cilium 1.17 and removed in 1.19
	// (the 1.19 CRD allows zero items). Typed so older documents decode.
	FromRequires []metav1.LabelSelector `json:"fromRequires,omitempty"`
	FromCIDR     []CIDR                 `json:"fromCIDR,omitempty"`
	FromCIDRSet  []CIDRRule             `json:"fromCIDRSet,omitempty"`
	FromEntities []Entity               `json:"fromEntities,omitempty"`
	FromGroups   []Groups               `json:"fromGroups,omitempty"`
	FromNodes    []metav1.LabelSelector `json:"fromNodes,omitempty"`
}

// IngressRule is an element of Rule.ingress.
type IngressRule struct {
	IngressCommonRule `json:",inline"`

	// ToPorts restricts the allowed destination ports (and optionally L7).
	ToPorts []PortRule `json:"toPorts,omitempty"`
	// ICMPs allows ICMP types; may not be combined with ToPorts.
	ICMPs []ICMPRule `json:"icmps,omitempty"`
	// Authentication requires mutual authentication for allowed traffic.
	Authentication *Authentication `json:"authentication,omitempty"`
}

// IngressDenyRule is an element of Rule.ingressDeny. Deny rules have no L7
// part: PortDenyRule has ports only, so "rules" under a deny rule's toPorts
// is an unknown field to the CRD and to strict decoding.
type IngressDenyRule struct {
	IngressCommonRule `json:",inline"`

	ToPorts []PortDenyRule `json:"toPorts,omitempty"`
	ICMPs   []ICMPRule     `json:"icmps,omitempty"`
}

// EgressCommonRule holds the peer (L3) fields shared by EgressRule and
// EgressDenyRule (egress.go). Nil versus empty follows IngressCommonRule.
type EgressCommonRule struct {
	ToEndpoints []metav1.LabelSelector `json:"toEndpoints,omitempty"`
	// ToRequires is deprecated since Cilium 1.17 and removed in 1.19.
	ToRequires []metav1.LabelSelector `json:"toRequires,omitempty"`
	ToCIDR     []CIDR                 `json:"toCIDR,omitempty"`
	ToCIDRSet  []CIDRRule             `json:"toCIDRSet,omitempty"`
	ToEntities []Entity               `json:"toEntities,omitempty"`
	ToServices []Service              `json:"toServices,omitempty"`
	ToGroups   []Groups               `json:"toGroups,omitempty"`
	ToNodes    []metav1.LabelSelector `json:"toNodes,omitempty"`
}

// EgressRule is an element of Rule.egress.
type EgressRule struct {
	EgressCommonRule `json:",inline"`

	// ToFQDNs allows destinations by DNS name; the IPs are learnt from DNS
	// responses seen by the DNS proxy. Not allowed in deny rules.
	ToFQDNs        []FQDNSelector  `json:"toFQDNs,omitempty"`
	ToPorts        []PortRule      `json:"toPorts,omitempty"`
	ICMPs          []ICMPRule      `json:"icmps,omitempty"`
	Authentication *Authentication `json:"authentication,omitempty"`
}

// EgressDenyRule is an element of Rule.egressDeny. It has neither toFQDNs
// nor L7 rules (see IngressDenyRule).
type EgressDenyRule struct {
	EgressCommonRule `json:",inline"`

	ToPorts []PortDenyRule `json:"toPorts,omitempty"`
	ICMPs   []ICMPRule     `json:"icmps,omitempty"`
}

// CIDR is an IP prefix such as "10.0.0.0/8". The CRD validates it with
// format "cidr", so a bare IP address is rejected at admission.
type CIDR string

// CIDRRule is an element of fromCIDRSet/toCIDRSet (cidr.go). Exactly one of
// Cidr, CIDRGroupRef and CIDRGroupSelector must be set.
type CIDRRule struct {
	Cidr CIDR `json:"cidr,omitempty"`
	// CIDRGroupRef names a CiliumCIDRGroup.
	CIDRGroupRef string `json:"cidrGroupRef,omitempty"`
	// CIDRGroupSelector selects CiliumCIDRGroups by their (plain
	// Kubernetes) labels.
	CIDRGroupSelector *metav1.LabelSelector `json:"cidrGroupSelector,omitempty"`
	// ExceptCIDRs are carved out of Cidr; each must lie inside it.
	ExceptCIDRs []CIDR `json:"except,omitempty"`
}

// Entity names a class of peers without individual identities (entity.go).
type Entity string

// Groups is an element of fromGroups/toGroups (groups.go); only AWS exists.
type Groups struct {
	AWS *AWSGroup `json:"aws,omitempty"`
}

// AWSGroup selects AWS security groups (groups.go).
type AWSGroup struct {
	Labels              map[string]string `json:"labels,omitempty"`
	SecurityGroupsIds   []string          `json:"securityGroupsIds,omitempty"`
	SecurityGroupsNames []string          `json:"securityGroupsNames,omitempty"`
	Region              string            `json:"region,omitempty"`
}

// Service is an element of toServices (service.go).
type Service struct {
	K8sServiceSelector *K8sServiceSelectorNamespace `json:"k8sServiceSelector,omitempty"`
	K8sService         *K8sServiceNamespace         `json:"k8sService,omitempty"`
}

// K8sServiceNamespace selects one Kubernetes Service by name.
type K8sServiceNamespace struct {
	ServiceName string `json:"serviceName,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
}

// K8sServiceSelectorNamespace selects Kubernetes Services by their labels.
// Selector is required by the CRD; the pointer lets validation see its
// absence.
type K8sServiceSelectorNamespace struct {
	Selector  *metav1.LabelSelector `json:"selector,omitempty"`
	Namespace string                `json:"namespace,omitempty"`
}

// FQDNSelector is an element of toFQDNs (fqdn.go): exactly one of
// MatchName (a literal name) and MatchPattern (a wildcard pattern, see
// CompileFQDNPattern).
type FQDNSelector struct {
	MatchName    string `json:"matchName,omitempty"`
	MatchPattern string `json:"matchPattern,omitempty"`
}

// L4Proto is a PortProtocol protocol name.
type L4Proto string

// Protocol names accepted by the CRD enum (l4.go).
const (
	ProtoTCP  L4Proto = "TCP"
	ProtoUDP  L4Proto = "UDP"
	ProtoSCTP L4Proto = "SCTP"
	ProtoVRRP L4Proto = "VRRP"
	ProtoIGMP L4Proto = "IGMP"
	ProtoAny  L4Proto = "ANY"
)

// PortProtocol is one port of a PortRule (l4.go). Port is a number
// ("0".."65535", "0" meaning all ports) or an IANA service name (a named
// port, matched case-insensitively). EndPort makes a range with a numeric
// Port. An empty Protocol means ANY (TCP, UDP and SCTP).
type PortProtocol struct {
	Port     string  `json:"port,omitempty"`
	EndPort  int32   `json:"endPort,omitempty"`
	Protocol L4Proto `json:"protocol,omitempty"`
}

// PortRule is an element of an allow rule's toPorts (l4.go).
type PortRule struct {
	// Ports lists port/protocol pairs, at most 40.
	Ports []PortProtocol `json:"ports,omitempty"`
	// TerminatingTLS and OriginatingTLS configure TLS interception by the
	// L7 proxy.
	TerminatingTLS *TLSContext `json:"terminatingTLS,omitempty"`
	OriginatingTLS *TLSContext `json:"originatingTLS,omitempty"`
	// ServerNames lists allowed TLS SNIs (matchPattern syntax). nil means
	// absent; the CRD rejects a present but empty list (minItems 1).
	ServerNames []string `json:"serverNames,omitempty"`
	// Listener redirects the traffic to a custom Envoy listener.
	Listener *Listener `json:"listener,omitempty"`
	// Rules holds L7 rules; nil means none (see L7Rules for the inner
	// nil-versus-empty distinction).
	Rules *L7Rules `json:"rules,omitempty"`
}

// PortDenyRule is an element of a deny rule's toPorts: ports only.
type PortDenyRule struct {
	Ports []PortProtocol `json:"ports,omitempty"`
}

// TLSContext references the certificates for TLS interception (l4.go).
// Secret is required by the CRD.
type TLSContext struct {
	Secret      *Secret `json:"secret,omitempty"`
	TrustedCA   string  `json:"trustedCA,omitempty"`
	Certificate string  `json:"certificate,omitempty"`
	PrivateKey  string  `json:"privateKey,omitempty"`
}

// Secret references a Kubernetes Secret; Name is required.
type Secret struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// Listener names a custom Envoy listener defined in a CiliumEnvoyConfig
// (l4.go). EnvoyConfig and Name are required; Priority is 1..100 when set.
type Listener struct {
	EnvoyConfig *EnvoyConfig `json:"envoyConfig,omitempty"`
	Name        string       `json:"name"`
	Priority    *int32       `json:"priority,omitempty"`
}

// EnvoyConfig references the CiliumEnvoyConfig or
// CiliumClusterwideEnvoyConfig holding a Listener.
type EnvoyConfig struct {
	Kind string `json:"kind,omitempty"`
	Name string `json:"name"`
}

// L7Rules is PortRule.rules (l4.go): a union of L7 rule types, of which at
// most one may be used per PortRule.
//
// A list that is present but empty ("http: []") is not the same as an
// absent one: Cilium's IsEmpty tests the lists against nil, so "http: []"
// still redirects the port to the proxy (and is subject to the L7 checks)
// even though it allows no request. Decoding keeps that distinction.
type L7Rules struct {
	HTTP []PortRuleHTTP `json:"http,omitempty"`
	// Kafka rules (proxylib; deprecated since 1.16, removed after 1.19).
	Kafka []PortRuleKafka `json:"kafka,omitempty"`
	DNS   []PortRuleDNS   `json:"dns,omitempty"`
	// L7Proto names a proxylib parser for the generic L7 key/value rules.
	L7Proto string       `json:"l7proto,omitempty"`
	L7      []PortRuleL7 `json:"l7,omitempty"`
}

// IsEmpty reports whether no L7 rule list is present, as Cilium's
// L7Rules.IsEmpty does (nil receiver included).
func (r *L7Rules) IsEmpty() bool {
	return r == nil || (r.HTTP == nil && r.Kafka == nil && r.DNS == nil && r.L7 == nil)
}

// PortRuleHTTP is one HTTP rule (http.go). Path, Method and Host are
// regular expressions matched against the whole value (Envoy
// safe_regex_match, RE2). Every field set must match; an empty rule
// matches every request.
type PortRuleHTTP struct {
	Path   string `json:"path,omitempty"`
	Method string `json:"method,omitempty"`
	Host   string `json:"host,omitempty"`
	// Headers are "Name" (presence) or "Name: value" / "Name value" (exact
	// value) strings; see ParseHeaderRule.
	Headers []string `json:"headers,omitempty"`
	// HeaderMatches are structured header requirements.
	HeaderMatches []*HeaderMatch `json:"headerMatches,omitempty"`
}

// HeaderMatch is a structured header requirement (http.go).
type HeaderMatch struct {
	// Mismatch is what to do when the header does not match: "" (the
	// rule fails), LOG, ADD, DELETE or REPLACE.
	Mismatch string  `json:"mismatch,omitempty"`
	Name     string  `json:"name"`
	Secret   *Secret `json:"secret,omitempty"`
	Value    string  `json:"value,omitempty"`
}

// PortRuleDNS is one DNS rule: the DNS proxy allows queries for names that
// match (fqdn.go). Same shape and validation as FQDNSelector.
type PortRuleDNS FQDNSelector

// PortRuleKafka is one Kafka rule (pkg/policy/api/kafka/kafka.go).
type PortRuleKafka struct {
	Role       string `json:"role,omitempty"`
	APIKey     string `json:"apiKey,omitempty"`
	APIVersion string `json:"apiVersion,omitempty"`
	ClientID   string `json:"clientID,omitempty"`
	Topic      string `json:"topic,omitempty"`
}

// PortRuleL7 is one generic key/value L7 rule interpreted by the parser
// named in L7Rules.L7Proto (l7.go).
type PortRuleL7 map[string]string

// ICMPRule is an element of icmps (icmp.go).
type ICMPRule struct {
	// Fields lists ICMP types, at most 40.
	Fields []ICMPField `json:"fields,omitempty"`
}

// ICMPField is one ICMP type (icmp.go). Family is "IPv4" (the default when
// empty) or "IPv6"; Type is a number 0..255 or a CamelCase type name of
// that family.
type ICMPField struct {
	Family string              `json:"family,omitempty"`
	Type   *intstr.IntOrString `json:"type,omitempty"`
}

// Authentication is the mutual-authentication requirement of an allow rule
// (rule.go). Mode is required.
type Authentication struct {
	Mode string `json:"mode"`
}
