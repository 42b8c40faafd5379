package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/palisade-security/palisade/internal/agent"
	"github.com/palisade-security/palisade/internal/controlplane"
	"github.com/palisade-security/palisade/internal/nodeapi"
	"github.com/palisade-security/palisade/internal/server"
)

// Defaults for running everything on one machine.
const (
	defaultServerState = ".palisade/server"
	defaultAgentState  = ".palisade/agent"
	defaultAgentSocket = "/tmp/palisade-agent/public/api.sock"
	defaultServerAddr  = "127.0.0.1:8081"
	defaultPolicyAddr  = "127.0.0.1:8082"
)

// runWithPolicy runs the identity server and policy distribution together
// until ctx is done or one of them fails.
func runWithPolicy(ctx context.Context, s *server.Server, policy *controlplane.Server, bind string) error {
	policy.SVIDs, policy.Bundles = s, s
	if _, err := policy.Reload(); err != nil {
		return badInput("policy: %v", err)
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return fmt.Errorf("policy distribution: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	go func() { errc <- s.Run(ctx) }()
	go func() { errc <- policy.Watch(ctx) }()
	go func() { errc <- policy.Serve(ctx, ln) }()
	var first error
	for range 3 {
		if err := <-errc; err != nil && first == nil && ctx.Err() == nil {
			first = err
			cancel()
		}
	}
	return first
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func newServerCmd() *cobra.Command {
	var cfg server.Config
	var td, state string
	var policy controlplane.Server
	var policyBind string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane: SPIFFE CA, registration, agent API, policy distribution",
		Long: `Server runs Palisade's SPIFFE CA. State (SQLite datastore, CA keys with mode
0600, the admin socket) lives in --state-dir; restarting keeps the same CA and
entries. Agents attest with join tokens (palisade agent token) and then talk
to the server over mutual TLS.

With -f, the server also distributes policy: it watches the files and
directories given (every change is validated, versioned and published once
the files stop changing) and streams each version to proxies over mutual TLS
gRPC on --policy-bind, with the server's own SVID.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := spiffeid.TrustDomainFromString(td)
			if err != nil {
				return badInput("--trust-domain %q: %v", td, err)
			}
			cfg.TrustDomain, cfg.StateDir = id, state
			ctx, cancel := signalContext()
			defer cancel()
			s, err := server.New(ctx, cfg)
			if err != nil {
				return err
			}
			if len(policy.Sources) == 0 {
				return s.Run(ctx)
			}
			return runWithPolicy(ctx, s, &policy, policyBind)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVarP(&policy.Sources, "filename", "f", nil, "policy files or directories to watch and distribute (repeatable)")
	fl.StringVar(&policy.CiliumValues, "cilium-values", "", "Cilium Helm values file distributed with the policy")
	fl.StringVar(&policyBind, "policy-bind", defaultPolicyAddr, "policy distribution address (with -f)")
	fl.StringVar(&td, "trust-domain", "cluster.local", "SPIFFE trust domain")
	fl.StringVar(&state, "state-dir", defaultServerState, "state directory")
	fl.StringVar(&cfg.BindAddr, "bind", defaultServerAddr, "agent API address")
	fl.StringVar(&cfg.HealthAddr, "health", "", "address for /live and /ready (empty: off)")
	fl.DurationVar(&cfg.CATTL, "ca-ttl", 24*time.Hour, "CA certificate lifetime")
	fl.DurationVar(&cfg.SVIDTTL, "svid-ttl", time.Hour, "default X.509-SVID lifetime")
	fl.DurationVar(&cfg.JWTTTL, "jwt-ttl", 5*time.Minute, "default JWT-SVID lifetime")
	fl.StringVar(&cfg.KeyType, "key-type", "ec-p256", "CA key type: ec-p256, ec-p384, rsa-2048, rsa-4096")
	fl.StringVar(&cfg.UpstreamCertFile, "upstream-cert", "", "upstream CA certificate (PEM): run as an intermediate CA")
	fl.StringVar(&cfg.UpstreamKeyFile, "upstream-key", "", "upstream CA private key (PEM)")
	return cmd
}

func newAgentCmd() *cobra.Command {
	var cfg agent.Config
	var td string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent: serves the SPIFFE Workload API",
		Long: `Agent attests to the server once with a join token, keeps its own SVID in
--state-dir, and serves workloads their X.509 and JWT SVIDs over the SPIFFE
Workload API on --socket. Workloads are attested by the kernel (the caller's
pid, uid and gid), with selectors unix:uid, unix:gid, unix:path, unix:sha256.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := spiffeid.TrustDomainFromString(td)
			if err != nil {
				return badInput("--trust-domain %q: %v", td, err)
			}
			cfg.TrustDomain = id
			a, err := agent.New(cfg)
			if err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			return a.Run(ctx)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&td, "trust-domain", "cluster.local", "SPIFFE trust domain")
	fl.StringVar(&cfg.ServerAddr, "server", defaultServerAddr, "server agent API address")
	fl.StringVar(&cfg.JoinToken, "join-token", "", "one-time join token (first start only)")
	fl.StringVar(&cfg.TrustBundleFile, "trust-bundle", "", "PEM bundle to trust the server with on first contact")
	fl.BoolVar(&cfg.InsecureBootstrap, "insecure-bootstrap", false, "trust the server on first contact without a bundle")
	fl.StringVar(&cfg.StateDir, "state-dir", defaultAgentState, "state directory")
	fl.StringVar(&cfg.SocketPath, "socket", defaultAgentSocket, "Workload API socket")
	cmd.AddCommand(newTokenCmd())
	return cmd
}

// adminClient talks to the server's admin socket.
type adminClient struct {
	socket string
	http   *http.Client
}

func newAdminClient(socket string) *adminClient {
	return &adminClient{socket: socket, http: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}},
	}}
}

