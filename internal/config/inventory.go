package config

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Inventory is what the policies apply to: namespaces, service accounts,
// services and workloads. A workload is a pod template (or a Pod) with its
// namespace, labels, service account and container ports.
type Inventory struct {
	Namespaces      map[string]*Namespace
	ServiceAccounts map[string]*ServiceAccount // by "namespace/name"
	Services        []*Service
	Workloads       []*Workload // sorted by namespace, then name, then kind

	byName map[string][]*Workload // "namespace/name" → workloads of that name
	// servicesByNS indexes Services by namespace once loading finishes;
	// until then ServicesFor scans.
	servicesByNS map[string][]*Service
}

// Namespace is a Kubernetes namespace. Declared is false for a namespace that
// is only named by other objects.
type Namespace struct {
	Name     string
	Labels   map[string]string
	Declared bool
	Source   Source
}

// ServiceAccount is a Kubernetes service account. Declared is false for one
// only named by a workload.
type ServiceAccount struct {
	Namespace, Name string
	Declared        bool
	Source          Source
}

// Service is a Kubernetes Service: which pods it selects and on which ports.
type Service struct {
	Namespace, Name string
	Selector        map[string]string
	Ports           []ServicePort
	Source          Source
}

// ServicePort is one port of a Service.
type ServicePort struct {
	Name        string
	Port        uint16
	TargetPort  uint16 // 0 when the target is a named port: see TargetName
	TargetName  string
	Protocol    string // TCP, UDP or SCTP
	AppProtocol string
}

// Workload is a set of identical pods: a Pod, or the pod template of a
// Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob.
type Workload struct {
	Kind, Namespace, Name string
	Labels                map[string]string
	ServiceAccount        string // "default" when the pod spec names none
	Ports                 []ContainerPort
	IPs                   []netip.Addr // from a Pod's status.podIP(s)
	HostNetwork           bool
	Source                Source
}

// ContainerPort is a port a workload's container declares.
type ContainerPort struct {
	Name     string
	Port     uint16
	Protocol string // TCP, UDP or SCTP
}

// Key is "namespace/name".
func (w *Workload) Key() string { return w.Namespace + "/" + w.Name }

// String is "Kind namespace/name".
func (w *Workload) String() string { return w.Kind + " " + w.Key() }

// Port returns the container port named name.
func (w *Workload) Port(name string) (ContainerPort, bool) {
	for _, p := range w.Ports {
		if p.Name == name {
			return p, true
		}
	}
	return ContainerPort{}, false
}

func newInventory() Inventory {
	return Inventory{
		Namespaces:      map[string]*Namespace{},
		ServiceAccounts: map[string]*ServiceAccount{},
		byName:          map[string][]*Workload{},
	}
}

// Workload finds a workload by "namespace/name", or "namespace/kind/name"
// when several kinds share a name.
func (inv *Inventory) Workload(ref string) (*Workload, error) {
	parts := strings.Split(ref, "/")
	switch len(parts) {
	case 2:
		ws := inv.byName[ref]
		switch len(ws) {
		case 0:
			return nil, fmt.Errorf("no workload %q in the inventory%s", ref, inv.suggest(parts[0]))
		case 1:
			return ws[0], nil
		}
		var kinds []string
		for _, w := range ws {
			kinds = append(kinds, fmt.Sprintf("%s/%s/%s", w.Namespace, strings.ToLower(w.Kind), w.Name))
		}
		return nil, fmt.Errorf("%q names %d workloads; use one of %s", ref, len(ws), strings.Join(kinds, ", "))
	case 3:
		for _, w := range inv.byName[parts[0]+"/"+parts[2]] {
			if strings.EqualFold(w.Kind, parts[1]) {
				return w, nil
			}
		}
		return nil, fmt.Errorf("no workload %q in the inventory%s", ref, inv.suggest(parts[0]))
	}
	return nil, fmt.Errorf("workload %q: expected NAMESPACE/NAME", ref)
}

func (inv *Inventory) suggest(ns string) string {
	var names []string
	for _, w := range inv.Workloads {
		if w.Namespace == ns {
			names = append(names, w.Name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	if len(names) > 12 {
		names = append(names[:12], "...")
	}
	return fmt.Sprintf(" (namespace %s has: %s)", ns, strings.Join(names, ", "))
}

// ServicesFor returns the Services in w's namespace whose selector selects w.
func (inv *Inventory) ServicesFor(w *Workload) []*Service {
	candidates := inv.Services
	if inv.servicesByNS != nil {
		candidates = inv.servicesByNS[w.Namespace]
	}
	var out []*Service
	for _, s := range candidates {
		if s.Namespace == w.Namespace && len(s.Selector) > 0 && Selects(s.Selector, w.Labels) {
			out = append(out, s)
		}
	}
	return out
}

// Selects reports whether a matchLabels selector selects labels: every
// selector label is present with the same value. An empty selector selects
// everything (Istio's labels.Instance.SubsetOf).
func Selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}

func (inv *Inventory) namespace(name string) *Namespace {
	ns := inv.Namespaces[name]
	if ns == nil {
		ns = &Namespace{Name: name}
		inv.Namespaces[name] = ns
	}
	return ns
}

func (inv *Inventory) serviceAccount(ns, name string) *ServiceAccount {
	key := ns + "/" + name
	sa := inv.ServiceAccounts[key]
	if sa == nil {
		sa = &ServiceAccount{Namespace: ns, Name: name}
		inv.ServiceAccounts[key] = sa
	}
	return sa
}

func (inv *Inventory) addWorkload(w *Workload) {
	inv.namespace(w.Namespace)
	inv.serviceAccount(w.Namespace, w.ServiceAccount)
	inv.Workloads = append(inv.Workloads, w)
	inv.byName[w.Key()] = append(inv.byName[w.Key()], w)
}

func (inv *Inventory) finish() {
	inv.servicesByNS = map[string][]*Service{}
	for _, s := range inv.Services {
		inv.servicesByNS[s.Namespace] = append(inv.servicesByNS[s.Namespace], s)
	}
	sort.SliceStable(inv.Workloads, func(i, j int) bool {
		a, b := inv.Workloads[i], inv.Workloads[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Kind < b.Kind
	})
}

// workloadFromPodSpec builds the workload of a pod template.
func workloadFromPodSpec(kind, ns, name string, labels map[string]string, spec *corev1.PodSpec, src Source) (*Workload, error) {
	w := &Workload{
		Kind: kind, Namespace: ns, Name: name,
		Labels:         labels,
		ServiceAccount: spec.ServiceAccountName,
		HostNetwork:    spec.HostNetwork,
		Source:         src,
	}
	if w.ServiceAccount == "" {
		w.ServiceAccount = spec.DeprecatedServiceAccount
	}
	if w.ServiceAccount == "" {
		w.ServiceAccount = "default"
	}
	if w.Labels == nil {
		w.Labels = map[string]string{}
	}
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		for _, p := range c.Ports {
			if p.ContainerPort < 1 || p.ContainerPort > 65535 {
				return nil, fmt.Errorf("container %q: containerPort %d is out of range 1-65535", c.Name, p.ContainerPort)
			}
			proto := string(p.Protocol)
			if proto == "" {
				proto = "TCP"
			}
			w.Ports = append(w.Ports, ContainerPort{Name: p.Name, Port: uint16(p.ContainerPort), Protocol: proto})
		}
	}
	return w, nil
}
