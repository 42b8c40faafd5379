package proxy

import (
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
)

// flakyDR is a DestinationRule for the flaky service, plaintext (its test
// endpoints are plain HTTP servers), with trafficPolicy fields added.
func flakyDR(policy string) string {
	return `
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: flaky, namespace: shop}
spec:
  host: flaky.shop.svc.cluster.local
  trafficPolicy:
    tls: {mode: DISABLE}
` + policy
}

// frontendTo runs a frontend proxy with one outbound listener to the
// flaky service at endpoints, and returns its address.
func frontendTo(t *testing.T, m *mesh, to string, endpoints ...string) (string, *Proxy) {
	t.Helper()
	p := startProxy(t, Config{
		Workload: workload(t, m.box.get(), "shop/frontend"), Policy: m.box.get, SVIDs: m.front,
		Bundles:   x509bundle.NewSet(m.ca.bundle()),
		Outbound:  []OutboundListener{{Listen: "127.0.0.1:0", To: to, Endpoints: endpoints}},
		AccessLog: m.access,
	})
	return "http://" + p.OutboundAddr(0).String(), p
}

func statusServer(t *testing.T, status int) *echoApp {
	return startEcho(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		fmt.Fprintf(w, "status %d", status)
	})
}

// TestOutlierDetection: consecutive5xxErrors ejects a host at once and
// it returns after baseEjectionTime; the default maxEjectionPercent (10%)
// never ejects one host of two. The timing of the state machine is in
// TestOutlierStateMachine.
func TestOutlierDetection(t *testing.T) {
	m := newMesh(t, flakyDR(`    outlierDetection: {consecutive5xxErrors: 2, interval: 0.05s, baseEjectionTime: 0.3s, maxEjectionPercent: 100}`), Limits{})
	bad, good := statusServer(t, 500), statusServer(t, 200)
	url, p := frontendTo(t, m, "shop/flaky:8080", bad.addr, good.addr)
	plain := &http.Client{Timeout: 5 * time.Second}
	send := func(n int) (codes map[int]int) {
		codes = map[int]int{}
		for i := 0; i < n; i++ {
			code, _ := get(t, plain, url+"/x")
			codes[code]++
		}
		return codes
	}
	// Round robin: bad, good, bad (second error: ejected), then good only.
	if got := send(10); got[500] != 2 || got[200] != 8 {
		t.Errorf("first round: %v, want 2×500 8×200", got)
	}
	c := p.outbound[0].cluster
	c.mu.Lock()
	ejected := c.eps[0].ejected
	c.mu.Unlock()
	if !ejected {
		t.Error("the failing host is not ejected")
	}
	time.Sleep(600 * time.Millisecond) // past baseEjectionTime and a sweep
	if got := send(6); got[500] != 2 {
		t.Errorf("after the ejection time: %v, want the bad host back (and ejected again)", got)
	}

	// maxEjectionPercent left at 10%: ejecting 1 host of 2 is 50%.
	m2 := newMesh(t, flakyDR(`    outlierDetection: {consecutive5xxErrors: 2, interval: 0.05s, baseEjectionTime: 10s}`), Limits{})
	url, _ = frontendTo(t, m2, "shop/flaky:8080", bad.addr, good.addr)
	if got := send(10); got[500] != 5 {
		t.Errorf("default maxEjectionPercent: %v, want the bad host never ejected", got)
	}
}