func (c *adminClient) do(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, "http://palisade"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("server admin socket %s: %v (is `palisade server` running?)", c.socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e nodeapi.Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return &exitError{code: exitDenied, msg: e.Error}
		}
		return fmt.Errorf("server: %s", resp.Status)
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data
		return nil
	}
	return json.Unmarshal(data, out)
}

func socketFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "server-socket", filepath.Join(defaultServerState, "admin.sock"), "server admin socket")
}

func newTokenCmd() *cobra.Command {
	var socket string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create a one-time join token for a new agent",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out nodeapi.JoinTokenResponse
			if err := newAdminClient(socket).do(http.MethodPost, nodeapi.PathJoinTokens, nodeapi.JoinTokenRequest{TTL: nodeapi.Duration(ttl)}, &out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Token: %s\nAgent ID: %s\nExpires: %s\n", out.Token, out.AgentID, out.ExpiresAt)
			return nil
		},
	}
	socketFlag(cmd, &socket)
	cmd.Flags().DurationVar(&ttl, "ttl", 10*time.Minute, "how long the token can be used")
	return cmd
}

func newEntryCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "entry", Short: "Manage registration entries: who gets which SPIFFE ID"}
	var socket string
	var e nodeapi.Entry
	var x509TTL, jwtTTL time.Duration
	create := &cobra.Command{
		Use:   "create --spiffe-id ID --parent-id AGENT_ID --selector TYPE:VALUE...",
		Short: "Create an entry",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e.X509TTL, e.JWTTTL = nodeapi.Duration(x509TTL), nodeapi.Duration(jwtTTL)
			var out nodeapi.Entry
			if err := newAdminClient(socket).do(http.MethodPost, nodeapi.PathEntries, e, &out); err != nil {
				return err
			}
			printEntry(cmd.OutOrStdout(), out)
			return nil
		},
	}
	socketFlag(create, &socket)
	create.Flags().StringVar(&e.SPIFFEID, "spiffe-id", "", "the SPIFFE ID to issue")
	create.Flags().StringVar(&e.ParentID, "parent-id", "", "the agent (its SPIFFE ID) whose workloads may get it")
	create.Flags().StringArrayVar(&e.Selectors, "selector", nil, "TYPE:VALUE, e.g. unix:uid:1000 (repeatable; all must match)")
	create.Flags().DurationVar(&x509TTL, "x509-ttl", 0, "X.509-SVID lifetime (default: the server's)")
	create.Flags().DurationVar(&jwtTTL, "jwt-ttl", 0, "JWT-SVID lifetime (default: the server's)")
	create.Flags().StringArrayVar(&e.DNSNames, "dns", nil, "DNS SAN (repeatable)")
	create.Flags().StringVar(&e.Hint, "hint", "", "hint for workloads with several identities")

	var listSocket, parent, spiffe string
	list := &cobra.Command{
		Use:   "list",
		Short: "List entries",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if parent != "" {
				q.Set("parentId", parent)
			}
			if spiffe != "" {
				q.Set("spiffeId", spiffe)
			}
			var out []nodeapi.Entry
			if err := newAdminClient(listSocket).do(http.MethodGet, nodeapi.PathEntries+"?"+q.Encode(), nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSPIFFE ID\tPARENT ID\tSELECTORS")
			for _, e := range out {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.ID, e.SPIFFEID, e.ParentID, strings.Join(e.Selectors, ","))
			}
			return tw.Flush()
		},
	}
	socketFlag(list, &listSocket)
	list.Flags().StringVar(&parent, "parent-id", "", "only entries of this parent")
	list.Flags().StringVar(&spiffe, "spiffe-id", "", "only entries with this SPIFFE ID")

	var showSocket string
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show an entry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out nodeapi.Entry
			if err := newAdminClient(showSocket).do(http.MethodGet, nodeapi.PathEntries+"/"+url.PathEscape(args[0]), nil, &out); err != nil {
				return err
			}
			printEntry(cmd.OutOrStdout(), out)
			return nil
		},
	}
	socketFlag(show, &showSocket)

	var delSocket string
	del := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete an entry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out map[string]string
			if err := newAdminClient(delSocket).do(http.MethodDelete, nodeapi.PathEntries+"/"+url.PathEscape(args[0]), nil, &out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted entry %s\n", args[0])
			return nil
		},
	}
	socketFlag(del, &delSocket)
	cmd.AddCommand(create, list, show, del)
	return cmd
}

