package main

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/palisade-security/palisade/examples"
	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/engine"
	"github.com/palisade-security/palisade/internal/up"
)

// meshFlags are what up and demo share.
type meshFlags struct {
	files        []string
	ciliumValues string
	state        string
	apps         []string
	logLevel     string
}

func (f *meshFlags) register(cmd *cobra.Command, state string) {
	fl := cmd.Flags()
	fl.StringArrayVarP(&f.files, "filename", "f", nil, "policy and inventory files or directories, watched for changes (repeatable)")
	fl.StringVar(&f.ciliumValues, "cilium-values", "", "Cilium Helm values file")
	fl.StringVar(&f.state, "state-dir", state, "state directory: the CA and datastore, the agent, the proxies' logs")
	fl.StringArrayVar(&f.apps, "app", nil, "NAMESPACE/NAME:PORT=ADDR: an application already listening, instead of the built-in echo (repeatable)")
	fl.StringVar(&f.logLevel, "log-level", "warn", "components' log level on stderr: debug, info, warn, error")
}

func (f *meshFlags) options() (up.Options, error) {
	opts := up.Options{Files: f.files, CiliumValues: f.ciliumValues, StateDir: f.state, Apps: map[string]string{}}
	for _, a := range f.apps {
		k, v, ok := strings.Cut(a, "=")
		if !ok || !strings.Contains(k, ":") {
			return opts, fmt.Errorf("--app %q: want NAMESPACE/NAME:PORT=ADDR", a)
		}
		opts.Apps[k] = v
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return opts, fmt.Errorf("--log-level: %v", err)
	}
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	return opts, nil
}

func newUpCmd() *cobra.Command {
	var f meshFlags
	var jwks []string
	cmd := &cobra.Command{
		Use:   "up -f PATH... [flags]",
		Short: "Run a whole mesh on this machine: server, agent, and a proxy per workload",
		Long: `Up starts, in one process, everything a cluster would run: the identity
server with policy distribution (watching -f: edit a policy and every proxy
enforces it within a second), a node agent serving the SPIFFE Workload API,
and for every workload of the inventory a sidecar proxy in front of its
application — a built-in echo server, or one named with --app.

The proxies fetch their SVIDs from the agent's Workload API, receive policy
over mutual TLS gRPC, and speak Istio mTLS to each other. Every listener is
on 127.0.0.1: a workload reaches another through an outbound listener its
proxy opens for each destination port; up prints them and writes them to
STATE/routes.json. Logs (access, flow, audit) are in STATE/logs.

It runs until interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(f.files) == 0 {
				return badInput("up needs -f PATH")
			}
			opts, err := f.options()
			if err != nil {
				return badInput("%v", err)
			}
			keys, err := jwksFetcher(jwks)
			if err != nil {
				return err
			}
			opts.Engine = engine.Options{Keys: keys}
			ctx, cancel := signalContext()
			defer cancel()
			m, err := up.Start(ctx, opts)
			if err != nil {
				return err
			}
			if err := writeRoutes(filepath.Join(f.state, "routes.json"), m); err != nil {
				m.Close()
				return err
			}
			printMesh(cmd.OutOrStdout(), m, f.state)
			fmt.Fprintln(cmd.OutOrStdout(), "\nRunning; Ctrl-C stops.")
			return m.Wait()
		},
	}
	f.register(cmd, ".palisade/up")
	cmd.Flags().StringArrayVar(&jwks, "jwks", nil, "use a local JWKS file for a jwksUri: URI=FILE (repeatable)")
	return cmd
}

func newDemoCmd() *cobra.Command {
	var f meshFlags
	var traffic string
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo [-f PATH...] [flags]",
		Short: "Run the mesh, send allowed and denied traffic through it, and show each verdict",
		Long: `Demo runs what up runs and sends traffic through it: requests and
connections from one workload to another, each through the client's proxy,
the server's proxy and the application. For each it shows what happened on
the wire next to what palisade check predicts, and what decided.

Without -f it runs the corrected reference system bundled in the binary
(examples/reference-system-fixed) with its traffic (examples/traffic). With
-f, --traffic names the traffic file: one call a line,

  FROM TO PORT [METHOD PATH] [token | token:CLAIM=V,... | forged]

Tokens are signed by a key the demo registers for every jwksUri of the
RequestAuthentications, standing in for the identity providers.

Exit status: 0 when the wire agreed with every prediction, 1 otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd, &f, traffic, keep) },
	}
	f.register(cmd, ".palisade/demo")
	cmd.Flags().StringVar(&traffic, "traffic", "", "traffic file (default: the bundled example's)")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the mesh running after the traffic, until interrupted")
	return cmd
}

