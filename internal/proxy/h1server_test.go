package proxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
)

// backendProxy runs the backend's proxy alone in front of h, and returns
// the plaintext-capable (PERMISSIVE) port 8081 and a function that stops
// the proxy and waits for Run to return.
func backendProxy(t *testing.T, h http.HandlerFunc, lim Limits) (addr string, stop func()) {
	t.Helper()
	addr, stop, _ = backendProxyLog(t, h, lim)
	return addr, stop
}

// backendProxyLog is backendProxy with its access log.
func backendProxyLog(t *testing.T, h http.HandlerFunc, lim Limits) (addr string, stop func(), access *syncBuffer) {
	t.Helper()
	access = &syncBuffer{}
	ca := newCA(t, "cluster.local")
	box := &policyBox{}
	e := newEngine(t, meshYAML, nil)
	box.p.Store(e)
	app := startEcho(t, h)
	p, err := New(Config{
		Workload: workload(t, e, "shop/backend"), Policy: box.get,
		SVIDs: newStatic(ca.svid(t, "/ns/shop/sa/backend")), Bundles: x509bundle.NewSet(ca.bundle()),
		Inbound:   []InboundPort{{Port: 8081, Listen: "127.0.0.1:0", App: app.addr}},
		Limits:    lim,
		AccessLog: access,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return p.InboundAddr(0).String(), stop, access
}

// TestHTTP1Server covers what the proxy's HTTP/1 server does beyond
// ReadRequest, case by case as net/http's server and RFC 9112 do it.
func TestHTTP1Server(t *testing.T) {
	addr, _ := backendProxy(t, nil, Limits{})
	cases := []struct {
		name  string
		req   string
		codes []int
		// closed: the proxy ends the connection after the last response
		// (rawRequest returns at once instead of at its timeout), and
		// says so in it (Connection: close).
		closed bool
	}{
		// RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400; an
		// empty Host is valid.
		{name: "no Host in HTTP/1.1", req: "GET /public/x HTTP/1.1\r\n\r\n", codes: []int{400}, closed: true},
		{name: "empty Host", req: "GET /public/x HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n", codes: []int{200}, closed: true},
		{name: "two Hosts", req: "GET /public/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", codes: []int{400}, closed: true},
		{name: "malformed Host", req: "GET /public/x HTTP/1.1\r\nHost: a b\r\n\r\n", codes: []int{400}, closed: true},
		{name: "invalid header name", req: "GET /public/x HTTP/1.1\r\nHost: b\r\nX Y: 1\r\n\r\n", codes: []int{400}, closed: true},
		// HTTP/1.0 closes unless the client asks for keep-alive.
		{name: "HTTP/1.0 without Host", req: "GET /public/x HTTP/1.0\r\n\r\n", codes: []int{200}, closed: true},
		{name: "HTTP/1.0 keep-alive", req: "GET /public/x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" +
			"GET /public/y HTTP/1.0\r\n\r\n", codes: []int{200, 200}, closed: true},
		// Pipelined requests are answered in order on one connection;
		// blank lines before a request line are skipped (RFC 9112 §2.2).
		{name: "pipelined", req: "GET /public/1 HTTP/1.1\r\nHost: b\r\n\r\n\r\nPOST /public/2 HTTP/1.1\r\nHost: b\r\nContent-Length: 3\r\n\r\nabc" +
			"GET /public/3 HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n", codes: []int{200, 200, 200}, closed: true},
		// An unread body is skipped so the next request is read where it
		// starts: the proxy's 403 never reads it.
		{name: "denied with a body, then another", req: "POST /private HTTP/1.1\r\nHost: b\r\nContent-Length: 5\r\n\r\nhello" +
			"GET /public/x HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n", codes: []int{403, 200}, closed: true},
		// Expectations other than 100-continue cannot be met (RFC 9110
		// §10.1.1).
		{name: "unknown expectation", req: "POST /public/x HTTP/1.1\r\nHost: b\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\na", codes: []int{417}, closed: true},
		{name: "HTTP/2 request line", req: "GET /public/x HTTP/2.0\r\nHost: b\r\n\r\n", codes: []int{505}, closed: true},
		{name: "HTTP/0.9", req: "GET /public/x\r\n\r\n", codes: []int{400}, closed: true},
		{name: "HEAD", req: "HEAD /public/x HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n", codes: []int{200}, closed: true},
		// A malformed chunked body is the codec's 400, as in Envoy.
		{name: "bad chunk size", req: "POST /public/x HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", codes: []int{400}, closed: true},
	}
	for _, c := range cases {
		start := time.Now()
		raw := rawRequest(t, addr, c.req)
		elapsed := time.Since(start)
		var rs []*http.Response
		if strings.HasPrefix(c.req, "HEAD") {
			if r, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), &http.Request{Method: "HEAD"}); err == nil {
				rs = append(rs, r)
			}
		} else {
			rs = readResponses(raw)
		}
		var codes []int
		for _, r := range rs {
			codes = append(codes, r.StatusCode)
		}
		if !equalInts(codes, c.codes) {
			t.Errorf("%s: status %v, want %v\n%s", c.name, codes, c.codes, raw)
			continue
		}
		if c.closed && (elapsed > 3*time.Second || !rs[len(rs)-1].Close) {
			t.Errorf("%s: the connection stayed open, or the last response did not say it closes\n%s", c.name, raw)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestExpectContinue: the proxy answers "100 Continue" on the headers,
// as Envoy does (proxy_100_continue off), so a client waiting for it
// sends its body whether the request is then allowed or denied; either
// way the connection serves the next request.
func TestExpectContinue(t *testing.T) {
	addr, _ := backendProxy(t, nil, Limits{})
	for _, c := range []struct {
		path   string
		status int
		body   string // part of the response
	}{
		{"/public/x", 200, "body=hello"},
		{"/private", 403, "RBAC: access denied"},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(conn, "POST "+c.path+" HTTP/1.1\r\nHost: b\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		br := bufio.NewReader(conn)
		line, _ := br.ReadString('\n')
		blank, _ := br.ReadString('\n')
		if line != "HTTP/1.1 100 Continue\r\n" || blank != "\r\n" {
			t.Fatalf("%s: interim response: %q %q", c.path, line, blank)
		}
		io.WriteString(conn, "hello")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != c.status || !strings.Contains(string(body), c.body) {
			t.Errorf("%s: final response: %d %q", c.path, resp.StatusCode, body)
		}
		io.WriteString(conn, "GET /public/next HTTP/1.1\r\nHost: b\r\n\r\n")
		if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
			t.Errorf("%s: next request on the connection: %v %v", c.path, resp, err)
		}
	}
}

// TestStreamingResponse: a response without a length is relayed chunk by
// chunk as the application flushes it, not held until it ends.
func TestStreamingResponse(t *testing.T) {
	release := make(chan struct{})
	addr, _ := backendProxy(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second\n")
	}, Limits{})
	defer close(release)
	resp, err := http.Get("http://" + addr + "/public/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("transfer encoding %v, want chunked", resp.TransferEncoding)
	}
	br := bufio.NewReader(resp.Body)
	done := make(chan string, 1)
	go func() {
		line, _ := br.ReadString('\n')
		done <- line
	}()
	select {
	case line := <-done:
		if line != "first\n" {
			t.Errorf("first chunk: %q", line)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the first chunk was held back")
	}
	release <- struct{}{}
	if rest, _ := io.ReadAll(br); string(rest) != "second\n" {
		t.Errorf("rest: %q", rest)
	}
}

// TestDrain: when the proxy stops, a request in flight is completed and
// idle keep-alive connections are closed.
func TestDrain(t *testing.T) {
	started := make(chan struct{}, 1)
	addr, stop := backendProxy(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/public/slow" {
			started <- struct{}{}
			time.Sleep(300 * time.Millisecond)
		}
		io.WriteString(w, "ok")
	}, Limits{})
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	io.WriteString(idle, "GET /public/x HTTP/1.1\r\nHost: b\r\n\r\n")
	idle.SetDeadline(time.Now().Add(5 * time.Second))
	ibr := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(ibr, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("idle connection's request: %v", err)
	} else {
		io.ReadAll(resp.Body)
	}

	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/public/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- resp.Status + " " + string(b) + " close=" + strconv.FormatBool(resp.Close)
	}()
	<-started
	stop()
	if g := <-got; g != "200 OK ok close=true" {
		t.Errorf("request in flight at shutdown: %q, want 200 with Connection: close", g)
	}
	if n, err := ibr.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("idle connection still open after shutdown: %d, %v", n, err)
	}
}

