// Package datastore is the identity server's persistent state: registration
// entries, join tokens, attested agents and the CA journal, in an embedded
// SQLite database (modernc.org/sqlite, pure Go).
//
// The database runs in WAL mode, so readers never wait for the writer;
// writes are serialized in the process and use BEGIN IMMEDIATE with a busy
// timeout against other processes. synchronous=FULL makes every commit
// durable: the CA deletes retired key files after its journal is saved, so
// a journal write lost to a power cut could leave the active CA without a
// key.
package datastore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/palisade-security/palisade/internal/identity"
)

// Errors callers test with errors.Is.
var (
	ErrNotFound = errors.New("datastore: not found")
	ErrExists   = errors.New("datastore: already exists")
	ErrExpired  = errors.New("datastore: join token expired")
	ErrInvalid  = errors.New("datastore: invalid argument")
)

// EntryFilter selects entries; nil fields match everything.
type EntryFilter struct {
	ParentID *spiffeid.ID
	SPIFFEID *spiffeid.ID
}

// Store is the identity server's state. All methods are safe for
// concurrent use.
type Store interface {
	// CreateEntry stores a copy of e with a new ID (a random UUID v4
	// unless e.ID is set), CreatedAt and Revision, and returns it. An
	// entry with the same SPIFFEID, ParentID and selector set exists:
	// ErrExists.
	CreateEntry(ctx context.Context, e *identity.Entry) (*identity.Entry, error)
	GetEntry(ctx context.Context, id string) (*identity.Entry, error)
	DeleteEntry(ctx context.Context, id string) error
	// ListEntries returns the matching entries ordered by ID.
	ListEntries(ctx context.Context, f EntryFilter) ([]*identity.Entry, error)
	// EntriesRevision is the latest entries revision. It grows on every
	// create and delete, so agents can skip a sync when it has not moved.
	EntriesRevision(ctx context.Context) (int64, error)

	CreateJoinToken(ctx context.Context, t identity.JoinToken) error
	// ConsumeJoinToken uses a token once: it is deleted. Unknown or
	// already used: ErrNotFound; expired: ErrExpired (and deleted).
	ConsumeJoinToken(ctx context.Context, token string, now time.Time) error

	UpsertAgent(ctx context.Context, a *identity.Agent) error
	GetAgent(ctx context.Context, id spiffeid.ID) (*identity.Agent, error)
	ListAgents(ctx context.Context) ([]*identity.Agent, error)

	// LoadCAJournal returns nil, nil when no journal was saved.
	LoadCAJournal(ctx context.Context) ([]byte, error)
	SaveCAJournal(ctx context.Context, data []byte) error

	Close() error
}

// SQLite is the Store on an SQLite file.
type SQLite struct {
	db   *sql.DB
	path string
	// writeMu serializes write transactions inside the process, so they
	// queue here instead of spinning in SQLite's busy handler.
	writeMu sync.Mutex
}

var _ Store = (*SQLite)(nil)

// busyTimeout bounds how long a statement waits for another process's
// write lock before it fails with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// OpenSQLite opens (creating if needed, mode 0600) the database at path and
// brings its schema up to date.
func OpenSQLite(path string) (*SQLite, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		// Every pooled connection to ":memory:" would be its own database.
		return nil, fmt.Errorf("datastore: want a file path, got %q", path)
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("datastore: path %q: '?' and '#' are not supported in database paths", path)
	}
	// Create the file ourselves so it is 0600 from the start: it holds
	// join token digests and the CA journal. SQLite gives the -wal and
	// -shm files the same mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("datastore: %w", err)
	}
	fi, err := f.Stat()
	if err == nil && fi.Mode().Perm()&0o077 != 0 {
		err = f.Chmod(0o600)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("datastore: %w", err)
	}

	dsn := path + "?" + strings.Join([]string{
		fmt.Sprintf("_pragma=busy_timeout(%d)", busyTimeout.Milliseconds()),
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(FULL)",
		"_pragma=foreign_keys(1)",
		"_txlock=immediate",
	}, "&")
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("datastore: open %s: %w", path, err)
	}
	// Readers run in parallel under WAL; keep their connections (and the
	// per-connection pragmas) warm.
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	s := &SQLite{db: db, path: path}
	if err := s.migrate(context.Background()); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database.
