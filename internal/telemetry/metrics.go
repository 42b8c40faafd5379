package telemetry

import (
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Label values Istio uses for missing and absent data (istio_stats.cc: any
// empty peer-derived value becomes "unknown"; no response flag is "-";
// a missing canonical revision is "latest").
const (
	Unknown   = "unknown"
	NoFlags   = "-"
	Latest    = "latest"
	MutualTLS = "mutual_tls"
	None      = "none"
	// DefaultCluster is Istio's default cluster ID (pkg/config/constants),
	// the value of source_cluster and destination_cluster.
	DefaultCluster = "Kubernetes"

	ReporterSource      = "source"
	ReporterDestination = "destination"
)

// DurationBuckets are Envoy's default histogram bounds
// (source/common/stats/histogram_impl.cc defaultBuckets), which Istio's
// request duration and size histograms use unless a pod overrides them
// with sidecar.istio.io/statsHistogramBuckets. Keeping them makes
// histogram_quantile over Palisade's series comparable with Istio's.
var DurationBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// Peer is one side of a connection as Istio's standard labels describe it.
type Peer struct {
	Workload          string // e.g. "productpage-v1"
	Namespace         string
	Principal         string // SPIFFE ID URI
	App               string // the app (or app.kubernetes.io/name) label
	Version           string // the version (or app.kubernetes.io/version) label
	CanonicalService  string
	CanonicalRevision string
	Cluster           string
}

// Labels is the label set of Istio's standard metrics. It is comparable,
// so a proxy can use it as a key; empty values are exported as Istio
// exports them (see Unknown).
type Labels struct {
	Reporter                    string // ReporterSource or ReporterDestination
	Source, Destination         Peer
	DestinationService          string // FQDN, e.g. details.default.svc.cluster.local
	DestinationServiceName      string
	DestinationServiceNamespace string
	RequestProtocol             string // "http", "grpc" or "tcp"
	ResponseCode                string // HTTP only; "0" when there was no response
	GRPCResponseStatus          string // HTTP only; "" for non-gRPC
	ResponseFlags               string // Envoy's short flags, "-" for none
	ConnectionSecurityPolicy    string // "mutual_tls", "none"; "unknown" at the source
}

// httpLabelNames is istio_stats.cc's all_tags_, in its order: the labels
// of every istio_requests_total, istio_request_duration_milliseconds,
// istio_request_bytes and istio_response_bytes series.
var httpLabelNames = []string{
	"reporter",
	"source_workload", "source_canonical_service", "source_canonical_revision", "source_workload_namespace",
	"source_principal", "source_app", "source_version", "source_cluster",
	"destination_workload", "destination_workload_namespace", "destination_principal",
	"destination_app", "destination_version", "destination_service",
	"destination_canonical_service", "destination_canonical_revision",
	"destination_service_name", "destination_service_namespace", "destination_cluster",
	"request_protocol", "response_code", "grpc_response_status", "response_flags",
	"connection_security_policy",
}

// tcpLabelNames are the same without response_code and
// grpc_response_status, which Istio leaves off TCP series.
var tcpLabelNames = func() []string {
	var out []string
	for _, n := range httpLabelNames {
		if n != "response_code" && n != "grpc_response_status" {
			out = append(out, n)
		}
	}
	return out
}()

// HTTPLabelNames returns the label names of the HTTP metrics.
func HTTPLabelNames() []string { return append([]string(nil), httpLabelNames...) }

// TCPLabelNames returns the label names of the TCP metrics.
func TCPLabelNames() []string { return append([]string(nil), tcpLabelNames...) }

func orUnknown(s string) string {
	if s == "" {
		return Unknown
	}
	return s
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// values renders l in httpLabelNames order (tcp: tcpLabelNames order).
func (l *Labels) values(tcp bool) []string {
	s, d := &l.Source, &l.Destination
	out := make([]string, 0, len(httpLabelNames))
	out = append(out,
		l.Reporter,
		orUnknown(s.Workload), orUnknown(s.CanonicalService), orDefault(s.CanonicalRevision, Latest), orUnknown(s.Namespace),
		orUnknown(s.Principal), orUnknown(s.App), orUnknown(s.Version), orUnknown(s.Cluster),
		orUnknown(d.Workload), orUnknown(d.Namespace), orUnknown(d.Principal),
		orUnknown(d.App), orUnknown(d.Version), orUnknown(l.DestinationService),
		orUnknown(d.CanonicalService), orDefault(d.CanonicalRevision, Latest),
		orUnknown(l.DestinationServiceName), orUnknown(l.DestinationServiceNamespace), orUnknown(d.Cluster),
		l.RequestProtocol)
	if !tcp {
		out = append(out, orDefault(l.ResponseCode, "0"), l.GRPCResponseStatus)
	}
	return append(out, orDefault(l.ResponseFlags, NoFlags), orUnknown(l.ConnectionSecurityPolicy))
}

// Metrics is one proxy's Prometheus registry with Istio's standard
// metrics, Hubble's policy verdict counter and the SVID expiry gauge. It
// is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	reqBytes  *prometheus.HistogramVec
	respBytes *prometheus.HistogramVec
	opened    *prometheus.CounterVec
	closed    *prometheus.CounterVec
	sent      *prometheus.CounterVec
	received  *prometheus.CounterVec
	verdicts  *prometheus.CounterVec

	// The series are cached by label set: resolving 25 label values
	// through a CounterVec on every request costs more than one map
	// lookup keyed by the comparable Labels.
	mu       sync.RWMutex
	http     map[Labels]*httpSeries
	tcp      map[Labels]*TCPSeries
	verdictC map[verdictKey]prometheus.Counter
}

type httpSeries struct {
	requests                      prometheus.Counter
	duration, reqBytes, respBytes prometheus.Observer
}

// TCPSeries are the counters of one TCP label set.
type TCPSeries struct {
	Opened, Closed, Sent, Received prometheus.Counter
}

type verdictKey struct{ action, direction, match string }

// NewMetrics creates the registry. version is the istio_build tag.
func NewMetrics(version string) *Metrics {
	m := &Metrics{
		reg:      prometheus.NewRegistry(),
		http:     map[Labels]*httpSeries{},
		tcp:      map[Labels]*TCPSeries{},
		verdictC: map[verdictKey]prometheus.Counter{},
	}
	hist := func(name, help string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: DurationBuckets}, httpLabelNames)
	}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_requests_total", Help: "Requests handled by the proxy."}, httpLabelNames)
	m.duration = hist("istio_request_duration_milliseconds", "Request duration in milliseconds.")
	m.reqBytes = hist("istio_request_bytes", "Request size in bytes, headers included.")
	m.respBytes = hist("istio_response_bytes", "Response size in bytes, headers included.")
	m.opened = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_tcp_connections_opened_total", Help: "TCP connections opened."}, tcpLabelNames)
	m.closed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_tcp_connections_closed_total", Help: "TCP connections closed."}, tcpLabelNames)
	m.sent = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_tcp_sent_bytes_total", Help: "Bytes sent to the client (server to client) on TCP connections."}, tcpLabelNames)
	m.received = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_tcp_received_bytes_total", Help: "Bytes received from the client (client to server) on TCP connections."}, tcpLabelNames)
	// Hubble's policy plugin (pkg/hubble/metrics/policy/handler.go):
	// action is the lower-cased verdict, direction the lower-cased traffic
	// direction, match the lower-cased policy match type.
	m.verdicts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hubble_policy_verdicts_total", Help: "Policy verdicts, as Hubble's policy metric counts them."}, []string{"direction", "match", "action"})
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "istio_build", Help: "Proxy build information (the Istio Mesh Dashboard's component versions)."}, []string{"component", "tag"})
	build.WithLabelValues("proxy", orUnknown(version)).Set(1)
	m.reg.MustRegister(m.requests, m.duration, m.reqBytes, m.respBytes, m.opened, m.closed, m.sent, m.received, m.verdicts, build)
	return m
}

