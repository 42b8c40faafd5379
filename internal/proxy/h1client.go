package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"time"
)

// outReq is a request as the proxy forwards it upstream over HTTP/1.1.
type outReq struct {
	method, target, host string
	header               http.Header // hop-by-hop headers already removed
	body                 io.Reader   // nil: no body
	contentLength        int64       // -1: unknown, sent chunked
	r                    *http.Request
	w                    http.ResponseWriter // the client's, for abortBody
	buf                  []byte              // the whole body, once bufferBody has read it
}

// bufferBody reads a body of known length up to syncBodyMax into memory,
// once, so that the request can be sent again on a retry: Envoy buffers a
// request body for its retries too, within its buffer limit. A longer or
// chunked body streams, and is not retried.
func (q *outReq) bufferBody() error {
	if q.buf != nil || q.body == nil || q.contentLength <= 0 || q.contentLength > syncBodyMax {
		return nil
	}
	b := make([]byte, q.contentLength)
	if _, err := io.ReadFull(q.body, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return bodyError{err}
	}
	q.buf = b
	return nil
}

// errClientGone ends an exchange whose HTTP/1 client went away.
var errClientGone = errors.New("the client went away")

// clientGone reports whether an HTTP/1 client went away while the
// request waited for its response (h1watch.go).
func (q *outReq) clientGone() bool {
	s := waitingSession(q.w)
	return s != nil && s.clientGone()
}

// abortBody stops a read of the client's request body in progress, when
// the exchange ended without the rest of it: on HTTP/1 with a read
// deadline on the client connection, which then closes after the
// response (it is mid-body); on HTTP/2 by closing the stream's body. A
// body already read to its end is left alone: the client connection is
// in step for its next request.
func (q *outReq) abortBody() {
	if cr, ok := q.body.(*countReader); ok && cr.ended.Load() {
		return
	}
	if hw, ok := q.w.(*h1Response); ok {
		hw.closeAfter = true
		hw.s.conn.SetReadDeadline(time.Unix(1, 0))
		return
	}
	if q.r != nil && q.r.Body != nil {
		q.r.Body.Close()
	}
}

// replayable reports whether the request can be sent again: it has no
// body, or its body is buffered.
func (q *outReq) replayable() bool { return q.body == nil || q.contentLength == 0 || q.buf != nil }

// syncBodyMax is the largest body written before the response is read.
// Larger or unknown-length bodies are written by a goroutine while the
// response is read, as net/http's Transport does, so a server that
// answers before reading the whole body (a 413, a 403) cannot deadlock
// the exchange on full socket buffers.
const syncBodyMax = 64 << 10

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// writeHead writes the request line and headers. The framing headers are
// the proxy's own: Content-Length when the length is known, chunked
// otherwise, never both (the request smuggling rule of RFC 9112 §6.3).
func writeHead(bw *bufio.Writer, q *outReq) {
	bw.WriteString(q.method)
	bw.WriteByte(' ')
	bw.WriteString(q.target)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(q.host)
	bw.WriteString("\r\n")
	for k, vs := range q.header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	switch {
	case q.body != nil && q.contentLength < 0:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case q.contentLength > 0 || q.method == "POST" || q.method == "PUT" || q.method == "PATCH":
		var num [20]byte
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(num[:0], max(q.contentLength, 0), 10))
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
}

// bodyError is a failure to read the client's request body: the client
// went away or sent more than MaxBodyBytes.
type bodyError struct{ err error }

func (e bodyError) Error() string { return "reading the request body: " + e.err.Error() }
func (e bodyError) Unwrap() error { return e.err }

// writeBody copies the request body to the connection.
func writeBody(bw *bufio.Writer, q *outReq) error {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	var dst io.Writer = bw
	var cw io.WriteCloser
	if q.contentLength < 0 {
		cw = httputil.NewChunkedWriter(bw)
		dst = cw
	}
	remaining := q.contentLength
	for remaining != 0 {
		b := buf
		if remaining > 0 && remaining < int64(len(b)) {
			b = b[:remaining]
		}
		n, err := q.body.Read(b)
		if n > 0 {
			if _, werr := dst.Write(b[:n]); werr != nil {
				return werr
			}
			if remaining > 0 {
				remaining -= int64(n)
			}
		}
		if err == io.EOF {
			if remaining > 0 {
				return bodyError{io.ErrUnexpectedEOF}
			}
			break
		}
		if err != nil {
			return bodyError{err}
		}
	}
	if cw != nil {
		if err := cw.Close(); err != nil {
			return err
		}
		bw.WriteString("\r\n")
	}
	return bw.Flush()
}

