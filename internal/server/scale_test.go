package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/palisade-security/palisade/internal/identity"
	"github.com/palisade-security/palisade/internal/nodeapi"
)

// scaleAgent is the sync side of an agent: its SVID and an mTLS client.
type scaleAgent struct {
	agent  *identity.Agent
	client *http.Client
	rev    int64
}

// BenchmarkSyncFanout runs a server with 10,000 registration entries and
// 1,000 attested agents, each holding a long-polling sync request, and
// measures how long one new entry takes to reach all 1,000 agents, with the
// server's heap and the process CPU time per fan-out.
func BenchmarkSyncFanout(b *testing.B) {
	const agents, entriesPerAgent = 1000, 10
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := New(ctx, Config{TrustDomain: td, StateDir: b.TempDir(), BindAddr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-s.Ready()

	pool := x509.NewCertPool()
	for _, c := range s.CA().X509Authorities() {
		pool.AddCert(c)
	}
	var all []*scaleAgent
	for i := 0; i < agents; i++ {
		id, _ := identity.AgentID(td, fmt.Sprintf("agent-%04d", i))
		key, req, err := newCSR()
		if err != nil {
			b.Fatal(err)
		}
		chain, err := s.CA().SignX509SVID(ctx, req, id, 0, nil)
		if err != nil {
			b.Fatal(err)
		}
		a := &identity.Agent{ID: id, AttestedAt: time.Now(), ExpiresAt: chain[0].NotAfter}
		if err := s.Store().UpsertAgent(ctx, a); err != nil {
			b.Fatal(err)
		}
		cert := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
		for _, c := range chain {
			cert.Certificate = append(cert.Certificate, c.Raw)
		}
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
			Certificates: []tls.Certificate{cert}, RootCAs: pool, InsecureSkipVerify: true,
		}}}
		all = append(all, &scaleAgent{agent: a, client: client})
		for j := 0; j < entriesPerAgent; j++ {
			e := &identity.Entry{SPIFFEID: mustID(fmt.Sprintf("/a%d/w%d", i, j)), ParentID: id, Selectors: identity.Selectors{{Type: "unix", Value: fmt.Sprintf("uid:%d", j)}}}
			if _, err := s.Store().CreateEntry(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
	}
	doSync := func(a *scaleAgent, wait time.Duration) error {
		url := fmt.Sprintf("https://%s%s?revision=%d&wait=%s", s.AgentAddr(), nodeapi.PathSync, a.rev, wait)
		resp, err := a.client.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var out nodeapi.SyncResponse
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return err
		}
		if len(out.Entries) < entriesPerAgent {
			return fmt.Errorf("%s got %d entries", a.agent.ID, len(out.Entries))
		}
		a.rev = out.Revision
		return nil
	}
	// Every agent's first, full sync.
	start := time.Now()
	parallel(b, all, func(a *scaleAgent) error { return doSync(a, 0) })
	firstSync := time.Since(start)

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	cpu0 := cpuTime()
	b.ResetTimer()
	b.StopTimer()
	for i := 0; i < b.N; i++ {
		var wg sync.WaitGroup
		errs := make(chan error, len(all))
		for _, a := range all {
			wg.Add(1)
			go func() { defer wg.Done(); errs <- doSync(a, 30*time.Second) }()
		}
		time.Sleep(200 * time.Millisecond) // let every agent's long-poll reach the server
		b.StartTimer()
		e := &identity.Entry{SPIFFEID: mustID(fmt.Sprintf("/new/%d", i)), ParentID: all[0].agent.ID, Selectors: identity.Selectors{{Type: "unix", Value: "uid:0"}}}
		if _, err := s.CreateEntry(ctx, e); err != nil {
			b.Fatal(err)
		}
		wg.Wait()
		b.StopTimer()
		close(errs)
		for err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	// The process holds the server and the 1,000 agents' clients: the heap
	// and CPU figures cover both.
	b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/fanout")
	b.ReportMetric(float64(firstSync.Milliseconds()), "first-sync-all-ms")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MB")
}

func parallel(b *testing.B, all []*scaleAgent, f func(*scaleAgent) error) {
	var wg sync.WaitGroup
	errs := make(chan error, len(all))
	sem := make(chan struct{}, 64)
	for _, a := range all {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			errs <- f(a)
			<-sem
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func mustID(path string) spiffeid.ID { return spiffeid.RequireFromPath(td, path) }
