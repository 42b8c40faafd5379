package engine

import (
	"fmt"
	"net/netip"
	"strings"

	networkingv1alpha3 "istio.io/api/networking/v1alpha3"

	"github.com/palisade-security/palisade/internal/authz"
	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/httpnorm"
	"github.com/palisade-security/palisade/internal/mtls"
	"github.com/palisade-security/palisade/internal/trafficpolicy"
)

// Request is a connection, and optionally an HTTP request on it, to check.
type Request struct {
	From   *config.Workload // nil for a client outside the mesh
	FromIP netip.Addr       // the client's address; defaults to From's pod IP
	To     *config.Workload
	Port   uint16     // workload (container) port; 0 means To's first port
	DestIP netip.Addr // defaults to To's pod IP
	// Plaintext makes an in-mesh client connect without mTLS, as a client
	// without a sidecar would.
	Plaintext bool
	HTTP      *HTTPRequest // nil for a TCP connection

	// ToIP and ToFQDN name a destination outside the cluster, when To is
	// nil: an address, or a DNS name with the address the DNS proxy would
	// have learned for it (ToIP, optional).
	ToIP   netip.Addr
	ToFQDN string
	// FromEntity and ToEntity name one of Cilium's reserved identities
	// (host, remote-node, kube-apiserver, health, ingress, world) as the
	// client or the destination, in place of From or To.
	FromEntity, ToEntity string
	// Transport is TCP (the default), UDP or SCTP.
	Transport string
}

// HTTPRequest is an HTTP request as the client sends it.
type HTTPRequest struct {
	Method  string
	Path    string // may carry a query string
	Host    string // defaults to the destination service's name
	Headers []authz.Header
}

// Layers a verdict can be decided by.
const (
	LayerNetworkEgress  = "network-egress"
	LayerNetworkIngress = "network-ingress"
	LayerL7             = "l7"
	LayerMTLS           = "mtls"
	LayerHTTP           = "http"
	LayerAuthn          = "authn"
	LayerAuthz          = "authz"
)

// Verdict is the outcome of a check, with the trace that explains it.
type Verdict struct {
	Allowed bool `json:"allowed"`
	// Status is the HTTP status the client sees: 200, 400, 401, 403 or
	// 404; 0 for a TCP connection or a refused one.
	Status    int       `json:"status"`
	DecidedBy DecidedBy `json:"decidedBy"`
	Request   Summary   `json:"request"`
	Trace     []Step    `json:"trace"`
	Warnings  []string  `json:"warnings,omitempty"`
	// LeftOut lists input that is not in effect: documents that do not
	// decode and resources istiod would reject.
	LeftOut []LeftOut `json:"leftOut,omitempty"`
	DryRun  []DryRun  `json:"dryRun,omitempty"`
	Audit   *RuleRef  `json:"audit,omitempty"`
	Traffic *Traffic  `json:"destinationRule,omitempty"`
}

// DecidedBy names what decided a verdict.
type DecidedBy struct {
	Layer  string `json:"layer"`
	Kind   string `json:"kind,omitempty"`   // e.g. AuthorizationPolicy
	Policy string `json:"policy,omitempty"` // namespace/name
	Action string `json:"action,omitempty"` // ALLOW, DENY, CUSTOM
	Rule   *int   `json:"rule,omitempty"`
	RuleID string `json:"ruleId,omitempty"` // Istio's ns[..]-policy[..]-rule[..]
	Reason string `json:"reason"`
}

// LeftOut is input a verdict ignores, and why.
type LeftOut struct {
	Object string `json:"object"` // "Kind namespace/name", or "" when the document did not parse
	Where  string `json:"where"`  // file:line (document N)
	Reason string `json:"reason"`
}

// RuleRef names a rule.
type RuleRef struct {
	Policy string `json:"policy"`
	Rule   int    `json:"rule"`
	RuleID string `json:"ruleId"`
}

// DryRun is what the dry-run policies of one action would have decided.
type DryRun struct {
	Action  string   `json:"action"`
	Allowed bool     `json:"allowed"`
	Rule    *RuleRef `json:"rule,omitempty"`
}

