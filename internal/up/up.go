// Package up runs a whole Palisade mesh on one machine: the identity
// server with policy distribution, a node agent serving the SPIFFE
// Workload API, and a sidecar proxy in front of every workload of the
// inventory, each workload a built-in echo server or an application
// already running. It is what `palisade up` and `palisade demo` start.
//
// Every part is the real one, talking to the others as on a cluster: the
// proxies fetch their SVIDs from the agent's Workload API socket, receive
// policy from the server over mutual TLS gRPC, and speak Istio mTLS to
// each other. What differs from a cluster is addressing: every listener is
// on 127.0.0.1, and a workload reaches another through an outbound
// listener its proxy opens for that destination port (transparent capture
// comes with kernel enforcement, which is not built).
package up

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/palisade-security/palisade/internal/agent"
	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/controlplane"
	"github.com/palisade-security/palisade/internal/datastore"
	"github.com/palisade-security/palisade/internal/echo"
	"github.com/palisade-security/palisade/internal/engine"
	"github.com/palisade-security/palisade/internal/identity"
	"github.com/palisade-security/palisade/internal/proxy"
	"github.com/palisade-security/palisade/internal/server"
	"github.com/palisade-security/palisade/internal/svids"
	"github.com/palisade-security/palisade/internal/telemetry"
)

// Options say what to run.
type Options struct {
	// Files are the policy sources and the inventory, watched by the
	// server: a change is distributed to every proxy.
	Files        []string
	CiliumValues string
	// StateDir keeps the server's CA and datastore across runs, the
	// agent's state and the proxies' logs.
	StateDir string
	// Apps maps "namespace/name:port" to the address of an application
	// already listening, used instead of the built-in echo for that port.
	Apps map[string]string
	// SVIDTTL is the lifetime of the SVIDs the server signs (0: the
	// server's default, an hour); agents renew them at half-life.
	SVIDTTL time.Duration
	// Engine are the options every proxy's engine is built with, such as
	// JWKS for issuers that cannot be fetched.
	Engine engine.Options
	// Logger receives the components' logs; nil discards them.
	Logger *slog.Logger
}

// Mesh is a running mesh.
type Mesh struct {
	Snapshot  *config.Snapshot
	Engine    *engine.Engine // built from Snapshot, for predictions
	Workloads []*Workload
	// PolicyAddr is where proxies receive policy; AgentSocket the
	// Workload API.
	PolicyAddr, AgentSocket string
	Policy                  *controlplane.Server

	cancel context.CancelFunc
	wg     sync.WaitGroup
	errMu  sync.Mutex
	err    error
	tmp    string
}

// Workload is one workload of the mesh and its proxy.
type Workload struct {
	*config.Workload
	ID      spiffeid.ID
	SVIDs   *svids.Source // the workload's SVID and bundles, from the agent
	Proxy   *proxy.Proxy
	Engines *controlplane.Engines
	Client  *controlplane.Client
	// Inbound maps a container port to the proxy's inbound address, App
	// to the application's.
	Inbound, App map[uint16]string
	// Outbound maps "namespace/name:port" of a destination to the local
	// address this workload reaches it at, through its proxy.
	Outbound map[string]string
	Metrics  string
}

// Route returns the address from reaches to:port at.
func (m *Mesh) Route(from, to string, port uint16) (string, bool) {
	w := m.Find(from)
	if w == nil {
		return "", false
	}
	addr, ok := w.Outbound[to+":"+strconv.Itoa(int(port))]
	return addr, ok
}

// Find returns the workload "namespace/name", or nil.
func (m *Mesh) Find(key string) *Workload {
	for _, w := range m.Workloads {
		if w.Key() == key {
			return w
		}
	}
	return nil
}

