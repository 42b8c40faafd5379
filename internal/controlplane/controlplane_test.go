package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/palisade-security/palisade/internal/config"
)

// shop writes the inventory and one policy into a new directory.
func shop(t *testing.T) (dir, policyFile string) {
	dir = t.TempDir()
	writeFile(t, filepath.Join(dir, "inventory.yaml"), inventory)
	policyFile = filepath.Join(dir, "policies", "web-to-api.yaml")
	writeFile(t, policyFile, policy("web-to-api", "/v1/*"))
	return dir, policyFile
}

func mustReload(t *testing.T, s *Server) Version {
	t.Helper()
	v, err := s.Reload()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestInitialConfigIsDeliveredAndAcked(t *testing.T) {
	ca := newTestCA(t, "example.org")
	dir, _ := shop(t)
	srv := newServer(t, ca, dir)
	v1 := mustReload(t, srv)
	if v1.Number != 1 || v1.Documents != 2 || v1.LeftOut != 0 || v1.Rejected != 0 {
		t.Fatalf("first version: %+v", v1)
	}
	addr, _ := serve(t, srv, "127.0.0.1:0")

	p := newProxy(t, ca, addr, "shop/api")
	p.run(t)
	eventually(t, "the first version applied", func() bool { return p.Current() == v1.ID })
	e, version := p.engines.Current()
	if version != v1.ID {
		t.Errorf("engine of version %s, want %s", version, v1.ID)
	}
	if got, want := policyPaths(e.Snapshot), []string{"web-to-api=/v1/*"}; !reflect.DeepEqual(got, want) {
		t.Errorf("policies = %v, want %v", got, want)
	}
	// Positions name the server's files, so errors and traces point at them.
	if got, want := e.Snapshot.AuthorizationPolicies[0].Source.File, filepath.Join(dir, "policies", "web-to-api.yaml"); got != want {
		t.Errorf("source file = %q, want %q", got, want)
	}
	if _, err := e.Snapshot.Inventory.Workload("shop/api"); err != nil {
		t.Errorf("inventory: %v", err)
	}

	eventually(t, "the server to record the ACK", func() bool {
		st := srv.Status()
		return len(st) == 1 && st[0].AckedVersion == v1.ID
	})
	st := srv.Status()[0]
	if st.Node != "shop/api" || st.Peer.String() != "spiffe://example.org/ns/shop/sa/api" || st.PendingVersion != "" || st.LastNack != nil || st.ConnectedAt.IsZero() {
		t.Errorf("status = %+v", st)
	}
	if cs := p.State(); !cs.Connected || cs.LastError != "" || cs.Version != v1.ID {
		t.Errorf("client state = %+v", cs)
	}
}

func TestFileChangePropagates(t *testing.T) {
	ca := newTestCA(t, "example.org")
	dir, policyFile := shop(t)
	srv := newServer(t, ca, dir)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go srv.Watch(ctx)
	addr, _ := serve(t, srv, "127.0.0.1:0")

	p := newProxy(t, ca, addr, "shop/api")
	p.run(t)
	eventually(t, "a first version", func() bool { return p.Current() != "" })
	v1 := p.Current()

	writeFile(t, policyFile, policy("web-to-api", "/v2/*"))
	eventually(t, "the edited file applied", func() bool { return p.Current() != v1 })
	v2, _ := srv.Current()
	if p.Current() != v2.ID || v2.Number != 2 || !strings.HasPrefix(v2.ID, "2-") {
		t.Fatalf("client has %s, server %+v", p.Current(), v2)
	}
	if got, want := policyPaths(p.enforced()), []string{"web-to-api=/v2/*"}; !reflect.DeepEqual(got, want) {
		t.Errorf("policies = %v, want %v", got, want)
	}
	if v2.DetectedAt.IsZero() || v2.PublishedAt.Before(v2.DetectedAt) {
		t.Errorf("times: %+v", v2)
	}
	eventually(t, "the ACK of the new version", func() bool {
		st := srv.Status()
		return len(st) == 1 && st[0].AckedVersion == v2.ID
	})

	// A new file in a subdirectory is a change too; a hidden directory is
	// skipped, as `palisade check` skips it.
	writeFile(t, filepath.Join(dir, ".git", "x.yaml"), policy("hidden", "/hidden"))
	writeFile(t, filepath.Join(dir, "more", "admin.yaml"), policy("admin", "/admin"))
	eventually(t, "the new file applied", func() bool { return p.Current() != v2.ID })
	if got, want := policyPaths(p.enforced()), []string{"admin=/admin", "web-to-api=/v2/*"}; !reflect.DeepEqual(got, want) {
		t.Errorf("policies = %v, want %v", got, want)
	}
	if got := p.appliedVersions(); len(got) != 3 {
		t.Errorf("applied %v, want three versions", got)
	}

	// A vanished source keeps the last version in service.
	v3, _ := srv.Current()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond) // several polls
	if v, _ := srv.Current(); v.ID != v3.ID || p.Current() != v3.ID {
		t.Errorf("after the directory vanished: server %s, proxy %s, want %s", v.ID, p.Current(), v3.ID)
	}
	if _, err := srv.Reload(); err == nil {
		t.Error("Reload of a vanished directory: no error")
	}
}

