package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	encjson "encoding/json"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	sigsjson "sigs.k8s.io/json"
)

// kindHandler decodes one kind into the snapshot.
type kindHandler struct {
	versions []string // accepted API versions, e.g. "security.istio.io/v1"
	add      func(l *loader, d document, apiVersion, kind string)
}

// kinds is the one place that says which kinds Palisade reads.
var kinds = map[string]kindHandler{
	"AuthorizationPolicy": {versions: []string{"security.istio.io/v1", "security.istio.io/v1beta1"}, add: func(l *loader, d document, av, k string) {
		if r := decodeIstio(l, d, av, k, &securityv1beta1.AuthorizationPolicy{}); r != nil {
			l.snap.AuthorizationPolicies = append(l.snap.AuthorizationPolicies, r)
		}
	}},
	"PeerAuthentication": {versions: []string{"security.istio.io/v1", "security.istio.io/v1beta1"}, add: func(l *loader, d document, av, k string) {
		if r := decodeIstio(l, d, av, k, &securityv1beta1.PeerAuthentication{}); r != nil {
			l.snap.PeerAuthentications = append(l.snap.PeerAuthentications, r)
		}
	}},
	"RequestAuthentication": {versions: []string{"security.istio.io/v1", "security.istio.io/v1beta1"}, add: func(l *loader, d document, av, k string) {
		if r := decodeIstio(l, d, av, k, &securityv1beta1.RequestAuthentication{}); r != nil {
			l.snap.RequestAuthentications = append(l.snap.RequestAuthentications, r)
		}
	}},
	"DestinationRule": {versions: []string{"networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"}, add: func(l *loader, d document, av, k string) {
		if r := decodeIstio(l, d, av, k, &networkingv1alpha3.DestinationRule{}); r != nil {
			l.snap.DestinationRules = append(l.snap.DestinationRules, r)
		}
	}},
	"IstioOperator": {versions: []string{"install.istio.io/v1alpha1"}, add: addIstioOperator},

	"CiliumNetworkPolicy":            {versions: []string{"cilium.io/v2"}, add: addCiliumPolicy},
	"CiliumClusterwideNetworkPolicy": {versions: []string{"cilium.io/v2"}, add: addCiliumPolicy},

	"NetworkPolicy": {versions: []string{"networking.k8s.io/v1"}, add: func(l *loader, d document, av, k string) {
		var o networkingv1.NetworkPolicy
		if !decodeK8s(l, d, k, &o) {
			return
		}
		object := k + " " + objectName(d.root)
		if !checkMeta(l, d, object, &o.ObjectMeta) || !l.claim(k, o.Namespace, o.Name, d.src) {
			return
		}
		l.snap.Inventory.namespace(o.Namespace)
		l.snap.NetworkPolicies = append(l.snap.NetworkPolicies, &Resource[*networkingv1.NetworkPolicySpec]{
			APIVersion: av, Kind: k, Meta: o.ObjectMeta, Spec: &o.Spec, Source: d.src})
	}},
	"Namespace":      {versions: []string{"v1"}, add: addNamespace},
	"ServiceAccount": {versions: []string{"v1"}, add: addServiceAccount},
	"Service":        {versions: []string{"v1"}, add: addService},
	"ConfigMap":      {versions: []string{"v1"}, add: addConfigMap},
	"Pod":            {versions: []string{"v1"}, add: addPod},
	"Deployment": {versions: []string{"apps/v1"}, add: func(l *loader, d document, av, k string) {
		var o appsv1.Deployment
		if decodeK8s(l, d, k, &o) {
			l.addTemplate(d, k, &o.ObjectMeta, &o.Spec.Template)
		}
	}},
	"StatefulSet": {versions: []string{"apps/v1"}, add: func(l *loader, d document, av, k string) {
		var o appsv1.StatefulSet
		if decodeK8s(l, d, k, &o) {
			l.addTemplate(d, k, &o.ObjectMeta, &o.Spec.Template)
		}
	}},
	"DaemonSet": {versions: []string{"apps/v1"}, add: func(l *loader, d document, av, k string) {
		var o appsv1.DaemonSet
		if decodeK8s(l, d, k, &o) {
			l.addTemplate(d, k, &o.ObjectMeta, &o.Spec.Template)
		}
	}},
	"ReplicaSet": {versions: []string{"apps/v1"}, add: func(l *loader, d document, av, k string) {
		var o appsv1.ReplicaSet
		if decodeK8s(l, d, k, &o) && !ownedBy(&o.ObjectMeta, "Deployment") {
			l.addTemplate(d, k, &o.ObjectMeta, &o.Spec.Template)
		}
	}},
	"Job": {versions: []string{"batch/v1"}, add: func(l *loader, d document, av, k string) {
		var o batchv1.Job
		if decodeK8s(l, d, k, &o) && !ownedBy(&o.ObjectMeta, "CronJob") {
			l.addTemplate(d, k, &o.ObjectMeta, &o.Spec.Template)
		}
	}},
	"CronJob": {versions: []string{"batch/v1"}, add: func(l *loader, d document, av, k string) {
		var o batchv1.CronJob
		if decodeK8s(l, d, k, &o) {
			l.addTemplate(d, k, &o.ObjectMeta, &o.Spec.JobTemplate.Spec.Template)
		}
	}},
}

