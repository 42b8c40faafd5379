package config

import (
	"fmt"
	"io"
	"sort"

	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/palisade-security/palisade/internal/cilium"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Resource is one Istio resource: its metadata, its strictly decoded spec
// and where it was read from.
type Resource[S any] struct {
	APIVersion string
	Kind       string
	Meta       metav1.ObjectMeta
	Spec       S
	Source     Source
}

// Key is "namespace/name".
func (r *Resource[S]) Key() string { return r.Meta.Namespace + "/" + r.Meta.Name }

// String is "Kind namespace/name", the way errors and traces name a resource.
func (r *Resource[S]) String() string { return r.Kind + " " + r.Key() }

// Snapshot is an immutable set of resources and the inventory they apply to.
// Once returned by Load or Parse it must not be modified.
type Snapshot struct {
	Mesh      Mesh
	Inventory Inventory

	// Each list is ordered oldest first, as istiod orders them.
	AuthorizationPolicies  []*Resource[*securityv1beta1.AuthorizationPolicy]
	PeerAuthentications    []*Resource[*securityv1beta1.PeerAuthentication]
	RequestAuthentications []*Resource[*securityv1beta1.RequestAuthentication]
	DestinationRules       []*Resource[*networkingv1alpha3.DestinationRule]
	NetworkPolicies        []*Resource[*networkingv1.NetworkPolicySpec]
	// CiliumNetworkPolicies and CiliumClusterwideNetworkPolicies keep the
	// order they were read in: Cilium gives them no precedence.
	CiliumNetworkPolicies            []*Resource[*CiliumPolicy]
	CiliumClusterwideNetworkPolicies []*Resource[*CiliumPolicy]
	// Cilium is the Cilium install configuration (Helm values).
	Cilium CiliumInstall

	// Notes lists what was read but not used, such as kinds that are not
	// Palisade's business.
	Notes []Note
}

// CiliumPolicy is the body of a CiliumNetworkPolicy or a
// CiliumClusterwideNetworkPolicy: one rule in spec, more in specs.
type CiliumPolicy struct {
	Spec  *cilium.Rule
	Specs []*cilium.Rule
}

// Rules returns spec then specs, each with its path in the object.
func (p *CiliumPolicy) Rules() (rules []*cilium.Rule, paths []string) {
	if p.Spec != nil {
		rules, paths = append(rules, p.Spec), append(paths, "spec")
	}
	for i, r := range p.Specs {
		rules, paths = append(rules, r), append(paths, fmt.Sprintf("specs[%d]", i))
	}
	return rules, paths
}

// CiliumInstall is Cilium's install configuration, from a Helm values file.
type CiliumInstall struct {
	Values cilium.HelmValues
	Source Source // zero when no values were given: Cilium's defaults
}

// Input says what Load reads.
type Input struct {
	Paths []string  // files, directories, or "-" for Stdin
	Stdin io.Reader // read for "-"
	// CiliumValues is a Cilium Helm values file. A values document among
	// Paths is recognised by Cilium's keys as well.
	CiliumValues string
}

// Load reads every path: a file, a directory (recursively: .yaml, .yml and
// .json files) or "-" for stdin. It returns the snapshot of everything that
// decoded, and every problem found, sorted by file and line. A document with
// a problem is left out of the snapshot.
func Load(paths []string, stdin io.Reader) (*Snapshot, []*Error) {
	return LoadInput(Input{Paths: paths, Stdin: stdin})
}

// LoadInput is Load with a Cilium values file given on its own.
func LoadInput(in Input) (*Snapshot, []*Error) {
	l := newLoader()
	for _, p := range in.Paths {
		docs, errs := readPath(p, in.Stdin)
		l.errs = append(l.errs, errs...)
		for _, d := range docs {
			l.add(d)
		}
	}
	if in.CiliumValues != "" {
		docs, errs := readFile(in.CiliumValues)
		l.errs = append(l.errs, errs...)
		for _, d := range docs {
			l.addCiliumValues(d)
		}
	}
	return l.finish()
}

// Parse is Load for one in-memory input named name.
func Parse(name string, data []byte) (*Snapshot, []*Error) {
	return ParseFiles([]File{{Name: name, Data: data}})
}

// File is an in-memory input: the documents of one file.
type File struct {
	Name string
	Data []byte
}

// ParseFiles is Load for in-memory files, such as those a proxy receives
// from the control plane. A file named like a Cilium values file's
// documents are recognised as in Load.
func ParseFiles(files []File) (*Snapshot, []*Error) {
	return ParseInput(files, nil)
}

// ParseInput is LoadInput for in-memory files: values, when set, is a
// Cilium Helm values file whatever keys it has.
func ParseInput(files []File, values *File) (*Snapshot, []*Error) {
	l := newLoader()
	for _, f := range files {
		docs, errs := splitDocuments(f.Name, f.Data)
		l.errs = append(l.errs, errs...)
		for _, d := range docs {
			l.add(d)
		}
	}
	if values != nil {
		docs, errs := splitDocuments(values.Name, values.Data)
		l.errs = append(l.errs, errs...)
		for _, d := range docs {
			l.addCiliumValues(d)
		}
	}
	return l.finish()
}

type loader struct {
	snap *Snapshot
	errs []*Error
	seen map[string]Source // "Kind ns/name" → first definition
	mesh []meshCandidate
}

func newLoader() *loader {
	return &loader{snap: &Snapshot{Inventory: newInventory()}, seen: map[string]Source{}}
}

func (l *loader) errorf(src Source, object, format string, args ...any) {
	l.errs = append(l.errs, &Error{Source: src, Object: object, Msg: fmt.Sprintf(format, args...)})
}

// fail records err, which may carry a line of its own, as a problem of the
// document at src.
func (l *loader) fail(src Source, object string, err error) {
	if le, ok := err.(*lineError); ok {
		if le.line > 0 {
			src.Line = le.line
		}
		l.errs = append(l.errs, &Error{Source: src, Object: object, Msg: le.msg})
		return
	}
	l.errs = append(l.errs, &Error{Source: src, Object: object, Msg: err.Error()})
}

// claim registers "Kind ns/name" and reports a second definition of it.
func (l *loader) claim(kind, ns, name string, src Source) bool {
	key := fmt.Sprintf("%s %s/%s", kind, ns, name)
	if ns == "" {
		key = kind + " " + name
	}
	if first, dup := l.seen[key]; dup {
		l.errorf(src, key, "defined twice; first definition at %s", first)
		return false
	}
	l.seen[key] = src
	return true
}

func (l *loader) finish() (*Snapshot, []*Error) {
	s := l.snap
	l.resolveMesh()
	sortOldestFirst(s.AuthorizationPolicies)
	sortOldestFirst(s.PeerAuthentications)
	sortOldestFirst(s.RequestAuthentications)
	sortOldestFirst(s.DestinationRules)
	sortOldestFirst(s.NetworkPolicies)
	s.Inventory.finish()
	sort.SliceStable(l.errs, func(i, j int) bool {
		a, b := l.errs[i].Source, l.errs[j].Source
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Doc != b.Doc {
			return a.Doc < b.Doc
		}
		return a.Line < b.Line
	})
	return s, l.errs
}

// sortOldestFirst orders resources as istiod does where "the oldest wins":
// by creation time, then name, then namespace (configCompareByCreationTime
// in istio/istio pilot/pkg/model/config.go). Resources read from files have
// no creation time, so among them the name decides.
func sortOldestFirst[S any](rs []*Resource[S]) {
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i].Meta, rs[j].Meta
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Namespace < b.Namespace
	})
}
