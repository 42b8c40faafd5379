package ca_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/palisade-security/palisade/internal/ca"
	"github.com/palisade-security/palisade/internal/datastore"
)

// The datastore is the CA's journal in the server.
var _ ca.Journal = (*datastore.SQLite)(nil)

// TestRestartWithSQLiteJournal runs the restart cycle through the real
// SQLite datastore, closing and reopening the database between the two
// CA instances, as a server restart does.
func TestRestartWithSQLiteJournal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "palisade.db")
	cfg := ca.Config{
		TrustDomain: spiffeid.RequireTrustDomainFromString("example.org"),
		KeyDir:      filepath.Join(dir, "keys"),
	}

	db, err := datastore.OpenSQLite(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	c1, err := ca.New(ctx, cfg, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.PrepareNow(ctx); err != nil {
		t.Fatal(err)
	}
	b1 := c1.Bundle()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db2, err := datastore.OpenSQLite(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	c2, err := ca.New(ctx, cfg, db2)
	if err != nil {
		t.Fatal(err)
	}
	if !c2.Bundle().Equal(b1) {
		t.Fatal("bundle changed across a restart through SQLite")
	}
	s1, s2 := c1.Status(), c2.Status()
	if len(s1) != len(s2) {
		t.Fatalf("status %v, want %v", s2, s1)
	}
	for i := range s1 {
		if s1[i] != s2[i] {
			t.Errorf("authority %d: %v, want %v", i, s2[i], s1[i])
		}
	}
	if a1, a2 := c1.X509Authorities(), c2.X509Authorities(); len(a1) != 2 || !bytes.Equal(a1[0].Raw, a2[0].Raw) {
		t.Error("X.509 authorities changed across the restart")
	}
}