func (s *SQLite) Close() error { return s.db.Close() }

func (s *SQLite) migrate(ctx context.Context) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, sqlCreateMigrationsTable); err != nil {
			return err
		}
		var v int
		if err := tx.QueryRowContext(ctx, sqlSchemaVersion).Scan(&v); err != nil {
			return err
		}
		if v > len(migrations) {
			return fmt.Errorf("datastore: %s has schema version %d; this binary knows up to %d (downgrade?)", s.path, v, len(migrations))
		}
		for i := v; i < len(migrations); i++ {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return fmt.Errorf("datastore: migration %d: %w", i+1, err)
			}
			if _, err := tx.ExecContext(ctx, sqlRecordMigration, i+1, time.Now().UnixNano()); err != nil {
				return err
			}
		}
		return nil
	})
}

// write runs fn in a write transaction (BEGIN IMMEDIATE via _txlock).
func (s *SQLite) write(ctx context.Context, fn func(*sql.Tx) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("datastore: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("datastore: commit: %w", err)
	}
	return nil
}

func isConstraint(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return true
	}
	return false
}

// newUUID returns a random (version 4) UUID from crypto/rand.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])  // never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// Times are stored as Unix nanoseconds; 0 is the zero time.
func toNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// canonicalSelectors sorts and deduplicates a selector set, so a set has
// one stored form whatever order it was given in.
func canonicalSelectors(ss identity.Selectors) identity.Selectors {
	sorted := ss.Sorted()
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}

func encodeSelectors(ss identity.Selectors) (string, error) {
	pairs := make([][2]string, len(ss))
	for i, s := range ss {
		pairs[i] = [2]string{s.Type, s.Value}
	}
	b, err := json.Marshal(pairs)
	return string(b), err
}

func decodeSelectors(s string) (identity.Selectors, error) {
	var pairs [][2]string
	if err := json.Unmarshal([]byte(s), &pairs); err != nil {
		return nil, err
	}
	out := make(identity.Selectors, len(pairs))
	for i, p := range pairs {
		out[i] = identity.Selector{Type: p[0], Value: p[1]}
	}
	return out, nil
}

func validSelectors(ss identity.Selectors) error {
	for _, s := range ss {
		if s.Type == "" || s.Value == "" || strings.Contains(s.Type, ":") {
			return fmt.Errorf("%w: selector %q: want TYPE:VALUE with both parts set", ErrInvalid, s.String())
		}
	}
	return nil
}

