package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/palisade-security/palisade/internal/telemetry"
)

// Proxy is a running sidecar: its listeners, upstream clusters and
// telemetry.
type Proxy struct {
	cfg Config
	lim Limits

	metrics *telemetry.Metrics
	access  *telemetry.AccessLog
	flows   *telemetry.FlowLog
	audit   *telemetry.AuditLog

	inbound   []*inPort
	outbound  []*outListener
	metricsLn net.Listener

	// tlsHTTP and tlsTCP terminate inbound mTLS: the SVID is fetched at
	// every handshake, client certificates are required and verified
	// against the trust bundle (any SPIFFE ID; authorization decides).
	tlsHTTP, tlsTCP *tls.Config

	cur     atomic.Pointer[view]
	buildMu sync.Mutex

	closing  atomic.Bool
	wg       sync.WaitGroup
	connsMu  sync.Mutex
	tcpConns map[net.Conn]struct{}
	sessions map[*h1Session]struct{}
}

// inPort is an inbound listener.
type inPort struct {
	idx     int
	cfg     InboundPort
	ln      net.Listener
	app     *cluster
	appS    *settings
	cluster string // Envoy's inbound cluster name, inbound|<port>||
	// h2 serves the port's HTTP/2 connections (ALPN h2); HTTP/1.x
	// connections are served by serveHTTP1.
	h2  *http.Server
	h2q *connQueue
}

// outListener is an outbound listener.
type outListener struct {
	idx     int
	cfg     OutboundListener
	target  target
	ln      net.Listener
	cluster *cluster
	// h2c serves the listener's cleartext HTTP/2 (prior knowledge)
	// connections, gRPC's; HTTP/1.x connections are served by serveHTTP1.
	h2c  *http.Server
	h2cq *connQueue
	// lastIP is the address an fqdn last resolved to, for the egress
	// check of requests on pooled connections.
	lastIP atomic.Pointer[netip.Addr]
}

// New checks cfg and binds its listeners; Run serves them (or Close
// releases them).
func New(cfg Config) (*Proxy, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := &Proxy{
		cfg:      cfg,
		lim:      cfg.Limits.withDefaults(),
		metrics:  telemetry.NewMetrics(cfg.Version),
		access:   telemetry.NewAccessLog(cfg.AccessLog),
		flows:    telemetry.NewFlowLog(cfg.FlowLog),
		audit:    cfg.AuditLog,
		tcpConns: map[net.Conn]struct{}{},
		sessions: map[*h1Session]struct{}{},
	}
	p.metrics.WatchSVID(cfg.SVIDs)
	p.tlsHTTP = tlsconfig.MTLSServerConfig(cfg.SVIDs, cfg.Bundles, tlsconfig.AuthorizeAny())
	// Resumed sessions skip the client certificate check against the
	// current bundle; every connection does a full handshake instead.
	p.tlsHTTP.SessionTicketsDisabled = true
	p.tlsTCP = p.tlsHTTP.Clone()
	p.tlsHTTP.NextProtos = []string{"h2", "http/1.1"}

	ok := false
	defer func() {
		if !ok {
			p.closeListeners()
		}
	}()
	appDialer := &net.Dialer{}
	for i, in := range cfg.Inbound {
		ln := in.Listener
		if ln == nil {
			var err error
			if ln, err = net.Listen("tcp", in.Listen); err != nil {
				return nil, fmt.Errorf("proxy: inbound port %d: %w", in.Port, err)
			}
		}
		ip := &inPort{idx: i, cfg: in, ln: ln, cluster: "inbound|" + strconv.Itoa(int(in.Port)) + "||"}
		ip.appS = defaultSettings()
		// Istio's inbound routes carry no retry policy.
		ip.appS.retryAttempts = 0
		ip.appS.connectTimeout = p.lim.AppConnectTimeout
		ip.app = newCluster(ip.cluster, []string{in.App}, func(ctx context.Context, ep *endpoint, s *settings) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, s.connectTimeout)
			defer cancel()
			c, err := appDialer.DialContext(ctx, "tcp", ep.addr)
			if err != nil {
				return nil, err
			}
			return p.upstreamConn(c), nil
		})
		ip.h2q = newConnQueue(ln.Addr())
		ip.h2 = p.h2Server(p.serveInbound)
		p.inbound = append(p.inbound, ip)
	}
	for i, out := range cfg.Outbound {
		ln, err := net.Listen("tcp", out.Listen)
		if err != nil {
			return nil, fmt.Errorf("proxy: outbound listener %s: %w", out.To, err)
		}
		t, _ := parseTarget(out.To)
		ol := &outListener{idx: i, cfg: out, target: t, ln: ln}
		ol.cluster = newCluster(out.To, nil, p.dialer(ol))
		ol.h2cq = newConnQueue(ln.Addr())
		ol.h2c = p.h2Server(p.serveOutbound)
		p.outbound = append(p.outbound, ol)
	}
	if cfg.MetricsAddr != "" {
		ln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return nil, fmt.Errorf("proxy: metrics: %w", err)
		}
		p.metricsLn = ln
	}
	ok = true
	return p, nil
}

