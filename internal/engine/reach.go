package engine

import (
	"sync"

	"github.com/palisade-security/palisade/internal/authz"
	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/netpol"
)

// Pairs decides many workload-to-workload connections quickly: the layers
// of Check, in the same order and with the same rules, without building a
// trace. Analyses such as the reachability matrix use it. It is safe for
// concurrent use.
type Pairs struct {
	e     *Engine
	mu    sync.Mutex
	peers map[*config.Workload]*netpol.Peer
	tls   map[tlsKey]bool
}

type tlsKey struct {
	clientNS string
	client   *config.Workload // set only when a DestinationRule selects clients by label
	dst      *config.Workload
	port     uint16
}

// Pairs returns a pair decider over the engine.
func (e *Engine) Pairs() *Pairs {
	return &Pairs{e: e, peers: map[*config.Workload]*netpol.Peer{}, tls: map[tlsKey]bool{}}
}

// PairHTTP is the HTTP request a pair is asked about; nil for a TCP
// connection.
type PairHTTP struct {
	Method, Path string
	Headers      authz.Headers // lowercase names
}

// Decide says whether src may reach dst on port, and which layer stops it
// ("" when allowed).
func (p *Pairs) Decide(src, dst *config.Workload, port uint16, http *PairHTTP) (allowed bool, layer string) {
	e := p.e
	if len(e.net.Policies) > 0 || e.net.Settings.EnforcementMode != "default" {
		dstPeer, srcPeer := p.peer(dst), p.peer(src)
		if v := e.net.DecideOnce(e.net.Endpoint(src), netpol.Egress, dstPeer, port, "TCP"); !v.Allowed {
			return false, LayerNetworkEgress
		}
		v := e.net.DecideOnce(e.net.Endpoint(dst), netpol.Ingress, srcPeer, port, "TCP")
		if !v.Allowed {
			return false, LayerNetworkIngress
		}
		if v.L7 {
			if p.mtls(src, dst, port) || http == nil {
				// Cilium's HTTP proxy cannot read Istio mTLS; a request
				// that is not HTTP cannot pass an HTTP proxy either.
				return false, LayerL7
			}
			entries := e.net.HTTPEntries(e.net.Endpoint(dst), netpol.Ingress, srcPeer, port, "TCP")
			if hv := netpol.DecideHTTP(entries, &netpol.HTTPRequest{Method: http.Method, Path: http.Path, Host: e.DefaultHost(dst), Headers: http.Headers.Get}); !hv.Allowed {
				return false, LayerL7
			}
		}
	}
	w := e.Workload(dst)
	mode, _, _ := w.MTLS.ForPort(uint32(port))
	mtlsOn := p.mtls(src, dst, port)
	if !mode.Accepts(mtlsOn) {
		return false, LayerMTLS
	}
	c := &Conn{Port: port, Source: src}
	if len(src.IPs) > 0 {
		c.SourceIP = src.IPs[0]
	}
	if len(dst.IPs) > 0 {
		c.DestIP = dst.IPs[0]
	}
	if mtlsOn {
		c.Peer = e.Identity(src)
	}
	in := &Inbound{e: e, w: w, net: nil}
	if http == nil || in.OpaqueTCP(port) {
		d := in.Connection(c)
		return d.Allowed, layerIf(d)
	}
	// Cilium's HTTP rules were applied above; Request skips them when net
	// is nil.
	d := in.Request(c, http.Method, http.Path, e.DefaultHost(dst), http.Headers)
	return d.Allowed, layerIf(d)
}

func layerIf(d Decision) string {
	if d.Allowed {
		return ""
	}
	return d.Layer
}

func (p *Pairs) peer(w *config.Workload) *netpol.Peer {
	p.mu.Lock()
	defer p.mu.Unlock()
	peer, ok := p.peers[w]
	if !ok {
		peer = p.e.net.PeerOf(w)
		p.peers[w] = peer
	}
	return peer
}

// mtls reports whether src's sidecar connects to dst:port with Istio
// mTLS, remembering the answer per client namespace (and per client when a
// DestinationRule selects clients by label).
func (p *Pairs) mtls(src, dst *config.Workload, port uint16) bool {
	key := tlsKey{clientNS: src.Namespace, dst: dst, port: port}
	if p.e.drSelectsClients {
		key.client = src
	}
	p.mu.Lock()
	on, ok := p.tls[key]
	p.mu.Unlock()
	if ok {
		return on
	}
	mode, _, _ := p.e.Workload(dst).MTLS.ForPort(uint32(port))
	svc, sp := p.e.servicePort(dst, port)
	on, _, _ = p.e.sidecarMTLS(src, mode, svc, sp)
	p.mu.Lock()
	p.tls[key] = on
	p.mu.Unlock()
	return on
}