// TestResponseHeaderNewlines: a header value with CR or LF (one built
// from a decoded path, say) cannot split the response.
func TestResponseHeaderNewlines(t *testing.T) {
	var out bytes.Buffer
	s := &h1Session{p: &Proxy{}, bw: bufio.NewWriter(&out)}
	w := &s.w
	w.reset(s, &http.Request{Method: "GET", ProtoMajor: 1, ProtoMinor: 1})
	w.Header()["Www-Authenticate"] = []string{"Bearer realm=\"http://b/x\r\nSet-Cookie: a=b\""}
	w.Header()["Content-Length"] = []string{"0"}
	w.WriteHeader(401)
	w.finish()
	resp, err := http.ReadResponse(bufio.NewReader(&out), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := resp.Header["Set-Cookie"]; ok {
		t.Errorf("header injected: %v", resp.Header)
	}
	if got := resp.Header.Get("Www-Authenticate"); got != `Bearer realm="http://b/x  Set-Cookie: a=b"` {
		t.Errorf("Www-Authenticate: %q", got)
	}
}

func TestHeadBuffered(t *testing.T) {
	cases := []struct {
		in   string
		want bool
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
		{"GET / HTTP/1.1\nHost: a\n\n", true},
		{"GET / HTTP/1.1\r\nHost: a\r\n\n", true},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody", true},
		{"GET / HTTP/1.1\r\nHost: a\r\n", false},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r", false},
		{"GET / HTTP/1.1", false},
		{"\n", false},
		{"\r\n\r\nGET / HTTP/1.1\r\n", false},
		{"\r\n\r\nGET / HTTP/1.1\r\n\r\n", true},
	}
	for _, c := range cases {
		br := bufio.NewReader(strings.NewReader(c.in))
		br.Peek(1)
		if got := headBuffered(br); got != c.want {
			t.Errorf("headBuffered(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

// TestEarlyUpstreamAnswer: an application that answers before reading a
// large request body (the body is copied to it while its response is
// read) gets its answer to the client, the copy of the body stops, and
// the client connection, left mid-body, is closed. Repeated: the copy
// used to outlive the request.
func TestEarlyUpstreamAnswer(t *testing.T) {
	addr, _ := backendProxy(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	}, Limits{})
	head := "POST /public/upload HTTP/1.1\r\nHost: b\r\nContent-Length: 10000000\r\n\r\n"
	for i := range 20 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, head+strings.Repeat("x", 100<<10))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 403 {
			t.Fatalf("request %d: %v %v", i, resp, err)
		}
		io.ReadAll(resp.Body)
		if _, err := br.ReadByte(); err == nil {
			t.Fatalf("request %d: the connection stayed open mid-body", i)
		}
		c.Close()
	}
}

// TestShutdownStuckUpstream: a request waiting on an application that
// never answers does not hold shutdown past the drain timeout.
func TestShutdownStuckUpstream(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{}, 1)
	addr, stop := backendProxy(t, func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
	}, Limits{DrainTimeout: 300 * time.Millisecond})
	go http.Get("http://" + addr + "/public/stuck")
	<-started
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return with a request stuck upstream")
	}
}

