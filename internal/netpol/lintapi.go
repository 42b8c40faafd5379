package netpol

import (
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// This file gives read-only access to compiled network policy for
// `palisade lint`, which asks questions a decision never does: whether a
// selector as written matches any workload, whether an endpoint has any
// allow at all, whether a toFQDNs name is visible to the DNS proxy.

// Selector is a compiled label selector with Cilium's namespace handling
// applied, for matching against workloads as peers (Set.PeerOf).
type Selector struct{ sel selector }

// Matches reports whether the selector selects the peer's identity.
func (s Selector) Matches(p *Peer) bool { return s.sel.matches(p.Labels) }

// SubjectSelector compiles a rule's endpointSelector as Cilium does: in a
// namespaced policy (clusterwide false) it is confined to ns.
func SubjectSelector(clusterwide bool, ns string, sel *metav1.LabelSelector) (Selector, error) {
	s, err := compileSelector(sel)
	if err != nil {
		return Selector{}, err
	}
	if !clusterwide {
		s = s.withoutNamespace().withNamespace(ns)
	}
	return Selector{s}, nil
}

// PeerSelector compiles a fromEndpoints/toEndpoints selector with the
// namespace Cilium adds to it (see cnpCompiler.scopePeer).
func PeerSelector(clusterwide bool, ns string, sel *metav1.LabelSelector) (Selector, error) {
	s, err := compileSelector(sel)
	if err != nil {
		return Selector{}, err
	}
	kind := KindCNP
	if clusterwide {
		kind = KindCCNP
	}
	c := cnpCompiler{policy: &Policy{Kind: kind, Namespace: ns}}
	return Selector{c.scopePeer(s)}, nil
}

// NetworkPolicySubject compiles a NetworkPolicy's podSelector in ns.
func NetworkPolicySubject(ns string, sel *metav1.LabelSelector) (Selector, error) {
	s, err := compileSelector(sel)
	if err != nil {
		return Selector{}, err
	}
	return Selector{s.withNamespace(ns)}, nil
}

// NetworkPolicyPeer compiles a NetworkPolicy peer's podSelector and
// namespaceSelector; ok is false for an ipBlock peer, which selects no pod.
func NetworkPolicyPeer(ns string, peer networkingv1.NetworkPolicyPeer) (s Selector, ok bool, err error) {
	if peer.IPBlock != nil {
		return Selector{}, false, nil
	}
	sel, err := knpPeerSelector(peer, ns)
	return Selector{sel}, err == nil, err
}

// HasAllows reports whether any allow entry of any rule applies to the
// endpoint in dir. An endpoint in default deny without one can neither send
// nor receive in that direction.
func (ep *Endpoint) HasAllows(dir Direction) bool { return len(ep.dirs[dir].allow) > 0 }

// DNSVisible reports whether an egress rule with rules.dns of the endpoint
// lets Cilium's DNS proxy see a lookup of name: only then does Cilium learn
// the addresses a toFQDNs rule allows.
func (s *Set) DNSVisible(ep *Endpoint, name string) bool { return ep.dirs[Egress].dnsVisible(name) }
