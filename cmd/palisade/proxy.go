package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/palisade-security/palisade/internal/controlplane"
	"github.com/palisade-security/palisade/internal/engine"
	"github.com/palisade-security/palisade/internal/identity"
	"github.com/palisade-security/palisade/internal/procmem"
	"github.com/palisade-security/palisade/internal/proxy"
	"github.com/palisade-security/palisade/internal/svids"
	"github.com/palisade-security/palisade/internal/telemetry"
)

type proxyFlags struct {
	workload           string
	server, socket     string
	inbound, outbound  []string
	metrics            string
	access, flow, audt string
	jwks               []string
}

func newProxyCmd() *cobra.Command {
	var f proxyFlags
	cmd := &cobra.Command{
		Use:   "proxy --workload NAMESPACE/NAME [flags]",
		Short: "Run the sidecar proxy of one workload",
		Long: `Proxy runs beside one workload. Its identity (X.509-SVID and trust bundle)
comes from the node agent's SPIFFE Workload API on --socket, rotated without
dropping connections; its policy from the server on --server, over mutual TLS
gRPC: it starts serving once the first version has arrived and keeps the last
good version when the server is unreachable.

Inbound ports (repeatable):
  --inbound PORT,listen=ADDR,app=ADDR[,tcp]
PORT is the workload's container port, as policies name it; listen is where
peers connect; app is the application; tcp proxies the port as opaque TCP
even when no Service says so.

Outbound listeners (repeatable), one per destination the application calls:
  --outbound listen=ADDR,to=NAMESPACE/NAME:PORT[,endpoint=ADDR...][,protocol=http|tcp]
  --outbound listen=ADDR,to=fqdn:NAME:PORT
endpoint is the destination proxy's inbound address (default: the
destination's pod IPs at PORT).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runProxy(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.workload, "workload", "", "the workload, NAMESPACE/NAME in the inventory the server distributes")
	fl.StringVar(&f.server, "server", defaultPolicyAddr, "policy server address")
	fl.StringVar(&f.socket, "socket", defaultAgentSocket, "Workload API socket")
	fl.StringArrayVar(&f.inbound, "inbound", nil, "PORT,listen=ADDR,app=ADDR[,tcp] (repeatable)")
	fl.StringArrayVar(&f.outbound, "outbound", nil, "listen=ADDR,to=DEST:PORT[,endpoint=ADDR][,protocol=P] (repeatable)")
	fl.StringVar(&f.metrics, "metrics", "", "Prometheus metrics address, e.g. 127.0.0.1:15020 (empty: off)")
	fl.StringVar(&f.access, "access-log", "", "access log file, - for stdout (empty: off)")
	fl.StringVar(&f.flow, "flow-log", "", "flow log file, - for stdout (empty: off)")
	fl.StringVar(&f.audt, "audit-log", "", "audit log file, - for stdout (empty: off)")
	fl.StringArrayVar(&f.jwks, "jwks", nil, "use a local JWKS file for a jwksUri: URI=FILE (repeatable)")
	return cmd
}

func runProxy(cmd *cobra.Command, f *proxyFlags) error {
	if !strings.Contains(f.workload, "/") {
		return badInput("proxy needs --workload NAMESPACE/NAME")
	}
	var cfg proxy.Config
	for _, s := range f.inbound {
		in, err := parseInbound(s)
		if err != nil {
			return badInput("--inbound %q: %v", s, err)
		}
		cfg.Inbound = append(cfg.Inbound, in)
	}
	for _, s := range f.outbound {
		out, err := parseOutbound(s)
		if err != nil {
			return badInput("--outbound %q: %v", s, err)
		}
		cfg.Outbound = append(cfg.Outbound, out)
	}
	keys, err := jwksFetcher(f.jwks)
	if err != nil {
		return err
	}
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for _, l := range []struct {
		path string
		w    *io.Writer
	}{{f.access, &cfg.AccessLog}, {f.flow, &cfg.FlowLog}} {
		switch l.path {
		case "":
		case "-":
			*l.w = cmd.OutOrStdout()
		default:
			file, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
			if err != nil {
				return badInput("%v", err)
			}
			closers = append(closers, file)
			*l.w = file
		}
	}
	switch f.audt {
	case "":
	case "-":
		cfg.AuditLog = telemetry.NewAuditLog(cmd.OutOrStdout())
	default:
		// The file's chain is continued, not restarted: it stays one
		// verifiable chain across restarts.
		a, file, err := telemetry.OpenAuditLog(f.audt)
		if err != nil {
			return badInput("--audit-log: %v", err)
		}
		closers = append(closers, file)
		cfg.AuditLog = a
	}

	ctx, cancel := signalContext()
	defer cancel()
	// The SVID to present is the workload's service account identity,
	// which the policy's inventory gives: until the first version has
	// arrived, the policy client presents the agent's default SVID.
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	set, err := svids.Watch(wctx, "unix://"+f.socket)
	wcancel()
	if err != nil {
		return fmt.Errorf("%v (is the agent running, and an entry registered for this process?)", err)
	}
	defer set.Close()
	src := set.For(spiffeid.ID{})
	first, err := src.GetX509SVID()
	if err != nil {
		return err
	}
	td := first.ID.TrustDomain()

	engines := &controlplane.Engines{Options: engine.Options{Keys: keys}, Workload: f.workload}
	client := &controlplane.Client{Addr: f.server, Node: f.workload, SVIDs: src, Bundles: src,
		ServerID: identity.ServerID(td), Apply: engines.Apply,
		Logger: slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))}
	clientDone := make(chan error, 1)
	go func() { clientDone <- client.Run(ctx) }()
	fmt.Fprintf(cmd.ErrOrStderr(), "palisade proxy: %s, waiting for policy from %s\n", f.workload, f.server)
	var eng *engine.Engine
	for eng == nil {
		select {
		case <-ctx.Done():
			return nil
		case err := <-clientDone:
			return err
		case <-time.After(20 * time.Millisecond):
			eng = engines.Engine()
		}
	}
	w, err := eng.Snapshot.Inventory.Workload(f.workload)
	if err != nil {
		return badInput("--workload: %v", err)
	}
	id, err := spiffeid.FromString(eng.Identity(w))
	if err != nil {
		return err
	}
	// From now on the proxy and its policy client present the workload's
	// own SVID.
	src.Pin(id)
	if _, err := src.GetX509SVID(); err != nil {
		return fmt.Errorf("%v to this process (register it: palisade entry create)", err)
	}
	cfg.Workload, cfg.Policy, cfg.SVIDs, cfg.Bundles = w, engines.Engine, src, src
	cfg.MetricsAddr, cfg.Version = f.metrics, version
	cfg.NodeName, _ = os.Hostname()
	p, err := proxy.New(cfg)
	if err != nil {
		return badInput("%v", err)
	}
	for i, in := range cfg.Inbound {
		fmt.Fprintf(cmd.ErrOrStderr(), "palisade proxy: inbound port %d on %s -> %s\n", in.Port, p.InboundAddr(i), in.App)
	}
	for i, out := range cfg.Outbound {
		fmt.Fprintf(cmd.ErrOrStderr(), "palisade proxy: outbound %s on %s\n", out.To, p.OutboundAddr(i))
	}
	if a := p.MetricsAddr(); a != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "palisade proxy: metrics http://%s/metrics\n", a)
	}
	// Drop the pages start-up touched, now and once the listeners' servers
	// have started (net/http sets up HTTP/2 when it starts serving).
	release := func() {
		if _, err := procmem.ReleaseExecutablePages(); err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "palisade proxy: %v\n", err)
		}
	}
	release()
	t := time.AfterFunc(2*time.Second, release)
	defer t.Stop()
	return p.Run(ctx)
}

// parseInbound reads PORT,listen=ADDR,app=ADDR[,tcp].
func parseInbound(s string) (proxy.InboundPort, error) {
	var in proxy.InboundPort
	parts := strings.Split(s, ",")
	port, err := strconv.ParseUint(parts[0], 10, 16)
	if err != nil || port == 0 {
		return in, fmt.Errorf("port %q", parts[0])
	}
	in.Port = uint16(port)
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "listen":
			in.Listen = v
		case "app":
			in.App = v
		case "tcp":
			in.TCP = true
		default:
			return in, fmt.Errorf("unknown key %q", k)
		}
	}
	if in.Listen == "" || in.App == "" {
		return in, fmt.Errorf("listen= and app= are required")
	}
	return in, nil
}

// parseOutbound reads listen=ADDR,to=DEST[,endpoint=ADDR...][,protocol=P].
func parseOutbound(s string) (proxy.OutboundListener, error) {
	var out proxy.OutboundListener
	for _, p := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "listen":
			out.Listen = v
		case "to":
			out.To = v
		case "endpoint":
			out.Endpoints = append(out.Endpoints, v)
		case "protocol":
			out.Protocol = v
		default:
			return out, fmt.Errorf("unknown key %q", k)
		}
	}
	if out.Listen == "" || out.To == "" {
		return out, fmt.Errorf("listen= and to= are required")
	}
	return out, nil
}