// TestOutlierStateMachine drives the per-endpoint state machine with a
// synthetic clock: ejection at the consecutive-error thresholds, return
// after baseEjectionTime × ejections (capped at max_ejection_time), the
// multiplier going down one per healthy interval, maxEjectionPercent,
// and the panic threshold (minHealthPercent).
func TestOutlierStateMachine(t *testing.T) {
	s := defaultSettings()
	s.outlier = outlierSettings{enabled: true, consecutive5xx: 3, consecutiveGateway: 2, interval: 10 * time.Second,
		baseEjection: 30 * time.Second, maxEjection: 300 * time.Second, maxEjectionPercent: 50}
	c := newCluster("t", []string{"a", "b"}, nil)
	a, b := c.eps[0], c.eps[1]
	t0 := time.Unix(1000, 0)
	at := func(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }
	pickAll := func(now time.Time) map[string]int {
		got := map[string]int{}
		for i := 0; i < 4; i++ {
			ep, err := c.pick(s, nil, now)
			if err != nil {
				got["none"]++
				continue
			}
			got[ep.addr]++
		}
		return got
	}
	state := func(ep *endpoint) (bool, int) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return ep.ejected, ep.ejections
	}
	pickAll(at(0)) // starts the interval timer
	// 500, 500, 200: the success resets the count.
	c.report(a, s, 500, false, at(1))
	c.report(a, s, 500, false, at(1))
	c.report(a, s, 200, false, at(1))
	c.report(a, s, 500, false, at(2))
	c.report(a, s, 500, false, at(2))
	if ej, _ := state(a); ej {
		t.Fatal("ejected after a success reset the count")
	}
	// A third consecutive 5xx (a connect failure counts as one) ejects.
	c.report(a, s, 0, true, at(3))
	if ej, n := state(a); !ej || n != 1 {
		t.Fatalf("after 3 consecutive errors: ejected=%v ejections=%d", ej, n)
	}
	if got := pickAll(at(5)); got["b"] != 4 {
		t.Errorf("while a is ejected: %v", got)
	}
	// maxEjectionPercent 50: ejecting b too would be 100%.
	c.report(b, s, 503, false, at(6))
	c.report(b, s, 503, false, at(6))
	if ej, _ := state(b); ej {
		t.Error("b ejected past maxEjectionPercent")
	}
	// a returns at the first sweep 30s after its ejection (sweeps at 10s
	// steps from 0: the one at 40s).
	if ej, _ := state(a); !ej {
		t.Fatal("a returned early")
	}
	pickAll(at(39))
	if ej, _ := state(a); !ej {
		t.Error("a returned before 30s")
	}
	pickAll(at(40))
	if ej, n := state(a); ej || n != 1 {
		t.Errorf("at 40s: ejected=%v ejections=%d, want back with the multiplier kept", ej, n)
	}
	// Ejected again before a healthy sweep: 2 × 30s.
	for i := 0; i < 3; i++ {
		c.report(a, s, 500, false, at(45))
	}
	if _, n := state(a); n != 2 {
		t.Errorf("second ejection: multiplier %d", n)
	}
	pickAll(at(100)) // 55s after: still out
	if ej, _ := state(a); !ej {
		t.Error("a returned before 60s")
	}
	pickAll(at(110))
	if ej, n := state(a); ej || n != 2 {
		t.Errorf("at 110s: ejected=%v ejections=%d", ej, n)
	}
	// Healthy sweeps bring the multiplier down, one per interval.
	pickAll(at(120))
	if _, n := state(a); n != 1 {
		t.Errorf("after one healthy sweep: multiplier %d, want 1", n)
	}
	pickAll(at(130))
	if _, n := state(a); n != 0 {
		t.Errorf("after two healthy sweeps: multiplier %d, want 0", n)
	}
	// Gateway errors: 2 consecutive 502/503/504 eject before 3 × 5xx.
	c.report(a, s, 502, false, at(131))
	c.report(a, s, 500, false, at(131)) // a non-gateway 5xx resets the gateway count
	c.report(a, s, 504, false, at(131))
	if ej, _ := state(a); !ej {
		t.Error("3 consecutive 5xx (the last gateway errors not consecutive) should eject")
	}
	// The ejection time is capped at max_ejection_time.
	c.mu.Lock()
	a.ejections = 50
	a.ejectedAt = at(131)
	c.mu.Unlock()
	pickAll(at(131 + 299))
	if ej, _ := state(a); !ej {
		t.Error("returned before max_ejection_time")
	}
	pickAll(at(131 + 310))
	if ej, _ := state(a); ej {
		t.Error("ejection time not capped at max_ejection_time")
	}
	// With every host ejected there is no healthy upstream, unless
	// minHealthPercent puts the cluster in panic mode.
	s.outlier.maxEjectionPercent = 100
	for _, ep := range []*endpoint{a, b} {
		for i := 0; i < 3; i++ {
			c.report(ep, s, 500, false, at(500))
		}
	}
	if got := pickAll(at(501)); got["none"] != 4 {
		t.Errorf("all ejected: %v", got)
	}
	s.outlier.minHealthPercent = 50
	if got := pickAll(at(501)); got["a"] != 2 || got["b"] != 2 {
		t.Errorf("panic mode: %v", got)
	}
}

