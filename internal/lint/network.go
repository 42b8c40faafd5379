package lint

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-security/palisade/internal/authz"
	"github.com/palisade-security/palisade/internal/cilium"
	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/mtls"
	"github.com/palisade-security/palisade/internal/netpol"
)

// network runs the checks of CiliumNetworkPolicy, its clusterwide form,
// Kubernetes NetworkPolicy and the Cilium install values.
func (l *linter) network() {
	cnps := append(append([]*config.Resource[*config.CiliumPolicy]{}, l.snap.CiliumNetworkPolicies...), l.snap.CiliumClusterwideNetworkPolicies...)
	for _, r := range cnps {
		rules, paths := r.Spec.Rules()
		for i, rule := range rules {
			l.ciliumRule(r, rule, paths[i])
		}
	}
	for _, r := range l.snap.NetworkPolicies {
		l.networkPolicy(r)
	}
	l.checkEnforcementAlways()
	l.checkCiliumValues()
	l.checkUnselected()
}

type portProto struct {
	port  uint16
	proto string
}

func (p portProto) String() string { return fmt.Sprintf("%d/%s", p.port, p.proto) }

// cnpCtx carries one Cilium rule through its checks.
type cnpCtx struct {
	r           *config.Resource[*config.CiliumPolicy]
	path        string
	clusterwide bool
	subjects    []*config.Workload
}

func (c *cnpCtx) src(path string) Source { return sourceOf(c.r.Source.At(path)) }

func (l *linter) ciliumRule(r *config.Resource[*config.CiliumPolicy], rule *cilium.Rule, path string) {
	c := &cnpCtx{r: r, path: path, clusterwide: r.Kind == "CiliumClusterwideNetworkPolicy"}
	if rule.EndpointSelector == nil {
		return // a host policy: Palisade does not model nodes
	}
	sel, err := netpol.SubjectSelector(c.clusterwide, r.Meta.Namespace, rule.EndpointSelector)
	if err != nil {
		return // reported by validation
	}
	c.subjects = l.matching(sel)
	if l.hasInventory() && len(c.subjects) == 0 {
		l.add("PAL-2020", c.src(path+".endpointSelector"), r.String(),
			fmt.Sprintf("endpointSelector %s selects no workload%s", selectorString(rule.EndpointSelector), inNamespace(c.clusterwide, r.Meta.Namespace)),
			"A CiliumNetworkPolicy's endpointSelector selects the pods of the policy's namespace whose labels match it (Cilium adds the namespace itself); a rule that selects nothing is enforced nowhere. "+l.ciliumLabelHint(c.clusterwide, r.Meta.Namespace, rule.EndpointSelector),
			"Correct the selector's labels to those of the pods the policy is for.")
	}
	l.checkEmptyDirections(c, rule)
	for i := range rule.Ingress {
		in := &rule.Ingress[i]
		p := fmt.Sprintf("%s.ingress[%d]", path, i)
		peers := l.peerSelectors(c, p+".fromEndpoints", in.FromEndpoints)
		// Clients named only by entities or CIDRs are outside the mesh
		// and speak plaintext; any other ingress peer may be a sidecar.
		outside := len(in.FromEndpoints) == 0 && len(in.FromEntities)+len(in.FromCIDR)+len(in.FromCIDRSet) > 0
		l.checkPorts(c, p, in.ToPorts, c.subjects, !outside)
		if len(in.FromEndpoints) > 0 {
			var pairs []pair
			peerClasses := l.classesOf(peers)
			for _, d := range l.classesOf(c.subjects) {
				for _, a := range peerClasses {
					pairs = append(pairs, pair{from: a, to: d, ports: l.entryPorts(in.ToPorts, d.rep)})
				}
			}
			l.checkIstioAgrees(c.r.String(), c.src(p), pairs)
			l.checkOneSided(c.r.String(), c.src(p), pairs, netpol.Egress)
		}
	}
	for i := range rule.Egress {
		out := &rule.Egress[i]
		p := fmt.Sprintf("%s.egress[%d]", path, i)
		peers := l.peerSelectors(c, p+".toEndpoints", out.ToEndpoints)
		if len(out.ToFQDNs) > 0 {
			l.checkFQDNs(c, p, out.ToFQDNs)
		}
		l.checkPorts(c, p, out.ToPorts, peers, len(out.ToEndpoints) > 0)
		if len(out.ToEndpoints) > 0 {
			var pairs []pair
			peerClasses := l.classesOf(peers)
			for _, a := range l.classesOf(c.subjects) {
				for _, b := range peerClasses {
					pairs = append(pairs, pair{from: a, to: b, ports: l.entryPorts(out.ToPorts, b.rep)})
				}
			}
			l.checkOneSided(c.r.String(), c.src(p), pairs, netpol.Ingress)
		}
	}
}

