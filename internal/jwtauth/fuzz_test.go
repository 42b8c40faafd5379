package jwtauth

import (
	"net/url"
	"strings"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/palisade-security/palisade/internal/authz"
)

var (
	fuzzOnce   sync.Once
	fuzzPolicy *Policy
)

// policyForFuzz has every key type and two same-issuer rules, one with
// audiences, so that fuzzed tokens reach each verification path.
func policyForFuzz(tb testing.TB) *Policy {
	fuzzOnce.Do(func() {
		k := keys(tb)
		all := jwksJSON(tb,
			jose.JSONWebKey{Key: k.rsa1, KeyID: "rsa1"},
			jose.JSONWebKey{Key: k.ec1, KeyID: "ec1"},
			jose.JSONWebKey{Key: k.ed1, KeyID: "ed1"},
			jose.JSONWebKey{Key: k.hmac1, KeyID: "hs1", Algorithm: "HS256"},
		)
		fuzzPolicy = New(ras(
			ra("foo", "a", rule(tb, iss1, withJwks(all), withAud("https://aud.example/"))),
			ra("foo", "b", rule(tb, iss1)),
			ra("foo", "c", rule(tb, iss2)),
		), nil)
	})
	return fuzzPolicy
}

// FuzzAuthenticate feeds arbitrary Authorization header values, and the
// same bytes as the access_token parameter: whatever a client sends,
// Authenticate must not panic and must answer 0, 401 or 403.
func FuzzAuthenticate(f *testing.F) {
	k := keys(f)
	valid := rs1(f, map[string]any{"aud": "aud.example"})
	parts := strings.Split(valid, ".")
	for _, seed := range []string{
		"Bearer " + valid,
		"Bearer " + mint(f, jose.ES256, k.ec1, "ec1", claims(iss1, nil)),
		"Bearer " + mint(f, jose.EdDSA, k.ed1, "ed1", claims(iss1, nil)),
		"Bearer " + mint(f, jose.HS256, k.hmac1, "hs1", claims(iss2, nil)),
		"Bearer " + rs1(f, map[string]any{"exp": 1}),
		"Bearer " + rs1(f, map[string]any{"aud": []any{"x", 1}}),
		"Bearer " + parts[0] + "." + parts[1] + ".",
		"Bearer " + parts[0] + ".." + parts[1] + "." + parts[2],
		"Bearer " + raw(`{"alg":"none"}`, `{"iss":"`+iss1+`"}`, nil),
		"Bearer " + raw(`{"alg":"EdDSA","kid":"ed1"}`, `{"iss":"`+iss1+`"}`, []byte("short")),
		"Bearer " + raw(`{"alg":"ES256"}`, `{"iss":"`+iss1+`","exp":1e300}`, []byte{1}),
		"Bearer ",
		"Bearer",
		"bearer " + valid,
		"Bearer a.b.c",
		"Bearer ...",
		"Bearer e30.e30.e30",
		"Bearer eyJhbGciOiJub25lIn0.e30.",
		"Bearer \x00\xff.\xfe.==",
		"Bearer ☃.☃.☃",
		"",
	} {
		f.Add(seed)
	}
	p := policyForFuzz(f)
	f.Fuzz(func(t *testing.T, v string) {
		check := func(r Result) {
			switch r.Status {
			case 0:
				if r.Detail != "" {
					t.Fatalf("pass with detail %q", r.Detail)
				}
			case 401, 403:
				if r.Detail == "" || r.Claims != nil {
					t.Fatalf("rejection %+v", r)
				}
			default:
				t.Fatalf("status %d for %q", r.Status, v)
			}
		}
		check(p.Authenticate(authz.Headers{{Name: ":path", Value: "/"}, {Name: "authorization", Value: v}}, "", now))
		check(p.Authenticate(authz.Headers{{Name: ":path", Value: "/"}}, "access_token="+url.QueryEscape(v), now))
	})
}