// TestRetries: Istio's default retry policy retries a 503 and a connect
// failure twice, on another host; when retries run out the flags say
// URX.
func TestRetries(t *testing.T) {
	m := newMesh(t, flakyDR(""), Limits{})
	unavailable, good := statusServer(t, 503), statusServer(t, 200)
	closedAddr := refusingAddr(t)
	plain := &http.Client{Timeout: 10 * time.Second}

	url, _ := frontendTo(t, m, "shop/flaky:8080", unavailable.addr, good.addr)
	for i := 0; i < 4; i++ {
		if code, _ := get(t, plain, url+"/x"); code != 200 {
			t.Errorf("503 then another host: %d", code)
		}
	}
	url, _ = frontendTo(t, m, "shop/flaky:8080", unavailable.addr)
	before := unavailable.requests.Load()
	if code, _ := get(t, plain, url+"/x"); code != 503 {
		t.Errorf("503 everywhere: %d", code)
	}
	if n := unavailable.requests.Load() - before; n != 3 {
		t.Errorf("503 everywhere: %d attempts, want 3", n)
	}
	url, _ = frontendTo(t, m, "shop/flaky:8080", closedAddr, good.addr)
	for i := 0; i < 4; i++ {
		if code, _ := get(t, plain, url+"/x"); code != 200 {
			t.Errorf("connect failure then another host: %d", code)
		}
	}
	url, _ = frontendTo(t, m, "shop/flaky:8080", closedAddr)
	if code, body := get(t, plain, url+"/x"); code != 503 || !strings.Contains(body, "connection failure") {
		t.Errorf("connect failure everywhere: %d %q", code, body)
	}
	if got := m.access.eventually(1, `"response_flags":"UF,URX"`); len(got) != 1 {
		t.Errorf("want one UF,URX line:\n%s", m.access)
	}
	if got := m.access.eventually(1, `"response_code":503`, `"response_flags":"URX"`); len(got) != 1 {
		t.Errorf("want one 503 URX line:\n%s", m.access)
	}
	// A request body up to 64 KiB is buffered and sent again on a
	// retry, as Envoy buffers it; a longer one streams, and is not
	// retried.
	echo := startEcho(t, nil)
	url, _ = frontendTo(t, m, "shop/flaky:8080", unavailable.addr, echo.addr)
	before = unavailable.requests.Load()
	for i := 0; i < 4; i++ {
		resp, err := plain.Post(url+"/x", "text/plain", strings.NewReader("the body"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), "body=the body") {
			t.Errorf("POST, 503 then another host: %d %q", resp.StatusCode, b)
		}
	}
	if unavailable.requests.Load() == before {
		t.Error("no POST went to the 503 host first")
	}
	url, _ = frontendTo(t, m, "shop/flaky:8080", unavailable.addr)
	for _, c := range []struct {
		size, attempts int
	}{{10, 3}, {syncBodyMax + 1, 1}} {
		before = unavailable.requests.Load()
		resp, err := plain.Post(url+"/x", "text/plain", strings.NewReader(strings.Repeat("b", c.size)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if n := unavailable.requests.Load() - before; resp.StatusCode != 503 || n != int64(c.attempts) {
			t.Errorf("POST of %d bytes to 503: %d after %d attempts, want %d", c.size, resp.StatusCode, n, c.attempts)
		}
	}
}

// blockingServer holds every request until release is closed.
func blockingServer(t *testing.T) (*echoApp, chan struct{}, *atomic.Int64) {
	release := make(chan struct{})
	var inflight atomic.Int64
	app := startEcho(t, func(w http.ResponseWriter, r *http.Request) {
		inflight.Add(1)
		<-release
		io.WriteString(w, "done")
	})
	return app, release, &inflight
}

// TestCircuitBreakers: past maxConnections a request waits, past
// http1MaxPendingRequests it is refused (503 UO); http2MaxRequests caps
// the requests in flight.
func TestCircuitBreakers(t *testing.T) {
	for _, tc := range []struct {
		name, pool string
		ok, uo     int
	}{
		{"maxConnections and http1MaxPendingRequests", `    connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}`, 2, 2},
		{"http2MaxRequests", `    connectionPool: {http: {http2MaxRequests: 3}}`, 3, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMesh(t, flakyDR(tc.pool), Limits{})
			app, release, inflight := blockingServer(t)
			url, _ := frontendTo(t, m, "shop/flaky:8080", app.addr)
			var wg sync.WaitGroup
			codes := make(chan int, 4)
			for i := 0; i < 4; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := http.Get(url + "/x")
					if err != nil {
						codes <- 0
						return
					}
					io.ReadAll(resp.Body)
					resp.Body.Close()
					codes <- resp.StatusCode
				}()
				time.Sleep(50 * time.Millisecond)
			}
			deadline := time.Now().Add(5 * time.Second)
			for len(codes) < tc.uo && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			close(release)
			wg.Wait()
			close(codes)
			got := map[int]int{}
			for c := range codes {
				got[c]++
			}
			if got[200] != tc.ok || got[503] != tc.uo {
				t.Errorf("got %v (in flight at once: %d), want %d×200 %d×503", got, inflight.Load(), tc.ok, tc.uo)
			}
			if n := len(m.access.eventually(tc.uo, `"response_flags":"UO"`)); n != tc.uo {
				t.Errorf("%d UO lines, want %d", n, tc.uo)
			}
		})
	}
}

