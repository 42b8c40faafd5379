package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// HTTP/2 to upstreams, which gRPC needs end to end: its calls are HTTP/2
// streams whose status comes in trailers. Istio sends a port declared
// http2, grpc, grpc-web or kubernetes.io/h2c HTTP/2 upstream, a port
// declared http HTTP/1.1, and a port with no declared protocol in the
// protocol the request came in (engine.Inbound.HTTP2). To the
// destination's proxy the HTTP/2 connection is mutual TLS with ALPN h2
// (or cleartext when the destination's port is DISABLE); to the
// application it is cleartext HTTP/2 with prior knowledge (h2c).
//
// One HTTP/2 connection per endpoint carries all the requests to it, so
// maxConnections and the connection pool settings of HTTP/1.1 do not
// apply; http2MaxRequests and idleTimeout (1h by default, as Envoy's) do.
// HTTP/2 requests are not retried.

// h2Config is an upstream TLS configuration offering HTTP/2 (ALPN h2)
// instead of HTTP/1.1, with the same verification (secure naming).
func h2Config(c *tls.Config) *tls.Config {
	h := c.Clone()
	h.NextProtos = []string{http2.NextProtoTLS}
	return h
}

// defaultH2IdleTimeout closes an idle HTTP/2 upstream connection, as
// Envoy's common_http_protocol_options.idle_timeout does by default.
const defaultH2IdleTimeout = time.Hour

// useH2 reports whether a request goes upstream as HTTP/2: the declared
// protocol, else the request's own.
func useH2(declared, set bool, r *http.Request) bool {
	if set {
		return declared
	}
	return r.ProtoMajor == 2
}

// h2Transport returns the cluster's HTTP/2 transport for settings s,
// creating it on first use.
func (c *cluster) h2Transport(s *settings) *http2.Transport {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.h2[s]; t != nil {
		return t
	}
	idle := s.idleTimeout
	if idle <= 0 {
		idle = defaultH2IdleTimeout
	}
	t := &http2.Transport{
		AllowHTTP:       s.tls == nil,
		IdleConnTimeout: idle,
		// The transport dials by the request's host, which is the
		// endpoint's address.
		DialTLSContext: func(ctx context.Context, _, addr string, _ *tls.Config) (net.Conn, error) {
			ep := c.endpoint(addr)
			if ep == nil {
				return nil, fmt.Errorf("no endpoint %s in cluster %s", addr, c.name)
			}
			if s.tls != nil && s.tlsH2 == nil {
				// Never fall back to cleartext.
				return nil, errors.New("no HTTP/2 TLS configuration for this destination")
			}
			h2s := *s
			h2s.tls = s.tlsH2
			conn, err := c.dial(ctx, ep, &h2s)
			if err != nil {
				return nil, err
			}
			if tc, ok := conn.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol != http2.NextProtoTLS {
				conn.Close()
				return nil, errors.New("the upstream did not agree to HTTP/2 (ALPN)")
			}
			return conn, nil
		},
	}
	if c.h2 == nil {
		c.h2 = map[*settings]*http2.Transport{}
	}
	c.h2[s] = t
	return t
}

// dropH2 closes the idle HTTP/2 connections of settings that were
// replaced; busy ones close when their idle timeout passes.
func (c *cluster) dropH2(s *settings) {
	c.mu.Lock()
	t := c.h2[s]
	delete(c.h2, s)
	c.mu.Unlock()
	if t != nil {
		t.CloseIdleConnections()
	}
}

// endpoint finds an endpoint by address.
func (c *cluster) endpoint(addr string) *endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ep := range c.eps {
		if ep.addr == addr {
			return ep
		}
	}
	return nil
}

// h2Body is a request body sent over HTTP/2, read by the transport's own
// goroutine. It is not the pooled reqState's, and stop ends its use
// before the request is over, so that goroutine never reads the client's
// connection after the handler returned.
type h2Body struct {
	mu      sync.Mutex // held during a Read
	r       io.Reader
	stopped bool
	err     error // why reading the client's body failed, if it did
	n       atomic.Int64
	ended   atomic.Bool
}

var errBodyStopped = errors.New("request body no longer read: the exchange is over")

func (b *h2Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return 0, errBodyStopped
	}
	n, err := b.r.Read(p)
	b.n.Add(int64(n))
	if err != nil {
		b.ended.Store(true)
		if err != io.EOF {
			b.err = err
			err = bodyError{err}
		}
	}
	return n, err
}

func (b *h2Body) Close() error { return nil }

// stop ends the body's use: a read in progress is interrupted (abort) and
// waited for, and later reads fail.
func (b *h2Body) stop(abort func()) {
	if !b.ended.Load() {
		abort()
	}
	b.mu.Lock()
	b.stopped = true
	b.mu.Unlock()
}

// readErr is the client's body error, if reading it failed.
func (b *h2Body) readErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// roundTripH2 is roundTrip over HTTP/2: the circuit breaker on requests in
// flight, an endpoint choice, the exchange, outlier detection.
func (c *cluster) roundTripH2(ctx context.Context, s *settings, q *outReq, res *result) {
	if !c.admit(s, res) {
		return
	}
	ep, err := c.pick(s, nil, time.Now())
	if err != nil {
		res.local(http.StatusServiceUnavailable, "UH", "no_healthy_upstream", bodyNoHealthy)
		return
	}
	res.upstreamHost = ep.addr
	// :path must be the target authorization judged, byte for byte.
	u, err := url.ParseRequestURI(q.target)
	if err != nil || u.RequestURI() != q.target {
		res.local(http.StatusBadRequest, "", "http2_path_not_forwardable", "Bad Request")
		return
	}
	u.Scheme, u.Host = "http", ep.addr
	if s.tls != nil {
		u.Scheme = "https"
	}
	req := &http.Request{
		Method: q.method, URL: u, Host: q.host, Header: q.header, ContentLength: q.contentLength,
		Proto: "HTTP/2.0", ProtoMajor: 2,
	}
	if q.body != nil && q.contentLength != 0 {
		res.h2Body = &h2Body{r: q.body}
		req.Body = res.h2Body
	}
	start := time.Now()
	resp, err := c.h2Transport(s).RoundTrip(req.WithContext(ctx))
	if err != nil {
		var berr error
		if res.h2Body != nil {
			res.h2Body.stop(q.abortBody)
			berr = res.h2Body.readErr()
		}
		switch {
		case berr != nil:
			// The client's body failed, not the upstream.
			bodyFailed(res, berr)
		case ctx.Err() != nil || q.clientGone():
			res.local(0, "DC", "downstream_remote_disconnect", "")
		default:
			c.report(ep, s, 0, true, time.Now())
			res.local(http.StatusServiceUnavailable, "UF", "upstream_reset_before_response_started{connection_failure}", bodyConnectFailure)
			res.transportFailure = err.Error()
		}
		return
	}
	res.serviceTime = time.Since(start)
	c.report(ep, s, resp.StatusCode, false, time.Now())
	res.resp, res.h2 = resp, true
}
