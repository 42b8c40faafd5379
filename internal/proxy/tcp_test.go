package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
)

// echoOver writes msg, half-closes, and reads everything back.
func echoOver(c net.Conn, msg string) (string, error) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", err
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// TestTCPProxy: PostgreSQL's port is opaque TCP (a tcp-postgres Service
// port). The backend, which the policy allows, reaches a real TCP echo
// server through both proxies with mTLS between them, half-close
// included; the frontend, which it does not allow, is reset.
func TestTCPProxy(t *testing.T) {
	m := newMesh(t, "", Limits{})
	c, err := net.Dial("tcp", m.backOut["postgres"])
	if err != nil {
		t.Fatal(err)
	}
	msg := strings.Repeat("SELECT 1;", 10000)
	if got, err := echoOver(c, msg); err != nil || got != msg {
		t.Errorf("backend to postgres: %d bytes back, %v", len(got), err)
	}

	// The frontend's connection is denied at PostgreSQL's proxy: its
	// proxy's upstream connection is reset, and so is the frontend's.
	c, err = net.Dial("tcp", m.frontOut["postgres"])
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := echoOver(c, "SELECT 1;"); got != "" {
		t.Errorf("frontend to postgres: got %q", got)
	}
	// Directly, with the frontend's SVID: a reset after the handshake.
	pgID := spiffeid.RequireFromString("spiffe://cluster.local/ns/shop/sa/postgres")
	tc, err := tls.Dial("tcp", m.pgAddr, tlsconfig.MTLSClientConfig(m.front, x509bundle.NewSet(m.ca.bundle()), tlsconfig.AuthorizeID(pgID)))
	if err != nil {
		t.Fatal(err)
	}
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	// The reset may reach the write or the read first.
	_, werr := io.WriteString(tc, "SELECT 1;")
	n, err := tc.Read(make([]byte, 16))
	tc.Close()
	if n != 0 || !(errors.Is(werr, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNRESET)) {
		t.Errorf("frontend to postgres directly: want a reset, got %v, %v", werr, err)
	}
	// The backend's proxy logged the allowed connection with its bytes.
	if got := m.access.eventually(1, `"protocol":"TCP"`, `"reporter":"source"`, `"bytes_received":90000`, `"bytes_sent":90000`); len(got) != 1 {
		t.Errorf("backend's TCP access log line:\n%s", m.access)
	}
}

const egressYAML = `
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: frontend-egress, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  egress:
  - toEndpoints: [{matchLabels: {app: backend}}]
`

// TestEgressPolicy: the frontend's Cilium egress policy allows only the
// backend. An HTTP destination it does not allow gets 403 from the
// frontend's own proxy; a TCP one, and an external host, a reset — before
// any connection leaves.
func TestEgressPolicy(t *testing.T) {
	m := newMesh(t, egressYAML, Limits{})
	flaky := startEcho(t, nil)
	ext := startTCPEcho(t)
	_, extPort, _ := net.SplitHostPort(ext)
	e := m.box.get()
	p := startProxy(t, Config{
		Workload: workload(t, e, "shop/frontend"), Policy: m.box.get, SVIDs: m.front, Bundles: x509bundle.NewSet(m.ca.bundle()),
		Outbound: []OutboundListener{
			{Listen: "127.0.0.1:0", To: "shop/backend:8080", Endpoints: []string{m.strict}},
			{Listen: "127.0.0.1:0", To: "shop/flaky:8080", Endpoints: []string{flaky.addr}},
			{Listen: "127.0.0.1:0", To: "shop/postgres:5432", Endpoints: []string{m.pgAddr}},
			{Listen: "127.0.0.1:0", To: "fqdn:localhost:" + extPort, Endpoints: []string{"127.0.0.1:" + extPort}},
		},
		FlowLog: m.flows,
	})
	plain := &http.Client{Timeout: 5 * time.Second}
	if code, _ := get(t, plain, "http://"+p.OutboundAddr(0).String()+"/api/v1/x"); code != 200 {
		t.Errorf("allowed egress: %d", code)
	}
	if code, body := get(t, plain, "http://"+p.OutboundAddr(1).String()+"/x"); code != 503 || body != bodyNetworkDenied {
		t.Errorf("denied HTTP egress: %d %q", code, body)
	}
	if flaky.requests.Load() != 0 {
		t.Error("the denied destination saw a request")
	}
	for i, name := range map[int]string{2: "postgres", 3: "external"} {
		c, err := net.Dial("tcp", p.OutboundAddr(i).String())
		if errors.Is(err, syscall.ECONNRESET) {
			continue // reset before the dial returned
		}
		if err != nil {
			t.Fatal(err)
		}
		if got, err := echoOver(c, "hello"); got != "" || !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("denied TCP egress to %s: %q %v", name, got, err)
		}
	}
	if got := m.flows.eventually(3, `"verdict":"DROPPED"`, `"traffic_direction":"EGRESS"`, `"drop_reason_desc":"POLICY_DENIED"`); len(got) != 3 {
		t.Errorf("want 3 dropped egress flows:\n%s", m.flows)
	}
}
