package telemetry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " backslash \ `, "ctl \x00\x01\x1f\x7f", "tab\tnl\ncr\r", "ünïcödé ✓", "bad \xff\xfe utf8", "ls \u2028 ps \u2029"} {
		b := appendString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Errorf("%q: invalid JSON %s: %v", s, b, err)
			continue
		}
		// encoding/json's rendering, decoded, is the reference.
		ref, _ := json.Marshal(s)
		var want string
		json.Unmarshal(ref, &want)
		if got != want {
			t.Errorf("%q: round trip %q", s, got)
		}
	}
}

func TestLabelNames(t *testing.T) {
	if n := len(HTTPLabelNames()); n != 25 {
		t.Errorf("%d HTTP labels, want istio_stats.cc's 25", n)
	}
	tcp := TCPLabelNames()
	if len(tcp) != 23 {
		t.Errorf("%d TCP labels, want 23", len(tcp))
	}
	for _, n := range tcp {
		if n == "response_code" || n == "grpc_response_status" {
			t.Errorf("TCP label %s", n)
		}
	}
	l := Labels{Reporter: ReporterDestination, RequestProtocol: "http"}
	vs := l.values(false)
	names := HTTPLabelNames()
	got := map[string]string{}
	for i, n := range names {
		got[n] = vs[i]
	}
	// istio_stats.cc's sentinels: unknown for missing peer data, latest for
	// a missing canonical revision, "-" for no flags, "0" for no response.
	for k, v := range map[string]string{"source_workload": "unknown", "destination_principal": "unknown", "source_canonical_revision": "latest",
		"response_flags": "-", "response_code": "0", "grpc_response_status": "", "connection_security_policy": "unknown"} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if StatusCode(200) != "200" || StatusCode(0) != "0" || StatusCode(999) != "999" {
		t.Error("StatusCode")
	}
}

func TestAuditChain(t *testing.T) {
	var buf bytes.Buffer
	a := NewAuditLog(&buf)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.Log(&AuditEntry{Time: time.Now(), Direction: "inbound", Method: "GET", Path: "/x\"y\n", Allowed: true, AuditRule: "r", DryRun: []string{"d"}})
		}()
	}
	wg.Wait()
	if err := VerifyAuditLog(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("intact: %v", err)
	}
	seq, head := a.Head()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if seq != 20 || !strings.HasSuffix(lines[19], `"hash":"`+head+`"}`) {
		t.Errorf("head %d %s", seq, head)
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("line %d is not JSON: %v", i+1, err)
		}
	}
	if err := VerifyAuditLog(strings.NewReader("")); err != nil {
		t.Errorf("empty log: %v", err)
	}
	bad := []string{
		strings.Replace(buf.String(), `"allowed":true`, `"allowed":false`, 1),
		strings.Join(append(lines[:3:3], lines[4:]...), "\n"),
		strings.Join(append([]string{lines[1], lines[0]}, lines[2:]...), "\n"),
		strings.Join(lines[1:], "\n"),
		buf.String() + "not json\n",
	}
	for i, b := range bad {
		if err := VerifyAuditLog(strings.NewReader(b)); err == nil {
			t.Errorf("tampered log %d verified", i)
		}
	}
	// A line re-hashed after editing still breaks the chain at the next.
	l0 := strings.Replace(lines[0], `"direction":"inbound"`, `"direction":"outbound"`, 1)
	i := strings.LastIndex(l0, hashField)
	var nl line
	nl.b = append(nl.b, l0[:i]...)
	relinked := string(nl.b) + hashField + sha256Hex(l0[:i]) + `"}`
	if err := VerifyAuditLog(strings.NewReader(strings.Join(append([]string{relinked}, lines[1:]...), "\n"))); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("re-hashed line: %v", err)
	}
}

