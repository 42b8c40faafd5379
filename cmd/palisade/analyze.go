package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/palisade-security/palisade/internal/analysis"
	"github.com/palisade-security/palisade/internal/authz"
	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/engine"
)

// matrixFlags are what reach, exposure and diff share: the input and the
// question every pair is asked.
type matrixFlags struct {
	files        []string
	ciliumValues string
	port         int
	method, path string
	headers      []string
	strict       bool
	quiet        bool
}

func (f *matrixFlags) register(cmd *cobra.Command, withFiles bool) {
	fl := cmd.Flags()
	if withFiles {
		fl.StringArrayVarP(&f.files, "filename", "f", nil, "file, directory or - for stdin (repeatable)")
	}
	fl.StringVar(&f.ciliumValues, "cilium-values", "", "Cilium Helm values file (policyEnforcementMode, policyAuditMode, cluster.name)")
	fl.IntVar(&f.port, "port", 0, "only this destination port (default: every TCP port each workload declares)")
	fl.StringVar(&f.method, "method", "", "ask every pair an HTTP request with this method (default GET when --path is set)")
	fl.StringVar(&f.path, "path", "", "ask every pair an HTTP request for this path (default / when --method is set)")
	fl.StringArrayVar(&f.headers, "header", nil, "HTTP header 'Name: value' sent with every request (repeatable)")
	fl.BoolVar(&f.strict, "strict", false, "exit 2 when the input has errors instead of leaving the bad resources out")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "no progress bar")
}

func (f *matrixFlags) options() (analysis.ReachOptions, error) {
	var opts analysis.ReachOptions
	if f.port < 0 || f.port > 65535 {
		return opts, fmt.Errorf("--port %d: out of range", f.port)
	}
	opts.Port = uint16(f.port)
	if f.method != "" || f.path != "" || len(f.headers) > 0 {
		h := &engine.PairHTTP{Method: f.method, Path: f.path}
		if h.Method == "" {
			h.Method = "GET"
		}
		if h.Path == "" {
			h.Path = "/"
		}
		for _, kv := range f.headers {
			name, value, ok := strings.Cut(kv, ":")
			if !ok || strings.TrimSpace(name) == "" {
				return opts, fmt.Errorf("--header %q: want 'Name: value'", kv)
			}
			h.Headers = append(h.Headers, authz.Header{Name: strings.ToLower(strings.TrimSpace(name)), Value: strings.TrimSpace(value)})
		}
		opts.HTTP = h
	}
	return opts, nil
}

// matrix loads paths and computes their reachability matrix, drawing a
// progress bar on a terminal.
func (f *matrixFlags) matrix(cmd *cobra.Command, paths []string) (*analysis.Matrix, error) {
	opts, err := f.options()
	if err != nil {
		return nil, badInput("%v", err)
	}
	snap, loadErrs := config.LoadInput(config.Input{Paths: paths, Stdin: cmd.InOrStdin(), CiliumValues: f.ciliumValues})
	eng := engine.New(snap, engine.Options{})
	left := leftOut(loadErrs, eng.Rejected)
	if len(left) > 0 {
		if f.strict {
			return nil, strictError(left)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "palisade: warning: %d resource(s) in %s left out as upstream would reject them (run palisade validate)\n",
			len(left), strings.Join(paths, ", "))
	}
	if len(snap.Inventory.Workloads) == 0 {
		return nil, badInput("%s: no workloads (an inventory or Pod/Deployment manifests are needed)", strings.Join(paths, ", "))
	}
	if !f.quiet && isTerminal(os.Stderr) {
		opts.Progress = progressBar(cmd.ErrOrStderr())
	}
	return analysis.Reach(eng, opts), nil
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressBar redraws at most ten times a second and clears itself at
// the end.
func progressBar(w io.Writer) func(done, total int) {
	var last time.Time
	return func(done, total int) {
		if done < total && time.Since(last) < 100*time.Millisecond {
			return
		}
		last = time.Now()
		const width = 40
		filled := width * done / total
		fmt.Fprintf(w, "\r[%s%s] %d/%d destination classes", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), done, total)
		if done == total {
			fmt.Fprintf(w, "\r%s\r", strings.Repeat(" ", width+40))
		}
	}
}

