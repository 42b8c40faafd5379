package validation

import (
	"fmt"
	"strconv"

	securityv1beta1 "istio.io/api/security/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Annotations istiod's validateMetadata looks at.
const (
	annotationDryRun          = "istio.io/dry-run"
	annotationAlwaysReject    = "internal.istio.io/webhook-always-reject"
	annotationParentNamespace = "internal.istio.io/parent-namespace"
	annotationParents         = "internal.istio.io/parents"
)

const pathAnnotations = "metadata.annotations"

// metadata runs istiod's validateMetadata, which wraps every kind's
// validator. authz is the spec when the object is an AuthorizationPolicy
// (the only kind that may carry the dry-run annotation) and nil otherwise.
// It reports whether it found a problem; istiod then returns at once, so the
// kind's own checks must not run.
func metadata(r *report, meta *metav1.ObjectMeta, authz *securityv1beta1.AuthorizationPolicy) bool {
	if meta == nil {
		return false
	}
	ann := meta.Annotations
	if v, ok := ann[annotationDryRun]; ok {
		if msg := dryRun(meta, v, authz); msg != "" {
			r.err(pathAnnotations, msg)
			return true
		}
	}
	if _, ok := ann[annotationAlwaysReject]; ok {
		r.errf(pathAnnotations, "%q annotation found, rejecting", annotationAlwaysReject)
		return true
	}
	// These two mark resources istiod generates internally; letting a user
	// set them would let a resource claim another namespace's authority.
	for _, a := range []string{annotationParentNamespace, annotationParents} {
		if _, ok := ann[a]; ok {
			r.errf(pathAnnotations, "%q annotation found, this may not be set by users", a)
			return true
		}
	}
	return false
}

// dryRun is checkDryRunAnnotation: dry-run is only implemented for
// AuthorizationPolicy, and there only for ALLOW and DENY, whose value must be
// a Go boolean.
func dryRun(meta *metav1.ObjectMeta, value string, authz *securityv1beta1.AuthorizationPolicy) string {
	ref := meta.Namespace + "/" + meta.Name
	if authz == nil {
		return fmt.Sprintf("%s has unsupported annotation %s, please remove the annotation", ref, annotationDryRun)
	}
	switch authz.GetAction() {
	case securityv1beta1.AuthorizationPolicy_ALLOW, securityv1beta1.AuthorizationPolicy_DENY:
		if _, err := strconv.ParseBool(value); err != nil {
			return fmt.Sprintf("%s has annotation %s with invalid value (%s): %v", ref, annotationDryRun, value, err)
		}
		return ""
	default:
		return fmt.Sprintf("the annotation %s currently only supports action ALLOW/DENY, found action %s in %s",
			annotationDryRun, authz.GetAction(), ref)
	}
}