func TestFlowLogShape(t *testing.T) {
	var buf bytes.Buffer
	fl := NewFlowLog(&buf)
	fl.Log(&Flow{
		Time: time.Unix(1700000000, 5).UTC(), Verdict: Dropped, DropReason: DropPolicyDeny, Ingress: true,
		SourceIP: netip.MustParseAddr("10.0.0.1"), SourcePort: 40000, DestinationIP: netip.MustParseAddr("10.0.0.2"), DestinationPort: 8080,
		Source:      Endpoint{Namespace: "shop", Workload: "frontend", Kind: "Deployment", Labels: []string{"k8s:app=frontend"}},
		Destination: Endpoint{Namespace: "shop", Workload: "backend"},
		HTTP:        &HTTPFlow{Code: 403, Method: "GET", URL: "/admin", Protocol: "HTTP/1.1"},
		Policy:      &PolicyRef{Name: "deny-admin", Namespace: "shop", Kind: "AuthorizationPolicy"},
		Layer:       "authz", Rule: "ns[shop]-policy[deny-admin]-rule[0]", NodeName: "n1",
	})
	var got struct {
		Flow struct {
			Verdict, DropReasonDesc string
			IP                      struct{ Source, Destination, IPVersion string }
			Type                    string
			TrafficDirection        string
			IngressDeniedBy         []PolicyRef
			L7                      struct{ HTTP HTTPFlow }
		}
		NodeName, Time string
	}
	// Hubble's JSON uses proto field names; map them for the decoder.
	s := strings.NewReplacer(`"drop_reason_desc"`, `"DropReasonDesc"`, `"ipVersion"`, `"IPVersion"`, `"traffic_direction"`, `"TrafficDirection"`,
		`"ingress_denied_by"`, `"IngressDeniedBy"`, `"node_name"`, `"NodeName"`).Replace(buf.String())
	if err := json.Unmarshal([]byte(s), &got); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	f := got.Flow
	if f.Verdict != "DROPPED" || f.DropReasonDesc != "POLICY_DENY" || f.IP.Source != "10.0.0.1" || f.IP.IPVersion != "IPv4" ||
		f.Type != "L7" || f.TrafficDirection != "INGRESS" || len(f.IngressDeniedBy) != 1 || f.L7.HTTP.Code != 403 ||
		got.NodeName != "n1" || got.Time != "2023-11-14T22:13:20.000000005Z" {
		t.Errorf("flow: %+v\n%s", got, buf.String())
	}
}

func TestAccessLogTyped(t *testing.T) {
	var buf bytes.Buffer
	NewAccessLog(&buf).Log(&AccessEntry{StartTime: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC), Method: "GET", Path: "/x",
		Protocol: "HTTP/1.1", ResponseCode: 200, BytesSent: 10, Duration: 1500 * time.Microsecond, PolicyAllowed: true})
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m["start_time"] != "2026-01-02T03:04:05.006Z" || m["response_code"] != float64(200) || m["response_flags"] != "-" ||
		m["duration"] != float64(1) || m["authority"] != nil || m["policy_verdict"] != "allow" {
		t.Errorf("%s", buf.String())
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestOpenAuditLog: a restarted process continues the chain of the file
// it left, so the whole file verifies; a file already tampered with is
// refused, naming the line.
func TestOpenAuditLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	for run := 1; run <= 3; run++ {
		a, f, err := OpenAuditLog(path)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		for range 2 {
			if err := a.Log(&AuditEntry{Time: time.Now(), Direction: "inbound", Allowed: true, AuditRule: "r"}); err != nil {
				t.Fatal(err)
			}
		}
		if seq, _ := a.Head(); seq != uint64(2*run) {
			t.Errorf("run %d: sequence %d, want %d", run, seq, 2*run)
		}
		f.Close()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyAuditLog(bytes.NewReader(b)); err != nil {
		t.Fatalf("the file after three runs: %v", err)
	}
	if err := os.WriteFile(path, bytes.Replace(b, []byte(`"allowed":true`), []byte(`"allowed":false`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenAuditLog(path); err == nil || !strings.Contains(err.Error(), "line 1") || !strings.Contains(err.Error(), path) {
		t.Errorf("tampered file: %v", err)
	}
}
