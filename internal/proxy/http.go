package proxy

import (
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/palisade-security/palisade/internal/authz"
	"github.com/palisade-security/palisade/internal/engine"
	"github.com/palisade-security/palisade/internal/telemetry"
)

// reqState is the per-request working memory of an HTTP handler, pooled
// so that an allowed request allocates little.
type reqState struct {
	headers  authz.Headers
	hdrBytes int64
	body     countReader
	q        outReq
	res      result
	labels   telemetry.Labels
	entry    telemetry.AccessEntry
	flow     telemetry.Flow
	httpFlow telemetry.HTTPFlow
	audit    telemetry.AuditEntry

	start      time.Time
	dec        engine.Decision
	code       int
	flags      string
	details    string
	path       string
	respBytes  int64
	upstream   string
	cluster    string
	ingress    bool
	grpcStatus string
	upgrade    string // the upgrade the request asks for (upgradeOf)
}

var reqPool = sync.Pool{New: func() any { return &reqState{headers: make(authz.Headers, 0, 16)} }}

func getReqState() *reqState {
	rs := reqPool.Get().(*reqState)
	rs.start = time.Now()
	return rs
}

func putReqState(rs *reqState) {
	hs := rs.headers[:0]
	if cap(hs) > 256 {
		hs = nil
	}
	clear(rs.headers[:cap(rs.headers)])
	*rs = reqState{headers: hs}
	reqPool.Put(rs)
}

// countReader counts the request body bytes read, and records when the
// body has ended (read to its end or failed), which another goroutine may
// ask (outReq.abortBody).
type countReader struct {
	r     io.Reader
	n     int64
	ended atomic.Bool
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	if err != nil {
		c.ended.Store(true)
	}
	return n, err
}

// lowerNames maps the canonical form net/http gives common header names
// to the lowercase form the engine matches on, so the common headers
// cost no allocation.
var lowerNames = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{
		"accept", "accept-encoding", "accept-language", "authorization", "cache-control", "connection",
		"content-length", "content-type", "cookie", "origin", "pragma", "referer", "user-agent",
		"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id", "x-forwarded-client-cert",
		"x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "traceparent", "tracestate",
		"grpc-timeout", "te", "if-none-match", "if-modified-since", "range", "x-api-key", "x-tenant",
		"x-envoy-attempt-count", "baggage", "x-real-ip", "upgrade", "expect",
	} {
		m[http.CanonicalHeaderKey(n)] = n
	}
	return m
}()

func lowerName(k string) string {
	if l, ok := lowerNames[k]; ok {
		return l
	}
	return strings.ToLower(k)
}

// collect lists the request's headers for the engine, with lowercase
// names, and estimates the size of the request head for the metrics
// (istio_request_bytes counts wire bytes, headers included).
func (rs *reqState) collect(r *http.Request) {
	hs := rs.headers[:0]
	size := int64(len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4 + len("Host: ") + len(r.Host) + 4)
	for k, vs := range r.Header {
		name := lowerName(k)
		for _, v := range vs {
			hs = append(hs, authz.Header{Name: name, Value: v})
			size += int64(len(k) + len(v) + 4)
		}
	}
	rs.headers, rs.hdrBytes = hs, size
}

// requestTarget is the request target as the engine judges it: origin
// form as sent. An absolute-form target (GET http://host/path) is
// reduced to its path, as Envoy's HTTP/1 codec does (allow_absolute_url).
func requestTarget(r *http.Request) string {
	t := r.RequestURI
	if t == "" || t[0] == '/' || t == "*" {
		return t
	}
	if i := strings.Index(t, "://"); i >= 0 {
		rest := t[i+3:]
		if j := strings.IndexAny(rest, "/?"); j >= 0 {
			if rest[j] == '?' {
				return "/" + rest[j:]
			}
			return rest[j:]
		}
		return "/"
	}
	return t
}