// exchange sends q on pc and reads the response head. sent reports
// whether the request may have reached the server.
func exchange(ctx context.Context, pc *pconn, q *outReq) (resp *http.Response, sent bool, err error) {
	if err := q.bufferBody(); err != nil {
		return nil, false, err
	}
	pc.requests++
	writeHead(pc.bw, q)
	if q.replayable() {
		// The whole request at once: no body, or a buffered one.
		pc.bw.Write(q.buf)
		if err := pc.bw.Flush(); err != nil {
			return nil, q.buf != nil, err
		}
	} else {
		if err := pc.bw.Flush(); err != nil {
			return nil, false, err
		}
		ch := make(chan error, 1)
		pc.writeErr = ch
		go func() {
			err := writeBody(pc.bw, q)
			if err != nil {
				pc.c.Close() // unblocks the response read
			}
			ch <- err
		}()
	}
	if s := waitingSession(q.w); s != nil {
		err = errClientGone
		if !s.startWait(pc.c, q.body == nil || q.contentLength == 0) {
			err = awaitResponse(ctx, pc)
		}
		if s.endWait() && err == nil {
			err = errClientGone
		}
	} else {
		err = awaitResponse(ctx, pc)
	}
	for err == nil {
		resp, err = http.ReadResponse(pc.br, q.r)
		if err != nil {
			break
		}
		// 1xx informational responses (103 Early Hints) are skipped;
		// Expect: 100-continue is answered by the proxy's own server.
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		return resp, true, nil
	}
	if pc.writeErr != nil {
		// The connection is done for; closing it and the client's body
		// stop the body writer, whose error, if it failed first, says
		// why.
		pc.c.Close()
		q.abortBody()
		if werr := <-pc.writeErr; werr != nil {
			pc.writeErr = nil
			var be bodyError
			if errors.As(werr, &be) {
				return nil, true, werr
			}
		}
	}
	return nil, !errors.Is(err, io.EOF), err
}

// cancelPoll is how often a proxy waiting for a response checks whether
// its client went away.
const cancelPoll = time.Second

