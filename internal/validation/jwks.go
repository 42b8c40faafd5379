package validation

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// istiod parses inline JWKS with lestrrat-go/jwx v1 (jwk.Parse), and that
// parser, not a stricter one, decides what the webhook accepts: it takes an
// RSA private key given only "d" (istio's own test does exactly that), any
// "crv" string, and a lone key object in place of a set, all of which
// go-jose refuses. This file therefore reads a JWKS with jwx v1's rules:
//
//   - the document is a JSON object; its "keys" member, if present, is a
//     list of keys, otherwise the whole object is one key;
//   - a key's "kty" is RSA, EC, OKP or oct, and the presence of "d" makes
//     an RSA, EC or OKP key private;
//   - known members must have their JSON type (strings; base64 strings for
//     key material, in any of the four base64 alphabets/paddings; a string
//     list for key_ops; base64 DER certificates for x5c), other members may
//     hold anything;
//   - each key type has its required members.
//
// Error texts follow jwx's where that is cheap and are otherwise plain.

// jwk is what validation needs to know about one parsed key.
type jwk struct {
	kty     string
	private bool // private RSA/EC/OKP key, or a symmetric key
}

// jwkMember is how jwx v1 decodes a known member.
type jwkMember int

const (
	memberString jwkMember = iota
	memberBytes
	memberStringList
	memberCertChain
)

var jwkCommonMembers = map[string]jwkMember{
	"kty": memberString, "alg": memberString, "kid": memberString, "use": memberString,
	"x5t": memberString, "x5t#S256": memberString, "x5u": memberString,
	"key_ops": memberStringList, "x5c": memberCertChain,
}

// jwkTypes lists, per key type and visibility, the type-specific members
// and the required ones, as jwx v1's generated key types declare them.
var jwkTypes = map[string]map[bool]struct {
	members  map[string]jwkMember
	required []string
}{
	"RSA": {
		false: {map[string]jwkMember{"e": memberBytes, "n": memberBytes}, []string{"e", "n"}},
		true: {map[string]jwkMember{"d": memberBytes, "dp": memberBytes, "dq": memberBytes, "e": memberBytes,
			"n": memberBytes, "p": memberBytes, "q": memberBytes, "qi": memberBytes}, []string{"d", "e", "n"}},
	},
	"EC": {
		false: {map[string]jwkMember{"crv": memberString, "x": memberBytes, "y": memberBytes}, []string{"crv", "x", "y"}},
		true:  {map[string]jwkMember{"crv": memberString, "d": memberBytes, "x": memberBytes, "y": memberBytes}, []string{"crv", "d", "x", "y"}},
	},
	"OKP": {
		false: {map[string]jwkMember{"crv": memberString, "x": memberBytes}, []string{"crv", "x"}},
		true:  {map[string]jwkMember{"crv": memberString, "d": memberBytes, "x": memberBytes}, []string{"crv", "d", "x"}},
	},
	"oct": {
		false: {map[string]jwkMember{"k": memberBytes}, []string{"k"}},
		true:  {map[string]jwkMember{"k": memberBytes}, []string{"k"}},
	},
}