// selectorString renders a label selector as written in the manifest.
func selectorString(s *metav1.LabelSelector) string {
	if s == nil {
		return "{}"
	}
	parts := []string{}
	for _, k := range sortedKeys(s.MatchLabels) {
		parts = append(parts, k+": "+s.MatchLabels[k])
	}
	for _, e := range s.MatchExpressions {
		parts = append(parts, fmt.Sprintf("%s %s (%s)", e.Key, e.Operator, strings.Join(e.Values, ", ")))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// peerString renders a NetworkPolicy peer.
func peerString(p networkingv1.NetworkPolicyPeer) string {
	var parts []string
	if p.PodSelector != nil {
		parts = append(parts, "podSelector "+selectorString(p.PodSelector))
	}
	if p.NamespaceSelector != nil {
		parts = append(parts, "namespaceSelector "+selectorString(p.NamespaceSelector))
	}
	return strings.Join(parts, " and ")
}

func inNamespace(clusterwide bool, ns string) string {
	if clusterwide {
		return " in any namespace"
	}
	return " in namespace " + ns
}

// matching lists the workloads a selector selects.
func (l *linter) matching(sel netpol.Selector) []*config.Workload {
	var out []*config.Workload
	for _, w := range l.workloads {
		if sel.Matches(l.peer(w)) {
			out = append(out, w)
		}
	}
	return out
}

// peerSelectors compiles fromEndpoints/toEndpoints and reports those that
// match no workload (PAL-2021). It returns every workload matched.
func (l *linter) peerSelectors(c *cnpCtx, path string, sels []metav1.LabelSelector) []*config.Workload {
	var all []*config.Workload
	for k := range sels {
		s := &sels[k]
		sel, err := netpol.PeerSelector(c.clusterwide, c.r.Meta.Namespace, s)
		if err != nil || reservedSelector(s) {
			continue
		}
		ws := l.matching(sel)
		for _, w := range ws {
			if !containsWorkload(all, w) {
				all = append(all, w)
			}
		}
		if l.hasInventory() && len(ws) == 0 {
			l.add("PAL-2021", c.src(fmt.Sprintf("%s[%d]", path, k)), c.r.String(),
				fmt.Sprintf("peer selector %s matches no workload", selectorString(s)),
				"Cilium matches peer selectors against pod identities: the pod's labels, its namespace (io.kubernetes.pod.namespace, which Cilium adds to a namespaced policy's selectors unless one is given) and its namespace's labels. No workload in the inventory has all of these labels, so this peer allows nothing. "+l.peerHint(s),
				"Correct the labels to those of the intended pods (kubectl get pods --show-labels in their namespace).")
		}
	}
	return all
}

// reservedSelector reports whether a selector names a reserved identity
// (reserved:host, reserved:world, ...), which no workload is.
func reservedSelector(s *metav1.LabelSelector) bool {
	for k := range s.MatchLabels {
		if strings.HasPrefix(k, "reserved:") {
			return true
		}
	}
	for _, e := range s.MatchExpressions {
		if strings.HasPrefix(e.Key, "reserved:") {
			return true
		}
	}
	return false
}

// peerHint names the workloads of the selector's namespace with their app
// labels, as likely intended peers.
func (l *linter) peerHint(s *metav1.LabelSelector) string {
	ns := ""
	for k, v := range s.MatchLabels {
		if strings.TrimPrefix(strings.TrimPrefix(k, "k8s:"), "any:") == "io.kubernetes.pod.namespace" {
			ns = v
		}
	}
	if ns == "" {
		return ""
	}
	var names []string
	for _, w := range l.workloads {
		if w.Namespace == ns {
			names = append(names, fmt.Sprintf("%s %s", w.Name, labelString(w.Labels)))
		}
	}
	if len(names) == 0 {
		return fmt.Sprintf("Namespace %s has no workload in the inventory.", ns)
	}
	return fmt.Sprintf("Workloads in %s: %s.", ns, list(names, 4))
}

func (l *linter) ciliumLabelHint(clusterwide bool, ns string, s *metav1.LabelSelector) string {
	plain := map[string]string{}
	for k, v := range s.MatchLabels {
		k = strings.TrimPrefix(strings.TrimPrefix(k, "k8s:"), "any:")
		plain[k] = v
	}
	if clusterwide {
		ns = l.root // labelHint treats the root namespace as every namespace
	}
	return l.labelHint(ns, plain)
}

// checkEmptyDirections (PAL-2001): default deny that does not take effect.
func (l *linter) checkEmptyDirections(c *cnpCtx, rule *cilium.Rule) {
	rejected := ""
	if l.rejected[c.r.String()] {
		rejected = " The newest agent rejects a rule whose four lists are all empty outright, so this policy is not enforced at all."
	}
	// enableDefaultDeny without entries is a validation warning (PAL-0005);
	// this check covers the empty lists, which validation accepts.
	type dirCase struct {
		name        string
		dir         netpol.Direction
		empty       bool // the list is present and empty, and no deny list
		path        string
		defaultDeny string
	}
	cases := []dirCase{
		{"ingress", netpol.Ingress, rule.Ingress != nil && len(rule.Ingress) == 0 && len(rule.IngressDeny) == 0, c.path + ".ingress", "ingress: [{}]"},
		{"egress", netpol.Egress, rule.Egress != nil && len(rule.Egress) == 0 && len(rule.EgressDeny) == 0, c.path + ".egress", "egress: [{}]"},
	}
	for _, dc := range cases {
		if !dc.empty {
			continue
		}
		l.add("PAL-2001", c.src(dc.path), c.r.String(),
			fmt.Sprintf("`%s: []` creates no %s rule, so it does not put %s into %s default deny", dc.name, dc.name, l.subjectNames(c.subjects), dc.name),
			fmt.Sprintf("Cilium makes one policy entry per element of %s; an empty list makes none, and only an entry turns default deny on for a direction (RulesToPolicyEntries; '%s' is deny-all, '%s: []' is nothing). %s%s", dc.name, dc.defaultDeny, dc.name, l.enforcementNow(c.subjects, dc.dir), rejected),
			fmt.Sprintf("Write `%s` for deny-all in this direction.", dc.defaultDeny))
	}
}

func (l *linter) subjectNames(ws []*config.Workload) string {
	if len(ws) == 0 {
		return "the selected endpoints"
	}
	return keys(ws, 3)
}

// enforcementNow says whether the subjects are in default deny anyway,
// and because of what.
func (l *linter) enforcementNow(ws []*config.Workload, dir netpol.Direction) string {
	if len(ws) == 0 {
		return ""
	}
	var open []string
	by := map[string]bool{}
	for _, w := range ws {
		on, why := l.net.Endpoint(w).Enforced(dir)
		switch {
		case !on:
			open = append(open, w.Key())
		case why == "":
			by["policyEnforcementMode always"] = true
		default:
			by[why] = true
		}
	}
	if len(open) > 0 {
		return fmt.Sprintf("Today %s %s every %s connection no deny rule stops.", list(open, 4), map[bool]string{true: "accepts", false: "accept"}[len(open) == 1], map[netpol.Direction]string{netpol.Ingress: "incoming", netpol.Egress: "outgoing"}[dir])
	}
	return fmt.Sprintf("The selected endpoints are in %s default deny only because of %s.", dir, strings.Join(sortedKeys(by), ", "))
}

// checkFQDNs (PAL-2010): toFQDNs that the DNS proxy never feeds.
func (l *linter) checkFQDNs(c *cnpCtx, path string, fqdns []cilium.FQDNSelector) {
	var names []string
	var who []*config.Workload
	for _, w := range c.subjects {
		ep := l.net.Endpoint(w)
		for _, f := range fqdns {
			name, text := exampleName(f)
			if !l.net.DNSVisible(ep, name) {
				if !contains(names, text) {
					names = append(names, text)
				}
				if !containsWorkload(who, w) {
					who = append(who, w)
				}
			}
		}
	}
	if len(names) == 0 {
		return
	}
	l.add("PAL-2010", c.src(path+".toFQDNs"), c.r.String(),
		fmt.Sprintf("toFQDNs %s never matches for %s: no egress rule with rules.dns lets Cilium's DNS proxy see these lookups", strings.Join(names, ", "), keys(who, 3)),
		"Cilium allows a toFQDNs name by the addresses its DNS proxy saw in answers for it; the proxy sees a lookup only when an egress rule to the DNS server carries rules.dns matching the name. Without one the rule allows no address and the connections are dropped.",
		"Add `rules: {dns: [{matchPattern: '*'}]}` to the egress rule to kube-dns on port 53 (UDP and TCP) that selects these pods.")
}

// exampleName gives a name a toFQDNs selector matches, and the selector as
// written: a matchPattern's stars replaced by a label.
func exampleName(f cilium.FQDNSelector) (name, text string) {
	if f.MatchName != "" {
		return strings.TrimSuffix(strings.ToLower(f.MatchName), "."), f.MatchName
	}
	p := strings.ToLower(strings.TrimSuffix(f.MatchPattern, "."))
	p = strings.ReplaceAll(p, "**.", "a.")
	p = strings.ReplaceAll(p, "*", "a")
	return p, f.MatchPattern
}

var regexHeader = regexp.MustCompile(`\.\*|\.\+|[\[\]()|^$\\]|\?`)

// checkPorts checks the L7 rules of an entry's toPorts (PAL-2011 to
// PAL-2014). targets are the workloads that receive the connections
// (ingress: the subjects; egress: the peers); podPeers says whether the
// clients may be pods with sidecars, which speak mTLS.
func (l *linter) checkPorts(c *cnpCtx, path string, toPorts []cilium.PortRule, targets []*config.Workload, podPeers bool) {
	for i := range toPorts {
		pr := &toPorts[i]
		pp := fmt.Sprintf("%s.toPorts[%d]", path, i)
		if pr.Rules == nil {
			continue
		}
		if pr.Rules.DNS != nil && len(pr.Ports) > 0 {
			has53 := false
			for _, p := range pr.Ports {
				has53 = has53 || p.Port == "53" || strings.EqualFold(p.Port, "dns") || strings.EqualFold(p.Port, "dns-tcp")
			}
			if !has53 {
				l.add("PAL-2011", c.src(pp+".rules.dns"), c.r.String(),
					"rules.dns on ports other than 53: the DNS proxy sees no lookup sent to port 53",
					"Cilium redirects to its DNS proxy only the ports of the toPorts element holding rules.dns; pods resolve names on port 53.",
					"List port 53 (UDP and TCP) in this toPorts element.")
			}
		}
		if pr.Rules.HTTP == nil {
			continue
		}
		for j, h := range pr.Rules.HTTP {
			for k, hdr := range h.Headers {
				name, value, ok := strings.Cut(hdr, " ")
				if !ok || !regexHeader.MatchString(value) {
					continue
				}
				name = strings.TrimSuffix(name, ":")
				fix := fmt.Sprintf("For presence write just the name ('%s'); Cilium cannot match a prefix, so check token formats in Istio (a RequestAuthentication validates JWTs).", name)
				l.add("PAL-2012", c.src(fmt.Sprintf("%s.rules.http[%d].headers[%d]", pp, j, k)), c.r.String(),
					fmt.Sprintf("header rule '%s' reads like a regex, but Cilium requires the value '%s' literally", hdr, value),
					"Cilium's HTTP header rules are 'Name' (present) or 'Name: value' (exactly that value); only path, method and host are regular expressions. A request must send the characters as written, so real clients never match.",
					fix)
			}
		}
		ports := l.resolvePorts(pr.Ports, targets)
		// Ports none of the targets listens on (PAL-2011).
		if len(targets) > 0 && allDeclarePorts(targets) {
			var missing []string
			for _, p := range pr.Ports {
				if !anyListens(targets, p) {
					missing = append(missing, p.Port)
				}
			}
			if len(missing) > 0 {
				l.add("PAL-2011", c.src(pp+".ports"), c.r.String(),
					fmt.Sprintf("rules.http on port %s, where %s do%s not listen", strings.Join(missing, ", "), keys(targets, 3), map[bool]string{true: "es", false: ""}[len(targets) == 1]),
					"Cilium applies toPorts to the pod's port after Service translation (the targetPort, not the Service port), so HTTP rules on another port never see a request.",
					fmt.Sprintf("Use the container port (%s).", declaredPorts(targets)))
			}
		}
		// Istio mutual TLS on the port (PAL-2013).
		var meshed []string
		if podPeers {
			for _, t := range targets {
				for _, p := range ports[t] {
					mode, _, _ := l.eng.Workload(t).MTLS.ForPort(uint32(p.port))
					if mode != mtls.Disable {
						meshed = append(meshed, fmt.Sprintf("%s port %d (%s)", t.Key(), p.port, mode))
					}
				}
			}
		}
		if len(meshed) > 0 {
			l.add("PAL-2013", c.src(pp+".rules.http"), c.r.String(),
				fmt.Sprintf("rules.http apply to connections that carry Istio mutual TLS (%s), which Cilium's HTTP proxy cannot parse: the requests fail", list(meshed, 3)),
				"Cilium's L7 proxy must read the HTTP it filters; between Istio sidecars the connection is mTLS, so it sees only TLS records. Cilium documents Istio's STRICT and PERMISSIVE mTLS as incompatible with its HTTP network policy (docs.cilium.io, Istio integration); `palisade check` answers 503 for such requests.",
				"Move the HTTP rules (methods, paths) into an Istio AuthorizationPolicy on the workload and keep this Cilium rule at layer 4 (ports only).")
			continue
		}
		// HTTPS without TLS interception (PAL-2014).
		if pr.TerminatingTLS == nil && pr.OriginatingTLS == nil {
			for _, p := range pr.Ports {
				if p.Port == "443" || p.Port == "8443" || strings.EqualFold(p.Port, "https") {
					l.add("PAL-2014", c.src(pp+".rules.http"), c.r.String(),
						fmt.Sprintf("rules.http on port %s without terminatingTLS or originatingTLS: Cilium's HTTP proxy cannot read HTTPS there", p.Port),
						"To apply HTTP rules to TLS traffic Cilium must terminate it (terminatingTLS, with originatingTLS toward the server) — its TLS inspection feature; otherwise the proxy receives TLS records, cannot parse them as HTTP, and the connection fails.",
						"Keep this rule at layer 4 (ports and toFQDNs), or configure terminatingTLS and originatingTLS with a CA the clients trust.")
					break
				}
			}
		}
	}
}

// resolvePorts resolves the numeric and named ports of toPorts for each
// target; no ports or port 0 means every declared TCP port.
func (l *linter) resolvePorts(pps []cilium.PortProtocol, targets []*config.Workload) map[*config.Workload][]portProto {
	out := map[*config.Workload][]portProto{}
	for _, t := range targets {
		out[t] = l.portsFor(pps, t)
	}
	return out
}

func (l *linter) portsFor(pps []cilium.PortProtocol, t *config.Workload) []portProto {
	var out []portProto
	all := len(pps) == 0
	for _, p := range pps {
		proto := strings.ToUpper(string(p.Protocol))
		if proto == "" || proto == "ANY" {
			proto = "TCP"
		}
		if p.Port == "" || p.Port == "0" {
			all = true
			continue
		}
		if n, err := strconv.ParseUint(p.Port, 10, 16); err == nil {
			hi := n
			if p.EndPort > int32(n) {
				hi = uint64(p.EndPort)
			}
			for _, cp := range t.Ports {
				if uint64(cp.Port) >= n && uint64(cp.Port) <= hi && cp.Protocol == proto {
					out = append(out, portProto{cp.Port, proto})
				}
			}
			if hi == n && !hasPortProto(out, uint16(n), proto) {
				out = append(out, portProto{uint16(n), proto})
			}
			continue
		}
		if cp, ok := t.Port(strings.ToLower(p.Port)); ok {
			out = append(out, portProto{cp.Port, cp.Protocol})
		}
	}
	if all {
		for _, cp := range t.Ports {
			if !hasPortProto(out, cp.Port, cp.Protocol) {
				out = append(out, portProto{cp.Port, cp.Protocol})
			}
		}
	}
	return out
}

func hasPortProto(ps []portProto, port uint16, proto string) bool {
	for _, p := range ps {
		if p.port == port && p.proto == proto {
			return true
		}
	}
	return false
}

// entryPorts are the ports a Cilium entry allows toward t.
func (l *linter) entryPorts(toPorts []cilium.PortRule, t *config.Workload) []portProto {
	if len(toPorts) == 0 {
		return l.portsFor(nil, t)
	}
	var out []portProto
	for _, pr := range toPorts {
		for _, p := range l.portsFor(pr.Ports, t) {
			if !hasPortProto(out, p.port, p.proto) {
				out = append(out, p)
			}
		}
	}
	return out
}

func allDeclarePorts(ws []*config.Workload) bool {
	for _, w := range ws {
		if len(w.Ports) == 0 {
			return false
		}
	}
	return true
}

func anyListens(ws []*config.Workload, p cilium.PortProtocol) bool {
	if p.Port == "" || p.Port == "0" {
		return true
	}
	n, err := strconv.ParseUint(p.Port, 10, 16)
	for _, w := range ws {
		for _, cp := range w.Ports {
			if err == nil && (uint64(cp.Port) == n || (p.EndPort > int32(n) && uint64(cp.Port) >= n && uint64(cp.Port) <= uint64(p.EndPort))) {
				return true
			}
			if err != nil && strings.EqualFold(cp.Name, p.Port) {
				return true
			}
		}
	}
	return false
}

func declaredPorts(ws []*config.Workload) string {
	var out []string
	for _, w := range ws {
		for _, cp := range w.Ports {
			s := fmt.Sprintf("%s: %d", w.Name, cp.Port)
			if !contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return list(out, 4)
}

// pair is a connection a network policy entry allows, between two classes
// of workloads.
type pair struct {
	from, to *class
	ports    []portProto
}

// class is a set of workloads that policy cannot tell apart: same
// namespace, service account, labels and ports, so the same Cilium identity
// and Istio principal. Checks decide once per class, which keeps a policy
// between two large namespaces from costing a decision per pod pair.
type class struct {
	rep     *config.Workload
	members []*config.Workload
}

func (c *class) String() string {
	if len(c.members) == 1 {
		return c.rep.Key()
	}
	return fmt.Sprintf("%d workloads (%s)", len(c.members), keys(c.members, 2))
}

func (l *linter) classesOf(ws []*config.Workload) []*class {
	var out []*class
	byKey := map[string]*class{}
	for _, w := range ws {
		var b strings.Builder
		fmt.Fprintf(&b, "%s|%s|", w.Namespace, w.ServiceAccount)
		for _, k := range sortedKeys(w.Labels) {
			fmt.Fprintf(&b, "%s=%s,", k, w.Labels[k])
		}
		for _, p := range w.Ports {
			fmt.Fprintf(&b, "|%s:%d/%s", p.Name, p.Port, p.Protocol)
		}
		key := b.String()
		if c, ok := byKey[key]; ok {
			c.members = append(c.members, w)
			continue
		}
		c := &class{rep: w, members: []*config.Workload{w}}
		byKey[key] = c
		out = append(out, c)
	}
	return out
}

// istioPorts are the ports of Istio's own sidecar and agent, which the
// sidecar does not pass through authorization (metrics, health, admin).
var istioPorts = map[uint16]bool{15000: true, 15001: true, 15004: true, 15006: true, 15008: true, 15009: true, 15020: true, 15021: true, 15053: true, 15090: true}

// checkIstioAgrees (PAL-2022): an ingress allow whose peers Istio's
// authorization always denies on those ports.
func (l *linter) checkIstioAgrees(object string, src Source, pairs []pair) {
	var denied []string
	var notes []string
	for _, p := range pairs {
		for _, pp := range p.ports {
			if pp.proto != "TCP" || istioPorts[pp.port] || p.from == p.to {
				continue
			}
			ok, rejected := l.istioCouldAllow(p.to.rep, p.from.rep, pp.port)
			if ok {
				continue
			}
			denied = append(denied, fmt.Sprintf("%s → %s:%d", p.from, p.to, pp.port))
			for _, r := range rejected {
				if !contains(notes, r) {
					notes = append(notes, r)
				}
			}
		}
	}
	if len(denied) == 0 {
		return
	}
	note := ""
	if len(notes) > 0 {
		note = fmt.Sprintf(" AuthorizationPolicy %s would select the destination but istiod rejects it, so it is not in effect.", strings.Join(notes, ", "))
	}
	l.add("PAL-2022", src, object,
		fmt.Sprintf("the network policy admits %s, but no Istio ALLOW rule there can match the client, so authorization denies every request", list(denied, 3)),
		"When ALLOW policies select a workload, its sidecar denies what none of their rules matches; the client's identity (its service account), the port and, for rules with requestPrincipals, a RequestAuthentication on the destination decide. The two layers disagree: either the network allow is unnecessary or an AuthorizationPolicy rule is missing."+note,
		"Remove the peer from the network policy, or add an AuthorizationPolicy rule for the client's service account — make the two layers say the same.")
}

// destAuthz is what istioCouldAllow needs of a destination, computed once.
type destAuthz struct {
	allows   []*apInfo // enforced ALLOW policies selecting it
	hasAllow bool
	hasRA    bool
	tcp      map[uint16]bool // ports proxied as TCP
	rejected []string        // rejected ALLOW policies that would select it
}

func (l *linter) destAuthz(d *config.Workload) *destAuthz {
	if x, ok := l.destMemo[d]; ok {
		return x
	}
	c := l.eng.Workload(d)
	x := &destAuthz{hasRA: len(c.JWTSources) > 0, tcp: map[uint16]bool{}}
	for _, ap := range l.policies {
		if ap.rejected && action(ap) == authz.Allow && containsWorkload(ap.selected, d) {
			x.rejected = append(x.rejected, ap.r.Key())
		}
	}
	for _, p := range l.ports(d) {
		x.tcp[p.port] = p.tcp
	}
	for _, p := range c.Authz.Policies {
		if p.Action != authz.Allow || p.DryRun {
			continue
		}
		x.hasAllow = true
		if ap := l.apByID[p.ID()]; ap != nil {
			x.allows = append(x.allows, ap)
		} else {
			x.allows = nil // unknown policy: assume it may allow
			x.hasAllow = false
			break
		}
	}
	l.destMemo[d] = x
	return x
}

// istioCouldAllow reports whether some enforced ALLOW rule on workload d
// could match a connection from workload a on port (with some request),
// and names the rejected ALLOW policies that would have selected d.
func (l *linter) istioCouldAllow(d, a *config.Workload, port uint16) (bool, []string) {
	x := l.destAuthz(d)
	if !x.hasAllow {
		return true, x.rejected
	}
	identity := l.identity(a)
	for _, ap := range x.allows {
		for i := range ap.rules {
			if l.ruleCouldMatch(&ap.rules[i], ap.r.Meta.Namespace, a, identity, port, x.tcp[port], x.hasRA) {
				return true, x.rejected
			}
		}
	}
	return false, x.rejected
}

// peer is the netpol peer of a workload, computed once.
func (l *linter) peer(w *config.Workload) *netpol.Peer {
	p, ok := l.peerMemo[w]
	if !ok {
		p = l.net.PeerOf(w)
		l.peerMemo[w] = p
	}
	return p
}

// ruleCouldMatch reports whether some request of workload a on port could
// match the rule. Only what the inventory knows rules a match out: the
// identity, the port, HTTP-only fields on a TCP port, and JWT fields
// without a RequestAuthentication.
func (l *linter) ruleCouldMatch(n *nrule, policyNS string, a *config.Workload, identity string, port uint16, tcp, hasRA bool) bool {
	if names, _ := n.httpFields(); tcp && len(names) > 0 {
		return false
	}
	if !n.appliesToPort(port) || (!hasRA && n.requiresJWT()) {
		return false
	}
	idMatch := func(kind, v string) bool {
		switch kind {
		case "principals", "source.principal":
			return principalMatches(v, identity, l.tds)
		case "namespaces", "source.namespace":
			return namespaceMatches(v, a.Namespace)
		case "serviceAccounts", "source.serviceAccount":
			return serviceAccountMatches(v, policyNS, a)
		}
		return true
	}
	fits := func(kind string, v vals) bool {
		if len(v.values) > 0 {
			ok := false
			for _, x := range v.values {
				ok = ok || idMatch(kind, x)
			}
			if !ok {
				return false
			}
		}
		for _, x := range v.not {
			if idMatch(kind, x) {
				return false
			}
		}
		return true
	}
	for _, cd := range n.when {
		switch cd.key {
		case "source.principal", "source.namespace", "source.serviceAccount":
			if !fits(cd.key, cd.vals) {
				return false
			}
		}
	}
	if len(n.from) == 0 {
		return true
	}
	for _, e := range n.from {
		ok := true
		for _, f := range []string{"principals", "namespaces", "serviceAccounts"} {
			if v, has := e.fields[f]; has && !fits(f, v) {
				ok = false
			}
		}
		if len(e.fields["requestPrincipals"].values) > 0 && !hasRA {
			ok = false
		}
		if ok {
			return true
		}
	}
	return false
}

// checkOneSided (PAL-2033): an entry allows a connection that the other
// end's policy drops. other is the direction checked at the other end.
func (l *linter) checkOneSided(object string, src Source, pairs []pair, other netpol.Direction) {
	if l.net.Settings.EnforcementMode == cilium.EnforcementNever {
		return
	}
	// Dropped connections grouped by destination and ports, so that one
	// line says "13 workloads of production → kube-dns:53/UDP, 53/TCP".
	type group struct {
		to    *class
		ports []string
		from  []*config.Workload
	}
	var groups []*group
	var why []string
	reasons := 0
	for _, p := range pairs {
		if p.from == p.to {
			continue
		}
		var ports []string
		for _, pp := range p.ports {
			var v netpol.Verdict
			if other == netpol.Ingress {
				v = l.net.DecideOnce(l.net.Endpoint(p.to.rep), netpol.Ingress, l.peer(p.from.rep), pp.port, pp.proto)
			} else {
				v = l.net.DecideOnce(l.net.Endpoint(p.from.rep), netpol.Egress, l.peer(p.to.rep), pp.port, pp.proto)
			}
			if v.Allowed {
				continue
			}
			ports = append(ports, pp.String())
			if reasons < 4 { // a few distinct reasons suffice for the explanation
				reasons++
				if r := v.Reason(); !contains(why, r) && len(why) < 2 {
					why = append(why, r)
				}
			}
		}
		if len(ports) == 0 {
			continue
		}
		key := strings.Join(ports, ", ")
		var g *group
		for _, x := range groups {
			if x.to == p.to && strings.Join(x.ports, ", ") == key {
				g = x
			}
		}
		if g == nil {
			g = &group{to: p.to, ports: ports}
			groups = append(groups, g)
		}
		g.from = append(g.from, p.from.members...)
	}
	if len(groups) == 0 {
		return
	}
	var dropped []string
	for _, g := range groups {
		from := g.from[0].Key()
		if len(g.from) > 1 {
			from = fmt.Sprintf("%d workloads (%s)", len(g.from), keys(g.from, 2))
		}
		dropped = append(dropped, fmt.Sprintf("%s → %s:%s", from, g.to, strings.Join(g.ports, ", ")))
	}
	side := "the destination's ingress"
	if other == netpol.Egress {
		side = "the client's egress"
	}
	l.add("PAL-2033", src, object,
		fmt.Sprintf("this entry allows %s, but %s drops it", list(dropped, 3), side),
		"Cilium enforces a connection at both ends: the client's egress and the server's ingress must each allow it. Here only one side does: "+strings.Join(why, "; ")+".",
		fmt.Sprintf("Add the matching rule on %s (or remove this one if the connection is not wanted).", side))
}

// networkPolicy checks a Kubernetes NetworkPolicy.
func (l *linter) networkPolicy(r *config.Resource[*networkingv1.NetworkPolicySpec]) {
	spec := r.Spec
	src := func(path string) Source { return sourceOf(r.Source.At(path)) }
	sel, err := netpol.NetworkPolicySubject(r.Meta.Namespace, &spec.PodSelector)
	if err != nil {
		return
	}
	subjects := l.matching(sel)
	if l.hasInventory() && len(subjects) == 0 {
		l.add("PAL-2020", src("spec.podSelector"), r.String(),
			fmt.Sprintf("podSelector %s selects no workload in namespace %s", selectorString(&spec.PodSelector), r.Meta.Namespace),
			"A NetworkPolicy applies to the pods of its namespace that its podSelector selects; this one selects none. "+l.labelHint(r.Meta.Namespace, spec.PodSelector.MatchLabels),
			"Correct the podSelector's labels to those of the pods the policy is for.")
	}
	ingress, egress := false, false
	for _, t := range spec.PolicyTypes {
		ingress = ingress || t == networkingv1.PolicyTypeIngress
		egress = egress || t == networkingv1.PolicyTypeEgress
	}
	if len(spec.PolicyTypes) > 0 {
		if !egress && len(spec.Egress) > 0 {
			l.add("PAL-2002", src("spec.egress"), r.String(),
				"egress rules are ignored: policyTypes does not list Egress",
				"When policyTypes is given, a NetworkPolicy applies only the directions it lists; its egress rules are dropped without a warning.",
				"Add Egress to policyTypes, or remove the egress rules.")
		}
		if !ingress && len(spec.Ingress) > 0 {
			l.add("PAL-2002", src("spec.ingress"), r.String(),
				"ingress rules are ignored: policyTypes does not list Ingress",
				"When policyTypes is given, a NetworkPolicy applies only the directions it lists; its ingress rules are dropped without a warning.",
				"Add Ingress to policyTypes, or remove the ingress rules.")
		}
	}
	peers := func(path string, ps []networkingv1.NetworkPolicyPeer) []*config.Workload {
		var all []*config.Workload
		for k, p := range ps {
			s, ok, err := netpol.NetworkPolicyPeer(r.Meta.Namespace, p)
			if !ok || err != nil {
				continue
			}
			ws := l.matching(s)
			for _, w := range ws {
				if !containsWorkload(all, w) {
					all = append(all, w)
				}
			}
			if l.hasInventory() && len(ws) == 0 {
				l.add("PAL-2021", src(fmt.Sprintf("%s[%d]", path, k)), r.String(),
					fmt.Sprintf("peer %s matches no workload", peerString(p)),
					"A podSelector peer selects pods of the policy's namespace, a namespaceSelector the pods of namespaces with those labels; no workload in the inventory is selected, so this peer allows nothing.",
					"Correct the selectors to the labels of the intended pods and namespaces.")
			}
		}
		return all
	}
	knpPorts := func(ports []networkingv1.NetworkPolicyPort) []cilium.PortRule {
		if len(ports) == 0 {
			return nil
		}
		pr := cilium.PortRule{}
		for _, p := range ports {
			pp := cilium.PortProtocol{Protocol: "TCP"}
			if p.Protocol != nil {
				pp.Protocol = cilium.L4Proto(*p.Protocol)
			}
			if p.Port != nil {
				pp.Port = p.Port.String()
			}
			if p.EndPort != nil {
				pp.EndPort = *p.EndPort
			}
			pr.Ports = append(pr.Ports, pp)
		}
		return []cilium.PortRule{pr}
	}
	if ingress || len(spec.PolicyTypes) == 0 {
		for i, in := range spec.Ingress {
			p := fmt.Sprintf("spec.ingress[%d]", i)
			ps := peers(p+".from", in.From)
			if len(in.From) == 0 {
				continue
			}
			var pairs []pair
			peerClasses := l.classesOf(ps)
			for _, d := range l.classesOf(subjects) {
				for _, a := range peerClasses {
					pairs = append(pairs, pair{from: a, to: d, ports: l.entryPorts(knpPorts(in.Ports), d.rep)})
				}
			}
			l.checkIstioAgrees(r.String(), src(p), pairs)
			l.checkOneSided(r.String(), src(p), pairs, netpol.Egress)
		}
	}
	if egress || (len(spec.PolicyTypes) == 0 && len(spec.Egress) > 0) {
		for i, out := range spec.Egress {
			p := fmt.Sprintf("spec.egress[%d]", i)
			ps := peers(p+".to", out.To)
			var pairs []pair
			peerClasses := l.classesOf(ps)
			for _, a := range l.classesOf(subjects) {
				for _, b := range peerClasses {
					pairs = append(pairs, pair{from: a, to: b, ports: l.entryPorts(knpPorts(out.Ports), b.rep)})
				}
			}
			l.checkOneSided(r.String(), src(p), pairs, netpol.Ingress)
		}
	}
}

// checkEnforcementAlways (PAL-2030): with policyEnforcementMode always, a
// namespace that no policy allows anything is cut off.
func (l *linter) checkEnforcementAlways() {
	if l.net.Settings.EnforcementMode != cilium.EnforcementAlways || l.snap.Cilium.Source.File == "" {
		return
	}
	byNS := map[string][]*config.Workload{}
	for _, w := range l.workloads {
		byNS[w.Namespace] = append(byNS[w.Namespace], w)
	}
	src := sourceOf(l.snap.Cilium.Source.At("policyEnforcementMode"))
	for _, ns := range sortedKeys(byNS) {
		ws := byNS[ns]
		any := false
		for _, w := range ws {
			ep := l.net.Endpoint(w)
			any = any || ep.HasAllows(netpol.Ingress) || ep.HasAllows(netpol.Egress)
		}
		if any {
			continue
		}
		extra := ""
		for _, w := range ws {
			for _, p := range w.Ports {
				if p.Port == 53 {
					extra = fmt.Sprintf(" %s serves DNS: every pod's name lookups fail.", w.Key())
				}
			}
			if isGateway(w) {
				extra += fmt.Sprintf(" %s is an Istio gateway: traffic into the mesh stops there.", w.Key())
			}
		}
		l.add("PAL-2030", src, "Cilium Helm values",
			fmt.Sprintf("policyEnforcementMode always, and no network policy allows anything in namespace %s: %s can neither receive nor send", ns, keys(ws, 4)),
			"With policyEnforcementMode always, Cilium enforces policy on every endpoint, selected by a rule or not, so an endpoint that no rule allows anything is cut off in both directions (Cilium 'Policy Enforcement Modes')."+extra,
			"Keep policyEnforcementMode default and write default-deny policies per namespace, or add policies that allow what the system namespaces need (DNS, the ingress gateway, monitoring, SPIRE).")
	}
}

// checkCiliumValues (PAL-2031): values the chart does not read as
// written. Only keys whose meaning is certain are checked.
func (l *linter) checkCiliumValues() {
	cs := l.snap.Cilium.Source
	if cs.File == "" {
		return
	}
	var d *rawDoc
	for i := range l.raw {
		if l.raw[i].file == cs.File && l.raw[i].doc == cs.Doc {
			d = &l.raw[i]
		}
	}
	if d == nil {
		return
	}
	line := func(key string) Source { return d.source(keyNode(d.root, key).Line) }
	if n := field(d.root, "kubeProxyReplacement"); n != nil && n.Kind == yaml.ScalarNode {
		switch strings.ToLower(n.Value) {
		case "strict", "partial", "probe", "disabled":
			repl := "true"
			if strings.ToLower(n.Value) != "strict" {
				repl = "false (with the individual features you need)"
			}
			l.add("PAL-2031", line("kubeProxyReplacement"), "Cilium Helm values",
				fmt.Sprintf("kubeProxyReplacement: %s is a value from before Cilium 1.14, which made the option true or false", n.Value),
				"Cilium 1.14 replaced strict/partial/probe/disabled by a boolean; later agents compare the value with \"true\", so 'strict' does not enable everything 'true' does (cilium/cilium#32711).",
				"Write kubeProxyReplacement: "+repl+".")
		}
	}
	if n := field(d.root, "bandwidthManager"); n != nil && n.Kind != yaml.MappingNode {
		l.add("PAL-2031", line("bandwidthManager"), "Cilium Helm values",
			fmt.Sprintf("bandwidthManager: %s, but the chart's bandwidthManager is an object {enabled, bbr}", n.Value),
			"The chart reads bandwidthManager.enabled and bandwidthManager.bbr; a scalar has neither, so it does not enable the bandwidth manager (depending on the template, Helm fails to render it or sees no enabled key).",
			"Write bandwidthManager: {enabled: true}.")
	}
	for _, key := range []string{"identityGCInterval", "identityHeartbeatTimeout"} {
		if keyNode(d.root, key) != nil {
			l.add("PAL-2031", line(key), "Cilium Helm values",
				fmt.Sprintf("%s is not a top-level chart value: it is operator.%s", key, key),
				"Identity garbage collection runs in cilium-operator; the chart reads operator."+key+" (default "+map[string]string{"identityGCInterval": "15m0s", "identityHeartbeatTimeout": "30m0s"}[key]+") and ignores unknown top-level keys, so the value here is never used.",
				fmt.Sprintf("Move it under operator: (operator.%s).", key))
		}
	}
}

// checkUnselected (PAL-2032): a workload not in ingress default deny in a
// namespace whose other workloads are.
func (l *linter) checkUnselected() {
	if l.net.Settings.EnforcementMode != cilium.EnforcementDefault || len(l.net.Policies) == 0 {
		return
	}
	byNS := map[string][]*config.Workload{}
	for _, w := range l.workloads {
		if len(w.Ports) > 0 {
			byNS[w.Namespace] = append(byNS[w.Namespace], w)
		}
	}
	for _, ns := range sortedKeys(byNS) {
		var on, off []*config.Workload
		by := map[string]bool{}
		for _, w := range byNS[ns] {
			enforced, why := l.net.Endpoint(w).Enforced(netpol.Ingress)
			if enforced {
				on = append(on, w)
				by[why] = true
			} else {
				off = append(off, w)
			}
		}
		if len(on) == 0 {
			continue
		}
		sort.Slice(off, func(i, j int) bool { return off[i].Key() < off[j].Key() })
		for _, w := range off {
			l.add("PAL-2032", sourceOf(w.Source.At("metadata.name")), w.String(),
				fmt.Sprintf("%s accepts connections from anywhere: no network policy puts it into ingress default deny, while %d other workload%s of %s %s", w.Key(), len(on), plural(len(on)), ns, map[bool]string{true: "is", false: "are"}[len(on) == 1]),
				"Cilium enforces ingress policy on an endpoint only once a rule with ingress entries selects it (policyEnforcementMode default). The others are selected by "+strings.Join(sortedKeys(by), ", ")+".",
				"Select this workload with a rule that has ingress entries (for default deny in the namespace: endpointSelector: {} with ingress: [{}]).")
		}
	}
}
