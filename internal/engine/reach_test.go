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

// TestPairsAnyRequest checks the any-request question against concrete
// requests: whenever Check allows some request, Any must allow the pair
// (it over-approximates, never under), and on opaque TCP ports it is the
// connection's verdict.
func TestPairsAnyRequest(t *testing.T) {
	requests := []*HTTPRequest{
		{Method: "GET", Path: "/"},
		{Method: "GET", Path: "/api/v1/users", Headers: []authz.Header{{Name: "authorization", Value: "Bearer x"}}},
		{Method: "POST", Path: "/api/v1/payments"},
		{Method: "GET", Path: "/metrics"},
		{Method: "GET", Path: "/admin"},
	}
	any := &PairHTTP{Any: true}
	for _, files := range [][]string{{refDir}, {refDir + "/inventory.yaml", refDir + "/manifests/security"}} {
		snap, _ := load(t, files...)
		e := New(snap, Options{Keys: keys{}})
		p := e.Pairs()
		anyAllowed, tcpDenied := 0, 0
		for _, src := range snap.Inventory.Workloads {
			for _, dst := range snap.Inventory.Workloads {
				for _, port := range dst.Ports {
					if port.Protocol != "TCP" {
						continue
					}
					ok, _ := p.Decide(src, dst, port.Port, any)
					if e.Inbound(dst).OpaqueTCP(port.Port) {
						tcpOK, _ := p.Decide(src, dst, port.Port, nil)
						if ok != tcpOK {
							t.Errorf("%s -> %s:%d opaque: any %v, connection %v", src.Key(), dst.Key(), port.Port, ok, tcpOK)
						}
						continue
					}
					if ok {
						anyAllowed++
						if tcpOK, _ := p.Decide(src, dst, port.Port, nil); !tcpOK {
							tcpDenied++
						}
						continue
					}
					for _, r := range requests {
						r := *r
						r.Host = e.DefaultHost(dst)
						v, err := e.Check(Request{From: src, To: dst, Port: port.Port, HTTP: &r})
						if err != nil {
							t.Fatal(err)
						}
						if v.Allowed {
							t.Errorf("%v %s -> %s:%d: Check allows %s %s but Any denies", files, src.Key(), dst.Key(), port.Port, r.Method, r.Path)
						}
					}
				}
			}
		}
		t.Logf("%v: %d pairs could send some request, %d of them denied as bare TCP connections", files, anyAllowed, tcpDenied)
	}

	// The reference system's frontend reaches backend-api only with a
	// token and on some paths: a TCP connection is denied, some request is
	// allowed.
	snap, _ := load(t, refDir+"/inventory.yaml", refDir+"/manifests/security")
	e := New(snap, Options{Keys: keys{}})
	front, err1 := snap.Inventory.Workload("production/frontend")
	back, err2 := snap.Inventory.Workload("production/backend-api")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if ok, _ := e.Pairs().Decide(front, back, 8080, nil); ok {
		t.Error("frontend -> backend-api as a TCP connection: allowed, want denied (HTTP-only ALLOW rules)")
	}
	if ok, layer := e.Pairs().Decide(front, back, 8080, any); !ok {
		t.Errorf("frontend -> backend-api, any request: denied at %s, want allowed", layer)
	}
}
