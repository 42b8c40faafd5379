package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/palisade-security/palisade/internal/authz"
	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/engine"
	"github.com/palisade-security/palisade/internal/jwtauth"
)

type checkFlags struct {
	files                []string
	from, to             string
	port                 int
	plaintext            bool
	method, path, host   string
	headers              []string
	token                string
	sourceIP, destIP     string
	resolvedIP           string
	ciliumValues         string
	transport            string
	output               string
	jwks                 []string
	assumeExtAuthzAllows bool
	strict               bool
}

func newCheckCmd() *cobra.Command {
	var f checkFlags
	cmd := &cobra.Command{
		Use:   "check -f PATH... --from SRC --to DST [flags]",
		Short: "Decide one connection or request as Istio would, and explain why",
		Long: `Check decides whether SRC may reach DST, layer by layer — mutual TLS
(PeerAuthentication), HTTP handling, request authentication (JWT) and
authorization (AuthorizationPolicy) — and names what decided.

SRC and DST are NAMESPACE/NAME of workloads in the loaded inventory; SRC may
also be ip:ADDR, a client outside the mesh, and DST ip:ADDR or fqdn:NAME, a
destination outside the cluster (egress control). With --method or --path
the check is an HTTP request, otherwise a TCP connection (or --protocol UDP).

The layers, in the order traffic meets them: network-egress (the client's
CiliumNetworkPolicy/NetworkPolicy egress), network-ingress (the server's),
l7 (Cilium's rules.http), mtls (PeerAuthentication), http (the sidecar's
request handling), authn (RequestAuthentication) and authz
(AuthorizationPolicy).

Resources that istiod would reject are left out, as they would not exist in a
cluster, and reported as warnings (--strict makes them fatal).

Exit status: 0 allowed, 1 denied, 2 bad input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runCheck(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.StringArrayVarP(&f.files, "filename", "f", nil, "file, directory or - for stdin (repeatable)")
	fl.StringVar(&f.from, "from", "", "source: NAMESPACE/NAME, ip:ADDR for a client outside the mesh, or entity:NAME (host, kube-apiserver, ...)")
	fl.StringVar(&f.to, "to", "", "destination: NAMESPACE/NAME, ip:ADDR or fqdn:NAME outside the cluster, or entity:NAME")
	fl.StringVar(&f.resolvedIP, "resolved-ip", "", "with --to fqdn:NAME, the address the name resolves to (what Cilium's DNS proxy would learn)")
	fl.StringVar(&f.transport, "protocol", "TCP", "transport protocol: TCP, UDP or SCTP")
	fl.IntVar(&f.port, "port", 0, "destination container port (default: its first)")
	fl.BoolVar(&f.plaintext, "plaintext", false, "the client connects without mTLS (no sidecar)")
	fl.StringVar(&f.method, "method", "", "HTTP method (makes the check an HTTP request)")
	fl.StringVar(&f.path, "path", "", "HTTP path, with any query string (makes the check an HTTP request)")
	fl.StringVar(&f.host, "host", "", "HTTP Host (default: the destination service's name)")
	fl.StringArrayVar(&f.headers, "header", nil, "HTTP header 'Name: value' (repeatable)")
	fl.StringVar(&f.token, "token", "", "JWT sent as 'Authorization: Bearer TOKEN'")
	fl.StringVar(&f.sourceIP, "source-ip", "", "source address (default: the source Pod's status.podIP)")
	fl.StringVar(&f.destIP, "destination-ip", "", "destination address (default: the destination Pod's status.podIP)")
	fl.StringVarP(&f.output, "output", "o", "text", "text or json")
	fl.StringArrayVar(&f.jwks, "jwks", nil, "use a local JWKS file for a jwksUri or issuer: URI=FILE (repeatable)")
	fl.BoolVar(&f.assumeExtAuthzAllows, "assume-ext-authz-allows", false, "treat CUSTOM ext_authz providers as allowing (they cannot be asked offline)")
	fl.StringVar(&f.ciliumValues, "cilium-values", "", "Cilium Helm values file (policyEnforcementMode, policyAuditMode, cluster.name)")
	fl.BoolVar(&f.strict, "strict", false, "exit 2 when the input has errors instead of leaving the bad resources out")
	return cmd
}

// jwksFetcher fetches JWKS, using local files for the URIs of --jwks
// URI=FILE flags.
func jwksFetcher(flags []string) (*jwtauth.Fetcher, error) {
	fetcher := jwtauth.NewFetcher(nil)
	for _, kv := range flags {
		key, file, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, badInput("--jwks %q: want URI=FILE", kv)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, badInput("--jwks: %v", err)
		}
		set, err := jwtauth.ParseJWKS(data)
		if err != nil {
			return nil, badInput("--jwks %s: %v", file, err)
		}
		fetcher.AddStatic(key, set)
	}
	return fetcher, nil
}

func badInput(format string, args ...any) error {
	return &exitError{code: exitBadInput, msg: fmt.Sprintf(format, args...)}
}

func runCheck(cmd *cobra.Command, f *checkFlags) error {
	if len(f.files) == 0 || f.from == "" || f.to == "" {
		return badInput("check needs -f PATH, --from and --to")
	}
	if f.output != "text" && f.output != "json" {
		return badInput("-o must be text or json")
	}
	snap, loadErrs := config.LoadInput(config.Input{Paths: f.files, Stdin: cmd.InOrStdin(), CiliumValues: f.ciliumValues})
	fetcher, err := jwksFetcher(f.jwks)
	if err != nil {
		return err
	}
	eng := engine.New(snap, engine.Options{Keys: fetcher, AssumeExtAuthzAllows: f.assumeExtAuthzAllows})

	left := leftOut(loadErrs, eng.Rejected)
	if f.strict && len(left) > 0 {
		return strictError(left)
	}

	req, err := checkRequest(snap, f)
	if err != nil {
		return badInput("%v", err)
	}
	v, err := eng.Check(req)
	if err != nil {
		return badInput("%v", err)
	}
	v.LeftOut = left

	out := cmd.OutOrStdout()
	if f.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return err
		}
	} else {
		engine.WriteText(out, v)
	}
	if !v.Allowed {
		return &exitError{code: exitDenied}
	}
	return nil
}

// leftOut lists, one entry per document, what check leaves out: documents
// that do not decode, and resources istiod would reject.
func leftOut(loadErrs []*config.Error, rejected []engine.Rejection) []engine.LeftOut {
	var out []engine.LeftOut
	for i, e := range loadErrs {
		if i > 0 && e.Source.File == loadErrs[i-1].Source.File && e.Source.Doc == loadErrs[i-1].Source.Doc {
			continue
		}
		out = append(out, engine.LeftOut{Object: e.Object, Where: e.Source.String(), Reason: e.Msg})
	}
	for _, r := range rejected {
		out = append(out, engine.LeftOut{Object: r.Object, Where: r.Source.String(), Reason: r.Reason})
	}
	return out
}

// strictError is --strict's refusal of input with resources left out.
func strictError(left []engine.LeftOut) error {
	var lines []string
	for _, l := range left {
		lines = append(lines, fmt.Sprintf("%s: %s: %s", l.Where, l.Object, l.Reason))
	}
	return badInput("the input has errors (run palisade validate):\n  %s", strings.Join(lines, "\n  "))
}

// entities are Cilium's reserved identities a check can name.
var entities = []string{"world", "host", "remote-node", "kube-apiserver", "health", "ingress", "init", "unmanaged"}

func knownEntity(e string) bool {
	for _, x := range entities {
		if x == e {
			return true
		}
	}
	return false
}

func checkRequest(snap *config.Snapshot, f *checkFlags) (engine.Request, error) {
	var req engine.Request
	inv := &snap.Inventory
	if ent, ok := strings.CutPrefix(f.from, "entity:"); ok {
		if !knownEntity(ent) {
			return req, fmt.Errorf("--from %q: unknown entity (want one of %s)", f.from, strings.Join(entities, ", "))
		}
		req.FromEntity = ent
	} else if addr, ok := strings.CutPrefix(f.from, "ip:"); ok {
		ip, err := netip.ParseAddr(addr)
		if err != nil {
			return req, fmt.Errorf("--from %q: not an IP address", f.from)
		}
		req.FromIP = ip
	} else {
		w, err := inv.Workload(f.from)
		if err != nil {
			return req, fmt.Errorf("--from: %v", err)
		}
		req.From = w
	}
	switch {
	case strings.HasPrefix(f.to, "ip:"):
		ip, err := netip.ParseAddr(strings.TrimPrefix(f.to, "ip:"))
		if err != nil {
			return req, fmt.Errorf("--to %q: not an IP address", f.to)
		}
		req.ToIP = ip
	case strings.HasPrefix(f.to, "entity:"):
		req.ToEntity = strings.TrimPrefix(f.to, "entity:")
		if !knownEntity(req.ToEntity) {
			return req, fmt.Errorf("--to %q: unknown entity (want one of %s)", f.to, strings.Join(entities, ", "))
		}
	case strings.HasPrefix(f.to, "fqdn:"):
		req.ToFQDN = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(f.to, "fqdn:"), "."))
		if req.ToFQDN == "" {
			return req, fmt.Errorf("--to fqdn: needs a name")
		}
	default:
		w, err := inv.Workload(f.to)
		if err != nil {
			return req, fmt.Errorf("--to: %v", err)
		}
		req.To = w
	}
	if f.resolvedIP != "" {
		ip, err := netip.ParseAddr(f.resolvedIP)
		if err != nil || req.ToFQDN == "" {
			return req, fmt.Errorf("--resolved-ip %q: an IP address, with --to fqdn:NAME", f.resolvedIP)
		}
		req.ToIP = ip
	}
	switch p := strings.ToUpper(f.transport); p {
	case "TCP", "UDP", "SCTP":
		req.Transport = p
	default:
		return req, fmt.Errorf("--protocol %q: want TCP, UDP or SCTP", f.transport)
	}
	if req.To == nil && f.port == 0 {
		return req, fmt.Errorf("a destination outside the cluster needs --port")
	}
	if f.port < 0 || f.port > 65535 {
		return req, fmt.Errorf("--port %d is out of range", f.port)
	}
	req.Port = uint16(f.port)
	req.Plaintext = f.plaintext
	for _, a := range []struct {
		flag string
		dst  *netip.Addr
		val  string
	}{{"--source-ip", &req.FromIP, f.sourceIP}, {"--destination-ip", &req.DestIP, f.destIP}} {
		if a.val == "" {
			continue
		}
		ip, err := netip.ParseAddr(a.val)
		if err != nil {
			return req, fmt.Errorf("%s %q: not an IP address", a.flag, a.val)
		}
		*a.dst = ip
	}
	if f.method == "" && f.path == "" {
		if f.host != "" || len(f.headers) > 0 || f.token != "" {
			return req, fmt.Errorf("--host, --header and --token need an HTTP request: give --method or --path")
		}
		return req, nil
	}
	h := &engine.HTTPRequest{Method: f.method, Path: f.path, Host: f.host}
	if h.Method == "" {
		h.Method = "GET"
	}
	if h.Path == "" {
		h.Path = "/"
	}
	for _, kv := range f.headers {
		name, value, ok := strings.Cut(kv, ":")
		if !ok {
			return req, fmt.Errorf("--header %q: want 'Name: value'", kv)
		}
		h.Headers = append(h.Headers, authz.Header{Name: name, Value: strings.TrimLeft(value, " \t")})
	}
	if f.token != "" {
		h.Headers = append(h.Headers, authz.Header{Name: "Authorization", Value: "Bearer " + f.token})
	}
	req.HTTP = h
	return req, nil
}
