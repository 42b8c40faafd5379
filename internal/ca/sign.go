package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// checkWorkloadID applies X509-SVID §3.1 and the CA's scope: the ID must be
// in this trust domain and have a non-root path.
func (c *CA) checkWorkloadID(id spiffeid.ID) error {
	if id.IsZero() {
		return reject(ErrRootID, "empty SPIFFE ID")
	}
	if !id.MemberOf(c.td) {
		return reject(ErrForeignTrustDomain, fmt.Sprintf("%s is not in %s", id, c.td.IDString()))
	}
	if id.Path() == "" {
		return reject(ErrRootID, id.String())
	}
	return nil
}

// checkPublicKey refuses keys below the strength SPIFFE deployments
// expect: EC on P-256 or larger NIST curves, RSA of 2048 bits or more.
func checkPublicKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return reject(ErrWeakKey, "EC curve "+k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return reject(ErrWeakKey, "RSA "+strconv.Itoa(k.N.BitLen())+" bits")
		}
		return nil
	}
	return reject(ErrWeakKey, fmt.Sprintf("key type %T", pub))
}

// csrAsksForCA reports a basicConstraints extension with cA=true among the
// CSR's requested extensions. The CA never copies CSR extensions into the
// certificate, but such a request is a client bug or an attack, so it is
// refused rather than silently downgraded.
func csrAsksForCA(csr *x509.CertificateRequest) (bool, error) {
	for _, ext := range csr.Extensions {
		if !ext.Id.Equal(oidBC) {
			continue
		}
		var bc struct {
			IsCA       bool `asn1:"optional"`
			MaxPathLen int  `asn1:"optional,default:-1"`
		}
		if _, err := asn1.Unmarshal(ext.Value, &bc); err != nil {
			return false, err
		}
		if bc.IsCA {
			return true, nil
		}
	}
	return false, nil
}

// validDNSName accepts a host name, optionally with a leading "*." label,
// as a DNS SAN: letters, digits, hyphens and underscores in labels of 1-63
// bytes, at most 253 bytes in all.
func validDNSName(s string) bool {
	if len(s) > 2 && s[0] == '*' && s[1] == '.' {
		s = s[2:]
	}
	if s == "" || len(s) > 253 {
		return false
	}
	label := 0
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '.':
			if label == 0 || s[i-1] == '-' {
				return false
			}
			label = 0
			continue
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9', ch == '_':
		case ch == '-':
			if label == 0 {
				return false
			}
		default:
			return false
		}
		label++
		if label > 63 {
			return false
		}
	}
	return label > 0 && s[len(s)-1] != '-'
}

// SignX509SVID signs an X509-SVID for id over the key in csrDER (DER
// PKCS#10). It returns the chain leaf first, followed by the CA and any
// upstream intermediates when the CA is not itself a bundle root. Only the
// CSR's public key is used: its subject and extensions are ignored (as
// SPIRE does), apart from refusing a CSR that asks for a CA.
//
// The request is refused with a *RequestError (see the Err* reasons) when
// the CSR is malformed or its signature does not verify, its key is weak
// or unsupported, it asks for a CA certificate, the ID is outside the trust
// domain or has no path, a DNS name is invalid, or ttl is negative.
//
// ttl 0 means Config.SVIDTTL. notAfter is capped at the CA's notAfter
// (SPIRE credtemplate computeCappedLifetime). The certificate has exactly
// one URI SAN, the ID (X509-SVID §2), the DNS SANs, CN = the first DNS name
// if any, critical KeyUsage digitalSignature|keyEncipherment|keyAgreement
// (§4.3), EKU serverAuth+clientAuth (§4.4), cA=false (§4.1), a random
// 128-bit serial, SKI, and AKI = the CA's SKI.
func (c *CA) SignX509SVID(ctx context.Context, csrDER []byte, id spiffeid.ID, ttl time.Duration, dnsNames []string) ([]*x509.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := c.checkWorkloadID(id); err != nil {
		return nil, err
	}
	if ttl < 0 {
		return nil, reject(ErrInvalidTTL, ttl.String())
	}
	for _, n := range dnsNames {
		if !validDNSName(n) {
			return nil, reject(ErrInvalidDNSName, strconv.Quote(n))
		}
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, reject(ErrInvalidCSR, err.Error())
	}
	// Key strength before the signature: verifying with a tiny RSA key
	// fails inside crypto/rsa with a less useful message.
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, err
	}
	if isCA, err := csrAsksForCA(csr); err != nil {
		return nil, reject(ErrInvalidCSR, "malformed basicConstraints extension")
	} else if isCA {
		return nil, reject(ErrCSRRequestsCA, "basicConstraints cA=true")
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, reject(ErrInvalidCSR, err.Error())
	}
	ski, err := subjectKeyID(csr.RawSubjectPublicKeyInfo)
	if err != nil {
		return nil, reject(ErrInvalidCSR, err.Error())
	}

	st := c.st.Load()
	a := st.active.x509
	now := c.now()
	if !now.Before(a.cert.NotAfter) {
		return nil, ErrNoActiveCA
	}
	if ttl == 0 {
		ttl = c.cfg.SVIDTTL
	}
	notAfter := now.Add(ttl)
	if notAfter.After(a.cert.NotAfter) {
		notAfter = a.cert.NotAfter
	}

	p := svidParams{
		serial:    randomSerial(),
		notBefore: now.Add(-NotBeforeCushion),
		notAfter:  notAfter,
		uri:       id.String(),
		dnsNames:  dnsNames,
		ski:       ski,
		spki:      csr.RawSubjectPublicKeyInfo,
	}
	tbs, err := a.enc.tbs(p)
	if err != nil {
		return nil, fmt.Errorf("ca: encode X509-SVID for %s: %w", id, err)
	}
	der, err := a.enc.sign(a.signer, tbs)
	if err != nil {
		return nil, fmt.Errorf("ca: sign X509-SVID for %s: %w", id, err)
	}
	// Parsing back both builds the *x509.Certificate callers need and
	// checks the encoding.
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: parse signed X509-SVID: %w", err)
	}
	chain := make([]*x509.Certificate, 1, 1+len(a.chainTail))
	chain[0] = leaf
	return append(chain, a.chainTail...), nil
}