// Close releases the listeners of a proxy that will not run; Run closes
// them itself when its context ends.
func (p *Proxy) Close() error {
	p.closing.Store(true)
	p.closeListeners()
	return nil
}

// InboundAddr is the address inbound listener i listens on.
func (p *Proxy) InboundAddr(i int) net.Addr { return p.inbound[i].ln.Addr() }

// OutboundAddr is the address outbound listener i listens on.
func (p *Proxy) OutboundAddr(i int) net.Addr { return p.outbound[i].ln.Addr() }

// MetricsAddr is the address metrics are served on, or nil.
func (p *Proxy) MetricsAddr() net.Addr {
	if p.metricsLn == nil {
		return nil
	}
	return p.metricsLn.Addr()
}

// Metrics is the proxy's metrics registry.
func (p *Proxy) Metrics() *telemetry.Metrics { return p.metrics }

// h2Server is the HTTP/2 server of an inbound port or outbound listener. Its timeouts and
// limits are the hardening of Limits; connections reach it through a
// connQueue after protocol detection and the TLS handshake.
func (p *Proxy) h2Server(h handlerFunc) *http.Server {
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d, _ := r.Context().Value(downstreamKey{}).(*downstream)
			h(w, r, d)
		}),
		ReadHeaderTimeout: p.lim.ReadHeaderTimeout,
		IdleTimeout:       p.lim.IdleTimeout,
		// net/http reads up to MaxHeaderBytes + 4096 bytes of request
		// line and headers; the limit is set so the total is Envoy's.
		MaxHeaderBytes: max(p.lim.MaxHeaderBytes-4096, 1024),
		ConnContext:    connContext,
		HTTP2:          &http.HTTP2Config{MaxConcurrentStreams: int(p.lim.MaxConcurrentStreams)},
		// HTTP/2 only, over TLS (ALPN h2) or in cleartext with prior
		// knowledge: HTTP/1.x connections never reach this server.
		Protocols: new(http.Protocols),
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	srv.Protocols.SetHTTP2(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	return srv
}

type downstreamKey struct{}

// connContext attaches the connection's metadata to its requests.
func connContext(ctx context.Context, c net.Conn) context.Context {
	switch c := c.(type) {
	case *tls.Conn:
		if d, ok := c.NetConn().(*downstream); ok {
			return context.WithValue(ctx, downstreamKey{}, d)
		}
	case *downstream: // h2c on an outbound listener
		return context.WithValue(ctx, downstreamKey{}, c)
	}
	return ctx
}

// view returns the view of the current engine, building it on the first
// request after a swap. Nil when there is no engine: traffic is refused.
func (p *Proxy) view() *view {
	e := p.cfg.Policy()
	if e == nil {
		return nil
	}
	if v := p.cur.Load(); v != nil && v.e == e {
		return v
	}
	p.buildMu.Lock()
	defer p.buildMu.Unlock()
	if v := p.cur.Load(); v != nil && v.e == e {
		return v
	}
	prev := p.cur.Load()
	v := p.buildView(e)
	for i, d := range v.dests {
		ol := p.outbound[i]
		if prev != nil && d.s.sameAs(prev.dests[i].s) {
			d.s = prev.dests[i].s // keep the pooled connections
		} else if prev != nil {
			ol.cluster.dropH2(prev.dests[i].s)
		}
		if d.err != nil {
			continue
		}
		addrs, err := endpointsFor(ol, d.workload)
		if err != nil {
			d.err = err
			continue
		}
		ol.cluster.mu.Lock()
		same := sameAddrs(ol.cluster.eps, addrs)
		ol.cluster.mu.Unlock()
		if !same {
			ol.cluster.setEndpoints(addrs)
		}
	}
	p.cur.Store(v)
	return v
}

