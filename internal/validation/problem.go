package validation

import (
	"fmt"
	"strings"
)

// Problem is one finding: Path names the field within the object, in the
// form "spec.rules[0].from[1].source.principals" or "metadata.annotations"
// ("spec" when no finer field applies); Msg is istiod's message (or the API
// server's, for schema findings); Warning is true for istiod's admission
// warnings, which do not reject the object.
type Problem struct {
	Path    string
	Msg     string
	Warning bool
}

func (p Problem) String() string {
	kind := "error"
	if p.Warning {
		kind = "warning"
	}
	return fmt.Sprintf("%s: %s: %s", kind, p.Path, p.Msg)
}

// report accumulates problems in the order the checks run, which is the
// order istiod would list them.
type report struct {
	problems []Problem
}

func (r *report) err(path, msg string) {
	r.problems = append(r.problems, Problem{Path: path, Msg: msg})
}

func (r *report) errf(path, format string, args ...any) {
	r.err(path, fmt.Sprintf(format, args...))
}

func (r *report) warn(path, msg string) {
	r.problems = append(r.problems, Problem{Path: path, Msg: msg, Warning: true})
}

// findings adds each positioned finding under list, the path of the list
// the finding's index points into.
func (r *report) findings(list string, fs []finding) {
	for _, f := range fs {
		r.err(f.path(list), f.msg)
	}
}

// finding is a message about one element of a string list (index >= 0) or
// about the list, or the key that owns it, as a whole (index < 0). The
// helpers that mirror pkg/config/security return findings rather than
// errors so that each Problem can point at the offending element.
type finding struct {
	index int
	msg   string
}

func (f finding) path(list string) string {
	if f.index < 0 {
		return list
	}
	return at(list, f.index)
}

// at is the path of element i of the list at path.
func at(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// key is the path of the map entry k of the map at path.
func key(path, k string) string { return path + "[" + k + "]" }

// Messages for schema (CRD) violations. The API server formats them with
// k8s.io/apimachinery field.Error.ErrorBody; the leading field path is left
// out because Problem.Path carries it.

func schemaTooMany(n, max int) string {
	return fmt.Sprintf("Too many: %d: must have at most %d items", n, max)
}

func schemaTooLong(max int) string {
	return fmt.Sprintf("Too long: may not be more than %d bytes", max)
}

const schemaRequired = "Required value"

func schemaTooShort(v string, min int) string {
	return fmt.Sprintf("Invalid value: %q: should be at least %d chars long", v, min)
}

func schemaPattern(v, pattern string) string {
	return fmt.Sprintf("Invalid value: %q: should match '%s'", v, pattern)
}

func schemaMaximum(v int64, max int64) string {
	return fmt.Sprintf("Invalid value: %d: should be less than or equal to %d", v, max)
}

func schemaMinimum(v int64, min int64) string {
	return fmt.Sprintf("Invalid value: %d: should be greater than or equal to %d", v, min)
}

func schemaUnsupported(v int32, names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = fmt.Sprintf("%q", n)
	}
	return fmt.Sprintf("Unsupported value: %d: supported values: %s", v, strings.Join(quoted, ", "))
}