type reachFlags struct {
	matrixFlags
	output string
	by     string
	only   string
}

func newReachCmd() *cobra.Command {
	var f reachFlags
	cmd := &cobra.Command{
		Use:   "reach -f PATH... [flags]",
		Short: "Which workload can reach which, on which port, and what stops the rest",
		Long: `Reach decides every ordered pair of workloads in the inventory, on every
TCP port the destination declares, through the same layers as check
(network policy, Cilium L7, mutual TLS, request authentication and
authorization), the client being a meshed workload.

Without --method or --path each pair asks whether any request could pass:
the client chooses method, path, headers and tokens, as an attacker who
controls it would, so an ALLOW rule counts if its source matches and a
DENY rule only if it holds for every request. Ports a Service declares as
opaque TCP are asked as connections. With --method or --path, every pair
is asked that one request.

Workloads that no policy can tell apart — the same labels as far as any
selector looks, the same namespace, service account, ports and services —
are decided once; --by class shows those classes.

Output (-o): table, json, csv, or dot (a Graphviz graph of allowed edges).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runReach(cmd, &f) },
	}
	f.register(cmd, true)
	fl := cmd.Flags()
	fl.StringVarP(&f.output, "output", "o", "table", "table, json, csv or dot")
	fl.StringVar(&f.by, "by", "workload", "workload or class")
	fl.StringVar(&f.only, "only", "", "allowed or denied: list only those connections")
	return cmd
}

func runReach(cmd *cobra.Command, f *reachFlags) error {
	if len(f.files) == 0 {
		return badInput("reach needs -f PATH")
	}
	switch f.output {
	case "table", "json", "csv", "dot":
	default:
		return badInput("-o must be table, json, csv or dot")
	}
	if f.by != "workload" && f.by != "class" {
		return badInput("--by must be workload or class")
	}
	if f.only != "" && f.only != "allowed" && f.only != "denied" {
		return badInput("--only must be allowed or denied")
	}
	m, err := f.matrix(cmd, f.files)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(cmd.OutOrStdout())
	rows := reachRows(m, f.by == "class", f.only)
	switch f.output {
	case "table":
		err = writeReachTable(w, m, rows, f.by == "class")
	case "csv":
		err = writeReachCSV(w, rows)
	case "dot":
		err = writeReachDot(w, m, rows, f.by == "class")
	default:
		err = writeReachJSON(w, m, rows, f.by == "class")
	}
	if err != nil {
		return err
	}
	return w.Flush()
}

// reachRow is one line of reach's output: a pair of workloads, or of
// classes, on one port.
type reachRow struct {
	From    string `json:"from"`
	To      string `json:"to"`
	Port    uint16 `json:"port"`
	Allowed bool   `json:"allowed"`
	Layer   string `json:"stoppedAt,omitempty"`
}

// reachRows yields the rows in order; with byClass, one row per pair of
// classes (named by their first member).
func reachRows(m *analysis.Matrix, byClass bool, only string) func(func(reachRow) bool) {
	keep := func(c analysis.Cell) bool {
		return only == "" || (only == "allowed") == c.Allowed
	}
	return func(yield func(reachRow) bool) {
		if !byClass {
			m.Each(func(c analysis.Cell) bool {
				if !keep(c) {
					return true
				}
				return yield(reachRow{From: c.From.Key(), To: c.To.Key(), Port: c.Port, Allowed: c.Allowed, Layer: c.Layer})
			})
			return
		}
		for _, sc := range m.Classes {
			for _, dc := range m.Classes {
				from, to := sc.Members[0], dc.Members[0]
				if sc == dc {
					if len(sc.Members) < 2 {
						continue
					}
					to = sc.Members[1]
				}
				for _, port := range m.Ports(to) {
					c, _ := m.Get(from, to, port)
					if !keep(c) {
						continue
					}
					if !yield(reachRow{From: className(m, sc), To: className(m, dc), Port: port, Allowed: c.Allowed, Layer: c.Layer}) {
						return
					}
				}
			}
		}
	}
}

// className names a class by its first member, and how many others it has.
func className(m *analysis.Matrix, c *analysis.Class) string {
	name := c.Members[0].Key()
	if n := len(c.Members) - 1; n > 0 {
		name += fmt.Sprintf(" (+%d)", n)
	}
	return name
}

func verdictWord(allowed bool) string {
	if allowed {
		return "allowed"
	}
	return "denied"
}

func writeReachTable(w io.Writer, m *analysis.Matrix, rows func(func(reachRow) bool), byClass bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FROM\tTO\tPORT\tVERDICT\tSTOPPED AT")
	for r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", r.From, r.To, r.Port, verdictWord(r.Allowed), r.Layer)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	pairs, allowed := m.Stats()
	fmt.Fprintf(w, "\n%d workloads in %d classes; %d of %d connections allowed",
		len(m.Workloads), len(m.Classes), allowed, pairs)
	if pairs > 0 {
		fmt.Fprintf(w, " (%.1f%%)", 100*float64(allowed)/float64(pairs))
	}
	fmt.Fprintln(w)
	if !byClass {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLASS\tMEMBERS")
	for _, c := range m.Classes {
		keys := make([]string, len(c.Members))
		for i, wl := range c.Members {
			keys[i] = wl.Key()
		}
		fmt.Fprintf(tw, "%s\t%s\n", className(m, c), strings.Join(keys, " "))
	}
	return tw.Flush()
}

func writeReachCSV(w io.Writer, rows func(func(reachRow) bool)) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"from", "to", "port", "verdict", "stopped_at"}); err != nil {
		return err
	}
	for r := range rows {
		if err := cw.Write([]string{r.From, r.To, strconv.Itoa(int(r.Port)), verdictWord(r.Allowed), r.Layer}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// writeReachJSON streams the document so that a large matrix is never
// held as one value.
func writeReachJSON(w io.Writer, m *analysis.Matrix, rows func(func(reachRow) bool), byClass bool) error {
	pairs, allowed := m.Stats()
	head, _ := json.Marshal(struct {
		Workloads   int `json:"workloads"`
		Classes     int `json:"classes"`
		Connections int `json:"connections"`
		Allowed     int `json:"allowed"`
	}{len(m.Workloads), len(m.Classes), pairs, allowed})
	fmt.Fprintf(w, "{\"summary\": %s,\n", head)
	if byClass {
		fmt.Fprintln(w, "\"classes\": [")
		for i, c := range m.Classes {
			keys := make([]string, len(c.Members))
			for j, wl := range c.Members {
				keys[j] = wl.Key()
			}
			b, _ := json.Marshal(map[string]any{"name": className(m, c), "members": keys})
			sep := ","
			if i == len(m.Classes)-1 {
				sep = ""
			}
			fmt.Fprintf(w, "  %s%s\n", b, sep)
		}
		fmt.Fprintln(w, "],")
	}
	fmt.Fprint(w, "\"connections\": [")
	first := true
	for r := range rows {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if !first {
			fmt.Fprint(w, ",")
		}
		first = false
		fmt.Fprintf(w, "\n  %s", b)
	}
	_, err := fmt.Fprintln(w, "\n]}")
	return err
}

// writeReachDot draws allowed connections as edges labelled with their
// ports; denied ones are absent.
func writeReachDot(w io.Writer, m *analysis.Matrix, rows func(func(reachRow) bool), byClass bool) error {
	fmt.Fprintln(w, "digraph reach {")
	fmt.Fprintln(w, "  rankdir=LR;")
	fmt.Fprintln(w, "  node [shape=box];")
	if byClass {
		for _, c := range m.Classes {
			fmt.Fprintf(w, "  %s;\n", strconv.Quote(className(m, c)))
		}
	} else {
		for _, wl := range m.Workloads {
			fmt.Fprintf(w, "  %s;\n", strconv.Quote(wl.Key()))
		}
	}
	type edge struct{ from, to string }
	ports := map[edge][]string{}
	var order []edge
	for r := range rows {
		if !r.Allowed {
			continue
		}
		e := edge{r.From, r.To}
		if ports[e] == nil {
			order = append(order, e)
		}
		ports[e] = append(ports[e], strconv.Itoa(int(r.Port)))
	}
	for _, e := range order {
		fmt.Fprintf(w, "  %s -> %s [label=%s];\n", strconv.Quote(e.from), strconv.Quote(e.to), strconv.Quote(strings.Join(ports[e], ",")))
	}
	_, err := fmt.Fprintln(w, "}")
	return err
}

type exposureFlags struct {
	matrixFlags
	output string
	top    int
}

func newExposureCmd() *cobra.Command {
	var f exposureFlags
	cmd := &cobra.Command{
		Use:   "exposure -f PATH... [flags]",
		Short: "Lateral-movement exposure: how far a compromised workload can pivot",
		Long: `Exposure builds the reachability graph (as reach does) and, for every
workload, counts the workloads it reaches directly and transitively — an
attacker who owns a pod pivoting through whatever that pod can reach.

The headline compares the lateral paths (ordered pairs a, b with a path
from a to b) against the same inventory with no policy at all, where every
workload reaches every other that listens on a port (--port: that port).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runExposure(cmd, &f) },
	}
	f.register(cmd, true)
	cmd.Flags().StringVarP(&f.output, "output", "o", "text", "text or json")
	cmd.Flags().IntVar(&f.top, "top", 10, "list this many workloads with the largest blast radius (0: all)")
	return cmd
}

