package jwtauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	securityv1beta1 "istio.io/api/security/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-security/palisade/internal/authz"
	"github.com/palisade-security/palisade/internal/config"
)

const (
	iss1 = "test-issuer-1@istio.io"
	iss2 = "test-issuer-2@istio.io"
)

// rsaPub17 is an RSA public key with exponent 17, which Envoy refuses.
var rsaPub17 = rsa.PublicKey{N: new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 2047), big.NewInt(1)), E: 17}

// now is the clock of every test; tokens are minted relative to it.
var now = time.Unix(1_700_000_000, 0)

type testKeys struct {
	rsa1, rsa2, rogue *rsa.PrivateKey
	ec1               *ecdsa.PrivateKey
	ed1               ed25519.PrivateKey
	hmac1             []byte
}

var (
	keysOnce sync.Once
	tkeys    testKeys
)

// keys generates the test keys once per test binary: RSA generation is
// slow enough to matter in a fuzz loop.
func keys(tb testing.TB) *testKeys {
	tb.Helper()
	keysOnce.Do(func() {
		var err error
		must := func(e error) {
			if e != nil && err == nil {
				err = e
			}
		}
		tkeys.rsa1, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		k, e := rsa.GenerateKey(rand.Reader, 2048)
		must(e)
		tkeys.rsa2 = k
		k, e = rsa.GenerateKey(rand.Reader, 2048)
		must(e)
		tkeys.rogue = k
		ec, e := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(e)
		tkeys.ec1 = ec
		_, ed, e := ed25519.GenerateKey(rand.Reader)
		must(e)
		tkeys.ed1 = ed
		tkeys.hmac1 = []byte("0123456789abcdef0123456789abcdef")
		if err != nil {
			panic(err)
		}
	})
	return &tkeys
}

// mint signs claims with go-jose, as a real issuer would.
func mint(tb testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	tb.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		tb.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// raw assembles a token from arbitrary header and payload JSON, for the
// malformed cases a signer would refuse to produce.
func raw(header, payload string, sig []byte) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(sig)
}

// claims1 is a valid payload for iss, expiring in an hour, with extra
// claims merged in (a nil value deletes a claim).
func claims(iss string, extra map[string]any) map[string]any {
	c := map[string]any{"iss": iss, "sub": "sub-1", "iat": now.Unix(), "exp": now.Unix() + 3600}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// rs1 is a valid RS256 token of iss1 signed with rsa1.
func rs1(tb testing.TB, extra map[string]any) string {
	return mint(tb, jose.RS256, keys(tb).rsa1, "rsa1", claims(iss1, extra))
}

// jwksJSON serializes the public halves of keys as a JWKS document.
func jwksJSON(tb testing.TB, ks ...jose.JSONWebKey) string {
	tb.Helper()
	set := jose.JSONWebKeySet{}
	for _, k := range ks {
		if k.Key != nil {
			if _, sym := k.Key.([]byte); !sym {
				k = k.Public()
			}
		}
		set.Keys = append(set.Keys, k)
	}
	b, err := json.Marshal(set)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// defaultJWKS holds rsa1 (RS256) and ec1 (ES256), with kids.
func defaultJWKS(tb testing.TB) string {
	k := keys(tb)
	return jwksJSON(tb,
		jose.JSONWebKey{Key: k.rsa1, KeyID: "rsa1", Algorithm: "RS256", Use: "sig"},
		jose.JSONWebKey{Key: k.ec1, KeyID: "ec1", Algorithm: "ES256", Use: "sig"},
	)
}

type ruleOpt func(*securityv1beta1.JWTRule)

// rule is a jwtRule for iss with the default inline JWKS.
func rule(tb testing.TB, iss string, opts ...ruleOpt) *securityv1beta1.JWTRule {
	r := &securityv1beta1.JWTRule{Issuer: iss, Jwks: defaultJWKS(tb)}
	for _, o := range opts {
		o(r)
	}
	return r
}

func withJwks(s string) ruleOpt      { return func(r *securityv1beta1.JWTRule) { r.Jwks = s } }
func withAud(a ...string) ruleOpt    { return func(r *securityv1beta1.JWTRule) { r.Audiences = a } }
func withParams(p ...string) ruleOpt { return func(r *securityv1beta1.JWTRule) { r.FromParams = p } }
func withCookies(c ...string) ruleOpt {
	return func(r *securityv1beta1.JWTRule) { r.FromCookies = c }
}
func withHeader(name, prefix string) ruleOpt {
	return func(r *securityv1beta1.JWTRule) {
		r.FromHeaders = append(r.FromHeaders, &securityv1beta1.JWTHeader{Name: name, Prefix: prefix})
	}
}
func withJwksURI(u string) ruleOpt {
	return func(r *securityv1beta1.JWTRule) { r.Jwks, r.JwksUri = "", u }
}
func withDiscovery() ruleOpt { return func(r *securityv1beta1.JWTRule) { r.Jwks, r.JwksUri = "", "" } }

func ra(ns, name string, rules ...*securityv1beta1.JWTRule) *config.Resource[*securityv1beta1.RequestAuthentication] {
	return &config.Resource[*securityv1beta1.RequestAuthentication]{
		APIVersion: "security.istio.io/v1",
		Kind:       "RequestAuthentication",
		Meta:       metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       &securityv1beta1.RequestAuthentication{JwtRules: rules},
	}
}

func ras(rs ...*config.Resource[*securityv1beta1.RequestAuthentication]) []*config.Resource[*securityv1beta1.RequestAuthentication] {
	return rs
}

// hdrs builds request headers from name/value pairs (names lowercased by
// the caller, as authz.Headers requires), plus a GET :method and :path.
func hdrs(kv ...string) authz.Headers {
	h := authz.Headers{{Name: ":method", Value: "GET"}, {Name: ":path", Value: "/"}}
	for i := 0; i+1 < len(kv); i += 2 {
		h = append(h, authz.Header{Name: kv[i], Value: kv[i+1]})
	}
	return h
}

func bearer(tok string) authz.Headers { return hdrs("authorization", "Bearer "+tok) }

// mapKeys is a KeySource serving fixed sets by jwksUri or issuer, or an
// error.
type mapKeys struct {
	sets map[string]*jose.JSONWebKeySet
	err  error
}

func (m mapKeys) JWKS(_ context.Context, issuer, uri string, _ time.Duration) (*jose.JSONWebKeySet, error) {
	if m.err != nil {
		return nil, m.err
	}
	if s, ok := m.sets[uri]; ok {
		return s, nil
	}
	if s, ok := m.sets[issuer]; ok {
		return s, nil
	}
	return nil, errors.New("no such key set")
}
