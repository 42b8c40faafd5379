package validation

import (
	"cmp"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// schemaEnums reports every enum field whose number has no name. protojson,
// like istiod's jsonpb, accepts enums written as numbers, including numbers
// the enum does not define; the CRD schema types every enum as a string
// restricted to the names, so the API server refuses such a value. (A number
// that does name a value is indistinguishable here from the name itself and
// passes; the API server would refuse that too, for being an integer.)
func schemaEnums(r *report, root string, m proto.Message) {
	if m == nil {
		return
	}
	walkEnums(r, root, m.ProtoReflect())
}

func walkEnums(r *report, path string, m protoreflect.Message) {
	if !m.IsValid() {
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + fd.JSONName()
		switch {
		case fd.IsMap():
			vd := fd.MapValue()
			mv := v.Map()
			keys := make([]protoreflect.MapKey, 0, mv.Len())
			mv.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k)
				return true
			})
			sortMapKeys(keys)
			for _, k := range keys {
				checkEnumValue(r, key(p, k.String()), vd, mv.Get(k))
			}
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				checkEnumValue(r, at(p, i), fd, l.Get(i))
			}
		default:
			checkEnumValue(r, p, fd, v)
		}
		return true
	})
}

func checkEnumValue(r *report, path string, fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	switch fd.Kind() {
	case protoreflect.EnumKind:
		ed := fd.Enum()
		if ed.Values().ByNumber(v.Enum()) != nil {
			return
		}
		names := make([]string, ed.Values().Len())
		for i := range names {
			names[i] = string(ed.Values().Get(i).Name())
		}
		r.err(path, schemaUnsupported(int32(v.Enum()), names))
	case protoreflect.MessageKind, protoreflect.GroupKind:
		walkEnums(r, path, v.Message())
	}
}

// sortMapKeys orders map keys (all of one kind) so reports are stable.
func sortMapKeys(keys []protoreflect.MapKey) {
	slices.SortFunc(keys, func(a, b protoreflect.MapKey) int {
		switch a.Interface().(type) {
		case string:
			return cmp.Compare(a.String(), b.String())
		case bool:
			return cmp.Compare(boolRank(a.Bool()), boolRank(b.Bool()))
		case int32, int64:
			return cmp.Compare(a.Int(), b.Int())
		default:
			return cmp.Compare(a.Uint(), b.Uint())
		}
	})
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}
