package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"

	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/engine"
	"github.com/palisade-security/palisade/internal/httpnorm"
	"github.com/palisade-security/palisade/internal/mtls"
	"github.com/palisade-security/palisade/internal/telemetry"
	"github.com/palisade-security/palisade/internal/trafficpolicy"
)

// view is what the proxy derives from one engine: its own compiled
// policy, the per-port settings and the resolved destinations. It is
// built once per engine and swapped whole with it, so a request sees one
// engine's policy from start to end, never a mix.
type view struct {
	e        *engine.Engine
	self     *config.Workload
	selfID   string
	in       *engine.Inbound
	out      *engine.Outbound
	pathMode httpnorm.Mode
	selfPeer telemetry.Peer
	// byID lists the workloads running as each SPIFFE ID, to name the
	// source of a connection (Cilium's HTTP rules select peers by workload;
	// the metrics label them).
	byID map[string][]*config.Workload
	// netpolKind names the kind of each network policy ID, for flows.
	netpolKind map[string]string
	inPorts    []inPortView
	dests      []*destination
}

// inPortView is an inbound port under one engine.
type inPortView struct {
	mode mtls.Mode
	tcp  bool
	// h2, h2set: the port is declared HTTP/2 (h2) or HTTP/1.1; unset,
	// the application gets the request's own protocol.
	h2, h2set bool
	// The Service the port belongs to, for destination_service.
	svcHost, svcName, svcNS string
}

// destination is an outbound listener's destination under one engine.
type destination struct {
	err       error // the destination cannot be reached under this engine (503 NC)
	workload  *config.Workload
	fqdn      string
	port      uint16 // workload port (or the external port)
	tcp       bool
	h2, h2set bool   // declared HTTP/2 or HTTP/1.1 (see inPortView)
	host      string // the service FQDN (or fqdn); DestinationRule host
	svcName   string
	svcNS     string
	sni       string
	cluster   string // Envoy's cluster name, for the access log
	peer      telemetry.Peer
	rule      string // the DestinationRule applied, "namespace/name"
	s         *settings
	// egress is the egress policy's decision for a workload destination,
	// which depends on the engine alone.
	egress engine.Decision
}

func (p *Proxy) buildView(e *engine.Engine) *view {
	inv := &e.Snapshot.Inventory
	self := p.cfg.Workload
	if w, err := inv.Workload(self.Namespace + "/" + strings.ToLower(self.Kind) + "/" + self.Name); err == nil {
		self = w
	}
	v := &view{
		e:          e,
		self:       self,
		selfID:     e.Identity(self),
		in:         e.Inbound(self),
		out:        e.Outbound(self),
		pathMode:   httpnorm.ModeFromMesh(int32(e.Snapshot.Mesh.PathNormalization())),
		byID:       map[string][]*config.Workload{},
		netpolKind: map[string]string{},
	}
	v.selfPeer = peerOf(self, v.selfID)
	for _, w := range inv.Workloads {
		id := e.Identity(w)
		v.byID[id] = append(v.byID[id], w)
	}
	for _, r := range e.Snapshot.CiliumNetworkPolicies {
		v.netpolKind[r.Key()] = "CiliumNetworkPolicy"
	}
	for _, r := range e.Snapshot.CiliumClusterwideNetworkPolicies {
		v.netpolKind[r.Meta.Name] = "CiliumClusterwideNetworkPolicy"
	}
	for _, r := range e.Snapshot.NetworkPolicies {
		v.netpolKind[r.Key()] = "NetworkPolicy"
	}
	for _, ip := range p.inbound {
		pv := inPortView{mode: v.in.Mode(ip.cfg.Port), tcp: ip.cfg.TCP || v.in.OpaqueTCP(ip.cfg.Port)}
		pv.h2, pv.h2set = v.in.HTTP2(ip.cfg.Port)
		if svc, _ := servicePort(inv, self, ip.cfg.Port); svc != nil {
			pv.svcHost, pv.svcName, pv.svcNS = serviceHost(svc), svc.Name, svc.Namespace
		}
		v.inPorts = append(v.inPorts, pv)
	}
	drs := admittedDestinationRules(e)
	for _, ol := range p.outbound {
		v.dests = append(v.dests, p.resolveDestination(v, drs, ol))
	}
	return v
}

