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
}

// labelUse records what the policies ask of one label key: which values
// they name, and whether they only ask for its presence.
type labelUse struct {
	values map[string]bool
}

// classify groups workloads by what the snapshot's policies can
// distinguish: namespace, service account, host network, addresses (when
// a policy matches addresses), container ports and the Services selecting
// them, and the labels selectors refer to — a label value no selector names
// behaves like any other unnamed value, so it is folded.
func classify(snap *config.Snapshot) ([]*Class, []int) {
	uses := labelUses(snap)
	ipMatters, hostsMatter := addressesMatter(snap), hostsMatter(snap)
	byKey := map[string]int{}
	var classes []*Class
	classOf := make([]int, len(snap.Inventory.Workloads))
	var b strings.Builder
	for i, w := range snap.Inventory.Workloads {
		b.Reset()
		fmt.Fprintf(&b, "%s|%s|%v|", w.Namespace, w.ServiceAccount, w.HostNetwork)
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
			fmt.Fprintf(&b, "%s=%s,", k, v)
		}
		b.WriteByte('|')
		for _, p := range w.Ports {
			fmt.Fprintf(&b, "%s:%d/%s,", p.Name, p.Port, p.Protocol)
		}
		b.WriteByte('|')
		svcs := snap.Inventory.ServicesFor(w)
		for _, s := range svcs {
			fmt.Fprintf(&b, "%s,", s.Name)
		}
		if hostsMatter && len(svcs) == 0 {
			fmt.Fprintf(&b, "|%s", w.Name) // requests carry the workload's name as Host
		}
		if ipMatters {
			fmt.Fprintf(&b, "|%v", w.IPs)
		}
		key := b.String()
		idx, ok := byKey[key]
		if !ok {
			idx = len(classes)
			byKey[key] = idx
			classes = append(classes, &Class{Key: key})
		}
		classes[idx].Members = append(classes[idx].Members, w)
		classOf[i] = idx
	}
	return classes, classOf
}

// labelUses collects the label keys and values every kind of selector in
// the snapshot refers to.
func labelUses(snap *config.Snapshot) map[string]*labelUse {
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
	for _, s := range snap.Inventory.Services {
		addMap(s.Selector)
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
				if k := strings.ToLower(c.GetKey()); k == "request.headers[:authority]" || k == "request.headers[host]" {
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
