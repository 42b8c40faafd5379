package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serveTunnelEcho accepts a WebSocket upgrade and echoes the bytes that
// follow, upper-cased (the proxy does not look inside the tunnel, so no
// WebSocket framing is needed to test it).
func serveTunnelEcho(w http.ResponseWriter, r *http.Request) {
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: test\r\n\r\n")
	brw.Flush()
	buf := make([]byte, 1024)
	for {
		n, err := brw.Read(buf)
		if n > 0 {
			c.Write([]byte(strings.ToUpper(string(buf[:n]))))
		}
		if err != nil {
			return
		}
	}
}

const wsRequest = "GET /api/v1/ws HTTP/1.1\r\nHost: backend\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

// TestWebSocketUpgrade: a WebSocket upgrade through both proxies
// (outbound listener, mTLS, STRICT inbound port) becomes a tunnel, with
// the bytes the client sends right after the request included; the
// request is authorized as any other and reported once with code 101.
func TestWebSocketUpgrade(t *testing.T) {
	m := newMesh(t, "", Limits{})
	c, err := net.Dial("tcp", m.frontOut["backend"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	// "early" arrives with the request, before the 101.
	io.WriteString(c, wsRequest+"early ")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "websocket" || resp.Header.Get("Sec-Websocket-Accept") != "test" {
		t.Fatalf("response: %d %v", resp.StatusCode, resp.Header)
	}
	io.WriteString(c, "late")
	got := make([]byte, len("EARLY LATE"))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "EARLY LATE" {
		t.Fatalf("through the tunnel: %q, %v", got, err)
	}
	// Closing our side ends the tunnel on both hops.
	c.(*net.TCPConn).CloseWrite()
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("after the client's end: %q, %v", rest, err)
	}
	lines := m.access.eventually(2, `"response_code":101`)
	if len(lines) < 2 {
		t.Fatalf("access log lines with 101 (one per proxy): %v", lines)
	}
	for _, l := range lines {
		if !strings.Contains(l, `"path":"/api/v1/ws"`) {
			t.Errorf("access log: %s", l)
		}
	}
}

// TestUpgradeRefused: an upgrade Istio does not configure is refused
// with 403 upgrade_failed before the application sees it; a WebSocket
// upgrade to a path the policy denies is refused by authorization; an
// h2c upgrade is served as plain HTTP/1.1 with its upgrade headers
// stripped, as Envoy's codec does.
func TestUpgradeRefused(t *testing.T) {
	m := newMesh(t, "", Limits{})
	cases := []struct {
		name, req string
		status    int
		appSees   bool
	}{
		{"unknown upgrade", strings.Replace(wsRequest, "Upgrade: websocket", "Upgrade: spdy/3", 1), 403, false},
		{"websocket to a denied path", strings.Replace(wsRequest, "/api/v1/ws", "/admin/ws", 1), 403, false},
		{"h2c", strings.Replace(wsRequest, "Upgrade: websocket", "Upgrade: h2c", 1) + "", 200, true},
		{"Upgrade without Connection: upgrade", strings.Replace(wsRequest, "Connection: Upgrade\r\n", "", 1), 200, true},
		// A handshake has no body: with one, the request is plain HTTP.
		{"websocket with a body", strings.Replace(wsRequest, "\r\n\r\n", "\r\nTransfer-Encoding: chunked\r\n\r\n", 1) + "5\r\nworld\r\n0\r\n\r\n", 200, true},
	}
	for _, c := range cases {
		before := m.app.requests.Load()
		raw := rawRequest(t, m.frontOut["backend"], strings.Replace(c.req, "\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1))
		rs := readResponses(raw)
		if len(rs) != 1 || rs[0].StatusCode != c.status {
			t.Errorf("%s: %q, want %d", c.name, raw, c.status)
			continue
		}
		if seen := m.app.requests.Load() > before; seen != c.appSees {
			t.Errorf("%s: the application saw the request: %v", c.name, seen)
		}
		if c.appSees {
			if last := m.app.last.Load(); last.Header.Get("Upgrade") != "" {
				t.Errorf("%s: Upgrade forwarded: %v", c.name, last.Header)
			}
		}
	}
	if lines := m.access.lines(`"response_code_details":"upgrade_failed"`); len(lines) != 1 {
		t.Errorf("upgrade_failed in the access log: %v", lines)
	}
}
