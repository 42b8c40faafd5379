package ca

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"time"
)

// journalVersion is bumped on any incompatible change of journalDoc.
const journalVersion = 1

// journalDoc is what the CA persists through Journal: the certificates and
// public keys of every authority still in the bundle, their states, the
// names of the key files of those that may still sign, and the bundle
// sequence number (so it never goes backwards across restarts). It holds no
// private key material, so the datastore row is not a secret by itself.
type journalDoc struct {
	Version     int                `json:"version"`
	TrustDomain string             `json:"trust_domain"`
	Sequence    uint64             `json:"sequence"`
	Authorities []journalAuthority `json:"authorities"`
}

type journalAuthority struct {
	State AuthorityState `json:"state"`
	// X.509: the CA certificate, the rest of its SVID chain, its roots.
	Cert        []byte   `json:"cert"`
	ChainTail   [][]byte `json:"chain_tail,omitempty"`
	Roots       [][]byte `json:"roots,omitempty"` // empty: self-signed
	X509KeyFile string   `json:"x509_key_file,omitempty"`
	// JWT key.
	JWTKeyID     string    `json:"jwt_kid"`
	JWTPublicKey []byte    `json:"jwt_public_key"` // PKIX DER
	JWTNotBefore time.Time `json:"jwt_not_before"`
	JWTNotAfter  time.Time `json:"jwt_not_after"`
	JWTKeyFile   string    `json:"jwt_key_file,omitempty"`
}

func (c *CA) encodeJournal(st *state) ([]byte, error) {
	doc := journalDoc{
		Version:     journalVersion,
		TrustDomain: c.td.Name(),
		Sequence:    st.seq,
	}
	for _, s := range st.slots {
		pub, err := x509.MarshalPKIXPublicKey(s.jwt.public)
		if err != nil {
			return nil, fmt.Errorf("ca: journal: JWT key %s: %w", s.jwt.kid, err)
		}
		ja := journalAuthority{
			State:        s.state,
			Cert:         s.x509.cert.Raw,
			X509KeyFile:  s.x509.keyFile,
			JWTKeyID:     s.jwt.kid,
			JWTPublicKey: pub,
			JWTNotBefore: s.jwt.notBefore.UTC(),
			JWTNotAfter:  s.jwt.notAfter.UTC(),
			JWTKeyFile:   s.jwt.keyFile,
		}
		for _, t := range s.x509.chainTail {
			ja.ChainTail = append(ja.ChainTail, t.Raw)
		}
		if !s.x509.selfSigned() {
			for _, r := range s.x509.roots {
				ja.Roots = append(ja.Roots, r.Raw)
			}
		}
		doc.Authorities = append(doc.Authorities, ja)
	}
	return json.Marshal(doc)
}

// decodeJournal rebuilds the state a journal describes, loading the keys of
// prepared and active authorities from the key directory. dirty reports
// that the result differs from the journal (a prepared authority whose key
// is gone was dropped), so it must be saved again.
func (c *CA) decodeJournal(data []byte) (st *state, dirty bool, err error) {
	var doc journalDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, false, fmt.Errorf("ca: journal: %w", err)
	}
	if doc.Version != journalVersion {
		return nil, false, fmt.Errorf("ca: journal version %d is not supported (want %d)", doc.Version, journalVersion)
	}
	if doc.TrustDomain != c.td.Name() {
		// A different trust domain's CA must never sign for this one.
		return nil, false, fmt.Errorf("ca: journal belongs to trust domain %q, configured %q", doc.TrustDomain, c.td.Name())
	}
	var slots []*slot
	for i, ja := range doc.Authorities {
		s, err := c.decodeAuthority(ja)
		if err != nil {
			if ja.State == StatePrepared {
				// A prepared authority has signed nothing yet: dropping it
				// is safe, and the next Rotate prepares another.
				dirty = true
				continue
			}
			return nil, false, fmt.Errorf("ca: journal authority %d (%s): %w", i+1, ja.State, err)
		}
		slots = append(slots, s)
	}
	st, err = newState(slots, doc.Sequence, c.refreshHint, c.td)
	if err != nil {
		return nil, false, err
	}
	return st, dirty, nil
}

func (c *CA) decodeAuthority(ja journalAuthority) (*slot, error) {
	switch ja.State {
	case StatePrepared, StateActive, StateOld:
	default:
		return nil, fmt.Errorf("unknown state %q", ja.State)
	}
	cert, err := x509.ParseCertificate(ja.Cert)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	tail, err := parseDERs(ja.ChainTail)
	if err != nil {
		return nil, fmt.Errorf("chain: %w", err)
	}
	roots, err := parseDERs(ja.Roots)
	if err != nil {
		return nil, fmt.Errorf("roots: %w", err)
	}
	if len(roots) == 0 {
		roots = []*x509.Certificate{cert}
	}
	pub, err := x509.ParsePKIXPublicKey(ja.JWTPublicKey)
	if err != nil {
		return nil, fmt.Errorf("JWT public key: %w", err)
	}
	var xk, jk crypto.Signer
	var xFile, jFile string
	if ja.State != StateOld {
		if xk, err = c.keys.read(ja.X509KeyFile); err != nil {
			return nil, err
		}
		if !samePublicKey(xk.Public(), cert.PublicKey) {
			return nil, fmt.Errorf("key file %s does not match CA certificate %s", ja.X509KeyFile, serialHex(cert.SerialNumber))
		}
		if jk, err = c.keys.read(ja.JWTKeyFile); err != nil {
			return nil, err
		}
		if !samePublicKey(jk.Public(), pub) {
			return nil, fmt.Errorf("key file %s does not match JWT key %s", ja.JWTKeyFile, ja.JWTKeyID)
		}
		xFile, jFile = ja.X509KeyFile, ja.JWTKeyFile
	}
	xa, err := newX509Authority(cert, roots, tail, xk, xFile)
	if err != nil {
		return nil, err
	}
	ja2, err := newJWTAuthority(ja.JWTKeyID, pub, jk, jFile, ja.JWTNotBefore, ja.JWTNotAfter)
	if err != nil {
		return nil, err
	}
	return &slot{state: ja.State, x509: xa, jwt: ja2}, nil
}

func parseDERs(ders [][]byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
