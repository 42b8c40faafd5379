package datastore

// All SQL of the package lives in this file. Every statement takes its
// values as parameters; nothing is ever formatted into SQL text.

// migrations are applied in order, each once, inside one transaction with
// its row in schema_migrations. Never edit a released migration: append.
var migrations = []string{
	// 1: entries, join tokens, agents, CA journal, revision counter.
	`
CREATE TABLE entries (
	id          TEXT PRIMARY KEY,
	spiffe_id   TEXT NOT NULL,
	parent_id   TEXT NOT NULL,
	-- JSON array of [type, value] pairs, sorted and deduplicated, so the
	-- same selector set always has the same text and the unique index
	-- below catches duplicates.
	selectors   TEXT NOT NULL,
	x509_ttl_ns INTEGER NOT NULL DEFAULT 0,
	jwt_ttl_ns  INTEGER NOT NULL DEFAULT 0,
	dns_names   TEXT NOT NULL DEFAULT '[]',
	hint        TEXT NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL, -- Unix nanoseconds
	revision    INTEGER NOT NULL
);
CREATE UNIQUE INDEX entries_identity ON entries (spiffe_id, parent_id, selectors);
CREATE INDEX entries_by_parent ON entries (parent_id, id);
CREATE INDEX entries_by_spiffe_id ON entries (spiffe_id, id);

CREATE TABLE join_tokens (
	token      TEXT PRIMARY KEY,
	expires_at INTEGER NOT NULL -- Unix nanoseconds
);

CREATE TABLE agents (
	id            TEXT PRIMARY KEY,
	selectors     TEXT NOT NULL,
	attested_at   INTEGER NOT NULL,
	serial_number TEXT NOT NULL DEFAULT '',
	expires_at    INTEGER NOT NULL,
	banned        INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE ca_journal (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	data BLOB NOT NULL
);

-- The entries revision only ever grows, also on deletes, so an agent that
-- saw revision N knows something changed when it reads a larger one.
CREATE TABLE counters (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('entries_revision', 0);
`,
}

const (
	sqlCreateMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	applied_at INTEGER NOT NULL
)`
	sqlSchemaVersion   = `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`
	sqlRecordMigration = `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`

	sqlBumpEntriesRevision = `UPDATE counters SET value = value + 1 WHERE name = 'entries_revision' RETURNING value`
	sqlEntriesRevision     = `SELECT value FROM counters WHERE name = 'entries_revision'`

	sqlInsertEntry = `INSERT INTO entries
	(id, spiffe_id, parent_id, selectors, x509_ttl_ns, jwt_ttl_ns, dns_names, hint, created_at, revision)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlDeleteEntry = `DELETE FROM entries WHERE id = ?`

	sqlEntryColumns = `SELECT id, spiffe_id, parent_id, selectors, x509_ttl_ns, jwt_ttl_ns, dns_names, hint, created_at, revision FROM entries`
	sqlGetEntry     = sqlEntryColumns + ` WHERE id = ?`
	// One statement per filter combination, so SQLite can use the index
	// for each (an "? IS NULL OR col = ?" form would defeat it).
	sqlListEntries           = sqlEntryColumns + ` ORDER BY id`
	sqlListEntriesByParent   = sqlEntryColumns + ` WHERE parent_id = ? ORDER BY id`
	sqlListEntriesBySPIFFEID = sqlEntryColumns + ` WHERE spiffe_id = ? ORDER BY id`
	sqlListEntriesByBoth     = sqlEntryColumns + ` WHERE parent_id = ? AND spiffe_id = ? ORDER BY id`

	sqlInsertJoinToken = `INSERT INTO join_tokens (token, expires_at) VALUES (?, ?)`
	// Delete and read in one statement: of two concurrent consumers only
	// one gets the row back.
	sqlConsumeJoinToken = `DELETE FROM join_tokens WHERE token = ? RETURNING expires_at`

	sqlUpsertAgent = `INSERT INTO agents (id, selectors, attested_at, serial_number, expires_at, banned)
	VALUES (?, ?, ?, ?, ?, ?)
	ON CONFLICT (id) DO UPDATE SET
		selectors = excluded.selectors,
		attested_at = excluded.attested_at,
		serial_number = excluded.serial_number,
		expires_at = excluded.expires_at,
		banned = excluded.banned`
	sqlAgentColumns = `SELECT id, selectors, attested_at, serial_number, expires_at, banned FROM agents`
	sqlGetAgent     = sqlAgentColumns + ` WHERE id = ?`
	sqlListAgents   = sqlAgentColumns + ` ORDER BY id`

	sqlLoadCAJournal = `SELECT data FROM ca_journal WHERE id = 1`
	sqlSaveCAJournal = `INSERT INTO ca_journal (id, data) VALUES (1, ?)
	ON CONFLICT (id) DO UPDATE SET data = excluded.data`
)
