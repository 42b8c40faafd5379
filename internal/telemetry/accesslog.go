package telemetry

import (
	"io"
	"sync"
	"time"
)

// AccessEntry is one access log line: a request, or a TCP connection
// (Method and Path empty).
//
// The keys are those of Istio's JSON access log (EnvoyJSONLogFormatIstio
// in pilot/pkg/model/telemetry_logging.go), so tools that read Istio's
// access log read this one; the keys after upstream_transport_failure_reason
// are Palisade's: the peers' SPIFFE IDs (Envoy's %DOWNSTREAM_PEER_URI_SAN%
// and %UPSTREAM_PEER_URI_SAN%) and the policy verdict with its rule.
type AccessEntry struct {
	StartTime                 time.Time
	Method, Path, Protocol    string // Protocol: HTTP/1.1, HTTP/2 or TCP
	ResponseCode              int    // 0 for TCP or when no response was sent
	ResponseFlags             string // "" is written as "-"
	ResponseCodeDetails       string
	TerminationDetails        string
	BytesReceived, BytesSent  int64
	Duration                  time.Duration
	UpstreamServiceTime       time.Duration // time to the upstream's response headers; 0: none
	ForwardedFor              string
	UserAgent, RequestID      string
	Authority                 string
	UpstreamHost              string
	UpstreamCluster           string
	UpstreamLocalAddress      string
	DownstreamLocalAddress    string
	DownstreamRemoteAddress   string
	RequestedServerName       string
	UpstreamTransportFailure  string
	RouteName                 string
	Reporter                  string // "destination" (inbound) or "source" (outbound)
	DownstreamPeerPrincipal   string
	UpstreamPeerPrincipal     string
	PolicyAllowed             bool
	PolicyLayer, Policy, Rule string
	PolicyReason              string
	AuditRule                 string
	DryRun                    []string
	RequestPrincipal          string // the JWT's iss/sub, when one was validated
}

// AccessLog writes AccessEntry values as JSON lines. It is safe for
// concurrent use; each entry is one Write.
type AccessLog struct {
	mu sync.Mutex
	w  io.Writer
}

// NewAccessLog returns a log writing to w; a nil w discards entries.
func NewAccessLog(w io.Writer) *AccessLog {
	if w == nil {
		return nil
	}
	return &AccessLog{w: w}
}

// envoyStartTime is Envoy's default %START_TIME% format, %Y-%m-%dT%H:%M:%E3SZ.
const envoyStartTime = "2006-01-02T15:04:05.000Z"

// Log writes e. A nil log does nothing.
func (a *AccessLog) Log(e *AccessEntry) {
	if a == nil {
		return
	}
	l := getLine()
	l.open()
	l.time("start_time", e.StartTime, envoyStartTime)
	l.strOrNull("route_name", e.RouteName)
	l.strOrNull("method", e.Method)
	l.strOrNull("path", e.Path)
	l.strOrNull("protocol", e.Protocol)
	l.int("response_code", int64(e.ResponseCode))
	l.str("response_flags", orDefault(e.ResponseFlags, NoFlags))
	l.strOrNull("response_code_details", e.ResponseCodeDetails)
	l.strOrNull("connection_termination_details", e.TerminationDetails)
	l.int("bytes_received", e.BytesReceived)
	l.int("bytes_sent", e.BytesSent)
	l.int("duration", e.Duration.Milliseconds())
	if e.UpstreamServiceTime > 0 {
		l.int("upstream_service_time", e.UpstreamServiceTime.Milliseconds())
	} else {
		l.strOrNull("upstream_service_time", "")
	}
	l.strOrNull("x_forwarded_for", e.ForwardedFor)
	l.strOrNull("user_agent", e.UserAgent)
	l.strOrNull("request_id", e.RequestID)
	l.strOrNull("authority", e.Authority)
	l.strOrNull("upstream_host", e.UpstreamHost)
	l.strOrNull("upstream_cluster", e.UpstreamCluster)
	l.strOrNull("upstream_local_address", e.UpstreamLocalAddress)
	l.strOrNull("downstream_local_address", e.DownstreamLocalAddress)
	l.strOrNull("downstream_remote_address", e.DownstreamRemoteAddress)
	l.strOrNull("requested_server_name", e.RequestedServerName)
	l.strOrNull("upstream_transport_failure_reason", e.UpstreamTransportFailure)
	l.strOrNull("reporter", e.Reporter)
	l.strOrNull("downstream_peer_principal", e.DownstreamPeerPrincipal)
	l.strOrNull("upstream_peer_principal", e.UpstreamPeerPrincipal)
	l.strOrNull("request_principal", e.RequestPrincipal)
	if e.PolicyAllowed {
		l.str("policy_verdict", "allow")
	} else {
		l.str("policy_verdict", "deny")
	}
	l.strOrNull("policy_layer", e.PolicyLayer)
	l.strOrNull("policy", e.Policy)
	l.strOrNull("policy_rule", e.Rule)
	l.strOrNull("policy_reason", e.PolicyReason)
	if e.AuditRule != "" {
		l.str("audit_rule", e.AuditRule)
	}
	if len(e.DryRun) > 0 {
		l.strings("dry_run", e.DryRun)
	}
	l.close()
	l.b = append(l.b, '\n')
	a.mu.Lock()
	a.w.Write(l.b) // a failing log must not fail traffic
	a.mu.Unlock()
	putLine(l)
}
