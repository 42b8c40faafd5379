package validation

import (
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	typev1beta1 "istio.io/api/type/v1beta1"
)

// Workload selection shared by AuthorizationPolicy, RequestAuthentication,
// PeerAuthentication and DestinationRule.workloadSelector: istiod's
// validateOneOfSelectorType, validateWorkloadSelector and
// validatePolicyTargetReference(s), and the CRD schema's matching rules.

// oneOfSelector is validateOneOfSelectorType: a policy binds either by
// workload labels or by reference, never both, since the two select
// different proxies. An empty `selector: {}` still counts as set.
func oneOfSelector(r *report, selector *typev1beta1.WorkloadSelector, ref *typev1beta1.PolicyTargetReference, refs []*typev1beta1.PolicyTargetReference) {
	if countSet(selector != nil, ref != nil, len(refs) > 0) > 1 {
		r.err("spec", "only one of targetRefs or workloadSelector can be set")
	}
}

func countSet(set ...bool) int {
	n := 0
	for _, s := range set {
		if s {
			n++
		}
	}
	return n
}

// workloadSelector is validateWorkloadSelector. Labels are checked in key
// order so that the report is stable (istiod walks a Go map). A selector with
// no labels is legal but selects every workload, which is rarely meant, so it
// is only a warning.
func workloadSelector(r *report, path string, sel *typev1beta1.WorkloadSelector) {
	if sel == nil {
		return
	}
	labels := path + ".matchLabels"
	for _, k := range sortedKeys(sel.GetMatchLabels()) {
		v := sel.GetMatchLabels()[k]
		if k == "" {
			r.errf(key(labels, k), "empty key is not supported in selector: %q", k+"="+v)
		}
		if strings.Contains(k, "*") || strings.Contains(v, "*") {
			r.errf(key(labels, k), "wildcard is not supported in selector: %q", k+"="+v)
		}
	}
	if len(sel.GetMatchLabels()) == 0 {
		r.warn(path, "workload selector specified without labels")
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// allowedTargetRefs are the kinds a policy may target, by canonical group
// ("" is "core"); istiod prints them with their version.
var allowedTargetRefs = []struct{ group, version, kind string }{
	{"core", "v1", "Service"},
	{"networking.istio.io", "v1", "ServiceEntry"},
	{"gateway.networking.k8s.io", "v1", "Gateway"},
	{"gateway.networking.k8s.io", "v1", "GatewayClass"},
}

// targetRef is validatePolicyTargetReference. References stay within the
// policy's namespace because istiod resolves them only there.
func targetRef(r *report, path string, ref *typev1beta1.PolicyTargetReference) {
	if ref == nil {
		return
	}
	if ref.GetName() == "" {
		r.err(path+".name", "targetRef name must be set")
	}
	if ref.GetNamespace() != "" {
		r.err(path+".namespace", "targetRef namespace must not be set; cross namespace referencing is not supported")
	}
	group := ref.GetGroup()
	if group == "" {
		group = "core"
	}
	names := make([]string, len(allowedTargetRefs))
	allowed := false
	for i, a := range allowedTargetRefs {
		names[i] = a.group + "/" + a.version + "/" + a.kind
		if a.group == group && a.kind == ref.GetKind() {
			allowed = true
		}
	}
	if !allowed {
		r.errf(path, "targetRef must be to one of [%s] but was %s/%s", strings.Join(names, " "), ref.GetGroup(), ref.GetKind())
	}
}

func targetRefs(r *report, path string, refs []*typev1beta1.PolicyTargetReference) {
	for i, ref := range refs {
		targetRef(r, at(path, i), ref)
	}
}

// Schema limits on selectors and target references (istio/api CRDs).
const (
	maxMatchLabels     = 4096
	maxLabelValueLen   = 63
	maxTargetRefs      = 16
	maxTargetRefGroup  = 253
	maxTargetRefKind   = 63
	maxTargetRefName   = 253
	targetGroupPattern = `^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	targetKindPattern  = `^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`
)

var (
	targetGroupRE = regexp.MustCompile(targetGroupPattern)
	targetKindRE  = regexp.MustCompile(targetKindPattern)
)

// schemaOneOfSelector is the spec-level CEL rule of the policy CRDs. It
// duplicates oneOfSelector with the API server's wording.
func schemaOneOfSelector(r *report, selector *typev1beta1.WorkloadSelector, ref *typev1beta1.PolicyTargetReference, refs []*typev1beta1.PolicyTargetReference) {
	if countSet(selector != nil, ref != nil, len(refs) > 0) > 1 {
		r.err("spec", "only one of targetRefs or selector can be set")
	}
}

// schemaSelector applies the CRD's matchLabels limits. The key rules are CEL
// over the whole map, so each fires once however many keys break it.
func schemaSelector(r *report, path string, sel *typev1beta1.WorkloadSelector) {
	m := sel.GetMatchLabels()
	if len(m) == 0 {
		return
	}
	labels := path + ".matchLabels"
	if len(m) > maxMatchLabels {
		r.err(labels, schemaTooMany(len(m), maxMatchLabels))
	}
	keys := sortedKeys(m)
	if slices.ContainsFunc(keys, func(k string) bool { return strings.Contains(k, "*") }) {
		r.err(labels, "wildcard not allowed in label key match")
	}
	if slices.Contains(keys, "") {
		r.err(labels, "key must not be empty")
	}
	for _, k := range keys {
		v := m[k]
		if utf8.RuneCountInString(v) > maxLabelValueLen {
			r.err(key(labels, k), schemaTooLong(maxLabelValueLen))
		}
		if strings.Contains(v, "*") {
			r.err(key(labels, k), "wildcard not allowed in label value match")
		}
	}
}

// schemaTargetRef applies the CRD's PolicyTargetReference schema, which is
// shape-only; which kinds are allowed is istiod's business.
func schemaTargetRef(r *report, path string, ref *typev1beta1.PolicyTargetReference) {
	if ref == nil {
		return
	}
	if g := ref.GetGroup(); utf8.RuneCountInString(g) > maxTargetRefGroup {
		r.err(path+".group", schemaTooLong(maxTargetRefGroup))
	} else if !targetGroupRE.MatchString(g) {
		r.err(path+".group", schemaPattern(g, targetGroupPattern))
	}
	switch k := ref.GetKind(); {
	case k == "":
		r.err(path+".kind", schemaRequired)
	case utf8.RuneCountInString(k) > maxTargetRefKind:
		r.err(path+".kind", schemaTooLong(maxTargetRefKind))
	case !targetKindRE.MatchString(k):
		r.err(path+".kind", schemaPattern(k, targetKindPattern))
	}
	switch n := ref.GetName(); {
	case n == "":
		r.err(path+".name", schemaRequired)
	case utf8.RuneCountInString(n) > maxTargetRefName:
		r.err(path+".name", schemaTooLong(maxTargetRefName))
	}
	if ref.GetNamespace() != "" {
		r.err(path+".namespace", "cross namespace referencing is not currently supported")
	}
}

func schemaTargetRefs(r *report, path string, refs []*typev1beta1.PolicyTargetReference) {
	if len(refs) > maxTargetRefs {
		r.err(path, schemaTooMany(len(refs), maxTargetRefs))
	}
	for i, ref := range refs {
		schemaTargetRef(r, at(path, i), ref)
	}
}

// schemaPolicyTarget runs every schema rule on a policy's selection fields.
func schemaPolicyTarget(r *report, selector *typev1beta1.WorkloadSelector, ref *typev1beta1.PolicyTargetReference, refs []*typev1beta1.PolicyTargetReference) {
	schemaOneOfSelector(r, selector, ref, refs)
	schemaSelector(r, "spec.selector", selector)
	schemaTargetRef(r, "spec.targetRef", ref)
	schemaTargetRefs(r, "spec.targetRefs", refs)
}

// policyTarget runs istiod's checks on a policy's selection fields, in the
// order ValidateAuthorizationPolicy and ValidateRequestAuthentication use.
func policyTarget(r *report, selector *typev1beta1.WorkloadSelector, ref *typev1beta1.PolicyTargetReference, refs []*typev1beta1.PolicyTargetReference) {
	oneOfSelector(r, selector, ref, refs)
	workloadSelector(r, "spec.selector", selector)
	targetRef(r, "spec.targetRef", ref)
	targetRefs(r, "spec.targetRefs", refs)
}
