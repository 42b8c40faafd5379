package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/palisade-security/palisade/internal/engine"
	"github.com/palisade-security/palisade/internal/httpnorm"
	"github.com/palisade-security/palisade/internal/mtls"
	"github.com/palisade-security/palisade/internal/telemetry"
)

// handleInbound takes an accepted inbound connection through protocol
// detection, the PeerAuthentication mode and the TLS handshake, then
// proxies it as TCP or hands it to the port's HTTP server.
func (p *Proxy) handleInbound(ctx context.Context, ip *inPort, c net.Conn) {
	d := newDownstream(c)
	d.in = ip
	v := p.view()
	if v == nil {
		reset(c) // no policy: fail closed
		return
	}
	pv := &v.inPorts[ip.idx]
	isTLS := false
	if pv.mode != mtls.Disable {
		t, err := detectTLS(d, p.lim.HandshakeTimeout)
		switch {
		case errors.Is(err, errNoBytes) && pv.mode == mtls.Permissive:
			// A server-first protocol: plaintext, as Istio does after
			// its protocol detection timeout.
		case err != nil:
			c.Close()
			return
		}
		isTLS = t
	}
	if pv.mode == mtls.Strict && !isTLS {
		// A STRICT port has only TLS filter chains: plaintext matches
		// none, and Envoy closes the connection (response flag NR).
		p.refused(d, v, "filter_chain_not_found", "NR", "plaintext refused: PeerAuthentication is STRICT")
		reset(c)
		return
	}
	var conn net.Conn = d
	if isTLS {
		cfg := p.tlsHTTP
		if pv.tcp {
			cfg = p.tlsTCP
		}
		tc := tls.Server(d, cfg)
		hctx, cancel := context.WithTimeout(ctx, p.lim.HandshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			// An unknown trust domain, a certificate from another CA, no
			// client certificate: refused at the handshake.
			p.refused(d, v, "tls_handshake_failed", "", err.Error())
			c.Close()
			return
		}
		cs := tc.ConnectionState()
		if len(cs.PeerCertificates) > 0 {
			if id, err := x509svid.IDFromCert(cs.PeerCertificates[0]); err == nil {
				d.peer = id.String()
				d.peerCert = cs.PeerCertificates[0].Raw
			}
		}
		d.tls, d.sni, d.alpn = true, cs.ServerName, cs.NegotiatedProtocol
		conn = tc
	}
	if pv.tcp {
		p.inboundTCP(ctx, d, conn, v)
		return
	}
	if d.alpn == "h2" {
		ip.h2q.push(conn)
		return
	}
	if !d.tls {
		// Cleartext HTTP/2 is what a client's proxy sends a grpc port
		// whose PeerAuthentication is DISABLE.
		p.serveCleartext(d, ip.h2q, p.serveInbound)
		return
	}
	h := &h1Conn{Conn: conn}
	d.framing = &h.f
	p.serveHTTP1(h, d, p.serveInbound)
}

// serveCleartext serves a cleartext HTTP connection: HTTP/2 with prior
// knowledge goes to the listener's HTTP/2 server (q), HTTP/1.x to
// serveHTTP1.
func (p *Proxy) serveCleartext(d *downstream, q *connQueue, h handlerFunc) {
	h2c, err := detectH2C(d, p.lim.ReadHeaderTimeout)
	if err != nil {
		d.Close()
		return
	}
	if h2c {
		q.push(d)
		return
	}
	hc := &h1Conn{Conn: d}
	d.framing = &hc.f
	p.serveHTTP1(hc, d, h)
}