// Registry is the underlying registry, to add process or Go collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format. The proxy
// mounts it at /metrics and at /stats/prometheus, the two paths Istio's
// agent serves (pilot-agent status server, port 15020).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// RecordRequest counts one HTTP request.
func (m *Metrics) RecordRequest(l *Labels, durationMs float64, reqBytes, respBytes int64) {
	m.mu.RLock()
	s := m.http[*l]
	m.mu.RUnlock()
	if s == nil {
		s = m.newHTTPSeries(l)
	}
	s.requests.Inc()
	s.duration.Observe(durationMs)
	s.reqBytes.Observe(float64(reqBytes))
	s.respBytes.Observe(float64(respBytes))
}

func (m *Metrics) newHTTPSeries(l *Labels) *httpSeries {
	vs := l.values(false)
	s := &httpSeries{
		requests:  m.requests.WithLabelValues(vs...),
		duration:  m.duration.WithLabelValues(vs...),
		reqBytes:  m.reqBytes.WithLabelValues(vs...),
		respBytes: m.respBytes.WithLabelValues(vs...),
	}
	m.mu.Lock()
	if old := m.http[*l]; old != nil {
		s = old
	} else {
		m.http[*l] = s
	}
	m.mu.Unlock()
	return s
}

// TCP returns the counters of a TCP label set; ResponseCode and
// GRPCResponseStatus are ignored. A proxy looks them up once per
// connection and adds bytes as they are copied (Istio adds them every
// tcp_reporting_duration, 5s, and at close; adding them as they flow is
// finer grained and sums to the same totals).
func (m *Metrics) TCP(l Labels) *TCPSeries {
	l.ResponseCode, l.GRPCResponseStatus = "", ""
	m.mu.RLock()
	s := m.tcp[l]
	m.mu.RUnlock()
	if s != nil {
		return s
	}
	vs := l.values(true)
	s = &TCPSeries{
		Opened:   m.opened.WithLabelValues(vs...),
		Closed:   m.closed.WithLabelValues(vs...),
		Sent:     m.sent.WithLabelValues(vs...),
		Received: m.received.WithLabelValues(vs...),
	}
	m.mu.Lock()
	if old := m.tcp[l]; old != nil {
		s = old
	} else {
		m.tcp[l] = s
	}
	m.mu.Unlock()
	return s
}

