package lint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/palisade-security/palisade/internal/authz"
	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/engine"
	"github.com/palisade-security/palisade/internal/netpol"
)

// Input says what to lint.
type Input struct {
	Paths []string  // files, directories (recursively) or "-" for Stdin
	Stdin io.Reader // read for "-"
	// CiliumValues is a Cilium Helm values file given on its own.
	CiliumValues string
}

// Run lints the input. It fails only when the input cannot be read at all;
// every problem in it is a finding.
func Run(in Input) (*Report, error) {
	var stdin []byte
	for _, p := range in.Paths {
		if p == "-" && stdin == nil {
			if in.Stdin == nil {
				return nil, errors.New("no standard input")
			}
			data, err := io.ReadAll(in.Stdin)
			if err != nil {
				return nil, err
			}
			stdin = data
		}
	}
	snap, loadErrs := config.LoadInput(config.Input{Paths: in.Paths, Stdin: bytes.NewReader(stdin), CiliumValues: in.CiliumValues})
	raw := readRaw(in.Paths, stdin)
	if in.CiliumValues != "" {
		raw = append(raw, readRaw([]string{in.CiliumValues}, nil)...)
	}
	// Lint never fetches JWKS: whether a token verifies is not a question
	// about the configuration, and a linter must not reach the network.
	eng := engine.New(snap, engine.Options{Keys: noKeys{}})
	l := newLinter(snap, eng, raw)
	l.validation(loadErrs)
	l.istio()
	l.network()
	l.telemetry()
	return &Report{Findings: l.finish()}, nil
}

// noKeys is a key source that has none: lint asks the engine which
// RequestAuthentications apply, never whether a token verifies.
type noKeys struct{}

func (noKeys) JWKS(context.Context, string, string, time.Duration) (*jose.JSONWebKeySet, error) {
	return nil, errors.New("lint does not fetch keys")
}

// linter holds what every check needs.
type linter struct {
	snap *config.Snapshot
	eng  *engine.Engine
	net  *netpol.Set
	raw  []rawDoc
	root string
	tds  []string // the mesh trust domain, then its aliases

	// rejected holds "Kind namespace/name" of resources left out because
	// istiod, the API server or Cilium would reject them.
	rejected map[string]bool
	// policies are the AuthorizationPolicies, compiled, in istiod's order
	// (root namespace first, oldest first), with the workloads they select.
	policies []*apInfo
	// workloads are the inventory's workloads that can have a sidecar and
	// a Cilium endpoint of their own (not on the host network).
	workloads []*config.Workload

	// Memos: checks ask the same questions of a workload many times.
	portMemo map[*config.Workload][]wport
	peerMemo map[*config.Workload]*netpol.Peer
	apByID   map[string]*apInfo
	destMemo map[*config.Workload]*destAuthz
	idMemo   map[*config.Workload]string

	findings []Finding
	// suppressed are loader errors of documents lint reads itself (such as
	// a Prometheus rule file), keyed by file and document.
	suppressed map[Source]bool
}

// apInfo is one AuthorizationPolicy with what the checks ask of it.
type apInfo struct {
	r        *config.Resource[*securityv1beta1.AuthorizationPolicy]
	p        *authz.Policy
	rules    []nrule
	selected []*config.Workload
	rejected bool
}

func newLinter(snap *config.Snapshot, eng *engine.Engine, raw []rawDoc) *linter {
	l := &linter{
		snap: snap, eng: eng, net: eng.Network(), raw: raw,
		root:       snap.Mesh.RootNamespace(),
		tds:        append([]string{snap.Mesh.TrustDomain()}, snap.Mesh.TrustDomainAliases()...),
		rejected:   map[string]bool{},
		suppressed: map[Source]bool{},
		portMemo:   map[*config.Workload][]wport{},
		peerMemo:   map[*config.Workload]*netpol.Peer{},
		apByID:     map[string]*apInfo{},
		destMemo:   map[*config.Workload]*destAuthz{},
		idMemo:     map[*config.Workload]string{},
	}
	for _, r := range eng.Rejected {
		l.rejected[r.Object] = true
	}
	for _, w := range snap.Inventory.Workloads {
		if !w.HostNetwork {
			l.workloads = append(l.workloads, w)
		}
	}
	opts := authz.Options{RootNamespace: l.root, TrustDomains: l.tds}
	var root, rest []*apInfo
	for _, r := range snap.AuthorizationPolicies {
		info := &apInfo{r: r, p: authz.Compile(r, opts), rejected: l.rejected[r.String()]}
		for i, rule := range r.Spec.GetRules() {
			info.rules = append(info.rules, normalize(i, rule))
		}
		l.apByID[r.Key()] = info
		for _, w := range l.workloads {
			if info.p.Selects(w, l.root) {
				info.selected = append(info.selected, w)
			}
		}
		if r.Meta.Namespace == l.root {
			root = append(root, info)
		} else {
			rest = append(rest, info)
		}
	}
	l.policies = append(root, rest...)
	return l
}

// add records a finding; the severity is the check's.
func (l *linter) add(id string, src Source, object, msg, why, fix string) {
	r, ok := ruleByID[id]
	if !ok {
		panic("lint: unknown check " + id)
	}
	l.findings = append(l.findings, Finding{
		ID: id, Severity: r.Severity, Source: src, Object: object,
		Message: oneLine(msg), Explanation: oneLine(why), Fix: oneLine(fix),
	})
}

// finish sorts the findings and drops exact duplicates.
func (l *linter) finish() []Finding {
	sortFindings(l.findings)
	var out []Finding
	seen := map[string]bool{}
	for _, f := range l.findings {
		key := fmt.Sprintf("%s|%s|%d|%s|%s", f.ID, f.Source.File, f.Source.Line, f.Object, f.Message)
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, f)
	}
	return out
}

// oneLine folds whitespace so that every message is one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// hasInventory reports whether the input names any workload: without one,
// "matches nothing in the inventory" would be said of every selector.
func (l *linter) hasInventory() bool { return len(l.workloads) > 0 }

// identity is the SPIFFE ID Istio gives a workload.
func (l *linter) identity(w *config.Workload) string {
	id, ok := l.idMemo[w]
	if !ok {
		id = l.eng.Identity(w)
		l.idMemo[w] = id
	}
	return id
}

// keys lists workloads as "namespace/name", at most max of them.
func keys(ws []*config.Workload, max int) string {
	var names []string
	for i, w := range ws {
		if i == max {
			names = append(names, fmt.Sprintf("and %d more", len(ws)-max))
			break
		}
		names = append(names, w.Key())
	}
	return strings.Join(names, ", ")
}

// list joins at most max strings, saying how many more there are.
func list(items []string, max int) string {
	if len(items) > max {
		return strings.Join(items[:max], ", ") + fmt.Sprintf(" and %d more", len(items)-max)
	}
	return strings.Join(items, ", ")
}

// quoted renders values as ['a', 'b'], the way a manifest writes them.
func quoted(vs []string) string {
	var q []string
	for _, v := range vs {
		q = append(q, "'"+v+"'")
	}
	return "[" + strings.Join(q, ", ") + "]"
}
