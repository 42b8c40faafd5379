package netpol

import (
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type op uint8

const (
	opIn op = iota
	opNotIn
	opExists
	opDoesNotExist
)

// requirement is one term of a label selector over Cilium labels.
type requirement struct {
	source, key string
	op          op
	values      []string
}

// selector is a compiled label selector. All requirements must hold; a
// selector without requirements selects every identity.
type selector struct {
	reqs []requirement
	text string // as written, for traces
}

// compileSelector compiles a Kubernetes label selector whose keys may carry
// a Cilium label source ("k8s:app", "reserved:world"); a key without one
// matches that key from any source (pkg/labels: any:foo=bar intersects
// k8s:foo=bar).
func compileSelector(s *metav1.LabelSelector) (selector, error) {
	var sel selector
	if s == nil {
		return sel, nil
	}
	keys := make([]string, 0, len(s.MatchLabels))
	for k := range s.MatchLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		src, key := parseKey(k)
		sel.reqs = append(sel.reqs, requirement{source: src, key: key, op: opIn, values: []string{s.MatchLabels[k]}})
	}
	for _, e := range s.MatchExpressions {
		src, key := parseKey(e.Key)
		r := requirement{source: src, key: key, values: e.Values}
		switch e.Operator {
		case metav1.LabelSelectorOpIn:
			r.op = opIn
		case metav1.LabelSelectorOpNotIn:
			r.op = opNotIn
		case metav1.LabelSelectorOpExists:
			r.op = opExists
		case metav1.LabelSelectorOpDoesNotExist:
			r.op = opDoesNotExist
		default:
			return sel, fmt.Errorf("unknown operator %q", e.Operator)
		}
		sel.reqs = append(sel.reqs, r)
	}
	sel.text = selectorText(s)
	return sel, nil
}

func selectorText(s *metav1.LabelSelector) string {
	if s == nil || (len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0) {
		return "{}"
	}
	return metav1.FormatLabelSelector(s)
}

// has reports whether the selector constrains key (from the k8s or any
// source), which decides whether Cilium adds a namespace to it.
func (s *selector) has(key string) bool {
	for _, r := range s.reqs {
		if r.key == key && (r.source == sourceK8s || r.source == sourceAny) {
			return true
		}
	}
	return false
}

func (s *selector) hasPrefix(prefix string) bool {
	for _, r := range s.reqs {
		if strings.HasPrefix(r.key, prefix) && (r.source == sourceK8s || r.source == sourceAny) {
			return true
		}
	}
	return false
}

func (s *selector) reservedOnly() bool {
	for _, r := range s.reqs {
		if r.source == sourceReserved {
			return true
		}
	}
	return false
}

// withNamespace adds "in namespace ns", as Cilium does for the selectors of
// a namespaced policy (pkg/k8s/apis/cilium.io/utils: getEndpointSelector).
func (s selector) withNamespace(ns string) selector {
	s.reqs = append(append([]requirement{}, s.reqs...), requirement{source: sourceK8s, key: labelNamespace, op: opIn, values: []string{ns}})
	return s
}

// withAnyNamespace requires a namespace label, as Cilium does for the
// selectors of a clusterwide policy: only pods have one.
func (s selector) withAnyNamespace() selector {
	s.reqs = append(append([]requirement{}, s.reqs...), requirement{source: sourceK8s, key: labelNamespace, op: opExists})
	return s
}

// withoutNamespace drops requirements on the pod namespace: Cilium
// overrides them in a namespaced policy's endpointSelector.
func (s selector) withoutNamespace() selector {
	var reqs []requirement
	for _, r := range s.reqs {
		if r.key != labelNamespace {
			reqs = append(reqs, r)
		}
	}
	s.reqs = reqs
	return s
}

// namespace returns the one namespace the selector is confined to, or "".
func (s *selector) namespace() string {
	for _, r := range s.reqs {
		if r.key == labelNamespace && r.op == opIn && len(r.values) == 1 && (r.source == sourceK8s || r.source == sourceAny) {
			return r.values[0]
		}
	}
	return ""
}

// matches reports whether the labels satisfy every requirement.
func (s *selector) matches(ls Labels) bool {
	for i := range s.reqs {
		if !s.reqs[i].matches(ls) {
			return false
		}
	}
	return true
}

func (r *requirement) matches(ls Labels) bool {
	found, in := false, false
	for _, l := range ls {
		if l.key != r.key || (r.source != sourceAny && l.source != r.source) {
			continue
		}
		found = true
		for _, v := range r.values {
			if l.value == v {
				in = true
			}
		}
	}
	switch r.op {
	case opIn:
		return in
	case opNotIn:
		return !in
	case opExists:
		return found
	}
	return !found
}