func runExposure(cmd *cobra.Command, f *exposureFlags) error {
	if len(f.files) == 0 {
		return badInput("exposure needs -f PATH")
	}
	if f.output != "text" && f.output != "json" {
		return badInput("-o must be text or json")
	}
	m, err := f.matrix(cmd, f.files)
	if err != nil {
		return err
	}
	r := m.Exposure()
	list := r.Workloads
	if f.top > 0 && len(list) > f.top {
		list = list[:f.top]
	}
	out := cmd.OutOrStdout()
	if f.output == "json" {
		type item struct {
			Workload   string  `json:"workload"`
			Direct     int     `json:"direct"`
			Transitive int     `json:"transitive"`
			Possible   int     `json:"possible"` // what it would reach with no policy
			Share      float64 `json:"share"`    // transitive, of possible
		}
		doc := struct {
			Workloads   int     `json:"workloads"`
			Paths       int     `json:"lateralPaths"`
			DirectPaths int     `json:"directPaths"`
			Baseline    int     `json:"baselinePaths"`
			Reduction   float64 `json:"reduction"`
			Top         []item  `json:"blastRadius"`
		}{len(m.Workloads), r.Paths, r.DirectPaths, r.Baseline, r.Reduction(), []item{}}
		for _, x := range list {
			doc.Top = append(doc.Top, item{x.Workload.Key(), x.Direct, x.Transitive, x.Possible, share(x.Transitive, x.Possible)})
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	}
	fmt.Fprintf(out, "Policies remove %.1f%% of lateral paths: %d of %d ordered workload pairs remain connected (%d directly).\n\n",
		100*r.Reduction(), r.Paths, r.Baseline, r.DirectPaths)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tREACHES DIRECTLY\tREACHES TRANSITIVELY\tSHARE")
	for _, x := range list {
		fmt.Fprintf(tw, "%s\t%d of %d\t%d of %d\t%.0f%%\n", x.Workload.Key(), x.Direct, x.Possible, x.Transitive, x.Possible, 100*share(x.Transitive, x.Possible))
	}
	return tw.Flush()
}

// share is n as a fraction of total, 0 for an empty total.
func share(n, total int) float64 {
	if total == 0 {
		return 0
	}
	return float64(n) / float64(total)
}

type diffFlags struct {
	matrixFlags
	output string
}

func newDiffCmd() *cobra.Command {
	var f diffFlags
	cmd := &cobra.Command{
		Use:   "diff OLD NEW [-f COMMON...] [flags]",
		Short: "Which connections a policy change opens or closes",
		Long: `Diff computes the reachability matrix (as reach does) for OLD and for NEW —
each a file or directory — and lists every connection whose verdict
changes: newly allowed, newly denied, or denied at another layer.

Files given with -f are loaded on both sides: typically the inventory, so
OLD and NEW need hold only the policies.

Exit status: 0 nothing changes, 1 some connection changes, 2 bad input.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error { return runDiff(cmd, &f, args[0], args[1]) },
	}
	f.register(cmd, false)
	cmd.Flags().StringArrayVarP(&f.files, "filename", "f", nil, "file or directory loaded on both sides, e.g. the inventory (repeatable)")
	cmd.Flags().StringVarP(&f.output, "output", "o", "text", "text or json")
	return cmd
}

func runDiff(cmd *cobra.Command, f *diffFlags, oldPath, newPath string) error {
	if f.output != "text" && f.output != "json" {
		return badInput("-o must be text or json")
	}
	for _, p := range append([]string{oldPath, newPath}, f.files...) {
		if p == "-" {
			return badInput("diff reads files, not stdin: both sides would need it")
		}
		if _, err := os.Stat(p); err != nil {
			return badInput("%v", err)
		}
	}
	before, err := f.matrix(cmd, append([]string{oldPath}, f.files...))
	if err != nil {
		return err
	}
	after, err := f.matrix(cmd, append([]string{newPath}, f.files...))
	if err != nil {
		return err
	}
	d := analysis.Diff(before, after)
	out := cmd.OutOrStdout()
	if f.output == "json" {
		type change struct {
			From        string `json:"from"`
			To          string `json:"to"`
			Port        uint16 `json:"port"`
			BeforeLayer string `json:"stoppedAtBefore,omitempty"`
			AfterLayer  string `json:"stoppedAtAfter,omitempty"`
		}
		conv := func(cs []analysis.Change) []change {
			out := []change{}
			for _, c := range cs {
				out = append(out, change{c.From, c.To, c.Port, c.Before.Layer, c.After.Layer})
			}
			return out
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{
			"nowAllowed": conv(d.NowAllowed), "nowDenied": conv(d.NowDenied), "layerChanged": conv(d.LayerChanged),
			"onlyBefore": nonNil(d.OnlyBefore), "onlyAfter": nonNil(d.OnlyAfter),
		}); err != nil {
			return err
		}
	} else {
		writeDiffText(out, d)
	}
	if len(d.NowAllowed)+len(d.NowDenied)+len(d.LayerChanged) > 0 {
		return &exitError{code: exitDenied}
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func writeDiffText(w io.Writer, d *analysis.DiffReport) {
	section := func(title string, cs []analysis.Change, line func(analysis.Change) string) {
		if len(cs) == 0 {
			return
		}
		fmt.Fprintf(w, "%s (%d):\n", title, len(cs))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, c := range cs {
			fmt.Fprintf(tw, "  %s\t->\t%s:%d\t%s\n", c.From, c.To, c.Port, line(c))
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	section("Newly allowed", d.NowAllowed, func(c analysis.Change) string { return "was stopped at " + c.Before.Layer })
	section("Newly denied", d.NowDenied, func(c analysis.Change) string { return "stopped at " + c.After.Layer })
	section("Denied at another layer", d.LayerChanged, func(c analysis.Change) string {
		return c.Before.Layer + " -> " + c.After.Layer
	})
	for _, side := range []struct {
		title string
		keys  []string
	}{{"Workloads only in OLD", d.OnlyBefore}, {"Workloads only in NEW", d.OnlyAfter}} {
		if len(side.keys) > 0 {
			sort.Strings(side.keys)
			fmt.Fprintf(w, "%s: %s\n", side.title, strings.Join(side.keys, " "))
		}
	}
	if len(d.NowAllowed)+len(d.NowDenied)+len(d.LayerChanged) == 0 {
		fmt.Fprintln(w, "No connection changes verdict.")
	}
}
