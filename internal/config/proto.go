package config

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// decodeProto strictly decodes the YAML node n into msg, the way the
// Kubernetes API server and istiod read an Istio resource's spec: an unknown
// field, a value of the wrong type or an unknown enum name is an error. All
// such problems are returned, each with its line; path names n within the
// document, such as "spec".
//
// The walk over n exists for the messages and lines; the decode itself is
// protojson's, so what is accepted is exactly what protojson accepts.
func decodeProto(n *yaml.Node, path string, msg proto.Message) []error {
	var errs []error
	checkMessage(n, msg.ProtoReflect().Descriptor(), path, &errs)
	if len(errs) > 0 {
		return errs
	}
	doc, err := toJSON(n)
	if err != nil {
		return []error{err}
	}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(doc.buf, msg); err != nil {
		line := n.Line
		if m := protojsonPos.FindStringSubmatch(err.Error()); m != nil {
			if col, cerr := strconv.Atoi(m[1]); cerr == nil {
				line = doc.lineAt(col - 1)
			}
		}
		msg := protojsonPos.ReplaceAllString(strings.TrimPrefix(err.Error(), "proto: "), "")
		return []error{&lineError{line: line, msg: fmt.Sprintf("%s: %s", path, strings.TrimSpace(msg))}}
	}
	return nil
}

var protojsonPos = regexp.MustCompile(`\(line 1:(\d+)\):?`)

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		return n.Content[0]
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func checkMessage(n *yaml.Node, md protoreflect.MessageDescriptor, path string, errs *[]error) {
	n = deref(n)
	if isNull(n) {
		return
	}
	if wkt(md, n, path, errs) {
		return
	}
	if n.Kind != yaml.MappingNode {
		*errs = append(*errs, errAt(n, "%s: expected a mapping (%s), got %s", path, md.Name(), describe(n)))
		return
	}
	pairs, err := mappingPairs(n, 0)
	if err != nil {
		*errs = append(*errs, err)
		return
	}
	oneofs := map[protoreflect.FullName]string{}
	for _, p := range pairs {
		name := p.key.Value
		fd := md.Fields().ByJSONName(name)
		if fd == nil {
			fd = md.Fields().ByTextName(name)
		}
		fpath := joinPath(path, name)
		if fd == nil {
			*errs = append(*errs, errAt(p.key, "%s: unknown field %q in %s", fpath, name, md.Name()))
			continue
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() && !isNull(deref(p.value)) {
			if other, set := oneofs[od.FullName()]; set {
				*errs = append(*errs, errAt(p.key, "%s: only one of %s and %s may be set", fpath, other, name))
			}
			oneofs[od.FullName()] = name
		}
		checkField(p.value, fd, fpath, errs)
	}
}

func checkField(n *yaml.Node, fd protoreflect.FieldDescriptor, path string, errs *[]error) {
	n = deref(n)
	if isNull(n) {
		return
	}
	switch {
	case fd.IsMap():
		if n.Kind != yaml.MappingNode {
			*errs = append(*errs, errAt(n, "%s: expected a mapping, got %s", path, describe(n)))
			return
		}
		pairs, err := mappingPairs(n, 0)
		if err != nil {
			*errs = append(*errs, err)
			return
		}
		for _, p := range pairs {
			kpath := fmt.Sprintf("%s[%s]", path, p.key.Value)
			if msg := scalarProblem(p.key, fd.MapKey(), true); msg != "" {
				*errs = append(*errs, errAt(p.key, "%s: map key %s", kpath, msg))
			}
			checkSingular(p.value, fd.MapValue(), kpath, errs)
		}
	case fd.IsList():
		if n.Kind != yaml.SequenceNode {
			*errs = append(*errs, errAt(n, "%s: expected a list, got %s", path, describe(n)))
			return
		}
		for i, c := range n.Content {
			checkSingular(c, fd, fmt.Sprintf("%s[%d]", path, i), errs)
		}
	default:
		checkSingular(n, fd, path, errs)
	}
}

func checkSingular(n *yaml.Node, fd protoreflect.FieldDescriptor, path string, errs *[]error) {
	n = deref(n)
	if isNull(n) {
		return
	}
	if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
		checkMessage(n, fd.Message(), path, errs)
		return
	}
	if n.Kind != yaml.ScalarNode {
		*errs = append(*errs, errAt(n, "%s: expected %s, got %s", path, kindName(fd), describe(n)))
		return
	}
	if msg := scalarProblem(n, fd, false); msg != "" {
		*errs = append(*errs, errAt(n, "%s: %s", path, msg))
	}
}

