package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Key types accepted in Config.KeyType, named as SPIRE names ca_key_type.
const (
	KeyTypeECP256  = "ec-p256"
	KeyTypeECP384  = "ec-p384"
	KeyTypeRSA2048 = "rsa-2048"
	KeyTypeRSA4096 = "rsa-4096"
)

func validKeyType(kt string) bool {
	switch kt {
	case KeyTypeECP256, KeyTypeECP384, KeyTypeRSA2048, KeyTypeRSA4096:
		return true
	}
	return false
}

// generateKey makes a new signing key. Only concrete *ecdsa.PrivateKey and
// *rsa.PrivateKey are produced, so the JWT signer knows the algorithm.
func generateKey(kt string) (crypto.Signer, error) {
	switch kt {
	case KeyTypeECP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyTypeECP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case KeyTypeRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case KeyTypeRSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("ca: unknown key type %q", kt)
}

// subjectKeyID is RFC 7093 §2 method 1: the leftmost 160 bits of the
// SHA-256 of the subjectPublicKey BIT STRING. It takes the DER
// SubjectPublicKeyInfo, which a CSR already carries, so the hot signing path
// does not re-marshal the public key.
func subjectKeyID(spkiDER []byte) ([]byte, error) {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	rest, err := asn1.Unmarshal(spkiDER, &spki)
	if err != nil || len(rest) != 0 {
		return nil, errors.New("malformed SubjectPublicKeyInfo")
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20], nil
}

func publicKeySKI(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return subjectKeyID(der)
}

// samePublicKey reports whether a and b are the same key; used to refuse a
// key file that does not belong to the certificate the journal names.
func samePublicKey(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// keyStore keeps CA private keys as PKCS#8 PEM files in one directory.
// An empty dir means keys live in memory only (an ephemeral CA).
type keyStore struct {
	dir string
}

func (ks keyStore) persistent() bool { return ks.dir != "" }

// init creates the directory with mode 0700 and tightens an existing one:
// it holds private keys, so nobody but the owner may even list it.
func (ks keyStore) init() error {
	if !ks.persistent() {
		return nil
	}
	if err := os.MkdirAll(ks.dir, 0o700); err != nil {
		return fmt.Errorf("ca: key directory: %w", err)
	}
	fi, err := os.Stat(ks.dir)
	if err != nil {
		return fmt.Errorf("ca: key directory: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(ks.dir, 0o700); err != nil {
			return fmt.Errorf("ca: key directory: %w", err)
		}
	}
	return nil
}

// write stores key under name atomically: a temporary file (created 0600 by
// os.CreateTemp) is written, synced and renamed over the final name, so a
// crash never leaves a truncated key behind a journal that names it.
func (ks keyStore) write(name string, key crypto.Signer) error {
	if !ks.persistent() {
		return nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("ca: encode key %s: %w", name, err)
	}
	block := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	clear(der)
	defer clear(block)

	f, err := os.CreateTemp(ks.dir, ".tmp-"+name+"-*")
	if err != nil {
		return fmt.Errorf("ca: write key %s: %w", name, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	// CreateTemp already uses 0600; Chmod guards against an unusual umask
	// or a platform default that differs.
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("ca: write key %s: %w", name, err)
	}
	if _, err := f.Write(block); err != nil {
		return fmt.Errorf("ca: write key %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("ca: write key %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("ca: write key %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(ks.dir, name)); err != nil {
		return fmt.Errorf("ca: write key %s: %w", name, err)
	}
	ok = true
	// Make the rename durable; a failure here is not worth failing the
	// rotation for, the file is already in place.
	if d, err := os.Open(ks.dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// read loads a key written by write. Errors name the file, never its content.
func (ks keyStore) read(name string) (crypto.Signer, error) {
	if !ks.persistent() {
		return nil, fmt.Errorf("ca: key %s: no key directory configured", name)
	}
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return nil, fmt.Errorf("ca: key file name %q is not a plain file name", name)
	}
	path := filepath.Join(ks.dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ca: read key: %w", err)
	}
	defer clear(data)
	k, err := parsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("ca: key file %s: %w", path, err)
	}
	switch k.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("ca: key file %s: unsupported key type %T", path, k)
}

func (ks keyStore) remove(name string) {
	if !ks.persistent() || name == "" {
		return
	}
	_ = os.Remove(filepath.Join(ks.dir, name))
}

// keyFilePrefixes are the names this package creates; removeOrphans only
// ever touches those, so a KeyDir shared with other files stays safe.
var keyFilePrefixes = []string{"x509-", "jwt-"}

// removeOrphans deletes key files that no authority references any more:
// keys of authorities that became old, and keys left behind when a rotation
// failed to persist its journal. Best effort: a leftover file is harmless.
func (ks keyStore) removeOrphans(keep map[string]bool) {
	if !ks.persistent() {
		return
	}
	ents, err := os.ReadDir(ks.dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		ours := strings.HasPrefix(n, ".tmp-")
		for _, p := range keyFilePrefixes {
			if strings.HasPrefix(n, p) && strings.HasSuffix(n, ".key") {
				ours = true
			}
		}
		if ours && !keep[n] {
			_ = os.Remove(filepath.Join(ks.dir, n))
		}
	}
}
