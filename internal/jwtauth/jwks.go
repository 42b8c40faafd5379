package jwtauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// ParseJWKS parses a JSON Web Key Set the way Envoy loads the inline JWKS
// istiod gives it.
//
// The document must be a JSON object with a "keys" array; otherwise it is
// an error (istiod refuses such a fetched body and fails closed; Envoy
// refuses such an inline one). Keys Envoy cannot use are skipped rather
// than failing the whole set, exactly as Envoy skips them: unknown "kty",
// an RSA exponent other than 3 or 65537, an "alg" that does not fit the key
// type, an EC point off its curve, and so on. A set with no usable key is
// therefore returned without error; every token checked against it gets
// "Jwks doesn't have any valid public key".
//
// go-jose's own JWK decoder is not used for the keys because it differs
// from Envoy where verdicts depend on it: Envoy infers a missing EC "crv"
// from "alg" (or assumes P-256), accepts short EC coordinates and padded or
// whitespace-broken base64, and ignores x5c/x5t consistency.
func ParseJWKS(data []byte) (*jose.JSONWebKeySet, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil || doc == nil {
		return nil, errors.New("not a JSON object")
	}
	rawKeys, found := doc["keys"]
	if !found {
		return nil, errors.New(`no "keys" field`)
	}
	var keys []json.RawMessage
	if err := json.Unmarshal(rawKeys, &keys); err != nil || keys == nil {
		return nil, errors.New(`"keys" is not an array`)
	}
	set := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, raw := range keys {
		var fields map[string]any
		if json.Unmarshal(raw, &fields) != nil || fields == nil {
			continue // Envoy skips entries that are not objects
		}
		if k, err := parseJWK(fields); err == nil {
			set.Keys = append(set.Keys, k)
		}
	}
	return set, nil
}

// parseJWK follows Envoy's extractJwk (source/common/jwt/jwks.cc).
func parseJWK(f map[string]any) (jose.JSONWebKey, error) {
	var k jose.JSONWebKey
	kty, err := jwkString(f, "kty")
	if err != nil {
		return k, err
	}
	// kid and alg are optional; a value that is not a string is ignored.
	k.KeyID, _ = f["kid"].(string)
	k.Algorithm, _ = f["alg"].(string)
	k.Use, _ = f["use"].(string)
	switch kty {
	case "RSA":
		k.Key, err = parseRSA(f, k.Algorithm)
	case "EC":
		k.Key, err = parseEC(f, k.Algorithm)
	case "oct":
		k.Key, err = parseOct(f, k.Algorithm)
	case "OKP":
		k.Key, err = parseOKP(f, k.Algorithm)
	default:
		err = fmt.Errorf("kty %q is not supported", kty)
	}
	return k, err
}

// jwkString reads a required string member.
func jwkString(f map[string]any, name string) (string, error) {
	v, found := f[name]
	if !found {
		return "", fmt.Errorf("%s is missing", name)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s is not a string", name)
	}
	return s, nil
}

func jwkBytes(f map[string]any, name string) ([]byte, error) {
	s, err := jwkString(f, name)
	if err != nil {
		return nil, err
	}
	b, ok := decodeBase64URL(s)
	if !ok {
		return nil, fmt.Errorf("%s is not base64url", name)
	}
	return b, nil
}

func parseRSA(f map[string]any, alg string) (*rsa.PublicKey, error) {
	if err := checkKeyAlg("RSA", alg); err != nil {
		return nil, err
	}
	n, err := jwkBytes(f, "n")
	if err != nil {
		return nil, err
	}
	e, err := jwkBytes(f, "e")
	if err != nil {
		return nil, err
	}
	return rsaKey(new(big.Int).SetBytes(n), new(big.Int).SetBytes(e))
}

// rsaKey applies the checks Envoy's createRsaFromJwk makes: only the
// exponents 3 and 65537, and BoringSSL's RSA_check_key on a public key (an
// odd modulus of at most 16384 bits).
func rsaKey(n, e *big.Int) (*rsa.PublicKey, error) {
	if !e.IsInt64() || (e.Int64() != 3 && e.Int64() != 65537) {
		return nil, errors.New("RSA exponent is neither 3 nor 65537")
	}
	if n.Bit(0) == 0 || n.BitLen() > 16384 || n.BitLen() <= 33 {
		return nil, errors.New("RSA modulus is even, or not 34 to 16384 bits long")
	}
	return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
}

// curveForEC picks the curve as Envoy does: "alg" first, then "crv", P-256
// when neither is given; "alg" and "crv" must agree when both are.
func curveForEC(alg, crv string) (elliptic.Curve, error) {
	if alg != "" && crv != "" {
		if (alg == "ES256") != (crv == "P-256") || (alg == "ES384") != (crv == "P-384") ||
			(alg == "ES512") != (crv == "P-521") {
			return nil, fmt.Errorf("EC crv %q does not fit alg %q", crv, alg)
		}
	}
	switch {
	case alg == "ES256" || crv == "P-256" || (alg == "" && crv == ""):
		return elliptic.P256(), nil
	case alg == "ES384" || crv == "P-384":
		return elliptic.P384(), nil
	case alg == "ES512" || crv == "P-521":
		return elliptic.P521(), nil
	}
	return nil, fmt.Errorf("EC crv %q / alg %q not supported", crv, alg)
}