// scalarProblem says what is wrong with scalar n as a value of field fd, or
// returns "" when protojson would accept it. Map keys are always strings in
// JSON, so for a key only the text matters.
func scalarProblem(n *yaml.Node, fd protoreflect.FieldDescriptor, isKey bool) string {
	tag := n.ShortTag()
	switch fd.Kind() {
	case protoreflect.StringKind, protoreflect.BytesKind:
		if tag != "!!str" && !isKey {
			return fmt.Sprintf("expected a string, got %s (quote it)", describe(n))
		}
	case protoreflect.BoolKind:
		if isKey {
			if n.Value != "true" && n.Value != "false" {
				return fmt.Sprintf("expected true or false, got %q", n.Value)
			}
		} else if tag != "!!bool" {
			return fmt.Sprintf("expected true or false, got %s", describe(n))
		}
	case protoreflect.EnumKind:
		ed := fd.Enum()
		if tag == "!!int" {
			return ""
		}
		if ed.Values().ByName(protoreflect.Name(n.Value)) == nil {
			var names []string
			for i := 0; i < ed.Values().Len(); i++ {
				names = append(names, string(ed.Values().Get(i).Name()))
			}
			return fmt.Sprintf("unknown value %q for %s (valid: %s)", n.Value, ed.Name(), strings.Join(names, ", "))
		}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		if tag == "!!int" || tag == "!!float" {
			return ""
		}
		if tag == "!!str" || isKey {
			if _, err := strconv.ParseFloat(n.Value, 64); err == nil || n.Value == "NaN" || n.Value == "Infinity" || n.Value == "-Infinity" {
				return ""
			}
		}
		return fmt.Sprintf("expected a number, got %s", describe(n))
	default: // integer kinds
		if tag != "!!int" && tag != "!!str" && !isKey {
			return fmt.Sprintf("expected an integer, got %s", describe(n))
		}
		return integerProblem(n.Value, fd.Kind())
	}
	return ""
}

func integerProblem(s string, k protoreflect.Kind) string {
	var lo, hi float64
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		lo, hi = math.MinInt32, math.MaxInt32
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		lo, hi = 0, math.MaxUint32
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		if _, err := strconv.ParseUint(s, 10, 64); err != nil {
			return fmt.Sprintf("expected a non-negative integer, got %q", s)
		}
		return ""
	default:
		if _, err := strconv.ParseInt(s, 10, 64); err != nil {
			return fmt.Sprintf("expected an integer, got %q", s)
		}
		return ""
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Sprintf("expected an integer, got %q", s)
	}
	if float64(v) < lo || float64(v) > hi {
		return fmt.Sprintf("%d is out of range [%d, %d]", v, int64(lo), int64(hi))
	}
	return ""
}

// wkt handles the well-known types whose JSON form is not an object. It
// reports whether md was one of them.
func wkt(md protoreflect.MessageDescriptor, n *yaml.Node, path string, errs *[]error) bool {
	switch md.FullName() {
	case "google.protobuf.Duration":
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" || !durationForm.MatchString(n.Value) {
			*errs = append(*errs, errAt(n, "%s: expected a duration in seconds such as \"10s\" or \"0.5s\", got %s", path, describe(n)))
		}
		return true
	case "google.protobuf.Timestamp", "google.protobuf.FieldMask":
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			*errs = append(*errs, errAt(n, "%s: expected a string, got %s", path, describe(n)))
		}
		return true
	case "google.protobuf.Struct":
		if n.Kind != yaml.MappingNode {
			*errs = append(*errs, errAt(n, "%s: expected a mapping, got %s", path, describe(n)))
		}
		return true
	case "google.protobuf.ListValue":
		if n.Kind != yaml.SequenceNode {
			*errs = append(*errs, errAt(n, "%s: expected a list, got %s", path, describe(n)))
		}
		return true
	case "google.protobuf.Value", "google.protobuf.Any":
		return true
	case "google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue",
		"google.protobuf.Int32Value", "google.protobuf.UInt32Value", "google.protobuf.Int64Value",
		"google.protobuf.UInt64Value", "google.protobuf.FloatValue", "google.protobuf.DoubleValue":
		checkSingular(n, md.Fields().ByName("value"), path, errs)
		return true
	}
	return false
}

// durationForm is the JSON form of google.protobuf.Duration: decimal seconds
// with an "s" suffix. "1m" is not accepted upstream either.
var durationForm = regexp.MustCompile(`^-?[0-9]+(\.[0-9]{1,9})?s$`)

func kindName(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.StringKind, protoreflect.BytesKind:
		return "a string"
	case protoreflect.BoolKind:
		return "true or false"
	case protoreflect.EnumKind:
		return "one of the " + string(fd.Enum().Name()) + " names"
	}
	return "a number"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!str":
		return strconv.Quote(n.Value)
	case "!!int", "!!float":
		return "number " + n.Value
	case "!!bool":
		return "boolean " + n.Value
	case "!!null":
		return "null"
	}
	return strconv.Quote(n.Value)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	if strings.ContainsAny(key, ".[]") {
		return fmt.Sprintf(`%s["%s"]`, path, key)
	}
	return path + "." + key
}
