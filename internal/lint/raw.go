package lint

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/palisade-security/palisade/internal/config"
)

// rawDoc is one YAML document as written. The loader keeps only the kinds
// policy depends on; lint also reads what the loader skips, such as the
// Prometheus rule files inside ConfigMaps and the keys of a Cilium values
// file that do not change policy.
type rawDoc struct {
	file string
	doc  int // 1-based, counted as the loader counts: non-empty documents
	root *yaml.Node
}

func (d *rawDoc) source(line int) Source { return Source{File: d.file, Line: line, Document: d.doc} }

// readRaw reads the documents of every path the way the loader walks them.
// Documents that do not parse are skipped: the loader reports them.
func readRaw(paths []string, stdin []byte) []rawDoc {
	var out []rawDoc
	for _, p := range paths {
		if p == "-" {
			out = append(out, parseRaw("<stdin>", stdin)...)
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			continue
		}
		if !info.IsDir() {
			out = append(out, readRawFile(p)...)
			continue
		}
		_ = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() {
				if q != p && config.SkippedDir(d.Name()) {
					return filepath.SkipDir
				}
				return nil
			}
			if config.SourceFile(q) {
				out = append(out, readRawFile(q)...)
			}
			return nil
		})
	}
	return out
}

func readRawFile(path string) []rawDoc {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return parseRaw(path, data)
}

func parseRaw(name string, data []byte) []rawDoc {
	var out []rawDoc
	dec := yaml.NewDecoder(bytes.NewReader(data))
	index := 0
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if err == io.EOF || err != nil {
			break
		}
		root := deref(&n)
		if root == nil || root.Kind == 0 || (root.Kind == yaml.ScalarNode && root.Tag == "!!null") {
			continue
		}
		index++
		if root.Kind != yaml.MappingNode {
			continue
		}
		out = append(out, rawDoc{file: name, doc: index, root: root})
	}
	return out
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && (n.Kind == yaml.DocumentNode || n.Kind == yaml.AliasNode) {
		if n.Kind == yaml.DocumentNode {
			if len(n.Content) == 0 {
				return nil
			}
			n = n.Content[0]
		} else {
			n = n.Alias
		}
	}
	return n
}

// field returns the value of key in a mapping, or nil.
func field(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return deref(m.Content[i+1])
		}
	}
	return nil
}

// keyNode returns the key node of key in a mapping, for its line.
func keyNode(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i]
		}
	}
	return nil
}

func scalar(m *yaml.Node, key string) string {
	n := field(m, key)
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

// kindOf is the document's kind, or "" for a document that is not a
// Kubernetes object.
func (d *rawDoc) kindOf() string { return scalar(d.root, "kind") }

// objectName is "namespace/name" of a Kubernetes object; the namespace is
// "default" when metadata gives none, as the API server defaults it.
func (d *rawDoc) objectName() string {
	md := field(d.root, "metadata")
	ns := scalar(md, "namespace")
	if ns == "" {
		ns = "default"
	}
	return ns + "/" + scalar(md, "name")
}
