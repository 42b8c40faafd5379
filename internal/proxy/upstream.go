package proxy

import (
	"bufio"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// cluster is one upstream — an outbound destination, or the application
// behind an inbound port — as Envoy models it: endpoints, each with an
// HTTP/1.1 connection pool and an outlier detection state machine, behind
// the cluster-wide circuit breakers of the DestinationRule's
// connectionPool (maxConnections, http1MaxPendingRequests,
// http2MaxRequests, maxRetries).
type cluster struct {
	name string
	// dial opens a connection to an endpoint: TCP with the connect
	// timeout, then TLS when s says so.
	dial func(ctx context.Context, ep *endpoint, s *settings) (net.Conn, error)

	active  atomic.Int64 // requests in flight (http2MaxRequests)
	retries atomic.Int64 // retries in flight (maxRetries)

	mu        sync.Mutex
	eps       []*endpoint
	rr        int
	conns     int       // open connections, all endpoints (maxConnections)
	waiters   []*waiter // requests queued for a connection (http1MaxPendingRequests)
	lastSweep time.Time
	h2        map[*settings]*http2.Transport // HTTP/2 transports by settings (h2client.go)
}

// endpoint is one upstream host. Its fields are guarded by cluster.mu.
type endpoint struct {
	addr string
	idle []*pconn

	// Outlier detection (Envoy outlier_detection_impl.cc): consecutive
	// error counters, and the ejection state with the number of times the
	// host was ejected, which multiplies baseEjectionTime.
	consec5xx, consecGateway int
	ejected                  bool
	ejectedAt                time.Time
	ejections                int
}

// pconn is a pooled HTTP/1.1 connection.
type pconn struct {
	c         net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	ep        *endpoint
	s         *settings // the settings it was opened under
	requests  int
	idleSince time.Time
	reused    bool
	// writeErr receives the result of a request body written
	// concurrently with the response; nil when the body was written
	// before the response was read.
	writeErr chan error
}

// waiter is a request queued for a connection: it receives an idle
// connection, or nil as the right to open one.
type waiter struct{ ch chan *pconn }

var (
	errOverflow  = errors.New("upstream overflow")
	errNoHealthy = errors.New("no healthy upstream")
)

// maxIdlePerEndpoint bounds the idle connections kept for one host.
const maxIdlePerEndpoint = 256

// probeAfter is how long a connection may sit idle before it is checked
// for a close by the server before reuse: servers close idle keep-alive
// connections, and a request written into one fails. Envoy notices such
// closes from its event loop; a pool without a reader goroutine per
// connection checks instead, and skips the check for connections that
// were just used.
const probeAfter = time.Second

func newCluster(name string, addrs []string, dial func(context.Context, *endpoint, *settings) (net.Conn, error)) *cluster {
	c := &cluster{name: name, dial: dial}
	c.setEndpoints(addrs)
	return c
}

// setEndpoints replaces the endpoint list, keeping the state of the
// endpoints that remain.
func (c *cluster) setEndpoints(addrs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := map[string]*endpoint{}
	for _, ep := range c.eps {
		old[ep.addr] = ep
	}
	eps := make([]*endpoint, 0, len(addrs))
	for _, a := range addrs {
		if ep := old[a]; ep != nil {
			eps = append(eps, ep)
			delete(old, a)
		} else {
			eps = append(eps, &endpoint{addr: a})
		}
	}
	for _, ep := range old {
		for _, pc := range ep.idle {
			c.closeLocked(pc)
		}
		ep.idle = nil
	}
	c.eps = eps
}

func sameAddrs(eps []*endpoint, addrs []string) bool {
	if len(eps) != len(addrs) {
		return false
	}
	for i, ep := range eps {
		if ep.addr != addrs[i] {
			return false
		}
	}
	return true
}

// pick chooses an endpoint round robin among the healthy ones, avoiding
// the one a retry just failed on when another is healthy (Istio's retry
// policy sets the previous_hosts predicate). With every endpoint ejected
// it fails unless minHealthPercent puts the cluster in panic mode:
// Istio maps minHealthPercent to Envoy's healthy_panic_threshold, 0 by
// default, so by default nothing is sent (503 UH).
func (c *cluster) pick(s *settings, avoid *endpoint, now time.Time) (*endpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked(s, now)
	n := len(c.eps)
	if n == 0 {
		return nil, errNoHealthy
	}
	healthy := 0
	for _, ep := range c.eps {
		if !ep.ejected {
			healthy++
		}
	}
	panicMode := s.outlier.minHealthPercent > 0 && healthy*100 < s.outlier.minHealthPercent*n
	var fallback *endpoint
	for i := 0; i < n; i++ {
		ep := c.eps[(c.rr+i)%n]
		if ep.ejected && !panicMode {
			continue
		}
		if ep == avoid && n > 1 {
			if fallback == nil {
				fallback = ep
			}
			continue
		}
		c.rr = (c.rr + i + 1) % n
		return ep, nil
	}
	if fallback != nil {
		return fallback, nil
	}
	return nil, errNoHealthy
}

// report feeds a result to outlier detection. local is a failure of the
// connection itself (connect failure, timeout, reset): without
// splitExternalLocalOriginErrors Envoy counts those as gateway errors
// (503), so they advance both counters.
func (c *cluster) report(ep *endpoint, s *settings, status int, local bool, now time.Time) {
	o := &s.outlier
	if !o.enabled {
		return
	}
	var isErr, gateway bool
	switch {
	case local:
		isErr, gateway = true, true
	case s.errorCodes != nil:
		isErr = s.errorCodes[status]
		gateway = isErr && status >= 502 && status <= 504
	default:
		isErr = status >= 500
		gateway = status >= 502 && status <= 504
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !isErr {
		ep.consec5xx, ep.consecGateway = 0, 0
		return
	}
	ep.consec5xx++
	if gateway {
		ep.consecGateway++
	} else {
		ep.consecGateway = 0
	}
	if (o.consecutive5xx > 0 && ep.consec5xx >= o.consecutive5xx) ||
		(o.consecutiveGateway > 0 && ep.consecGateway >= o.consecutiveGateway) {
		ep.consec5xx, ep.consecGateway = 0, 0
		c.ejectLocked(ep, s, now)
	}
}

// ejectLocked ejects ep at once, as Envoy does when a consecutive-error
// threshold is reached, unless that would take the ejected share past
// maxEjectionPercent (Envoy: 100 × (ejected+1) / hosts must not exceed
// it; with one host and the default 10% nothing is ever ejected).
func (c *cluster) ejectLocked(ep *endpoint, s *settings, now time.Time) {
	if ep.ejected {
		return
	}
	ejected := 0
	for _, e := range c.eps {
		if e.ejected {
			ejected++
		}
	}
	if (ejected+1)*100 > s.outlier.maxEjectionPercent*len(c.eps) {
		return
	}
	ep.ejected, ep.ejectedAt = true, now
	ep.ejections++
	for _, pc := range ep.idle {
		c.closeLocked(pc)
	}
	ep.idle = nil
}

// sweepLocked runs the outlier detection interval timer for each interval
// elapsed since the last: an ejected host returns once baseEjectionTime ×
// its ejection count (capped at max_ejection_time, 300s) has passed; a
// healthy host's ejection count goes down by one each interval. Running
// it when an endpoint is picked, instead of on a timer, decides the same
// for every request and needs no goroutine.
func (c *cluster) sweepLocked(s *settings, now time.Time) {
	o := &s.outlier
	if !o.enabled {
		return
	}
	if c.lastSweep.IsZero() || now.Sub(c.lastSweep) > 1000*o.interval {
		c.lastSweep = now
		return
	}
	for now.Sub(c.lastSweep) >= o.interval {
		c.lastSweep = c.lastSweep.Add(o.interval)
		t := c.lastSweep
		for _, ep := range c.eps {
			switch {
			case ep.ejected:
				d := min(o.baseEjection*time.Duration(ep.ejections), max(o.maxEjection, o.baseEjection))
				if !t.Before(ep.ejectedAt.Add(d)) {
					ep.ejected = false
				}
			case ep.ejections > 0:
				ep.ejections--
			}
		}
	}
}

// get returns a connection to ep: an idle one opened under the same
// settings, a new one within maxConnections, or, past it, one handed over
// after waiting in a queue of at most http1MaxPendingRequests.
func (c *cluster) get(ctx context.Context, ep *endpoint, s *settings) (*pconn, error) {
	now := time.Now()
	c.mu.Lock()
	for len(ep.idle) > 0 {
		pc := ep.idle[len(ep.idle)-1]
		ep.idle = ep.idle[:len(ep.idle)-1]
		if pc.s != s || (s.idleTimeout > 0 && now.Sub(pc.idleSince) > s.idleTimeout) {
			c.closeLocked(pc)
			continue
		}
		if now.Sub(pc.idleSince) > probeAfter {
			c.mu.Unlock()
			alive := pc.alive()
			c.mu.Lock()
			if !alive {
				c.closeLocked(pc)
				continue
			}
		}
		c.mu.Unlock()
		pc.reused = true
		return pc, nil
	}
	if c.conns < s.maxConnections {
		c.conns++
		c.mu.Unlock()
		return c.open(ctx, ep, s)
	}
	if len(c.waiters) >= s.maxPending {
		c.mu.Unlock()
		return nil, errOverflow
	}
	w := &waiter{ch: make(chan *pconn, 1)}
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()
	select {
	case pc := <-w.ch:
		if pc == nil {
			return c.open(ctx, ep, s)
		}
		if pc.s != s {
			// Opened under settings since replaced: keep its slot, not
			// the connection.
			pc.c.Close()
			return c.open(ctx, ep, s)
		}
		pc.reused = true
		return pc, nil
	case <-ctx.Done():
		c.mu.Lock()
		for i, x := range c.waiters {
			if x == w {
				c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
				c.mu.Unlock()
				return nil, ctx.Err()
			}
		}
		c.mu.Unlock()
		// Handed something as the context ended: give it back.
		if pc := <-w.ch; pc != nil {
			c.put(pc)
		} else {
			c.released()
		}
		return nil, ctx.Err()
	}
}

// open dials a connection counted in conns by the caller.
func (c *cluster) open(ctx context.Context, ep *endpoint, s *settings) (*pconn, error) {
	conn, err := c.dial(ctx, ep, s)
	if err != nil {
		c.released()
		return nil, err
	}
	return &pconn{c: conn, br: bufio.NewReaderSize(conn, 8<<10), bw: bufio.NewWriterSize(conn, 8<<10), ep: ep, s: s}, nil
}

// alive reports whether an idle connection is still open and quiet: a
// read that would block (deadline in the past) means so; EOF or stray
// bytes mean the server closed or broke it.
func (pc *pconn) alive() bool {
	if pc.br.Buffered() > 0 {
		return false
	}
	pc.c.SetReadDeadline(time.Unix(1, 0))
	_, err := pc.br.Peek(1)
	pc.c.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// put returns a connection after a complete exchange: to a queued
// request first, else to its endpoint's idle list.
func (c *cluster) put(pc *pconn) {
	c.mu.Lock()
	if len(c.waiters) > 0 {
		w := c.waiters[0]
		c.waiters = c.waiters[1:]
		c.mu.Unlock()
		w.ch <- pc
		return
	}
	if pc.ep.ejected || len(pc.ep.idle) >= maxIdlePerEndpoint || !c.hasLocked(pc.ep) {
		c.closeLocked(pc)
		c.mu.Unlock()
		return
	}
	pc.idleSince = time.Now()
	pc.ep.idle = append(pc.ep.idle, pc)
	c.mu.Unlock()
}

func (c *cluster) hasLocked(ep *endpoint) bool {
	for _, e := range c.eps {
		if e == ep {
			return true
		}
	}
	return false
}

// discard closes a connection that cannot be reused.
func (c *cluster) discard(pc *pconn) {
	c.mu.Lock()
	c.closeLocked(pc)
	c.mu.Unlock()
}

// closeLocked closes pc and frees its slot, to a queued request if any.
func (c *cluster) closeLocked(pc *pconn) {
	pc.c.Close()
	c.conns--
	if len(c.waiters) > 0 {
		w := c.waiters[0]
		c.waiters = c.waiters[1:]
		c.conns++
		w.ch <- nil
	}
}

// released frees a connection slot that was never opened or has been
// closed by its user.
func (c *cluster) released() {
	c.mu.Lock()
	c.conns--
	if len(c.waiters) > 0 {
		w := c.waiters[0]
		c.waiters = c.waiters[1:]
		c.conns++
		w.ch <- nil
	}
	c.mu.Unlock()
}

// acquire reserves a connection slot for a TCP connection; it fails with
// errOverflow past maxConnections (Envoy's TCP proxy closes the
// downstream connection, flag UO).
func (c *cluster) acquire(s *settings) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conns >= s.maxConnections {
		return errOverflow
	}
	c.conns++
	return nil
}

// tryRetry takes a place in the retry budget (maxRetries retries in
// flight across the cluster); the caller gives it back with retryDone.
func (c *cluster) tryRetry(s *settings) bool {
	if c.retries.Add(1) > int64(s.maxRetries) {
		c.retries.Add(-1)
		return false
	}
	return true
}

func (c *cluster) retryDone() { c.retries.Add(-1) }

// backoff is Envoy's fully jittered exponential retry back-off: a random
// delay below (2^n − 1) × 25ms for retry n, capped at 250ms.
func backoff(ctx context.Context, n int) error {
	limit := time.Duration(1<<n-1) * 25 * time.Millisecond
	limit = min(limit, 250*time.Millisecond)
	t := time.NewTimer(time.Duration(rand.Int64N(int64(limit))))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
