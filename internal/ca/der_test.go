package ca

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"testing"
	"time"
)

// TestSVIDEncodingMatchesCryptoX509: the hand-built TBSCertificate is
// byte-for-byte what x509.CreateCertificate makes of the same template,
// for every CA key type, upstream mode, workload key types, subjects with
// and without DNS names (PrintableString and UTF8String CNs), serials
// needing a leading zero, and GeneralizedTime dates after 2049.
func TestSVIDEncodingMatchesCryptoX509(t *testing.T) {
	up := newTestUpstream(t, 48*time.Hour)
	cas := map[string]Config{
		"ec-p256":  {KeyType: KeyTypeECP256},
		"ec-p384":  {KeyType: KeyTypeECP384},
		"rsa-2048": {KeyType: KeyTypeRSA2048},
		"upstream": {UpstreamCertFile: up.certFile, UpstreamKeyFile: up.keyFile},
	}
	highBit := new(big.Int).Lsh(big.NewInt(1), 127)
	now := time.Now()
	params := map[string]svidParams{
		"no DNS": {serial: big.NewInt(7), notBefore: now, notAfter: now.Add(time.Hour)},
		"DNS": {serial: randomSerial(), notBefore: now, notAfter: now.Add(time.Hour),
			dnsNames: []string{"web.default.svc", "web"}},
		"wildcard and underscore CN (UTF8String)": {serial: highBit, notBefore: now, notAfter: now.Add(time.Hour),
			dnsNames: []string{"*.under_score.example"}},
		"GeneralizedTime": {serial: big.NewInt(1), notBefore: time.Date(2049, 12, 31, 23, 59, 59, 0, time.UTC),
			notAfter: time.Date(2050, 1, 1, 0, 59, 59, 0, time.UTC)},
		"fractional seconds": {serial: big.NewInt(128), notBefore: now.Add(123456789), notAfter: now.Add(time.Hour + 987654321)},
	}
	for caName, cfg := range cas {
		c, _ := newTestCA(t, cfg)
		a := c.st.Load().active.x509
		for _, wk := range []string{"p256", "rsa2048"} {
			key := genKey(t, wk)
			spki, err := x509.MarshalPKIXPublicKey(key.Public())
			if err != nil {
				t.Fatal(err)
			}
			ski, err := subjectKeyID(spki)
			if err != nil {
				t.Fatal(err)
			}
			for pName, p := range params {
				t.Run(caName+"/"+wk+"/"+pName, func(t *testing.T) {
					p.uri = "spiffe://example.org/ns/default/sa/web"
					p.ski, p.spki = ski, spki
					want, err := x509.CreateCertificate(rand.Reader, svidTemplate(p), a.cert, key.Public(), a.signer)
					if err != nil {
						t.Fatal(err)
					}
					wantCert, err := x509.ParseCertificate(want)
					if err != nil {
						t.Fatal(err)
					}
					got, err := a.enc.tbs(p)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, wantCert.RawTBSCertificate) {
						t.Fatalf("TBSCertificate differs from crypto/x509's\n got %x\nwant %x", got, wantCert.RawTBSCertificate)
					}
					// And the signed certificate verifies under the CA.
					der, err := a.enc.sign(a.signer, got)
					if err != nil {
						t.Fatal(err)
					}
					cert, err := x509.ParseCertificate(der)
					if err != nil {
						t.Fatal(err)
					}
					if err := cert.CheckSignatureFrom(a.cert); err != nil {
						t.Fatalf("signature: %v", err)
					}
				})
			}
		}
	}
}