// hopByHop are the headers that describe one connection and are not
// forwarded (RFC 9110 §7.6.1; the list net/http/httputil uses).
// Expect is answered by the proxy's own server.
func removeHopByHop(h http.Header) {
	// "TE: trailers" is passed on, as Envoy does: gRPC servers ask for it.
	trailers := httpguts.HeaderValuesContainsToken(h["Te"], "trailers")
	defer func() {
		if trailers {
			h["Te"] = teTrailers
		}
	}()
	for _, v := range h["Connection"] {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				delete(h, http.CanonicalHeaderKey(f))
			}
		}
	}
	for _, k := range [...]string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Expect"} {
		delete(h, k)
	}
}

func isHopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

var (
	teTrailers = []string{"trailers"}
	textPlain  = []string{"text/plain"}
	connClose  = []string{"close"}
)

// localReply answers the request from the proxy, as Envoy's local replies
// do: text/plain, with the connection closed after a malformed request.
func localReply(w http.ResponseWriter, status int, body string, close bool) int64 {
	h := w.Header()
	h["Content-Type"] = textPlain
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	if close {
		h["Connection"] = connClose
	}
	w.WriteHeader(status)
	io.WriteString(w, body)
	return int64(len(body) + 64)
}

// copyResponse forwards an upstream response. It reports the bytes sent,
// whether the upstream body was read to its end, and whether the
// upstream (not the client) failed mid-body.
func copyResponse(w http.ResponseWriter, resp *http.Response) (n int64, eof, upstreamFailed bool) {
	h := w.Header()
	n = 15
	for k, vv := range resp.Header {
		if isHopByHop(k) {
			continue
		}
		h[k] = vv
		for _, v := range vv {
			n += int64(len(k) + len(v) + 4)
		}
	}
	for k := range resp.Trailer {
		h.Add("Trailer", k)
	}
	w.WriteHeader(resp.StatusCode)
	flusher, _ := w.(http.Flusher)
	stream := resp.ContentLength < 0 && flusher != nil
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	for {
		nr, rerr := resp.Body.Read(buf)
		if nr > 0 {
			nw, werr := w.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, false, false
			}
			if stream {
				flusher.Flush()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return n, false, true
		}
	}
	for k, vv := range resp.Trailer {
		// With the prefix, a trailer the response did not announce (gRPC
		// announces none) is still sent as one over HTTP/2.
		h[http.TrailerPrefix+k] = vv
	}
	return n, true, false
}

// newRequestID is a random (version 4) UUID for x-request-id, which
// Envoy generates when a request has none.
func newRequestID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	j := 0
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s[j] = '-'
			j++
		}
		s[j], s[j+1] = hexDigit[c>>4], hexDigit[c&0xf]
		j += 2
	}
	return string(s[:])
}

const hexDigit = "0123456789abcdef"

var (
	httpsProto = []string{"https"}
	httpProto  = []string{"http"}
)

// isGRPC reports whether a request is gRPC (content-type application/grpc),
// which Istio labels request_protocol="grpc".
func isGRPC(r *http.Request) bool {
	ct := r.Header["Content-Type"]
	return len(ct) > 0 && strings.HasPrefix(ct[0], "application/grpc")
}

// denyReply answers a request the engine denied, with Envoy's status,
// body and response code details for the deciding layer.
func denyReply(w http.ResponseWriter, r *http.Request, dec *engine.Decision) (details string, n int64) {
	switch {
	case dec.Layer == engine.LayerAuthz:
		// Envoy's HTTP RBAC filter: 403 "RBAC: access denied", details
		// rbac_access_denied_matched_policy[<policy>] or [none].
		id := dec.Rule
		if id == "" {
			id = "none"
		}
		return "rbac_access_denied_matched_policy[" + id + "]", localReply(w, http.StatusForbidden, "RBAC: access denied", false)
	case dec.Layer == engine.LayerAuthn:
		// Envoy's jwt_authn filter: the status message is the body, and
		// a 401 says how to authenticate.
		if dec.Status == http.StatusUnauthorized {
			w.Header()["Www-Authenticate"] = []string{`Bearer realm="http://` + r.Host + r.URL.Path + `", error="invalid_token"`}
		}
		return "jwt_authn_access_denied{" + strings.ReplaceAll(dec.Reason, " ", "_") + "}", localReply(w, dec.Status, dec.Reason, false)
	case dec.Layer == engine.LayerL7:
		// Cilium's Envoy answers a request its HTTP rules deny with 403
		// "Access denied".
		return "cilium_l7_access_denied", localReply(w, http.StatusForbidden, "Access denied\r\n", false)
	case dec.Layer == engine.LayerHTTP:
		// Requests Envoy's codec or path normalization refuse: the
		// connection is closed after the reply.
		status := dec.Status
		if status == 0 {
			status = http.StatusBadRequest
		}
		return "http_request_rejected", localReply(w, status, dec.Reason, true)
	}
	status := dec.Status
	if status == 0 {
		status = http.StatusForbidden
	}
	return "access_denied", localReply(w, status, "Access denied\r\n", false)
}