func parseEC(f map[string]any, alg string) (*ecdsa.PublicKey, error) {
	if err := checkKeyAlg("EC", alg); err != nil {
		return nil, err
	}
	var crv string
	if v, found := f["crv"]; found {
		s, ok := v.(string)
		if !ok {
			return nil, errors.New("EC crv is not a string")
		}
		crv = s
	}
	curve, err := curveForEC(alg, crv)
	if err != nil {
		return nil, err
	}
	x, err := jwkBytes(f, "x")
	if err != nil {
		return nil, err
	}
	y, err := jwkBytes(f, "y")
	if err != nil {
		return nil, err
	}
	return ecKey(curve, x, y)
}

// ecKey builds a point from big-endian coordinates of any length, as
// BN_bin2bn does, and rejects it unless it lies on the curve.
func ecKey(curve elliptic.Curve, x, y []byte) (*ecdsa.PublicKey, error) {
	size := (curve.Params().BitSize + 7) / 8
	x, y = trimLeadingZeros(x), trimLeadingZeros(y)
	if len(x) > size || len(y) > size {
		return nil, errors.New("EC coordinate is longer than the curve's")
	}
	point := make([]byte, 1+2*size)
	point[0] = 4
	copy(point[1+size-len(x):1+size], x)
	copy(point[1+2*size-len(y):], y)
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		return nil, errors.New("EC point is not on the curve")
	}
	return pub, nil
}

func trimLeadingZeros(b []byte) []byte {
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	return b
}

func parseOct(f map[string]any, alg string) ([]byte, error) {
	if err := checkKeyAlg("oct", alg); err != nil {
		return nil, err
	}
	k, err := jwkBytes(f, "k")
	if err != nil || len(k) == 0 {
		return nil, errors.New("oct key k is missing, empty or not base64url")
	}
	return k, nil
}

func parseOKP(f map[string]any, alg string) (ed25519.PublicKey, error) {
	if err := checkKeyAlg("OKP", alg); err != nil {
		return nil, err
	}
	crv, err := jwkString(f, "crv")
	if err != nil {
		return nil, err
	}
	if crv != "Ed25519" {
		return nil, fmt.Errorf("OKP crv %q is not supported", crv)
	}
	x, err := jwkBytes(f, "x")
	if err != nil {
		return nil, err
	}
	if len(x) != ed25519.PublicKeySize {
		return nil, errors.New("OKP x is not 32 bytes")
	}
	return ed25519.PublicKey(x), nil
}

// checkKeyAlg enforces Envoy's per-type constraint on a JWK's "alg".
func checkKeyAlg(kty, alg string) error {
	if alg == "" {
		return nil
	}
	ok := false
	switch kty {
	case "RSA":
		ok = strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case "EC":
		ok = strings.HasPrefix(alg, "ES")
	case "oct":
		ok = alg == "HS256" || alg == "HS384" || alg == "HS512"
	case "OKP":
		ok = alg == "EdDSA"
	}
	if !ok {
		return fmt.Errorf("alg %q does not fit a %s key", alg, kty)
	}
	return nil
}

// verifyKey is a JWK reduced to what Envoy's signature check reads.
type verifyKey struct {
	kty, kid, alg string
	rsa           *rsa.PublicKey
	ec            *ecdsa.PublicKey
	hmac          []byte
	ed            ed25519.PublicKey
}

// keysFromSet converts a key set that any KeySource returned, applying
// Envoy's acceptance rules again: a KeySource other than ParseJWKS may hand
// over keys Envoy would have dropped, or private keys, of which only the
// public half is ever used.
func keysFromSet(set *jose.JSONWebKeySet) []verifyKey {
	if set == nil {
		return nil
	}
	out := make([]verifyKey, 0, len(set.Keys))
	for _, jk := range set.Keys {
		k := verifyKey{kid: jk.KeyID, alg: jk.Algorithm}
		var err error
		switch key := jk.Key.(type) {
		case *rsa.PrivateKey:
			k.kty, k.rsa = "RSA", &key.PublicKey
		case *rsa.PublicKey:
			k.kty, k.rsa = "RSA", key
		case *ecdsa.PrivateKey:
			k.kty, k.ec = "EC", &key.PublicKey
		case *ecdsa.PublicKey:
			k.kty, k.ec = "EC", key
		case ed25519.PrivateKey:
			k.kty, k.ed = "OKP", key.Public().(ed25519.PublicKey)
		case ed25519.PublicKey:
			k.kty, k.ed = "OKP", key
		case []byte:
			k.kty, k.hmac = "oct", key
		default:
			continue
		}
		if err = checkKeyAlg(k.kty, k.alg); err != nil {
			continue
		}
		switch k.kty {
		case "RSA":
			if k.rsa == nil || k.rsa.N == nil {
				continue
			}
			if _, err = rsaKey(k.rsa.N, big.NewInt(int64(k.rsa.E))); err != nil {
				continue
			}
		case "EC":
			if k.ec == nil || k.ec.Curve == nil {
				continue
			}
			if _, err = curveForEC(k.alg, k.ec.Curve.Params().Name); err != nil {
				continue
			}
		case "OKP":
			if len(k.ed) != ed25519.PublicKeySize {
				continue
			}
		case "oct":
			if len(k.hmac) == 0 {
				continue
			}
		}
		out = append(out, k)
	}
	return out
}