// TestClientGoneWhileWaiting: a client that disconnects while its
// request waits for a slow application is noticed within about two
// seconds: the request to the application is cancelled and the request
// is reported with Envoy's DC flag. A client that stays gets its
// response however long it waits.
func TestClientGoneWhileWaiting(t *testing.T) {
	cancelled := make(chan struct{})
	started := make(chan struct{}, 1)
	addr, _, access := backendProxyLog(t, func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		switch r.URL.Path {
		case "/public/slow":
			select {
			case <-r.Context().Done():
				close(cancelled)
			case <-time.After(10 * time.Second):
			}
			return
		case "/public/patient":
			time.Sleep(2500 * time.Millisecond)
		}
		io.WriteString(w, "done")
	}, Limits{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /public/slow HTTP/1.1\r\nHost: b\r\n\r\n")
	<-started
	// The client half-closes (nc -N does): it is gone for Envoy too.
	// Nothing is answered: a response made up for it would be a lie.
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(6 * time.Second))
	if got, _ := io.ReadAll(c); len(got) != 0 {
		t.Errorf("answered a client that left: %q", got)
	}
	c.Close()
	select {
	case <-cancelled:
	case <-time.After(6 * time.Second):
		t.Fatal("the application's request was not cancelled after the client left")
	}
	if lines := access.eventually(1, `"response_flags":"DC"`); len(lines) == 0 {
		t.Errorf("no DC in the access log:\n%s", access.String())
	}

	// Watched for more than a second, then answered: the watcher is
	// stopped and the connection serves the next request.
	c, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for _, path := range []string{"/public/patient", "/public/next"} {
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: b\r\n\r\n")
		<-started
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if body, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(body) != "done" {
			t.Errorf("%s: %d %q", path, resp.StatusCode, body)
		}
	}
}
