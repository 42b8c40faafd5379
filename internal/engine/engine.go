// Package engine combines Palisade's policy layers into one verdict: it
// builds, from a config snapshot, the compiled policy of every workload and
// decides connections and requests with a trace that explains them. The CLI's
// check, the proxy and the analysis tools all decide through it.
package engine

import (
	"fmt"
	"sort"
	"sync"
	"time"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/palisade-security/palisade/internal/authz"
	"github.com/palisade-security/palisade/internal/cilium"
	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/httpnorm"
	"github.com/palisade-security/palisade/internal/jwtauth"
	"github.com/palisade-security/palisade/internal/mtls"
	"github.com/palisade-security/palisade/internal/netpol"
	"github.com/palisade-security/palisade/internal/validation"
)

// Options tune how an engine decides.
type Options struct {
	// Keys provides the JWKS of RequestAuthentication rules; nil means
	// fetching them over HTTP.
	Keys jwtauth.KeySource
	// AssumeExtAuthzAllows continues past a CUSTOM policy's external
	// authorizer as if it allowed the request. By default the request is
	// treated as denied: the authorizer cannot be asked offline.
	AssumeExtAuthzAllows bool
	// Now is the clock JWTs are checked against; nil means time.Now.
	Now func() time.Time
}

// Rejection is a resource left out because istiod would reject it.
type Rejection struct {
	Object string // "Kind namespace/name"
	Source config.Source
	Reason string // the first problem
	More   int    // how many more problems it has
}

// Problem is a loader error or an admission finding of istiod's rules.
// Resources with a Problem that is not a Warning are left out, as istiod
// would have rejected them.
type Problem struct {
	config.Error
	Warning bool
}

// Engine is the compiled policy of a snapshot. It is safe for concurrent use.
type Engine struct {
	Snapshot *config.Snapshot
	Problems []Problem
	// Rejected lists the resources left out because istiod would reject
	// them, one entry each.
	Rejected []Rejection

	opts     Options
	root     string
	policies []*authz.Policy
	// rejectedPolicies are the AuthorizationPolicies istiod would reject,
	// compiled only to tell which workloads they were meant for.
	rejectedPolicies []*authz.Policy
	byNS             map[string][]*authz.Policy // by namespace, oldest first
	pas              []*config.Resource[*securityv1beta1.PeerAuthentication]
	ras              []*config.Resource[*securityv1beta1.RequestAuthentication]
	drs              []*config.Resource[*networkingv1alpha3.DestinationRule]
	providers        map[string]authz.ProviderKind
	pathMode         httpnorm.Mode
	net              *netpol.Set
	// drSelectsClients is set when a DestinationRule has a workloadSelector:
	// the client's labels then matter, not only its namespace.
	drSelectsClients bool

	mu        sync.Mutex
	workloads map[*config.Workload]*Workload
}

// Workload is the compiled policy of one workload.
type Workload struct {
	*config.Workload
	Authz *authz.Set
	MTLS  *mtls.Policy
	JWT   *jwtauth.Policy
	// JWTSources names the RequestAuthentications that apply.
	JWTSources []string
}

