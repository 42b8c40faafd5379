package jwtauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"math/big"
	"strings"
)

// verifySignature is Envoy's verifyJwtWithoutTimeChecking. It is written
// against the standard library rather than go-jose's JWS verifier because
// Envoy's rules are looser in ways that change verdicts:
//
//   - a JWK without "kid" matches any token kid, and a token without "kid"
//     tries every JWK; a JWK without "alg" matches any token alg;
//   - the hash follows the token's alg, not the key, so an EC key is tried
//     for any alg (SHA-256 unless ES384/ES512), an oct key computes an HMAC
//     for any alg, and an OKP key checks Ed25519 for any alg;
//   - an ECDSA signature is split in two halves whatever its length;
//   - an RSA-PSS salt of any length is accepted.
//
// The result is "Jwks doesn't have key to match kid or alg from Jwt" only
// when the kid/alg filter left no key at all.
func verifySignature(t *token, keys []verifyKey) status {
	matched := false
	for i := range keys {
		k := &keys[i]
		if t.kid != "" && k.kid != "" && k.kid != t.kid {
			continue
		}
		if k.alg != "" && k.alg != t.alg {
			continue
		}
		matched = true
		switch k.kty {
		case "EC":
			if verifyEC(k.ec, t) {
				return statusOK
			}
		case "RSA":
			if verifyRSA(k.rsa, t) {
				return statusOK
			}
		case "oct":
			if verifyHMAC(k.hmac, t) {
				return statusOK
			}
		case "OKP":
			// A wrong-length Ed25519 signature ends the search at once,
			// even if a later key would have matched.
			if len(t.sig) != ed25519.SignatureSize {
				return statusEd25519WrongLength
			}
			if ed25519.Verify(k.ed, []byte(t.signed), t.sig) {
				return statusOK
			}
		}
	}
	if matched {
		return statusVerificationFail
	}
	return statusJwksKidAlgMismatch
}

// hashFor is the hash Envoy uses for a token alg within one key family:
// SHA-384 or SHA-512 only for that family's own 384 and 512 algs, SHA-256
// for everything else (so an "RS384" token checked against an EC key is
// hashed with SHA-256).
func hashFor(alg string, alg384, alg384b, alg512, alg512b string) crypto.Hash {
	switch alg {
	case alg384, alg384b:
		return crypto.SHA384
	case alg512, alg512b:
		return crypto.SHA512
	}
	return crypto.SHA256
}

func sum(h crypto.Hash, data string) []byte {
	var w hash.Hash
	switch h {
	case crypto.SHA384:
		w = sha512.New384()
	case crypto.SHA512:
		w = sha512.New()
	default:
		w = sha256.New()
	}
	w.Write([]byte(data))
	return w.Sum(nil)
}

func verifyEC(pub *ecdsa.PublicKey, t *token) bool {
	h := hashFor(t.alg, "ES384", "ES384", "ES512", "ES512")
	half := len(t.sig) / 2
	r := new(big.Int).SetBytes(t.sig[:half])
	s := new(big.Int).SetBytes(t.sig[half : 2*half])
	return ecdsa.Verify(pub, sum(h, t.signed), r, s)
}

func verifyRSA(pub *rsa.PublicKey, t *token) bool {
	h := hashFor(t.alg, "RS384", "PS384", "RS512", "PS512")
	switch {
	case strings.HasPrefix(t.alg, "RS"):
		return rsa.VerifyPKCS1v15(pub, h, sum(h, t.signed), t.sig) == nil
	case strings.HasPrefix(t.alg, "PS"):
		opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: h}
		return rsa.VerifyPSS(pub, h, sum(h, t.signed), t.sig, opts) == nil
	}
	return false // an RSA key is never tried for ES, HS or EdDSA
}

func verifyHMAC(key []byte, t *token) bool {
	h := hashFor(t.alg, "HS384", "HS384", "HS512", "HS512")
	var mac hash.Hash
	switch h {
	case crypto.SHA384:
		mac = hmac.New(sha512.New384, key)
	case crypto.SHA512:
		mac = hmac.New(sha512.New, key)
	default:
		mac = hmac.New(sha256.New, key)
	}
	mac.Write([]byte(t.signed))
	return hmac.Equal(mac.Sum(nil), t.sig)
}
