package datastore

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/palisade-security/palisade/internal/identity"
)

const benchEntries = 10_000

// fill creates n entries spread over parents agents, one transaction (and
// one fsync) per entry, as registration API calls would.
func fill(b *testing.B, s *SQLite, n, parents int) []spiffeid.ID {
	b.Helper()
	ctx := context.Background()
	ps := make([]spiffeid.ID, parents)
	for i := range ps {
		ps[i] = id(b, fmt.Sprintf("/spire/agent/k8s_psat/cluster/node-%d", i))
	}
	for i := 0; i < n; i++ {
		_, err := s.CreateEntry(ctx, &identity.Entry{
			SPIFFEID:  id(b, fmt.Sprintf("/ns/ns-%d/sa/sa-%d", i%100, i)),
			ParentID:  ps[i%parents],
			Selectors: identity.Selectors{{Type: "k8s", Value: fmt.Sprintf("ns:ns-%d", i%100)}, {Type: "k8s", Value: fmt.Sprintf("sa:sa-%d", i)}},
			DNSNames:  []string{fmt.Sprintf("sa-%d.ns-%d.svc", i, i%100)},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return ps
}

// BenchmarkEntries creates 10,000 entries (each its own durable
// transaction) and lists them by parent: all 10,000 under one parent (one
// node running every workload, the worst case for an agent sync), and 100
// under each of 100 parents.
//
//	go test -run '^$' -bench BenchmarkEntries -benchmem ./internal/datastore/
func BenchmarkEntries(b *testing.B) {
	// The list fixtures are filled once, not on every b.N round: the
	// parent benchmark body runs once, its sub-benchmarks several times.
	dir := b.TempDir()
	var opened []*SQLite
	defer func() {
		for _, s := range opened {
			s.Close()
		}
	}()
	fixture := func(name string, parents int) func(*testing.B) (*SQLite, []spiffeid.ID) {
		var once sync.Once
		var s *SQLite
		var ps []spiffeid.ID
		return func(sb *testing.B) (*SQLite, []spiffeid.ID) {
			once.Do(func() {
				var err error
				if s, err = OpenSQLite(filepath.Join(dir, name+".db")); err != nil {
					sb.Fatal(err)
				}
				opened = append(opened, s)
				ps = fill(sb, s, benchEntries, parents)
			})
			return s, ps
		}
	}
	oneParent, hundredParents := fixture("one", 1), fixture("hundred", 100)
	b.Run("create-10k", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			s, _ := openTest(b)
			b.StartTimer()
			fill(b, s, benchEntries, 100)
			b.StopTimer()
			s.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(b.N*benchEntries)/b.Elapsed().Seconds(), "entries/s")
	})
	b.Run("list-by-parent-10k-of-10k", func(b *testing.B) {
		s, ps := oneParent(b)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			es, err := s.ListEntries(ctx, EntryFilter{ParentID: &ps[0]})
			if err != nil || len(es) != benchEntries {
				b.Fatalf("%d entries, %v", len(es), err)
			}
		}
		b.ReportMetric(float64(b.N*benchEntries)/b.Elapsed().Seconds(), "entries/s")
	})
	b.Run("list-by-parent-100-of-10k", func(b *testing.B) {
		s, ps := hundredParents(b)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			es, err := s.ListEntries(ctx, EntryFilter{ParentID: &ps[i%len(ps)]})
			if err != nil || len(es) != benchEntries/100 {
				b.Fatalf("%d entries, %v", len(es), err)
			}
		}
	})
	b.Run("entries-revision", func(b *testing.B) {
		s, _ := openTest(b)
		fill(b, s, 100, 1)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := s.EntriesRevision(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
