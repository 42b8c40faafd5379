package engine

import (
	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/netpol"
)

// This file gives `palisade lint` read-only access to what the engine
// compiled, so that the linter judges policies with the same model that
// decides requests.

// Network returns the compiled network policy of the snapshot.
func (e *Engine) Network() *netpol.Set { return e.net }

// ServicePort finds the Service port whose target is the workload port.
func (e *Engine) ServicePort(w *config.Workload, port uint16) (*config.Service, *config.ServicePort) {
	return e.servicePort(w, port)
}

// OpaqueProtocol reports whether Istio proxies a Service port as TCP, by
// its appProtocol or its name's prefix, and the protocol it read.
func OpaqueProtocol(sp *config.ServicePort) (string, bool) { return opaqueProtocol(sp) }