// jwtClaims are the JWT-SVID claims (JWT-SVID §3): sub, aud and exp are
// required; iat is set as SPIRE does.
type jwtClaims struct {
	Subject  string   `json:"sub"`
	Audience audience `json:"aud"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
}

// audience marshals one value as a string and several as an array, as
// go-jose (and therefore SPIRE) does: JWT-SVID §3 recommends a single
// audience, and some validators only accept the string form.
type audience []string

func (a audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

// SignJWTSVID signs a JWT-SVID for id (JWS compact serialization, JWT-SVID
// §2-3): header alg (ES256, ES384 or RS256 per the key type), kid and typ
// JWT; claims sub = id, aud, exp, iat. ttl 0 means Config.JWTTTL; exp is
// capped at the signing key's expiry. At least one audience is required.
func (c *CA) SignJWTSVID(ctx context.Context, id spiffeid.ID, aud []string, ttl time.Duration) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := c.checkWorkloadID(id); err != nil {
		return "", err
	}
	if len(aud) == 0 {
		return "", reject(ErrNoAudience, "")
	}
	for _, a := range aud {
		if a == "" {
			return "", reject(ErrNoAudience, "empty audience value")
		}
	}
	if ttl < 0 {
		return "", reject(ErrInvalidTTL, ttl.String())
	}
	if ttl == 0 {
		ttl = c.cfg.JWTTTL
	}
	j := c.st.Load().active.jwt
	now := c.now()
	exp := now.Add(ttl)
	if exp.After(j.notAfter) {
		exp = j.notAfter
	}
	if !exp.After(now) {
		return "", ErrNoActiveCA
	}
	claims, err := json.Marshal(jwtClaims{
		Subject:  id.String(),
		Audience: audience(aud),
		Expiry:   exp.Unix(),
		IssuedAt: now.Unix(),
	})
	if err != nil {
		return "", fmt.Errorf("ca: JWT-SVID claims: %w", err)
	}
	input := j.header + "." + base64.RawURLEncoding.EncodeToString(claims)
	sig, err := jwsSign(j.signer, j.hash, []byte(input))
	if err != nil {
		return "", fmt.Errorf("ca: sign JWT-SVID for %s: %w", id, err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// jwsSign makes a JWS signature (RFC 7518 §3.3, §3.4): PKCS#1 v1.5 for
// RSA, and for ECDSA the fixed-width big-endian r||s, not ASN.1.
func jwsSign(signer crypto.Signer, h crypto.Hash, input []byte) ([]byte, error) {
	hh := h.New()
	hh.Write(input)
	digest := hh.Sum(nil)
	switch k := signer.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, digest)
		if err != nil {
			return nil, err
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		sig := make([]byte, 2*size)
		r.FillBytes(sig[:size])
		s.FillBytes(sig[size:])
		return sig, nil
	case *rsa.PrivateKey:
		return rsa.SignPKCS1v15(rand.Reader, k, h, digest)
	}
	return nil, fmt.Errorf("unsupported signing key type %T", signer)
}