// notYet lists kinds Palisade will read but does not evaluate yet.
var notYet = map[string]string{}

func (l *loader) add(d document) {
	av, kind := scalarField(d.root, "apiVersion"), scalarField(d.root, "kind")
	if av == "" && kind == "" && looksLikeCiliumValues(d.root) {
		l.addCiliumValues(d)
		return
	}
	if av == "" || kind == "" {
		l.errorf(d.src, "", "document has no apiVersion or kind")
		return
	}
	if av == "v1" && kind == "List" || strings.HasSuffix(kind, "List") && fieldNode(d.root, "items") != nil {
		l.addList(d)
		return
	}
	group := av
	if i := strings.LastIndexByte(av, '/'); i >= 0 {
		group = av[:i]
	}
	if why, ok := notYet[group+"/"+kind]; ok {
		l.snap.Notes = append(l.snap.Notes, Note{Source: d.src, Msg: fmt.Sprintf("skipped %s %s: %s", kind, objectName(d.root), why)})
		return
	}
	h, ok := kinds[kind]
	if !ok || !sameGroup(h.versions, group) {
		l.snap.Notes = append(l.snap.Notes, Note{Source: d.src, Msg: fmt.Sprintf("skipped %s %s: not a kind Palisade reads", kind, objectName(d.root))})
		return
	}
	for _, v := range h.versions {
		if v == av {
			h.add(l, d, av, kind)
			return
		}
	}
	l.errorf(d.src.At("apiVersion"), kind+" "+objectName(d.root), "unsupported apiVersion %q (supported: %s)", av, strings.Join(h.versions, ", "))
}

// looksLikeCiliumValues recognises a Cilium Helm values file, which is not a
// Kubernetes object, by the keys that only Cilium's chart has.
func looksLikeCiliumValues(root *yaml.Node) bool {
	for _, k := range []string{"policyEnforcementMode", "policyAuditMode", "kubeProxyReplacement", "l7Proxy", "hubble"} {
		if fieldNode(root, k) != nil {
			return true
		}
	}
	return false
}

func sameGroup(versions []string, group string) bool {
	for _, v := range versions {
		g := ""
		if i := strings.LastIndexByte(v, '/'); i >= 0 {
			g = v[:i]
		}
		if g == group || (g == "" && group == v) {
			return true
		}
	}
	return false
}

func (l *loader) addList(d document) {
	items := fieldNode(d.root, "items")
	if items == nil {
		return // an empty List
	}
	items = deref(items)
	if items.Kind != yaml.SequenceNode {
		l.errorf(d.src.At("items"), "", "items: expected a list")
		return
	}
	for i, it := range items.Content {
		it = deref(it)
		src := d.src
		src.Line = it.Line
		if it.Kind != yaml.MappingNode {
			l.errorf(src, "", "items[%d]: expected a mapping, got %s", i, describe(it))
			continue
		}
		src.root = it
		l.add(document{src: src, root: it})
	}
}

