package proxy

import (
	"io"
	"net/http"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
)

// BenchmarkProxy measures what the two sidecars add to a request: the
// same HTTP GET from a keep-alive client, directly to an echo server and
// through client → frontend proxy (outbound listener) → mTLS → backend
// proxy (inbound, authorization, path normalization, metrics) → echo
// server, all on loopback, in the same run. Allocations count every
// goroutine of the process: client, proxies and server.
//
//	go test ./internal/proxy/ -run '^$' -bench BenchmarkProxy -benchmem
func BenchmarkProxy(b *testing.B) {
	ca := newCA(b, "cluster.local")
	e := newEngine(b, meshYAML, testKeys{})
	box := &policyBox{}
	box.p.Store(e)
	bundles := x509bundle.NewSet(ca.bundle())
	app := startEcho(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello from the application\n")
	})
	start := func(logs io.Writer) string {
		back := startProxy(b, Config{
			Workload: workload(b, e, "shop/backend"), Policy: box.get,
			SVIDs: newStatic(ca.svid(b, "/ns/shop/sa/backend")), Bundles: bundles,
			Inbound:   []InboundPort{{Port: 8080, Listen: "127.0.0.1:0", App: app.addr}},
			AccessLog: logs, FlowLog: logs,
		})
		front := startProxy(b, Config{
			Workload: workload(b, e, "shop/frontend"), Policy: box.get,
			SVIDs: newStatic(ca.svid(b, "/ns/shop/sa/frontend")), Bundles: bundles,
			Outbound:  []OutboundListener{{Listen: "127.0.0.1:0", To: "shop/backend:8080", Endpoints: []string{back.InboundAddr(0).String()}}},
			AccessLog: logs, FlowLog: logs,
		})
		return "http://" + front.OutboundAddr(0).String() + "/api/v1/users?id=42"
	}
	cases := []struct{ name, url string }{
		{"direct", "http://" + app.addr + "/api/v1/users?id=42"},
		{"proxied", start(nil)},
		{"proxied-with-logs", start(io.Discard)},
	}
	for _, c := range cases {
		tr := &http.Transport{MaxIdleConnsPerHost: 64}
		client := &http.Client{Transport: tr}
		req, _ := http.NewRequest("GET", c.url, nil)
		do := func(b *testing.B) {
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
		b.Run(c.name, func(b *testing.B) {
			do(b)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				do(b)
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			do(b)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					do(b)
				}
			})
		})
		tr.CloseIdleConnections()
	}
}
