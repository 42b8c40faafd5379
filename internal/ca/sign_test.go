package ca

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// TestSignX509SVIDConformance signs SVIDs for each CA key type and each
// accepted workload key type and checks them against X509-SVID (spiffe
// standards/X509-SVID.md) with go-spiffe's own parser and verifier, then
// field by field against SPIRE's SVID template (credtemplate/builder.go).
func TestSignX509SVIDConformance(t *testing.T) {
	for _, caKey := range []string{KeyTypeECP256, KeyTypeECP384, KeyTypeRSA2048} {
		for _, wlKey := range []string{"p256", "p384", "rsa2048"} {
			t.Run(caKey+"/"+wlKey, func(t *testing.T) {
				now := time.Now().Truncate(time.Second)
				clk := newFakeClock(now)
				c, _ := newTestCA(t, Config{KeyType: caKey, Clock: clk.Now})
				key := genKey(t, wlKey)
				id := mustID(t, "spiffe://example.org/ns/default/sa/web")
				dns := []string{"web.default.svc", "web"}

				chain, err := c.SignX509SVID(context.Background(), makeCSR(t, key), id, 0, dns)
				if err != nil {
					t.Fatalf("SignX509SVID: %v", err)
				}
				if len(chain) != 1 {
					t.Fatalf("self-signed CA: chain has %d certificates, want the leaf only", len(chain))
				}
				leaf := chain[0]

				// go-spiffe ParseRaw applies the §3.1/§4 leaf checks and the
				// key match; Verify does §5 path validation.
				keyDER, err := x509.MarshalPKCS8PrivateKey(key)
				if err != nil {
					t.Fatal(err)
				}
				svid, err := x509svid.ParseRaw(leaf.Raw, keyDER)
				if err != nil {
					t.Fatalf("x509svid.ParseRaw: %v", err)
				}
				if svid.ID != id {
					t.Errorf("svid ID = %s, want %s", svid.ID, id)
				}
				gotID, _, err := x509svid.Verify(chain, c.Bundle(), x509svid.WithTime(now))
				if err != nil {
					t.Fatalf("x509svid.Verify: %v", err)
				}
				if gotID != id {
					t.Errorf("verified ID = %s, want %s", gotID, id)
				}

				// §2: exactly one URI SAN, the ID; DNS SANs allowed.
				if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id.String() {
					t.Errorf("URIs = %v, want exactly [%s]", leaf.URIs, id)
				}
				if len(leaf.DNSNames) != 2 || leaf.DNSNames[0] != dns[0] || leaf.DNSNames[1] != dns[1] {
					t.Errorf("DNSNames = %v, want %v", leaf.DNSNames, dns)
				}
				// SPIRE: CN is the first DNS name.
				if leaf.Subject.CommonName != dns[0] {
					t.Errorf("CN = %q, want %q", leaf.Subject.CommonName, dns[0])
				}
				// §4.1 cA=false.
				if leaf.IsCA || !leaf.BasicConstraintsValid {
					t.Errorf("IsCA=%v BasicConstraintsValid=%v, want false/true", leaf.IsCA, leaf.BasicConstraintsValid)
				}
				// §4.3 key usage present, critical, digitalSignature, no
				// certSign/cRLSign.
				wantKU := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement
				if leaf.KeyUsage != wantKU {
					t.Errorf("KeyUsage = %b, want %b", leaf.KeyUsage, wantKU)
				}
				if !extensionCritical(leaf, asn1.ObjectIdentifier{2, 5, 29, 15}) {
					t.Error("keyUsage extension is not critical (X509-SVID §4.3)")
				}
				// §4.4 EKU: both serverAuth and clientAuth.
				if len(leaf.ExtKeyUsage) != 2 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.ExtKeyUsage[1] != x509.ExtKeyUsageClientAuth {
					t.Errorf("ExtKeyUsage = %v, want serverAuth+clientAuth", leaf.ExtKeyUsage)
				}
				// SPIRE: AKI = CA SKI, random 128-bit serial.
				ca := c.X509Authorities()[0]
				if !bytes.Equal(leaf.AuthorityKeyId, ca.SubjectKeyId) || len(leaf.AuthorityKeyId) == 0 {
					t.Errorf("AKI = %x, want CA SKI %x", leaf.AuthorityKeyId, ca.SubjectKeyId)
				}
				if len(leaf.SubjectKeyId) == 0 {
					t.Error("leaf has no SKI")
				}
				if leaf.SerialNumber.BitLen() < 64 || leaf.SerialNumber.BitLen() > 128 {
					t.Errorf("serial is %d bits, want a random 128-bit value", leaf.SerialNumber.BitLen())
				}
				// NotBeforeCushion and default TTL.
				if !leaf.NotBefore.Equal(now.Add(-NotBeforeCushion)) {
					t.Errorf("NotBefore = %s, want now-10s", leaf.NotBefore)
				}
				if !leaf.NotAfter.Equal(now.Add(DefaultSVIDTTL)) {
					t.Errorf("NotAfter = %s, want now+1h", leaf.NotAfter)
				}
			})
		}
	}
}

