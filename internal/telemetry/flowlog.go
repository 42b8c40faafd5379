package telemetry

import (
	"io"
	"net/netip"
	"sync"
	"time"
)

// Hubble verdicts (flow.proto Verdict) a proxy reports.
const (
	Forwarded = "FORWARDED"
	Dropped   = "DROPPED"
	// Audit is a flow let through while a rule that audits it matched: an
	// Istio AUDIT rule or a dry-run policy.
	Audit = "AUDIT"
)

// Hubble drop reasons (flow.proto DropReason) for policy denials:
// POLICY_DENIED is the default deny (no rule allows the flow),
// POLICY_DENY an explicit deny rule.
const (
	DropPolicyDenied = "POLICY_DENIED"
	DropPolicyDeny   = "POLICY_DENY"
)

// Endpoint is one side of a flow (flow.proto Endpoint).
type Endpoint struct {
	Namespace string
	Workload  string // workload name; written under workloads[] with Kind
	Kind      string
	Labels    []string // "k8s:key=value", as Hubble writes them
	Principal string   // SPIFFE ID; a Palisade addition under "palisade"
}

// PolicyRef names the policy that decided a flow (flow.proto Policy).
type PolicyRef struct {
	Name, Namespace, Kind string
}

// Flow is one verdict on a connection or request, for the flow log.
type Flow struct {
	Time            time.Time
	Verdict         string // Forwarded, Dropped, Audit
	DropReason      string // for Dropped
	Ingress         bool   // traffic_direction INGRESS (else EGRESS)
	SourceIP        netip.Addr
	DestinationIP   netip.Addr
	SourcePort      uint16
	DestinationPort uint16
	Source          Endpoint
	Destination     Endpoint
	// HTTP is set for a request (an L7 flow); nil for a connection.
	HTTP *HTTPFlow
	// Policy is the deciding policy, when one decided (default allow and
	// default deny have none, as in Hubble).
	Policy *PolicyRef
	// Layer, Rule and Reason say how Palisade decided, in the
	// "palisade" extension object.
	Layer, Rule, Reason string
	Audit               string
	DryRun              []string
	NodeName            string
}

// HTTPFlow is the l7.http part of a flow.
type HTTPFlow struct {
	Code     int
	Method   string
	URL      string
	Protocol string
}

// FlowLog writes flows as JSON lines in the shape of `hubble observe -o
// json` (GetFlowsResponse with proto field names: "flow", "node_name",
// "time"), so Hubble's tooling and jq recipes apply. The deciding layer,
// rule and reason, which Hubble's flow has no field for, are under
// "palisade" inside "flow". It is safe for concurrent use.
type FlowLog struct {
	mu sync.Mutex
	w  io.Writer
}

// NewFlowLog returns a flow log writing to w; a nil w discards flows.
func NewFlowLog(w io.Writer) *FlowLog {
	if w == nil {
		return nil
	}
	return &FlowLog{w: w}
}

// rfc3339Nano is protojson's Timestamp format.
const rfc3339Nano = "2006-01-02T15:04:05.999999999Z"

// Log writes f. A nil log does nothing.
func (fl *FlowLog) Log(f *Flow) {
	if fl == nil {
		return
	}
	l := getLine()
	l.open()
	l.object("flow")
	l.time("time", f.Time, rfc3339Nano)
	l.str("verdict", f.Verdict)
	if f.Verdict == Dropped && f.DropReason != "" {
		l.str("drop_reason_desc", f.DropReason)
	}
	if f.SourceIP.IsValid() || f.DestinationIP.IsValid() {
		l.object("IP")
		if f.SourceIP.IsValid() {
			l.str("source", f.SourceIP.Unmap().String())
		}
		if f.DestinationIP.IsValid() {
			l.str("destination", f.DestinationIP.Unmap().String())
		}
		if f.SourceIP.Unmap().Is6() {
			l.str("ipVersion", "IPv6")
		} else {
			l.str("ipVersion", "IPv4")
		}
		l.close()
	}
	l.object("l4")
	l.object("TCP")
	if f.SourcePort != 0 {
		l.int("source_port", int64(f.SourcePort))
	}
	if f.DestinationPort != 0 {
		l.int("destination_port", int64(f.DestinationPort))
	}
	l.close()
	l.close()
	endpoint(l, "source", &f.Source)
	endpoint(l, "destination", &f.Destination)
	if f.HTTP != nil {
		l.str("Type", "L7")
	} else {
		l.str("Type", "L3_L4")
	}
	l.strOmit("node_name", f.NodeName)
	if f.HTTP != nil {
		l.object("l7")
		l.str("type", "REQUEST")
		l.object("http")
		if f.HTTP.Code != 0 {
			l.int("code", int64(f.HTTP.Code))
		}
		l.strOmit("method", f.HTTP.Method)
		l.strOmit("url", f.HTTP.URL)
		l.strOmit("protocol", f.HTTP.Protocol)
		l.close()
		l.close()
	}
	if f.Ingress {
		l.str("traffic_direction", "INGRESS")
	} else {
		l.str("traffic_direction", "EGRESS")
	}
	l.bool("is_reply", false)
	if f.Policy != nil {
		// correlation.go fills *_allowed_by for forwarded verdicts and
		// *_denied_by for explicit denials.
		dir := "egress"
		if f.Ingress {
			dir = "ingress"
		}
		switch {
		case f.Verdict != Dropped:
			policyList(l, dir+"_allowed_by", f.Policy)
		case f.DropReason == DropPolicyDeny:
			policyList(l, dir+"_denied_by", f.Policy)
		}
	}
	l.object("palisade")
	l.strOmit("layer", f.Layer)
	if f.Policy != nil {
		l.str("policy", f.Policy.Namespace+"/"+f.Policy.Name)
	}
	l.strOmit("rule", f.Rule)
	l.strOmit("reason", f.Reason)
	l.strOmit("audit", f.Audit)
	if len(f.DryRun) > 0 {
		l.strings("dry_run", f.DryRun)
	}
	l.strOmit("source_principal", f.Source.Principal)
	l.strOmit("destination_principal", f.Destination.Principal)
	l.close()
	l.close() // flow
	l.strOmit("node_name", f.NodeName)
	l.time("time", f.Time, rfc3339Nano)
	l.close()
	l.b = append(l.b, '\n')
	fl.mu.Lock()
	fl.w.Write(l.b) // a failing log must not fail traffic
	fl.mu.Unlock()
	putLine(l)
}

func endpoint(l *line, key string, e *Endpoint) {
	l.object(key)
	l.strOmit("namespace", e.Namespace)
	if len(e.Labels) > 0 {
		l.strings("labels", e.Labels)
	}
	if e.Workload != "" {
		l.key("workloads")
		l.b = append(l.b, '[')
		l.open()
		l.str("name", e.Workload)
		l.strOmit("kind", e.Kind)
		l.close()
		l.b = append(l.b, ']')
	}
	l.close()
}

func policyList(l *line, key string, p *PolicyRef) {
	l.key(key)
	l.b = append(l.b, '[')
	l.open()
	l.str("name", p.Name)
	l.strOmit("namespace", p.Namespace)
	l.strOmit("kind", p.Kind)
	l.close()
	l.b = append(l.b, ']')
}
