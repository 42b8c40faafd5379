package netpol

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/palisade-security/palisade/internal/config"
)

// Kind is the kind of a network policy.
type Kind uint8

// The kinds Palisade reads.
const (
	KindCNP Kind = iota
	KindCCNP
	KindKNP
)

func (k Kind) String() string {
	return [...]string{"CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy", "NetworkPolicy"}[k]
}

// Policy is one compiled network policy object.
type Policy struct {
	Kind            Kind
	Namespace, Name string // Namespace is "" for a clusterwide policy
	Source          config.Source
	rules           []*rule
}

// ID is "namespace/name", or the name of a clusterwide policy.
func (p *Policy) ID() string {
	if p.Namespace == "" {
		return p.Name
	}
	return p.Namespace + "/" + p.Name
}

// rule is one Cilium rule (a CNP's spec or one of its specs, or a
// translated NetworkPolicy): whom it selects and its entries per direction.
type rule struct {
	policy  *Policy
	path    string // "spec", "specs[1]"
	subject selector
	ingress section
	egress  section
}

// section is a rule's entries in one direction.
type section struct {
	// present: the rule has entries in this direction, which puts the
	// endpoint into default deny unless enableDefaultDeny turns it off.
	present     bool
	defaultDeny bool
	allow, deny []*Entry
}

// Entry is one element of ingress, ingressDeny, egress or egressDeny: the
// peers it selects, on which ports, and the HTTP rules then in force.
type Entry struct {
	rule  *rule
	path  string // "spec.ingress[0]"
	deny  bool
	peers peerSet
	ports []portMatch // nil: every port
	http  []*httpRule // nil: no HTTP rules
	// otherL7 names an L7 protocol whose rules Palisade does not evaluate
	// (kafka, dns, a generic l7proto); requests then pass at L7.
	otherL7 string
	// tls is set when the toPorts element intercepts TLS (terminatingTLS
	// or originatingTLS): only then can HTTP rules read HTTPS.
	tls bool
	// dns holds the names of rules.dns: the lookups Cilium's DNS proxy lets
	// through, and so learns the addresses of for toFQDNs.
	dns []fqdnMatch
}

// ID names the entry for traces: "CiliumNetworkPolicy ns/name spec.ingress[0]".
func (e *Entry) ID() string {
	return fmt.Sprintf("%s %s %s", e.rule.policy.Kind, e.rule.policy.ID(), e.path)
}

// Kind is the kind of the entry's policy.
func (e *Entry) Kind() string { return e.rule.policy.Kind.String() }

// PolicyID is "namespace/name" of the entry's policy.
func (e *Entry) PolicyID() string { return e.rule.policy.ID() }

// Path locates the entry in its policy, such as "spec.ingress[0]".
func (e *Entry) Path() string { return e.path }

// InterceptsTLS reports whether the entry's proxy terminates TLS, without
// which HTTP rules cannot read HTTPS.
func (e *Entry) InterceptsTLS() bool { return e.tls }

// peerSet is the L3 side of an entry.
type peerSet struct {
	all       bool // a wildcard: L3 left empty while ports are given
	selectors []selector
	entities  []string
	cidrs     []cidrSet
	fqdns     []fqdnMatch
	services  []serviceRef
	// requires are fromRequires/toRequires: they grant nothing themselves
	// and restrict every allow of the endpoint in that direction.
	requires []selector
}

// serviceRef is a toServices entry naming a Kubernetes Service.
type serviceRef struct{ namespace, name string }

// matches reports whether the peer set selects p, and whether only a
// toFQDNs entry did: those select an address only once Cilium's DNS proxy
// has seen it resolved, which the caller must check.
func (s *peerSet) matches(p *Peer, inv *config.Inventory) (ok, viaFQDN bool) {
	if s.matchesL3(p, inv) {
		return true, false
	}
	for i := range s.fqdns {
		if s.fqdns[i].matches(p) {
			return true, true
		}
	}
	return false, false
}

func (s *peerSet) matchesL3(p *Peer, inv *config.Inventory) bool {
	if s.all {
		return true
	}
	for i := range s.selectors {
		if s.selectors[i].matches(p.Labels) {
			return true
		}
	}
	for _, e := range s.entities {
		if entityMatches(e, p) {
			return true
		}
	}
	for i := range s.cidrs {
		if s.cidrs[i].matches(p) {
			return true
		}
	}
	if p.Workload != nil && inv != nil {
		for _, ref := range s.services {
			for _, svc := range inv.ServicesFor(p.Workload) {
				if svc.Namespace == ref.namespace && svc.Name == ref.name {
					return true
				}
			}
		}
	}
	return false
}

