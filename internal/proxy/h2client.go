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
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// HTTP/2 to upstreams, which gRPC needs end to end: its calls are HTTP/2
// streams whose status comes in trailers. Istio sends a port declared
// http2, grpc, grpc-web or h2c HTTP/2 upstream, a port declared http
// HTTP/1.1, and a port with no declared protocol in the protocol the
// request came in (engine.Inbound.HTTP2). To the destination's proxy the
// HTTP/2 connection is mutual TLS with ALPN h2; to the application it is
// cleartext HTTP/2 with prior knowledge (h2c).
//
// One HTTP/2 connection per endpoint carries all the requests to it, so
// maxConnections and the connection pool settings of HTTP/1.1 do not
// apply; http2MaxRequests does. A request whose body streams is not
// retried.

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
	t := &http2.Transport{
		AllowHTTP: s.tls == nil,
		// The transport dials by the request's host, which is the
		// endpoint's address.
		DialTLSContext: func(ctx context.Context, _, addr string, _ *tls.Config) (net.Conn, error) {
			ep := c.endpoint(addr)
			if ep == nil {
				return nil, fmt.Errorf("no endpoint %s in cluster %s", addr, c.name)
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
// replaced.
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

// h2Body is a request body sent over HTTP/2. It is not the pooled
// reqState's: the transport's writer may still be in a Read when the
// request is over.
type h2Body struct {
	r io.Reader
	n atomic.Int64
}

func (b *h2Body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *h2Body) Close() error { return nil }

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
	scheme := "http"
	if s.tls != nil {
		scheme = "https"
	}
	req := &http.Request{
		Method: q.method, URL: &url.URL{Scheme: scheme, Host: ep.addr, Opaque: q.target},
		Host: q.host, Header: q.header, ContentLength: q.contentLength,
		Proto: "HTTP/2.0", ProtoMajor: 2,
	}
	if q.body != nil && q.contentLength != 0 {
		res.h2Body = &h2Body{r: q.body}
		req.Body = res.h2Body
	}
	start := time.Now()
	resp, err := c.h2Transport(s).RoundTrip(req.WithContext(ctx))
	if err != nil {
		var be bodyError
		switch {
		case ctx.Err() != nil || q.clientGone():
			res.local(0, "DC", "downstream_remote_disconnect", "")
		case errors.As(err, &be):
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
