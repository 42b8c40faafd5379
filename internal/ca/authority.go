package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"time"
)

// NotBeforeCushion backdates every certificate's notBefore so that peers
// whose clocks run slightly behind still accept it (SPIRE's
// credtemplate.NotBeforeCushion).
const NotBeforeCushion = 10 * time.Second

// AuthorityState is where an authority is in its life: prepared (published
// in the bundle, not yet signing), active (signing), old (retired, still in
// the bundle until 24h after it expires). SPIRE's journal uses the same
// three states.
type AuthorityState string

// The states of an authority, in the order it passes through them.
const (
	StatePrepared AuthorityState = "prepared"
	StateActive   AuthorityState = "active"
	StateOld      AuthorityState = "old"
)

// x509Authority is one CA certificate and, while it may still sign, its key.
type x509Authority struct {
	cert *x509.Certificate
	// roots are the trust anchors this CA chains to: the CA itself when
	// self-signed, else the upstream root(s) current when it was signed.
	roots []*x509.Certificate
	// chainTail follows the leaf in every SVID chain it signs: empty when
	// self-signed (the CA is itself a bundle root), else the CA and the
	// upstream intermediates up to, not including, the root.
	chainTail []*x509.Certificate
	signer    crypto.Signer // nil once old
	keyFile   string
	// enc encodes the SVIDs this CA signs; nil once old.
	enc *svidEncoder
}

func (a *x509Authority) selfSigned() bool { return len(a.chainTail) == 0 }

// Format keeps the key out of any fmt output of the authority.
func (a *x509Authority) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "x509 authority serial=%s notAfter=%s", serialHex(a.cert.SerialNumber), a.cert.NotAfter.UTC().Format(time.RFC3339))
}

// jwtAuthority is one JWT signing key.
type jwtAuthority struct {
	kid                 string
	public              crypto.PublicKey
	signer              crypto.Signer // nil once old
	keyFile             string
	notBefore, notAfter time.Time
	hash                crypto.Hash
	// header is the base64url JOSE header, the same for every token.
	header string
}

// Format keeps the key out of any fmt output of the authority.
func (j *jwtAuthority) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "jwt authority kid=%s notAfter=%s", j.kid, j.notAfter.UTC().Format(time.RFC3339))
}

// slot pairs an X.509 CA with a JWT key: they are prepared, activated and
// retired together, with the same lifetime, as SPIRE rotates them. A slot
// is immutable once published; a state change copies it.
type slot struct {
	state AuthorityState
	x509  *x509Authority
	jwt   *jwtAuthority
}

func (s *slot) notAfter() time.Time  { return s.x509.cert.NotAfter }
func (s *slot) notBefore() time.Time { return s.x509.cert.NotBefore }

func (s *slot) withState(st AuthorityState) *slot {
	cp := *s
	cp.state = st
	return &cp
}

// retire drops the private keys: an old authority never signs again.
func (s *slot) retire() *slot {
	cp := *s
	cp.state = StateOld
	x := *s.x509
	x.signer, x.keyFile, x.enc = nil, "", nil
	j := *s.jwt
	j.signer, j.keyFile = nil, ""
	cp.x509, cp.jwt = &x, &j
	return &cp
}

func serialHex(n *big.Int) string {
	if n == nil {
		return ""
	}
	return hex.EncodeToString(n.Bytes())
}

// randomSerial returns a random positive 128-bit serial. Random serials
// keep serials unique across servers and restarts without coordination
// (SPIRE #962, #2484).
func randomSerial() *big.Int {
	var b [16]byte
	for {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
		n := new(big.Int).SetBytes(b[:])
		if n.Sign() > 0 {
			return n
		}
	}
}

func randomKeyID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// upstream is the CA that signs ours in intermediate mode.
type upstream struct {
	cert          *x509.Certificate // signs our CA
	signer        crypto.Signer
	intermediates []*x509.Certificate // cert and the certs above it, without the root
	roots         []*x509.Certificate
}

// loadUpstream reads the upstream chain (issuing CA first, root last) and
// the issuing CA's key, and checks that they fit together.
func loadUpstream(certFile, keyFile string, now time.Time) (*upstream, error) {
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("ca: upstream certificate: %w", err)
	}
	var certs []*x509.Certificate
	for rest := pemBytes; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("ca: upstream certificate %s, certificate %d: %w", certFile, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("ca: upstream certificate %s: no PEM CERTIFICATE block", certFile)
	}
	for i := 0; i+1 < len(certs); i++ {
		if err := certs[i].CheckSignatureFrom(certs[i+1]); err != nil {
			return nil, fmt.Errorf("ca: upstream certificate %s: certificate %d is not signed by certificate %d (want issuing CA first, root last): %w", certFile, i+1, i+2, err)
		}
	}
	issuer := certs[0]
	if !issuer.IsCA || (issuer.KeyUsage != 0 && issuer.KeyUsage&x509.KeyUsageCertSign == 0) {
		return nil, fmt.Errorf("ca: upstream certificate %s: first certificate is not a CA allowed to sign certificates", certFile)
	}
	if !now.Before(issuer.NotAfter) {
		return nil, fmt.Errorf("ca: upstream certificate %s expired at %s", certFile, issuer.NotAfter.UTC().Format(time.RFC3339))
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("ca: upstream key: %w", err)
	}
	defer clear(keyPEM)
	signer, err := parsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("ca: upstream key %s: %w", keyFile, err)
	}
	if !samePublicKey(signer.Public(), issuer.PublicKey) {
		return nil, fmt.Errorf("ca: upstream key %s does not match the first certificate of %s", keyFile, certFile)
	}
	return &upstream{
		cert:          issuer,
		signer:        signer,
		intermediates: certs[:len(certs)-1],
		roots:         certs[len(certs)-1:],
	}, nil
}

