package config

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxJSONNodes bounds how many nodes one document may expand to once YAML
// aliases are followed, so that an alias bomb is an error, not an outage.
const maxJSONNodes = 1 << 20

// jsonDoc is a YAML node rendered as compact JSON, with a record of which
// YAML line each JSON value came from, so that a decoder's byte offset can be
// turned back into a line the user wrote.
type jsonDoc struct {
	buf   []byte
	marks []mark // ascending by off
	nodes int
}

type mark struct{ off, line int }

// toJSON renders n as JSON. Duplicate mapping keys, non-scalar keys and
// values JSON cannot express are errors that name their line.
func toJSON(n *yaml.Node) (*jsonDoc, error) {
	d := &jsonDoc{}
	if err := d.value(n, 0); err != nil {
		return nil, err
	}
	return d, nil
}

// lineAt returns the YAML line of the JSON value that covers byte offset off.
func (d *jsonDoc) lineAt(off int) int {
	i := sort.Search(len(d.marks), func(i int) bool { return d.marks[i].off > off })
	if i == 0 {
		return 0
	}
	return d.marks[i-1].line
}

// lineError is an error at a known line of the current document.
type lineError struct {
	line int
	msg  string
}

func (e *lineError) Error() string { return e.msg }

func errAt(n *yaml.Node, format string, args ...any) error {
	return &lineError{line: n.Line, msg: fmt.Sprintf(format, args...)}
}

func (d *jsonDoc) value(n *yaml.Node, depth int) error {
	d.nodes++
	if d.nodes > maxJSONNodes {
		return errAt(n, "document expands to more than %d nodes (too many aliases?)", maxJSONNodes)
	}
	if depth > 1000 {
		return errAt(n, "document nests deeper than 1000 levels")
	}
	d.marks = append(d.marks, mark{off: len(d.buf), line: n.Line})
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			d.buf = append(d.buf, "null"...)
			return nil
		}
		return d.value(n.Content[0], depth+1)
	case yaml.AliasNode:
		if n.Alias == nil {
			return errAt(n, "unknown alias %q", n.Value)
		}
		return d.value(n.Alias, depth+1)
	case yaml.SequenceNode:
		d.buf = append(d.buf, '[')
		for i, c := range n.Content {
			if i > 0 {
				d.buf = append(d.buf, ',')
			}
			if err := d.value(c, depth+1); err != nil {
				return err
			}
		}
		d.buf = append(d.buf, ']')
		return nil
	case yaml.MappingNode:
		pairs, err := mappingPairs(n, 0)
		if err != nil {
			return err
		}
		d.buf = append(d.buf, '{')
		for i, p := range pairs {
			if i > 0 {
				d.buf = append(d.buf, ',')
			}
			d.buf = strconv.AppendQuote(d.buf, p.key.Value)
			d.buf = append(d.buf, ':')
			if err := d.value(p.value, depth+1); err != nil {
				return err
			}
		}
		d.buf = append(d.buf, '}')
		return nil
	case yaml.ScalarNode:
		return d.scalar(n)
	}
	return errAt(n, "unsupported YAML node")
}

func (d *jsonDoc) scalar(n *yaml.Node) error {
	switch n.ShortTag() {
	case "!!null":
		d.buf = append(d.buf, "null"...)
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return errAt(n, "invalid boolean %q", n.Value)
		}
		d.buf = strconv.AppendBool(d.buf, b)
	case "!!int":
		var v any
		if err := n.Decode(&v); err != nil {
			return errAt(n, "invalid integer %q", n.Value)
		}
		switch i := v.(type) {
		case int:
			d.buf = strconv.AppendInt(d.buf, int64(i), 10)
		case int64:
			d.buf = strconv.AppendInt(d.buf, i, 10)
		case uint64:
			d.buf = strconv.AppendUint(d.buf, i, 10)
		default:
			return errAt(n, "integer %q is out of range", n.Value)
		}
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return errAt(n, "invalid number %q", n.Value)
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return errAt(n, "number %q cannot be represented in JSON", n.Value)
		}
		b, _ := json.Marshal(f) // cannot fail for a finite float
		d.buf = append(d.buf, b...)
	default: // !!str, !!timestamp, !!binary and custom tags keep their text
		d.buf = strconv.AppendQuote(d.buf, n.Value)
	}
	return nil
}

type pair struct{ key, value *yaml.Node }

// mappingPairs returns the key/value pairs of a mapping, with YAML merge keys
// ("<<") expanded, keys written in the mapping itself winning over merged
// ones. A key written twice is an error: Kubernetes rejects it too.
func mappingPairs(n *yaml.Node, depth int) ([]pair, error) {
	if depth > 100 {
		return nil, errAt(n, "merge keys nest deeper than 100 levels")
	}
	var own, merged []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, errAt(k, "mapping key must be a string")
		}
		if k.ShortTag() == "!!merge" {
			m, err := mergeSources(v, depth+1)
			if err != nil {
				return nil, err
			}
			merged = append(merged, m...)
			if len(merged) > maxJSONNodes {
				return nil, errAt(k, "merge keys expand to more than %d entries", maxJSONNodes)
			}
			continue
		}
		if first, dup := seen[k.Value]; dup {
			return nil, errAt(k, "duplicate key %q (first at line %d)", k.Value, first.Line)
		}
		seen[k.Value] = k
		own = append(own, pair{k, v})
	}
	for _, p := range merged {
		if _, ok := seen[p.key.Value]; ok {
			continue
		}
		seen[p.key.Value] = p.key
		own = append(own, p)
	}
	return own, nil
}

func mergeSources(v *yaml.Node, depth int) ([]pair, error) {
	for v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	switch v.Kind {
	case yaml.MappingNode:
		return mappingPairs(v, depth+1)
	case yaml.SequenceNode:
		var out []pair
		for _, c := range v.Content {
			p, err := mergeSources(c, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, p...)
			if len(out) > maxJSONNodes {
				return nil, errAt(v, "merge keys expand to more than %d entries", maxJSONNodes)
			}
		}
		return out, nil
	}
	return nil, errAt(v, "merge key %q needs a mapping", strings.TrimSpace(v.Value))
}
