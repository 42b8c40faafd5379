package netpol

import (
	"fmt"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-security/palisade/internal/cilium"
	"github.com/palisade-security/palisade/internal/config"
)

// FromCiliumPolicy compiles a CiliumNetworkPolicy or a
// CiliumClusterwideNetworkPolicy, with the namespace handling of Cilium's
// ParseToCiliumRule: in a namespaced policy the endpointSelector is confined
// to the policy's namespace, and so is every peer selector that names
// neither a namespace nor namespace labels; in a clusterwide one, a peer
// selector without a namespace selects pods of any namespace.
func FromCiliumPolicy(r *config.Resource[*config.CiliumPolicy]) (*Policy, []error) {
	p := &Policy{Kind: KindCNP, Namespace: r.Meta.Namespace, Name: r.Meta.Name, Source: r.Source}
	if r.Kind == "CiliumClusterwideNetworkPolicy" {
		p.Kind, p.Namespace = KindCCNP, ""
	}
	var errs []error
	rules, paths := r.Spec.Rules()
	for i, cr := range rules {
		c := cnpCompiler{policy: p, path: paths[i]}
		ru := c.rule(cr)
		errs = append(errs, c.errs...)
		if ru != nil {
			p.rules = append(p.rules, ru)
		}
	}
	return p, errs
}

type cnpCompiler struct {
	policy *Policy
	path   string
	errs   []error
}

