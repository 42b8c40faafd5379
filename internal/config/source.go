// Package config turns YAML and JSON documents into a Snapshot: typed,
// strictly decoded Istio resources plus the inventory of namespaces, service
// accounts, services and workloads they apply to. Every problem it finds is
// reported with the file, the document and the line it comes from.
package config

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Source says where a resource or a problem comes from.
type Source struct {
	File string // path as given, or "<stdin>"
	Doc  int    // 1-based index of the document within File
	Line int    // 1-based line; 0 when unknown

	root *yaml.Node // the document's root mapping, for field lookups
}

func (s Source) String() string {
	var b strings.Builder
	b.WriteString(s.File)
	if s.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(s.Line))
	}
	if s.Doc > 0 {
		fmt.Fprintf(&b, " (document %d)", s.Doc)
	}
	return b.String()
}

// At returns the source of the field at path within the document, for
// example "spec.rules[0].when[1].key". When the path cannot be followed all
// the way, the deepest node found is used, so the line is never worse than
// the document's own.
func (s Source) At(path string) Source {
	if s.root == nil || path == "" {
		return s
	}
	n := s.root
	for _, step := range splitPath(path) {
		next := child(n, step)
		if next == nil {
			break
		}
		n = next
	}
	s.Line = n.Line
	return s
}

// child returns the value at one path step: a mapping key, or "[i]" for a
// sequence index. For a mapping key, it returns the key node when the value
// is an empty collection so that the line points at the key.
func child(n *yaml.Node, step string) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if strings.HasPrefix(step, "[") && strings.HasSuffix(step, "]") {
		i, err := strconv.Atoi(step[1 : len(step)-1])
		if err != nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
			return nil
		}
		return n.Content[i]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == step {
			v := n.Content[i+1]
			if v.Line == 0 || (v.Kind != yaml.ScalarNode && len(v.Content) == 0) {
				return n.Content[i]
			}
			return v
		}
	}
	return nil
}

// splitPath splits "a.b[2].c" into "a", "b", "[2]", "c". Keys that contain
// dots or brackets (label keys such as "app.kubernetes.io/name") can be
// written as ["app.kubernetes.io/name"].
func splitPath(p string) []string {
	var steps []string
	for len(p) > 0 {
		switch {
		case p[0] == '.':
			p = p[1:]
		case strings.HasPrefix(p, `["`):
			end := strings.Index(p, `"]`)
			if end < 0 {
				return append(steps, p[2:])
			}
			steps = append(steps, p[2:end])
			p = p[end+2:]
		case p[0] == '[':
			end := strings.IndexByte(p, ']')
			if end < 0 {
				return append(steps, p)
			}
			steps = append(steps, p[:end+1])
			p = p[end+1:]
		default:
			end := strings.IndexAny(p, ".[")
			if end < 0 {
				end = len(p)
			}
			steps = append(steps, p[:end])
			p = p[end:]
		}
	}
	return steps
}

// Error is a problem found in the input, with where it was found.
type Error struct {
	Source Source
	Object string // "Kind namespace/name" when known
	Msg    string
}

func (e *Error) Error() string {
	if e.Object != "" {
		return fmt.Sprintf("%s: %s: %s", e.Source, e.Object, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Source, e.Msg)
}

// Note is something the loader did that the user may want to know, such as
// skipping a kind that is not Palisade's business.
type Note struct {
	Source Source
	Msg    string
}

func (n Note) String() string { return fmt.Sprintf("%s: %s", n.Source, n.Msg) }
