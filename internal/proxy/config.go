package proxy

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/engine"
	"github.com/palisade-security/palisade/internal/telemetry"
)

// Config is a sidecar proxy's configuration.
type Config struct {
	// Workload is the workload the proxy runs beside. When the engine is
	// swapped, the workload of the same kind, namespace and name in the new
	// snapshot's inventory is used.
	Workload *config.Workload
	// Policy returns the current engine. It is called for every connection
	// and request, so a control plane that swaps the engine (whole, behind
	// an atomic pointer) changes the verdict of the next request without
	// restarting a listener.
	Policy func() *engine.Engine
	// SVIDs is the proxy's X.509-SVID, read at every TLS handshake so a
	// rotation takes effect on the next connection without dropping any;
	// Bundles are the trust bundles peers are verified against. A
	// go-spiffe workloadapi.X509Source serves as both.
	SVIDs   x509svid.Source
	Bundles x509bundle.Source

	Inbound  []InboundPort
	Outbound []OutboundListener

	// MetricsAddr serves Prometheus metrics at /metrics and
	// /stats/prometheus (the paths of Istio's agent on port 15020); ""
	// serves none.
	MetricsAddr string
	// Logs, one JSON object a line; nil writers log nothing.
	AccessLog, FlowLog io.Writer
	// AuditLog is the audit log's hash chain (telemetry.NewAuditLog, or
	// OpenAuditLog to continue a file's); nil logs nothing.
	AuditLog *telemetry.AuditLog
	// NodeName is written into flows (Hubble's node_name).
	NodeName string
	// Version is the istio_build tag.
	Version string

	Limits Limits

	// ExternalRoots verify external servers when a DestinationRule sets
	// tls mode SIMPLE for an fqdn destination; nil means the system roots.
	ExternalRoots *x509.CertPool
}

// InboundPort is one workload port the proxy guards.
type InboundPort struct {
	// Port is the workload (container) port: PeerAuthentication's
	// portLevelMtls and AuthorizationPolicy's ports name it.
	Port uint16
	// Listen is where clients connect, e.g. ":15006" or "127.0.0.1:0".
	Listen string
	// Listener, when set, is a listener already bound, used instead of
	// Listen: a caller that must know every proxy's address before it
	// configures any binds them first.
	Listener net.Listener
	// App is the application's address, e.g. "127.0.0.1:8080".
	App string
	// TCP proxies the port as opaque TCP even when no Service declares
	// it so (Istio proxies tcp-*, mysql, redis, ... ports as TCP).
	TCP bool
}

// OutboundListener is a local address the application connects to in
// order to reach one destination through the proxy.
type OutboundListener struct {
	// Listen is the local address, e.g. "127.0.0.1:15001".
	Listen string
	// To is "namespace/name:port" for a workload of the mesh (port is its
	// container port) or "fqdn:NAME:port" for a host outside it.
	To string
	// Endpoints are the addresses the destination is reached at (its
	// proxy's inbound listener); by default the workload's pod IPs at
	// port, or NAME:port for an fqdn. Each has its own outlier detection.
	Endpoints []string
	// Protocol is "http", "tcp", or "" to follow the destination: opaque
	// TCP ports (a Service port named tcp-*, mysql, redis, ...) and fqdn
	// destinations are TCP, others HTTP.
	Protocol string
}

// Limits harden the HTTP listeners against slow and oversized requests.
// Zero values take the defaults.
type Limits struct {
	// MaxHeaderBytes caps a request's header block: 60 KiB by default,
	// Envoy's max_request_headers_kb default. Larger requests get 431.
	MaxHeaderBytes int
	// MaxBodyBytes caps a request body (413 past it); 0 is no limit, as
	// in Envoy without a buffer filter.
	MaxBodyBytes int64
	// ReadHeaderTimeout bounds how long a client may take to send the
	// request headers: 10s by default, Envoy's edge best practice for
	// request_headers_timeout, against slowloris clients.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a client connection without requests: 1h by
	// default, Envoy's HTTP connection idle_timeout (and Istio's).
	IdleTimeout time.Duration
	// HandshakeTimeout bounds protocol detection and the TLS handshake:
	// 15s by default, Envoy's listener_filters_timeout.
	HandshakeTimeout time.Duration
	// MaxConcurrentStreams per HTTP/2 connection: 100 by default, Envoy's
	// edge best practice.
	MaxConcurrentStreams uint32
	// AppConnectTimeout bounds connecting to the application: 10s by
	// default, the connectTimeout default of Istio's clusters.
	AppConnectTimeout time.Duration
	// DrainTimeout bounds the graceful shutdown when Run's context ends:
	// 5s by default.
	DrainTimeout time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = 60 << 10
	}
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = 10 * time.Second
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = time.Hour
	}
	if l.HandshakeTimeout <= 0 {
		l.HandshakeTimeout = 15 * time.Second
	}
	if l.MaxConcurrentStreams == 0 {
		l.MaxConcurrentStreams = 100
	}
	if l.AppConnectTimeout <= 0 {
		l.AppConnectTimeout = 10 * time.Second
	}
	if l.DrainTimeout <= 0 {
		l.DrainTimeout = 5 * time.Second
	}
	return l
}

// target is a parsed OutboundListener.To.
type target struct {
	workload string // "namespace/name"; "" for an fqdn
	fqdn     string
	port     uint16
}

func parseTarget(s string) (target, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return target{}, fmt.Errorf("%q: want namespace/name:port or fqdn:NAME:port", s)
	}
	p, err := strconv.ParseUint(s[i+1:], 10, 16)
	if err != nil || p == 0 {
		return target{}, fmt.Errorf("%q: bad port %q", s, s[i+1:])
	}
	t := target{port: uint16(p)}
	head := s[:i]
	if name, ok := strings.CutPrefix(head, "fqdn:"); ok {
		if name == "" {
			return target{}, fmt.Errorf("%q: empty host name", s)
		}
		t.fqdn = strings.ToLower(strings.TrimSuffix(name, "."))
		return t, nil
	}
	if strings.Count(head, "/") != 1 || strings.HasPrefix(head, "/") || strings.HasSuffix(head, "/") {
		return target{}, fmt.Errorf("%q: want namespace/name:port or fqdn:NAME:port", s)
	}
	t.workload = head
	return t, nil
}

func (c *Config) validate() error {
	var errs []error
	if c.Workload == nil {
		errs = append(errs, errors.New("proxy: Workload is required"))
	}
	if c.Policy == nil {
		errs = append(errs, errors.New("proxy: Policy is required"))
	}
	if c.SVIDs == nil || c.Bundles == nil {
		errs = append(errs, errors.New("proxy: SVIDs and Bundles are required"))
	}
	for i, in := range c.Inbound {
		if in.Port == 0 {
			errs = append(errs, fmt.Errorf("proxy: inbound %d: Port is required", i))
		}
		if _, _, err := net.SplitHostPort(in.App); err != nil {
			errs = append(errs, fmt.Errorf("proxy: inbound %d: App: %v", i, err))
		}
	}
	for i, out := range c.Outbound {
		if _, err := parseTarget(out.To); err != nil {
			errs = append(errs, fmt.Errorf("proxy: outbound %d: To %v", i, err))
		}
		switch out.Protocol {
		case "", "http", "tcp":
		default:
			errs = append(errs, fmt.Errorf("proxy: outbound %d: Protocol %q: want http, tcp or empty", i, out.Protocol))
		}
	}
	return errors.Join(errs...)
}
