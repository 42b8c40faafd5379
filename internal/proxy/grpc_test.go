package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// grpcYAML adds a gRPC workload: its Service port is named grpc, so
// Istio speaks HTTP/2 to it; the frontend may call Health/Check only.
const grpcYAML = `
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: grpcsvc, namespace: shop}
spec:
  template:
    metadata: {labels: {app: grpcsvc}}
    spec: {serviceAccountName: grpcsvc, containers: [{name: c, ports: [{containerPort: 9090}, {containerPort: 9091}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: grpcsvc, namespace: shop}
spec: {selector: {app: grpcsvc}, ports: [{name: grpc, port: 9090}, {name: grpc-plain, port: 9091}]}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: grpcsvc, namespace: shop}
spec:
  selector: {matchLabels: {app: grpcsvc}}
  mtls: {mode: STRICT}
  portLevelMtls:
    9091: {mode: DISABLE}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: grpcsvc-allow, namespace: shop}
spec:
  selector: {matchLabels: {app: grpcsvc}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/frontend]}}]
    to: [{operation: {paths: ["/grpc.health.v1.Health/Check", "/echo/*", "//grpcsvc/*"]}}]
  - to: [{operation: {ports: ["9091"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: grpcsvc-deny, namespace: shop}
spec:
  selector: {matchLabels: {app: grpcsvc}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
`

// TestGRPC: a gRPC client (cleartext HTTP/2 with prior knowledge, as
// gRPC does) calls a gRPC server through the client's outbound listener,
// mutual TLS over HTTP/2, and the server's STRICT inbound port, which
// speaks HTTP/2 to the application because its Service port is named
// grpc. The status travels in trailers; a method the policy does not
// allow is refused with PERMISSION_DENIED (Envoy's 403 as gRPC reads it).
func TestGRPC(t *testing.T) {
	m := newMesh(t, grpcYAML, Limits{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)

	svc := startProxy(t, Config{
		Workload: workload(t, m.box.get(), "shop/grpcsvc"), Policy: m.box.get,
		SVIDs: newStatic(m.ca.svid(t, "/ns/shop/sa/grpcsvc")), Bundles: x509bundle.NewSet(m.ca.bundle()),
		Inbound:   []InboundPort{{Port: 9090, Listen: "127.0.0.1:0", App: ln.Addr().String()}},
		AccessLog: m.access,
	})
	url, _ := frontendTo(t, m, "shop/grpcsvc:9090", svc.InboundAddr(0).String())
	conn, err := grpc.NewClient(url[len("http://"):], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ { // on one HTTP/2 connection per hop
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Check %d: %v %v", i, resp, err)
		}
	}
	// A status from the server, not the proxy, comes back in trailers.
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "unknown"}); status.Code(err) != codes.NotFound {
		t.Errorf("Check of an unknown service: %v, want NotFound", err)
	}
	stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("Watch, which the policy does not allow: %v, want PermissionDenied", err)
	}
	if err == io.EOF {
		t.Error("Watch ended cleanly")
	}
	if got := m.access.eventually(1, `"path":"/grpc.health.v1.Health/Check"`, `"protocol":"HTTP/2"`, `"reporter":"destination"`); len(got) == 0 {
		t.Errorf("no HTTP/2 access log line of the server side:\n%s", m.access)
	}
}

// h2cApp is an application speaking HTTP/2 in cleartext: gRPC calls go to
// srv, other requests are echoed (the request target as received), and
// /echo/early answers before reading the body.
func h2cApp(t *testing.T, srv *grpc.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			srv.ServeHTTP(w, r)
			return
		}
		if r.URL.Path == "/echo/early" {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s body=%d", r.Proto, r.Method, r.RequestURI, len(b))
	})}
	hs.Protocols = new(http.Protocols)
	hs.Protocols.SetUnencryptedHTTP2(true)
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

// TestHTTP2Upstream: HTTP/1.1 clients reach an application the Service
// declares HTTP/2 (the upstream protocol follows the port, not the
// client), over mutual TLS or cleartext (a DISABLE port) between the
// proxies. What authorization judged is what the application gets; a
// body the client cannot finish sending does not hold the response;
// a body over the limit is the client's fault (413), not the upstream's.
func TestHTTP2Upstream(t *testing.T) {
	m := newMesh(t, grpcYAML, Limits{})
	app := h2cApp(t, grpc.NewServer())
	svc := startProxy(t, Config{
		Workload: workload(t, m.box.get(), "shop/grpcsvc"), Policy: m.box.get,
		SVIDs: newStatic(m.ca.svid(t, "/ns/shop/sa/grpcsvc")), Bundles: x509bundle.NewSet(m.ca.bundle()),
		Inbound: []InboundPort{
			{Port: 9090, Listen: "127.0.0.1:0", App: app},
			{Port: 9091, Listen: "127.0.0.1:0", App: app},
		},
		AccessLog: m.access,
		Limits:    Limits{MaxBodyBytes: 1024},
	})
	tlsURL, _ := frontendTo(t, m, "shop/grpcsvc:9090", svc.InboundAddr(0).String())
	plainURL, _ := frontendTo(t, m, "shop/grpcsvc:9091", svc.InboundAddr(1).String())
	for _, c := range []struct {
		url, path, want string
		status          int
	}{
		{tlsURL, "/echo/x?q=1", "HTTP/2.0 GET /echo/x?q=1 body=0", 200},
		{plainURL, "/echo/x", "HTTP/2.0 GET /echo/x body=0", 200},
		// Judged as //grpcsvc/admin (not /admin*), forwarded as such.
		{tlsURL, "//grpcsvc/admin", "HTTP/2.0 GET //grpcsvc/admin body=0", 200},
		{tlsURL, "/admin/x", "RBAC: access denied", 403},
	} {
		raw := rawRequest(t, c.url[len("http://"):], "GET "+c.path+" HTTP/1.1\r\nHost: grpcsvc\r\nConnection: close\r\n\r\n")
		rs := readResponses(raw)
		if len(rs) != 1 || rs[0].StatusCode != c.status || !strings.Contains(raw, c.want) {
			t.Errorf("GET %s via %s: %q, want %d %q", c.path, c.url, raw, c.status, c.want)
		}
	}

	// The application answers before the body is complete; the client
	// never completes it.
	conn, err := net.Dial("tcp", tlsURL[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, "POST /echo/early HTTP/1.1\r\nHost: grpcsvc\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Errorf("early answer to an unfinished body: %v %v", resp, err)
	}

	// Chunked, so that only reading the body finds it too long.
	raw := rawRequest(t, tlsURL[len("http://"):], "POST /echo/big HTTP/1.1\r\nHost: grpcsvc\r\nConnection: close\r\n"+
		"Transfer-Encoding: chunked\r\n\r\n1000\r\n"+strings.Repeat("b", 4096)+"\r\n0\r\n\r\n")
	if rs := readResponses(raw); len(rs) != 1 || rs[0].StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("body over the server proxy's limit: %q, want 413", raw)
	}
}
