package engine

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/palisade-security/palisade/internal/authz"
	"github.com/palisade-security/palisade/internal/config"
)

// TestInboundAgreesWithCheck decides the same requests through the proxy's
// fast path and through Check: one implementation, two views of it.
func TestInboundAgreesWithCheck(t *testing.T) {
	snap, _ := load(t, filepath.Join(refDir, "inventory.yaml"), filepath.Join(refDir, "manifests", "security"))
	e := New(snap, Options{Keys: keys{}})
	front, _ := snap.Inventory.Workload("production/frontend")
	back, _ := snap.Inventory.Workload("production/backend-api")
	pg, _ := snap.Inventory.Workload("production/postgres")
	in := e.Inbound(back)
	peer := e.Identity(front)
	conn := &Conn{Port: 8080, Peer: peer, SourceIP: netip.MustParseAddr("10.0.1.10"), Source: front}
	cases := []struct {
		method, path string
		headers      authz.Headers
		status       int
	}{
		{"GET", "/api/v1/users", authz.Headers{{Name: "authorization", Value: "Bearer x"}}, 0},
		{"GET", "/api/v1/users", nil, 403},
		{"GET", "/api/v1/%2e%2e/admin", authz.Headers{{Name: "authorization", Value: "Bearer x"}}, 403},
		{"get", "/api/v1/users", nil, 400},
		{"GET", "/a%00b", nil, 400},
	}
	for _, c := range cases {
		d := in.Request(conn, c.method, c.path, "backend-api", c.headers)
		var hs []authz.Header
		for _, h := range c.headers {
			hs = append(hs, h)
		}
		v, err := e.Check(Request{From: front, To: back, HTTP: &HTTPRequest{Method: c.method, Path: c.path, Host: "backend-api", Headers: hs}})
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed != (c.status == 0) || d.Status != c.status || v.Allowed != d.Allowed || (!d.Allowed && v.Status != d.Status) {
			t.Errorf("%s %s: inbound allowed=%v status=%d (%s); check allowed=%v status=%d", c.method, c.path, d.Allowed, d.Status, d.Reason, v.Allowed, v.Status)
		}
	}
	if d := e.Inbound(pg).Connection(&Conn{Port: 5432, Peer: e.Identity(back)}); d.Allowed {
		t.Errorf("postgres over TCP: %+v", d)
	}
	if !e.Inbound(pg).OpaqueTCP(5432) {
		t.Error("tcp-postgres is an opaque port")
	}
}

// TestOutboundConnectAgreesWithCheck decides every workload pair of the
// whole reference system through the proxy's outbound check and through
// Check's network layers: egress at the client, then ingress at the server.
func TestOutboundConnectAgreesWithCheck(t *testing.T) {
	snap, _ := load(t, refDir)
	e := New(snap, Options{Keys: keys{}})
	layers := map[string]int{}
	for _, src := range snap.Inventory.Workloads {
		out := e.Outbound(src)
		for _, dst := range snap.Inventory.Workloads {
			for _, p := range dst.Ports {
				if p.Protocol != "TCP" {
					continue
				}
				d := out.Connect(dst, netip.Addr{}, "", p.Port)
				v, err := e.Check(Request{From: src, To: dst, Port: p.Port})
				if err != nil {
					t.Fatal(err)
				}
				netDenied := !v.Allowed && (v.DecidedBy.Layer == LayerNetworkEgress || v.DecidedBy.Layer == LayerNetworkIngress)
				if d.Allowed == netDenied || (!d.Allowed && d.Layer != v.DecidedBy.Layer) {
					t.Errorf("%s -> %s:%d: connect %v at %s; check %v at %s", src.Key(), dst.Key(), p.Port, d.Allowed, d.Layer, v.Allowed, v.DecidedBy.Layer)
				}
				if !d.Allowed {
					layers[d.Layer]++
				}
			}
		}
	}
	if layers[LayerNetworkEgress] == 0 || layers[LayerNetworkIngress] == 0 {
		t.Errorf("denials by layer %v: the reference system denies at both", layers)
	}
}

// TestHTTP2Of: the HTTP version Istio uses upstream for a Service port,
// by appProtocol first, then by the name's prefix (Istio's "Protocol
// Selection": name <protocol>[-<suffix>], appProtocol, and Kubernetes'
// kubernetes.io/h2c and kubernetes.io/ws).
func TestHTTP2Of(t *testing.T) {
	cases := []struct {
		name, appProtocol string
		h2, set           bool
	}{
		{name: "grpc", h2: true, set: true},
		{name: "grpc-api", h2: true, set: true},
		{name: "grpc-web", h2: true, set: true},
		{name: "http2-x", h2: true, set: true},
		{name: "GRPC", h2: true, set: true},
		{name: "http", set: true},
		{name: "http-web", set: true},
		{name: "web", appProtocol: "grpc", h2: true, set: true},
		{name: "grpc", appProtocol: "http", set: true}, // appProtocol wins
		{name: "x", appProtocol: "kubernetes.io/h2c", h2: true, set: true},
		{name: "x", appProtocol: "kubernetes.io/ws", set: true},
		{name: "web"},         // undeclared: the downstream protocol
		{name: "tcp-db"},      // not HTTP at all
		{name: "httpx-thing"}, // "httpx" is no protocol
	}
	for _, c := range cases {
		h2, set := http2Of(&config.ServicePort{Name: c.name, AppProtocol: c.appProtocol})
		if h2 != c.h2 || set != c.set {
			t.Errorf("port %q appProtocol %q: h2=%v set=%v, want %v %v", c.name, c.appProtocol, h2, set, c.h2, c.set)
		}
	}
	if h2, set := http2Of(nil); h2 || set {
		t.Error("no service port: want the downstream protocol")
	}
}