func TestUndecodableDocumentIsLeftOut(t *testing.T) {
	ca := newTestCA(t, "example.org")
	dir, _ := shop(t)
	writeFile(t, filepath.Join(dir, "broken.yaml"), policy("good", "/good")+"---\n"+
		"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: typo, namespace: shop}\nspec: {actoin: DENY}\n")
	srv := newServer(t, ca, dir)
	v := mustReload(t, srv)
	if v.LeftOut != 1 {
		t.Fatalf("LeftOut = %d, want 1", v.LeftOut)
	}
	addr, _ := serve(t, srv, "127.0.0.1:0")
	p := newProxy(t, ca, addr, "shop/api")
	var gotErrs []*config.Error
	p.Apply = func(version string, snap *config.Snapshot, loadErrs []*config.Error) error {
		gotErrs = loadErrs
		return p.apply(version, snap, loadErrs)
	}
	p.run(t)
	eventually(t, "the version applied", func() bool { return p.Current() == v.ID })
	if got, want := policyPaths(p.enforced()), []string{"good=/good", "web-to-api=/v1/*"}; !reflect.DeepEqual(got, want) {
		t.Errorf("policies = %v, want %v", got, want)
	}
	if len(gotErrs) != 1 || !strings.HasPrefix(gotErrs[0].Error(), filepath.Join(dir, "broken.yaml")+":") || !strings.Contains(gotErrs[0].Error(), "actoin") {
		t.Errorf("load errors = %v", gotErrs)
	}
}

func TestBadUpdateIsNackedAndTheOldVersionKept(t *testing.T) {
	ca := newTestCA(t, "example.org")
	dir, policyFile := shop(t)
	srv := newServer(t, ca, dir)
	v1 := mustReload(t, srv)
	addr, _ := serve(t, srv, "127.0.0.1:0")

	p := newProxy(t, ca, addr, "shop/api")
	p.fail = func(version string, snap *config.Snapshot) error {
		if slices.Contains(policyPaths(snap), "web-to-api=/bad") {
			return errors.New("cannot build the engine")
		}
		return nil
	}
	p.run(t)
	eventually(t, "the first version", func() bool { return p.Current() == v1.ID })

	writeFile(t, policyFile, policy("web-to-api", "/bad"))
	v2 := mustReload(t, srv)
	eventually(t, "the NACK", func() bool {
		st := srv.Status()
		return len(st) == 1 && st[0].LastNack != nil
	})
	st := srv.Status()[0]
	if st.LastNack.Version != v2.ID || !strings.Contains(st.LastNack.Detail, "cannot build the engine") || st.AckedVersion != v1.ID || st.PendingVersion != "" {
		t.Errorf("status after NACK = %+v, nack %+v", st, st.LastNack)
	}
	if p.Current() != v1.ID {
		t.Errorf("proxy version = %s, want %s kept", p.Current(), v1.ID)
	}
	if got := policyPaths(p.enforced()); !reflect.DeepEqual(got, []string{"web-to-api=/v1/*"}) {
		t.Errorf("policies in force = %v", got)
	}
	if cs := p.State(); !strings.Contains(cs.LastError, v2.ID) {
		t.Errorf("client state = %+v", cs)
	}
	// A rejected version is not sent again.
	time.Sleep(100 * time.Millisecond)
	if got := p.appliedVersions(); !reflect.DeepEqual(got, []string{v1.ID, v2.ID}) {
		t.Errorf("applied %v", got)
	}

	// The next good version is sent and applied.
	writeFile(t, policyFile, policy("web-to-api", "/v3/*"))
	v3 := mustReload(t, srv)
	eventually(t, "the good version", func() bool { return p.Current() == v3.ID })
	eventually(t, "its ACK", func() bool { return srv.Status()[0].AckedVersion == v3.ID })
	if st := srv.Status()[0]; st.LastNack == nil || st.LastNack.Version != v2.ID {
		t.Errorf("the last NACK is kept in the status: %+v", st)
	}
	if cs := p.State(); cs.LastError != "" {
		t.Errorf("client state = %+v", cs)
	}
}