// TestMaxRequestsPerConnection: a connection carries at most
// maxRequestsPerConnection requests.
func TestMaxRequestsPerConnection(t *testing.T) {
	m := newMesh(t, flakyDR(`    connectionPool: {http: {maxRequestsPerConnection: 2}}`), Limits{})
	app := startEcho(t, nil)
	url, _ := frontendTo(t, m, "shop/flaky:8080", app.addr)
	for i := 0; i < 6; i++ {
		if code, _ := get(t, http.DefaultClient, url+"/x"); code != 200 {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	if n := app.conns.Load(); n != 3 {
		t.Errorf("%d upstream connections for 6 requests, want 3", n)
	}
	// Without the limit, one connection carries them all.
	m2 := newMesh(t, flakyDR(""), Limits{})
	app2 := startEcho(t, nil)
	url, _ = frontendTo(t, m2, "shop/flaky:8080", app2.addr)
	for i := 0; i < 6; i++ {
		get(t, http.DefaultClient, url+"/x")
	}
	if n := app2.conns.Load(); n != 1 {
		t.Errorf("%d upstream connections without a limit, want 1", n)
	}
}

// TestConnectTimeoutAndSecureNaming: ISTIO_MUTUAL towards a host that
// never completes the handshake fails within connectTimeout; towards a
// host presenting another workload's identity it fails the handshake.
func TestConnectTimeoutAndSecureNaming(t *testing.T) {
	m := newMesh(t, `
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: backend, namespace: shop}
spec:
  host: backend.shop.svc.cluster.local
  trafficPolicy:
    connectionPool: {tcp: {connectTimeout: 0.2s}}
`, Limits{})
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	url, _ := frontendTo(t, m, "shop/backend:8080", silent.Addr().String())
	start := time.Now()
	code, body := get(t, http.DefaultClient, url+"/api/v1/x")
	if d := time.Since(start); code != 503 || d > 2*time.Second {
		t.Errorf("silent host: %d %q after %v", code, body, d)
	}
	// PostgreSQL's proxy answers for the backend: its SPIFFE ID is not the
	// backend's, so the frontend refuses it.
	before := m.app.requests.Load()
	url, _ = frontendTo(t, m, "shop/backend:8080", m.pgAddr)
	if code, body := get(t, http.DefaultClient, url+"/api/v1/x"); code != 503 || !strings.Contains(body, "connection failure") {
		t.Errorf("impostor server: %d %q", code, body)
	}
	if got := m.access.eventually(1, `"upstream_transport_failure_reason":"TLS error:`, `unexpected ID`); len(got) != 1 {
		t.Errorf("want the secure naming failure in the access log:\n%s", m.access)
	}
	if m.app.requests.Load() != before {
		t.Error("a request went through")
	}
}

// TestAutoMTLS: without a DestinationRule tls setting the frontend sends
// mTLS to a PERMISSIVE port (so principal rules match) and plaintext to a
// DISABLE port, following the server as Istio's auto mTLS does.
func TestAutoMTLS(t *testing.T) {
	m := newMesh(t, "", Limits{})
	permissive, _ := frontendTo(t, m, "shop/backend:8081", m.permissive)
	disable, _ := frontendTo(t, m, "shop/backend:8082", m.disable)
	if code, body := get(t, http.DefaultClient, permissive+"/api/v1/x"); code != 200 || !strings.Contains(body, "URI=spiffe://cluster.local/ns/shop/sa/frontend") {
		t.Errorf("PERMISSIVE port: %d %q, want mTLS", code, body)
	}
	if code, body := get(t, http.DefaultClient, disable+"/public/x"); code != 200 || !strings.Contains(body, "xfcc=\n") {
		t.Errorf("DISABLE port: %d %q, want plaintext", code, body)
	}
	if code, _ := get(t, http.DefaultClient, disable+"/api/v1/x"); code != 403 {
		t.Errorf("DISABLE port, principal-only path: %d, want 403 (no principal in plaintext)", code)
	}
}

// TestExternalSimpleTLS: a DestinationRule with tls SIMPLE for an
// external host originates TLS, verified against the roots and the host
// name, from a plaintext HTTP request of the application.
func TestExternalSimpleTLS(t *testing.T) {
	m := newMesh(t, "", Limits{})
	ext := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls=%v host=%s", r.TLS != nil, r.Host)
	}))
	defer ext.Close()
	_, port, _ := net.SplitHostPort(ext.Listener.Addr().String())
	m.box.p.Store(newEngine(t, meshYAML+`
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: shop}
spec:
  host: example.com
  trafficPolicy: {tls: {mode: SIMPLE}}
`, testKeys{}))
	roots := x509.NewCertPool()
	roots.AddCert(ext.Certificate())
	p := startProxy(t, Config{
		Workload: workload(t, m.box.get(), "shop/frontend"), Policy: m.box.get, SVIDs: m.front,
		Bundles: x509bundle.NewSet(m.ca.bundle()), ExternalRoots: roots,
		Outbound: []OutboundListener{{Listen: "127.0.0.1:0", To: "fqdn:example.com:" + port, Protocol: "http",
			Endpoints: []string{ext.Listener.Addr().String()}}},
	})
	code, body := get(t, http.DefaultClient, "http://"+p.OutboundAddr(0).String()+"/v1/charges")
	if code != 200 || !strings.HasPrefix(body, "tls=true") {
		t.Errorf("SIMPLE TLS origination: %d %q", code, body)
	}
}

