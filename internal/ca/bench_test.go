package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time. Benchmarks report CPU
// per operation besides wall time because the development machines are
// shared: wall-clock throughput drops when other jobs run, CPU per SVID
// does not, and 2 cores / CPU-per-SVID is what two dedicated cores sign.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportThroughput(b *testing.B, cpu0 time.Duration, unit string) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit+"/s")
	cpuPerOp := float64(cpuTime()-cpu0) / float64(b.N)
	b.ReportMetric(cpuPerOp, "cpu-ns/op")
	b.ReportMetric(2e9/cpuPerOp, unit+"/s-on-2-cores")
}

// BenchmarkSignX509SVID measures the server's signing path end to end:
// parse the CSR, verify its signature, encode, sign, parse the result. It
// runs in parallel on all GOMAXPROCS, as the server signs concurrent agent
// batches.
//
//	go test -run '^$' -bench 'SignX509SVID' -benchmem -cpu 2 ./internal/ca/
func BenchmarkSignX509SVID(b *testing.B) {
	for _, kt := range []string{KeyTypeECP256, KeyTypeRSA2048} {
		b.Run(kt, func(b *testing.B) {
			c, _ := newTestCA(b, Config{KeyType: kt})
			csr := makeCSR(b, genKey(b, "p256"))
			id := mustID(b, "spiffe://example.org/ns/default/sa/web")
			dns := []string{"web.default.svc"}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.SignX509SVID(ctx, csr, id, 0, dns); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportThroughput(b, cpu0, "svids")
		})
	}
}

// BenchmarkSignX509SVIDBaseline is the floor for the ec-p256 case: only
// the two public-key operations no CA can skip, verifying the CSR's P-256
// signature and making one P-256 signature. SignX509SVID's overhead is
// the difference between the two, in the same run.
func BenchmarkSignX509SVIDBaseline(b *testing.B) {
	csrDER := makeCSR(b, genKey(b, "p256"))
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		b.Fatal(err)
	}
	caKey := genKey(b, "p256").(*ecdsa.PrivateKey)
	digest := sha256.Sum256(csrDER)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := csr.CheckSignature(); err != nil {
				b.Error(err)
				return
			}
			if _, err := ecdsa.SignASN1(rand.Reader, caKey, digest[:]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportThroughput(b, cpu0, "svids")
}

func BenchmarkSignJWTSVID(b *testing.B) {
	c, _ := newTestCA(b, Config{})
	id := mustID(b, "spiffe://example.org/ns/default/sa/web")
	ctx := context.Background()
	aud := []string{"spire-server"}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.SignJWTSVID(ctx, id, aud, 0); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportThroughput(b, cpu0, "jwts")
}