// Run serves until ctx ends, then drains: listeners close, HTTP servers
// finish the requests in flight (within Limits.DrainTimeout), TCP
// connections are closed.
func (p *Proxy) Run(ctx context.Context) error {
	errc := make(chan error, 2*(len(p.inbound)+len(p.outbound))+1)
	serve := func(f func() error) {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if err := f(); err != nil && !errors.Is(err, http.ErrServerClosed) && !p.closing.Load() {
				errc <- err
			}
		}()
	}
	for _, ip := range p.inbound {
		ip := ip
		serve(func() error { return p.accept(ip.ln, func(c net.Conn) { p.handleInbound(ctx, ip, c) }) })
		serve(func() error { return ip.h2.Serve(ip.h2q) })
	}
	for _, ol := range p.outbound {
		ol := ol
		serve(func() error { return p.accept(ol.ln, func(c net.Conn) { p.handleOutbound(ctx, ol, c) }) })
		serve(func() error { return ol.h2c.Serve(ol.h2cq) })
	}
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go p.watchClients(stopWatch)
	var metricsSrv *http.Server
	if p.metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", p.metrics.Handler())
		mux.Handle("/stats/prometheus", p.metrics.Handler())
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
		serve(func() error { return metricsSrv.Serve(p.metricsLn) })
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	p.shutdown(metricsSrv)
	return err
}

func (p *Proxy) shutdown(metricsSrv *http.Server) {
	p.closing.Store(true)
	p.closeListeners()
	ctx, cancel := context.WithTimeout(context.Background(), p.lim.DrainTimeout)
	defer cancel()
	var wg sync.WaitGroup
	srvs := []*http.Server{metricsSrv}
	for _, ip := range p.inbound {
		srvs = append(srvs, ip.h2)
	}
	for _, ol := range p.outbound {
		srvs = append(srvs, ol.h2c)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		deadline, _ := ctx.Deadline()
		p.drainSessions(deadline)
	}()
	for _, s := range srvs {
		if s == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.Shutdown(ctx) != nil {
				s.Close()
			}
		}()
	}
	wg.Wait()
	// Whatever is left: connections in their handshake, TCP proxying,
	// HTTP/1 connections past the drain, and the upstream connections
	// their requests still wait on.
	p.connsMu.Lock()
	conns := make([]net.Conn, 0, len(p.tcpConns))
	for c := range p.tcpConns {
		conns = append(conns, c)
	}
	p.connsMu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	p.wg.Wait()
}

func (p *Proxy) closeListeners() {
	for _, ip := range p.inbound {
		ip.ln.Close()
		ip.h2q.Close()
	}
	for _, ol := range p.outbound {
		ol.ln.Close()
		ol.h2cq.Close()
	}
	if p.metricsLn != nil {
		p.metricsLn.Close()
	}
}

// accept runs a listener's accept loop, backing off on temporary errors
// (out of file descriptors) as net/http does.
func (p *Proxy) accept(ln net.Listener, handle func(net.Conn)) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if p.closing.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		delay = 0
		c = newSysConn(c)
		p.wg.Add(1)
		// Tracked until the handler returns: through protocol detection
		// and the handshake, and for the life of a proxied TCP
		// connection; an HTTP connection is the HTTP server's once
		// handed over.
		p.track(c, true)
		go func() {
			defer p.wg.Done()
			defer p.track(c, false)
			handle(c)
		}()
	}
}

// upstreamConn prepares a connection the proxy opened to an upstream: raw
// system calls, and tracked until closed, so that shutdown can end the
// exchanges still waiting on it.
func (p *Proxy) upstreamConn(c net.Conn) net.Conn {
	c = newSysConn(c)
	if sc, ok := c.(*sysConn); ok {
		p.track(c, true)
		sc.onClose = func() { p.track(c, false) }
	}
	return c
}

// track registers a connection being handled so shutdown can close it.
func (p *Proxy) track(c net.Conn, on bool) {
	p.connsMu.Lock()
	if on {
		p.tcpConns[c] = struct{}{}
	} else {
		delete(p.tcpConns, c)
	}
	p.connsMu.Unlock()
}

// connQueue is the net.Listener an http.Server serves: connections are
// pushed into it once protocol detection and the TLS handshake are done,
// so the accept loop is never held up by a slow handshake.
type connQueue struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{ch: make(chan net.Conn), done: make(chan struct{}), addr: addr}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) push(c net.Conn) {
	select {
	case q.ch <- c:
	case <-q.done:
		c.Close()
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }
