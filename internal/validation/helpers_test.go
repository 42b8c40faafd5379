package validation

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// decode builds a spec from its protojson form, the way the loader does.
func decode[M proto.Message](t *testing.T, m M, doc string) M {
	t.Helper()
	if doc == "" {
		return m
	}
	if err := protojson.Unmarshal([]byte(doc), m); err != nil {
		t.Fatalf("bad test spec %s: %v", doc, err)
	}
	return m
}

// testMeta is the metadata upstream's tables use: name "name", namespace
// "namespace".
func testMeta(annotations map[string]string) *metav1.ObjectMeta {
	return &metav1.ObjectMeta{Name: "name", Namespace: "namespace", Annotations: annotations}
}

// expect is what a row asserts about a report.
type expect struct {
	valid bool      // no error-level problem
	warn  bool      // at least one warning
	want  []Problem // each of these is reported (Path, Msg, Warning all equal)
	only  bool      // and nothing else is
}

func checkReport(t *testing.T, got []Problem, e expect) {
	t.Helper()
	var errs, warns int
	for _, p := range got {
		if p.Warning {
			warns++
		} else {
			errs++
		}
		if p.Path == "" || p.Msg == "" {
			t.Errorf("problem with empty path or message: %#v", p)
		}
	}
	dump := func() string {
		var b strings.Builder
		for _, p := range got {
			b.WriteString("\n\t" + p.String())
		}
		return b.String()
	}
	if (errs == 0) != e.valid {
		t.Errorf("valid = %v, want %v; problems:%s", errs == 0, e.valid, dump())
	}
	if (warns > 0) != e.warn {
		t.Errorf("warning = %v, want %v; problems:%s", warns > 0, e.warn, dump())
	}
	for _, w := range e.want {
		found := false
		for _, p := range got {
			if p == w {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("missing %s; problems:%s", w, dump())
		}
	}
	if e.only && len(got) != len(e.want) {
		t.Errorf("got %d problems, want exactly %d:%s", len(got), len(e.want), dump())
	}
}

func errAt(path, msg string) Problem  { return Problem{Path: path, Msg: msg} }
func warnAt(path, msg string) Problem { return Problem{Path: path, Msg: msg, Warning: true} }
