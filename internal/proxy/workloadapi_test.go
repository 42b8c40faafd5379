package proxy

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	spiffewl "github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/palisade-security/palisade/internal/identity"
	"github.com/palisade-security/palisade/internal/workloadapi"
)

// agentCache stands in for the node agent's cache behind Palisade's
// Workload API server: one SVID, replaced by rotate.
type agentCache struct {
	mu      sync.Mutex
	svid    *identity.SVID
	bundle  *x509bundle.Bundle
	changes chan struct{}
}

func (c *agentCache) SVIDs(identity.Selectors) []*identity.SVID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return []*identity.SVID{c.svid}
}
func (c *agentCache) X509Bundle() *x509bundle.Bundle { return c.bundle }
func (c *agentCache) JWTBundle() *jwtbundle.Bundle   { return jwtbundle.New(c.bundle.TrustDomain()) }
func (c *agentCache) FetchJWTSVID(context.Context, spiffeid.ID, []string) (string, error) {
	return "", nil
}
func (c *agentCache) Changes() (<-chan struct{}, func()) { return c.changes, func() {} }

func (c *agentCache) rotate(ca *testCA, t *testing.T, path string) *identity.SVID {
	s := ca.svid(t, path)
	c.mu.Lock()
	c.svid = &identity.SVID{ID: s.ID, Certificates: s.Certificates, PrivateKey: s.PrivateKey}
	c.mu.Unlock()
	select {
	case c.changes <- struct{}{}:
	default:
	}
	return c.svid
}

type anyWorkload struct{}

func (anyWorkload) Attest(context.Context, workloadapi.Process) (identity.Selectors, error) {
	return identity.Selectors{{Type: "unix", Value: "uid:0"}}, nil
}

// TestWorkloadAPISource runs the backend's proxy on a go-spiffe
// X509Source fed by Palisade's own Workload API server: the proxy serves
// the SVID it streams, and after a rotation new handshakes get the new
// SVID while the keep-alive connection opened before it goes on working.
func TestWorkloadAPISource(t *testing.T) {
	m := newMesh(t, "", Limits{})
	cache := &agentCache{bundle: m.ca.bundle(), changes: make(chan struct{}, 1)}
	first := cache.rotate(m.ca, t, "/ns/shop/sa/backend")
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := workloadapi.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := &workloadapi.Server{Cache: cache, Attestor: anyWorkload{}, Jitter: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	go srv.Serve(ctx, ln)
	src, err := spiffewl.NewX509Source(ctx, spiffewl.WithClientOptions(spiffewl.WithAddr("unix://"+sock)))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()

	back := startProxy(t, Config{
		Workload: workload(t, m.box.get(), "shop/backend"), Policy: m.box.get, SVIDs: src, Bundles: src,
		Inbound: []InboundPort{{Port: 8080, Listen: "127.0.0.1:0", App: m.app.addr}},
	})
	addr := "https://" + back.InboundAddr(0).String() + "/api/v1/x"
	bundle := x509bundle.NewSet(m.ca.bundle())
	kept := mtlsClient(m.front, bundle, backendID, false)
	resp, err := kept.Get(addr)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS.PeerCertificates[0].SerialNumber.Cmp(first.Certificates[0].SerialNumber) != 0 {
		t.Fatalf("first: %d, serial %v", resp.StatusCode, resp.TLS.PeerCertificates[0].SerialNumber)
	}

	second := cache.rotate(m.ca, t, "/ns/shop/sa/backend")
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := src.GetX509SVID()
		if err == nil && s.Certificates[0].SerialNumber.Cmp(second.Certificates[0].SerialNumber) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the X509Source did not receive the rotated SVID")
		}
		time.Sleep(10 * time.Millisecond)
	}
	fresh := mtlsClient(m.front, bundle, backendID, false)
	resp, err = fresh.Get(addr)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got := resp.TLS.PeerCertificates[0].SerialNumber; got.Cmp(second.Certificates[0].SerialNumber) != 0 {
		t.Errorf("new connection after rotation: serial %v, want the rotated SVID", got)
	}
	// The connection from before the rotation is still served.
	resp, err = kept.Get(addr)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS.PeerCertificates[0].SerialNumber.Cmp(first.Certificates[0].SerialNumber) != 0 {
		t.Errorf("kept connection: %d, serial %v", resp.StatusCode, resp.TLS.PeerCertificates[0].SerialNumber)
	}
}