// verdictOf maps a decision to Hubble's vocabulary: an explicit deny rule
// is POLICY_DENY, any other denial the default deny POLICY_DENIED; an
// allowed flow that an AUDIT rule or a dry-run policy matched is AUDIT.
func verdictOf(dec *engine.Decision) (verdict, dropReason string) {
	switch {
	case !dec.Allowed:
		explicit := (dec.Layer == engine.LayerAuthz && strings.HasPrefix(dec.Reason, "denied by ")) ||
			((dec.Layer == engine.LayerNetworkEgress || dec.Layer == engine.LayerNetworkIngress) && dec.Policy != "")
		if explicit {
			return telemetry.Dropped, telemetry.DropPolicyDeny
		}
		return telemetry.Dropped, telemetry.DropPolicyDenied
	case dec.Audit != "" || len(dec.DryRun) > 0:
		return telemetry.Audit, ""
	}
	return telemetry.Forwarded, ""
}

// matchOf is Hubble's match label for a decision: l7/http for the
// layers that judge a request, l3-l4 for a network policy entry that
// decided a connection, none when no policy did (default allow or deny).
func matchOf(dec *engine.Decision) string {
	switch dec.Layer {
	case engine.LayerNetworkEgress, engine.LayerNetworkIngress, engine.LayerMTLS:
		if dec.Policy != "" {
			return telemetry.MatchL3L4
		}
		return telemetry.MatchNone
	}
	return telemetry.MatchL7HTTP
}

// upstreamAddr is where an outbound flow went: the endpoint's address when
// it is an IP address, else just the destination port.
func upstreamAddr(upstream string, dest *destination) (netip.Addr, uint16) {
	if ap, err := netip.ParseAddrPort(upstream); err == nil {
		return ap.Addr(), ap.Port()
	}
	if dest != nil {
		return netip.Addr{}, dest.port
	}
	return netip.Addr{}, 0
}

// policyRef names the deciding policy for a flow.
func (v *view) policyRef(dec *engine.Decision) *telemetry.PolicyRef {
	if dec.Policy == "" {
		return nil
	}
	ref := &telemetry.PolicyRef{Name: dec.Policy}
	if ns, name, ok := strings.Cut(dec.Policy, "/"); ok {
		ref.Namespace, ref.Name = ns, name
	}
	switch dec.Layer {
	case engine.LayerAuthz:
		ref.Kind = "AuthorizationPolicy"
	case engine.LayerAuthn:
		ref.Kind = "RequestAuthentication"
	default:
		ref.Kind = v.netpolKind[dec.Policy]
	}
	return ref
}