// CreateEntry implements Store.
func (s *SQLite) CreateEntry(ctx context.Context, in *identity.Entry) (*identity.Entry, error) {
	if in == nil {
		return nil, fmt.Errorf("%w: nil entry", ErrInvalid)
	}
	switch {
	case in.SPIFFEID.IsZero():
		return nil, fmt.Errorf("%w: entry needs a SPIFFE ID", ErrInvalid)
	case in.ParentID.IsZero():
		return nil, fmt.Errorf("%w: entry needs a parent ID", ErrInvalid)
	case len(in.Selectors) == 0:
		// SPIRE requires at least one selector: an entry without any
		// would match every workload under the parent.
		return nil, fmt.Errorf("%w: entry needs at least one selector", ErrInvalid)
	case in.X509TTL < 0 || in.JWTTTL < 0:
		return nil, fmt.Errorf("%w: negative TTL", ErrInvalid)
	}
	if err := validSelectors(in.Selectors); err != nil {
		return nil, err
	}
	for _, d := range in.DNSNames {
		if d == "" {
			return nil, fmt.Errorf("%w: empty DNS name", ErrInvalid)
		}
	}
	e := *in
	e.Selectors = canonicalSelectors(in.Selectors)
	e.DNSNames = append([]string(nil), in.DNSNames...)
	if e.ID == "" {
		e.ID = newUUID()
	}
	e.CreatedAt = fromNanos(time.Now().UnixNano())
	sel, err := encodeSelectors(e.Selectors)
	if err != nil {
		return nil, err
	}
	dns, err := json.Marshal(e.DNSNames)
	if err != nil {
		return nil, err
	}
	if len(e.DNSNames) == 0 {
		dns = []byte("[]")
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, sqlBumpEntriesRevision).Scan(&e.Revision); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, sqlInsertEntry, e.ID, e.SPIFFEID.String(), e.ParentID.String(), sel,
			int64(e.X509TTL), int64(e.JWTTTL), string(dns), e.Hint, toNanos(e.CreatedAt), e.Revision)
		return err
	})
	if isConstraint(err) {
		return nil, fmt.Errorf("%w: entry for %s under %s with selectors %v (or ID %s)", ErrExists, e.SPIFFEID, e.ParentID, e.Selectors, e.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("datastore: create entry: %w", err)
	}
	return &e, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanEntry(r scanner) (*identity.Entry, error) {
	var (
		e                  identity.Entry
		spiffeID, parentID string
		sel, dns           string
		x509TTL, jwtTTL    int64
		created            int64
	)
	if err := r.Scan(&e.ID, &spiffeID, &parentID, &sel, &x509TTL, &jwtTTL, &dns, &e.Hint, &created, &e.Revision); err != nil {
		return nil, err
	}
	var err error
	if e.SPIFFEID, err = spiffeid.FromString(spiffeID); err != nil {
		return nil, fmt.Errorf("datastore: entry %s: SPIFFE ID: %w", e.ID, err)
	}
	if e.ParentID, err = spiffeid.FromString(parentID); err != nil {
		return nil, fmt.Errorf("datastore: entry %s: parent ID: %w", e.ID, err)
	}
	if e.Selectors, err = decodeSelectors(sel); err != nil {
		return nil, fmt.Errorf("datastore: entry %s: selectors: %w", e.ID, err)
	}
	if dns != "[]" {
		if err := json.Unmarshal([]byte(dns), &e.DNSNames); err != nil {
			return nil, fmt.Errorf("datastore: entry %s: DNS names: %w", e.ID, err)
		}
	}
	e.X509TTL, e.JWTTTL = time.Duration(x509TTL), time.Duration(jwtTTL)
	e.CreatedAt = fromNanos(created)
	return &e, nil
}

// GetEntry implements Store.
func (s *SQLite) GetEntry(ctx context.Context, id string) (*identity.Entry, error) {
	e, err := scanEntry(s.db.QueryRowContext(ctx, sqlGetEntry, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: entry %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("datastore: get entry: %w", err)
	}
	return e, nil
}

// DeleteEntry implements Store.
func (s *SQLite) DeleteEntry(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, sqlDeleteEntry, id)
		if err != nil {
			return fmt.Errorf("datastore: delete entry: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("%w: entry %s", ErrNotFound, id)
		}
		var rev int64
		return tx.QueryRowContext(ctx, sqlBumpEntriesRevision).Scan(&rev)
	})
}

// ListEntries implements Store.
func (s *SQLite) ListEntries(ctx context.Context, f EntryFilter) ([]*identity.Entry, error) {
	var rows *sql.Rows
	var err error
	switch {
	case f.ParentID != nil && f.SPIFFEID != nil:
		rows, err = s.db.QueryContext(ctx, sqlListEntriesByBoth, f.ParentID.String(), f.SPIFFEID.String())
	case f.ParentID != nil:
		rows, err = s.db.QueryContext(ctx, sqlListEntriesByParent, f.ParentID.String())
	case f.SPIFFEID != nil:
		rows, err = s.db.QueryContext(ctx, sqlListEntriesBySPIFFEID, f.SPIFFEID.String())
	default:
		rows, err = s.db.QueryContext(ctx, sqlListEntries)
	}
	if err != nil {
		return nil, fmt.Errorf("datastore: list entries: %w", err)
	}
	defer rows.Close()
	var out []*identity.Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("datastore: list entries: %w", err)
	}
	return out, nil
}

// EntriesRevision implements Store.
func (s *SQLite) EntriesRevision(ctx context.Context) (int64, error) {
	var rev int64
	if err := s.db.QueryRowContext(ctx, sqlEntriesRevision).Scan(&rev); err != nil {
		return 0, fmt.Errorf("datastore: entries revision: %w", err)
	}
	return rev, nil
}