// parsePrivateKeyPEM accepts the PEM forms openssl and Go write: PKCS#8,
// SEC 1 ("EC PRIVATE KEY") and PKCS#1 ("RSA PRIVATE KEY"). Errors never
// include the key bytes.
func parsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no PEM private key block")
		}
		var k any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		default:
			continue // for example "EC PARAMETERS", which openssl writes first
		}
		clear(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("malformed %s block", b.Type)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", k)
		}
		return s, nil
	}
}

// newX509Authority wraps a CA certificate; with a signer it can sign SVIDs.
func newX509Authority(cert *x509.Certificate, roots, tail []*x509.Certificate, signer crypto.Signer, keyFile string) (*x509Authority, error) {
	a := &x509Authority{
		cert:      cert,
		roots:     roots,
		chainTail: tail,
		signer:    signer,
		keyFile:   keyFile,
	}
	if signer != nil {
		enc, err := newSVIDEncoder(cert, signer)
		if err != nil {
			return nil, err
		}
		a.enc = enc
	}
	return a, nil
}

// newJWTAuthority derives the algorithm and the fixed JOSE header from the
// key: ES256 for P-256, ES384 for P-384, RS256 for RSA (JWT-SVID §3 allows
// RS/ES/PS 256/384/512).
func newJWTAuthority(kid string, pub crypto.PublicKey, signer crypto.Signer, keyFile string, notBefore, notAfter time.Time) (*jwtAuthority, error) {
	var alg string
	var h crypto.Hash
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			alg, h = "ES256", crypto.SHA256
		case elliptic.P384():
			alg, h = "ES384", crypto.SHA384
		case elliptic.P521():
			alg, h = "ES512", crypto.SHA512
		default:
			return nil, fmt.Errorf("ca: JWT key %s: unsupported curve", kid)
		}
	case *rsa.PublicKey:
		alg, h = "RS256", crypto.SHA256
	default:
		return nil, fmt.Errorf("ca: JWT key %s: unsupported key type %T", kid, pub)
	}
	// The kid is hex, so it needs no JSON escaping.
	header := `{"alg":"` + alg + `","kid":"` + kid + `","typ":"JWT"}`
	return &jwtAuthority{
		kid:       kid,
		public:    pub,
		signer:    signer,
		keyFile:   keyFile,
		notBefore: notBefore,
		notAfter:  notAfter,
		hash:      h,
		header:    base64.RawURLEncoding.EncodeToString([]byte(header)),
	}, nil
}

// newSlot creates a CA certificate and a JWT key, writes both keys to the
// key directory, and returns them as a slot in state st.
func (c *CA) newSlot(now time.Time, st AuthorityState) (*slot, error) {
	key, err := generateKey(c.cfg.KeyType)
	if err != nil {
		return nil, err
	}
	serial := randomSerial()
	ski, err := publicKeySKI(key.Public())
	if err != nil {
		return nil, fmt.Errorf("ca: subject key ID: %w", err)
	}
	notBefore := now.Add(-NotBeforeCushion)
	notAfter := now.Add(c.cfg.CATTL)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// The serialNumber attribute makes every CA subject unique, so Go's
		// chain builder does not try every root with the same subject
		// (SPIRE #4415: "signature check attempts limit reached").
		Subject: pkix.Name{
			Country:      []string{"US"},
			Organization: []string{"SPIFFE"},
			SerialNumber: serial.String(),
		},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// X509-SVID §3.2: a signing certificate's SPIFFE ID has no path.
		URIs:         []*url.URL{c.td.ID().URL()},
		SubjectKeyId: ski,
	}
	parent, parentKey := tmpl, key
	var roots, tail []*x509.Certificate
	if up := c.up; up != nil {
		// An intermediate cannot outlive its issuer.
		if tmpl.NotAfter.After(up.cert.NotAfter) {
			tmpl.NotAfter = up.cert.NotAfter
		}
		if tmpl.NotBefore.Before(up.cert.NotBefore) {
			tmpl.NotBefore = up.cert.NotBefore
		}
		if !tmpl.NotAfter.After(now) {
			return nil, fmt.Errorf("ca: upstream CA expired at %s", up.cert.NotAfter.UTC().Format(time.RFC3339))
		}
		parent, parentKey = up.cert, up.signer
		roots = up.roots
	} else {
		// Self-signed: AKI = SKI (Go only copies the parent's SKI into AKI
		// when issuer and subject differ).
		tmpl.AuthorityKeyId = ski
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, fmt.Errorf("ca: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: parse new CA certificate: %w", err)
	}
	if c.up == nil {
		roots = []*x509.Certificate{cert}
	} else {
		tail = append([]*x509.Certificate{cert}, c.up.intermediates...)
	}

	jwtKey, err := generateKey(c.cfg.KeyType)
	if err != nil {
		return nil, err
	}
	kid := randomKeyID()
	x509File, jwtFile := "", ""
	if c.keys.persistent() {
		x509File, jwtFile = "x509-"+serialHex(serial)+".key", "jwt-"+kid+".key"
	}
	ja, err := newJWTAuthority(kid, jwtKey.Public(), jwtKey, jwtFile, cert.NotBefore, cert.NotAfter)
	if err != nil {
		return nil, err
	}
	xa, err := newX509Authority(cert, roots, tail, key, x509File)
	if err != nil {
		return nil, err
	}
	if err := c.keys.write(x509File, key); err != nil {
		return nil, err
	}
	if err := c.keys.write(jwtFile, jwtKey); err != nil {
		c.keys.remove(x509File)
		return nil, err
	}
	return &slot{state: st, x509: xa, jwt: ja}, nil
}
