// Package mtls resolves Istio PeerAuthentication: which mutual TLS mode a
// workload's sidecar enforces on each of its ports.
package mtls

import (
	"fmt"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/palisade-security/palisade/internal/config"
)

// Mode is a PeerAuthentication mode as a sidecar enforces it.
type Mode uint8

// The modes. Unset never comes out of Resolve: it inherits, and at the top
// it means Permissive.
const (
	Permissive Mode = iota
	Strict
	Disable
)

func (m Mode) String() string {
	switch m {
	case Strict:
		return "STRICT"
	case Disable:
		return "DISABLE"
	}
	return "PERMISSIVE"
}

// Accepts reports whether a sidecar in mode m accepts a connection that is
// mutual TLS (mtls true) or plaintext. A STRICT inbound listener has only
// TLS filter chains, so plaintext matches none and is refused. Under
// DISABLE, in-mesh clients send plaintext (auto mTLS follows the server's
// mode), so Accepts is not asked about mTLS there.
func (m Mode) Accepts(mtls bool) bool { return mtls || m != Strict }

// Level is where a mode came from.
type Level uint8

// The levels, narrowest last.
const (
	LevelDefault Level = iota
	LevelMesh
	LevelNamespace
	LevelWorkload
	LevelPort
)

func (l Level) String() string {
	return [...]string{"default", "mesh", "namespace", "workload", "port"}[l]
}

// Policy is the resolved PeerAuthentication of one workload.
type Policy struct {
	Mode    Mode
	Level   Level   // where Mode came from
	From    *Source // the policy that set Mode; nil for the default
	PerPort map[uint32]PortMode
	// Considered lists, for the trace, the PeerAuthentications chosen at
	// each level (mesh, namespace, workload) in that order.
	Considered []*Source
}

// PortMode is the mode of one port named by portLevelMtls.
type PortMode struct {
	Mode Mode
	From *Source
}

// Source names a PeerAuthentication.
type Source struct {
	Namespace, Name string
	Level           Level
	Source          config.Source
}

func (s *Source) String() string {
	return fmt.Sprintf("%s/%s (%s level)", s.Namespace, s.Name, s.Level)
}

// ForPort returns the mode enforced on a workload (container) port and the
// policy that set it. portLevelMtls keys are container ports, and a sidecar
// enforces them whether or not a Service declares the port.
func (p *Policy) ForPort(port uint32) (Mode, Level, *Source) {
	if pm, ok := p.PerPort[port]; ok {
		return pm.Mode, LevelPort, pm.From
	}
	return p.Mode, p.Level, p.From
}

// Resolve composes the PeerAuthentications that apply to w as istiod's
// ComposePeerAuthentication does: start from PERMISSIVE; apply the oldest
// mesh-level policy (root namespace, no selector), then the oldest
// namespace-level one, then the oldest workload-level one (a selector that
// selects w, outside the root namespace), each only when its mode is set;
// port-level modes come from the workload-level policy alone, UNSET ports
// inheriting the workload's mode. A policy with a selector in the root
// namespace is ignored. pas must be ordered oldest first.
func Resolve(pas []*config.Resource[*securityv1beta1.PeerAuthentication], w *config.Workload, rootNamespace string) *Policy {
	var mesh, ns, wl *config.Resource[*securityv1beta1.PeerAuthentication]
	for _, pa := range pas {
		labels := pa.Spec.GetSelector().GetMatchLabels()
		switch {
		case len(labels) == 0 && pa.Meta.Namespace == rootNamespace:
			if mesh == nil {
				mesh = pa
			}
		case len(labels) == 0 && pa.Meta.Namespace == w.Namespace:
			if ns == nil {
				ns = pa
			}
		case len(labels) > 0 && pa.Meta.Namespace == w.Namespace && pa.Meta.Namespace != rootNamespace && config.Selects(labels, w.Labels):
			if wl == nil {
				wl = pa
			}
		}
	}
	p := &Policy{Mode: Permissive}
	apply := func(pa *config.Resource[*securityv1beta1.PeerAuthentication], level Level) *Source {
		if pa == nil {
			return nil
		}
		src := &Source{Namespace: pa.Meta.Namespace, Name: pa.Meta.Name, Level: level, Source: pa.Source}
		p.Considered = append(p.Considered, src)
		if m, ok := mode(pa.Spec.GetMtls()); ok {
			p.Mode, p.Level, p.From = m, level, src
		}
		return src
	}
	apply(mesh, LevelMesh)
	apply(ns, LevelNamespace)
	src := apply(wl, LevelWorkload)
	if wl != nil && len(wl.Spec.GetPortLevelMtls()) > 0 {
		p.PerPort = map[uint32]PortMode{}
		for port, m := range wl.Spec.GetPortLevelMtls() {
			pm, ok := mode(m)
			if !ok {
				pm = p.Mode // an UNSET port inherits the workload's mode
			}
			p.PerPort[port] = PortMode{Mode: pm, From: src}
		}
	}
	return p
}

// mode converts a MutualTLS setting; ok is false when it is absent or UNSET.
func mode(m *securityv1beta1.PeerAuthentication_MutualTLS) (Mode, bool) {
	switch m.GetMode() {
	case securityv1beta1.PeerAuthentication_MutualTLS_STRICT:
		return Strict, true
	case securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE:
		return Permissive, true
	case securityv1beta1.PeerAuthentication_MutualTLS_DISABLE:
		return Disable, true
	}
	return Permissive, false
}