// Start brings the mesh up and returns once every proxy has its SVID and
// its first policy version. Cancel ctx (or call Close) to stop it.
func Start(ctx context.Context, opts Options) (_ *Mesh, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.StateDir == "" {
		return nil, errors.New("a state directory is required")
	}
	snap, loadErrs := config.LoadInput(config.Input{Paths: opts.Files, CiliumValues: opts.CiliumValues})
	for _, e := range loadErrs {
		log.Warn("left out", "where", e.Source.String(), "error", e.Msg)
	}
	if len(snap.Inventory.Workloads) == 0 {
		return nil, fmt.Errorf("%s: no workloads to run (an inventory or Deployment manifests are needed)", strings.Join(opts.Files, ", "))
	}
	for key := range opts.Apps {
		if !declares(snap, key) {
			return nil, fmt.Errorf("app %s: no such workload port in the inventory", key)
		}
	}
	td, err := spiffeid.TrustDomainFromString(snap.Mesh.TrustDomain())
	if err != nil {
		return nil, fmt.Errorf("trust domain: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	m := &Mesh{Snapshot: snap, Engine: engine.New(snap, opts.Engine), cancel: cancel}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	// Unix socket paths are short (108 bytes): the socket lives in a
	// temporary directory, not under a state directory of any length.
	if m.tmp, err = os.MkdirTemp("", "palisade-up-"); err != nil {
		return nil, err
	}
	m.AgentSocket = filepath.Join(m.tmp, "agent.sock")

	srv, err := server.New(ctx, server.Config{TrustDomain: td, StateDir: filepath.Join(opts.StateDir, "server"),
		BindAddr: "127.0.0.1:0", SVIDTTL: opts.SVIDTTL, AdminSocket: filepath.Join(m.tmp, "admin.sock"), Logger: log.With("component", "server")})
	if err != nil {
		return nil, err
	}
	m.run("server", func() error { return srv.Run(ctx) })
	select {
	case <-srv.Ready():
	case <-ctx.Done():
		return nil, m.failure(ctx)
	}

	m.Policy = &controlplane.Server{Sources: opts.Files, CiliumValues: opts.CiliumValues, SVIDs: srv, Bundles: srv, Logger: log.With("component", "policy")}
	if _, err := m.Policy.Reload(); err != nil {
		return nil, err
	}
	policyLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	m.PolicyAddr = policyLn.Addr().String()
	m.run("policy watch", func() error { return m.Policy.Watch(ctx) })
	m.run("policy service", func() error { return m.Policy.Serve(ctx, policyLn) })

	agentID, err := m.startAgent(ctx, srv, td, opts.StateDir, log)
	if err != nil {
		return nil, err
	}
	if err := m.register(ctx, srv, agentID); err != nil {
		return nil, err
	}
	if err := m.startProxies(ctx, opts, td, log); err != nil {
		return nil, err
	}
	return m, nil
}

// startAgent attests a fresh agent with a join token and waits until it
// serves the Workload API.
func (m *Mesh) startAgent(ctx context.Context, srv *server.Server, td spiffeid.TrustDomain, state string, log *slog.Logger) (spiffeid.ID, error) {
	tok, agentID, err := srv.NewJoinToken(ctx, time.Minute)
	if err != nil {
		return spiffeid.ID{}, err
	}
	bundle := filepath.Join(m.tmp, "bundle.pem")
	var pemData []byte
	for _, c := range srv.CA().X509Authorities() {
		pemData = append(pemData, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := os.WriteFile(bundle, pemData, 0o600); err != nil {
		return spiffeid.ID{}, err
	}
	// A new agent each run: its join token names it.
	agentState := filepath.Join(state, "agent")
	if err := os.RemoveAll(agentState); err != nil {
		return spiffeid.ID{}, err
	}
	a, err := agent.New(agent.Config{TrustDomain: td, ServerAddr: srv.AgentAddr().String(), JoinToken: tok.Token,
		TrustBundleFile: bundle, StateDir: agentState, SocketPath: m.AgentSocket, SyncWait: 5 * time.Second,
		Logger: log.With("component", "agent")})
	if err != nil {
		return spiffeid.ID{}, err
	}
	m.run("agent", func() error { return a.Run(ctx) })
	select {
	case <-a.Ready():
		return agentID, nil
	case <-ctx.Done():
		return spiffeid.ID{}, m.failure(ctx)
	case <-time.After(30 * time.Second):
		return spiffeid.ID{}, errors.New("the agent did not become ready in 30s")
	}
}

// entryHint prefixes the hint of the registration entries up creates, so
// that a later run can remove those of agents that no longer exist. (Hints
// must differ between the SVIDs a workload receives: the SPIFFE ID
// follows.)
const entryHint = "palisade-up "

// register creates one registration entry per identity, for this user's
// processes on the agent: every proxy runs in this process, and each picks
// its own SVID from those the agent serves it (on a cluster, Kubernetes
// selectors would tell pods apart).
func (m *Mesh) register(ctx context.Context, srv *server.Server, agentID spiffeid.ID) error {
	old, err := srv.Store().ListEntries(ctx, datastore.EntryFilter{})
	if err != nil {
		return err
	}
	for _, e := range old {
		if strings.HasPrefix(e.Hint, entryHint) && e.ParentID != agentID {
			if err := srv.Store().DeleteEntry(ctx, e.ID); err != nil {
				return err
			}
		}
	}
	seen := map[spiffeid.ID]bool{}
	for _, w := range m.Snapshot.Inventory.Workloads {
		id, err := spiffeid.FromString(m.Engine.Identity(w))
		if err != nil {
			return fmt.Errorf("%s: %w", w.Key(), err)
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		e := &identity.Entry{SPIFFEID: id, ParentID: agentID, Hint: entryHint + id.String(),
			Selectors: identity.Selectors{{Type: "unix", Value: "uid:" + strconv.Itoa(os.Getuid())}}}
		if _, err := srv.CreateEntry(ctx, e); err != nil && !errors.Is(err, datastore.ErrExists) {
			return fmt.Errorf("entry for %s: %w", id, err)
		}
	}
	return nil
}

// startProxies starts the applications and a proxy per workload, and waits
// for each to hold its SVID and a policy version.
func (m *Mesh) startProxies(ctx context.Context, opts Options, td spiffeid.TrustDomain, log *slog.Logger) error {
	logDir := filepath.Join(opts.StateDir, "logs")
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return err
	}
	// Bind every inbound listener first: each proxy's outbound listeners
	// need the inbound addresses of all the others.
	inbound := map[*config.Workload]map[uint16]net.Listener{}
	for _, w := range m.Snapshot.Inventory.Workloads {
		ports := map[uint16]net.Listener{}
		for _, p := range w.Ports {
			if p.Protocol != "TCP" || ports[p.Port] != nil {
				continue
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			// A proxy closes its listeners when it stops; this closes
			// them too if start-up fails before a proxy takes them.
			go func() { <-ctx.Done(); ln.Close() }()
			ports[p.Port] = ln
		}
		inbound[w] = ports
	}

	// Every proxy runs in this process, so the agent serves all their
	// SVIDs to it; each proxy uses its own. Entries just created reach the
	// agent one sync later: wait for each.
	set, err := svids.Watch(ctx, "unix://"+m.AgentSocket)
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); set.Close() }()
	for _, cw := range m.Snapshot.Inventory.Workloads {
		id, _ := spiffeid.FromString(m.Engine.Identity(cw))
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := set.WaitFor(wctx, id)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return m.failure(ctx)
			}
			return fmt.Errorf("%s: %w", cw.Key(), err)
		}
		src := set.For(id)
		w := &Workload{Workload: cw, ID: id, SVIDs: src, Inbound: map[uint16]string{}, App: map[uint16]string{}, Outbound: map[string]string{}}
		cfg := proxy.Config{Workload: cw, SVIDs: src, Bundles: src, MetricsAddr: "127.0.0.1:0", NodeName: "palisade-up", Version: "palisade"}
		for _, port := range sortedPorts(inbound[cw]) {
			ln := inbound[cw][port]
			app, err := m.startApp(ctx, opts, cw, port)
			if err != nil {
				return err
			}
			w.Inbound[port], w.App[port] = ln.Addr().String(), app
			cfg.Inbound = append(cfg.Inbound, proxy.InboundPort{Port: port, Listener: ln, App: app})
		}
		for _, dst := range m.Snapshot.Inventory.Workloads {
			if dst == cw {
				continue
			}
			for _, port := range sortedPorts(inbound[dst]) {
				cfg.Outbound = append(cfg.Outbound, proxy.OutboundListener{Listen: "127.0.0.1:0",
					To: dst.Key() + ":" + strconv.Itoa(int(port)), Endpoints: []string{inbound[dst][port].Addr().String()}})
			}
		}
		files, err := openLogs(logDir, cw)
		if err != nil {
			return err
		}
		cfg.AccessLog, cfg.FlowLog = files[0], files[1]
		audit, auditFile, err := telemetry.OpenAuditLog(filepath.Join(logDir, cw.Namespace+"."+cw.Name+".audit.log"))
		if err != nil {
			closeAll(files)
			return err
		}
		files = append(files, auditFile)
		cfg.AuditLog = audit

		w.Engines = &controlplane.Engines{Options: opts.Engine, Workload: cw.Key()}
		cfg.Policy = w.Engines.Engine
		w.Client = &controlplane.Client{Addr: m.PolicyAddr, Node: cw.Key(), SVIDs: src, Bundles: src,
			ServerID: identity.ServerID(td), Apply: w.Engines.Apply, MinBackoff: 50 * time.Millisecond, Logger: log.With("component", "policy-client", "workload", cw.Key())}
		p, err := proxy.New(cfg)
		if err != nil {
			closeAll(files)
			return fmt.Errorf("%s: %w", cw.Key(), err)
		}
		w.Proxy = p
		for i, out := range cfg.Outbound {
			w.Outbound[out.To] = p.OutboundAddr(i).String()
		}
		w.Metrics = p.MetricsAddr().String()
		m.run("policy client "+cw.Key(), func() error { return w.Client.Run(ctx) })
		m.run("proxy "+cw.Key(), func() error {
			defer closeAll(files) // after the drain has logged the last requests
			return p.Run(ctx)
		})
		m.Workloads = append(m.Workloads, w)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, w := range m.Workloads {
		for w.Engines.Engine() == nil {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: no policy after 30s: %s", w.Key(), w.Client.State().LastError)
			}
			select {
			case <-ctx.Done():
				return m.failure(ctx)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// startApp returns the address of the application behind a port: one
// named in Options.Apps, or a built-in echo server started here, HTTP or
// TCP as the sidecar proxies the port.
func (m *Mesh) startApp(ctx context.Context, opts Options, w *config.Workload, port uint16) (string, error) {
	if addr, ok := opts.Apps[w.Key()+":"+strconv.Itoa(int(port))]; ok {
		return addr, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go func() { <-ctx.Done(); ln.Close() }()
	if m.Engine.Inbound(w).OpaqueTCP(port) {
		m.run("echo "+w.Key(), func() error { return echo.ServeTCP(ln) })
	} else {
		m.run("echo "+w.Key(), func() error { return echo.ServeHTTP(ln, w.Key()) })
	}
	return ln.Addr().String(), nil
}

// declares reports whether "namespace/name:port" names a TCP port of a
// workload of snap.
func declares(snap *config.Snapshot, key string) bool {
	name, port, ok := strings.Cut(key, ":")
	if !ok {
		return false
	}
	w, err := snap.Inventory.Workload(name)
	if err != nil {
		return false
	}
	for _, p := range w.Ports {
		if p.Protocol == "TCP" && strconv.Itoa(int(p.Port)) == port {
			return true
		}
	}
	return false
}

func openLogs(dir string, w *config.Workload) ([]*os.File, error) {
	var files []*os.File
	for _, kind := range []string{"access", "flow"} {
		f, err := os.OpenFile(filepath.Join(dir, w.Namespace+"."+w.Name+"."+kind+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			closeAll(files)
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

func sortedPorts(m map[uint16]net.Listener) []uint16 {
	ports := make([]uint16, 0, len(m))
	for p := range m {
		ports = append(ports, p)
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
	return ports
}

// run starts a component; the first to fail stops the mesh.
func (m *Mesh) run(name string, f func() error) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := f(); err != nil && !errors.Is(err, context.Canceled) {
			m.errMu.Lock()
			if m.err == nil {
				m.err = fmt.Errorf("%s: %w", name, err)
			}
			m.errMu.Unlock()
			m.cancel()
		}
	}()
}

// failure is why ctx ended during start-up: the component that failed, or
// the caller's cancellation.
func (m *Mesh) failure(ctx context.Context) error {
	m.errMu.Lock()
	defer m.errMu.Unlock()
	if m.err != nil {
		return m.err
	}
	return ctx.Err()
}

// Wait blocks until the mesh has stopped and returns the first failure.
func (m *Mesh) Wait() error {
	m.wg.Wait()
	os.RemoveAll(m.tmp)
	m.errMu.Lock()
	defer m.errMu.Unlock()
	return m.err
}

// Close stops the mesh and waits for it.
func (m *Mesh) Close() error {
	m.cancel()
	return m.Wait()
}
