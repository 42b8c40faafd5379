// Package telemetry is what Palisade's proxy reports: Prometheus metrics
// under Istio's and Hubble's standard names and labels, and three JSON line
// logs — an access log (Istio's JSON access log keys), a flow log (Hubble's
// flow JSON and verdict vocabulary) and a tamper-evident audit log (a
// SHA-256 hash chain, checked by VerifyAuditLog).
//
// The names, label sets and sentinel values follow
// ../shared/reference/telemetry.md: istio_stats.cc's 25 tags on HTTP
// series and 23 on TCP series (no response_code, no grpc_response_status),
// "unknown" for missing peer data, "-" for no response flags, Envoy's
// default histogram buckets, so that Istio's Grafana dashboards and alert
// rules work on Palisade's series unchanged.
//
// Everything here is on the request path: series are cached per label set
// and log lines are formatted by hand into pooled buffers.
package telemetry
