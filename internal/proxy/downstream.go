package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"sort"
	"sync/atomic"
	"time"

	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/engine"
	"github.com/palisade-security/palisade/internal/telemetry"
)

// downstream is an accepted client connection with what the proxy learnt
// about it. Reads return the bytes protocol detection peeked first.
type downstream struct {
	net.Conn
	peeked []byte

	in  *inPort      // nil on an outbound listener
	out *outListener // nil on an inbound port

	tls      bool
	peer     string // the verified client SPIFFE ID; "" for plaintext
	peerCert []byte // its certificate, DER, for X-Forwarded-Client-Cert
	sni      string
	alpn     string
	remote   netip.AddrPort
	local    netip.AddrPort
	start    time.Time
	framing  *framing // HTTP/1 connections only
	// clAndTE: the request being served had both Content-Length and
	// Transfer-Encoding (HTTP/1 only, see framing).
	clAndTE bool

	cv atomic.Pointer[connView]
}

func newDownstream(c net.Conn) *downstream {
	d := &downstream{Conn: c, start: time.Now()}
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		d.remote = a.AddrPort()
	}
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		d.local = a.AddrPort()
	}
	return d
}

func (d *downstream) Read(b []byte) (int, error) {
	if len(d.peeked) > 0 {
		n := copy(b, d.peeked)
		d.peeked = d.peeked[n:]
		return n, nil
	}
	return d.Conn.Read(b)
}

var errNoBytes = errors.New("no bytes before the detection timeout")

// detectTLS peeks at the first bytes, as Envoy's tls_inspector listener
// filter does under PERMISSIVE: a TLS handshake record starts with 0x16
// (handshake) and 0x03 (the major version of every TLS version). A
// client that sends nothing before the timeout gets errNoBytes: it may
// speak a server-first protocol (MySQL), which Istio's inbound listener
// serves as plaintext after the timeout.
func detectTLS(d *downstream, timeout time.Duration) (bool, error) {
	b, err := peek(d, 2, timeout)
	switch len(b) {
	case 0:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return false, errNoBytes
		}
		return false, err
	case 1:
		return b[0] == 0x16, nil
	}
	return b[0] == 0x16 && b[1] == 0x03, nil
}

// peek reads until the connection's first n bytes are in d.peeked (where
// reads find them again), within timeout. With fewer, it returns the read
// error.
func peek(d *downstream, n int, timeout time.Duration) ([]byte, error) {
	if len(d.peeked) >= n {
		return d.peeked, nil
	}
	buf := append(make([]byte, 0, n), d.peeked...)
	var err error
	d.Conn.SetReadDeadline(time.Now().Add(timeout))
	for len(buf) < n && err == nil {
		var m int
		m, err = d.Conn.Read(buf[len(buf):n])
		buf = buf[:len(buf)+m]
	}
	d.Conn.SetReadDeadline(time.Time{})
	d.peeked = buf
	if len(buf) < n {
		return buf, err
	}
	return buf, nil
}

// detectH2C tells cleartext HTTP/2 (the connection preface "PRI *
// HTTP/2.0", sent first with prior knowledge, as gRPC does) from
// HTTP/1.x, whose methods never read "PRI", on the first three bytes
// (after any detectTLS peeked), which reads return again.
func detectH2C(d *downstream, timeout time.Duration) (bool, error) {
	b, err := peek(d, len("PRI"), timeout)
	if err != nil {
		return false, err
	}
	return string(b[:3]) == "PRI", nil
}

// reset closes a connection with a TCP RST instead of a FIN (SO_LINGER
// 0), as Envoy does when it refuses one: the client sees "connection
// reset by peer" at once instead of a clean end of stream.
func reset(c net.Conn) {
	for {
		switch x := c.(type) {
		case *net.TCPConn:
			x.SetLinger(0)
			x.Close()
			return
		case *sysConn:
			x.SetLinger(0)
			x.Close() // through sysConn: its close hook runs
			return
		case *downstream:
			c = x.Conn
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			c.Close()
			return
		}
	}
}

