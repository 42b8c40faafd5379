// Package analysis answers questions about a whole policy set, from the
// same engine that decides single requests: the reachability matrix, the
// lateral-movement exposure it leaves, and what changes between two policy
// sets.
package analysis

import (
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-security/palisade/internal/cilium"
	"github.com/palisade-security/palisade/internal/config"
)

// Class is a set of workloads that no policy of the snapshot can tell
// apart, in either direction: the matrix is computed once per class.
type Class struct {
	Key     string
	Members []*config.Workload
	// net and mesh number the coarser groups the class belongs to as a
	// client: classes with the same net are alike to the network layers
	// (engine.Pairs.Network), with the same mesh to the sidecar's
	// (engine.Pairs.Mesh).
	net, mesh int
}

// labelUse records what the policies ask of one label key: which values
// they name (a selector that only asks for the key's presence names none).
type labelUse struct {
	values map[string]bool
}

// classify groups workloads by what the snapshot's policies can
// distinguish: namespace, service account, host network, addresses (when
// a policy matches addresses), container ports and how Services declare
// them (and which Services select them, when a policy names Services), and
// the labels selectors refer to — a label value no selector names behaves
// like any other unnamed value, so it is folded. selectsClients says that
// a DestinationRule selects clients by label.
func classify(snap *config.Snapshot, selectsClients bool) ([]*Class, []int) {
	ipMatters, hostsMatter := addressesMatter(snap), hostsMatter(snap)
	servicesMatter := hostsMatter || servicesNamed(snap)
	uses := labelUses(snap, servicesMatter)
	saSelected := uses[serviceAccountLabel] != nil
	byKey, netIDs, meshIDs := map[string]int{}, map[string]int{}, map[string]int{}
	var classes []*Class
	classOf := make([]int, len(snap.Inventory.Workloads))
	var lb, b strings.Builder
	for i, w := range snap.Inventory.Workloads {
		lb.Reset()
		keys := make([]string, 0, len(w.Labels))
		for k := range w.Labels {
			if uses[k] != nil {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := w.Labels[k]
			if !uses[k].values[v] {
				v = "\x00other" // a value no selector names
			}
			fmt.Fprintf(&lb, "%s=%s,", k, v)
		}
		labels := lb.String()
		var ips string
		if ipMatters {
			ips = fmt.Sprint(w.IPs)
		}
		// Cilium's identity carries the service account as a label,
		// which matters when a selector names it.
		netKey := fmt.Sprintf("%s|%v|%s", w.Namespace, w.HostNetwork, labels)
		if saSelected {
			netKey += "|" + w.ServiceAccount
		}
		meshKey := fmt.Sprintf("%s|%s|%s", w.Namespace, w.ServiceAccount, ips)
		if selectsClients {
			meshKey += "|" + labels
		}

		b.Reset()
		fmt.Fprintf(&b, "%s|%s|%s|", netKey, w.ServiceAccount, ips)
		for _, p := range w.Ports {
			fmt.Fprintf(&b, "%s:%d/%s,", p.Name, p.Port, p.Protocol)
		}
		b.WriteByte('|')
		svcs := snap.Inventory.ServicesFor(w)
		for _, s := range svcs {
			if servicesMatter {
				fmt.Fprintf(&b, "%s,", s.Name)
				continue
			}
			// Only how the Service declares the ports matters: it
			// makes a port opaque TCP for the sidecar.
			for _, sp := range s.Ports {
				target := sp.TargetPort
				if cp, ok := w.Port(sp.TargetName); sp.TargetName != "" && ok {
					target = cp.Port
				}
				fmt.Fprintf(&b, "%d:%s:%s,", target, sp.Name, sp.AppProtocol)
			}
		}
		if hostsMatter && len(svcs) == 0 {
			fmt.Fprintf(&b, "|%s", w.Name) // requests carry the workload's name as Host
		}
		key := b.String()
		idx, ok := byKey[key]
		if !ok {
			idx = len(classes)
			byKey[key] = idx
			classes = append(classes, &Class{Key: key, net: id(netIDs, netKey), mesh: id(meshIDs, meshKey)})
		}
		classes[idx].Members = append(classes[idx].Members, w)
		classOf[i] = idx
	}
	return classes, classOf
}

// serviceAccountLabel is the label of a pod's service account in its
// Cilium identity, as selectors name it without a source prefix.
const serviceAccountLabel = "io.cilium.k8s.policy.serviceaccount"

// id numbers keys in order of appearance.
func id(ids map[string]int, key string) int {
	n, ok := ids[key]
	if !ok {
		n = len(ids)
		ids[key] = n
	}
	return n
}

// labelUses collects the label keys and values every kind of selector in
// the snapshot refers to.
func labelUses(snap *config.Snapshot, services bool) map[string]*labelUse {
	uses := map[string]*labelUse{}
	add := func(key, value string, named bool) {
		if i := strings.IndexByte(key, ':'); i >= 0 {
			key = key[i+1:] // Cilium label sources: k8s:app, any:app
		}
		u := uses[key]
		if u == nil {
			u = &labelUse{values: map[string]bool{}}
			uses[key] = u
		}
		if named {
			u.values[value] = true
		}
	}
	addMap := func(m map[string]string) {
		for k, v := range m {
			add(k, v, true)
		}
	}
	addSelector := func(s *metav1.LabelSelector) {
		if s == nil {
			return
		}
		addMap(s.MatchLabels)
		for _, e := range s.MatchExpressions {
			add(e.Key, "", false)
			for _, v := range e.Values {
				add(e.Key, v, true)
			}
		}
	}
	for _, r := range snap.AuthorizationPolicies {
		addMap(r.Spec.GetSelector().GetMatchLabels())
	}
	for _, r := range snap.PeerAuthentications {
		addMap(r.Spec.GetSelector().GetMatchLabels())
	}
	for _, r := range snap.RequestAuthentications {
		addMap(r.Spec.GetSelector().GetMatchLabels())
	}
	for _, r := range snap.DestinationRules {
		addMap(r.Spec.GetWorkloadSelector().GetMatchLabels())
	}
	if services {
		for _, s := range snap.Inventory.Services {
			addMap(s.Selector)
		}
	}
	for _, r := range snap.NetworkPolicies {
		addSelector(&r.Spec.PodSelector)
		for _, in := range r.Spec.Ingress {
			for _, p := range in.From {
				addSelector(p.PodSelector)
			}
		}
		for _, out := range r.Spec.Egress {
			for _, p := range out.To {
				addSelector(p.PodSelector)
			}
		}
	}
	for _, r := range append(append([]*config.Resource[*config.CiliumPolicy]{}, snap.CiliumNetworkPolicies...), snap.CiliumClusterwideNetworkPolicies...) {
		rules, _ := r.Spec.Rules()
		for _, rule := range rules {
			addSelector(rule.EndpointSelector)
			for _, in := range rule.Ingress {
				ciliumPeers(&in.IngressCommonRule, addSelector)
			}
			for _, in := range rule.IngressDeny {
				ciliumPeers(&in.IngressCommonRule, addSelector)
			}
			for _, out := range rule.Egress {
				ciliumEgressPeers(&out.EgressCommonRule, addSelector)
			}
			for _, out := range rule.EgressDeny {
				ciliumEgressPeers(&out.EgressCommonRule, addSelector)
			}
		}
	}
	return uses
}

func ciliumPeers(r *cilium.IngressCommonRule, add func(*metav1.LabelSelector)) {
	for i := range r.FromEndpoints {
		add(&r.FromEndpoints[i])
	}
	for i := range r.FromRequires {
		add(&r.FromRequires[i])
	}
}

func ciliumEgressPeers(r *cilium.EgressCommonRule, add func(*metav1.LabelSelector)) {
	for i := range r.ToEndpoints {
		add(&r.ToEndpoints[i])
	}
	for i := range r.ToRequires {
		add(&r.ToRequires[i])
	}
}

// servicesNamed reports whether some policy names Services: then which
// Services select a workload tells workloads apart, not only how they
// declare its ports. DestinationRules name them by host, Cilium by
// toServices.
func servicesNamed(snap *config.Snapshot) bool {
	if len(snap.DestinationRules) > 0 {
		return true
	}
	for _, r := range append(append([]*config.Resource[*config.CiliumPolicy]{}, snap.CiliumNetworkPolicies...), snap.CiliumClusterwideNetworkPolicies...) {
		rules, _ := r.Spec.Rules()
		for _, rule := range rules {
			for _, out := range rule.Egress {
				if len(out.ToServices) > 0 {
					return true
				}
			}
			for _, out := range rule.EgressDeny {
				if len(out.ToServices) > 0 {
					return true
				}
			}
		}
	}
	return false
}

// hostsMatter reports whether some rule reads the Host a request carries,
// which for a workload without a Service is its own name.
func hostsMatter(snap *config.Snapshot) bool {
	for _, r := range snap.AuthorizationPolicies {
		for _, rule := range r.Spec.GetRules() {
			for _, t := range rule.GetTo() {
				if len(t.GetOperation().GetHosts())+len(t.GetOperation().GetNotHosts()) > 0 {
					return true
				}
			}
			for _, c := range rule.GetWhen() {
				// The SNI names the Service too.
				if k := strings.ToLower(c.GetKey()); k == "request.headers[:authority]" || k == "request.headers[host]" || k == "connection.sni" {
					return true
				}
			}
		}
	}
	for _, r := range append(append([]*config.Resource[*config.CiliumPolicy]{}, snap.CiliumNetworkPolicies...), snap.CiliumClusterwideNetworkPolicies...) {
		rules, _ := r.Spec.Rules()
		for _, rule := range rules {
			for _, in := range rule.Ingress {
				for _, pr := range in.ToPorts {
					if pr.Rules != nil {
						for _, h := range pr.Rules.HTTP {
							if h.Host != "" {
								return true
							}
						}
					}
				}
			}
		}
	}
	return false
}

// addressesMatter reports whether some Istio rule matches on addresses,
// so that workloads with different pod IPs are not interchangeable.
// (Cilium's CIDR rules never select pods.)
func addressesMatter(snap *config.Snapshot) bool {
	for _, r := range snap.AuthorizationPolicies {
		for _, rule := range r.Spec.GetRules() {
			for _, f := range rule.GetFrom() {
				s := f.GetSource()
				if len(s.GetIpBlocks())+len(s.GetNotIpBlocks())+len(s.GetRemoteIpBlocks())+len(s.GetNotRemoteIpBlocks()) > 0 {
					return true
				}
			}
			for _, c := range rule.GetWhen() {
				switch c.GetKey() {
				case "source.ip", "remote.ip", "destination.ip":
					return true
				}
			}
		}
	}
	return false
}
