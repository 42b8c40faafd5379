package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// The proxy serves HTTP/1.x itself rather than through net/http's Server.
//
// A sidecar's cost is in its wake-ups, not in its parsing: net/http's
// server starts a goroutine per request to watch the connection while the
// handler runs, and cancels a context per request, so every request wakes
// the scheduler several times on top of the two reads a proxy cannot
// avoid (the client's request, the upstream's response). This loop reads a
// request, decides and forwards it on the connection's goroutine, writes
// the response and reads the next: one goroutine per connection, nothing
// else woken. Parsing is still net/http's (http.ReadRequest, with the
// same validation the server adds), so requests are framed exactly as
// before; HTTP/2 connections still go to net/http's server.
//
// What is given up: a client that disconnects while its request waits for
// the upstream is noticed within about two seconds (h1watch.go), not at
// once; while a request body is still being sent upstream, only when the
// response is written.

// handlerFunc serves one request of a downstream connection.
type handlerFunc func(w http.ResponseWriter, r *http.Request, d *downstream)

// maxDrainBytes is how much of an unread request body is read past after
// the response so the connection can be reused (net/http's figure); a
// longer body closes it.
const maxDrainBytes = 256 << 10

// h1Session is one HTTP/1.x connection being served.
type h1Session struct {
	p      *Proxy
	conn   net.Conn
	d      *downstream
	lr     limitReader
	br     *bufio.Reader
	bw     *bufio.Writer
	w      h1Response
	active atomic.Bool // a request is being handled (shutdown waits for it)
	wait   waitState   // the upstream wait, for watchClients (h1watch.go)
	// outOfStep counts requests for which the framing tracker had no
	// header block: it lost step with ReadRequest (never, says
	// FuzzHTTP1Session).
	outOfStep int
}

// limitReader stops reading at a limit while a request head is read, so
// the head's size is bounded as net/http's server bounds it.
type limitReader struct {
	r       io.Reader
	remain  int64
	limited bool
	hit     bool
}

func (l *limitReader) Read(b []byte) (int, error) {
	if !l.limited {
		return l.r.Read(b)
	}
	if l.remain <= 0 {
		l.hit = true
		return 0, io.EOF
	}
	if int64(len(b)) > l.remain {
		b = b[:l.remain]
	}
	n, err := l.r.Read(b)
	l.remain -= int64(n)
	return n, err
}

var (
	bufReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	bufWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// serveHTTP1 serves the requests of an HTTP/1.x connection until it ends.
func (p *Proxy) serveHTTP1(conn net.Conn, d *downstream, h handlerFunc) {
	s := &h1Session{p: p, conn: conn, d: d}
	s.lr.r = conn
	s.br = bufReaders.Get().(*bufio.Reader)
	s.br.Reset(&s.lr)
	s.bw = bufWriters.Get().(*bufio.Writer)
	s.bw.Reset(conn)
	p.addSession(s)
	defer func() {
		p.removeSession(s)
		conn.Close()
		s.br.Reset(nil)
		bufReaders.Put(s.br)
		s.bw.Reset(nil)
		bufWriters.Put(s.bw)
	}()
	for first := true; ; first = false {
		r, err := s.readRequest(first)
		if err != nil {
			s.replyError(err)
			return
		}
		if !s.serve(r, h) || p.closing.Load() {
			return
		}
	}
}

// readRequest waits for the next request, within the idle timeout, and
// reads its head within the header timeout.
func (s *h1Session) readRequest(first bool) (*http.Request, error) {
	lim := &s.p.lim
	deadline := false
	if first {
		s.conn.SetReadDeadline(time.Now().Add(lim.ReadHeaderTimeout))
		deadline = true
	} else if s.br.Buffered() == 0 {
		s.conn.SetReadDeadline(time.Now().Add(lim.IdleTimeout))
		deadline = true
	}
	if _, err := s.br.Peek(1); err != nil {
		return nil, err
	}
	// From its first byte the request is in flight: shutdown lets it
	// finish (drainSessions).
	s.active.Store(true)
	// The rest of the head must come within the header timeout, unless
	// it is here already: a deadline sooner than the runtime's next
	// timer wakes the thread waiting in its network poller, a context
	// switch per request that a head read in one piece does not need.
	if !first && !headBuffered(s.br) {
		s.conn.SetReadDeadline(time.Now().Add(lim.ReadHeaderTimeout))
		deadline = true
	}
	// Empty lines before a request line are ignored (RFC 9112 §2.2), as
	// the framing tracker ignores them.
	for {
		b, err := s.br.Peek(1)
		if err != nil {
			return nil, err
		}
		if b[0] != '\r' && b[0] != '\n' {
			break
		}
		s.br.Discard(1)
	}
	s.lr.limited, s.lr.remain, s.lr.hit = true, int64(lim.MaxHeaderBytes)-int64(s.br.Buffered()), false
	r, err := http.ReadRequest(s.br)
	s.lr.limited = false
	if err != nil {
		if s.lr.hit {
			return nil, errHeadTooLarge
		}
		return nil, err
	}
	if deadline {
		s.conn.SetReadDeadline(time.Time{})
	}
	// What net/http's server checks beyond ReadRequest.
	if r.ProtoMajor != 1 {
		return nil, errVersion
	}
	head, ok := s.d.framing.next()
	if !ok {
		s.outOfStep++
	}
	if ok && !head.host && r.ProtoAtLeast(1, 1) && r.Method != "CONNECT" {
		return nil, badRequest("missing required Host header")
	}
	if !httpguts.ValidHostHeader(r.Host) {
		return nil, badRequest("malformed Host header")
	}
	s.d.clAndTE = head.clAndTE
	for k, vv := range r.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, badRequest("invalid header name")
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, badRequest("invalid header value")
			}
		}
	}
	return r, nil
}