// connView is what the proxy derives for one connection under one view:
// the engine's view of the connection, and the metric labels and flow
// endpoints that do not change from request to request.
type connView struct {
	v      *view
	conn   engine.Conn
	source *config.Workload
	labels telemetry.Labels
	src    telemetry.Endpoint
	dst    telemetry.Endpoint
	xfcc   []string     // the X-Forwarded-Client-Cert value, shared by the connection's requests
	dest   *destination // outbound only
}

// inboundView builds (once per connection and view) the connection's
// inbound state.
func (p *Proxy) inboundView(d *downstream, v *view) *connView {
	if cv := d.cv.Load(); cv != nil && cv.v == v {
		return cv
	}
	pv := &v.inPorts[d.in.idx]
	cv := &connView{v: v}
	src := v.sourceOf(d.peer, d.remote.Addr().Unmap().String())
	cv.source = src
	cv.conn = engine.Conn{Port: d.in.cfg.Port, Peer: d.peer, SourceIP: d.remote.Addr().Unmap(),
		DestIP: d.local.Addr().Unmap(), SNI: d.sni, Source: src}
	l := &cv.labels
	l.Reporter = telemetry.ReporterDestination
	if src != nil {
		l.Source = peerOf(src, d.peer)
	} else {
		l.Source = telemetry.Peer{Principal: d.peer, Namespace: namespaceOfID(d.peer)}
	}
	l.Destination = v.selfPeer
	l.Destination.Principal = ""
	l.ConnectionSecurityPolicy = telemetry.None
	if d.tls {
		// Istio's server side: the local SAN, and mutual_tls when both
		// the peer's and the local SAN are known.
		l.Destination.Principal = v.selfID
		if d.peer != "" {
			l.ConnectionSecurityPolicy = telemetry.MutualTLS
		}
		sum := sha256.Sum256(d.peerCert)
		cv.xfcc = []string{"By=" + v.selfID + ";Hash=" + hex.EncodeToString(sum[:]) + `;Subject="";URI=` + d.peer}
	}
	l.DestinationService, l.DestinationServiceName, l.DestinationServiceNamespace = pv.svcHost, pv.svcName, pv.svcNS
	l.RequestProtocol = "http"
	if pv.tcp {
		l.RequestProtocol = "tcp"
	}
	if p.flows != nil {
		cv.src = flowEndpoint(src, l.Source.Namespace, d.peer)
		cv.dst = flowEndpoint(v.self, v.self.Namespace, l.Destination.Principal)
	}
	d.cv.Store(cv)
	return cv
}

// outboundView builds (once per connection and view) the connection's
// outbound state.
func (p *Proxy) outboundView(d *downstream, v *view) *connView {
	if cv := d.cv.Load(); cv != nil && cv.v == v {
		return cv
	}
	dest := v.dests[d.out.idx]
	cv := &connView{v: v, dest: dest}
	l := &cv.labels
	l.Reporter = telemetry.ReporterSource
	l.Source = v.selfPeer
	l.Source.Principal = ""
	if dest.s != nil && dest.s.mutual {
		// Istio's client side: the local SAN of the upstream TLS
		// connection.
		l.Source.Principal = v.selfID
	}
	l.Destination = dest.peer
	l.DestinationService, l.DestinationServiceName, l.DestinationServiceNamespace = dest.host, dest.svcName, dest.svcNS
	// Istio never computes connection_security_policy on the client
	// side: it is always "unknown" there (istio_stats.cc).
	l.ConnectionSecurityPolicy = telemetry.Unknown
	l.RequestProtocol = "http"
	if dest.tcp {
		l.RequestProtocol = "tcp"
	}
	if p.flows != nil {
		cv.src = flowEndpoint(v.self, v.self.Namespace, l.Source.Principal)
		cv.dst = flowEndpoint(dest.workload, l.Destination.Namespace, l.Destination.Principal)
	}
	d.cv.Store(cv)
	return cv
}

// flowEndpoint describes a workload as Hubble's flow endpoint does.
func flowEndpoint(w *config.Workload, ns, principal string) telemetry.Endpoint {
	e := telemetry.Endpoint{Namespace: ns, Principal: principal}
	if w == nil {
		return e
	}
	e.Workload, e.Kind = w.Name, w.Kind
	for k, v := range w.Labels {
		e.Labels = append(e.Labels, "k8s:"+k+"="+v)
	}
	sort.Strings(e.Labels)
	return e
}