func TestProxyKeepsConfigWhileServerIsDown(t *testing.T) {
	ca := newTestCA(t, "example.org")
	dir, policyFile := shop(t)
	srv1 := newServer(t, ca, dir)
	v1 := mustReload(t, srv1)
	addr, stop1 := serve(t, srv1, "127.0.0.1:0")

	p := newProxy(t, ca, addr, "shop/api")
	p.run(t)
	eventually(t, "the first version", func() bool { return p.Current() == v1.ID })

	// A restarted server with the same content numbers it 1 again: same
	// ID, nothing is sent.
	stop1()
	eventually(t, "the client to notice", func() bool { return !p.State().Connected })
	srv2 := newServer(t, ca, dir)
	if v := mustReload(t, srv2); v.ID != v1.ID {
		t.Fatalf("same content, new server: %s, want %s", v.ID, v1.ID)
	}
	_, stop2 := serve(t, srv2, addr)
	eventually(t, "the reconnection", func() bool {
		st := srv2.Status()
		return len(st) == 1 && st[0].AckedVersion == v1.ID && p.State().Connected
	})
	if got := p.appliedVersions(); len(got) != 1 {
		t.Errorf("applied %v, want only the first version", got)
	}

	// Down again; the policy changes meanwhile. The proxy keeps enforcing
	// what it has, then gets the current version from the next server.
	stop2()
	writeFile(t, policyFile, policy("web-to-api", "/v2/*"))
	eventually(t, "the client to notice", func() bool { cs := p.State(); return !cs.Connected && cs.LastError != "" })
	time.Sleep(300 * time.Millisecond) // several reconnection attempts
	if p.Current() != v1.ID {
		t.Errorf("while the server is down: %+v", p.State())
	}
	if got := policyPaths(p.enforced()); !reflect.DeepEqual(got, []string{"web-to-api=/v1/*"}) {
		t.Errorf("policies in force = %v", got)
	}
	srv3 := newServer(t, ca, dir)
	v2 := mustReload(t, srv3)
	serve(t, srv3, addr)
	eventually(t, "the current version after the restart", func() bool { return p.Current() == v2.ID })
	if got := policyPaths(p.enforced()); !reflect.DeepEqual(got, []string{"web-to-api=/v2/*"}) {
		t.Errorf("policies in force = %v", got)
	}

	// Content the proxy already has, under a new number, is acknowledged
	// without being applied again.
	writeFile(t, policyFile, policy("web-to-api", "/v3/*"))
	v3 := mustReload(t, srv3)
	eventually(t, "v3", func() bool { return p.Current() == v3.ID })
	writeFile(t, policyFile, policy("web-to-api", "/v2/*"))
	v4 := mustReload(t, srv3)
	eventually(t, "v4", func() bool { return p.Current() == v4.ID })
	if got := p.appliedVersions(); len(got) != 4 {
		t.Errorf("applied %v, want four versions", got)
	}
}

func TestClientFromAnotherTrustDomainIsRefused(t *testing.T) {
	ca := newTestCA(t, "example.org")
	dir, _ := shop(t)
	srv := newServer(t, ca, dir)
	mustReload(t, srv)
	addr, _ := serve(t, srv, "127.0.0.1:0")

	evil := newTestCA(t, "evil.org")
	forged := newTestCA(t, "example.org") // same name, another key
	bundles := x509bundle.NewSet(ca.bundle, evil.bundle)
	cases := []struct {
		name string
		edit func(c *Client)
	}{
		{"another trust domain", func(c *Client) {
			c.SVIDs, c.Bundles = evil.svid(t, "/ns/shop/sa/api"), bundles
		}},
		{"a forged CA for the trust domain", func(c *Client) {
			c.SVIDs = forged.svid(t, "/ns/shop/sa/api")
		}},
		// The proxy's side: a server with an unexpected ID is refused too.
		{"an unexpected server ID", func(c *Client) {
			c.ServerID = spiffeid.RequireFromPath(ca.td, "/some/other/server")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newProxy(t, ca, addr, "shop/api")
			tc.edit(p.Client)
			stop := p.run(t)
			eventually(t, "a failed attempt", func() bool { return p.State().LastError != "" })
			for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
				if p.State().Connected {
					t.Fatal("connected")
				}
			}
			stop()
			if got := p.appliedVersions(); len(got) != 0 || p.Current() != "" {
				t.Errorf("applied %v", got)
			}
			if st := srv.Status(); len(st) != 0 {
				t.Errorf("server status = %+v", st)
			}
			t.Logf("client error: %s", p.State().LastError)
		})
	}
}

