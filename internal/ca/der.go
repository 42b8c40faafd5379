package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"time"
)

// This file encodes X509-SVIDs directly in DER instead of through
// x509.CreateCertificate. CreateCertificate re-marshals the public key,
// walks the whole template by reflection, and verifies every signature it
// makes; for ECDSA that verification costs more than the signature itself
// and, with the CSR's own signature check, made up two thirds of the
// signing time. Here everything that is the same for every SVID of a CA
// (issuer, algorithm, key usages, EKU, basic constraints, AKI) is encoded
// once, taken from a prototype certificate that crypto/x509 itself made,
// and only serial, validity, subject, key, SKI and SANs are encoded per
// SVID. The output is byte-for-byte what CreateCertificate produces for
// the same template (checked by TestSVIDEncodingMatchesCryptoX509), and
// every certificate is parsed back by x509.ParseCertificate before it is
// returned.

var (
	oidKU  = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidBC  = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidAKI = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidEKU = asn1.ObjectIdentifier{2, 5, 29, 37}

	// Pre-encoded DER pieces.
	derVersion3 = []byte{0xa0, 0x03, 0x02, 0x01, 0x02} // [0] EXPLICIT INTEGER 2
	derOIDSKI   = []byte{0x06, 0x03, 0x55, 0x1d, 0x0e} // 2.5.29.14
	derOIDSAN   = []byte{0x06, 0x03, 0x55, 0x1d, 0x11} // 2.5.29.17
	derOIDCN    = []byte{0x06, 0x03, 0x55, 0x04, 0x03} // 2.5.4.3 commonName
)

const (
	tagInteger         = 0x02
	tagBitString       = 0x03
	tagOctetString     = 0x04
	tagUTCTime         = 0x17
	tagGenTime         = 0x18
	tagUTF8String      = 0x0c
	tagPrintableString = 0x13
	tagSequence        = 0x30
	tagSet             = 0x31
	tagExtensions      = 0xa3 // [3] EXPLICIT, constructed
	tagSANDNS          = 0x82 // [2] IMPLICIT IA5String
	tagSANURI          = 0x86 // [6] IMPLICIT IA5String
)

func appendLength(b []byte, n int) []byte {
	switch {
	case n < 0x80:
		return append(b, byte(n))
	case n < 0x100:
		return append(b, 0x81, byte(n))
	case n < 0x10000:
		return append(b, 0x82, byte(n>>8), byte(n))
	default:
		return append(b, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
}

// RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime after, in UTC
// with whole seconds.
func utcTime(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 1950 && y < 2050
}

func timeLen(t time.Time) int {
	if utcTime(t) {
		return tlvLen(13) // YYMMDDHHMMSSZ
	}
	return tlvLen(15) // YYYYMMDDHHMMSSZ
}

func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	if utcTime(t) {
		return t.AppendFormat(appendHeader(b, tagUTCTime, 13), "060102150405Z")
	}
	return t.AppendFormat(appendHeader(b, tagGenTime, 15), "20060102150405Z")
}

// svidEncoder holds the DER that is the same for every SVID one CA signs.
type svidEncoder struct {
	sigAlg      []byte // AlgorithmIdentifier of the CA's signature
	issuer      []byte // the CA's subject Name
	subject     []byte // C=US, O=SPIRE, for SVIDs without DNS names
	subjectRDNs []byte // the content of subject, to append a CN to
	fixedExts   []byte // keyUsage, extKeyUsage, basicConstraints
	akiExt      []byte // authorityKeyIdentifier
	hash        crypto.Hash
	signerOpts  crypto.SignerOpts
}

// signatureHashes maps the algorithms Go picks for our CA keys to the
// digest they sign.
var signatureHashes = map[x509.SignatureAlgorithm]crypto.Hash{
	x509.ECDSAWithSHA256: crypto.SHA256,
	x509.ECDSAWithSHA384: crypto.SHA384,
	x509.ECDSAWithSHA512: crypto.SHA512,
	x509.SHA256WithRSA:   crypto.SHA256,
	x509.SHA384WithRSA:   crypto.SHA384,
	x509.SHA512WithRSA:   crypto.SHA512,
}

// newSVIDEncoder has crypto/x509 sign one prototype SVID with the CA (over
// the CA's own public key; the prototype is never published) and keeps its
// constant parts.
func newSVIDEncoder(ca *x509.Certificate, signer crypto.Signer) (*svidEncoder, error) {
	tmpl := svidTemplate(svidParams{
		serial:    big.NewInt(1),
		notBefore: ca.NotBefore,
		notAfter:  ca.NotAfter,
		uri:       "spiffe://prototype.invalid/prototype",
	})
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, signer.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("ca: prototype SVID: %w", err)
	}
	proto, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: prototype SVID: %w", err)
	}
	h, ok := signatureHashes[proto.SignatureAlgorithm]
	if !ok {
		return nil, fmt.Errorf("ca: unsupported CA signature algorithm %s", proto.SignatureAlgorithm)
	}
	var outer struct {
		TBS    asn1.RawValue
		SigAlg asn1.RawValue
		Sig    asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &outer); err != nil {
		return nil, fmt.Errorf("ca: prototype SVID: %w", err)
	}
	var subj asn1.RawValue
	if _, err := asn1.Unmarshal(proto.RawSubject, &subj); err != nil {
		return nil, fmt.Errorf("ca: prototype SVID subject: %w", err)
	}
	e := &svidEncoder{
		subjectRDNs: subj.Bytes,
		sigAlg:      outer.SigAlg.FullBytes,
		issuer:      ca.RawSubject,
		subject:     proto.RawSubject,
		hash:        h,
		signerOpts:  h,
	}
	for _, want := range []asn1.ObjectIdentifier{oidKU, oidEKU, oidBC, oidAKI} {
		found := false
		for _, ext := range proto.Extensions {
			if !ext.Id.Equal(want) {
				continue
			}
			b, err := asn1.Marshal(ext)
			if err != nil {
				return nil, err
			}
			if want.Equal(oidAKI) {
				e.akiExt = b
			} else {
				e.fixedExts = append(e.fixedExts, b...)
			}
			found = true
		}
		if !found && !want.Equal(oidAKI) {
			return nil, fmt.Errorf("ca: prototype SVID lacks extension %s", want)
		}
	}
	if e.akiExt == nil {
		return nil, errors.New("ca: CA certificate has no subject key ID, so SVIDs would have no AKI")
	}
	return e, nil
}

