package proxy

import (
	"context"
	"io"
	"net"
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
    spec: {serviceAccountName: grpcsvc, containers: [{name: c, ports: [{containerPort: 9090}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: grpcsvc, namespace: shop}
spec: {selector: {app: grpcsvc}, ports: [{name: grpc, port: 9090}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: grpcsvc-allow, namespace: shop}
spec:
  selector: {matchLabels: {app: grpcsvc}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/frontend]}}]
    to: [{operation: {paths: ["/grpc.health.v1.Health/Check"]}}]
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
