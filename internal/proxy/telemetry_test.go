package proxy

import (
	"encoding/json"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"

	"github.com/palisade-security/palisade/internal/telemetry"
)

// scrape fetches and parses a proxy's metrics over HTTP.
func scrape(t *testing.T, addr, path string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// find returns the series of a family whose labels include want.
func find(mf *dto.MetricFamily, want map[string]string) []*dto.Metric {
	var out []*dto.Metric
	for _, m := range mf.GetMetric() {
		ls := labelsOf(m)
		ok := true
		for k, v := range want {
			ok = ok && ls[k] == v
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

// TestMetrics scrapes both proxies after allowed, denied and TCP traffic
// and checks Istio's names, types, label sets and values, Envoy's
// histogram buckets, Hubble's verdict counter and the SVID expiry.
func TestMetrics(t *testing.T) {
	m := newMesh(t, "", Limits{})
	plain := &http.Client{Timeout: 5 * time.Second}
	for i := 0; i < 3; i++ {
		get(t, plain, "http://"+m.frontOut["backend"]+"/api/v1/users")
	}
	get(t, plain, "http://"+m.frontOut["backend"]+"/admin/x")
	c, _ := net.Dial("tcp", m.backOut["postgres"])
	echoOver(c, "ping")

	// The proxy counts a TCP connection closed just after its client saw
	// the close: scrape until it has.
	var back map[string]*dto.MetricFamily
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		back = scrape(t, m.backP.MetricsAddr().String(), "/metrics")
		if s := find(back["istio_tcp_connections_closed_total"], nil); (len(s) == 1 && s[0].GetCounter().GetValue() == 1) || time.Now().After(deadline) {
			break
		}
	}
	front := scrape(t, m.frontP.MetricsAddr().String(), "/stats/prometheus")

	types := map[string]dto.MetricType{
		"istio_requests_total":                   dto.MetricType_COUNTER,
		"istio_request_duration_milliseconds":    dto.MetricType_HISTOGRAM,
		"istio_request_bytes":                    dto.MetricType_HISTOGRAM,
		"istio_response_bytes":                   dto.MetricType_HISTOGRAM,
		"istio_tcp_connections_opened_total":     dto.MetricType_COUNTER,
		"istio_tcp_connections_closed_total":     dto.MetricType_COUNTER,
		"istio_tcp_sent_bytes_total":             dto.MetricType_COUNTER,
		"istio_tcp_received_bytes_total":         dto.MetricType_COUNTER,
		"hubble_policy_verdicts_total":           dto.MetricType_COUNTER,
		"istio_build":                            dto.MetricType_GAUGE,
		"palisade_svid_expiry_timestamp_seconds": dto.MetricType_GAUGE,
	}
	for name, typ := range types {
		mf := back[name]
		if mf == nil {
			t.Errorf("backend: no %s", name)
			continue
		}
		if mf.GetType() != typ {
			t.Errorf("%s: type %v, want %v", name, mf.GetType(), typ)
		}
	}
	// Exactly Istio's label sets: 25 on HTTP series, 23 on TCP series.
	wantHTTP := telemetry.HTTPLabelNames()
	sort.Strings(wantHTTP)
	for _, name := range []string{"istio_requests_total", "istio_request_duration_milliseconds", "istio_request_bytes", "istio_response_bytes"} {
		for _, s := range back[name].GetMetric() {
			var got []string
			for k := range labelsOf(s) {
				got = append(got, k)
			}
			sort.Strings(got)
			if !slices.Equal(got, wantHTTP) {
				t.Errorf("%s labels:\n got %v\nwant %v", name, got, wantHTTP)
			}
		}
	}
	if len(wantHTTP) != 25 {
		t.Errorf("%d HTTP labels, want istio_stats.cc's 25", len(wantHTTP))
	}
	for _, s := range back["istio_tcp_sent_bytes_total"].GetMetric() {
		ls := labelsOf(s)
		if len(ls) != 23 || ls["response_code"] != "" || ls["grpc_response_status"] != "" {
			t.Errorf("TCP series labels: %v", ls)
		}
	}

	// Server side (reporter=destination): the peer from its certificate,
	// mutual_tls, the service of the port.
	server := map[string]string{
		"reporter": "destination", "source_workload": "frontend", "source_workload_namespace": "shop",
		"source_principal": "spiffe://cluster.local/ns/shop/sa/frontend", "source_app": "frontend", "source_version": "v1",
		"source_canonical_service": "frontend", "source_canonical_revision": "v1", "source_cluster": "Kubernetes",
		"destination_workload": "backend", "destination_workload_namespace": "shop", "destination_app": "backend",
		"destination_version": "v2", "destination_principal": "spiffe://cluster.local/ns/shop/sa/backend",
		"destination_service": "backend.shop.svc.cluster.local", "destination_service_name": "backend",
		"destination_service_namespace": "shop", "destination_cluster": "Kubernetes", "request_protocol": "http",
		"response_flags": "-", "connection_security_policy": "mutual_tls", "grpc_response_status": "",
	}
	for code, n := range map[string]float64{"200": 3, "403": 1} {
		want := map[string]string{"response_code": code}
		for k, v := range server {
			want[k] = v
		}
		s := find(back["istio_requests_total"], want)
		if len(s) != 1 || s[0].GetCounter().GetValue() != n {
			t.Errorf("backend istio_requests_total{response_code=%s}: %v", code, back["istio_requests_total"])
		}
	}
	// Client side (reporter=source): connection_security_policy unknown,
	// as Istio's client side always reports.
	s := find(front["istio_requests_total"], map[string]string{"reporter": "source", "source_workload": "frontend",
		"destination_workload": "backend", "destination_principal": "spiffe://cluster.local/ns/shop/sa/backend",
		"source_principal": "spiffe://cluster.local/ns/shop/sa/frontend", "destination_service": "backend.shop.svc.cluster.local",
		"connection_security_policy": "unknown", "response_code": "200"})
	if len(s) != 1 || s[0].GetCounter().GetValue() != 3 {
		t.Errorf("frontend istio_requests_total: %v", front["istio_requests_total"])
	}
	// Envoy's default buckets, in milliseconds.
	h := find(back["istio_request_duration_milliseconds"], map[string]string{"response_code": "200"})
	if len(h) != 1 {
		t.Fatal("no duration histogram")
	}
	var les []float64
	for _, b := range h[0].GetHistogram().GetBucket() {
		if !math.IsInf(b.GetUpperBound(), 1) {
			les = append(les, b.GetUpperBound())
		}
	}
	if !slices.Equal(les, telemetry.DurationBuckets) || h[0].GetHistogram().GetSampleCount() != 3 {
		t.Errorf("buckets %v count %d", les, h[0].GetHistogram().GetSampleCount())
	}
	// TCP, reported by the backend's outbound listener.
	tcp := map[string]string{"reporter": "source", "request_protocol": "tcp", "destination_workload": "postgres",
		"destination_service": "postgres.shop.svc.cluster.local"}
	for name, v := range map[string]float64{"istio_tcp_connections_opened_total": 1, "istio_tcp_connections_closed_total": 1,
		"istio_tcp_sent_bytes_total": 4, "istio_tcp_received_bytes_total": 4} {
		if s := find(back[name], tcp); len(s) != 1 || s[0].GetCounter().GetValue() != v {
			t.Errorf("%s: %v", name, back[name])
		}
	}
	// Hubble's verdicts: the three allowed requests and the DENY, as L7.
	for action, n := range map[string]float64{"forwarded": 3, "dropped": 1} {
		s := find(back["hubble_policy_verdicts_total"], map[string]string{"action": action, "direction": "ingress", "match": "l7/http"})
		if len(s) != 1 || s[0].GetCounter().GetValue() != n {
			t.Errorf("hubble_policy_verdicts_total{action=%s}: %v", action, back["hubble_policy_verdicts_total"])
		}
	}
	exp := find(back["palisade_svid_expiry_timestamp_seconds"], map[string]string{"spiffe_id": "spiffe://cluster.local/ns/shop/sa/backend"})
	if len(exp) != 1 || int64(exp[0].GetGauge().GetValue()) != m.back.p.Load().Certificates[0].NotAfter.Unix() {
		t.Errorf("svid expiry: %v", back["palisade_svid_expiry_timestamp_seconds"])
	}
	if s := find(back["istio_build"], map[string]string{"component": "proxy", "tag": "test"}); len(s) != 1 {
		t.Errorf("istio_build: %v", back["istio_build"])
	}
}

// TestLogs checks the access and flow logs' shapes, and the audit log's
// hash chain: intact it verifies; a changed, removed or reordered line
// does not.
func TestLogs(t *testing.T) {
	m := newMesh(t, "", Limits{})
	plain := &http.Client{Timeout: 5 * time.Second}
	for _, p := range []string{"/api/v1/audited/a", "/api/v1/dry/b", "/api/v1/audited/c", "/admin/x", "/api/v1/plain"} {
		get(t, plain, "http://"+m.frontOut["backend"]+p)
	}
	// Access log: Istio's JSON keys, typed values.
	for _, l := range m.access.lines(`"reporter":"destination"`) {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("access log line is not JSON: %v\n%s", err, l)
		}
		for _, k := range []string{"start_time", "method", "path", "protocol", "response_code", "response_flags", "bytes_received",
			"bytes_sent", "duration", "upstream_host", "upstream_cluster", "downstream_remote_address", "downstream_peer_principal",
			"policy_verdict", "policy", "policy_rule"} {
			if _, ok := e[k]; !ok {
				t.Errorf("access log: no %s in %s", k, l)
			}
		}
		if _, ok := e["response_code"].(float64); !ok {
			t.Errorf("response_code is not a number: %s", l)
		}
	}
	deny := m.access.lines(`"path":"/admin/x"`, `"reporter":"destination"`)
	if len(deny) != 1 || !strings.Contains(deny[0], `"response_code_details":"rbac_access_denied_matched_policy[ns[shop]-policy[backend-deny-admin]-rule[0]]"`) ||
		!strings.Contains(deny[0], `"policy_verdict":"deny"`) {
		t.Errorf("deny line: %v", deny)
	}
	// Flow log: Hubble's verdicts and the deciding policy.
	type flowLine struct {
		Flow struct {
			Verdict          string `json:"verdict"`
			DropReasonDesc   string `json:"drop_reason_desc"`
			Type             string `json:"Type"`
			TrafficDirection string `json:"traffic_direction"`
			L7               struct {
				HTTP struct {
					Code int    `json:"code"`
					URL  string `json:"url"`
				} `json:"http"`
			} `json:"l7"`
			Source struct {
				Namespace string `json:"namespace"`
				Labels    []string
				Workloads []struct{ Name, Kind string }
			} `json:"source"`
			IngressAllowedBy []struct{ Name, Namespace, Kind string }    `json:"ingress_allowed_by"`
			IngressDeniedBy  []struct{ Name, Namespace, Kind string }    `json:"ingress_denied_by"`
			Palisade         struct{ Layer, Policy, Rule, Audit string } `json:"palisade"`
		} `json:"flow"`
		NodeName string `json:"node_name"`
	}
	flows := map[string]flowLine{}
	for _, l := range m.flows.lines(`"traffic_direction":"INGRESS"`) {
		var f flowLine
		if err := json.Unmarshal([]byte(l), &f); err != nil {
			t.Fatalf("flow line: %v\n%s", err, l)
		}
		flows[f.Flow.L7.HTTP.URL] = f
	}
	if f := flows["/admin/x"]; f.Flow.Verdict != "DROPPED" || f.Flow.DropReasonDesc != "POLICY_DENY" || len(f.Flow.IngressDeniedBy) != 1 ||
		f.Flow.IngressDeniedBy[0].Name != "backend-deny-admin" || f.Flow.IngressDeniedBy[0].Kind != "AuthorizationPolicy" || f.Flow.L7.HTTP.Code != 403 {
		t.Errorf("denied flow: %+v", f)
	}
	if f := flows["/api/v1/plain"]; f.Flow.Verdict != "FORWARDED" || f.Flow.Type != "L7" || len(f.Flow.IngressAllowedBy) != 1 ||
		f.Flow.Source.Workloads[0].Name != "frontend" || !slices.Contains(f.Flow.Source.Labels, "k8s:app=frontend") || f.NodeName != "test-node" {
		t.Errorf("forwarded flow: %+v", f)
	}
	if f := flows["/api/v1/audited/a"]; f.Flow.Verdict != "AUDIT" || f.Flow.Palisade.Audit != "ns[shop]-policy[backend-audit]-rule[0]" {
		t.Errorf("audited flow: %+v", f)
	}

	// Audit log: the AUDIT matches and the dry-run DENY, hash-chained.
	audit := m.audit.String()
	lines := strings.Split(strings.TrimSuffix(audit, "\n"), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], `"dry_run":["ns[shop]-policy[backend-dry-deny]-rule[0]"]`) ||
		!strings.Contains(lines[0], `"audit_rule":"ns[shop]-policy[backend-audit]-rule[0]"`) {
		t.Fatalf("audit log:\n%s", audit)
	}
	if err := telemetry.VerifyAuditLog(strings.NewReader(audit)); err != nil {
		t.Errorf("intact audit log: %v", err)
	}
	tampered := map[string][]string{
		"changed":   {lines[0], strings.Replace(lines[1], `"allowed":true`, `"allowed":false`, 1), lines[2]},
		"removed":   {lines[0], lines[2]},
		"reordered": {lines[1], lines[0], lines[2]},
	}
	for name, ls := range tampered {
		if err := telemetry.VerifyAuditLog(strings.NewReader(strings.Join(ls, "\n") + "\n")); err == nil {
			t.Errorf("%s line: verified", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestSVIDRotation rotates the SVIDs of both proxies in the middle of a
// load loop — through the frontend's pooled connections and on fresh mTLS
// connections to the backend — with no failed request; new handshakes
// see the new certificate and the expiry metric follows it.
func TestSVIDRotation(t *testing.T) {
	m := newMesh(t, "", Limits{})
	bundle := x509bundle.NewSet(m.ca.bundle())
	oldSerial := m.back.p.Load().Certificates[0].SerialNumber
	stop := make(chan struct{})
	errs := make(chan error, 100)
	var total [4]int
	done := make(chan int, 4)
	for w := 0; w < 4; w++ {
		go func() {
			n := 0
			defer func() { done <- n }()
			var c *http.Client
			url := "http://" + m.frontOut["backend"] + "/api/v1/load"
			if w%2 == 1 {
				// A new connection, and so a handshake, per request.
				c = mtlsClient(m.front, bundle, backendID, false)
				c.Transport.(*http.Transport).DisableKeepAlives = true
				url = "https://" + m.strict + "/api/v1/load"
			} else {
				c = &http.Client{Timeout: 5 * time.Second}
			}
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url)
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- &statusError{resp.StatusCode}
					return
				}
				n++
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	newBack := m.ca.svid(t, "/ns/shop/sa/backend")
	m.back.rotate(newBack)
	m.front.rotate(m.ca.svid(t, "/ns/shop/sa/frontend"))
	time.Sleep(300 * time.Millisecond)
	close(stop)
	for i := range total {
		total[i] = <-done
	}
	close(errs)
	for err := range errs {
		t.Errorf("request failed during rotation: %v", err)
	}
	t.Logf("requests per worker: %v", total)
	for i, n := range total {
		if n < 10 {
			t.Errorf("worker %d made %d requests", i, n)
		}
	}
	c := mtlsClient(m.front, bundle, backendID, false)
	resp, err := c.Get("https://" + m.strict + "/api/v1/after")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.TLS.PeerCertificates[0].SerialNumber; got.Cmp(newBack.Certificates[0].SerialNumber) != 0 || got.Cmp(oldSerial) == 0 {
		t.Errorf("after rotation the backend presents serial %v", got)
	}
	mfs := scrape(t, m.backP.MetricsAddr().String(), "/metrics")
	if s := find(mfs["palisade_svid_expiry_timestamp_seconds"], nil); len(s) != 1 ||
		strconv.FormatInt(int64(s[0].GetGauge().GetValue()), 10) != strconv.FormatInt(newBack.Certificates[0].NotAfter.Unix(), 10) {
		t.Errorf("expiry after rotation: %v", s)
	}
}

type statusError struct{ code int }

func (e *statusError) Error() string { return "status " + strconv.Itoa(e.code) }
