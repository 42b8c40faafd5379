package cilium

import (
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Label sources and keys Cilium gives special meaning to
// (pkg/labels, pkg/k8s/apis/cilium.io/utils/utils.go).
const (
	sourceAny      = "any"
	sourceReserved = "reserved"

	// podNamespaceLabel is the label carrying a pod's namespace.
	podNamespaceLabel = "io.kubernetes.pod.namespace"
	// extPodNamespaceK8s is that label's extended key with the k8s source,
	// the key getEndpointSelector forces in a CNP's endpointSelector.
	extPodNamespaceK8s = "k8s." + podNamespaceLabel
	extPodNamespaceAny = sourceAny + "." + podNamespaceLabel
	extReservedInit    = sourceReserved + ".init"
)

// ciliumExtendedKey returns the key Cilium stores and validates for a
// selector key written in a policy (labels.GetExtendedKeyFrom): the source
// before the first ':' ("any" when there is none; "reserved" for a leading
// '$' or a "reserved." prefix), a dot, then the key with anything from the
// first '=' on dropped. "k8s:app" becomes "k8s.app" and "app" becomes
// "any.app".
func ciliumExtendedKey(k string) string {
	src, next := "", k
	switch {
	case k == "":
	case k[0] == '$':
		src, next = sourceReserved, k[1:]
	default:
		if i := strings.IndexByte(k, ':'); i >= 0 {
			src, next = k[:i], k[i+1:]
		} else if rest, ok := strings.CutPrefix(k, sourceReserved+"."); ok {
			src, next = sourceReserved, rest
		}
	}
	if src == "" {
		src = sourceAny
	}
	if i := strings.IndexByte(next, '='); i >= 0 {
		next = next[:i]
	}
	return src + "." + next
}

// validateCiliumSelector checks a Cilium endpoint or node selector the way
// EndpointSelector.Validate does: the Kubernetes label-selector rules
// applied to the extended keys (so "k8s:app" is checked as "k8s.app"), with
// invalid label values not allowed.
func validateCiliumSelector(r *report, path string, sel *metav1.LabelSelector) {
	validateSelector(r, path, sel, ciliumExtendedKey)
}

// validateK8sSelector checks a plain Kubernetes label selector
// (metav1validation.ValidateLabelSelector with
// AllowInvalidLabelValueInSelector=false), reporting in a stable order.
func validateK8sSelector(r *report, path string, sel *metav1.LabelSelector) {
	validateSelector(r, path, sel, nil)
}

func validateSelector(r *report, path string, sel *metav1.LabelSelector, xform func(string) string) {
	if sel == nil {
		return
	}
	checkKey := func(p, k string) {
		ext := k
		if xform != nil {
			ext = xform(k)
		}
		for _, msg := range content.IsLabelKey(ext) {
			if ext != k {
				r.errorf(p, "invalid label key %q (checked as %q): %s", k, ext, msg)
			} else {
				r.errorf(p, "invalid label key %q: %s", k, msg)
			}
		}
	}
	checkValue := func(p, v string) {
		for _, msg := range content.IsLabelValue(v) {
			r.errorf(p, "invalid label value %q: %s", v, msg)
		}
	}
	mlPath := child(path, "matchLabels")
	keys := make([]string, 0, len(sel.MatchLabels))
	for k := range sel.MatchLabels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := key(mlPath, k)
		checkKey(p, k)
		checkValue(p, sel.MatchLabels[k])
	}
	for i, req := range sel.MatchExpressions {
		p := index(child(path, "matchExpressions"), i)
		switch req.Operator {
		case metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn:
			if len(req.Values) == 0 {
				r.errorf(child(p, "values"), "must be specified when `operator` is 'In' or 'NotIn'")
			}
		case metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist:
			if len(req.Values) > 0 {
				r.errorf(child(p, "values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
			}
		default:
			r.errorf(child(p, "operator"), "unsupported value %q: supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\"", req.Operator)
		}
		checkKey(child(p, "key"), req.Key)
		for j, v := range req.Values {
			checkValue(index(child(p, "values"), j), v)
		}
	}
}

// selectorHasExtKey reports whether sel names the extended key ext in its
// matchLabels or matchExpressions (EndpointSelector.HasKey).
func selectorHasExtKey(sel *metav1.LabelSelector, ext string) bool {
	for k := range sel.MatchLabels {
		if ciliumExtendedKey(k) == ext {
			return true
		}
	}
	for _, req := range sel.MatchExpressions {
		if ciliumExtendedKey(req.Key) == ext {
			return true
		}
	}
	return false
}
