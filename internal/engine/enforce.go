package engine

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/palisade-security/palisade/internal/authz"
	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/httpnorm"
	"github.com/palisade-security/palisade/internal/mtls"
	"github.com/palisade-security/palisade/internal/netpol"
)

// Inbound is the policy a proxy enforces in front of one workload: the
// layers of Check that apply to traffic arriving at it, on the hot path and
// without a trace. It is safe for concurrent use.
type Inbound struct {
	e   *Engine
	w   *Workload
	net *netpol.Endpoint
}

// Inbound returns the inbound policy of w.
func (e *Engine) Inbound(w *config.Workload) *Inbound {
	return &Inbound{e: e, w: e.Workload(w), net: e.net.Endpoint(w)}
}

// Workload is the workload the policy protects.
func (in *Inbound) Workload() *config.Workload { return in.w.Workload }

// Mode is the PeerAuthentication mode on a workload port.
func (in *Inbound) Mode(port uint16) mtls.Mode {
	m, _, _ := in.w.MTLS.ForPort(uint32(port))
	return m
}

// OpaqueTCP reports whether a Service declares the port as a non-HTTP
// protocol (tcp-*, mysql, redis, ...): such ports are proxied as TCP.
func (in *Inbound) OpaqueTCP(port uint16) bool {
	_, sp := in.e.servicePort(in.w.Workload, port)
	_, opaque := opaqueProtocol(sp)
	return opaque
}

// Conn is an inbound connection as the proxy sees it.
type Conn struct {
	Port     uint16
	Peer     string // the verified client certificate's SPIFFE ID URI; "" for plaintext
	SourceIP netip.Addr
	DestIP   netip.Addr
	SNI      string
	// Source is the client workload when it is known (by address or
	// identity); Cilium's HTTP rules select peers by workload.
	Source *config.Workload
}

// Decision is what the proxy does with a connection or a request.
type Decision struct {
	Allowed bool
	// Status is the HTTP status to answer a denied request with (400, 401,
	// 403, 503); 0 for a connection, which is reset.
	Status int
	Layer  string // as in Verdict.DecidedBy
	Policy string // "namespace/name" of the deciding policy, if any
	Rule   string // Istio's rule ID, or the network policy entry's path
	Reason string
	// Audit and DryRun report an AUDIT rule and dry-run policies that
	// matched, for the audit log; they never change the outcome.
	Audit  string
	DryRun []string
	// Claims are the request's validated JWT claims, for the access log.
	Claims authz.Claims
}

// Connection decides an inbound TCP connection on an opaque port: the
// authorization layer, with TCP semantics.
func (in *Inbound) Connection(c *Conn) Decision {
	ar := authz.Request{Peer: c.Peer, SourceIP: c.SourceIP, DestIP: c.DestIP, DestPort: c.Port, SNI: c.SNI}
	return in.authorize(&ar, false)
}

// AnyRequest decides whether some HTTP request on the connection could be
// allowed, its client choosing method, path, headers and tokens
// (authz.Set.MayAllow): the lateral-movement question. Authentication
// cannot stop such a client, which may send no token. Cilium's HTTP rules
// are not applied here.
func (in *Inbound) AnyRequest(c *Conn) Decision {
	ar := authz.Request{Peer: c.Peer, SourceIP: c.SourceIP, DestIP: c.DestIP, DestPort: c.Port, SNI: c.SNI}
	if in.w.Authz.MayAllow(&ar) {
		return Decision{Allowed: true}
	}
	return Decision{Status: 403, Layer: LayerAuthz, Reason: "no request on this connection could be allowed"}
}

// Request decides an HTTP request: the sidecar's request handling
// (method, header names, path normalization: 400), Cilium's HTTP rules
// for the connection (403), JWT authentication (401, or 403 for an
// audience) and authorization (403). headers have lowercase names and no
// pseudo-headers; rawPath is the request target as sent.
func (in *Inbound) Request(c *Conn, method, rawPath, host string, headers authz.Headers) Decision {
	if err := httpnorm.Method(method); err != nil {
		return Decision{Status: err.Status, Layer: LayerHTTP, Reason: err.Msg}
	}
	for _, h := range headers {
		if err := httpnorm.HeaderName(h.Name); err != nil {
			return Decision{Status: err.Status, Layer: LayerHTTP, Reason: err.Msg}
		}
	}
	path, full, nerr := httpnorm.Path(rawPath, in.e.pathMode)
	if nerr != nil {
		return Decision{Status: nerr.Status, Layer: LayerHTTP, Reason: nerr.Msg}
	}
	if d, ok := in.ciliumHTTP(c, method, rawPath, host, headers); !ok {
		return d
	}
	ar := authz.Request{Peer: c.Peer, SourceIP: c.SourceIP, DestIP: c.DestIP, DestPort: c.Port, SNI: c.SNI,
		HTTP: true, Method: method, Host: host, Path: path}
	ar.Headers = make(authz.Headers, 0, len(headers)+3)
	ar.Headers = append(ar.Headers, authz.Header{Name: ":authority", Value: host}, authz.Header{Name: ":method", Value: method}, authz.Header{Name: ":path", Value: full})
	ar.Headers = append(ar.Headers, headers...)
	res := in.w.JWT.Authenticate(ar.Headers, rawQuery(rawPath), in.e.opts.Now())
	if res.Status != 0 {
		return Decision{Status: res.Status, Layer: LayerAuthn, Policy: res.Source, Reason: res.Detail}
	}
	ar.Auth = res.Claims
	d := in.authorize(&ar, true)
	d.Claims = res.Claims
	return d
}

