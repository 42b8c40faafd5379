package netpol

import (
	"fmt"
	"net/netip"
	"sort"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-security/palisade/internal/config"
)

// FromNetworkPolicy translates a Kubernetes NetworkPolicy into Cilium's
// rule model, as Cilium itself does (pkg/k8s/network_policy.go): the
// podSelector in the policy's namespace is the subject; each listed
// policyType puts that direction into default deny (Ingress always, Egress
// when egress rules are given and policyTypes is omitted); a rule without
// peers allows every peer; namespaceSelector keys become namespace labels.
func FromNetworkPolicy(r *config.Resource[*networkingv1.NetworkPolicySpec]) (*Policy, error) {
	spec := r.Spec
	p := &Policy{Kind: KindKNP, Namespace: r.Meta.Namespace, Name: r.Meta.Name, Source: r.Source}
	subject, err := compileSelector(&spec.PodSelector)
	if err != nil {
		return nil, fmt.Errorf("spec.podSelector: %v", err)
	}
	ru := &rule{policy: p, path: "spec", subject: subject.withNamespace(p.Namespace)}
	ingress, egress := false, false
	for _, t := range spec.PolicyTypes {
		ingress = ingress || t == networkingv1.PolicyTypeIngress
		egress = egress || t == networkingv1.PolicyTypeEgress
	}
	if len(spec.PolicyTypes) == 0 {
		ingress, egress = true, len(spec.Egress) > 0
	}
	if ingress {
		ru.ingress = section{present: true, defaultDeny: true}
		for i, in := range spec.Ingress {
			e, err := knpEntry(ru, fmt.Sprintf("spec.ingress[%d]", i), in.From, in.Ports, p.Namespace)
			if err != nil {
				return nil, err
			}
			ru.ingress.allow = append(ru.ingress.allow, e)
		}
	}
	if egress {
		ru.egress = section{present: true, defaultDeny: true}
		for i, out := range spec.Egress {
			e, err := knpEntry(ru, fmt.Sprintf("spec.egress[%d]", i), out.To, out.Ports, p.Namespace)
			if err != nil {
				return nil, err
			}
			ru.egress.allow = append(ru.egress.allow, e)
		}
	}
	p.rules = []*rule{ru}
	return p, nil
}

func knpEntry(ru *rule, path string, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort, ns string) (*Entry, error) {
	e := &Entry{rule: ru, path: path}
	if len(peers) == 0 {
		e.peers.all = true
	}
	for i, peer := range peers {
		ppath := fmt.Sprintf("%s.peers[%d]", path, i)
		switch {
		case peer.IPBlock != nil:
			c, err := parseCIDRSet(peer.IPBlock.CIDR, peer.IPBlock.Except)
			if err != nil {
				return nil, fmt.Errorf("%s.ipBlock: %v", ppath, err)
			}
			e.peers.cidrs = append(e.peers.cidrs, c)
		default:
			sel, err := knpPeerSelector(peer, ns)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", ppath, err)
			}
			e.peers.selectors = append(e.peers.selectors, sel)
		}
	}
	for i, port := range ports {
		pm := portMatch{proto: "TCP"}
		if port.Protocol != nil {
			pm.proto = string(*port.Protocol)
		}
		if port.Port != nil {
			if port.Port.StrVal != "" {
				pm.name = port.Port.StrVal
			} else {
				pm.lo = uint16(port.Port.IntVal)
				pm.hi = pm.lo
				if port.EndPort != nil && *port.EndPort >= port.Port.IntVal {
					pm.hi = uint16(*port.EndPort)
				}
			}
		}
		if pm.name == "" && pm.lo == 0 && port.Port != nil {
			return nil, fmt.Errorf("%s.ports[%d]: port 0 is not valid", path, i)
		}
		e.ports = append(e.ports, pm)
	}
	return e, nil
}

// knpPeerSelector builds the selector of a podSelector and/or
// namespaceSelector peer: a podSelector alone is in the policy's namespace;
// a namespaceSelector matches the namespace's labels, and an empty one
// every namespace.
func knpPeerSelector(peer networkingv1.NetworkPolicyPeer, ns string) (selector, error) {
	var sel selector
	if peer.PodSelector != nil {
		s, err := compileSelector(peer.PodSelector)
		if err != nil {
			return sel, err
		}
		sel = s
	}
	if peer.NamespaceSelector == nil {
		return sel.withNamespace(ns), nil
	}
	nsSel, err := compileSelector(namespaceLabelSelector(peer.NamespaceSelector))
	if err != nil {
		return sel, err
	}
	sel.reqs = append(sel.reqs, nsSel.reqs...)
	sel.text = fmt.Sprintf("pods %s in namespaces %s", selectorText(peer.PodSelector), selectorText(peer.NamespaceSelector))
	return sel.withAnyNamespace(), nil
}

// namespaceLabelSelector rewrites a namespaceSelector over namespace labels
// as the pod labels Cilium gives them: io.cilium.k8s.namespace.labels.<key>.
func namespaceLabelSelector(s *metav1.LabelSelector) *metav1.LabelSelector {
	out := &metav1.LabelSelector{MatchLabels: map[string]string{}}
	keys := make([]string, 0, len(s.MatchLabels))
	for k := range s.MatchLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out.MatchLabels[sourceK8s+":"+labelNamespacePrefix+k] = s.MatchLabels[k]
	}
	for _, e := range s.MatchExpressions {
		e.Key = sourceK8s + ":" + labelNamespacePrefix + e.Key
		out.MatchExpressions = append(out.MatchExpressions, e)
	}
	return out
}

// parseCIDRSet reads a CIDR and its exceptions; each exception must lie
// inside the CIDR.
func parseCIDRSet(cidr string, except []string) (cidrSet, error) {
	p, err := parseCIDR(cidr)
	if err != nil {
		return cidrSet{}, err
	}
	c := cidrSet{prefix: p}
	for _, x := range except {
		xp, err := parseCIDR(x)
		if err != nil {
			return cidrSet{}, err
		}
		c.except = append(c.except, xp)
	}
	return c, nil
}

// parseCIDR reads a prefix or a single address.
func parseCIDR(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR or an IP address", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