// Summary is the request as the engine saw it, after defaults.
type Summary struct {
	From     string `json:"from"`
	Identity string `json:"identity,omitempty"`
	SourceIP string `json:"sourceIP,omitempty"`
	To       string `json:"to"`
	DestIP   string `json:"destinationIP,omitempty"`
	Port     uint16 `json:"port"`
	Protocol string `json:"protocol"` // "http" or "tcp"
	MTLS     bool   `json:"mtls"`
	Method   string `json:"method,omitempty"`
	Path     string `json:"path,omitempty"`
	Host     string `json:"host,omitempty"`
}

// Traffic is the DestinationRule the client applies to the destination.
type Traffic struct {
	Host    string `json:"host"`
	Rule    string `json:"rule,omitempty"`
	TLSMode string `json:"tlsMode"`
}

// Step is one stage of the decision, in plain words.
type Step struct {
	Layer  string `json:"layer"`
	Result string `json:"result"` // "pass", "deny" or "info"
	Detail string `json:"detail"`
}

// Check decides a request and explains the decision, layer by layer in
// the order a packet meets them: the client's egress network policy, the
// server's ingress network policy, Cilium's HTTP rules, the server
// sidecar's mTLS, HTTP handling, JWT authentication and authorization. It
// returns an error only for a request that cannot be checked, such as a
// destination without ports and no port given.
func (e *Engine) Check(req Request) (*Verdict, error) {
	if req.To == nil && !req.ToIP.IsValid() && req.ToFQDN == "" && req.ToEntity == "" {
		return nil, fmt.Errorf("no destination")
	}
	transport := req.Transport
	if transport == "" {
		transport = "TCP"
	}
	v := &Verdict{}
	port := req.Port
	if port == 0 {
		if req.To == nil || len(req.To.Ports) == 0 {
			return nil, fmt.Errorf("the destination declares no container ports; give --port")
		}
		port = req.To.Ports[0].Port
	}
	var svc *config.Service
	var sp *config.ServicePort
	if req.To != nil {
		svc, sp = e.servicePort(req.To, port)
	}
	proto := "tcp"
	if req.HTTP != nil {
		proto = "http"
		if name, opaque := opaqueProtocol(sp); opaque {
			proto = "tcp"
			v.Warnings = append(v.Warnings, fmt.Sprintf("Service %s/%s declares port %d as %s, so the sidecar proxies it as TCP: HTTP attributes are not seen", svc.Namespace, svc.Name, sp.Port, name))
		}
	}
	if transport != "TCP" {
		proto = strings.ToLower(transport)
	}
	v.Request = Summary{Port: port, Protocol: proto}
	if req.HTTP != nil {
		v.Request.Method, v.Request.Path, v.Request.Host = req.HTTP.Method, req.HTTP.Path, e.httpHost(req)
		if req.HTTP.Host == "" {
			v.Warnings = append(v.Warnings, "no --host given: using "+v.Request.Host)
		}
	}

	// Addresses.
	ar := authz.Request{DestPort: port, DestIP: req.DestIP}
	switch {
	case req.To != nil:
		v.Request.To = req.To.Key()
		if !ar.DestIP.IsValid() && len(req.To.IPs) > 0 {
			ar.DestIP = req.To.IPs[0]
		}
	case req.ToFQDN != "":
		v.Request.To = "fqdn:" + req.ToFQDN
		ar.DestIP = req.ToIP
	case req.ToEntity != "":
		v.Request.To = "entity:" + req.ToEntity
		ar.DestIP = req.ToIP
	default:
		v.Request.To = "ip:" + req.ToIP.String()
		ar.DestIP = req.ToIP
	}
	ar.SourceIP = req.FromIP
	if req.From != nil {
		v.Request.From = req.From.Key()
		if !ar.SourceIP.IsValid() && len(req.From.IPs) > 0 {
			ar.SourceIP = req.From.IPs[0]
		}
	} else if req.FromEntity != "" {
		v.Request.From = "entity:" + req.FromEntity
	} else {
		v.Request.From = "ip:" + req.FromIP.String()
	}
	if ar.SourceIP.IsValid() {
		v.Request.SourceIP = ar.SourceIP.String()
	}
	if ar.DestIP.IsValid() {
		v.Request.DestIP = ar.DestIP.String()
	}

	// Whether the client's sidecar speaks mTLS decides what Cilium's L7
	// proxy can see, so it is settled before the network layers.
	var dst *Workload
	var mode mtls.Mode
	var level mtls.Level
	var from *mtls.Source
	mtlsOn, why := false, "the destination is outside the cluster: no server sidecar"
	if req.To != nil && transport == "TCP" {
		dst = e.Workload(req.To)
		mode, level, from = dst.MTLS.ForPort(uint32(port))
		mtlsOn, why = e.clientTLS(req, mode, svc, sp, v)
	}
	v.Request.MTLS = mtlsOn

	// Layers: network policy at layer 3/4, then Cilium's HTTP rules.
	if !e.checkNetwork(req, ar, port, transport, mtlsOn, v) {
		return v, nil
	}
	if dst == nil {
		if transport != "TCP" {
			v.step(LayerMTLS, "info", fmt.Sprintf("%s is not captured by Istio's sidecars: only network policy applies", transport))
		}
		v.Allowed = true
		if proto == "http" {
			v.Status = 200
		}
		if v.DecidedBy.Layer == "" {
			v.DecidedBy = DecidedBy{Layer: LayerNetworkEgress, Reason: "network policy allows the connection; there is no Istio sidecar at the destination"}
		}
		return v, nil
	}

	// Layer: mutual TLS.
	modeText := fmt.Sprintf("PeerAuthentication mode %s on port %d (%s)", mode, port, describeMTLSSource(level, from))
	if !mode.Accepts(mtlsOn) {
		v.deny(0, DecidedBy{Layer: LayerMTLS, Kind: "PeerAuthentication", Policy: sourceName(from), Reason: "plaintext connection refused under STRICT mTLS"})
		v.step(LayerMTLS, "deny", fmt.Sprintf("%s; the client connects in plaintext (%s), which a STRICT sidecar refuses", modeText, why))
		return v, nil
	}
	if mtlsOn {
		ar.Peer = e.Identity(req.From)
		v.Request.Identity = ar.Peer
		if sp != nil {
			ar.SNI = serviceSNI(svc, sp)
		}
		v.step(LayerMTLS, "pass", fmt.Sprintf("%s; mutual TLS, peer identity %s", modeText, ar.Peer))
	} else {
		v.step(LayerMTLS, "pass", fmt.Sprintf("%s; plaintext (%s): no peer identity, so principals and namespaces match nothing", modeText, why))
	}

	// Layer: HTTP handling and request authentication.
	if proto == "http" {
		if !e.prepareHTTP(req, svc, &ar, v) {
			return v, nil
		}
		res := dst.JWT.Authenticate(ar.Headers, rawQuery(req.HTTP.Path), e.opts.Now())
		switch {
		case res.Status != 0:
			v.deny(res.Status, DecidedBy{Layer: LayerAuthn, Kind: "RequestAuthentication", Policy: res.Source, Reason: res.Detail})
			v.step(LayerAuthn, "deny", fmt.Sprintf("JWT rejected with %d: %s (issuer %q, %s)", res.Status, res.Detail, res.Issuer, res.Source))
			return v, nil
		case res.Claims != nil:
			ar.Auth = res.Claims
			v.step(LayerAuthn, "pass", fmt.Sprintf("JWT from %s accepted (issuer %q, %s): request.auth.* attributes are set", res.Token, res.Issuer, res.Source))
		case len(dst.JWTSources) > 0:
			v.step(LayerAuthn, "pass", fmt.Sprintf("no JWT at a location the RequestAuthentications (%s) read: the request is anonymous", strings.Join(dst.JWTSources, ", ")))
		}
	}

	// Layer: authorization.
	for _, p := range e.rejectedPolicies {
		if p.Selects(req.To, e.root) {
			v.step(LayerAuthz, "info", fmt.Sprintf("AuthorizationPolicy %s (%s) would select %s, but istiod rejects it, so it is not in effect", p.ID(), p.Source, req.To.Key()))
		}
	}
	d := dst.Authz.Evaluate(&ar)
	e.explainAuthz(d, dst, proto, v)
	return v, nil
}

