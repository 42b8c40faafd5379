package controlplane

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/palisade-security/palisade/internal/config"
)

// maxFile bounds one source file, as config bounds its inputs.
const maxFile = 64 << 20

// listSources lists the files readSources reads and returns a fingerprint
// of their metadata: name, size, modification time and mode of each, as
// os.Stat sees them. Following symbolic links matters: a Kubernetes
// ConfigMap volume is updated by swapping a symlinked directory, which
// leaves the files' own links unchanged.
func listSources(paths []string, values string) (files []string, fingerprint string, err error) {
	h := sha256.New()
	add := func(path string) error {
		info, err := os.Stat(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%q %d %d %v\n", path, info.Size(), info.ModTime().UnixNano(), info.Mode())
		files = append(files, path)
		return nil
	}
	for _, p := range paths {
		if p == "-" {
			return nil, "", errors.New(`"-" (standard input) cannot be watched`)
		}
		info, err := os.Stat(p)
		if err != nil {
			return nil, "", err
		}
		if !info.IsDir() {
			if err := add(p); err != nil {
				return nil, "", err
			}
			continue
		}
		// As config reads a directory: recursively, in lexical order,
		// with its rules for which files and subdirectories count.
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != p && config.SkippedDir(d.Name()) {
					return filepath.SkipDir
				}
				return nil
			}
			if config.SourceFile(path) {
				return add(path)
			}
			return nil
		})
		if err != nil {
			return nil, "", err
		}
	}
	if values != "" {
		io.WriteString(h, "values\n")
		if err := add(values); err != nil {
			return nil, "", err
		}
	}
	return files, hex.EncodeToString(h.Sum(nil)), nil
}

// readSources reads every source as config.Load would: a file whatever its
// name, a directory's .yaml, .yml and .json files. Unlike Load it fails as a
// whole on the first path or file it cannot read: the server then keeps
// serving its previous version rather than one with the unreadable part
// silently missing. The fingerprint is listSources' and is taken before
// the files are read, so that a write during the read shows as a change at
// the next look rather than being hidden behind a fresh fingerprint.
func readSources(paths []string, values string) (docs []Document, valuesDoc *Document, fingerprint string, err error) {
	files, fingerprint, err := listSources(paths, values)
	if err != nil {
		return nil, nil, "", err
	}
	if values != "" {
		files = files[:len(files)-1]
	}
	for _, f := range files {
		d, err := readSource(f)
		if err != nil {
			return nil, nil, "", err
		}
		docs = append(docs, d)
	}
	if values != "" {
		v, err := readSource(values)
		if err != nil {
			return nil, nil, "", err
		}
		valuesDoc = &v
	}
	return docs, valuesDoc, fingerprint, nil
}

func readSource(path string) (Document, error) {
	f, err := os.Open(path)
	if err != nil {
		return Document{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return Document{}, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxFile {
		return Document{}, fmt.Errorf("%s: larger than %d bytes", path, maxFile)
	}
	return Document{Name: path, Data: data}, nil
}