// rawStream opens a stream by hand, to drive the protocol step by step.
type rawStream struct {
	t    *testing.T
	st   grpc.ClientStream
	recv chan Response
}

func openRaw(t *testing.T, ca *testCA, addr, node string) *rawStream {
	tc := tlsconfig.MTLSClientConfig(ca.svid(t, "/ns/shop/sa/raw"), ca.bundle, tlsconfig.AuthorizeID(spiffeid.RequireFromPath(ca.td, serverPath)))
	tc.MinVersion = tls.VersionTLS13
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)),
		grpc.WithDefaultCallOptions(grpc.CallContentSubtype(codecName)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := cc.NewStream(ctx, &serviceDesc.Streams[0], fullMethod)
	if err != nil {
		t.Fatal(err)
	}
	r := &rawStream{t: t, st: st, recv: make(chan Response, 10)}
	go func() {
		for {
			var resp Response
			if err := st.RecvMsg(&resp); err != nil {
				close(r.recv)
				return
			}
			r.recv <- resp
		}
	}()
	r.send(Request{Node: node})
	return r
}

func (r *rawStream) send(req Request) {
	r.t.Helper()
	if err := r.st.SendMsg(&req); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawStream) next() Response {
	r.t.Helper()
	select {
	case resp, ok := <-r.recv:
		if !ok {
			r.t.Fatal("stream closed")
		}
		return resp
	case <-time.After(10 * time.Second):
		r.t.Fatal("no response")
	}
	panic("unreachable")
}

func (r *rawStream) nothing(d time.Duration) {
	r.t.Helper()
	select {
	case resp := <-r.recv:
		r.t.Fatalf("unexpected response %s (nonce %s)", resp.Version, resp.Nonce)
	case <-time.After(d):
	}
}

func TestNoNewVersionBeforeTheLastIsAnswered(t *testing.T) {
	ca := newTestCA(t, "example.org")
	dir, policyFile := shop(t)
	srv := newServer(t, ca, dir)
	v1 := mustReload(t, srv)
	addr, _ := serve(t, srv, "127.0.0.1:0")

	r := openRaw(t, ca, addr, "shop/raw")
	resp := r.next()
	if resp.Version != v1.ID || resp.Nonce == "" || len(resp.Documents) != 2 {
		t.Fatalf("first response: version %s nonce %q, %d documents", resp.Version, resp.Nonce, len(resp.Documents))
	}
	publish := func(path string) Version {
		writeFile(t, policyFile, policy("web-to-api", path))
		return mustReload(t, srv)
	}
	// Unanswered: two more versions are published, none is sent.
	publish("/v2/*")
	v3 := publish("/v3/*")
	r.nothing(200 * time.Millisecond)
	if st := srv.Status(); len(st) != 1 || st[0].PendingVersion != v1.ID || st[0].AckedVersion != "" {
		t.Fatalf("status = %+v", st)
	}
	// An answer with a wrong nonce changes nothing.
	r.send(Request{Node: "shop/raw", VersionInfo: v1.ID, ResponseNonce: "stale"})
	r.nothing(100 * time.Millisecond)

	// The ACK brings the latest version, skipping the one in between.
	r.send(Request{Node: "shop/raw", VersionInfo: v1.ID, ResponseNonce: resp.Nonce})
	resp3 := r.next()
	if resp3.Version != v3.ID || resp3.Nonce == resp.Nonce {
		t.Fatalf("after the ACK: version %s nonce %s, want %s", resp3.Version, resp3.Nonce, v3.ID)
	}
	// NACKed: not sent again, and the next version waits for nothing.
	r.send(Request{Node: "shop/raw", VersionInfo: v1.ID, ResponseNonce: resp3.Nonce, ErrorDetail: "no"})
	r.nothing(100 * time.Millisecond)
	st := srv.Status()[0]
	if st.AckedVersion != v1.ID || st.LastNack == nil || st.LastNack.Version != v3.ID || st.LastNack.Detail != "no" {
		t.Fatalf("status after NACK = %+v", st)
	}
	v4 := publish("/v4/*")
	if resp4 := r.next(); resp4.Version != v4.ID {
		t.Fatalf("got %s, want %s", resp4.Version, v4.ID)
	}
}

