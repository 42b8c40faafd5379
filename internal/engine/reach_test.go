package engine

import (
	"testing"

	"github.com/palisade-security/palisade/internal/authz"
)

// TestPairsAgreeWithCheck decides every pair of the reference system's
// workloads on every declared port, over TCP and as an HTTP request, with
// the fast path and with Check: they must agree, layer included.
func TestPairsAgreeWithCheck(t *testing.T) {
	for _, files := range [][]string{{refDir}, {refDir + "/inventory.yaml", refDir + "/manifests/security"}} {
		snap, _ := load(t, files...)
		e := New(snap, Options{Keys: keys{}})
		p := e.Pairs()
		n := 0
		for _, src := range snap.Inventory.Workloads {
			for _, dst := range snap.Inventory.Workloads {
				for _, port := range dst.Ports {
					if port.Protocol != "TCP" {
						continue
					}
					for _, http := range []*PairHTTP{nil, {Method: "GET", Path: "/api/v1/users", Headers: authz.Headers{{Name: "authorization", Value: "Bearer x"}}}} {
						ok, layer := p.Decide(src, dst, port.Port, http)
						req := Request{From: src, To: dst, Port: port.Port}
						if http != nil {
							req.HTTP = &HTTPRequest{Method: http.Method, Path: http.Path, Host: e.DefaultHost(dst), Headers: []authz.Header(http.Headers)}
						}
						v, err := e.Check(req)
						if err != nil {
							t.Fatal(err)
						}
						want := ""
						if !v.Allowed {
							want = v.DecidedBy.Layer
						}
						if ok != v.Allowed || layer != want {
							t.Errorf("%v %s -> %s:%d http=%v: pairs %v %q, check %v %q (%s)", files, src.Key(), dst.Key(), port.Port, http != nil, ok, layer, v.Allowed, want, v.DecidedBy.Reason)
						}
						n++
					}
				}
			}
		}
		if n < 500 {
			t.Fatalf("only %d checks", n)
		}
	}
}