func runDemo(cmd *cobra.Command, f *meshFlags, traffic string, keep bool) error {
	out := cmd.OutOrStdout()
	if len(f.files) == 0 {
		dir := filepath.Join(f.state, "example")
		if err := extract(examples.FS, dir); err != nil {
			return err
		}
		f.files = []string{filepath.Join(dir, "reference-system-fixed")}
		if traffic == "" {
			traffic = filepath.Join(dir, "traffic", "reference-system-fixed.txt")
		}
	}
	if traffic == "" {
		return badInput("with -f, demo needs --traffic FILE")
	}
	trafficData, err := os.ReadFile(traffic)
	if err != nil {
		return badInput("%v", err)
	}
	calls, err := up.ParseTraffic(traffic, trafficData)
	if err != nil {
		return badInput("%v", err)
	}
	opts, err := f.options()
	if err != nil {
		return badInput("%v", err)
	}
	snap, _ := config.LoadInput(config.Input{Paths: f.files, CiliumValues: f.ciliumValues})
	issuer, err := up.NewIssuer(snap)
	if err != nil {
		return err
	}
	opts.Engine = engine.Options{Keys: issuer.Keys}

	ctx, cancel := signalContext()
	defer cancel()
	started := time.Now()
	m, err := up.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer m.Close()
	fmt.Fprintf(out, "Palisade demo on %s: %d workloads up in %.1fs, each behind its own proxy\n",
		strings.Join(f.files, ", "), len(m.Workloads), time.Since(started).Seconds())
	fmt.Fprintln(out, "(SVIDs from the agent's Workload API, policy from the server over mTLS gRPC, Istio mTLS between proxies)")
	fmt.Fprintln(out)

	results := m.Drive(ctx, issuer, calls)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FROM\tTO\tREQUEST\tWIRE\tCHECK\tDECIDED BY")
	agree := 0
	for _, r := range results {
		req := "TCP"
		if r.Method != "" {
			req = r.Method + " " + r.Path
			switch {
			case r.Token == "forged":
				req += " [forged JWT]"
			case r.Token != "":
				req += " [JWT" + claimsShown(r.Token) + "]"
			}
		}
		got := r.Got
		if r.Err != nil {
			got = "error: " + r.Err.Error()
		}
		mark := ""
		if r.Agrees() {
			agree++
		} else {
			mark = "  <- differs"
		}
		by := r.Layer
		switch {
		case r.Policy != "":
			by += " " + r.Policy
		case strings.Contains(r.Reason, "default deny"):
			by += " (default deny)"
		case strings.Contains(r.Reason, "no ALLOW rule matched"):
			by += " (no ALLOW rule matched)"
		}
		fmt.Fprintf(tw, "%s\t%s:%d\t%s\t%s\t%s\t%s%s\n", short(r.From), short(r.To), r.Port, req, got, r.Want, by, mark)
	}
	tw.Flush()
	fmt.Fprintf(out, "\n%d of %d calls behaved on the wire as `palisade check` predicts.\n", agree, len(results))
	if w := m.Find("production/backend-api"); w != nil {
		fmt.Fprintf(out, "Metrics of production/backend-api's proxy: http://%s/metrics (every proxy: %s)\n", w.Metrics, filepath.Join(f.state, "routes.json"))
	}
	fmt.Fprintf(out, "Access, flow and audit logs: %s\n", filepath.Join(f.state, "logs"))
	if err := writeRoutes(filepath.Join(f.state, "routes.json"), m); err != nil {
		return err
	}
	if keep {
		fmt.Fprintln(out, "\nRunning; Ctrl-C stops.")
		if err := m.Wait(); err != nil {
			return err
		}
	}
	if agree != len(results) {
		return &exitError{code: exitDenied}
	}
	return nil
}

// claimsShown lists a demo token's claims other than the default subject.
func claimsShown(claims string) string {
	var kept []string
	for _, kv := range strings.Split(claims, ",") {
		if kv != "sub=user-demo" && !strings.HasPrefix(kv, "sub=") {
			kept = append(kept, kv)
		}
	}
	if len(kept) == 0 {
		return ""
	}
	return " " + strings.Join(kept, ",")
}

// short drops the namespace of well-known names to keep the table narrow.
func short(key string) string {
	return strings.TrimPrefix(key, "production/")
}

// extract writes an embedded tree into dir, replacing what is there.
func extract(fsys fs.FS, dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dir, path)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

// routeDoc is one workload in routes.json.
type routeDoc struct {
	Workload string            `json:"workload"`
	Identity string            `json:"identity"`
	Metrics  string            `json:"metrics"`
	Inbound  map[string]string `json:"inbound"`  // port → the proxy's inbound address
	App      map[string]string `json:"app"`      // port → the application's address
	Outbound map[string]string `json:"outbound"` // "namespace/name:port" → local address
}

func writeRoutes(path string, m *up.Mesh) error {
	var docs []routeDoc
	for _, w := range m.Workloads {
		d := routeDoc{Workload: w.Key(), Identity: w.ID.String(), Metrics: w.Metrics,
			Inbound: map[string]string{}, App: map[string]string{}, Outbound: w.Outbound}
		for p, a := range w.Inbound {
			d.Inbound[fmt.Sprint(p)] = a
		}
		for p, a := range w.App {
			d.App[fmt.Sprint(p)] = a
		}
		docs = append(docs, d)
	}
	data, err := json.MarshalIndent(map[string]any{"policy": m.PolicyAddr, "workloadAPI": m.AgentSocket, "workloads": docs}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

func printMesh(out io.Writer, m *up.Mesh, state string) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tIDENTITY\tPORTS (proxy -> app)\tMETRICS")
	for _, w := range m.Workloads {
		var ports []string
		for p, a := range w.Inbound {
			ports = append(ports, fmt.Sprintf("%d: %s -> %s", p, a, w.App[p]))
		}
		sort.Strings(ports)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", w.Key(), w.ID, strings.Join(ports, ", "), w.Metrics)
	}
	tw.Flush()
	fmt.Fprintf(out, "\nPolicy service %s; Workload API unix://%s\n", m.PolicyAddr, m.AgentSocket)
	fmt.Fprintf(out, "A workload reaches another through its proxy's outbound listeners, listed in %s\n", filepath.Join(state, "routes.json"))
	if len(m.Workloads) > 1 {
		a, b := m.Workloads[0], m.Workloads[1]
		for to, addr := range a.Outbound {
			if strings.HasPrefix(to, b.Key()+":") {
				fmt.Fprintf(out, "  e.g. %s -> %s: %s\n", a.Key(), to, addr)
				break
			}
		}
	}
}