func fieldNode(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalarField(m *yaml.Node, key string) string {
	n := fieldNode(m, key)
	if n == nil {
		return ""
	}
	n = deref(n)
	if n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

// objectName is "namespace/name" (or "name") read leniently from a document
// that may not decode, for messages.
func objectName(root *yaml.Node) string {
	md := fieldNode(root, "metadata")
	if md == nil {
		return "(unnamed)"
	}
	md = deref(md)
	name, ns := scalarField(md, "name"), scalarField(md, "namespace")
	if name == "" {
		name = "(unnamed)"
	}
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

// decodeK8s strictly decodes a Kubernetes object the way the API server
// does with strict field validation. It reports whether it succeeded.
func decodeK8s(l *loader, d document, kind string, obj any) bool {
	return decodeStrict(l, d, d.root, "", kind+" "+objectName(d.root), obj)
}

// decodeStrict strictly decodes the node at path (a field path within the
// document, "" for the whole document) into obj, reporting unknown and
// duplicate fields and wrong types at their lines.
func decodeStrict(l *loader, d document, n *yaml.Node, path, object string, obj any) bool {
	jd, err := toJSON(n)
	if err != nil {
		l.fail(d.src, object, err)
		return false
	}
	prefix := ""
	if path != "" {
		prefix = path + "."
	}
	strict, err := sigsjson.UnmarshalStrict(jd.buf, obj)
	if err != nil {
		src := d.src.At(path)
		var te *encjson.UnmarshalTypeError
		if errors.As(err, &te) {
			src.Line = jd.lineAt(int(te.Offset) - 1)
			l.errorf(src, object, "%s%s: expected %s, got %s", prefix, te.Field, te.Type, te.Value)
		} else {
			l.errorf(src, object, "%s%s", prefix, strings.TrimPrefix(err.Error(), "json: "))
		}
		return false
	}
	for _, e := range strict {
		src := d.src.At(path)
		msg := e.Error()
		if fe, ok := e.(sigsjson.FieldError); ok {
			src = d.src.At(prefix + fe.FieldPath())
			fe.SetFieldPath(prefix + fe.FieldPath())
			msg = e.Error()
		}
		l.errorf(src, object, "%s", msg)
	}
	return len(strict) == 0
}

// decodeMeta reads and checks an object's metadata. Namespaced objects
// without a namespace go to "default", as kubectl puts them.
func decodeMeta(l *loader, d document, object string, namespaced bool) (metav1.ObjectMeta, bool) {
	var meta metav1.ObjectMeta
	n := fieldNode(d.root, "metadata")
	if n == nil {
		l.errorf(d.src, object, "metadata.name is required")
		return meta, false
	}
	jd, err := toJSON(n)
	if err != nil {
		l.fail(d.src, object, err)
		return meta, false
	}
	strict, err := sigsjson.UnmarshalStrict(jd.buf, &meta)
	if err != nil {
		l.errorf(d.src.At("metadata"), object, "metadata: %s", strings.TrimPrefix(err.Error(), "json: "))
		return meta, false
	}
	ok := true
	for _, e := range strict {
		src := d.src.At("metadata")
		if fe, isField := e.(sigsjson.FieldError); isField {
			src = d.src.At("metadata." + fe.FieldPath())
		}
		l.errorf(src, object, "metadata: %s", e)
		ok = false
	}
	if meta.Name == "" {
		l.errorf(d.src.At("metadata"), object, "metadata.name is required")
		ok = false
	} else if msgs := validation.IsDNS1123Subdomain(meta.Name); len(msgs) > 0 {
		l.errorf(d.src.At("metadata.name"), object, "metadata.name %q: %s", meta.Name, strings.Join(msgs, "; "))
		ok = false
	}
	if namespaced {
		if meta.Namespace == "" {
			meta.Namespace = "default"
		} else if msgs := validation.IsDNS1123Label(meta.Namespace); len(msgs) > 0 {
			l.errorf(d.src.At("metadata.namespace"), object, "metadata.namespace %q: %s", meta.Namespace, strings.Join(msgs, "; "))
			ok = false
		}
	}
	return meta, ok
}

// decodeIstio decodes an Istio resource: metadata, and a spec strictly
// decoded against the upstream protobuf type.
func decodeIstio[S proto.Message](l *loader, d document, apiVersion, kind string, spec S) *Resource[S] {
	object := kind + " " + objectName(d.root)
	ok := checkTopLevel(l, d, object, "apiVersion", "kind", "metadata", "spec", "status")
	meta, metaOK := decodeMeta(l, d, object, true)
	if sn := fieldNode(d.root, "spec"); sn != nil {
		for _, err := range decodeProto(sn, "spec", spec) {
			l.fail(d.src, object, err)
			ok = false
		}
	}
	if !ok || !metaOK || !l.claim(kind, meta.Namespace, meta.Name, d.src) {
		return nil
	}
	l.snap.Inventory.namespace(meta.Namespace)
	return &Resource[S]{APIVersion: apiVersion, Kind: kind, Meta: meta, Spec: spec, Source: d.src}
}

// checkTopLevel reports top-level keys outside allowed.
func checkTopLevel(l *loader, d document, object string, allowed ...string) bool {
	ok := true
	for i := 0; i+1 < len(d.root.Content); i += 2 {
		k := d.root.Content[i]
		known := false
		for _, a := range allowed {
			known = known || k.Value == a
		}
		if !known {
			l.errs = append(l.errs, &Error{Source: Source{File: d.src.File, Doc: d.src.Doc, Line: k.Line}, Object: object, Msg: fmt.Sprintf("unknown field %q", k.Value)})
			ok = false
		}
	}
	return ok
}

func ownedBy(meta *metav1.ObjectMeta, kind string) bool {
	for _, o := range meta.OwnerReferences {
		if o.Kind == kind {
			return true
		}
	}
	return false
}

func (l *loader) addTemplate(d document, kind string, meta *metav1.ObjectMeta, tmpl *corev1.PodTemplateSpec) {
	object := kind + " " + objectName(d.root)
	if !checkMeta(l, d, object, meta) {
		return
	}
	if !l.claim(kind, meta.Namespace, meta.Name, d.src) {
		return
	}
	w, err := workloadFromPodSpec(kind, meta.Namespace, meta.Name, tmpl.Labels, &tmpl.Spec, d.src)
	if err != nil {
		l.errorf(d.src.At("spec.template.spec"), object, "%v", err)
		return
	}
	l.snap.Inventory.addWorkload(w)
}

// checkMeta applies decodeMeta's name rules to metadata decoded as part of a
// Kubernetes object.
func checkMeta(l *loader, d document, object string, meta *metav1.ObjectMeta) bool {
	if meta.Name == "" {
		l.errorf(d.src, object, "metadata.name is required")
		return false
	}
	if meta.Namespace == "" {
		meta.Namespace = "default"
	}
	return true
}

func addPod(l *loader, d document, _, kind string) {
	var o corev1.Pod
	if !decodeK8s(l, d, kind, &o) {
		return
	}
	object := kind + " " + objectName(d.root)
	if !checkMeta(l, d, object, &o.ObjectMeta) || !l.claim(kind, o.Namespace, o.Name, d.src) {
		return
	}
	w, err := workloadFromPodSpec(kind, o.Namespace, o.Name, o.Labels, &o.Spec, d.src)
	if err != nil {
		l.errorf(d.src.At("spec"), object, "%v", err)
		return
	}
	ips := []string{o.Status.PodIP}
	for _, ip := range o.Status.PodIPs {
		if ip.IP != o.Status.PodIP {
			ips = append(ips, ip.IP)
		}
	}
	for _, s := range ips {
		if s == "" {
			continue
		}
		ip, err := netip.ParseAddr(s)
		if err != nil {
			l.errorf(d.src.At("status.podIP"), object, "status.podIP %q is not an IP address", s)
			return
		}
		w.IPs = append(w.IPs, ip)
	}
	l.snap.Inventory.addWorkload(w)
}

func addNamespace(l *loader, d document, _, kind string) {
	var o corev1.Namespace
	if !decodeK8s(l, d, kind, &o) {
		return
	}
	if o.Name == "" {
		l.errorf(d.src, kind, "metadata.name is required")
		return
	}
	if !l.claim(kind, "", o.Name, d.src) {
		return
	}
	ns := l.snap.Inventory.namespace(o.Name)
	ns.Labels, ns.Declared, ns.Source = o.Labels, true, d.src
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	// Kubernetes sets this label on every namespace; selectors rely on it.
	if _, ok := ns.Labels["kubernetes.io/metadata.name"]; !ok {
		ns.Labels["kubernetes.io/metadata.name"] = o.Name
	}
}

func addServiceAccount(l *loader, d document, _, kind string) {
	var o corev1.ServiceAccount
	if !decodeK8s(l, d, kind, &o) {
		return
	}
	object := kind + " " + objectName(d.root)
	if !checkMeta(l, d, object, &o.ObjectMeta) || !l.claim(kind, o.Namespace, o.Name, d.src) {
		return
	}
	l.snap.Inventory.namespace(o.Namespace)
	sa := l.snap.Inventory.serviceAccount(o.Namespace, o.Name)
	sa.Declared, sa.Source = true, d.src
}

func addService(l *loader, d document, _, kind string) {
	var o corev1.Service
	if !decodeK8s(l, d, kind, &o) {
		return
	}
	object := kind + " " + objectName(d.root)
	if !checkMeta(l, d, object, &o.ObjectMeta) || !l.claim(kind, o.Namespace, o.Name, d.src) {
		return
	}
	s := &Service{Namespace: o.Namespace, Name: o.Name, Selector: o.Spec.Selector, Source: d.src}
	for i, p := range o.Spec.Ports {
		if p.Port < 1 || p.Port > 65535 {
			l.errorf(d.src.At(fmt.Sprintf("spec.ports[%d].port", i)), object, "port %d is out of range 1-65535", p.Port)
			return
		}
		sp := ServicePort{Name: p.Name, Port: uint16(p.Port), Protocol: string(p.Protocol)}
		if sp.Protocol == "" {
			sp.Protocol = "TCP"
		}
		if p.AppProtocol != nil {
			sp.AppProtocol = *p.AppProtocol
		}
		switch {
		case p.TargetPort.StrVal != "":
			sp.TargetName = p.TargetPort.StrVal
		case p.TargetPort.IntVal != 0:
			sp.TargetPort = uint16(p.TargetPort.IntVal)
		default:
			sp.TargetPort = sp.Port
		}
		s.Ports = append(s.Ports, sp)
	}
	l.snap.Inventory.namespace(o.Namespace)
	l.snap.Inventory.Services = append(l.snap.Inventory.Services, s)
}