// svidParams are the per-SVID fields.
type svidParams struct {
	serial              *big.Int
	notBefore, notAfter time.Time
	uri                 string
	dnsNames            []string
	ski                 []byte
	spki                []byte // DER SubjectPublicKeyInfo, from the CSR
}

// svidTemplate is the X509-SVID template as crypto/x509 takes it (SPIRE
// credtemplate: Subject C=US,O=SPIRE and CN = first DNS name; KeyUsage
// digitalSignature|keyEncipherment|keyAgreement, critical (X509-SVID
// §4.3); EKU serverAuth+clientAuth (§4.4); cA=false (§4.1); one URI SAN
// (§2)). The encoder reproduces what CreateCertificate makes of it.
func svidTemplate(p svidParams) *x509.Certificate {
	t := &x509.Certificate{
		SerialNumber: p.serial,
		Subject: pkix.Name{
			Country:      []string{"US"},
			Organization: []string{"SPIRE"},
		},
		NotBefore:             p.notBefore,
		NotAfter:              p.notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		SubjectKeyId:          p.ski,
		DNSNames:              p.dnsNames,
	}
	if u, err := url.Parse(p.uri); err == nil {
		t.URIs = append(t.URIs, u)
	}
	if len(p.dnsNames) > 0 {
		t.Subject.CommonName = p.dnsNames[0]
	}
	return t
}

// tlvLen is the size of a DER element with n bytes of content.
func tlvLen(n int) int {
	switch {
	case n < 0x80:
		return 2 + n
	case n < 0x100:
		return 3 + n
	case n < 0x10000:
		return 4 + n
	default:
		return 5 + n
	}
}

func appendHeader(b []byte, tag byte, n int) []byte {
	return appendLength(append(b, tag), n)
}