func (v *Verdict) deny(status int, by DecidedBy) {
	v.Allowed, v.Status, v.DecidedBy = false, status, by
}

func (v *Verdict) step(layer, result, detail string) {
	v.Trace = append(v.Trace, Step{Layer: layer, Result: result, Detail: detail})
}

func describeMTLSSource(level mtls.Level, from *mtls.Source) string {
	if from == nil {
		return "no PeerAuthentication sets a mode: Istio's default"
	}
	return fmt.Sprintf("from %s/%s, %s level", from.Namespace, from.Name, level)
}

func sourceName(s *mtls.Source) string {
	if s == nil {
		return ""
	}
	return s.Namespace + "/" + s.Name
}

// clientTLS decides whether the client's connection is mutual TLS with an
// Istio identity, and says why.
func (e *Engine) clientTLS(req Request, mode mtls.Mode, svc *config.Service, sp *config.ServicePort, v *Verdict) (bool, string) {
	switch {
	case req.From == nil:
		return false, "the client is outside the mesh"
	case req.Plaintext:
		return false, "--plaintext: the client has no sidecar"
	}
	on, why, traffic := e.sidecarMTLS(req.From, mode, svc, sp)
	v.Traffic = traffic
	return on, why
}

// sidecarMTLS decides whether the sidecar of an in-mesh client speaks Istio
// mTLS to a server port: auto mTLS follows the server's DISABLE mode, and a
// DestinationRule's tls.mode other than ISTIO_MUTUAL takes the Istio
// identity away. It returns the DestinationRule that applied, if any.
func (e *Engine) sidecarMTLS(from *config.Workload, mode mtls.Mode, svc *config.Service, sp *config.ServicePort) (bool, string, *Traffic) {
	if mode == mtls.Disable {
		return false, "auto mTLS follows the server's DISABLE mode", nil
	}
	if svc == nil {
		return true, "", nil
	}
	host := fmt.Sprintf("%s.%s.svc.%s", svc.Name, svc.Namespace, trafficpolicy.ClusterDomain)
	r := trafficpolicy.Resolve(e.drs, trafficpolicy.Client{Namespace: from.Namespace, Labels: from.Labels}, host, uint32(sp.Port), e.root)
	t := &Traffic{Host: host, TLSMode: "auto (ISTIO_MUTUAL)"}
	tlsMode, set := r.TLSMode()
	if r.Rule != nil {
		t.Rule = r.Rule.Key()
	}
	if !set {
		return true, "", t
	}
	t.TLSMode = tlsMode.String()
	switch tlsMode {
	case networkingv1alpha3.ClientTLSSettings_ISTIO_MUTUAL:
		return true, "", t
	case networkingv1alpha3.ClientTLSSettings_DISABLE:
		return false, fmt.Sprintf("DestinationRule %s sets tls.mode DISABLE", r.Rule.Key()), t
	}
	return false, fmt.Sprintf("DestinationRule %s sets tls.mode %s: TLS with its own certificates, not an Istio identity", r.Rule.Key(), tlsMode), t
}