func TestSlowProxySkipsIntermediateVersions(t *testing.T) {
	ca := newTestCA(t, "example.org")
	dir, policyFile := shop(t)
	srv := newServer(t, ca, dir)
	v1 := mustReload(t, srv)
	addr, _ := serve(t, srv, "127.0.0.1:0")

	p := newProxy(t, ca, addr, "shop/api")
	gate := make(chan struct{})
	p.gate = gate
	p.run(t)
	eventually(t, "Apply of v1 to start", func() bool { return len(p.appliedVersions()) == 1 })
	for _, path := range []string{"/v2/*", "/v3/*", "/v4/*"} {
		writeFile(t, policyFile, policy("web-to-api", path))
		mustReload(t, srv)
	}
	v4, _ := srv.Current()
	time.Sleep(100 * time.Millisecond)
	close(gate)
	eventually(t, "the latest version", func() bool { return p.Current() == v4.ID })
	if got, want := p.appliedVersions(), []string{v1.ID, v4.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("applied %v, want %v", got, want)
	}
}

// TestSameSnapshotAsCheck checks that what a proxy parses is what `palisade
// check` loads from the same files, Cilium values included.
func TestSameSnapshotAsCheck(t *testing.T) {
	root := filepath.Join("..", "..", "examples", "reference-system")
	paths := []string{
		filepath.Join(root, "inventory.yaml"),
		filepath.Join(root, "manifests", "security"),
		filepath.Join(root, "manifests", "network-policies"),
		filepath.Join(root, "manifests", "istio-configuration"),
	}
	values := filepath.Join(root, "manifests", "cilium-config", "values.yaml")
	want, wantErrs := config.LoadInput(config.Input{Paths: paths, CiliumValues: values})

	docs, vdoc, _, err := readSources(paths, values)
	if err != nil {
		t.Fatal(err)
	}
	// Through the wire format, compressed.
	resp, err := newResponse(versionID(1, contentHash(docs, vdoc)), docs, vdoc)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Compressed == nil {
		t.Fatal("the reference system is not compressed")
	}
	wire, err := jsonCodec{}.Marshal(&resp)
	if err != nil {
		t.Fatal(err)
	}
	var got Response
	if err := (jsonCodec{}).Unmarshal(wire, &got); err != nil {
		t.Fatal(err)
	}
	gdocs, gvalues, err := got.content()
	if err != nil {
		t.Fatal(err)
	}
	snap, errs := ParseDocuments(gdocs, gvalues)

	str := func(errs []*config.Error) []string {
		var out []string
		for _, e := range errs {
			out = append(out, e.Error())
		}
		return out
	}
	if !reflect.DeepEqual(str(errs), str(wantErrs)) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(str(errs), "\n"), strings.Join(str(wantErrs), "\n"))
	}
	counts := func(s *config.Snapshot) string {
		return fmt.Sprint(len(s.AuthorizationPolicies), len(s.PeerAuthentications), len(s.RequestAuthentications),
			len(s.DestinationRules), len(s.NetworkPolicies), len(s.CiliumNetworkPolicies),
			len(s.CiliumClusterwideNetworkPolicies), len(s.Inventory.Workloads), len(s.Inventory.Services))
	}
	if counts(snap) != counts(want) {
		t.Errorf("resources %s, want %s", counts(snap), counts(want))
	}
	if snap.Cilium.Values != want.Cilium.Values || snap.Cilium.Source.String() != want.Cilium.Source.String() {
		t.Errorf("cilium install %+v at %s, want %+v at %s", snap.Cilium.Values, snap.Cilium.Source, want.Cilium.Values, want.Cilium.Source)
	}
	var notes, wantNotes []string
	for _, n := range snap.Notes {
		notes = append(notes, n.String())
	}
	for _, n := range want.Notes {
		wantNotes = append(wantNotes, n.String())
	}
	slices.Sort(notes)
	slices.Sort(wantNotes)
	if !reflect.DeepEqual(notes, wantNotes) {
		t.Errorf("notes:\n%s\nwant:\n%s", strings.Join(notes, "\n"), strings.Join(wantNotes, "\n"))
	}
}