// emitHTTP reports one request: metrics, the Hubble verdict, and the
// flow, access and audit logs.
func (p *Proxy) emitHTTP(rs *reqState, cv *connView, d *downstream, r *http.Request) {
	dur := time.Since(rs.start)
	l := &rs.labels
	*l = cv.labels
	l.ResponseCode = telemetry.StatusCode(rs.code)
	l.ResponseFlags = rs.flags
	if isGRPC(r) {
		l.RequestProtocol = "grpc"
		l.GRPCResponseStatus = rs.grpcStatus
	}
	if l.DestinationService == "" {
		// istio_stats.cc falls back to the Host header.
		l.DestinationService = r.Host
	}
	reqBytes := rs.hdrBytes + rs.body.n
	p.metrics.RecordRequest(l, float64(dur)/float64(time.Millisecond), reqBytes, rs.respBytes)
	verdict, drop := verdictOf(&rs.dec)
	dir := telemetry.Egress
	if rs.ingress {
		dir = telemetry.Ingress
	}
	p.metrics.RecordVerdict(verdict, dir, matchOf(&rs.dec))

	if p.flows != nil {
		f := &rs.flow
		*f = telemetry.Flow{
			Time: rs.start, Verdict: verdict, DropReason: drop, Ingress: rs.ingress,
			SourceIP: d.remote.Addr(), SourcePort: d.remote.Port(),
			DestinationIP: d.local.Addr(), DestinationPort: d.local.Port(),
			Source: cv.src, Destination: cv.dst,
			Policy: cv.v.policyRef(&rs.dec), Layer: rs.dec.Layer, Rule: rs.dec.Rule, Reason: rs.dec.Reason,
			Audit: rs.dec.Audit, DryRun: rs.dec.DryRun, NodeName: p.cfg.NodeName,
		}
		if d.in != nil {
			f.DestinationPort = d.in.cfg.Port
		} else {
			f.DestinationIP, f.DestinationPort = upstreamAddr(rs.upstream, cv.dest)
		}
		rs.httpFlow = telemetry.HTTPFlow{Code: rs.code, Method: r.Method, URL: rs.path, Protocol: r.Proto}
		f.HTTP = &rs.httpFlow
		p.flows.Log(f)
	}
	if p.access != nil {
		e := &rs.entry
		*e = telemetry.AccessEntry{
			StartTime: rs.start, Method: r.Method, Path: rs.path, Protocol: protoName(r),
			ResponseCode: rs.code, ResponseFlags: rs.flags, ResponseCodeDetails: rs.details,
			BytesReceived: reqBytes, BytesSent: rs.respBytes, Duration: dur,
			UpstreamServiceTime: rs.res.serviceTime,
			ForwardedFor:        r.Header.Get("X-Forwarded-For"), UserAgent: r.UserAgent(),
			RequestID: r.Header.Get("X-Request-Id"), Authority: r.Host,
			UpstreamHost: rs.upstream, UpstreamCluster: rs.cluster,
			DownstreamLocalAddress: d.local.String(), DownstreamRemoteAddress: d.remote.String(),
			RequestedServerName: d.sni, UpstreamTransportFailure: rs.res.transportFailure,
			Reporter: cv.labels.Reporter, DownstreamPeerPrincipal: d.peer,
			PolicyAllowed: rs.dec.Allowed, PolicyLayer: rs.dec.Layer, Policy: rs.dec.Policy, Rule: rs.dec.Rule,
			PolicyReason: rs.dec.Reason, AuditRule: rs.dec.Audit, DryRun: rs.dec.DryRun,
		}
		if cv.dest != nil && cv.dest.s != nil {
			e.UpstreamPeerPrincipal = cv.dest.s.expectedID
		}
		if iss, ok := rs.dec.Claims["iss"].(string); ok {
			sub, _ := rs.dec.Claims["sub"].(string)
			e.RequestPrincipal = iss + "/" + sub
		}
		p.access.Log(e)
	}
	if p.audit != nil && (rs.dec.Audit != "" || len(rs.dec.DryRun) > 0) {
		a := &rs.audit
		*a = telemetry.AuditEntry{
			Time: rs.start, SourcePrincipal: cv.conn.Peer, SourceIP: d.remote.Addr().String(),
			Destination: cv.v.self.Key(), Port: cv.conn.Port, Method: r.Method, Path: rs.path, Host: r.Host,
			Allowed: rs.dec.Allowed, Layer: rs.dec.Layer, Policy: rs.dec.Policy, Rule: rs.dec.Rule,
			AuditRule: rs.dec.Audit, DryRun: rs.dec.DryRun, Direction: "inbound",
		}
		if !rs.ingress {
			a.Direction, a.SourcePrincipal = "outbound", cv.v.selfID
			a.Destination = cv.labels.Destination.Namespace + "/" + cv.labels.Destination.Workload
		}
		p.audit.Log(a) // reported through the log's writer
	}
}

func protoName(r *http.Request) string {
	if r.ProtoMajor == 2 {
		return "HTTP/2"
	}
	return r.Proto
}