// refused reports a connection refused before any request: at protocol
// detection (STRICT) or at the TLS handshake.
func (p *Proxy) refused(d *downstream, v *view, details, flags, reason string) {
	dec := engine.Decision{Layer: engine.LayerMTLS, Reason: reason}
	p.metrics.RecordVerdict(telemetry.Dropped, telemetry.Ingress, telemetry.MatchNone)
	if p.access != nil {
		p.access.Log(&telemetry.AccessEntry{
			StartTime: d.start, Protocol: "TCP", ResponseFlags: flags, TerminationDetails: details,
			Duration: time.Since(d.start), UpstreamCluster: d.in.cluster,
			DownstreamLocalAddress: d.local.String(), DownstreamRemoteAddress: d.remote.String(),
			Reporter: telemetry.ReporterDestination, PolicyLayer: dec.Layer, PolicyReason: reason,
		})
	}
	if p.flows != nil {
		p.flows.Log(&telemetry.Flow{
			Time: d.start, Verdict: telemetry.Dropped, DropReason: telemetry.DropPolicyDenied, Ingress: true,
			SourceIP: d.remote.Addr(), SourcePort: d.remote.Port(), DestinationIP: d.local.Addr(), DestinationPort: d.in.cfg.Port,
			Destination: flowEndpoint(v.self, v.self.Namespace, ""), Layer: dec.Layer, Reason: reason, NodeName: p.cfg.NodeName,
		})
	}
}

// serveInbound is the inbound HTTP handler: the engine decides the
// request, then it is forwarded to the application.
func (p *Proxy) serveInbound(w http.ResponseWriter, r *http.Request, d *downstream) {
	ip := d.in
	smuggled := d.clAndTE
	v := p.view()
	if v == nil {
		localReply(w, http.StatusServiceUnavailable, "no policy", true)
		return
	}
	cv := p.inboundView(d, v)
	if !d.tls && v.inPorts[ip.idx].mode == mtls.Strict {
		// The policy became STRICT since this plaintext connection was
		// accepted: Envoy drains connections of removed filter chains;
		// this one ends now.
		panic(http.ErrAbortHandler)
	}
	rs := getReqState()
	defer putReqState(rs)
	rs.ingress, rs.cluster, rs.upstream = true, ip.cluster, ip.cfg.App
	rs.path = requestTarget(r)
	rs.collect(r)
	rs.upgrade = upgradeOf(r)

	switch {
	case smuggled:
		rs.dec = engine.Decision{Status: http.StatusBadRequest, Layer: engine.LayerHTTP,
			Reason: "both Content-Length and Transfer-Encoding"}
	case rs.upgrade != "" && rs.upgrade != "websocket":
		p.refuseUpgrade(w, rs, rs.upgrade)
		p.emitHTTP(rs, cv, d, r)
		return
	case p.lim.MaxBodyBytes > 0 && r.ContentLength > p.lim.MaxBodyBytes:
		rs.dec = engine.Decision{Allowed: true, Layer: engine.LayerHTTP}
		rs.code, rs.details = http.StatusRequestEntityTooLarge, "request_payload_too_large"
		rs.respBytes = localReply(w, rs.code, "Payload Too Large", true)
		p.emitHTTP(rs, cv, d, r)
		return
	default:
		rs.dec = v.in.Request(&cv.conn, r.Method, rs.path, r.Host, rs.headers)
	}
	if !rs.dec.Allowed {
		rs.code = rs.dec.Status
		if smuggled {
			rs.details = "http1.content_length_and_chunked_not_allowed"
			rs.respBytes = localReply(w, http.StatusBadRequest, "Bad Request", true)
		} else {
			rs.details, rs.respBytes = denyReply(w, r, &rs.dec)
		}
		p.emitHTTP(rs, cv, d, r)
		return
	}
	// Envoy forwards the normalized path, so the application sees the
	// path authorization judged.
	_, full, _ := httpnorm.Path(rs.path, v.pathMode)
	rs.path = full
	h := r.Header
	removeHopByHop(h)
	keepUpgrade(h, rs.upgrade)
	if _, ok := h["X-Forwarded-Proto"]; !ok {
		if d.tls {
			h["X-Forwarded-Proto"] = httpsProto
		} else {
			h["X-Forwarded-Proto"] = httpProto
		}
	}
	if _, ok := h["X-Request-Id"]; !ok {
		h["X-Request-Id"] = []string{newRequestID()}
	}
	// X-Forwarded-Client-Cert tells the application who called, as the
	// sidecar's forward_client_cert_details does; a client-supplied value
	// is replaced (SANITIZE_SET) so it cannot be forged.
	if cv.xfcc != nil {
		h["X-Forwarded-Client-Cert"] = cv.xfcc
	} else {
		delete(h, "X-Forwarded-Client-Cert")
	}
	pv := &v.inPorts[ip.idx]
	p.forward(w, r, d, rs, ip.app, ip.appS, useH2(pv.h2, pv.h2set, r))
	p.emitHTTP(rs, cv, d, r)
}