func extensionCritical(c *x509.Certificate, oid asn1.ObjectIdentifier) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) {
			return e.Critical
		}
	}
	return false
}

// TestCACertificateTemplate checks the CA certificate against X509-SVID
// §3.2/§4.3 and SPIRE's CA template: cA, critical keyCertSign|cRLSign, URI
// SAN spiffe://td with no path, C=US,O=SPIFFE plus serialNumber = serial
// (SPIRE #4415), SKI and AKI.
func TestCACertificateTemplate(t *testing.T) {
	c, _ := newTestCA(t, Config{})
	ca := c.X509Authorities()[0]
	if !ca.IsCA || !ca.BasicConstraintsValid {
		t.Error("CA certificate is not a CA")
	}
	if ca.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("KeyUsage = %b", ca.KeyUsage)
	}
	if !extensionCritical(ca, asn1.ObjectIdentifier{2, 5, 29, 15}) {
		t.Error("keyUsage not critical")
	}
	if len(ca.URIs) != 1 || ca.URIs[0].String() != "spiffe://example.org" {
		t.Errorf("URIs = %v, want [spiffe://example.org]", ca.URIs)
	}
	s := ca.Subject
	if len(s.Country) != 1 || s.Country[0] != "US" || len(s.Organization) != 1 || s.Organization[0] != "SPIFFE" {
		t.Errorf("Subject = %s, want C=US, O=SPIFFE", s)
	}
	if s.SerialNumber != ca.SerialNumber.String() {
		t.Errorf("subject serialNumber = %q, want the certificate serial %s", s.SerialNumber, ca.SerialNumber)
	}
	if len(ca.SubjectKeyId) == 0 || !bytes.Equal(ca.AuthorityKeyId, ca.SubjectKeyId) {
		t.Errorf("SKI %x / AKI %x: want both, equal for a self-signed CA", ca.SubjectKeyId, ca.AuthorityKeyId)
	}
	if got := ca.NotAfter.Sub(ca.NotBefore); got != DefaultCATTL+NotBeforeCushion {
		t.Errorf("CA lifetime = %s, want 24h + cushion", got)
	}
	// Two CAs never share a subject.
	if err := c.PrepareNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	roots := c.X509Authorities()
	if len(roots) != 2 || roots[0].Subject.String() == roots[1].Subject.String() {
		t.Errorf("prepared CA subject %q equals active %q", roots[1].Subject, roots[0].Subject)
	}
}

