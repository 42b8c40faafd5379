package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/palisade-security/palisade/internal/engine"
	"github.com/palisade-security/palisade/internal/telemetry"
)

// tcpEvent is what is reported about one proxied TCP connection.
type tcpEvent struct {
	d                 *downstream
	cv                *connView
	dec               engine.Decision
	flags, details    string
	upstream, cluster string
	received, sent    int64
	failure           string
	ingress           bool
	port              uint16
	destinationPrinc  string
}

// inboundTCP decides an inbound connection on an opaque TCP port with the
// engine's layer-4 authorization, then splices it to the application.
// A denied connection is reset, as Envoy's network RBAC filter closes it.
func (p *Proxy) inboundTCP(ctx context.Context, d *downstream, conn net.Conn, v *view) {
	ip := d.in
	cv := p.inboundView(d, v)
	ev := &tcpEvent{d: d, cv: cv, ingress: true, cluster: ip.cluster, upstream: ip.cfg.App, port: ip.cfg.Port}
	ev.dec = v.in.Connection(&cv.conn)
	if !ev.dec.Allowed {
		id := ev.dec.Rule
		if id == "" {
			id = "none"
		}
		ev.details = "rbac_access_denied_matched_policy[" + id + "]"
		p.emitTCP(ev)
		reset(conn)
		return
	}
	dctx, cancel := context.WithTimeout(ctx, ip.appS.connectTimeout)
	var nd net.Dialer
	up, err := nd.DialContext(dctx, "tcp", ip.cfg.App)
	cancel()
	if err != nil {
		ev.flags, ev.details, ev.failure = "UF", "upstream_connect_failed", err.Error()
		p.emitTCP(ev)
		reset(conn)
		return
	}
	up = p.upstreamConn(up)
	series := p.metrics.TCP(cv.labels)
	series.Opened.Inc()
	ev.received, ev.sent = pipe(conn, up, series)
	series.Closed.Inc()
	p.emitTCP(ev)
}

// outboundTCP proxies an application's connection to its destination
// after the egress network policy allows it: a denied connection, an
// overflow of maxConnections or a failed connect resets it.
func (p *Proxy) outboundTCP(ctx context.Context, d *downstream, v *view) {
	ol := d.out
	cv := p.outboundView(d, v)
	dest := cv.dest
	ev := &tcpEvent{d: d, cv: cv, cluster: dest.cluster, port: dest.port}
	if dest.err != nil {
		ev.dec = engine.Decision{Allowed: true, Layer: engine.LayerNetworkEgress}
		ev.flags, ev.details, ev.failure = "NC", "cluster_not_found", dest.err.Error()
		p.emitTCP(ev)
		reset(d)
		return
	}
	ev.dec = p.egress(v, ol, dest)
	if !ev.dec.Allowed {
		ev.details = "network_policy_denied"
		p.emitTCP(ev)
		reset(d)
		return
	}
	c, s := ol.cluster, dest.s
	if c.acquire(s) != nil {
		ev.flags, ev.details = "UO", "overflow"
		p.emitTCP(ev)
		reset(d)
		return
	}
	defer c.released()
	ep, err := c.pick(s, nil, time.Now())
	if err != nil {
		ev.flags, ev.details = "UH", "no_healthy_upstream"
		p.emitTCP(ev)
		reset(d)
		return
	}
	ev.upstream = ep.addr
	// Envoy's TCP proxy makes one connect attempt (max_connect_attempts
	// defaults to 1); the failure still feeds outlier detection.
	up, err := c.dial(ctx, ep, s)
	if err != nil {
		if errors.Is(err, errEgressDenied) {
			ev.dec = engine.Decision{Layer: engine.LayerNetworkEgress, Reason: err.Error()}
			ev.details = "network_policy_denied"
		} else {
			c.report(ep, s, 0, true, time.Now())
			ev.flags, ev.details, ev.failure = "UF", "upstream_connect_failed", err.Error()
		}
		p.emitTCP(ev)
		reset(d)
		return
	}
	c.report(ep, s, 200, false, time.Now())
	if s.mutual {
		ev.destinationPrinc = s.expectedID
	}
	series := p.metrics.TCP(cv.labels)
	series.Opened.Inc()
	ev.received, ev.sent = pipe(d, up, series)
	series.Closed.Inc()
	p.emitTCP(ev)
}

