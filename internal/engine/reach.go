package engine

import (
	"github.com/palisade-security/palisade/internal/authz"
	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/netpol"
)

// Pairs decides many workload-to-workload connections quickly: the layers
// of Check, in the same order and with the same rules, without building a
// trace, remembering what each workload and destination port needs. It is
// not safe for concurrent use: make one per goroutine.
type Pairs struct {
	e     *Engine
	ends  map[*config.Workload]*pairEnd
	ports map[portKey]*pairPort
	tls   map[tlsKey]bool
}

// pairEnd is what Pairs knows of one workload.
type pairEnd struct {
	w        *Workload
	peer     *netpol.Peer
	endpoint *netpol.Endpoint
	identity string
	host     string // the default HTTP Host of requests to it
}

// pairPort is what Pairs knows of one destination port.
type pairPort struct {
	svc    *config.Service
	sp     *config.ServicePort
	opaque bool
	sni    string // what an Istio client sends to the port's Service
}

type portKey struct {
	dst  *config.Workload
	port uint16
}

type tlsKey struct {
	clientNS string
	client   *config.Workload // set only when a DestinationRule selects clients by label
	dst      *config.Workload
	port     uint16
}

// Pairs returns a pair decider over the engine.
func (e *Engine) Pairs() *Pairs {
	return &Pairs{e: e, ends: map[*config.Workload]*pairEnd{}, ports: map[portKey]*pairPort{}, tls: map[tlsKey]bool{}}
}

func (p *Pairs) end(w *config.Workload) *pairEnd {
	if pe, ok := p.ends[w]; ok {
		return pe
	}
	pe := &pairEnd{w: p.e.Workload(w), endpoint: p.e.net.Endpoint(w), identity: p.e.Identity(w), host: p.e.DefaultHost(w)}
	pe.peer = pe.endpoint.Peer
	p.ends[w] = pe
	return pe
}

func (p *Pairs) port(dst *config.Workload, port uint16) *pairPort {
	k := portKey{dst, port}
	if pp, ok := p.ports[k]; ok {
		return pp
	}
	pp := &pairPort{}
	pp.svc, pp.sp = p.e.servicePort(dst, port)
	_, pp.opaque = opaqueProtocol(pp.sp)
	if pp.sp != nil {
		pp.sni = serviceSNI(pp.svc, pp.sp)
	}
	p.ports[k] = pp
	return pp
}

// PairHTTP is the HTTP request a pair is asked about; nil for a TCP
// connection.
type PairHTTP struct {
	Method, Path string
	Headers      authz.Headers // lowercase names
	// Any asks instead whether some request could pass, the client
	// choosing method, path, headers and tokens (Inbound.AnyRequest):
	// what a compromised workload could do. Opaque TCP ports are asked as
	// connections.
	Any bool
}

// Decide says whether src may reach dst on port, and which layer stops it
// ("" when allowed).
func (p *Pairs) Decide(src, dst *config.Workload, port uint16, http *PairHTTP) (allowed bool, layer string) {
	if ok, layer := p.Network(src, dst, port, http); !ok {
		return false, layer
	}
	return p.Mesh(src, dst, port, http)
}

// Network decides the network layers: the client's egress and the
// server's ingress policy, and Cilium's HTTP rules at either. Its answer
// depends on the client only through its Cilium identity (namespace,
// labels, service account, host networking) and whether its sidecar uses
// mTLS, which Cilium's HTTP proxy cannot read (namespace, and labels when a
// DestinationRule selects clients). It follows Check's network layers.
func (p *Pairs) Network(src, dst *config.Workload, port uint16, http *PairHTTP) (allowed bool, layer string) {
	e := p.e
	if len(e.net.Policies) == 0 && e.net.Settings.EnforcementMode == "default" {
		return true, ""
	}
	from, to := p.end(src), p.end(dst)
	var l7 [][]*netpol.Entry
	for _, side := range [2]struct {
		layer string
		ep    *netpol.Endpoint
		dir   netpol.Direction
		peer  *netpol.Peer
	}{
		{LayerNetworkEgress, from.endpoint, netpol.Egress, to.peer},
		{LayerNetworkIngress, to.endpoint, netpol.Ingress, from.peer},
	} {
		v := e.net.DecideOnce(side.ep, side.dir, side.peer, port, "TCP")
		if !v.Allowed {
			return false, side.layer
		}
		if v.L7 {
			l7 = append(l7, e.net.HTTPEntries(side.ep, side.dir, side.peer, port, "TCP"))
		}
	}
	for _, entries := range l7 {
		switch {
		case p.mtls(src, dst, port):
			// Cilium's HTTP proxy cannot read Istio mTLS.
			return false, LayerL7
		case http == nil || http.Any:
			// A connection opens (Check warns that a client not speaking
			// HTTP fails); some request passes an HTTP rule the peer has.
		default:
			hr := &netpol.HTTPRequest{Method: http.Method, Path: http.Path, Host: to.host, Headers: http.Headers.Get}
			if !netpol.DecideHTTP(entries, hr).Allowed {
				return false, LayerL7
			}
		}
	}
	return true, ""
}

// Mesh decides the sidecar layers: mTLS, request handling, request
// authentication and authorization. Its answer depends on the client only
// through its identity (namespace and service account), its addresses,
// and its labels when a DestinationRule selects clients by label.
func (p *Pairs) Mesh(src, dst *config.Workload, port uint16, http *PairHTTP) (allowed bool, layer string) {
	from, to := p.end(src), p.end(dst)
	mode, _, _ := to.w.MTLS.ForPort(uint32(port))
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
		c.Peer = from.identity
		if pp := p.port(dst, port); pp.sp != nil {
			c.SNI = pp.sni
		}
	}
	// Cilium's HTTP rules belong to Network; the Inbound methods skip
	// them when net is nil.
	in := &Inbound{e: p.e, w: to.w, net: nil}
	var d Decision
	switch {
	case http == nil || p.port(dst, port).opaque:
		d = in.Connection(c)
	case http.Any:
		d = in.AnyRequest(c)
	default:
		d = in.Request(c, http.Method, http.Path, to.host, http.Headers)
	}
	return d.Allowed, layerIf(d)
}

// SelectsClients reports whether some DestinationRule selects client
// workloads by label, so that a client's labels change its mTLS.
func (e *Engine) SelectsClients() bool { return e.drSelectsClients }

func layerIf(d Decision) string {
	if d.Allowed {
		return ""
	}
	return d.Layer
}

// mtls reports whether src's sidecar connects to dst:port with Istio
// mTLS, remembering the answer per client namespace (and per client when a
// DestinationRule selects clients by label).
func (p *Pairs) mtls(src, dst *config.Workload, port uint16) bool {
	key := tlsKey{clientNS: src.Namespace, dst: dst, port: port}
	if p.e.drSelectsClients {
		key.client = src
	}
	if on, ok := p.tls[key]; ok {
		return on
	}
	mode, _, _ := p.end(dst).w.MTLS.ForPort(uint32(port))
	pp := p.port(dst, port)
	on, _, _ := p.e.sidecarMTLS(src, mode, pp.svc, pp.sp)
	p.tls[key] = on
	return on
}