// New validates and compiles a snapshot. It does not fail: resources istiod
// would reject are left out and reported in Problems.
func New(snap *config.Snapshot, opts Options) *Engine {
	if opts.Keys == nil {
		opts.Keys = jwtauth.NewFetcher(nil)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	e := &Engine{
		Snapshot:  snap,
		opts:      opts,
		root:      snap.Mesh.RootNamespace(),
		byNS:      map[string][]*authz.Policy{},
		providers: extensionProviders(snap.Mesh.Config),
		pathMode:  httpnorm.ModeFromMesh(int32(snap.Mesh.PathNormalization())),
		workloads: map[*config.Workload]*Workload{},
	}
	copts := authz.Options{
		RootNamespace: e.root,
		TrustDomains:  append([]string{snap.Mesh.TrustDomain()}, snap.Mesh.TrustDomainAliases()...),
	}
	for _, r := range snap.AuthorizationPolicies {
		p := authz.Compile(r, copts)
		if e.admit(r.Source, r.String(), validation.AuthorizationPolicy(&r.Meta, r.Spec)) {
			e.policies = append(e.policies, p)
			e.byNS[p.Namespace] = append(e.byNS[p.Namespace], p)
		} else {
			e.rejectedPolicies = append(e.rejectedPolicies, p)
		}
	}
	for _, r := range snap.PeerAuthentications {
		if e.admit(r.Source, r.String(), validation.PeerAuthentication(&r.Meta, r.Spec)) {
			e.pas = append(e.pas, r)
		}
	}
	for _, r := range snap.RequestAuthentications {
		if e.admit(r.Source, r.String(), validation.RequestAuthentication(&r.Meta, r.Spec)) {
			e.ras = append(e.ras, r)
		}
	}
	for _, r := range snap.DestinationRules {
		if e.admit(r.Source, r.String(), validation.DestinationRule(&r.Meta, r.Spec)) {
			e.drs = append(e.drs, r)
			e.drSelectsClients = e.drSelectsClients || len(r.Spec.GetWorkloadSelector().GetMatchLabels()) > 0
		}
	}
	values := snap.Cilium.Values
	if snap.Cilium.Source.File == "" {
		values = cilium.DefaultHelmValues()
	}
	e.net = netpol.NewSet(e.networkPolicies(), &snap.Inventory, netpol.Settings{
		EnforcementMode: values.PolicyEnforcementMode,
		AuditMode:       values.PolicyAuditMode,
		ClusterName:     values.ClusterName,
	})
	sort.SliceStable(e.Problems, func(i, j int) bool {
		a, b := e.Problems[i].Source, e.Problems[j].Source
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	return e
}

// admit records the findings for one resource and reports whether istiod
// would have accepted it.
func (e *Engine) admit(src config.Source, object string, problems []validation.Problem) bool {
	var rej *Rejection
	for _, p := range problems {
		e.Problems = append(e.Problems, Problem{
			Error:   config.Error{Source: src.At(p.Path), Object: object, Msg: p.Msg},
			Warning: p.Warning,
		})
		switch {
		case p.Warning:
		case rej == nil:
			e.Rejected = append(e.Rejected, Rejection{Object: object, Source: src.At(p.Path), Reason: p.Msg})
			rej = &e.Rejected[len(e.Rejected)-1]
		default:
			rej.More++
		}
	}
	return rej == nil
}

// networkPolicies validates and compiles the snapshot's network policies,
// leaving out those the API server or Cilium would reject.
func (e *Engine) networkPolicies() []*netpol.Policy {
	var out []*netpol.Policy
	for _, r := range e.Snapshot.NetworkPolicies {
		problems := ciliumProblems(cilium.PrefixProblems("spec", cilium.ValidateNetworkPolicy(r.Spec)))
		if !e.admit(r.Source, r.String(), problems) {
			continue
		}
		p, err := netpol.FromNetworkPolicy(r)
		if e.admit(r.Source, r.String(), errProblems(err)) {
			out = append(out, p)
		}
	}
	cnps := append(append([]*config.Resource[*config.CiliumPolicy]{}, e.Snapshot.CiliumNetworkPolicies...), e.Snapshot.CiliumClusterwideNetworkPolicies...)
	for _, r := range cnps {
		var problems []validation.Problem
		rules, paths := r.Spec.Rules()
		for i, rule := range rules {
			problems = append(problems, ciliumProblems(cilium.PrefixProblems(paths[i], cilium.ValidateRule(rule, r.Kind == "CiliumNetworkPolicy")))...)
		}
		if !e.admit(r.Source, r.String(), problems) {
			continue
		}
		p, errs := netpol.FromCiliumPolicy(r)
		var compileProblems []validation.Problem
		for _, err := range errs {
			compileProblems = append(compileProblems, errProblems(err)...)
		}
		if e.admit(r.Source, r.String(), compileProblems) {
			out = append(out, p)
		}
	}
	return out
}

func ciliumProblems(ps []cilium.Problem) []validation.Problem {
	out := make([]validation.Problem, len(ps))
	for i, p := range ps {
		out[i] = validation.Problem{Path: p.Path, Msg: p.Msg, Warning: p.Warning}
	}
	return out
}

// errProblems turns a compile error into an admission finding.
func errProblems(err error) []validation.Problem {
	if err == nil {
		return nil
	}
	return []validation.Problem{{Path: "spec", Msg: err.Error()}}
}

// Workload returns the compiled policy of w, compiling it on first use.
func (e *Engine) Workload(w *config.Workload) *Workload {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.workloads[w]; ok {
		return c
	}
	c := e.compile(w)
	e.workloads[w] = c
	return c
}

// CompileAll compiles every workload of the inventory.
func (e *Engine) CompileAll() {
	for _, w := range e.Snapshot.Inventory.Workloads {
		e.Workload(w)
	}
}

func (e *Engine) compile(w *config.Workload) *Workload {
	c := &Workload{Workload: w}
	// Root namespace policies first, then the workload's own namespace,
	// each oldest first: the order istiod lists them in.
	namespaces := []string{e.root}
	if w.Namespace != e.root {
		namespaces = append(namespaces, w.Namespace)
	}
	var selected []*authz.Policy
	for _, ns := range namespaces {
		for _, p := range e.byNS[ns] {
			if p.Selects(w, e.root) {
				selected = append(selected, p)
			}
		}
	}
	c.Authz = authz.NewSet(selected, e.providers)
	c.Authz.AssumeExtAuthzAllows = e.opts.AssumeExtAuthzAllows
	c.MTLS = mtls.Resolve(e.pas, w, e.root)

	var ras []*config.Resource[*securityv1beta1.RequestAuthentication]
	for _, r := range e.ras {
		if r.Spec.GetTargetRef() != nil || len(r.Spec.GetTargetRefs()) > 0 {
			continue // targetRefs are for gateways and waypoints, not sidecars
		}
		if (r.Meta.Namespace == e.root || r.Meta.Namespace == w.Namespace) &&
			config.Selects(r.Spec.GetSelector().GetMatchLabels(), w.Labels) {
			ras = append(ras, r)
			c.JWTSources = append(c.JWTSources, r.Key())
		}
	}
	c.JWT = jwtauth.New(ras, e.opts.Keys)
	return c
}

// extensionProviders lists the mesh's extension providers by kind: only
// ext_authz providers can serve a CUSTOM policy.
func extensionProviders(mc *meshv1alpha1.MeshConfig) map[string]authz.ProviderKind {
	out := map[string]authz.ProviderKind{}
	for _, p := range mc.GetExtensionProviders() {
		switch p.GetProvider().(type) {
		case *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExtAuthzHttp:
			out[p.GetName()] = authz.ProviderExtAuthzHTTP
		case *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc:
			out[p.GetName()] = authz.ProviderExtAuthzGRPC
		default:
			out[p.GetName()] = authz.ProviderOther
		}
	}
	return out
}

// Identity is the SPIFFE ID Istio gives a workload:
// spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.
func (e *Engine) Identity(w *config.Workload) string {
	return fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", e.Snapshot.Mesh.TrustDomain(), w.Namespace, w.ServiceAccount)
}