// headBuffered reports whether a whole request head is in the buffer:
// after any empty lines before it, a line feed followed by an empty line
// (LF or CRLF).
func headBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	b = bytes.TrimLeft(b, "\r\n")
	for i := bytes.IndexByte(b, '\n'); i >= 0 && i+1 < len(b); {
		rest := b[i+1:]
		if rest[0] == '\n' || (len(rest) > 1 && rest[0] == '\r' && rest[1] == '\n') {
			return true
		}
		j := bytes.IndexByte(rest, '\n')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

var (
	errHeadTooLarge = errors.New("request head too large")
	errVersion      = errors.New("unsupported protocol version")
)

type badRequest string

func (e badRequest) Error() string { return string(e) }

// replyError answers a request that could not be read, as net/http's
// server does, and ends the connection.
func (s *h1Session) replyError(err error) {
	var ne net.Error
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		(errors.As(err, &ne) && ne.Timeout()) {
		return // nothing to answer, or nobody to answer to
	}
	var status int
	var body string
	switch {
	case errors.Is(err, errHeadTooLarge):
		status, body = http.StatusRequestHeaderFieldsTooLarge, "Request Header Fields Too Large"
	case errors.Is(err, errVersion):
		status, body = http.StatusHTTPVersionNotSupported, "unsupported protocol version"
	// ReadRequest's error for a transfer coding other than chunked, or
	// several, has no exported type: RFC 9112 §6.1 asks for 501.
	case strings.HasPrefix(err.Error(), "unsupported transfer encoding"),
		strings.HasPrefix(err.Error(), "too many transfer encodings"):
		status, body = http.StatusNotImplemented, "Unsupported transfer encoding"
	default:
		var br badRequest
		if errors.As(err, &br) {
			body = "Bad Request: " + string(br)
		} else {
			body = "Bad Request"
		}
		status = http.StatusBadRequest
	}
	s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	s.bw.WriteString("HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) +
		"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	s.bw.Flush()
	if status == http.StatusRequestHeaderFieldsTooLarge {
		closeWriteAndWait(s.conn)
	}
}

// closeWriteAndWait half-closes the connection and lingers briefly, so a
// client still sending reads the reply before a reset could discard it.
func closeWriteAndWait(c net.Conn) {
	for {
		switch x := c.(type) {
		case interface{ CloseWrite() error }:
			x.CloseWrite()
			time.Sleep(50 * time.Millisecond)
			return
		case *downstream:
			c = x.Conn
		case *h1Conn:
			c = x.Conn
		default:
			return
		}
	}
}

// serve handles one request and reports whether the connection can carry
// another.
func (s *h1Session) serve(r *http.Request, h handlerFunc) (keep bool) {
	defer s.active.Store(false)
	defer s.stopWatch() // also when the handler panics: the buffers go back to their pools
	w := &s.w
	w.reset(s, r)
	body := r.Body
	if expect := r.Header["Expect"]; len(expect) > 0 {
		if !strings.EqualFold(expect[0], "100-continue") || len(expect) > 1 {
			w.header["Connection"] = connClose
			w.header["Content-Length"] = []string{"0"}
			w.WriteHeader(http.StatusExpectationFailed)
			w.finish()
			return false
		}
		// Envoy answers "100 Continue" itself as soon as it has the
		// request's headers, before any filter runs, and does not pass
		// the expectation on (proxy_100_continue is off by default).
		if r.ProtoAtLeast(1, 1) && r.ContentLength != 0 {
			s.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if s.bw.Flush() != nil {
				return false
			}
		}
	}
	defer func() {
		if v := recover(); v != nil {
			// ErrAbortHandler ends the connection without a complete
			// response, as with net/http; anything else is a bug,
			// reported, and the connection still just ends.
			if v != http.ErrAbortHandler {
				log.Printf("proxy: panic serving %s: %v\n%s", s.d.remote, v, debug.Stack())
			}
			keep = false
		}
	}()
	h(w, r, s.d)
	s.stopWatch()
	if !w.finish() || w.closeAfter {
		return false
	}
	// The next request starts where this one's body ends: what is left
	// of it must come within the header timeout.
	if body != nil && body != http.NoBody {
		s.conn.SetReadDeadline(time.Now().Add(s.p.lim.ReadHeaderTimeout))
		n, err := io.CopyN(io.Discard, body, maxDrainBytes+1)
		s.conn.SetReadDeadline(time.Time{})
		if n > maxDrainBytes || (err != nil && err != io.EOF) {
			return false
		}
	}
	return true
}

// h1Response is the http.ResponseWriter of a request on an h1Session.
type h1Response struct {
	s           *h1Session
	req         *http.Request
	header      http.Header
	status      int
	wroteHeader bool
	noBody      bool  // HEAD, 1xx, 204, 304
	chunked     bool  // the body is sent in chunks
	length      int64 // declared Content-Length, or -1
	written     int64
	closeAfter  bool
	hijacked    bool  // the connection was taken over after a 101
	err         error // a write to the client failed
}

func (w *h1Response) reset(s *h1Session, r *http.Request) {
	h := w.header
	if h == nil {
		h = make(http.Header, 8)
	} else {
		clear(h)
	}
	*w = h1Response{s: s, req: r, header: h, length: -1, closeAfter: r.Close}
}

func (w *h1Response) Header() http.Header { return w.header }

// WriteHeader writes the status line and headers to the connection's
// buffer. The framing follows the headers: Content-Length if set, else
// chunked for an HTTP/1.1 client, else the end of the connection.
func (w *h1Response) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// An interim response: written at once, the final one follows.
		w.writeHead(code)
		w.s.bw.WriteString("\r\n")
		w.s.bw.Flush()
		return
	}
	w.wroteHeader, w.status = true, code
	h := w.header
	w.noBody = w.req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified
	if cl := h["Content-Length"]; len(cl) == 1 {
		if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n >= 0 {
			w.length = n
		} else {
			delete(h, "Content-Length")
		}
	}
	if conn := h["Connection"]; len(conn) > 0 && httpguts.HeaderValuesContainsToken(conn, "close") {
		w.closeAfter = true
	}
	if w.length < 0 && !w.noBody {
		if w.req.ProtoAtLeast(1, 1) {
			w.chunked = true
		} else {
			w.closeAfter = true
		}
	}
	if w.s.p.closing.Load() {
		w.closeAfter = true
	}
	switch {
	case w.closeAfter:
		h["Connection"] = connClose
	case !w.req.ProtoAtLeast(1, 1):
		h["Connection"] = keepAlive // an HTTP/1.0 client that asked for it
	}
	w.writeHead(code)
	if w.chunked {
		w.s.bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	w.s.bw.WriteString("\r\n")
}

var keepAlive = []string{"keep-alive"}

// writeHead writes a status line and the header fields, with any CR or LF
// in a value made a space (a value built from a decoded path could carry
// them).
func (w *h1Response) writeHead(code int) {
	bw := w.s.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(code))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(code))
	bw.WriteString("\r\n")
	if _, ok := w.header["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(httpDate())
		bw.WriteString("\r\n")
	}
	for k, vv := range w.header {
		if k == "Trailer" {
			continue // trailers are not forwarded (see finish)
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			if strings.ContainsAny(v, "\r\n") {
				v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
			}
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
}

func (w *h1Response) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.noBody {
		return 0, http.ErrBodyNotAllowed
	}
	if w.length >= 0 && w.written+int64(len(b)) > w.length {
		return 0, http.ErrContentLength
	}
	if len(b) == 0 {
		return 0, nil
	}
	bw := w.s.bw
	if w.chunked {
		bw.WriteString(strconv.FormatInt(int64(len(b)), 16))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(b)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	w.written += int64(n)
	if err != nil {
		w.err = err
	}
	return n, err
}

// Flush sends what is buffered, for responses that stream.
func (w *h1Response) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err == nil {
		w.err = w.s.bw.Flush()
	}
}