// forward sends the request to a cluster and the response (or a local
// reply) back to the client.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, d *downstream, rs *reqState, c *cluster, s *settings, h2 bool) {
	q := &rs.q
	*q = outReq{method: r.Method, target: rs.path, host: r.Host, header: r.Header, contentLength: r.ContentLength, r: r, w: w}
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		body := r.Body
		if p.lim.MaxBodyBytes > 0 {
			body = http.MaxBytesReader(w, body, p.lim.MaxBodyBytes)
		}
		rs.body.r = body
		q.body = &rs.body
		if h2 {
			q.body = body // counted by roundTripH2's h2Body, not the pooled reqState
		}
		if h2 || r.ContentLength < 0 || r.ContentLength > syncBodyMax {
			// The body streams while the response is read.
			http.NewResponseController(w).EnableFullDuplex() // HTTP/2 is always full duplex
		}
	} else {
		q.contentLength = 0
	}
	res := &rs.res
	if h2 {
		c.roundTripH2(r.Context(), s, q, res)
	} else {
		c.roundTrip(r.Context(), s, q, res)
	}
	if res.upstreamHost != "" {
		rs.upstream = res.upstreamHost
	}
	if res.resp == nil {
		c.done(res, false)
		rs.code, rs.flags, rs.details = res.status, res.flags, res.details
		if res.status == 0 {
			// The client is gone: nothing to answer, and nothing may be
			// (a handler that writes nothing sends a 200).
			p.emitHTTP(rs, d.cv.Load(), d, r)
			panic(http.ErrAbortHandler)
		}
		rs.respBytes = localReply(w, res.status, res.body, res.closeConn)
		return
	}
	if res.resp.StatusCode == http.StatusSwitchingProtocols {
		p.tunnel(w, rs, c)
		if res.bodyWriter != nil { // a 101 to a request with a body: refused in tunnel
			q.abortBody()
			<-res.bodyWriter
		}
		return
	}
	rs.code, rs.details = res.resp.StatusCode, "via_upstream"
	if rs.flags == "" {
		rs.flags = res.flags
	}
	n, eof, upstreamFailed := copyResponse(w, res.resp)
	rs.respBytes = n
	if isGRPC(r) {
		rs.grpcStatus = res.resp.Trailer.Get("Grpc-Status")
		if rs.grpcStatus == "" {
			rs.grpcStatus = res.resp.Header.Get("Grpc-Status")
		}
	}
	if res.h2 {
		// The response is over: the client's body is no longer wanted,
		// and closing the response waits for the transport's writer.
		if res.h2Body != nil {
			res.h2Body.stop(q.abortBody)
			rs.body.n = res.h2Body.n.Load()
		}
		res.resp.Body.Close()
	}
	c.done(res, eof)
	if res.bodyWriter != nil {
		q.abortBody()
		<-res.bodyWriter
	}
	if upstreamFailed {
		// The upstream broke off mid-body: reset the client's stream so
		// it does not take a truncated body for a whole one.
		rs.flags, rs.details = "UC", "upstream_reset_after_response_started{connection_termination}"
		p.emitHTTP(rs, d.cv.Load(), d, r)
		panic(http.ErrAbortHandler)
	}
}