func printEntry(w io.Writer, e nodeapi.Entry) {
	fmt.Fprintf(w, "Entry ID:   %s\nSPIFFE ID:  %s\nParent ID:  %s\n", e.ID, e.SPIFFEID, e.ParentID)
	for _, s := range e.Selectors {
		fmt.Fprintf(w, "Selector:   %s\n", s)
	}
	if e.X509TTL != 0 {
		fmt.Fprintf(w, "X509 TTL:   %s\n", time.Duration(e.X509TTL))
	}
	if e.JWTTTL != 0 {
		fmt.Fprintf(w, "JWT TTL:    %s\n", time.Duration(e.JWTTTL))
	}
	for _, d := range e.DNSNames {
		fmt.Fprintf(w, "DNS name:   %s\n", d)
	}
}

func newBundleCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bundle", Short: "Show the trust bundle"}
	var socket, format string
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the trust bundle (PEM by default, or the SPIFFE bundle JSON)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := nodeapi.PathBundle
			switch format {
			case "pem":
				path += "?format=pem"
			case "spiffe":
			default:
				return badInput("--format must be pem or spiffe")
			}
			var out []byte
			if err := newAdminClient(socket).do(http.MethodGet, path, nil, &out); err != nil {
				return err
			}
			_, err := cmd.OutOrStdout().Write(out)
			return err
		},
	}
	socketFlag(show, &socket)
	show.Flags().StringVar(&format, "format", "pem", "pem or spiffe")
	cmd.AddCommand(show)
	return cmd
}

func newHealthcheckCmd() *cobra.Command {
	var serverSocket, agentSocket string
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Check that the server (or, with --agent-socket, the agent) is healthy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if agentSocket != "" {
				conn, err := grpc.NewClient("unix://"+agentSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
				if err != nil {
					return err
				}
				defer conn.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
				if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
					return &exitError{code: exitDenied, msg: fmt.Sprintf("agent is unhealthy: %v %v", resp.GetStatus(), err)}
				}
				fmt.Fprintln(cmd.OutOrStdout(), "Agent is healthy.")
				return nil
			}
			var out map[string]string
			if err := newAdminClient(serverSocket).do(http.MethodGet, nodeapi.PathHealth, nil, &out); err != nil {
				return &exitError{code: exitDenied, msg: "server is unhealthy: " + err.Error()}
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Server is healthy.")
			return nil
		},
	}
	socketFlag(cmd, &serverSocket)
	cmd.Flags().StringVar(&agentSocket, "agent-socket", "", "check the agent's Workload API socket instead")
	return cmd
}