// TestSignX509SVIDRefusals: every bad request gets its specific reason and
// no signature is made.
func TestSignX509SVIDRefusals(t *testing.T) {
	c, _ := newTestCA(t, Config{})
	counter := countSignatures(t, c)
	good := mustID(t, "spiffe://example.org/workload")
	p256 := genKey(t, "p256")

	tampered := makeCSR(t, p256)
	tampered[len(tampered)-3] ^= 0xff // inside the signature BIT STRING

	bcValue, err := asn1.Marshal(struct {
		IsCA bool
	}{true})
	if err != nil {
		t.Fatal(err)
	}
	caCSR := makeCSR(t, p256, pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: bcValue})
	// A basicConstraints with cA=false is not a CA request.
	notCAValue, _ := asn1.Marshal(struct{}{})
	notCACSR := makeCSR(t, p256, pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Value: notCAValue})

	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		csr  []byte
		id   string
		ttl  time.Duration
		dns  []string
		want error
	}{
		{name: "not DER", csr: []byte("hello"), want: ErrInvalidCSR},
		{name: "empty CSR", csr: nil, want: ErrInvalidCSR},
		{name: "signature does not verify (proof of possession)", csr: tampered, want: ErrInvalidCSR},
		{name: "EC P-224 is below P-256", csr: makeCSR(t, genKey(t, "p224")), want: ErrWeakKey},
		{name: "RSA 1024 is below 2048", csr: makeCSR(t, genKey(t, "rsa1024")), want: ErrWeakKey},
		{name: "Ed25519 is not an accepted key type", csr: makeCSR(t, edKey), want: ErrWeakKey},
		{name: "basicConstraints cA=true (X509-SVID §4.1)", csr: caCSR, want: ErrCSRRequestsCA},
		{name: "other trust domain", csr: makeCSR(t, p256), id: "spiffe://other.org/workload", want: ErrForeignTrustDomain},
		{name: "root ID (X509-SVID §3.1)", csr: makeCSR(t, p256), id: "spiffe://example.org", want: ErrRootID},
		{name: "negative TTL", csr: makeCSR(t, p256), ttl: -time.Second, want: ErrInvalidTTL},
		{name: "DNS name with space", csr: makeCSR(t, p256), dns: []string{"a b"}, want: ErrInvalidDNSName},
		{name: "empty DNS name", csr: makeCSR(t, p256), dns: []string{""}, want: ErrInvalidDNSName},
		{name: "DNS label too long", csr: makeCSR(t, p256), dns: []string{string(bytes.Repeat([]byte("a"), 64)) + ".com"}, want: ErrInvalidDNSName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := good
			if tt.id != "" {
				id = mustID(t, tt.id)
			}
			before := counter.n.Load()
			chain, err := c.SignX509SVID(context.Background(), tt.csr, id, tt.ttl, tt.dns)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var re *RequestError
			if !errors.As(err, &re) {
				t.Errorf("err %T is not a *RequestError", err)
			}
			if chain != nil {
				t.Error("refused request returned certificates")
			}
			if n := counter.n.Load() - before; n != 0 {
				t.Errorf("refused request made %d signatures", n)
			}
		})
	}

	// Controls: the counter does count, and cA=false / wildcard DNS pass.
	if _, err := c.SignX509SVID(context.Background(), notCACSR, good, 0, []string{"*.example.org", "under_score.example"}); err != nil {
		t.Fatalf("basicConstraints cA=false and wildcard DNS: %v", err)
	}
	if counter.n.Load() == 0 {
		t.Fatal("counting signer saw no signature; the refusal checks above prove nothing")
	}
}