func TestValuesFileWithoutCiliumKeys(t *testing.T) {
	// Given as the values file, a document is read as values even without
	// the keys that make config recognise one among the sources.
	values := &Document{Name: "values.yaml", Data: []byte("# only the cluster\ncluster:\n  name: east\n")}
	snap, errs := ParseDocuments(nil, values)
	if len(errs) != 0 || snap.Cilium.Values.ClusterName != "east" || snap.Cilium.Source.String() != "values.yaml:2 (document 1)" {
		t.Errorf("got %+v at %s, errors %v", snap.Cilium.Values, snap.Cilium.Source, errs)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "values.yaml")
	writeFile(t, path, string(values.Data))
	want, _ := config.LoadInput(config.Input{CiliumValues: path})
	if want.Cilium.Values != snap.Cilium.Values || want.Cilium.Source.Line != snap.Cilium.Source.Line {
		t.Errorf("config reads %+v at %s", want.Cilium.Values, want.Cilium.Source)
	}
}

func TestHalfWrittenFileIsNotPublished(t *testing.T) {
	ca := newTestCA(t, "example.org")
	dir, policyFile := shop(t)
	srv := newServer(t, ca, dir)
	// Long enough that the second write below, 50 ms after the first, is
	// inside it even on a loaded machine.
	srv.Settle = time.Second
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go srv.Watch(ctx)
	eventually(t, "the first version", func() bool { _, ok := srv.Current(); return ok })

	// A writer that truncates the file and writes it in two steps.
	full := policy("web-to-api", "/v2/*") + "---\n" + policy("deny-admin", "/admin")
	writeFile(t, policyFile, full[:len(full)/2])
	time.Sleep(50 * time.Millisecond)
	writeFile(t, policyFile, full)
	eventually(t, "the second version", func() bool { v, _ := srv.Current(); return v.Number == 2 })
	time.Sleep(400 * time.Millisecond)
	v, _ := srv.Current()
	if v.Number != 2 || v.LeftOut != 0 {
		t.Fatalf("version %+v: the half-written file was published", v)
	}
	srv.mu.Lock()
	docs := srv.current.resp.Documents
	srv.mu.Unlock()
	snap, _ := ParseDocuments(docs, nil)
	if got, want := policyPaths(snap), []string{"deny-admin=/admin", "web-to-api=/v2/*"}; !reflect.DeepEqual(got, want) {
		t.Errorf("policies = %v, want %v", got, want)
	}
}

func TestMalformedResponsesAreNacked(t *testing.T) {
	ca := newTestCA(t, "example.org")
	p := newProxy(t, ca, "127.0.0.1:1", "shop/api")
	docs := []Document{{Name: "inventory.yaml", Data: []byte(inventory)}}
	good := versionID(7, contentHash(docs, nil))
	cases := []struct {
		name string
		resp Response
		want string
	}{
		{"content not matching the version", Response{Version: "7-0123456789abcdef", Nonce: "1", Documents: docs}, "does not match"},
		{"a version without a hash", Response{Version: "7", Nonce: "2", Documents: docs}, "does not match"},
		{"corrupt compression", Response{Version: good, Nonce: "3", Compressed: []byte("not gzip")}, "compressed documents"},
		{"both forms", Response{Version: good, Nonce: "4", Documents: docs, Compressed: []byte{1}}, "both"},
	}
	for _, tc := range cases {
		req := p.handle(&tc.resp)
		if req.ResponseNonce != tc.resp.Nonce || req.VersionInfo != "" || !strings.Contains(req.ErrorDetail, tc.want) {
			t.Errorf("%s: answer %+v, want a NACK with %q", tc.name, req, tc.want)
		}
	}
	if got := p.appliedVersions(); len(got) != 0 {
		t.Errorf("applied %v", got)
	}
	if req := p.handle(&Response{Version: good, Nonce: "5", Documents: docs}); req.ErrorDetail != "" || req.VersionInfo != good {
		t.Errorf("good response: answer %+v", req)
	}
}
