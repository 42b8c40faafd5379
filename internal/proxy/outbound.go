package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/palisade-security/palisade/internal/engine"
	"github.com/palisade-security/palisade/internal/httpnorm"
)

// errEgressDenied is a connection the egress network policy refuses.
var errEgressDenied = errors.New("egress network policy denies the connection")

// handleOutbound serves a connection from the application on an outbound
// listener: as TCP for a TCP destination, else through the listener's
// HTTP server.
func (p *Proxy) handleOutbound(ctx context.Context, ol *outListener, c net.Conn) {
	d := newDownstream(c)
	d.out = ol
	v := p.view()
	if v == nil {
		reset(c)
		return
	}
	if v.dests[ol.idx].tcp {
		p.outboundTCP(ctx, d, v)
		return
	}
	p.serveCleartext(d, ol.h2cq, p.serveOutbound)
}

// egress asks the engine whether the workload may connect to the
// destination: Cilium's and Kubernetes' egress policy, as the kernel would
// enforce it. An fqdn is checked by name here, with the address it
// resolved to when known; the dialer checks each address it resolves.
func (p *Proxy) egress(v *view, ol *outListener, dest *destination) engine.Decision {
	if dest.workload != nil {
		return dest.egress
	}
	ip := ol.lastIP.Load()
	if ip == nil {
		return engine.Decision{Allowed: true, Layer: engine.LayerNetworkEgress}
	}
	return v.out.Connect(nil, *ip, dest.fqdn, dest.port)
}

// serveOutbound is the outbound HTTP handler: egress policy, then the
// request goes to the destination over mTLS (or as its DestinationRule
// says).
func (p *Proxy) serveOutbound(w http.ResponseWriter, r *http.Request, d *downstream) {
	ol := d.out
	smuggled := d.clAndTE
	v := p.view()
	if v == nil {
		localReply(w, http.StatusServiceUnavailable, "no policy", true)
		return
	}
	cv := p.outboundView(d, v)
	dest := cv.dest
	rs := getReqState()
	defer putReqState(rs)
	rs.cluster = dest.cluster
	rs.path = requestTarget(r)
	rs.hdrBytes = headSize(r)
	rs.upgrade = upgradeOf(r)
	rs.dec = engine.Decision{Allowed: true, Layer: engine.LayerNetworkEgress}

	// The application's requests get the same hardening as a client's:
	// Envoy's codec and path normalization run on outbound listeners too.
	_, full, nerr := httpnorm.Path(rs.path, v.pathMode)
	merr := httpnorm.Method(r.Method)
	switch {
	case smuggled:
		rs.code, rs.details = http.StatusBadRequest, "http1.content_length_and_chunked_not_allowed"
		rs.respBytes = localReply(w, rs.code, "Bad Request", true)
	case merr != nil:
		rs.code, rs.details = merr.Status, merr.Detail
		rs.respBytes = localReply(w, rs.code, merr.Msg, true)
	case nerr != nil:
		rs.code, rs.details = nerr.Status, nerr.Detail
		rs.respBytes = localReply(w, rs.code, nerr.Msg, true)
	case rs.upgrade != "" && rs.upgrade != "websocket":
		p.refuseUpgrade(w, rs, rs.upgrade)
	case dest.err != nil:
		rs.code, rs.flags, rs.details = http.StatusServiceUnavailable, "NC", "cluster_not_found"
		rs.respBytes = localReply(w, rs.code, "no cluster found: "+dest.err.Error(), false)
	case p.lim.MaxBodyBytes > 0 && r.ContentLength > p.lim.MaxBodyBytes:
		rs.code, rs.details = http.StatusRequestEntityTooLarge, "request_payload_too_large"
		rs.respBytes = localReply(w, rs.code, "Payload Too Large", true)
	default:
		rs.dec = p.egress(v, ol, dest)
		if !rs.dec.Allowed {
			// The network drops the connection: Envoy answers a failed
			// upstream connection with 503 UF.
			rs.code, rs.flags, rs.details = http.StatusServiceUnavailable, "UF", "network_policy_denied"
			rs.respBytes = localReply(w, rs.code, bodyNetworkDenied, false)
			break
		}
		rs.path = full
		h := r.Header
		removeHopByHop(h)
		keepUpgrade(h, rs.upgrade)
		if _, ok := h["X-Forwarded-Proto"]; !ok {
			h["X-Forwarded-Proto"] = httpProto
		}
		if _, ok := h["X-Request-Id"]; !ok {
			h["X-Request-Id"] = []string{newRequestID()}
		}
		p.forward(w, r, d, rs, ol.cluster, dest.s, useH2(dest.h2, dest.h2set, r))
		if rs.details == "network_policy_denied" {
			rs.dec = engine.Decision{Layer: engine.LayerNetworkEgress, Reason: errEgressDenied.Error()}
		}
	}
	p.emitHTTP(rs, cv, d, r)
}

// bodyNetworkDenied is the body of the 503 for a connection the network
// policy drops, Envoy's connection-failure reply with the reason.
const bodyNetworkDenied = "upstream connect error or disconnect/reset before headers. reset reason: connection failure, network policy denied\r\n"

// headSize estimates the bytes of a request's head.
func headSize(r *http.Request) int64 {
	n := int64(len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4 + len("Host: ") + len(r.Host) + 4)
	for k, vs := range r.Header {
		for _, v := range vs {
			n += int64(len(k) + len(v) + 4)
		}
	}
	return n
}

// dialer connects to an outbound endpoint, then originates TLS:
// ISTIO_MUTUAL presents the proxy's SVID (fetched at each handshake) and
// accepts only the destination's SPIFFE ID, verified against the trust
// bundle. connectTimeout bounds both, as in Envoy, whose TLS transport
// socket reports the connection up only once the handshake is done. An
// fqdn is resolved here and its address checked against the egress
// policy before it is dialed.
func (p *Proxy) dialer(ol *outListener) func(context.Context, *endpoint, *settings) (net.Conn, error) {
	var nd net.Dialer
	return func(ctx context.Context, ep *endpoint, s *settings) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, s.connectTimeout)
		defer cancel()
		addr := ep.addr
		if fqdn := ol.target.fqdn; fqdn != "" {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			ip, err := netip.ParseAddr(host)
			if err != nil {
				ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
				if err != nil {
					return nil, err
				}
				if len(ips) == 0 {
					return nil, errors.New("no address for " + host)
				}
				ip = ips[0]
			}
			v := p.view()
			pn, _ := strconv.Atoi(port)
			if v == nil || !v.out.Connect(nil, ip, fqdn, uint16(pn)).Allowed {
				return nil, errEgressDenied
			}
			ol.lastIP.Store(&ip)
			addr = net.JoinHostPort(ip.String(), port)
		}
		raw, err := nd.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		raw = p.upstreamConn(raw)
		if s.tls == nil {
			return raw, nil
		}
		tc := tls.Client(raw, s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, errors.New("TLS error: " + err.Error())
		}
		return tc, nil
	}
}