// TestSignX509SVIDTTL: ttl 0 is the configured default, and notAfter never
// passes the CA's (SPIRE computeCappedLifetime).
func TestSignX509SVIDTTL(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	clk := newFakeClock(now)
	c, _ := newTestCA(t, Config{CATTL: 2 * time.Hour, SVIDTTL: 30 * time.Minute, Clock: clk.Now})
	caNotAfter := c.X509Authorities()[0].NotAfter
	csr := makeCSR(t, genKey(t, "p256"))
	id := mustID(t, "spiffe://example.org/w")
	tests := []struct {
		name string
		ttl  time.Duration
		want time.Time
	}{
		{"default", 0, now.Add(30 * time.Minute)},
		{"explicit", 10 * time.Minute, now.Add(10 * time.Minute)},
		{"capped at CA notAfter", 10 * time.Hour, caNotAfter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chain, err := c.SignX509SVID(context.Background(), csr, id, tt.ttl, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := chain[0].NotAfter; !got.Equal(tt.want) {
				t.Errorf("NotAfter = %s, want %s", got, tt.want)
			}
		})
	}
	// No DNS names: no CN, and the subject is SPIRE's C=US, O=SPIRE.
	chain, err := c.SignX509SVID(context.Background(), csr, id, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := chain[0].Subject; s.CommonName != "" || s.String() != "O=SPIRE,C=US" {
		t.Errorf("subject = %q", s)
	}
}

// TestSignJWTSVID validates JWT-SVIDs with go-spiffe against the bundle's
// JWT authorities (JWT-SVID §3-4), for each key type's algorithm.
func TestSignJWTSVID(t *testing.T) {
	tests := []struct {
		keyType string
		alg     string
	}{
		{KeyTypeECP256, "ES256"},
		{KeyTypeECP384, "ES384"},
		{KeyTypeRSA2048, "RS256"},
	}
	for _, tt := range tests {
		t.Run(tt.keyType, func(t *testing.T) {
			c, _ := newTestCA(t, Config{KeyType: tt.keyType})
			id := mustID(t, "spiffe://example.org/ns/a/sa/b")
			tok, err := c.SignJWTSVID(context.Background(), id, []string{"spire-server"}, 0)
			if err != nil {
				t.Fatalf("SignJWTSVID: %v", err)
			}
			svid, err := jwtsvid.ParseAndValidate(tok, c.Bundle(), []string{"spire-server"})
			if err != nil {
				t.Fatalf("jwtsvid.ParseAndValidate: %v", err)
			}
			if svid.ID != id {
				t.Errorf("sub = %s, want %s", svid.ID, id)
			}
			if len(svid.Audience) != 1 || svid.Audience[0] != "spire-server" {
				t.Errorf("aud = %v", svid.Audience)
			}
			if d := time.Until(svid.Expiry); d <= 4*time.Minute || d > DefaultJWTTTL {
				t.Errorf("exp in %s, want about the 5m default", d)
			}
			if _, ok := svid.Claims["iat"]; !ok {
				t.Error("no iat claim")
			}
			hdr := decodeJWTHeader(t, tok)
			if hdr["alg"] != tt.alg || hdr["typ"] != "JWT" {
				t.Errorf("header = %v, want alg %s typ JWT", hdr, tt.alg)
			}
			kid, _ := hdr["kid"].(string)
			if _, ok := c.JWTAuthorities()[kid]; !ok {
				t.Errorf("kid %q not among the JWT authorities", kid)
			}
			// Several audiences go out as an array.
			tok2, err := c.SignJWTSVID(context.Background(), id, []string{"a", "b"}, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jwtsvid.ParseAndValidate(tok2, c.Bundle(), []string{"b"}); err != nil {
				t.Errorf("two audiences: %v", err)
			}
		})
	}
}

func TestSignJWTSVIDRefusals(t *testing.T) {
	c, _ := newTestCA(t, Config{})
	tests := []struct {
		name string
		id   string
		aud  []string
		ttl  time.Duration
		want error
	}{
		{"no audience (JWT-SVID §3: aud required)", "spiffe://example.org/w", nil, 0, ErrNoAudience},
		{"empty audience value", "spiffe://example.org/w", []string{""}, 0, ErrNoAudience},
		{"other trust domain", "spiffe://other.org/w", []string{"x"}, 0, ErrForeignTrustDomain},
		{"root ID", "spiffe://example.org", []string{"x"}, 0, ErrRootID},
		{"negative TTL", "spiffe://example.org/w", []string{"x"}, -1, ErrInvalidTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := c.SignJWTSVID(context.Background(), mustID(t, tt.id), tt.aud, tt.ttl)
			if !errors.Is(err, tt.want) || tok != "" {
				t.Fatalf("token %q, err %v; want no token and %v", tok, err, tt.want)
			}
		})
	}
}

// TestJWTExpiryCappedAtKey: a JWT-SVID never outlives the key that signed
// it, or it would be unverifiable once the key leaves the bundle.
func TestJWTExpiryCappedAtKey(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	c, _ := newTestCA(t, Config{CATTL: time.Hour, Clock: newFakeClock(now).Now})
	tok, err := c.SignJWTSVID(context.Background(), mustID(t, "spiffe://example.org/w"), []string{"x"}, 10*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	svid, err := jwtsvid.ParseInsecure(tok, []string{"x"})
	if err != nil {
		t.Fatal(err)
	}
	if want := c.Status()[1].NotAfter; !svid.Expiry.Equal(want) {
		t.Errorf("exp = %s, want the key's notAfter %s", svid.Expiry, want)
	}
}

func TestErrorStrings(t *testing.T) {
	err := reject(ErrWeakKey, "RSA 1024 bits")
	if got := err.Error(); got != "ca: "+ErrWeakKey.Error()+": RSA 1024 bits" {
		t.Errorf("Error() = %q", got)
	}
}

func decodeJWTHeader(t *testing.T, tok string) map[string]any {
	t.Helper()
	h, _, ok := strings.Cut(tok, ".")
	if !ok {
		t.Fatalf("token %q is not JWS compact", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