// admittedDestinationRules are the snapshot's DestinationRules less those
// istiod would reject, which the engine reports in Rejected.
func admittedDestinationRules(e *engine.Engine) []*config.Resource[*networkingv1alpha3.DestinationRule] {
	rejected := map[string]bool{}
	for _, r := range e.Rejected {
		rejected[r.Object] = true
	}
	var out []*config.Resource[*networkingv1alpha3.DestinationRule]
	for _, r := range e.Snapshot.DestinationRules {
		if !rejected[r.String()] {
			out = append(out, r)
		}
	}
	return out
}

// servicePort finds the Service port that targets workload port port.
func servicePort(inv *config.Inventory, w *config.Workload, port uint16) (*config.Service, *config.ServicePort) {
	for _, s := range inv.ServicesFor(w) {
		for i := range s.Ports {
			sp := &s.Ports[i]
			target := sp.TargetPort
			if sp.TargetName != "" {
				if cp, ok := w.Port(sp.TargetName); ok {
					target = cp.Port
				}
			}
			if target == 0 && sp.TargetName == "" {
				target = sp.Port
			}
			if target == port {
				return s, sp
			}
		}
	}
	return nil, nil
}

func serviceHost(s *config.Service) string {
	return s.Name + "." + s.Namespace + ".svc." + trafficpolicy.ClusterDomain
}

// peerOf labels a workload as Istio's metrics do: app and version from
// the app/version labels (or their app.kubernetes.io forms), the
// canonical service and revision from Istio's canonical labels with the
// same fallbacks as the injector.
func peerOf(w *config.Workload, principal string) telemetry.Peer {
	if w == nil {
		return telemetry.Peer{Principal: principal}
	}
	first := func(keys ...string) string {
		for _, k := range keys {
			if v := w.Labels[k]; v != "" {
				return v
			}
		}
		return ""
	}
	p := telemetry.Peer{
		Workload:          w.Name,
		Namespace:         w.Namespace,
		Principal:         principal,
		App:               first("app", "app.kubernetes.io/name"),
		Version:           first("version", "app.kubernetes.io/version"),
		CanonicalService:  first("service.istio.io/canonical-name", "app.kubernetes.io/name", "app"),
		CanonicalRevision: first("service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"),
		Cluster:           telemetry.DefaultCluster,
	}
	if p.CanonicalService == "" {
		p.CanonicalService = w.Name
	}
	return p
}

// sourceOf names the workload behind a peer identity: the only workload
// running as it, or the one among several whose pod IP is the source.
func (v *view) sourceOf(principal string, ip string) *config.Workload {
	ws := v.byID[principal]
	if len(ws) == 1 {
		return ws[0]
	}
	for _, w := range ws {
		for _, a := range w.IPs {
			if a.String() == ip {
				return w
			}
		}
	}
	return nil
}

// namespaceOfID is the namespace in an Istio SPIFFE ID
// (spiffe://td/ns/<ns>/sa/<sa>), which Istio's server-side metrics use
// when the peer's workload is unknown.
func namespaceOfID(id string) string {
	_, rest, ok := strings.Cut(id, "/ns/")
	if !ok {
		return ""
	}
	ns, _, _ := strings.Cut(rest, "/")
	return ns
}