// portMatch is one toPorts port: a number or a range, or a named port, with
// a protocol (TCP, UDP, SCTP or ANY).
type portMatch struct {
	lo, hi uint16 // 0, 0: every port
	name   string // a named port, resolved against the destination's container ports
	proto  string
}

func (m *portMatch) String() string {
	port := m.name
	switch {
	case m.name != "":
	case m.lo == 0 && m.hi == 0:
		port = "any port"
	case m.lo == m.hi:
		port = strconv.Itoa(int(m.lo))
	default:
		port = fmt.Sprintf("%d-%d", m.lo, m.hi)
	}
	return port + "/" + m.proto
}

// matches reports whether port/proto is one of m's. A named port is looked
// up in the container ports of the workload that receives the connection.
func (m *portMatch) matches(port uint16, proto string, dst *config.Workload) bool {
	if m.proto != "ANY" && m.proto != proto {
		return false
	}
	if m.name != "" {
		if dst == nil {
			return false
		}
		cp, ok := dst.Port(m.name)
		return ok && cp.Port == port && (m.proto == "ANY" || cp.Protocol == proto)
	}
	if m.lo == 0 && m.hi == 0 {
		return true
	}
	return port >= m.lo && port <= m.hi
}

// httpRule is one rules.http element. Method, path and host are RE2
// regexes that must match the whole value (Envoy safe_regex_match on
// :method, :path and :authority); every header must match as well.
type httpRule struct {
	index              int
	method, path, host *fullRegex
	headers            []headerMatch
	text               string
}

// fullRegex is an RE2 regex that must match a whole value, with its
// literal prefix checked first: most rules differ in their literal paths,
// and a failed prefix is far cheaper than running the regex.
type fullRegex struct {
	re      *regexp.Regexp
	prefix  string
	literal bool // the regex is exactly its prefix
}

func (r *fullRegex) match(s string) bool {
	if r.literal {
		return s == r.prefix
	}
	return strings.HasPrefix(s, r.prefix) && r.re.MatchString(s)
}

// headerMatch is a header condition: present, or present with exactly value.
type headerMatch struct {
	name    string // lowercase
	value   string
	present bool // presence only
	never   bool // a secret that cannot be read: Cilium makes the rule never match
}

func compileRegex(field, re string) (*fullRegex, error) {
	if re == "" {
		return nil, nil
	}
	c, err := regexp.Compile("^(?:" + re + ")$")
	if err != nil {
		return nil, fmt.Errorf("%s %q is not a valid regular expression: %v", field, re, err)
	}
	bare, err := regexp.Compile(re)
	if err != nil {
		return nil, fmt.Errorf("%s %q is not a valid regular expression: %v", field, re, err)
	}
	prefix, complete := bare.LiteralPrefix()
	return &fullRegex{re: c, prefix: prefix, literal: complete}, nil
}

// parseHeader reads a headers entry as Cilium does (pkg/envoy getHTTPRule):
// split at the first space, a trailing ':' trimmed from the name; the value,
// when there is one, must match exactly — it is not a regex.
func parseHeader(h string) headerMatch {
	name, value, ok := strings.Cut(h, " ")
	name = strings.ToLower(strings.TrimRight(name, ":"))
	if !ok {
		return headerMatch{name: name, present: true}
	}
	return headerMatch{name: name, value: value}
}

// HTTPRequest is what Cilium's L7 proxy matches: the method, the :path as
// sent (with its query), the :authority and the headers (lowercase names).
type HTTPRequest struct {
	Method, Path, Host string
	Headers            func(name string) (string, bool)
}

func (r *httpRule) matches(req *HTTPRequest) bool {
	if r.path != nil && !r.path.match(req.Path) {
		return false
	}
	if r.method != nil && !r.method.match(req.Method) {
		return false
	}
	if r.host != nil && !r.host.match(req.Host) {
		return false
	}
	for _, h := range r.headers {
		v, ok := req.Headers(h.name)
		if h.never || !ok || (!h.present && v != h.value) {
			return false
		}
	}
	return true
}
