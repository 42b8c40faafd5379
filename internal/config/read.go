package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxInput bounds one file or stdin; policy sets are far smaller.
const maxInput = 64 << 20

// document is one non-empty YAML or JSON document of an input.
type document struct {
	src  Source
	root *yaml.Node // the document's content: a mapping for any object
}

// readPath reads a file, every .yaml/.yml/.json file under a directory
// (recursively, in lexical order), or stdin for "-".
func readPath(path string, stdin io.Reader) ([]document, []*Error) {
	if path == "-" {
		if stdin == nil {
			return nil, []*Error{{Source: Source{File: "<stdin>"}, Msg: "no standard input"}}
		}
		data, err := io.ReadAll(io.LimitReader(stdin, maxInput+1))
		if err != nil {
			return nil, []*Error{{Source: Source{File: "<stdin>"}, Msg: err.Error()}}
		}
		return splitDocuments("<stdin>", data)
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, []*Error{{Source: Source{File: path}, Msg: cleanPathError(err)}}
	}
	if !info.IsDir() {
		return readFile(path)
	}
	var docs []document
	var errs []*Error
	walkErr := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, &Error{Source: Source{File: p}, Msg: cleanPathError(err)})
			return nil
		}
		if d.IsDir() {
			if p != path && SkippedDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if SourceFile(p) {
			ds, es := readFile(p)
			docs = append(docs, ds...)
			errs = append(errs, es...)
		}
		return nil
	})
	if walkErr != nil {
		errs = append(errs, &Error{Source: Source{File: path}, Msg: walkErr.Error()})
	}
	return docs, errs
}

// SourceFile reports whether a file found in a directory is read:
// .yaml, .yml and .json files (a file named on its own is read whatever its
// name).
func SourceFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// SkippedDir reports whether a subdirectory is left out of a directory
// read: hidden ones, such as the ..data links of a ConfigMap volume.
func SkippedDir(name string) bool { return strings.HasPrefix(name, ".") }

func readFile(path string) ([]document, []*Error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, []*Error{{Source: Source{File: path}, Msg: cleanPathError(err)}}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxInput+1))
	if err != nil {
		return nil, []*Error{{Source: Source{File: path}, Msg: cleanPathError(err)}}
	}
	return splitDocuments(path, data)
}

// cleanPathError drops the path from err: the Source already names it.
func cleanPathError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// splitDocuments parses every document of a YAML or JSON stream. The stream
// is first cut at "---" lines so that a syntax error in one document is
// reported and the documents after it are still read; each part is parsed
// with its lines numbered as in the whole file.
func splitDocuments(name string, data []byte) ([]document, []*Error) {
	if len(data) > maxInput {
		return nil, []*Error{{Source: Source{File: name}, Msg: fmt.Sprintf("input is larger than %d bytes", maxInput)}}
	}
	var docs []document
	var errs []*Error
	index := 0
	for _, part := range splitStream(data) {
		dec := yaml.NewDecoder(bytes.NewReader(part.text))
		shift := part.line - 1 // the parser counts lines from the part's start
		for {
			var n yaml.Node
			err := dec.Decode(&n)
			if err == io.EOF {
				break
			}
			if err != nil {
				index++
				line, msg := yamlErrorLine(err)
				if line == 0 {
					line = part.line
				} else {
					line += shift
				}
				msg = lineRef.ReplaceAllStringFunc(msg, func(ref string) string {
					n, _ := strconv.Atoi(ref[len("line "):])
					return fmt.Sprintf("line %d", n+shift)
				})
				errs = append(errs, &Error{Source: Source{File: name, Doc: index, Line: line}, Msg: "invalid YAML: " + msg})
				break
			}
			shiftLines(&n, shift)
			root := deref(&n)
			if root.Kind == 0 || isNull(root) || (root.Kind == yaml.DocumentNode && len(root.Content) == 0) {
				continue // empty document: only comments or "---"
			}
			index++
			src := Source{File: name, Doc: index, Line: root.Line}
			if root.Kind != yaml.MappingNode {
				errs = append(errs, &Error{Source: src, Msg: fmt.Sprintf("document is %s, expected a mapping with apiVersion and kind", describe(root))})
				continue
			}
			src.root = root
			docs = append(docs, document{src: src, root: root})
		}
	}
	return docs, errs
}

// lineRef is a line number inside a parser message ("already defined at
// line 3").
var lineRef = regexp.MustCompile(`line [0-9]+`)

// shiftLines moves a parsed tree's line numbers by shift. Aliases are not
// followed: their anchors are in the tree once.
func shiftLines(n *yaml.Node, shift int) {
	if shift == 0 {
		return
	}
	n.Line += shift
	for _, c := range n.Content {
		shiftLines(c, shift)
	}
}

type streamPart struct {
	line int // 1-based line of the part's first line
	text []byte
}

// splitStream cuts data before every line that starts a new document ("---"
// alone or followed by a space or tab).
func splitStream(data []byte) []streamPart {
	var parts []streamPart
	start, startLine, line := 0, 1, 1
	// Directives (%YAML, %TAG) belong to the document their "---" starts:
	// dirOff and dirLine mark the run of directive lines just before it.
	dirOff, dirLine := -1, 0
	for off := 0; off < len(data); {
		end := bytes.IndexByte(data[off:], '\n')
		next := len(data)
		if end >= 0 {
			next = off + end + 1
		}
		l := bytes.TrimRight(data[off:next], "\r\n")
		switch {
		case bytes.HasPrefix(l, []byte("%")):
			if dirOff < 0 {
				dirOff, dirLine = off, line
			}
		case bytes.Equal(l, []byte("---")) || bytes.HasPrefix(l, []byte("--- ")) || bytes.HasPrefix(l, []byte("---\t")):
			cut, cutLine := off, line
			if dirOff >= 0 {
				cut, cutLine = dirOff, dirLine
			}
			if cut > start {
				parts = append(parts, streamPart{line: startLine, text: data[start:cut]})
				start, startLine = cut, cutLine
			}
			dirOff = -1
		default:
			dirOff = -1
		}
		off = next
		line++
	}
	return append(parts, streamPart{line: startLine, text: data[start:]})
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlErrorLine extracts the line from a YAML error. The parser counts the
// lines of its own errors ("did not find expected ...", "found duplicate
// ...") from zero, unlike the scanner, so those are moved down by one.
func yamlErrorLine(err error) (int, string) {
	msg := err.Error()
	m := yamlLine.FindStringSubmatch(msg)
	if m == nil {
		return 0, strings.TrimPrefix(msg, "yaml: ")
	}
	n, _ := strconv.Atoi(m[1])
	msg = msg[len(m[0]):]
	if strings.HasPrefix(msg, "did not find expected") || strings.HasPrefix(msg, "found duplicate") ||
		strings.HasPrefix(msg, "found incompatible") || strings.HasPrefix(msg, "found undefined") {
		n++
	}
	return n, msg
}
