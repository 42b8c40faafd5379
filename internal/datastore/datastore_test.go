package datastore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/palisade-security/palisade/internal/identity"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

func openTest(t testing.TB) (*SQLite, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "palisade.db")
	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func id(t testing.TB, path string) spiffeid.ID {
	t.Helper()
	x, err := spiffeid.FromPath(td, path)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func sels(t testing.TB, ss ...string) identity.Selectors {
	t.Helper()
	var out identity.Selectors
	for _, s := range ss {
		sel, err := identity.ParseSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sel)
	}
	return out
}

func TestEntryCRUD(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	parent := id(t, "/spire/agent/join_token/abc")
	in := &identity.Entry{
		SPIFFEID:  id(t, "/ns/default/sa/web"),
		ParentID:  parent,
		Selectors: sels(t, "unix:uid:1000", "k8s:ns:default", "unix:uid:1000"),
		X509TTL:   30 * time.Minute,
		JWTTTL:    2 * time.Minute,
		DNSNames:  []string{"web.default.svc"},
		Hint:      "web",
	}
	before := time.Now()
	e, err := s.CreateEntry(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if in.ID != "" || in.Revision != 0 {
		t.Error("CreateEntry modified its argument")
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(e.ID) {
		t.Errorf("ID %q is not a UUID v4", e.ID)
	}
	if e.CreatedAt.Before(before.Add(-time.Second)) || e.CreatedAt.After(time.Now()) {
		t.Errorf("CreatedAt = %s", e.CreatedAt)
	}
	if e.Revision != 1 {
		t.Errorf("Revision = %d, want 1", e.Revision)
	}
	// Selectors are stored as a set: sorted, duplicates removed.
	if want := sels(t, "k8s:ns:default", "unix:uid:1000"); fmt.Sprint(e.Selectors) != fmt.Sprint(want) {
		t.Errorf("Selectors = %v, want %v", e.Selectors, want)
	}

	got, err := s.GetEntry(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", e) {
		t.Errorf("GetEntry =\n%+v\nwant\n%+v", got, e)
	}

	if _, err := s.GetEntry(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetEntry(unknown) = %v, want ErrNotFound", err)
	}
	if err := s.DeleteEntry(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetEntry(ctx, e.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("after delete: %v, want ErrNotFound", err)
	}
	if err := s.DeleteEntry(ctx, e.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
	// The revision moved on delete although the max stored revision fell.
	if rev, err := s.EntriesRevision(ctx); err != nil || rev != 2 {
		t.Errorf("EntriesRevision = %d, %v; want 2", rev, err)
	}
}

func TestEntryDuplicate(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	base := identity.Entry{
		SPIFFEID:  id(t, "/w"),
		ParentID:  id(t, "/agent"),
		Selectors: sels(t, "unix:uid:1", "unix:gid:2"),
	}
	if _, err := s.CreateEntry(ctx, &base); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		modify func(e *identity.Entry)
		want   error
	}{
		// SPIRE's uniqueness: same SPIFFE ID, parent and selector set.
		{"same entry", func(e *identity.Entry) {}, ErrExists},
		{"same set in another order", func(e *identity.Entry) { e.Selectors = sels(t, "unix:gid:2", "unix:uid:1") }, ErrExists},
		{"same set, other TTL and hint", func(e *identity.Entry) { e.X509TTL = time.Minute; e.Hint = "x" }, ErrExists},
		{"subset of the selectors", func(e *identity.Entry) { e.Selectors = sels(t, "unix:uid:1") }, nil},
		{"other SPIFFE ID", func(e *identity.Entry) { e.SPIFFEID = id(t, "/w2") }, nil},
		{"other parent", func(e *identity.Entry) { e.ParentID = id(t, "/agent2") }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := base
			tt.modify(&e)
			_, err := s.CreateEntry(ctx, &e)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	// An explicit ID that exists is a duplicate too.
	all, _ := s.ListEntries(ctx, EntryFilter{})
	e := base
	e.ID = all[0].ID
	e.SPIFFEID = id(t, "/w3")
	if _, err := s.CreateEntry(ctx, &e); !errors.Is(err, ErrExists) {
		t.Errorf("explicit existing ID: %v, want ErrExists", err)
	}
}

func TestEntryValidation(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	ok := identity.Entry{SPIFFEID: id(t, "/w"), ParentID: id(t, "/a"), Selectors: sels(t, "unix:uid:1")}
	tests := map[string]func(*identity.Entry){
		"no SPIFFE ID":    func(e *identity.Entry) { e.SPIFFEID = spiffeid.ID{} },
		"no parent":       func(e *identity.Entry) { e.ParentID = spiffeid.ID{} },
		"no selectors":    func(e *identity.Entry) { e.Selectors = nil },
		"empty selector":  func(e *identity.Entry) { e.Selectors = identity.Selectors{{Type: "unix"}} },
		"negative TTL":    func(e *identity.Entry) { e.X509TTL = -1 },
		"empty DNS name":  func(e *identity.Entry) { e.DNSNames = []string{""} },
		"colon in a type": func(e *identity.Entry) { e.Selectors = identity.Selectors{{Type: "a:b", Value: "c"}} },
	}
	for name, mod := range tests {
		t.Run(name, func(t *testing.T) {
			e := ok
			mod(&e)
			if _, err := s.CreateEntry(ctx, &e); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
	if rev, _ := s.EntriesRevision(ctx); rev != 0 {
		t.Errorf("invalid entries moved the revision to %d", rev)
	}
}

func TestListEntries(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	a1, a2 := id(t, "/agent/1"), id(t, "/agent/2")
	w1, w2 := id(t, "/w/1"), id(t, "/w/2")
	for i, c := range []struct{ parent, spiffe spiffeid.ID }{{a1, w1}, {a1, w2}, {a2, w1}, {a2, w1}, {a1, w1}} {
		_, err := s.CreateEntry(ctx, &identity.Entry{SPIFFEID: c.spiffe, ParentID: c.parent, Selectors: sels(t, fmt.Sprintf("unix:uid:%d", i))})
		if err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		f    EntryFilter
		want int
	}{
		{"all", EntryFilter{}, 5},
		{"by parent", EntryFilter{ParentID: &a1}, 3},
		{"by SPIFFE ID", EntryFilter{SPIFFEID: &w1}, 4},
		{"by both", EntryFilter{ParentID: &a2, SPIFFEID: &w1}, 2},
		{"no match", EntryFilter{ParentID: &w2}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ListEntries(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want {
				t.Fatalf("%d entries, want %d", len(got), tt.want)
			}
			for i, e := range got {
				if i > 0 && got[i-1].ID >= e.ID {
					t.Error("not ordered by ID")
				}
				if tt.f.ParentID != nil && e.ParentID != *tt.f.ParentID || tt.f.SPIFFEID != nil && e.SPIFFEID != *tt.f.SPIFFEID {
					t.Errorf("entry %+v does not match the filter", e)
				}
			}
		})
	}
	if rev, err := s.EntriesRevision(ctx); err != nil || rev != 5 {
		t.Errorf("EntriesRevision = %d, %v; want 5", rev, err)
	}
}

func TestJoinTokens(t *testing.T) {
	ctx := context.Background()
	s, path := openTest(t)
	now := time.Now()
	if err := s.CreateJoinToken(ctx, identity.JoinToken{Token: "t1", ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateJoinToken(ctx, identity.JoinToken{Token: "t1", ExpiresAt: now.Add(time.Hour)}); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate token: %v, want ErrExists", err)
	}
	if err := s.CreateJoinToken(ctx, identity.JoinToken{Token: "tok-past", ExpiresAt: now.Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateJoinToken(ctx, identity.JoinToken{Token: "tok-edge", ExpiresAt: now}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []identity.JoinToken{{Token: "", ExpiresAt: now}, {Token: "x"}} {
		if err := s.CreateJoinToken(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateJoinToken(%+v) = %v, want ErrInvalid", bad, err)
		}
	}

	steps := []struct {
		name, token string
		want        error
	}{
		{"first use", "t1", nil},
		{"second use (one-time)", "t1", ErrNotFound},
		{"unknown", "never", ErrNotFound},
		{"expired", "tok-past", ErrExpired},
		{"expired token is deleted", "tok-past", ErrNotFound},
		{"expiring exactly now", "tok-edge", ErrExpired},
	}
	for _, st := range steps {
		if err := s.ConsumeJoinToken(ctx, st.token, now); !errors.Is(err, st.want) {
			t.Errorf("%s: ConsumeJoinToken(%q) = %v, want %v", st.name, st.token, err, st.want)
		} else if err != nil && strings.Contains(err.Error(), st.token) {
			t.Errorf("%s: error %q contains the token", st.name, err)
		}
	}

	// Tokens are stored as digests: the file never contains the secret.
	if err := s.CreateJoinToken(ctx, identity.JoinToken{Token: "very-secret-token-value", ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "very-secret-token-value") {
			t.Errorf("%s holds the join token in clear", path+suffix)
		}
	}
}

// TestJoinTokenConcurrentConsume: of many concurrent consumers of one
// token, exactly one wins.
func TestJoinTokenConcurrentConsume(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	if err := s.CreateJoinToken(ctx, identity.JoinToken{Token: "once", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, notFound := 0, 0
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.ConsumeJoinToken(ctx, "once", time.Now())
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, ErrNotFound):
				notFound++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || notFound != 15 {
		t.Errorf("wins=%d notFound=%d, want 1 and 15", wins, notFound)
	}
}

func TestAgents(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	now := time.Now().UTC()
	a := &identity.Agent{
		ID:           id(t, "/spire/agent/join_token/abc"),
		Selectors:    sels(t, "join_token:abc"),
		AttestedAt:   now,
		SerialNumber: "0a1b",
		ExpiresAt:    now.Add(time.Hour),
	}
	if err := s.UpsertAgent(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAgent(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", a) {
		t.Errorf("GetAgent =\n%+v\nwant\n%+v", got, a)
	}
	// Upsert updates.
	a.SerialNumber, a.Banned = "ffff", true
	if err := s.UpsertAgent(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetAgent(ctx, a.ID); got.SerialNumber != "ffff" || !got.Banned {
		t.Errorf("after update: %+v", got)
	}
	b := &identity.Agent{ID: id(t, "/spire/agent/join_token/000")}
	if err := s.UpsertAgent(ctx, b); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListAgents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != b.ID || !list[0].AttestedAt.IsZero() {
		t.Errorf("ListAgents = %+v", list)
	}
	if _, err := s.GetAgent(ctx, id(t, "/nope")); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetAgent(unknown) = %v, want ErrNotFound", err)
	}
	if err := s.UpsertAgent(ctx, &identity.Agent{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("agent without ID: %v, want ErrInvalid", err)
	}
}

func TestCAJournal(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	if data, err := s.LoadCAJournal(ctx); data != nil || err != nil {
		t.Fatalf("empty store: %q, %v; want nil, nil", data, err)
	}
	for _, want := range []string{`{"v":1}`, `{"v":2}`} {
		if err := s.SaveCAJournal(ctx, []byte(want)); err != nil {
			t.Fatal(err)
		}
		got, err := s.LoadCAJournal(ctx)
		if err != nil || string(got) != want {
			t.Fatalf("LoadCAJournal = %q, %v; want %q", got, err, want)
		}
	}
}

// TestPersistence: everything survives a close and reopen; the file is
// 0600; the schema is not migrated twice.
func TestPersistence(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.CreateEntry(ctx, &identity.Entry{SPIFFEID: id(t, "/w"), ParentID: id(t, "/a"), Selectors: sels(t, "unix:uid:1")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateJoinToken(ctx, identity.JoinToken{Token: "tok", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertAgent(ctx, &identity.Agent{ID: id(t, "/a")}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCAJournal(ctx, []byte("journal")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2, err := OpenSQLite(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	if got, err := s2.GetEntry(ctx, e.ID); err != nil || got.SPIFFEID != e.SPIFFEID {
		t.Errorf("entry after reopen: %+v, %v", got, err)
	}
	if rev, _ := s2.EntriesRevision(ctx); rev != 1 {
		t.Errorf("revision after reopen = %d", rev)
	}
	if err := s2.ConsumeJoinToken(ctx, "tok", time.Now()); err != nil {
		t.Errorf("join token after reopen: %v", err)
	}
	if _, err := s2.GetAgent(ctx, id(t, "/a")); err != nil {
		t.Errorf("agent after reopen: %v", err)
	}
	if j, _ := s2.LoadCAJournal(ctx); string(j) != "journal" {
		t.Errorf("journal after reopen: %q", j)
	}
	var n int
	if err := s2.db.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(migrations) {
		t.Errorf("schema_migrations rows = %d, %v; want %d", n, err, len(migrations))
	}
	var mode string
	if err := s2.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v", mode, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("database mode %o, want 0600", fi.Mode().Perm())
	}
}

func TestOpenErrors(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db", filepath.Join(t.TempDir(), "a?b.db"), filepath.Join(t.TempDir(), "no", "such", "dir.db")} {
		if s, err := OpenSQLite(p); err == nil {
			s.Close()
			t.Errorf("OpenSQLite(%q) succeeded", p)
		}
	}
	// A database from a newer binary is refused, not downgraded.
	s, path := openTest(t)
	if _, err := s.db.Exec(sqlRecordMigration, len(migrations)+1, 0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s2, err := OpenSQLite(path); err == nil || !strings.Contains(err.Error(), "schema version") {
		if s2 != nil {
			s2.Close()
		}
		t.Errorf("newer schema: %v", err)
	}
}

// TestConcurrentWriters: many goroutines create entries, tokens and agents
// and read at the same time; nothing is lost, revisions are unique, and no
// SQLITE_BUSY reaches a caller.
func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	s, path := openTest(t)
	const writers, perWriter = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter*3)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			parent := id(t, fmt.Sprintf("/agent/%d", w))
			for i := 0; i < perWriter; i++ {
				_, err := s.CreateEntry(ctx, &identity.Entry{SPIFFEID: id(t, fmt.Sprintf("/w/%d", i)), ParentID: parent, Selectors: sels(t, fmt.Sprintf("unix:uid:%d", i))})
				if err != nil {
					errs <- err
				}
				if err := s.UpsertAgent(ctx, &identity.Agent{ID: parent, SerialNumber: fmt.Sprint(i)}); err != nil {
					errs <- err
				}
				if _, err := s.ListEntries(ctx, EntryFilter{ParentID: &parent}); err != nil {
					errs <- err
				}
			}
		}(w)
	}
	// A second connection pool on the same file, as a second process
	// would have, writing at the same time: exercises the busy timeout.
	other, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < perWriter; i++ {
			if err := other.SaveCAJournal(ctx, []byte(fmt.Sprint(i))); err != nil {
				errs <- err
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	all, err := s.ListEntries(ctx, EntryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != writers*perWriter {
		t.Errorf("%d entries, want %d", len(all), writers*perWriter)
	}
	seen := map[int64]bool{}
	for _, e := range all {
		if seen[e.Revision] {
			t.Errorf("revision %d given twice", e.Revision)
		}
		seen[e.Revision] = true
	}
	if rev, _ := s.EntriesRevision(ctx); rev != writers*perWriter {
		t.Errorf("EntriesRevision = %d, want %d", rev, writers*perWriter)
	}
}