// finish completes the response: the last chunk, or a check that the
// declared length was sent; then the buffer is flushed. It reports
// whether the connection is still in step for another request.
func (w *h1Response) finish() bool {
	if w.hijacked {
		return false
	}
	if !w.wroteHeader {
		if w.header["Content-Length"] == nil {
			w.header["Content-Length"] = []string{"0"}
		}
		w.WriteHeader(http.StatusOK)
	}
	if w.chunked && w.err == nil {
		// Trailers are not sent: Envoy's HTTP/1 codec drops them too
		// unless enable_trailers is set, and Istio does not set it.
		w.s.bw.WriteString("0\r\n\r\n")
	}
	if w.err == nil {
		w.err = w.s.bw.Flush()
	}
	if w.err != nil {
		return false
	}
	if !w.noBody && w.length >= 0 && w.written < w.length {
		return false // the body fell short: the client must see the end
	}
	return true
}

// hijack ends HTTP on the connection with a 101 response: the head is
// written with the header's Connection and Upgrade fields, and the
// connection, with any bytes the client sent after the request, is the
// caller's.
func (w *h1Response) hijack() (net.Conn, error) {
	w.s.stopWatch() // the tunnel reads the client from now on
	w.wroteHeader, w.status, w.hijacked = true, http.StatusSwitchingProtocols, true
	w.writeHead(http.StatusSwitchingProtocols)
	w.s.bw.WriteString("\r\n")
	if err := w.s.bw.Flush(); err != nil {
		return nil, err
	}
	c := w.s.conn
	if hc, ok := c.(*h1Conn); ok {
		c = hc.Conn // the framing tracker has nothing more to follow
	}
	if n := w.s.br.Buffered(); n > 0 {
		b, _ := w.s.br.Peek(n)
		c = &prefixConn{Conn: c, prefix: append([]byte(nil), b...)}
	}
	return c, nil
}

// httpDate is the Date header's value, formatted once a second.
func httpDate() string {
	now := time.Now().Unix()
	if d := cachedDate.Load(); d != nil && d.unix == now {
		return d.s
	}
	d := &dateString{unix: now, s: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.s
}

type dateString struct {
	unix int64
	s    string
}

var cachedDate atomic.Pointer[dateString]

// addSession and removeSession keep the sessions shutdown drains.
func (p *Proxy) addSession(s *h1Session) {
	p.connsMu.Lock()
	p.sessions[s] = struct{}{}
	p.connsMu.Unlock()
}

func (p *Proxy) removeSession(s *h1Session) {
	p.connsMu.Lock()
	delete(p.sessions, s)
	p.connsMu.Unlock()
}

// drainSessions closes idle HTTP/1 connections until none is left
// handling a request, or the deadline passes.
func (p *Proxy) drainSessions(deadline time.Time) {
	for {
		var idle []net.Conn
		busy := false
		p.connsMu.Lock()
		for s := range p.sessions {
			if s.active.Load() {
				busy = true
			} else {
				idle = append(idle, s.conn)
			}
		}
		p.connsMu.Unlock()
		for _, c := range idle {
			c.Close()
		}
		if !busy || time.Now().After(deadline) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