// tbs encodes the TBSCertificate, extensions in crypto/x509's order. Sizes
// are computed first so the whole structure is written into one buffer.
func (e *svidEncoder) tbs(p svidParams) ([]byte, error) {
	serial := p.serial.Bytes()
	serialPad := len(serial) == 0 || serial[0]&0x80 != 0
	serialLen := len(serial)
	if serialPad {
		serialLen++
	}
	validityLen := timeLen(p.notBefore) + timeLen(p.notAfter)

	// Subject: C and O, plus RDN CN = first DNS name if any.
	var cn string
	var cnTag byte
	var cnAttrLen, cnSetLen, subjectContent int
	subjectLen := len(e.subject)
	if len(p.dnsNames) > 0 {
		cn = p.dnsNames[0]
		cnTag = tagPrintableString
		if !printableString(cn) {
			cnTag = tagUTF8String
		}
		cnAttrLen = len(derOIDCN) + tlvLen(len(cn))
		cnSetLen = tlvLen(cnAttrLen)
		subjectContent = len(e.subjectRDNs) + tlvLen(cnSetLen)
		subjectLen = tlvLen(subjectContent)
	}

	namesLen := tlvLen(len(p.uri))
	for _, d := range p.dnsNames {
		namesLen += tlvLen(len(d))
	}
	sanExtLen := len(derOIDSAN) + tlvLen(tlvLen(namesLen))
	skiExtLen := len(derOIDSKI) + tlvLen(tlvLen(len(p.ski)))
	extsLen := len(e.fixedExts) + tlvLen(skiExtLen) + len(e.akiExt) + tlvLen(sanExtLen)

	tbsLen := len(derVersion3) + tlvLen(serialLen) + len(e.sigAlg) + len(e.issuer) +
		tlvLen(validityLen) + subjectLen + len(p.spki) + tlvLen(tlvLen(extsLen))

	b := make([]byte, 0, tlvLen(tbsLen))
	b = appendHeader(b, tagSequence, tbsLen)
	b = append(b, derVersion3...)
	b = appendHeader(b, tagInteger, serialLen)
	if serialPad {
		b = append(b, 0)
	}
	b = append(b, serial...)
	b = append(b, e.sigAlg...)
	b = append(b, e.issuer...)
	b = appendHeader(b, tagSequence, validityLen)
	b = appendTime(b, p.notBefore)
	b = appendTime(b, p.notAfter)
	if cn == "" {
		b = append(b, e.subject...)
	} else {
		b = appendHeader(b, tagSequence, subjectContent)
		b = append(b, e.subjectRDNs...)
		b = appendHeader(b, tagSet, cnSetLen)
		b = appendHeader(b, tagSequence, cnAttrLen)
		b = append(b, derOIDCN...)
		b = appendHeader(b, cnTag, len(cn))
		b = append(b, cn...)
	}
	b = append(b, p.spki...)
	b = appendHeader(b, tagExtensions, tlvLen(extsLen))
	b = appendHeader(b, tagSequence, extsLen)
	b = append(b, e.fixedExts...)
	b = appendHeader(b, tagSequence, skiExtLen)
	b = append(b, derOIDSKI...)
	b = appendHeader(b, tagOctetString, tlvLen(len(p.ski)))
	b = appendHeader(b, tagOctetString, len(p.ski))
	b = append(b, p.ski...)
	b = append(b, e.akiExt...)
	b = appendHeader(b, tagSequence, sanExtLen)
	b = append(b, derOIDSAN...)
	b = appendHeader(b, tagOctetString, tlvLen(namesLen))
	b = appendHeader(b, tagSequence, namesLen)
	for _, d := range p.dnsNames {
		b = appendHeader(b, tagSANDNS, len(d))
		b = append(b, d...)
	}
	b = appendHeader(b, tagSANURI, len(p.uri))
	b = append(b, p.uri...)
	if len(b) != cap(b) {
		// A size computation above is wrong; never emit such a certificate.
		return nil, fmt.Errorf("internal error: TBSCertificate is %d bytes, computed %d", len(b), cap(b))
	}
	return b, nil
}

// sign signs a TBSCertificate and wraps it into a Certificate.
func (e *svidEncoder) sign(signer crypto.Signer, tbs []byte) ([]byte, error) {
	var digest []byte
	switch e.hash {
	case crypto.SHA256:
		d := sha256.Sum256(tbs)
		digest = d[:]
	case crypto.SHA384:
		d := sha512.Sum384(tbs)
		digest = d[:]
	default:
		h := e.hash.New()
		h.Write(tbs)
		digest = h.Sum(nil)
	}
	sig, err := signer.Sign(rand.Reader, digest, e.signerOpts)
	if err != nil {
		return nil, err
	}
	sigLen := 1 + len(sig)
	certLen := len(tbs) + len(e.sigAlg) + tlvLen(sigLen)
	b := make([]byte, 0, tlvLen(certLen))
	b = appendHeader(b, tagSequence, certLen)
	b = append(b, tbs...)
	b = append(b, e.sigAlg...)
	b = appendHeader(b, tagBitString, sigLen)
	b = append(b, 0) // no unused bits
	return append(b, sig...), nil
}

// printableString reports whether encoding/asn1 would encode s as a
// PrintableString (X.680 §41.4, without '*' and '&'), as crypto/x509 does
// for subject attributes; otherwise it is a UTF8String.
func printableString(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case b == ' ', b == '\'', b == '(', b == ')', b == '+', b == ',', b == '-', b == '.', b == '/', b == ':', b == '=', b == '?':
		default:
			return false
		}
	}
	return true
}