// parseJwks parses an inline JWKS the way jwx v1's jwk.Parse does.
func parseJwks(s string) ([]jwk, error) {
	data := []byte(s)
	members, err := jsonObject(data)
	if err != nil {
		return nil, fmt.Errorf("failed to unmarshal JWK set: %w", err)
	}
	// jwx reads every "keys" member (a repeated one adds its keys too) and
	// treats a document without one as a single key.
	var keys []jwk
	sawKeys := false
	for _, m := range members {
		if m.name != "keys" {
			continue
		}
		sawKeys = true
		var list []json.RawMessage
		if err := json.Unmarshal(m.value, &list); err != nil {
			return nil, fmt.Errorf(`failed to unmarshal JWK set: failed to decode "keys": %w`, err)
		}
		for i, src := range list {
			k, err := parseJwk(src)
			if err != nil {
				return nil, fmt.Errorf(`failed to unmarshal JWK set: failed to decode key #%d in "keys": %w`, i, err)
			}
			keys = append(keys, k)
		}
	}
	if !sawKeys {
		k, err := parseJwk(data)
		if err != nil {
			return nil, fmt.Errorf("failed to unmarshal JWK set: failed to parse sole key in key set: %w", err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

type jsonMember struct {
	name  string
	value json.RawMessage
}

// jsonObject splits a JSON object into its members, in order and keeping
// duplicates (jwx reads members one by one, so the last one wins).
func jsonObject(data []byte) ([]jsonMember, error) {
	if !json.Valid(data) {
		var v any
		return nil, json.Unmarshal(data, &v) // for encoding/json's message
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("expected a JSON object, got %v", tok)
	}
	var out []jsonMember
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, jsonMember{tok.(string), v})
	}
	return out, nil
}

// parseJwk parses one key (jwx v1 jwk.ParseKey).
func parseJwk(data []byte) (jwk, error) {
	var hint struct {
		Kty string          `json:"kty"`
		D   json.RawMessage `json:"d"`
	}
	if err := json.Unmarshal(data, &hint); err != nil {
		return jwk{}, fmt.Errorf("failed to unmarshal JSON into key hint: %w", err)
	}
	types, ok := jwkTypes[hint.Kty]
	if !ok {
		return jwk{}, fmt.Errorf("invalid key type from JSON (%s)", hint.Kty)
	}
	// jwx looks only at whether "d" is there, so even "d": null counts.
	private := len(hint.D) > 0
	spec := types[private]
	members, err := jsonObject(data)
	if err != nil {
		return jwk{}, err
	}
	seen := map[string]bool{}
	for _, m := range members {
		kind, known := spec.members[m.name]
		if !known {
			kind, known = jwkCommonMembers[m.name]
		}
		if !known {
			continue // kept as a private parameter; any JSON will do
		}
		if err := checkJwkMember(m, kind); err != nil {
			return jwk{}, err
		}
		if m.name == "kty" {
			var kty string
			_ = json.Unmarshal(m.value, &kty) // checked to be a string above
			if kty != hint.Kty {
				return jwk{}, fmt.Errorf("invalid kty value (%s)", kty)
			}
		}
		seen[m.name] = true
	}
	for _, r := range spec.required {
		if !seen[r] {
			return jwk{}, fmt.Errorf("required field %s is missing", r)
		}
	}
	return jwk{kty: hint.Kty, private: private || hint.Kty == "oct"}, nil
}

func checkJwkMember(m jsonMember, kind jwkMember) error {
	switch kind {
	case memberString, memberBytes:
		var s string // JSON null decodes to "" without error, as in jwx
		if err := json.Unmarshal(m.value, &s); err != nil {
			return fmt.Errorf("failed to decode value for key %s: %w", m.name, err)
		}
		if kind == memberBytes {
			if _, err := jwxBase64(s); err != nil {
				return fmt.Errorf("failed to decode value for key %s: expected base64 encoded []byte", m.name)
			}
		}
	case memberStringList:
		var l []string
		if err := json.Unmarshal(m.value, &l); err != nil {
			return fmt.Errorf("failed to decode value for key %s: %w", m.name, err)
		}
	case memberCertChain:
		var l []string
		if err := json.Unmarshal(m.value, &l); err != nil {
			return fmt.Errorf("failed to decode value for key %s: %w", m.name, err)
		}
		for _, c := range l {
			der, err := jwxBase64(c)
			if err != nil {
				return fmt.Errorf("failed to decode value for key %s: failed to base64 decode list element: %w", m.name, err)
			}
			if _, err := x509.ParseCertificate(der); err != nil {
				return fmt.Errorf("failed to decode value for key %s: failed to parse certificate: %w", m.name, err)
			}
		}
	}
	return nil
}

// jwxBase64 decodes as jwx does: the alphabet (URL or standard) and the
// padding are guessed from the text itself.
func jwxBase64(s string) ([]byte, error) {
	raw := !strings.HasSuffix(s, "=")
	url := !strings.ContainsAny(s, "+/")
	enc := base64.StdEncoding
	switch {
	case raw && url:
		enc = base64.RawURLEncoding
	case url:
		enc = base64.URLEncoding
	case raw:
		enc = base64.RawStdEncoding
	}
	return enc.DecodeString(s)
}