// Policy match types for RecordVerdict, as Hubble names them
// (pkg/monitor/api/types.go PolicyMatchType.String, lower-cased; L7 verdicts
// are "l7/<protocol>").
const (
	MatchNone   = "none"
	MatchL3L4   = "l3-l4"
	MatchL7HTTP = "l7/http"
)

// Traffic directions for RecordVerdict and flows.
const (
	Ingress = "ingress"
	Egress  = "egress"
)

// RecordVerdict counts one policy verdict in hubble_policy_verdicts_total.
// verdict is a Hubble verdict name (Forwarded, Dropped, Audit); it is
// lower-cased into the action label as Hubble does.
func (m *Metrics) RecordVerdict(verdict, direction, match string) {
	k := verdictKey{action: actionOf(verdict), direction: direction, match: match}
	m.mu.RLock()
	c := m.verdictC[k]
	m.mu.RUnlock()
	if c == nil {
		c = m.verdicts.WithLabelValues(k.direction, k.match, k.action)
		m.mu.Lock()
		m.verdictC[k] = c
		m.mu.Unlock()
	}
	c.Inc()
}

func actionOf(verdict string) string {
	switch verdict {
	case Forwarded:
		return "forwarded"
	case Dropped:
		return "dropped"
	case Audit:
		return "audit"
	}
	b := []byte(verdict)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// WatchSVID exports the expiry of the SVID src currently serves as
// palisade_svid_expiry_timestamp_seconds{spiffe_id}, read at each scrape so
// that a rotation shows at once.
//
// There is no Istio-standard name for a sidecar's certificate expiry as a
// timestamp: pilot-agent exports istio_agent_cert_expiry_seconds (seconds
// left, a derived gauge) and istiod citadel_server_*_expiry_timestamp for
// the CA; "istio_cert_expiry_seconds" seen in blog posts does not exist
// upstream. A timestamp is the Prometheus convention (alert on
// `palisade_svid_expiry_timestamp_seconds - time() < 3600`).
func (m *Metrics) WatchSVID(src x509svid.Source) {
	m.reg.MustRegister(&svidCollector{src: src, desc: prometheus.NewDesc(
		"palisade_svid_expiry_timestamp_seconds",
		"Unix time at which the proxy's current X.509-SVID expires.",
		[]string{"spiffe_id"}, nil)})
}

type svidCollector struct {
	src  x509svid.Source
	desc *prometheus.Desc
}

func (c *svidCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *svidCollector) Collect(ch chan<- prometheus.Metric) {
	svid, err := c.src.GetX509SVID()
	if err != nil || len(svid.Certificates) == 0 {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue,
		float64(svid.Certificates[0].NotAfter.Unix()), svid.ID.String())
}

// StatusCode renders an HTTP status as the response_code label does,
// without allocating for common codes.
func StatusCode(code int) string {
	if code >= 100 && code < 600 {
		return statusStrings[code-100]
	}
	return strconv.Itoa(code)
}

var statusStrings = func() (s [500]string) {
	for i := range s {
		s[i] = strconv.Itoa(i + 100)
	}
	return s
}()