// TestRetryBudget: maxRetries bounds the retries in flight across the
// cluster.
func TestRetryBudget(t *testing.T) {
	s := defaultSettings()
	s.maxRetries = 2
	c := newCluster("t", []string{"a"}, nil)
	first, second, third := c.tryRetry(s), c.tryRetry(s), c.tryRetry(s)
	if !first || !second || third {
		t.Error("want exactly 2 retries in flight")
	}
	c.retryDone()
	if !c.tryRetry(s) {
		t.Error("a finished retry frees its place")
	}
}

const ciliumL7YAML = `
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: backend-l7, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: backend}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: frontend}}]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules:
        http:
        - {method: GET, path: "/api/v1/users/[0-9]+"}
`

// TestCiliumL7: Cilium's HTTP rules on the backend's ingress are enforced
// through the engine, with the source named by its SPIFFE ID; a request
// they do not allow gets Cilium's 403 "Access denied".
func TestCiliumL7(t *testing.T) {
	m := newMesh(t, ciliumL7YAML, Limits{})
	url := "http://" + m.frontOut["backend"]
	if code, _ := get(t, http.DefaultClient, url+"/api/v1/users/42"); code != 200 {
		t.Errorf("allowed by the HTTP rule: %d", code)
	}
	if code, body := get(t, http.DefaultClient, url+"/api/v1/users/abc"); code != 403 || body != "Access denied\r\n" {
		t.Errorf("not allowed by the HTTP rule: %d %q", code, body)
	}
	if got := m.flows.eventually(1, `"verdict":"DROPPED"`, `"layer":"l7"`, `"policy":"shop/backend-l7"`); len(got) != 1 {
		t.Errorf("flow of the L7 denial:\n%s", m.flows)
	}
}