// pipe copies both ways until both sides are done, passing half-closes
// through (a client's FIN becomes the upstream's, and back), and counts
// the bytes as istio_tcp_received_bytes_total (client to server) and
// istio_tcp_sent_bytes_total (server to client).
func pipe(client, server net.Conn, s *telemetry.TCPSeries) (received, sent int64) {
	var recvC, sentC prometheus.Counter
	if s != nil {
		recvC, sentC = s.Received, s.Sent
	}
	done := make(chan int64, 1)
	go func() {
		n, err := copyCounted(server, client, recvC)
		if err != nil {
			client.Close()
			server.Close()
		} else {
			closeWrite(server)
		}
		done <- n
	}()
	sent, err := copyCounted(client, server, sentC)
	if err != nil {
		client.Close()
		server.Close()
	} else {
		closeWrite(client)
	}
	received = <-done
	client.Close()
	server.Close()
	return received, sent
}

func copyCounted(dst io.Writer, src io.Reader, c prometheus.Counter) (int64, error) {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	var total int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
			if c != nil {
				c.Add(float64(n))
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// closeWrite sends the end of the stream: close_notify and a FIN on TLS,
// a FIN on TCP.
func closeWrite(c net.Conn) {
	for {
		switch x := c.(type) {
		case *tls.Conn:
			x.CloseWrite()
			c = x.NetConn()
		case *downstream:
			c = x.Conn
		case *prefixConn:
			c = x.Conn
		case interface{ CloseWrite() error }:
			x.CloseWrite()
			return
		default:
			return
		}
	}
}

// emitTCP reports one TCP connection: the Hubble verdict, and the flow,
// access and audit logs. The connection counters are counted by the
// caller as the connection opens and closes.
func (p *Proxy) emitTCP(ev *tcpEvent) {
	d, cv := ev.d, ev.cv
	verdict, drop := verdictOf(&ev.dec)
	dir, match := telemetry.Egress, telemetry.MatchNone
	if ev.ingress {
		dir = telemetry.Ingress
	}
	if ev.dec.Policy != "" {
		match = telemetry.MatchL3L4
	}
	p.metrics.RecordVerdict(verdict, dir, match)
	if p.flows != nil {
		dstIP, dstPort := d.local.Addr(), ev.port
		if !ev.ingress {
			dstIP, dstPort = upstreamAddr(ev.upstream, cv.dest)
		}
		p.flows.Log(&telemetry.Flow{
			Time: d.start, Verdict: verdict, DropReason: drop, Ingress: ev.ingress,
			SourceIP: d.remote.Addr(), SourcePort: d.remote.Port(), DestinationIP: dstIP, DestinationPort: dstPort,
			Source: cv.src, Destination: cv.dst, Policy: cv.v.policyRef(&ev.dec),
			Layer: ev.dec.Layer, Rule: ev.dec.Rule, Reason: ev.dec.Reason, Audit: ev.dec.Audit, DryRun: ev.dec.DryRun,
			NodeName: p.cfg.NodeName,
		})
	}
	if p.access != nil {
		p.access.Log(&telemetry.AccessEntry{
			StartTime: d.start, Protocol: "TCP", ResponseFlags: ev.flags, TerminationDetails: ev.details,
			BytesReceived: ev.received, BytesSent: ev.sent, Duration: time.Since(d.start),
			UpstreamHost: ev.upstream, UpstreamCluster: ev.cluster,
			DownstreamLocalAddress: d.local.String(), DownstreamRemoteAddress: d.remote.String(),
			RequestedServerName: d.sni, UpstreamTransportFailure: ev.failure,
			Reporter: cv.labels.Reporter, DownstreamPeerPrincipal: d.peer, UpstreamPeerPrincipal: ev.destinationPrinc,
			PolicyAllowed: ev.dec.Allowed, PolicyLayer: ev.dec.Layer, Policy: ev.dec.Policy, Rule: ev.dec.Rule,
			PolicyReason: ev.dec.Reason, AuditRule: ev.dec.Audit, DryRun: ev.dec.DryRun,
		})
	}
	if p.audit != nil && (ev.dec.Audit != "" || len(ev.dec.DryRun) > 0) {
		a := &telemetry.AuditEntry{
			Time: d.start, SourcePrincipal: cv.conn.Peer, SourceIP: d.remote.Addr().String(),
			Destination: cv.v.self.Key(), Port: ev.port, Allowed: ev.dec.Allowed, Layer: ev.dec.Layer,
			Policy: ev.dec.Policy, Rule: ev.dec.Rule, AuditRule: ev.dec.Audit, DryRun: ev.dec.DryRun, Direction: "inbound",
		}
		if !ev.ingress {
			a.Direction, a.SourcePrincipal = "outbound", cv.v.selfID
			a.Destination = cv.labels.Destination.Namespace + "/" + cv.labels.Destination.Workload
		}
		p.audit.Log(a)
	}
}