// settings is a destination's traffic policy, from its DestinationRule
// with Istio's and Envoy's defaults.
type settings struct {
	tls        *tls.Config // nil: plaintext
	tlsH2      *tls.Config // tls offering HTTP/2 (ALPN h2), for HTTP/2 upstreams
	mutual     bool        // ISTIO_MUTUAL: the client presents its SVID
	expectedID string      // the server's SPIFFE ID under ISTIO_MUTUAL

	connectTimeout     time.Duration
	maxConnections     int
	maxPending         int
	maxRequests        int
	maxRequestsPerConn int // 0: unlimited
	maxRetries         int // retries outstanding across the cluster
	retryAttempts      int
	idleTimeout        time.Duration
	outlier            outlierSettings
	// errorCodes are outlierDetectionHttpErrorCodes: the statuses that
	// count as errors instead of 5xx; nil for 5xx.
	errorCodes map[int]bool
}

type outlierSettings struct {
	enabled            bool
	consecutive5xx     int // 0: off
	consecutiveGateway int // 0: off
	interval           time.Duration
	baseEjection       time.Duration
	maxEjection        time.Duration
	maxEjectionPercent int
	minHealthPercent   int
}

// Istio's and Envoy's defaults (destination_rule.proto; Envoy
// circuit_breaker.proto and outlier_detection.proto). The circuit breaker
// maxima default to 2^32-1, which is "no limit" here.
const (
	unlimited             = math.MaxInt32
	defaultConnectTimeout = 10 * time.Second
	defaultIdleTimeout    = time.Hour
	// Istio's default route retry policy (pilot/pkg/networking/core/route/retry):
	// 2 attempts on connect-failure, refused-stream, unavailable, cancelled
	// and retriable status 503, on a host other than the previous one.
	defaultRetryAttempts = 2
)

func defaultSettings() *settings {
	return &settings{
		connectTimeout: defaultConnectTimeout,
		maxConnections: unlimited,
		maxPending:     unlimited,
		maxRequests:    unlimited,
		maxRetries:     unlimited,
		retryAttempts:  defaultRetryAttempts,
		idleTimeout:    defaultIdleTimeout,
	}
}

// trafficSettings applies a resolved traffic policy to the defaults.
func trafficSettings(tp *networkingv1alpha3.TrafficPolicy) *settings {
	s := defaultSettings()
	cp := tp.GetConnectionPool()
	if t := cp.GetTcp(); t != nil {
		if d := t.GetConnectTimeout(); d != nil && d.AsDuration() > 0 {
			s.connectTimeout = d.AsDuration()
		}
		if n := t.GetMaxConnections(); n > 0 {
			s.maxConnections = int(n)
		}
		if d := t.GetIdleTimeout(); d != nil {
			s.idleTimeout = d.AsDuration() // 0s disables it
		}
	}
	if h := cp.GetHttp(); h != nil {
		if n := h.GetHttp1MaxPendingRequests(); n > 0 {
			s.maxPending = int(n)
		}
		if n := h.GetHttp2MaxRequests(); n > 0 {
			s.maxRequests = int(n)
		}
		if n := h.GetMaxRequestsPerConnection(); n > 0 {
			s.maxRequestsPerConn = int(n)
		}
		if n := h.GetMaxRetries(); n > 0 {
			s.maxRetries = int(n)
		}
		if d := h.GetIdleTimeout(); d != nil {
			s.idleTimeout = d.AsDuration()
		}
	}
	if od := tp.GetOutlierDetection(); od != nil {
		o := outlierSettings{
			enabled:            true,
			consecutive5xx:     5, // Envoy's default, enforced at 100%
			interval:           10 * time.Second,
			baseEjection:       30 * time.Second,
			maxEjection:        300 * time.Second,
			maxEjectionPercent: 10,
			minHealthPercent:   int(od.GetMinHealthPercent()),
		}
		// Istio's translation (pilot/pkg/networking/core/cluster_traffic_policy.go):
		// the deprecated consecutiveErrors means gateway errors only.
		//lint:ignore SA1019 istiod still translates the deprecated field
		if n := od.GetConsecutiveErrors(); n > 0 {
			o.consecutiveGateway, o.consecutive5xx = int(n), 0
		}
		if v := od.GetConsecutiveGatewayErrors(); v != nil {
			o.consecutiveGateway = int(v.GetValue())
		}
		if v := od.GetConsecutive_5XxErrors(); v != nil {
			o.consecutive5xx = int(v.GetValue())
		}
		if d := od.GetInterval(); d != nil && d.AsDuration() > 0 {
			o.interval = d.AsDuration()
		}
		if d := od.GetBaseEjectionTime(); d != nil && d.AsDuration() > 0 {
			o.baseEjection = d.AsDuration()
		}
		if o.maxEjection < o.baseEjection {
			o.maxEjection = o.baseEjection
		}
		if n := od.GetMaxEjectionPercent(); n > 0 {
			o.maxEjectionPercent = int(min(n, 100))
		}
		if codes := od.GetOutlierDetectionHttpErrorCodes(); len(codes) > 0 {
			s.errorCodes = map[int]bool{}
			for _, c := range codes {
				s.errorCodes[int(c)] = true
			}
		}
		s.outlier = o
	}
	return s
}

