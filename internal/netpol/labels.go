// Package netpol evaluates network policy the way Cilium enforces it:
// CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and Kubernetes
// NetworkPolicy are compiled per endpoint into ingress and egress entries
// over Cilium identities, and a connection is decided at layer 3/4, with the
// HTTP rules that then apply at layer 7.
package netpol

import (
	"sort"
	"strings"

	"github.com/palisade-security/palisade/internal/config"
)

// Label sources (pkg/labels): k8s for pod and namespace labels, reserved
// for Cilium's reserved identities, any in a selector for "any source".
const (
	sourceK8s      = "k8s"
	sourceReserved = "reserved"
	sourceAny      = "any"
)

// Well-known Cilium label keys.
const (
	labelNamespace       = "io.kubernetes.pod.namespace"
	labelServiceAccount  = "io.cilium.k8s.policy.serviceaccount"
	labelCluster         = "io.cilium.k8s.policy.cluster"
	labelNamespacePrefix = "io.cilium.k8s.namespace.labels."
)

// DefaultClusterName is Cilium's cluster.name when the Helm values give none.
const DefaultClusterName = "default"

// label is one Cilium label: a source, a key and a value.
type label struct{ source, key, value string }

// Labels is the label set of an identity, sorted by key.
type Labels []label

func (ls Labels) sort() Labels {
	sort.Slice(ls, func(i, j int) bool {
		if ls[i].key != ls[j].key {
			return ls[i].key < ls[j].key
		}
		return ls[i].source < ls[j].source
	})
	return ls
}

// String renders the labels as Cilium prints them: source:key=value.
func (ls Labels) String() string {
	var parts []string
	for _, l := range ls {
		s := l.source + ":" + l.key
		if l.value != "" {
			s += "=" + l.value
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// workloadLabels is the identity of a pod as Cilium derives it: its pod
// labels, its namespace, service account and cluster, and its namespace's
// labels, all from source k8s.
func workloadLabels(w *config.Workload, ns *config.Namespace, cluster string) Labels {
	ls := Labels{
		{sourceK8s, labelNamespace, w.Namespace},
		{sourceK8s, labelServiceAccount, w.ServiceAccount},
		{sourceK8s, labelCluster, cluster},
	}
	for k, v := range w.Labels {
		ls = append(ls, label{sourceK8s, k, v})
	}
	if ns != nil {
		for k, v := range ns.Labels {
			ls = append(ls, label{sourceK8s, labelNamespacePrefix + k, v})
		}
	}
	return ls.sort()
}

// reservedLabels is the identity of one of Cilium's reserved entities.
func reservedLabels(name string) Labels {
	return Labels{{sourceReserved, name, ""}}
}

// parseKey splits a selector key "source:key" into its parts; a key without
// a source matches labels of any source.
func parseKey(k string) (source, key string) {
	if i := strings.IndexByte(k, ':'); i > 0 {
		return k[:i], k[i+1:]
	}
	return sourceAny, k
}