func (c *cnpCompiler) errorf(path, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

func (c *cnpCompiler) rule(cr *cilium.Rule) *rule {
	ru := &rule{policy: c.policy, path: c.path}
	switch {
	case cr.EndpointSelector != nil:
		sel, err := compileSelector(cr.EndpointSelector)
		if err != nil {
			c.errorf(c.path+".endpointSelector", "%v", err)
			return nil
		}
		if c.policy.Kind == KindCNP {
			// A namespace in a namespaced policy's endpointSelector is
			// overridden by the policy's own.
			sel = sel.withoutNamespace().withNamespace(c.policy.Namespace)
		}
		ru.subject = sel
	default:
		// A nodeSelector makes a host policy. Palisade does not model
		// nodes, so the rule selects no endpoint.
		ru.subject = selector{reqs: []requirement{{source: sourceReserved, key: EntityHost, op: opExists}}, text: "nodes"}
	}
	ingressDD := cr.EnableDefaultDeny.Ingress == nil || *cr.EnableDefaultDeny.Ingress
	egressDD := cr.EnableDefaultDeny.Egress == nil || *cr.EnableDefaultDeny.Egress
	ru.ingress = section{present: len(cr.Ingress)+len(cr.IngressDeny) > 0, defaultDeny: ingressDD}
	ru.egress = section{present: len(cr.Egress)+len(cr.EgressDeny) > 0, defaultDeny: egressDD}
	for i, in := range cr.Ingress {
		path := fmt.Sprintf("%s.ingress[%d]", c.path, i)
		peers := c.ingressPeers(path, &in.IngressCommonRule, len(in.ToPorts) > 0 || len(in.ICMPs) > 0)
		ru.ingress.allow = append(ru.ingress.allow, c.entries(ru, path, peers, in.ToPorts, len(in.ICMPs) > 0, false)...)
	}
	for i, in := range cr.IngressDeny {
		path := fmt.Sprintf("%s.ingressDeny[%d]", c.path, i)
		peers := c.ingressPeers(path, &in.IngressCommonRule, len(in.ToPorts) > 0 || len(in.ICMPs) > 0)
		ru.ingress.deny = append(ru.ingress.deny, c.entries(ru, path, peers, denyPorts(in.ToPorts), len(in.ICMPs) > 0, true)...)
	}
	for i, out := range cr.Egress {
		path := fmt.Sprintf("%s.egress[%d]", c.path, i)
		peers := c.egressPeers(path, &out.EgressCommonRule, out.ToFQDNs, len(out.ToPorts) > 0 || len(out.ICMPs) > 0)
		ru.egress.allow = append(ru.egress.allow, c.entries(ru, path, peers, out.ToPorts, len(out.ICMPs) > 0, false)...)
	}
	for i, out := range cr.EgressDeny {
		path := fmt.Sprintf("%s.egressDeny[%d]", c.path, i)
		peers := c.egressPeers(path, &out.EgressCommonRule, nil, len(out.ToPorts) > 0 || len(out.ICMPs) > 0)
		ru.egress.deny = append(ru.egress.deny, c.entries(ru, path, peers, denyPorts(out.ToPorts), len(out.ICMPs) > 0, true)...)
	}
	return ru
}

func denyPorts(ps []cilium.PortDenyRule) []cilium.PortRule {
	out := make([]cilium.PortRule, len(ps))
	for i, p := range ps {
		out[i] = cilium.PortRule{Ports: p.Ports}
	}
	return out
}

// entries makes one entry per toPorts element (each has its own ports and
// L7 rules), or one entry for every port when there is none. An element
// with only ICMP types allows no TCP, UDP or SCTP port.
func (c *cnpCompiler) entries(ru *rule, path string, peers peerSet, toPorts []cilium.PortRule, icmp, deny bool) []*Entry {
	if len(toPorts) == 0 {
		e := &Entry{rule: ru, path: path, deny: deny, peers: peers}
		if icmp {
			e.ports = []portMatch{}
		}
		return []*Entry{e}
	}
	var out []*Entry
	for i, pr := range toPorts {
		ppath := fmt.Sprintf("%s.toPorts[%d]", path, i)
		e := &Entry{rule: ru, path: path, deny: deny, peers: peers}
		for j, pp := range pr.Ports {
			pm, err := portOf(pp)
			if err != nil {
				c.errorf(fmt.Sprintf("%s.ports[%d]", ppath, j), "%v", err)
				continue
			}
			e.ports = append(e.ports, pm)
		}
		if len(pr.Ports) == 0 {
			e.ports = nil // rules without ports: every port
		}
		c.l7(e, ppath, pr.Rules)
		e.tls = pr.TerminatingTLS != nil || pr.OriginatingTLS != nil
		out = append(out, e)
	}
	return out
}

// portOf reads a toPorts port: a number ("0" or empty is every port), a
// range with endPort, or a named port; an empty protocol is ANY.
func portOf(pp cilium.PortProtocol) (portMatch, error) {
	pm := portMatch{proto: strings.ToUpper(string(pp.Protocol))}
	if pm.proto == "" {
		pm.proto = "ANY"
	}
	if pp.Port == "" || pp.Port == "0" {
		return pm, nil
	}
	n, err := strconv.ParseUint(pp.Port, 10, 16)
	if err != nil {
		pm.name = strings.ToLower(pp.Port) // named ports are matched case-insensitively
		return pm, nil
	}
	pm.lo, pm.hi = uint16(n), uint16(n)
	if pp.EndPort > 0 {
		if pp.EndPort < int32(n) || pp.EndPort > 65535 {
			return pm, fmt.Errorf("endPort %d is below port %d or above 65535", pp.EndPort, n)
		}
		pm.hi = uint16(pp.EndPort)
	}
	return pm, nil
}

// l7 compiles a toPorts element's rules. HTTP rules are evaluated; the
// other L7 types are noted, and Palisade lets their requests through.
func (c *cnpCompiler) l7(e *Entry, path string, rules *cilium.L7Rules) {
	if rules.IsEmpty() {
		return
	}
	switch {
	case rules.HTTP != nil:
		e.http = []*httpRule{}
		for i, h := range rules.HTTP {
			hr, err := compileHTTPRule(i, &h)
			if err != nil {
				c.errorf(fmt.Sprintf("%s.rules.http[%d]", path, i), "%v", err)
				continue
			}
			e.http = append(e.http, hr)
		}
	case rules.DNS != nil:
		e.otherL7 = "dns"
		for i, d := range rules.DNS {
			m, err := compileFQDN(cilium.FQDNSelector(d))
			if err != nil {
				c.errorf(fmt.Sprintf("%s.rules.dns[%d]", path, i), "%v", err)
				continue
			}
			e.dns = append(e.dns, m)
		}
	case rules.Kafka != nil:
		e.otherL7 = "kafka"
	default:
		e.otherL7 = rules.L7Proto
	}
}

func compileHTTPRule(i int, h *cilium.PortRuleHTTP) (*httpRule, error) {
	r := &httpRule{index: i}
	var err error
	if r.method, err = compileRegex("method", h.Method); err != nil {
		return nil, err
	}
	if r.path, err = compileRegex("path", h.Path); err != nil {
		return nil, err
	}
	if r.host, err = compileRegex("host", h.Host); err != nil {
		return nil, err
	}
	var parts []string
	for _, f := range []struct{ name, v string }{{"method", h.Method}, {"path", h.Path}, {"host", h.Host}} {
		if f.v != "" {
			parts = append(parts, fmt.Sprintf("%s %q", f.name, f.v))
		}
	}
	for _, s := range h.Headers {
		r.headers = append(r.headers, parseHeader(s))
		parts = append(parts, fmt.Sprintf("header %q", s))
	}
	for _, hm := range h.HeaderMatches {
		if hm == nil {
			continue
		}
		m := headerMatch{name: strings.ToLower(hm.Name), value: hm.Value, present: hm.Value == ""}
		switch {
		case hm.Mismatch != "":
			// LOG, ADD, DELETE and REPLACE act on a mismatch; the rule
			// still matches.
			continue
		case hm.Secret != nil && hm.Value == "":
			// The value lives in a Secret Palisade cannot read; Cilium
			// makes a rule whose secret it cannot fetch never match.
			m.never = true
		}
		r.headers = append(r.headers, m)
		parts = append(parts, fmt.Sprintf("headerMatch %q", hm.Name))
	}
	r.text = strings.Join(parts, ", ")
	if r.text == "" {
		r.text = "any request"
	}
	return r, nil
}

// ingressPeers compiles the L3 side of an ingress element as Cilium's
// mergeEndpointSelectors does: a field present but empty selects nothing;
// no field at all is a wildcard when ports (or ICMP types) are given, and
// selects nothing otherwise.
func (c *cnpCompiler) ingressPeers(path string, r *cilium.IngressCommonRule, hasL4 bool) peerSet {
	return c.peers(path, peerFields{
		endpoints: r.FromEndpoints, requires: r.FromRequires, cidrs: r.FromCIDR, cidrSets: r.FromCIDRSet,
		entities: r.FromEntities, nodes: r.FromNodes, groups: r.FromGroups,
	}, "from", hasL4)
}

func (c *cnpCompiler) egressPeers(path string, r *cilium.EgressCommonRule, fqdns []cilium.FQDNSelector, hasL4 bool) peerSet {
	ps := c.peers(path, peerFields{
		endpoints: r.ToEndpoints, requires: r.ToRequires, cidrs: r.ToCIDR, cidrSets: r.ToCIDRSet,
		entities: r.ToEntities, nodes: r.ToNodes, groups: r.ToGroups, services: r.ToServices, fqdns: fqdns,
	}, "to", hasL4)
	return ps
}

type peerFields struct {
	endpoints, requires, nodes []metav1.LabelSelector
	cidrs                      []cilium.CIDR
	cidrSets                   []cilium.CIDRRule
	entities                   []cilium.Entity
	groups                     []cilium.Groups
	services                   []cilium.Service
	fqdns                      []cilium.FQDNSelector
}

func (c *cnpCompiler) peers(path string, f peerFields, dir string, hasL4 bool) peerSet {
	var ps peerSet
	emptyButPresent := (f.endpoints != nil && len(f.endpoints) == 0) || (f.cidrs != nil && len(f.cidrs) == 0) ||
		(f.cidrSets != nil && len(f.cidrSets) == 0) || (f.entities != nil && len(f.entities) == 0) ||
		(f.nodes != nil && len(f.nodes) == 0) || (f.groups != nil && len(f.groups) == 0) ||
		(f.services != nil && len(f.services) == 0) || (f.fqdns != nil && len(f.fqdns) == 0)
	if emptyButPresent {
		return ps // "it should not result in any identity being selected"
	}
	l3 := len(f.endpoints) + len(f.cidrs) + len(f.cidrSets) + len(f.entities) + len(f.nodes) + len(f.groups) + len(f.services) + len(f.fqdns)
	if l3 == 0 && hasL4 {
		ps.all = true
	}
	for i := range f.endpoints {
		sel, err := compileSelector(&f.endpoints[i])
		if err != nil {
			c.errorf(fmt.Sprintf("%s.%sEndpoints[%d]", path, dir, i), "%v", err)
			continue
		}
		ps.selectors = append(ps.selectors, c.scopePeer(sel))
	}
	for i := range f.requires {
		sel, err := compileSelector(&f.requires[i])
		if err != nil {
			c.errorf(fmt.Sprintf("%s.%sRequires[%d]", path, dir, i), "%v", err)
			continue
		}
		ps.requires = append(ps.requires, c.scopePeer(sel))
	}
	for i, s := range f.cidrs {
		cs, err := parseCIDRSet(string(s), nil)
		if err != nil {
			c.errorf(fmt.Sprintf("%s.%sCIDR[%d]", path, dir, i), "%v", err)
			continue
		}
		ps.cidrs = append(ps.cidrs, cs)
	}
	for i, s := range f.cidrSets {
		if s.Cidr == "" {
			continue // a CiliumCIDRGroup reference: the group is not read, so it selects nothing
		}
		var except []string
		for _, x := range s.ExceptCIDRs {
			except = append(except, string(x))
		}
		cs, err := parseCIDRSet(string(s.Cidr), except)
		if err != nil {
			c.errorf(fmt.Sprintf("%s.%sCIDRSet[%d]", path, dir, i), "%v", err)
			continue
		}
		ps.cidrs = append(ps.cidrs, cs)
	}
	for _, e := range f.entities {
		ps.entities = append(ps.entities, string(e))
	}
	for _, s := range f.services {
		if s.K8sService == nil {
			continue // a service selector: not resolved, selects nothing
		}
		ns := s.K8sService.Namespace
		if ns == "" {
			ns = c.policy.Namespace
		}
		ps.services = append(ps.services, serviceRef{namespace: ns, name: s.K8sService.ServiceName})
	}
	for i, q := range f.fqdns {
		m, err := compileFQDN(q)
		if err != nil {
			c.errorf(fmt.Sprintf("%s.toFQDNs[%d]", path, i), "%v", err)
			continue
		}
		ps.fqdns = append(ps.fqdns, m)
	}
	// fromNodes/toNodes and fromGroups/toGroups select nodes and cloud
	// security groups, which Palisade does not model: they select nothing.
	return ps
}

// compileFQDN compiles a matchName or matchPattern (toFQDNs, rules.dns).
func compileFQDN(q cilium.FQDNSelector) (fqdnMatch, error) {
	if q.MatchPattern != "" {
		re, err := cilium.CompileFQDNPattern(q.MatchPattern)
		if err != nil {
			return fqdnMatch{}, err
		}
		return fqdnMatch{pattern: re, text: q.MatchPattern}, nil
	}
	return fqdnMatch{name: strings.TrimSuffix(cilium.NormalizeMatchName(q.MatchName), "."), text: q.MatchName}, nil
}

// scopePeer applies a policy's namespace to a peer selector, as Cilium's
// getEndpointSelector does: a namespaced policy adds its namespace unless
// the selector names a namespace or namespace labels; a clusterwide policy
// requires some namespace (pods only) unless it names one. Selectors of
// reserved identities are left alone.
func (c *cnpCompiler) scopePeer(sel selector) selector {
	if sel.reservedOnly() || sel.has(labelNamespace) {
		return sel
	}
	if c.policy.Kind == KindCCNP {
		return sel.withAnyNamespace()
	}
	if sel.hasPrefix(labelNamespacePrefix) {
		return sel
	}
	return sel.withNamespace(c.policy.Namespace)
}