func (p *Proxy) resolveDestination(v *view, drs []*config.Resource[*networkingv1alpha3.DestinationRule], ol *outListener) *destination {
	e, t := v.e, ol.target
	d := &destination{port: t.port}
	client := trafficpolicy.Client{Namespace: v.self.Namespace, Labels: v.self.Labels}
	root := e.Snapshot.Mesh.RootNamespace()
	if t.fqdn != "" {
		d.fqdn, d.host = t.fqdn, t.fqdn
		d.tcp = ol.cfg.Protocol != "http"
		d.cluster = "outbound|" + strconv.Itoa(int(t.port)) + "||" + t.fqdn
		d.svcName = t.fqdn
		d.peer = telemetry.Peer{}
		r := trafficpolicy.Resolve(drs, client, t.fqdn, uint32(t.port), root)
		d.s = trafficSettings(r.Policy)
		if r.Rule != nil {
			d.rule = r.Rule.Key()
		}
		mode, set := r.TLSMode()
		switch {
		case !set || mode == networkingv1alpha3.ClientTLSSettings_DISABLE:
			// No sidecar is behind an external host, so auto mTLS
			// leaves it plaintext.
		case mode == networkingv1alpha3.ClientTLSSettings_SIMPLE:
			sni := r.Policy.GetTls().GetSni()
			if sni == "" {
				sni = t.fqdn
			}
			d.s.tls = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: sni, RootCAs: p.cfg.ExternalRoots}
			d.s.tlsH2 = h2Config(d.s.tls)
		default:
			d.err = fmt.Errorf("DestinationRule %s: tls mode %s towards an external host needs client certificates Palisade does not provision", d.rule, mode)
		}
		return d
	}

	dst, err := e.Snapshot.Inventory.Workload(t.workload)
	if err != nil {
		d.err = err
		return d
	}
	d.workload = dst
	d.egress = v.out.Connect(dst, netip.Addr{}, "", t.port)
	dstIn := e.Inbound(dst)
	d.tcp = ol.cfg.Protocol == "tcp" || (ol.cfg.Protocol == "" && dstIn.OpaqueTCP(t.port))
	d.h2, d.h2set = dstIn.HTTP2(t.port)
	svcPort := uint32(t.port)
	if svc, sp := servicePort(&e.Snapshot.Inventory, dst, t.port); svc != nil {
		d.host, d.svcName, d.svcNS = serviceHost(svc), svc.Name, svc.Namespace
		svcPort = uint32(sp.Port)
		// Istio's auto SNI for ISTIO_MUTUAL (cluster_tls.go):
		// outbound_.<port>_.<subset>_.<host>.
		d.sni = "outbound_." + strconv.Itoa(int(sp.Port)) + "_._." + d.host
	}
	d.cluster = "outbound|" + strconv.Itoa(int(svcPort)) + "||" + orName(d.host, dst.Key())
	var r trafficpolicy.Resolved
	if d.host != "" {
		r = trafficpolicy.Resolve(drs, client, d.host, svcPort, root)
	}
	d.s = trafficSettings(r.Policy)
	if r.Rule != nil {
		d.rule = r.Rule.Key()
	}
	expected := e.Identity(dst)
	d.peer = peerOf(dst, "")
	mode, set := r.TLSMode()
	switch {
	case set && mode == networkingv1alpha3.ClientTLSSettings_DISABLE:
	case set && mode != networkingv1alpha3.ClientTLSSettings_ISTIO_MUTUAL:
		d.err = fmt.Errorf("DestinationRule %s: tls mode %s needs certificates Palisade does not provision; use ISTIO_MUTUAL", d.rule, mode)
	case !set && dstIn.Mode(t.port) == mtls.Disable:
		// Auto mTLS follows the server: a port whose PeerAuthentication
		// is DISABLE is sent plaintext.
	default:
		id, err := spiffeid.FromString(expected)
		if err != nil {
			d.err = fmt.Errorf("destination identity %q: %v", expected, err)
			break
		}
		d.s.mutual, d.s.expectedID = true, expected
		d.peer.Principal = expected
		// Secure naming: the server must present the identity its
		// workload runs as, verified against the trust bundle.
		d.s.tls = tlsconfig.MTLSClientConfig(p.cfg.SVIDs, p.cfg.Bundles, tlsconfig.AuthorizeID(id))
		d.s.tls.ServerName = d.sni
		if !d.tcp {
			d.s.tls.NextProtos = []string{"http/1.1"}
			d.s.tlsH2 = h2Config(d.s.tls)
		}
	}
	return d
}

