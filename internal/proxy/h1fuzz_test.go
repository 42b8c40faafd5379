package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// memConn is a client connection that sends in and records what the
// server writes.
type memConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *memConn) Read(b []byte) (int, error)       { return c.in.Read(b) }
func (c *memConn) Write(b []byte) (int, error)      { return c.out.Write(b) }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzHTTP1Session feeds arbitrary bytes to the HTTP/1 server loop as a
// client's stream. Whatever they are: no panic; what the proxy writes
// back is a sequence of well-formed responses, one per request handled
// (at least); and the framing tracker, which finds the header blocks the
// smuggling rule needs, never loses step with ReadRequest.
func FuzzHTTP1Session(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /y HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.0\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"\r\n\r\nGET / HTTP/1.1\nHost: a\n\n",
		"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
		"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nabGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p := &Proxy{lim: Limits{MaxHeaderBytes: 4 << 10}.withDefaults(), sessions: map[*h1Session]struct{}{}}
		c := &memConn{in: bytes.NewReader(in)}
		d := &downstream{Conn: c}
		h := &h1Conn{Conn: c}
		d.framing = &h.f
		handled := 0
		var sess *h1Session
		p.serveHTTP1(h, d, func(w http.ResponseWriter, r *http.Request, d *downstream) {
			handled++
			for s := range p.sessions {
				sess = s
			}
			io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
			w.Header()["Content-Length"] = []string{"2"}
			io.WriteString(w, "ok")
		})
		if sess != nil && sess.outOfStep != 0 {
			t.Fatalf("the framing tracker lost step %d times on %q", sess.outOfStep, in)
		}
		out := c.out.String()
		br := bufio.NewReader(&c.out)
		responses := 0
		for {
			if _, err := br.Peek(1); err == io.EOF {
				break
			}
			// 100 Continue is an interim response of the request that
			// follows it.
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("response %d unreadable: %v\ninput %q\noutput %q", responses, err, in, out)
			}
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != http.StatusContinue {
				responses++
			}
		}
		if responses < handled {
			t.Fatalf("%d requests handled, %d responses\ninput %q", handled, responses, in)
		}
	})
}
