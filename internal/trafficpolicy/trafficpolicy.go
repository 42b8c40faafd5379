// Package trafficpolicy resolves Istio DestinationRules: which rule, and
// which traffic policy (TLS origination, connection pool, outlier
// detection), a client's sidecar applies to a destination host and port.
package trafficpolicy

import (
	"strings"

	"google.golang.org/protobuf/proto"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"

	"github.com/palisade-security/palisade/internal/config"
)

// ClusterDomain is the DNS suffix of Kubernetes services. Short DestinationRule
// hosts are qualified with it.
const ClusterDomain = "cluster.local"

// Resolved is the traffic policy that applies to one destination.
type Resolved struct {
	Host   string                                                // the destination's fully qualified host
	Rule   *config.Resource[*networkingv1alpha3.DestinationRule] // nil when no rule applies
	Policy *networkingv1alpha3.TrafficPolicy                     // with port-level settings merged; nil without a rule
}

// TLSMode is the client TLS mode the rule sets, or false when it sets none
// (the client then uses auto mTLS: ISTIO_MUTUAL towards sidecars).
func (r Resolved) TLSMode() (networkingv1alpha3.ClientTLSSettings_TLSmode, bool) {
	tls := r.Policy.GetTls()
	if tls == nil {
		return 0, false
	}
	return tls.GetMode(), true
}

// Client is the workload whose sidecar originates the connection.
type Client struct {
	Namespace string
	Labels    map[string]string
}

// Resolve finds the DestinationRule a client's sidecar applies to host
// (a fully qualified service name) on port, as istiod does: rules in the
// client's namespace first (those whose workloadSelector selects the client
// before those without one), then rules in the host's namespace exported to
// the client, then rules in the root namespace; within a namespace the most
// specific host wins (exact before wildcard, longer wildcard first), and
// among equals the oldest. drs must be ordered oldest first.
func Resolve(drs []*config.Resource[*networkingv1alpha3.DestinationRule], c Client, host string, port uint32, rootNamespace string) Resolved {
	out := Resolved{Host: host}
	hostNS := namespaceOf(host)
	lookup := []string{c.Namespace, hostNS, rootNamespace}
	for i, ns := range lookup {
		if ns == "" || contains(lookup[:i], ns) {
			continue
		}
		var best *config.Resource[*networkingv1alpha3.DestinationRule]
		bestScore := -1
		for _, dr := range drs {
			if dr.Meta.Namespace != ns || !exportedTo(dr, c.Namespace) {
				continue
			}
			sel := dr.Spec.GetWorkloadSelector().GetMatchLabels()
			if len(sel) > 0 && (ns != c.Namespace || !config.Selects(sel, c.Labels)) {
				continue // a workloadSelector only applies to clients in its namespace
			}
			s := hostScore(qualify(dr.Spec.GetHost(), dr.Meta.Namespace), host)
			if s < 0 {
				continue
			}
			if len(sel) > 0 {
				s += 1 << 20 // selected rules win over unselected ones
			}
			if s > bestScore {
				best, bestScore = dr, s
			}
		}
		if best != nil {
			out.Rule = best
			out.Policy = merge(best.Spec.GetTrafficPolicy(), port)
			return out
		}
	}
	return out
}

// merge applies the port-level settings for port over the rule-level ones,
// field by field, as istiod's MergeTrafficPolicy does.
func merge(tp *networkingv1alpha3.TrafficPolicy, port uint32) *networkingv1alpha3.TrafficPolicy {
	if tp == nil {
		return nil
	}
	for _, pl := range tp.GetPortLevelSettings() {
		if pl.GetPort().GetNumber() != port {
			continue
		}
		m := proto.Clone(tp).(*networkingv1alpha3.TrafficPolicy)
		m.PortLevelSettings = nil
		if pl.ConnectionPool != nil {
			m.ConnectionPool = pl.ConnectionPool
		}
		if pl.OutlierDetection != nil {
			m.OutlierDetection = pl.OutlierDetection
		}
		if pl.LoadBalancer != nil {
			m.LoadBalancer = pl.LoadBalancer
		}
		if pl.Tls != nil {
			m.Tls = pl.Tls
		}
		return m
	}
	return tp
}

// exportedTo applies exportTo: "*" (or none given) is every namespace, "."
// the rule's own.
func exportedTo(dr *config.Resource[*networkingv1alpha3.DestinationRule], ns string) bool {
	to := dr.Spec.GetExportTo()
	if len(to) == 0 {
		return true
	}
	for _, e := range to {
		if e == "*" || e == ns || (e == "." && dr.Meta.Namespace == ns) {
			return true
		}
	}
	return false
}

// qualify turns a short host ("reviews") into a name in the rule's
// namespace ("reviews.<ns>.svc.cluster.local"); names with dots and
// wildcards are used as written.
func qualify(h, ns string) string {
	if h == "" || strings.Contains(h, ".") || h == "*" {
		return h
	}
	return h + "." + ns + ".svc." + ClusterDomain
}

// hostScore is how specifically pattern matches host: higher is more
// specific, -1 is no match.
func hostScore(pattern, host string) int {
	switch {
	case strings.EqualFold(pattern, host):
		return 1 << 16
	case pattern == "*":
		return 0
	case strings.HasPrefix(pattern, "*") && len(host) >= len(pattern)-1 &&
		strings.EqualFold(host[len(host)-len(pattern)+1:], pattern[1:]):
		return len(pattern)
	}
	return -1
}

// namespaceOf returns the namespace of "<svc>.<ns>.svc.<domain>".
func namespaceOf(host string) string {
	parts := strings.Split(host, ".")
	if len(parts) >= 3 && parts[2] == "svc" {
		return parts[1]
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}