// sameAs reports whether two settings configure the same upstream
// behaviour, so that an engine swap that does not change a destination's
// traffic policy keeps its pooled connections.
func (s *settings) sameAs(o *settings) bool {
	if s == nil || o == nil {
		return s == o
	}
	if (s.tls == nil) != (o.tls == nil) || (s.tlsH2 == nil) != (o.tlsH2 == nil) || s.mutual != o.mutual || s.expectedID != o.expectedID {
		return false
	}
	if s.tls != nil && (s.tls.ServerName != o.tls.ServerName || s.tls.RootCAs != o.tls.RootCAs) {
		return false
	}
	if s.connectTimeout != o.connectTimeout || s.maxConnections != o.maxConnections || s.maxPending != o.maxPending ||
		s.maxRequests != o.maxRequests || s.maxRequestsPerConn != o.maxRequestsPerConn || s.maxRetries != o.maxRetries ||
		s.retryAttempts != o.retryAttempts || s.idleTimeout != o.idleTimeout {
		return false
	}
	if len(s.errorCodes) != len(o.errorCodes) {
		return false
	}
	for c := range s.errorCodes {
		if !o.errorCodes[c] {
			return false
		}
	}
	return s.outlier == o.outlier
}

func orName(host, fallback string) string {
	if host != "" {
		return host
	}
	return fallback
}

// endpointsFor lists the addresses of a destination: the configured ones,
// else the workload's pod IPs (or the fqdn) at the port.
func endpointsFor(ol *outListener, dst *config.Workload) ([]string, error) {
	if len(ol.cfg.Endpoints) > 0 {
		return ol.cfg.Endpoints, nil
	}
	port := strconv.Itoa(int(ol.target.port))
	if ol.target.fqdn != "" {
		return []string{net.JoinHostPort(ol.target.fqdn, port)}, nil
	}
	if dst == nil || len(dst.IPs) == 0 {
		return nil, errors.New("no endpoints: the workload has no pod IP and the listener names none")
	}
	var out []string
	for _, ip := range dst.IPs {
		out = append(out, net.JoinHostPort(ip.String(), port))
	}
	return out, nil
}