// prepareHTTP applies the sidecar's HTTP checks and normalization, filling
// the HTTP attributes of ar. It reports false when the request is rejected
// before authorization.
func (e *Engine) prepareHTTP(req Request, svc *config.Service, ar *authz.Request, v *Verdict) bool {
	h := req.HTTP
	host := e.httpHost(req)
	if err := httpnorm.Method(h.Method); err != nil {
		v.deny(err.Status, DecidedBy{Layer: LayerHTTP, Reason: err.Msg})
		v.step(LayerHTTP, "deny", err.Msg)
		return false
	}
	for _, hd := range h.Headers {
		if err := httpnorm.HeaderName(hd.Name); err != nil {
			v.deny(err.Status, DecidedBy{Layer: LayerHTTP, Reason: err.Msg})
			v.step(LayerHTTP, "deny", err.Msg)
			return false
		}
	}
	path, full, err := httpnorm.Path(h.Path, e.pathMode)
	if err != nil {
		v.deny(err.Status, DecidedBy{Layer: LayerHTTP, Reason: err.Msg})
		v.step(LayerHTTP, "deny", fmt.Sprintf("path %q rejected with %d: %s", h.Path, err.Status, err.Msg))
		return false
	}
	if path != h.Path {
		v.step(LayerHTTP, "info", fmt.Sprintf("path %q is matched as %q (normalized, without the query)", h.Path, path))
	}
	ar.HTTP, ar.Method, ar.Host, ar.Path = true, h.Method, host, path
	ar.Headers = append(ar.Headers,
		authz.Header{Name: ":authority", Value: host},
		authz.Header{Name: ":method", Value: h.Method},
		authz.Header{Name: ":path", Value: full})
	for _, hd := range h.Headers {
		name := strings.ToLower(hd.Name)
		if name == "host" || name == ":authority" {
			continue // carried by --host
		}
		ar.Headers = append(ar.Headers, authz.Header{Name: name, Value: hd.Value})
	}
	return true
}

