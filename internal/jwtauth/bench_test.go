package jwtauth

import (
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// BenchmarkAuthenticate measures a request carrying a valid token, the
// common case: parse, checks, one signature verification and the payload.
func BenchmarkAuthenticate(b *testing.B) {
	k := keys(b)
	p := New(ras(ra("foo", "jwt", rule(b, iss1, withAud("aud.example")))), nil)
	for _, c := range []struct {
		name string
		tok  string
	}{
		{"RS256", mint(b, jose.RS256, k.rsa1, "rsa1", claims(iss1, map[string]any{"aud": "aud.example", "scope": "read write"}))},
		{"ES256", mint(b, jose.ES256, k.ec1, "ec1", claims(iss1, map[string]any{"aud": "aud.example", "scope": "read write"}))},
	} {
		h := bearer(c.tok)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if r := p.Authenticate(h, "", now); r.Status != 0 {
					b.Fatalf("%+v", r)
				}
			}
		})
	}
}
