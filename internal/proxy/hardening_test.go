package proxy

import (
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
)

// TestRequestSmuggling sends the request smuggling shapes on raw sockets,
// to the inbound PERMISSIVE port (plaintext) and to an outbound listener.
// Every one is refused before the application sees the smuggled request:
// differing Content-Length values and unsupported Transfer-Encodings by
// net/http itself, Content-Length with Transfer-Encoding by the proxy (Go
// would accept it; Envoy does not).
func TestRequestSmuggling(t *testing.T) {
	m := newMesh(t, "", Limits{})
	const smuggled = "GET /public/smuggled HTTP/1.1\r\nHost: b\r\n\r\n"
	cases := []struct {
		name   string
		req    string
		status int
	}{
		{"CL and TE", "POST /public/x HTTP/1.1\r\nHost: b\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"TE and CL, TE first, odd case", "POST /public/x HTTP/1.1\r\nHost: b\r\ntransfer-encoding: chunked\r\ncontent-length: 45\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"two Content-Lengths", "POST /public/x HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n" + smuggled, 400},
		{"two Transfer-Encodings", "POST /public/x HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n" + smuggled, 501},
		{"obfuscated chunked", "POST /public/x HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + smuggled, 501},
		{"bad Content-Length", "POST /public/x HTTP/1.1\r\nHost: b\r\nContent-Length: +4\r\n\r\nabcd" + smuggled, 400},
	}
	for _, c := range cases {
		for _, addr := range []string{m.permissive, m.frontOut["backend"]} {
			before := m.app.requests.Load()
			raw := rawRequest(t, addr, c.req)
			rs := readResponses(raw)
			if len(rs) != 1 || rs[0].StatusCode != c.status {
				t.Errorf("%s via %s: got %q, want one %d", c.name, addr, raw, c.status)
			}
			if n := m.app.requests.Load() - before; n != 0 {
				t.Errorf("%s via %s: the application saw %d requests", c.name, addr, n)
			}
		}
	}
	// Legitimate framing on one connection: a chunked body, then a
	// Content-Length body, then a smuggling attempt. The tracker follows
	// the bodies and flags only the third.
	pipelined := "POST /public/a HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n" +
		"POST /public/b HTTP/1.1\r\nHost: b\r\nContent-Length: 44\r\n\r\nPOST /public/x HTTP/1.1\r\nContent-Length: 1\r\n\r\n" +
		"POST /public/c HTTP/1.1\r\nHost: b\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	for _, addr := range []string{m.permissive, m.frontOut["backend"]} {
		req := pipelined
		if addr != m.permissive {
			req = strings.ReplaceAll(req, "/public/", "/api/v1/")
		}
		rs := readResponses(rawRequest(t, addr, req))
		var codes []int
		for _, r := range rs {
			codes = append(codes, r.StatusCode)
		}
		if len(codes) != 3 || codes[0] != 200 || codes[1] != 200 || codes[2] != 400 {
			t.Errorf("pipelined via %s: %v, want [200 200 400]", addr, codes)
		}
	}
	// The same inside mutual TLS (HTTP/1.1 by ALPN).
	cfg := tlsconfig.MTLSClientConfig(m.front, x509bundle.NewSet(m.ca.bundle()), tlsconfig.AuthorizeID(backendID))
	cfg.NextProtos = []string{"http/1.1"}
	tc, err := tls.Dial("tcp", m.strict, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(tc, strings.ReplaceAll(pipelined, "/public/", "/api/v1/"))
	var sb strings.Builder
	io.Copy(&sb, tc)
	var codes []int
	for _, r := range readResponses(sb.String()) {
		codes = append(codes, r.StatusCode)
	}
	if len(codes) != 3 || codes[2] != 400 || codes[0] != 200 {
		t.Errorf("pipelined over mTLS: %v, want [200 200 400]", codes)
	}
}

// TestMalformedRequests: methods Envoy's codec refuses, NUL in the path,
// header blocks over the limit, bodies over the limit, slow headers.
func TestMalformedRequests(t *testing.T) {
	// The backend's proxy has the limits; requests through the frontend's
	// proxy meet them there.
	m := newMesh(t, "", Limits{MaxBodyBytes: 1024, ReadHeaderTimeout: 300 * time.Millisecond})
	big := strings.Repeat("a", 61<<10)
	cases := []struct {
		name, req string
		status    int
	}{
		{"lowercase method", "get /public/x HTTP/1.1\r\nHost: b\r\n\r\n", 400},
		{"unknown method", "FOO /public/x HTTP/1.1\r\nHost: b\r\n\r\n", 400},
		{"NUL in the path", "GET /public/a%00b HTTP/1.1\r\nHost: b\r\n\r\n", 400},
		{"headers over 60 KiB", "GET /public/x HTTP/1.1\r\nHost: b\r\nX-Big: " + big + "\r\n\r\n", 431},
		{"headers under 60 KiB", "GET /public/x HTTP/1.1\r\nHost: b\r\nConnection: close\r\nX-Big: " + big[:50<<10] + "\r\n\r\n", 200},
		{"body over the limit", "POST /public/x HTTP/1.1\r\nHost: b\r\nConnection: close\r\nContent-Length: 2000\r\n\r\n" + strings.Repeat("b", 2000), 413},
		{"chunked body over the limit", "POST /public/x HTTP/1.1\r\nHost: b\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n" + strings.Repeat("b", 2000) + "\r\n0\r\n\r\n", 413},
		{"body under the limit", "POST /public/x HTTP/1.1\r\nHost: b\r\nConnection: close\r\nContent-Length: 10\r\n\r\n0123456789", 200},
	}
	for _, c := range cases {
		for _, addr := range []string{m.permissive, m.frontOut["backend"]} {
			req := c.req
			if addr != m.permissive {
				// Through the frontend's proxy, the frontend's paths.
				req = strings.Replace(req, "/public/", "/api/v1/", 1)
			}
			raw := rawRequest(t, addr, req)
			rs := readResponses(raw)
			if len(rs) != 1 || rs[0].StatusCode != c.status {
				if len(raw) > 300 {
					raw = raw[:300]
				}
				t.Errorf("%s via %s: got %q, want %d", c.name, addr, raw, c.status)
			}
		}
	}
	// A client that trickles its headers is cut off at ReadHeaderTimeout.
	c, err := net.Dial("tcp", m.permissive)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /public/x HTTP/1.1\r\nHost: b\r\n")
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, c)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("slow headers held the connection for %v", d)
	}
}
