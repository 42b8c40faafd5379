package proxy

import (
	"net"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/palisade-security/palisade/internal/engine"
)

// HTTP/1.1 upgrades, as an Istio sidecar's Envoy handles them.
//
// A request is an upgrade when its Connection header has the "upgrade"
// token and it has an Upgrade header (Envoy's Http::Utility::isUpgrade).
// Istio configures the "websocket" upgrade type on every sidecar HTTP
// connection manager; Envoy answers an upgrade of any other type with 403
// and response code details upgrade_failed, before any HTTP filter runs
// (docs: arch_overview/http/upgrades). "h2c" is the exception: Envoy's
// codec strips an h2c upgrade and serves the request as HTTP/1.1.
//
// A WebSocket upgrade is authorized like any request (its method, path and
// headers). When the upstream answers 101 Switching Protocols, the 101 goes
// to the client and the two connections become a tunnel until either side
// closes; the request is reported once, at the end, with code 101 and the
// bytes of the whole tunnel, as Envoy's access log does.

// upgradeOf returns the upgrade a request asks for, lower-cased: "" for
// none (or h2c, which is stripped). A request with a body is not taken as
// an upgrade (a WebSocket handshake has none): its body and the tunnel's
// bytes would follow each other on the connection with nothing to tell
// where one ends.
func upgradeOf(r *http.Request) string {
	up := r.Header["Upgrade"]
	if len(up) == 0 || !httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade") || r.ContentLength != 0 {
		return ""
	}
	if kind := strings.ToLower(strings.TrimSpace(up[0])); kind != "h2c" {
		return kind
	}
	return ""
}

// refuseUpgrade answers an upgrade Istio does not configure.
func (p *Proxy) refuseUpgrade(w http.ResponseWriter, rs *reqState, kind string) {
	rs.dec = engine.Decision{Status: http.StatusForbidden, Layer: engine.LayerHTTP,
		Reason: "upgrade to " + kind + " is not allowed: Istio's sidecars allow websocket only"}
	rs.code, rs.details = http.StatusForbidden, "upgrade_failed"
	rs.respBytes = localReply(w, rs.code, "", false)
}

// keepUpgrade puts back the headers of a WebSocket upgrade after the
// hop-by-hop headers were removed: they are what asks the upstream to
// switch.
func keepUpgrade(h http.Header, kind string) {
	if kind == "websocket" {
		h["Connection"] = []string{"Upgrade"}
		h["Upgrade"] = []string{kind}
	}
}

// tunnel completes an upgrade the upstream accepted: the 101 goes to the
// client, then bytes flow both ways until either side ends.
func (p *Proxy) tunnel(w http.ResponseWriter, rs *reqState, c *cluster) {
	res := &rs.res
	hw, ok := w.(*h1Response)
	if !ok || rs.upgrade == "" {
		// A 101 the client did not ask for (or on HTTP/2, which has no
		// such upgrade): the upstream cannot be followed.
		c.done(res, false)
		rs.code, rs.flags, rs.details = http.StatusBadGateway, "UPE", "upstream_protocol_error"
		rs.respBytes = localReply(w, rs.code, "upstream answered 101 to a request that asked for no upgrade", true)
		return
	}
	resp := res.resp
	rs.code, rs.details = http.StatusSwitchingProtocols, "via_upstream"
	h := hw.header
	for k, vv := range resp.Header {
		if k != "Keep-Alive" && k != "Transfer-Encoding" && k != "Content-Length" {
			h[k] = vv
		}
	}
	down, err := hw.hijack()
	if err != nil {
		c.done(res, false)
		return
	}
	pc := res.pc
	up := net.Conn(pc.c)
	if n := pc.br.Buffered(); n > 0 {
		b, _ := pc.br.Peek(n)
		up = &prefixConn{Conn: up, prefix: append([]byte(nil), b...)}
	}
	received, sent := pipe(down, up, nil)
	rs.body.n += received
	rs.respBytes += sent
	c.done(res, false) // the upstream connection ends with the tunnel
}

// prefixConn is a connection whose first reads return bytes already
// read from it into a buffer.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}
