package config

import (
	"bytes"
	"fmt"

	"go.yaml.in/yaml/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
)

// Mesh is the mesh-wide configuration Istio's semantics depend on, read from
// an IstioOperator's spec.meshConfig or from the "istio" ConfigMap's "mesh"
// key. With neither, every field has Istio's default.
type Mesh struct {
	Config *meshv1alpha1.MeshConfig // never nil after Load
	Source Source                   // zero when no mesh configuration was given
}

// Istio's defaults for the fields Palisade reads.
const (
	DefaultRootNamespace = "istio-system"
	DefaultTrustDomain   = "cluster.local"
)

// RootNamespace is the namespace whose policies apply mesh-wide.
func (m Mesh) RootNamespace() string {
	if m.Config != nil && m.Config.GetRootNamespace() != "" {
		return m.Config.GetRootNamespace()
	}
	return DefaultRootNamespace
}

// TrustDomain is the SPIFFE trust domain of the mesh's identities.
func (m Mesh) TrustDomain() string {
	if m.Config != nil && m.Config.GetTrustDomain() != "" {
		return m.Config.GetTrustDomain()
	}
	return DefaultTrustDomain
}

// TrustDomainAliases are other trust domains the mesh treats as its own.
func (m Mesh) TrustDomainAliases() []string { return m.Config.GetTrustDomainAliases() }

// PathNormalization is the mesh's path normalization option.
func (m Mesh) PathNormalization() meshv1alpha1.MeshConfig_ProxyPathNormalization_NormalizationType {
	return m.Config.GetPathNormalization().GetNormalization()
}

type meshCandidate struct {
	cfg *meshv1alpha1.MeshConfig
	src Source
	by  string
}

// The IstioOperator spec fields (istio/istio operator/pkg/apis/types.go).
// Only meshConfig is decoded; the others are installation settings that do
// not change policy semantics.
var istioOperatorSpecFields = []string{
	"profile", "installPackagePath", "namespace", "revision", "compatibilityVersion",
	"hub", "tag", "resourceSuffix", "meshConfig", "components", "values", "unvalidatedValues",
}

func addIstioOperator(l *loader, d document, _, kind string) {
	object := kind + " " + objectName(d.root)
	ok := checkTopLevel(l, d, object, "apiVersion", "kind", "metadata", "spec", "status")
	meta, metaOK := decodeMeta(l, d, object, true)
	cfg := &meshv1alpha1.MeshConfig{}
	if spec := fieldNode(d.root, "spec"); spec != nil {
		spec = deref(spec)
		if spec.Kind != yaml.MappingNode {
			l.errorf(d.src.At("spec"), object, "spec: expected a mapping, got %s", describe(spec))
			return
		}
		for i := 0; i+1 < len(spec.Content); i += 2 {
			k := spec.Content[i]
			known := false
			for _, f := range istioOperatorSpecFields {
				known = known || f == k.Value
			}
			if !known {
				l.errorf(d.src.At("spec."+k.Value), object, "spec: unknown field %q in IstioOperatorSpec", k.Value)
				ok = false
			}
		}
		if mc := fieldNode(spec, "meshConfig"); mc != nil {
			for _, err := range decodeProto(mc, "spec.meshConfig", cfg) {
				l.fail(d.src, object, err)
				ok = false
			}
		}
	}
	if !ok || !metaOK || !l.claim(kind, meta.Namespace, meta.Name, d.src) {
		return
	}
	l.mesh = append(l.mesh, meshCandidate{cfg: cfg, src: d.src, by: object})
}

// addConfigMap reads the mesh configuration from Istio's ConfigMap, named
// "istio"; other ConfigMaps are noted and skipped, including look-alikes such
// as "istio-performance-config" that istiod never reads.
func addConfigMap(l *loader, d document, _, kind string) {
	var o corev1.ConfigMap
	if !decodeK8s(l, d, kind, &o) {
		return
	}
	object := kind + " " + objectName(d.root)
	if !checkMeta(l, d, object, &o.ObjectMeta) || !l.claim(kind, o.Namespace, o.Name, d.src) {
		return
	}
	mesh, has := o.Data["mesh"]
	if o.Name != "istio" || !has {
		l.snap.Notes = append(l.snap.Notes, Note{Source: d.src, Msg: fmt.Sprintf("skipped %s: not Istio's mesh configuration", object)})
		return
	}
	// The block scalar's text starts on the line after its key.
	keyLine := d.src.At("data.mesh").Line
	var n yaml.Node
	text := append(bytes.Repeat([]byte{'\n'}, keyLine), mesh...)
	if err := yaml.Unmarshal(text, &n); err != nil {
		line, msg := yamlErrorLine(err)
		src := d.src
		src.Line = line
		l.errorf(src, object, "data.mesh: invalid YAML: %s", msg)
		return
	}
	cfg := &meshv1alpha1.MeshConfig{}
	if root := deref(&n); root.Kind != 0 && !isNull(root) {
		errs := decodeProto(root, "data.mesh", cfg)
		for _, err := range errs {
			l.fail(d.src, object, err)
		}
		if len(errs) > 0 {
			return
		}
	}
	l.mesh = append(l.mesh, meshCandidate{cfg: cfg, src: d.src, by: object})
}

func (l *loader) resolveMesh() {
	switch len(l.mesh) {
	case 0:
		l.snap.Mesh = Mesh{Config: &meshv1alpha1.MeshConfig{}}
	case 1:
		l.snap.Mesh = Mesh{Config: l.mesh[0].cfg, Source: l.mesh[0].src}
	default:
		first := l.mesh[0]
		for _, c := range l.mesh[1:] {
			l.errorf(c.src, c.by, "a second mesh configuration; the first is %s at %s (give one)", first.by, first.src)
		}
		l.snap.Mesh = Mesh{Config: first.cfg, Source: first.src}
	}
	l.snap.Inventory.namespace(l.snap.Mesh.RootNamespace())
}