// tokenKey is what is stored for a join token: its SHA-256, so a copy of
// the database does not hand out usable tokens. Tokens are random secrets,
// so an unsalted hash is enough.
func tokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// CreateJoinToken implements Store.
func (s *SQLite) CreateJoinToken(ctx context.Context, t identity.JoinToken) error {
	if t.Token == "" {
		return fmt.Errorf("%w: empty join token", ErrInvalid)
	}
	if t.ExpiresAt.IsZero() {
		return fmt.Errorf("%w: join token needs an expiry", ErrInvalid)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, sqlInsertJoinToken, tokenKey(t.Token), toNanos(t.ExpiresAt))
		return err
	})
	if isConstraint(err) {
		return fmt.Errorf("%w: join token", ErrExists)
	}
	if err != nil {
		return fmt.Errorf("datastore: create join token: %w", err)
	}
	return nil
}

// ConsumeJoinToken implements Store. Error messages never contain the token.
func (s *SQLite) ConsumeJoinToken(ctx context.Context, token string, now time.Time) error {
	var expires int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, sqlConsumeJoinToken, tokenKey(token)).Scan(&expires)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: join token unknown or already used", ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("datastore: consume join token: %w", err)
	}
	if !now.Before(fromNanos(expires)) {
		return fmt.Errorf("%w at %s", ErrExpired, fromNanos(expires).Format(time.RFC3339))
	}
	return nil
}

// UpsertAgent implements Store.
func (s *SQLite) UpsertAgent(ctx context.Context, a *identity.Agent) error {
	if a == nil || a.ID.IsZero() {
		return fmt.Errorf("%w: agent needs an ID", ErrInvalid)
	}
	if err := validSelectors(a.Selectors); err != nil {
		return err
	}
	sel, err := encodeSelectors(a.Selectors)
	if err != nil {
		return err
	}
	banned := 0
	if a.Banned {
		banned = 1
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, sqlUpsertAgent, a.ID.String(), sel, toNanos(a.AttestedAt), a.SerialNumber, toNanos(a.ExpiresAt), banned)
		if err != nil {
			return fmt.Errorf("datastore: upsert agent: %w", err)
		}
		return nil
	})
}

func scanAgent(r scanner) (*identity.Agent, error) {
	var (
		a                 identity.Agent
		id, sel           string
		attested, expires int64
		banned            int
	)
	if err := r.Scan(&id, &sel, &attested, &a.SerialNumber, &expires, &banned); err != nil {
		return nil, err
	}
	var err error
	if a.ID, err = spiffeid.FromString(id); err != nil {
		return nil, fmt.Errorf("datastore: agent %s: %w", id, err)
	}
	if a.Selectors, err = decodeSelectors(sel); err != nil {
		return nil, fmt.Errorf("datastore: agent %s: selectors: %w", id, err)
	}
	a.AttestedAt, a.ExpiresAt, a.Banned = fromNanos(attested), fromNanos(expires), banned != 0
	return &a, nil
}

// GetAgent implements Store.
func (s *SQLite) GetAgent(ctx context.Context, id spiffeid.ID) (*identity.Agent, error) {
	a, err := scanAgent(s.db.QueryRowContext(ctx, sqlGetAgent, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: agent %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("datastore: get agent: %w", err)
	}
	return a, nil
}

// ListAgents implements Store, ordered by ID.
func (s *SQLite) ListAgents(ctx context.Context) ([]*identity.Agent, error) {
	rows, err := s.db.QueryContext(ctx, sqlListAgents)
	if err != nil {
		return nil, fmt.Errorf("datastore: list agents: %w", err)
	}
	defer rows.Close()
	var out []*identity.Agent
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("datastore: list agents: %w", err)
	}
	return out, nil
}

// LoadCAJournal implements Store and ca.Journal.
func (s *SQLite) LoadCAJournal(ctx context.Context) ([]byte, error) {
	var data []byte
	err := s.db.QueryRowContext(ctx, sqlLoadCAJournal).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("datastore: load CA journal: %w", err)
	}
	return data, nil
}

// SaveCAJournal implements Store and ca.Journal.
func (s *SQLite) SaveCAJournal(ctx context.Context, data []byte) error {
	if data == nil {
		data = []byte{}
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, sqlSaveCAJournal, data); err != nil {
			return fmt.Errorf("datastore: save CA journal: %w", err)
		}
		return nil
	})
}