// ciliumHTTP applies the HTTP rules of Cilium policy at this workload's
// ingress for the connection's source. It reports false with the denial.
func (in *Inbound) ciliumHTTP(c *Conn, method, rawPath, host string, headers authz.Headers) (Decision, bool) {
	if in.net == nil || len(in.e.net.Policies) == 0 {
		return Decision{}, true
	}
	src := netpol.World(c.SourceIP, "")
	if c.Source != nil {
		src = in.e.net.PeerOf(c.Source)
	}
	v := in.e.net.Decide(in.net, netpol.Ingress, src, c.Port, "TCP")
	if !v.L7 {
		return Decision{}, true
	}
	entries := in.e.net.HTTPEntries(in.net, netpol.Ingress, src, c.Port, "TCP")
	hv := netpol.DecideHTTP(entries, &netpol.HTTPRequest{Method: method, Path: rawPath, Host: host, Headers: headers.Get})
	if hv.Allowed {
		return Decision{}, true
	}
	return Decision{Status: 403, Layer: LayerL7, Policy: hv.Entry.PolicyID(), Rule: hv.Entry.Path(), Reason: hv.Reason()}, false
}

func (in *Inbound) authorize(ar *authz.Request, http bool) Decision {
	d := in.w.Authz.Evaluate(ar)
	out := Decision{Allowed: d.Allowed, Layer: LayerAuthz}
	if d.Match.Policy != nil {
		out.Policy, out.Rule = d.Match.Policy.ID(), d.Match.ID()
	}
	if d.Audit.Policy != nil {
		out.Audit = d.Audit.ID()
	}
	for _, s := range []authz.Shadow{d.DryDeny, d.DryAllow} {
		if s.Present && s.Match.Policy != nil {
			out.DryRun = append(out.DryRun, s.Match.ID())
		}
	}
	if !d.Allowed {
		if http {
			out.Status = 403
		}
		out.Reason = denyReason(d)
	}
	return out
}

func denyReason(d authz.Decision) string {
	switch d.Reason {
	case authz.DeniedByRule:
		return "denied by " + d.Match.ID()
	case authz.DeniedBadCustom:
		return fmt.Sprintf("CUSTOM rule %s has no usable provider", d.Match.ID())
	case authz.DeniedByExtAuthz:
		return fmt.Sprintf("CUSTOM rule %s needs external authorizer %q", d.Match.ID(), d.Match.Policy.Provider)
	}
	return "no ALLOW rule matched"
}

// Outbound is the policy a proxy applies to traffic leaving one workload:
// its egress network policy, before connecting.
type Outbound struct {
	e   *Engine
	w   *config.Workload
	net *netpol.Endpoint
}

// Outbound returns the outbound policy of w.
func (e *Engine) Outbound(w *config.Workload) *Outbound {
	return &Outbound{e: e, w: w, net: e.net.Endpoint(w)}
}

// Connect decides whether w may open a connection to dst (a workload) or,
// when dst is nil, to addr or name outside the cluster: w's egress network
// policy and then, for a workload, dst's ingress network policy, as the
// network between them would. (Enforcing ingress at dst's node is the
// kernel layer's job; a proxy that knows both ends gives the same verdict
// before any packet leaves.)
func (o *Outbound) Connect(dst *config.Workload, addr netip.Addr, name string, port uint16) Decision {
	peer := netpol.World(addr, strings.ToLower(name))
	if dst != nil {
		peer = o.e.net.PeerOf(dst)
	}
	v := o.e.net.Decide(o.net, netpol.Egress, peer, port, "TCP")
	if !v.Allowed {
		_, policy, path := v.Policy()
		return Decision{Layer: LayerNetworkEgress, Policy: policy, Rule: path, Reason: v.Reason()}
	}
	if dst == nil {
		return Decision{Allowed: true, Layer: LayerNetworkEgress}
	}
	v = o.e.net.Decide(o.e.net.Endpoint(dst), netpol.Ingress, o.net.Peer, port, "TCP")
	if !v.Allowed {
		_, policy, path := v.Policy()
		return Decision{Layer: LayerNetworkIngress, Policy: policy, Rule: path, Reason: v.Reason()}
	}
	return Decision{Allowed: true, Layer: LayerNetworkIngress}
}
