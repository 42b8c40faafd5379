package workloadapi

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
)

// BenchmarkFetchX509SVID measures what a one-shot client such as
// `spire-agent api fetch x509` costs the agent: open the stream, receive
// the first (full) response, close it, over a real unix socket with a
// warm cache. Each iteration includes the peer-credential lookup,
// attestation and the PID-reuse check.
func BenchmarkFetchX509SVID(b *testing.B) {
	me := getSelf(b)
	waitHashCacheable(b, me.path)
	for _, bc := range []struct {
		name string
		att  *UnixAttestor
		sel  string
		val  string
	}{
		{"unix", &UnixAttestor{}, "uid", me.uid},
		{"unix+path", &UnixAttestor{DiscoverPath: true}, "sha256", me.sha256},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cache := newTestCache(newTestCA(b, td))
			cache.add(b, webID, "", sel(bc.sel, bc.val))
			ts := startServer(b, cache, bc.att)
			_, c := rawClient(b, ts.addr)
			ctx := withHeader(context.Background())
			fetch := func() {
				ctx, cancel := context.WithCancel(ctx)
				defer cancel()
				stream, err := c.FetchX509SVID(ctx, &workload.X509SVIDRequest{})
				if err != nil {
					b.Fatal(err)
				}
				resp, err := stream.Recv()
				if err != nil {
					b.Fatal(err)
				}
				if len(resp.Svids) != 1 {
					b.Fatalf("%d SVIDs", len(resp.Svids))
				}
			}
			fetch() // warm: connection up, digest cached
			b.ReportAllocs()
			for b.Loop() {
				fetch()
			}
		})
	}
}

// waitHashCacheable waits until the test binary is old enough for its
// digest to be cached (see UnixAttestor.digest), so that the benchmark
// does not measure hashing a just-linked binary.
func waitHashCacheable(b *testing.B, path string) {
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	ctime := time.Unix(0, st.Ctim.Nano())
	if d := 3*time.Second - time.Since(ctime); d > 0 {
		time.Sleep(d)
	}
}