func rawQuery(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		q := p[i+1:]
		if j := strings.IndexByte(q, '#'); j >= 0 {
			q = q[:j]
		}
		return q
	}
	return ""
}

// httpHost is the request's Host: as given, or the destination's name, as
// a client calling it by its Service name would send it.
func (e *Engine) httpHost(req Request) string {
	switch {
	case req.HTTP.Host != "":
		return req.HTTP.Host
	case req.ToFQDN != "":
		return req.ToFQDN
	case req.To != nil:
		return e.DefaultHost(req.To)
	}
	return req.ToIP.String()
}

// DefaultHost is the Host a client calling w by name sends: its first
// Service's name, or the workload's own name.
func (e *Engine) DefaultHost(w *config.Workload) string {
	if svcs := e.Snapshot.Inventory.ServicesFor(w); len(svcs) > 0 {
		return fmt.Sprintf("%s.%s.svc.%s", svcs[0].Name, svcs[0].Namespace, trafficpolicy.ClusterDomain)
	}
	return w.Name
}

// serviceSNI is the SNI an Istio client sends to a Service port:
// outbound_.PORT_._.NAME.NAMESPACE.svc.DOMAIN.
func serviceSNI(svc *config.Service, sp *config.ServicePort) string {
	return fmt.Sprintf("outbound_.%d_._.%s.%s.svc.%s", sp.Port, svc.Name, svc.Namespace, trafficpolicy.ClusterDomain)
}

// servicePort finds the Service port that targets the workload port.
func (e *Engine) servicePort(w *config.Workload, port uint16) (*config.Service, *config.ServicePort) {
	for _, s := range e.Snapshot.Inventory.ServicesFor(w) {
		for i := range s.Ports {
			sp := &s.Ports[i]
			target := sp.TargetPort
			if sp.TargetName != "" {
				if cp, ok := w.Port(sp.TargetName); ok {
					target = cp.Port
				}
			}
			if target == port {
				return s, sp
			}
		}
	}
	return nil, nil
}

// opaqueProtocol reports whether Istio treats a Service port as opaque TCP
// by its appProtocol or its name's prefix ("tcp-db", "mysql", "tls"), and
// the protocol it read. Ports without a declared protocol are sniffed, so
// HTTP is seen as HTTP.
func opaqueProtocol(sp *config.ServicePort) (string, bool) {
	switch p := declaredProtocol(sp); p {
	case "tcp", "tls", "https", "mongo", "mysql", "redis", "udp":
		return p, true
	}
	return "", false
}

// declaredProtocol is a Service port's protocol as Istio's protocol
// selection reads it: its appProtocol, else its name up to the first "-"
// (lower-cased; "" for none).
func declaredProtocol(sp *config.ServicePort) string {
	if sp == nil {
		return ""
	}
	p := sp.AppProtocol
	if p == "" {
		p = sp.Name
		if i := strings.IndexByte(p, '-'); i >= 0 {
			p = p[:i]
		}
	}
	return strings.ToLower(p)
}

// HTTP2 reports how Istio speaks to a workload port upstream: true for a
// port declared HTTP/2, false for one declared HTTP/1.1, and set false
// when the port declares no HTTP protocol, which follows the downstream
// request's protocol.
func (in *Inbound) HTTP2(port uint16) (h2, set bool) {
	_, sp := in.e.servicePort(in.w.Workload, port)
	return http2Of(sp)
}

// http2Of is Istio's protocol selection for HTTP versions: http2, grpc,
// grpc-web and the Kubernetes appProtocol kubernetes.io/h2c are HTTP/2;
// http (and kubernetes.io/ws) HTTP/1.1.
func http2Of(sp *config.ServicePort) (h2, set bool) {
	switch declaredProtocol(sp) {
	case "http2", "grpc", "grpc-web", "kubernetes.io/h2c":
		return true, true
	case "http", "kubernetes.io/ws":
		return false, true
	}
	return false, false
}
