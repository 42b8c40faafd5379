package controlplane

import "github.com/palisade-security/palisade/internal/config"

// ParseDocuments builds the snapshot of a version: the documents as
// config.Load reads files, and values as the Cilium Helm values file given
// on its own (config.Input.CiliumValues). The server validates with it and
// every proxy parses with it, so both see the same snapshot and the same
// errors. A document with a problem is left out of the snapshot and reported.
func ParseDocuments(docs []Document, values *Document) (*config.Snapshot, []*config.Error) {
	files := make([]config.File, len(docs))
	for i, d := range docs {
		files[i] = config.File{Name: d.Name, Data: d.Data}
	}
	var v *config.File
	if values != nil {
		v = &config.File{Name: values.Name, Data: values.Data}
	}
	return config.ParseInput(files, v)
}