// awaitResponse waits for the first byte of the response while watching
// the client: when the client goes away (net/http cancels the request's
// context), the exchange ends and the connection is dropped, as Envoy
// resets the upstream stream of a downstream that disconnected. Read
// deadlines do this without the allocations of context.AfterFunc on
// every request.
func awaitResponse(ctx context.Context, pc *pconn) error {
	if pc.br.Buffered() > 0 {
		return nil
	}
	if ctx.Done() == nil {
		// Nothing to watch (an HTTP/1 client, see serveHTTP1): no
		// deadline, whose timer would wake the network poller.
		_, err := pc.br.Peek(1)
		return err
	}
	defer pc.c.SetReadDeadline(time.Time{})
	for {
		pc.c.SetReadDeadline(time.Now().Add(cancelPoll))
		_, err := pc.br.Peek(1)
		if err == nil {
			return nil
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// finish ends an exchange whose response was forwarded: the connection
// goes back to the pool when the body was read to its end, the server
// keeps the connection open, the request body was written in full, and
// maxRequestsPerConnection allows another request.
//
// It returns the body writer's channel when the writer is still running
// (the server answered before taking the whole body): the connection is
// closed, and the caller must stop the writer (outReq.abortBody) and wait
// for it before the request's memory is reused.
func (c *cluster) finish(pc *pconn, resp *http.Response, eof bool) (running chan error) {
	reuse := eof && !resp.Close && pc.br.Buffered() == 0 &&
		(pc.s.maxRequestsPerConn == 0 || pc.requests < pc.s.maxRequestsPerConn)
	if pc.writeErr != nil {
		select {
		case err := <-pc.writeErr:
			reuse = reuse && err == nil
		default:
			reuse, running = false, pc.writeErr
		}
		pc.writeErr = nil
	}
	if reuse {
		c.put(pc)
	} else {
		c.discard(pc)
	}
	return running
}

// Envoy's local reply bodies and response flags for upstream failures
// (source/common/router/router.cc, stream_info/utility.h).
const (
	bodyConnectFailure = "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
	bodyTermination    = "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
	bodyOverflow       = "upstream connect error or disconnect/reset before headers. reset reason: overflow"
	bodyNoHealthy      = "no healthy upstream"
)

// roundTrip is one request through the cluster: the circuit breakers,
// endpoint choice, connection, exchange, outlier detection and Istio's
// default retry policy — up to 2 retries, on a connect failure or a 503
// response, on another host when there is one, with Envoy's jittered
// back-off. A 503 is retried for a request without a body or with one
// buffered (bufferBody: up to 64 KiB); a streamed body is not replayed.
// The returned result has a response to forward, or the local reply to
// send.
func (c *cluster) roundTrip(ctx context.Context, s *settings, q *outReq, res *result) {
	if !c.admit(s, res) {
		return
	}
	var avoid *endpoint
	retrying, staleRetried := false, false
	defer func() {
		if retrying {
			c.retryDone()
		}
	}()
	for attempt := 0; ; {
		now := time.Now()
		ep, err := c.pick(s, avoid, now)
		if err != nil {
			res.local(http.StatusServiceUnavailable, "UH", "no_healthy_upstream", bodyNoHealthy)
			return
		}
		res.upstreamHost = ep.addr
		pc, err := c.get(ctx, ep, s)
		if errors.Is(err, errOverflow) {
			res.local(http.StatusServiceUnavailable, "UO", "upstream_reset_before_response_started{overflow}", bodyOverflow)
			return
		}
		if err != nil {
			if ctx.Err() != nil {
				res.local(0, "DC", "downstream_remote_disconnect", "")
				return
			}
			if errors.Is(err, errEgressDenied) {
				res.local(http.StatusServiceUnavailable, "UF", "network_policy_denied", bodyNetworkDenied)
				return
			}
			c.report(ep, s, 0, true, time.Now())
			if attempt < s.retryAttempts && c.retryNext(ctx, s, &retrying, attempt) {
				attempt++
				avoid = ep
				continue
			}
			res.local(http.StatusServiceUnavailable, flagsWithRetry("UF", attempt), "upstream_reset_before_response_started{connection_failure}", bodyConnectFailure)
			res.transportFailure = err.Error()
			return
		}
		start := time.Now()
		resp, sent, err := exchange(ctx, pc, q)
		if err != nil {
			c.discard(pc)
			var be bodyError
			switch {
			case errors.As(err, &be):
				bodyFailed(res, be.err)
				return
			case ctx.Err() != nil || q.clientGone():
				res.local(0, "DC", "downstream_remote_disconnect", "")
				return
			case pc.reused && !sent && q.replayable() && !staleRetried:
				// The server closed an idle connection as it was
				// reused: nothing was processed, send it again.
				staleRetried = true
				continue
			}
			c.report(ep, s, 0, true, time.Now())
			res.local(http.StatusServiceUnavailable, "UC", "upstream_reset_before_response_started{connection_termination}", bodyTermination)
			return
		}
		res.serviceTime = time.Since(start)
		c.report(ep, s, resp.StatusCode, false, time.Now())
		if resp.StatusCode == http.StatusServiceUnavailable && q.replayable() && attempt < s.retryAttempts &&
			c.retryNext(ctx, s, &retrying, attempt) {
			c.finish(pc, resp, drain(resp.Body))
			attempt++
			avoid = ep
			continue
		}
		if resp.StatusCode == http.StatusServiceUnavailable && attempt > 0 {
			res.flags = "URX"
		}
		res.resp, res.pc = resp, pc
		return
	}
}

// bodyFailed sets the reply to a request whose body could not be read
// from the client: over the size limit (413), the client gone (DC), or a
// malformed body, which Envoy's codec answers with 400 and a closed
// connection.
func bodyFailed(res *result, err error) {
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		res.local(http.StatusRequestEntityTooLarge, "", "request_payload_too_large", "Payload Too Large")
	case errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		res.local(0, "DC", "downstream_remote_disconnect", "")
	default:
		res.local(http.StatusBadRequest, "", "http1.codec_error", "Bad Request")
		res.closeConn = true
	}
}

// admit takes a place among the requests in flight (http2MaxRequests), or
// sets the overflow reply.
func (c *cluster) admit(s *settings, res *result) bool {
	if c.active.Add(1) > int64(s.maxRequests) {
		c.active.Add(-1)
		res.local(http.StatusServiceUnavailable, "UO", "upstream_reset_before_response_started{overflow}", bodyOverflow)
		return false
	}
	res.activeHeld = true
	return true
}

// retryNext takes a retry from the budget and waits out the back-off.
func (c *cluster) retryNext(ctx context.Context, s *settings, retrying *bool, attempt int) bool {
	if *retrying {
		c.retryDone()
		*retrying = false
	}
	if !c.tryRetry(s) {
		return false
	}
	*retrying = true
	return backoff(ctx, attempt+1) == nil
}

func flagsWithRetry(flag string, attempt int) string {
	if attempt > 0 {
		return flag + ",URX"
	}
	return flag
}

// drain reads a small response body to its end so the connection can be
// reused, and reports whether it got there.
func drain(body io.Reader) bool {
	_, err := io.CopyN(io.Discard, body, 64<<10)
	return err == io.EOF
}

// result is the outcome of a round trip.
type result struct {
	resp       *http.Response
	pc         *pconn
	activeHeld bool
	// bodyWriter: the request body's writer was still running when the
	// exchange was done (see finish).
	bodyWriter chan error
	h2         bool    // resp came over HTTP/2 (roundTripH2): close its body when done
	h2Body     *h2Body // the request body sent over HTTP/2, for its byte count
	// A local reply, when resp is nil. status 0: no reply (the client is
	// gone).
	status           int
	flags            string
	details          string
	body             string
	closeConn        bool // the local reply ends the client connection
	transportFailure string
	upstreamHost     string
	serviceTime      time.Duration
}

func (r *result) local(status int, flags, details, body string) {
	r.status, r.flags, r.details, r.body = status, flags, details, body
}

// done releases what the round trip held: the connection (see finish)
// and the place among active requests.
func (c *cluster) done(r *result, eof bool) {
	if r.pc != nil {
		r.bodyWriter = c.finish(r.pc, r.resp, eof)
		r.pc = nil
	}
	if r.activeHeld {
		c.active.Add(-1)
		r.activeHeld = false
	}
}
