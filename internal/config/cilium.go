package config

import (
	"fmt"

	"github.com/palisade-security/palisade/internal/cilium"
)

// addCiliumPolicy decodes a CiliumNetworkPolicy or a
// CiliumClusterwideNetworkPolicy: metadata, then spec and each of specs
// strictly against Cilium's rule schema.
func addCiliumPolicy(l *loader, d document, av, kind string) {
	object := kind + " " + objectName(d.root)
	ok := checkTopLevel(l, d, object, "apiVersion", "kind", "metadata", "spec", "specs", "status")
	namespaced := kind == "CiliumNetworkPolicy"
	meta, metaOK := decodeMeta(l, d, object, namespaced)
	if !namespaced && meta.Namespace != "" {
		l.errorf(d.src.At("metadata.namespace"), object, "a clusterwide policy has no namespace")
		ok = false
	}
	body := &CiliumPolicy{}
	if n := fieldNode(d.root, "spec"); n != nil && !isNull(deref(n)) {
		body.Spec = &cilium.Rule{}
		ok = decodeStrict(l, d, n, "spec", object, body.Spec) && ok
	}
	if n := fieldNode(d.root, "specs"); n != nil && !isNull(deref(n)) {
		ok = decodeStrict(l, d, n, "specs", object, &body.Specs) && ok
	}
	if body.Spec == nil && len(body.Specs) == 0 {
		l.errorf(d.src, object, "spec or specs is required")
		ok = false
	}
	if !ok || !metaOK || !l.claim(kind, meta.Namespace, meta.Name, d.src) {
		return
	}
	r := &Resource[*CiliumPolicy]{APIVersion: av, Kind: kind, Meta: meta, Spec: body, Source: d.src}
	if namespaced {
		l.snap.Inventory.namespace(meta.Namespace)
		l.snap.CiliumNetworkPolicies = append(l.snap.CiliumNetworkPolicies, r)
	} else {
		l.snap.CiliumClusterwideNetworkPolicies = append(l.snap.CiliumClusterwideNetworkPolicies, r)
	}
}

// addCiliumValues reads the Cilium Helm values that change policy
// (policyEnforcementMode, policyAuditMode, cluster.name). A values file has
// hundreds of other keys; they are not Palisade's business.
func (l *loader) addCiliumValues(d document) {
	if l.snap.Cilium.Source.File != "" {
		l.errorf(d.src, "Cilium Helm values", "a second Cilium values document; the first is at %s", l.snap.Cilium.Source)
		return
	}
	var m map[string]any
	if err := d.root.Decode(&m); err != nil {
		l.errorf(d.src, "Cilium Helm values", "%v", err)
		return
	}
	values, errs := cilium.ParseHelmValues(m)
	for _, err := range errs {
		l.errorf(d.src, "Cilium Helm values", "%v", err)
	}
	if len(errs) > 0 {
		return
	}
	l.snap.Cilium = CiliumInstall{Values: values, Source: d.src}
	l.snap.Notes = append(l.snap.Notes, Note{Source: d.src, Msg: fmt.Sprintf("read Cilium Helm values: policyEnforcementMode %s, policyAuditMode %v", values.PolicyEnforcementMode, values.PolicyAuditMode)})
}
