package cilium

import (
	"fmt"
	"strconv"
)

// Problem is one finding of ValidateRule or ValidateNetworkPolicy.
//
// Path is relative to the validated object, in the document's own
// (camelCase) field names, e.g. "ingress[0].toPorts[1].ports[0].port"; an
// empty Path means the object itself. Callers add their own prefix ("spec",
// "specs[2]") with PrefixProblems.
//
// Warning is false when Cilium or the API server would reject the document,
// and true when it is accepted but part of it is ignored, overridden or
// depends on a non-default agent setting.
type Problem struct {
	Path    string
	Msg     string
	Warning bool
}

// String renders the problem as "path: msg", with a "warning: " prefix for
// warnings.
func (p Problem) String() string {
	s := p.Msg
	if p.Path != "" {
		s = p.Path + ": " + s
	}
	if p.Warning {
		s = "warning: " + s
	}
	return s
}

// PrefixProblems returns ps with prefix joined in front of every path
// ("spec" + "ingress[0]" gives "spec.ingress[0]", "spec" + "" gives
// "spec"). The input slice is not modified.
func PrefixProblems(prefix string, ps []Problem) []Problem {
	if len(ps) == 0 {
		return nil
	}
	out := make([]Problem, len(ps))
	for i, p := range ps {
		p.Path = joinPath(prefix, p.Path)
		out[i] = p
	}
	return out
}

// joinPath joins two path fragments with a dot, leaving index suffixes
// ("[3]") and empty fragments alone.
func joinPath(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	case b[0] == '[':
		return a + b
	}
	return a + "." + b
}

// child returns path.field.
func child(path, field string) string { return joinPath(path, field) }

// index returns path[i].
func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// key returns path["k"], for map keys, which may contain dots and slashes.
func key(path, k string) string { return path + "[" + strconv.Quote(k) + "]" }

// report collects problems.
type report struct{ probs []Problem }

func (r *report) errorf(path, format string, args ...any) {
	r.probs = append(r.probs, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (r *report) warnf(path, format string, args ...any) {
	r.probs = append(r.probs, Problem{Path: path, Msg: fmt.Sprintf(format, args...), Warning: true})
}
