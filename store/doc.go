// Package store is crmkit's storage on bun, for Postgres and SQLite: it
// implements records.Store and records.Tx and the storage interfaces of the
// feature packages, applies its embedded migrations, and puts River's job
// queue on the same database.
//
// # Opening
//
// Open picks the dialect from the DSN: postgres:// or postgresql:// is
// Postgres through pgx's database/sql adapter; anything else is an SQLite
// file (a path, a file: URI or sqlite:path) through sqliteshim, which is the
// pure-Go modernc driver on common platforms. Open applies the migrations
// unless told not to; Migrate applies them on demand.
//
// # SQLite
//
// Every pooled connection gets its pragmas from the DSN (_pragma
// parameters), not from a statement run once: journal_mode WAL, busy_timeout
// (10 s by default), foreign_keys on, synchronous NORMAL. Transactions begin
// with BEGIN IMMEDIATE (_txlock=immediate): a transaction holds the write
// lock from its start, so two writers queue on busy_timeout instead of one of
// them failing with SQLITE_BUSY when it upgrades a read lock, which SQLite
// refuses at once whatever the timeout.
//
// The pool holds 4 connections (WithMaxOpenConns changes it). River's own
// tests pin SQLite to one connection because deferred transactions failed
// with SQLITE_BUSY; with immediate transactions several connections are
// safe (the job client test writes from 30 goroutines while River works the
// jobs, and River logs no failure). More than one connection lets reads run
// beside the writer, and a read made outside a transaction while one is open
// waits for nothing instead of deadlocking a one-connection pool.
// BenchmarkSQLitePool measured, on a shared 2-core machine, about 1.9 ms per
// write transaction with 1 connection and 1.3 ms with 2 to 8, and no clear
// difference for a mix of 80% reads.
//
// In-memory SQLite is refused: each pooled connection would open a database
// of its own.
//
// # Transactions
//
// InTx puts its transaction in the context it hands fn; the store's reads
// given that context read inside the transaction, and an InTx given that
// context runs as a savepoint. Code of other features in this package
// queries through IDB(ctx) for the same reason.
//
// Duplicates (external ids, unique values, ids) are found with INSERT … ON
// CONFLICT DO NOTHING, so they come back as errors wrapping
// records.ErrDuplicate without aborting a Postgres transaction; a unique
// violation raised anyway (a concurrent writer) is mapped to the same error.
//
// # Migrations
//
// migrations/postgres and migrations/sqlite hold the same file names (a test
// checks it), one numbered file per feature, applied in name order and
// recorded in schema_migrations. River's migrations follow, through
// rivermigrate.
//
// # Secrets
//
// Secrets the store must give back (webhook signing secrets, current and
// previous; inbound source secrets; connector header values) are sealed
// with AES-256-GCM under a key-encryption key the host supplies with
// WithSecretKey: a random nonce per value, and the key's id in the stored
// text ("sealed:v1:<key id>:<base64>"), so a value under one key is told
// from one under another. SealSecret and OpenSecret are the calls storage
// code makes on every such value it writes and reads; errors name key ids,
// never a key or a secret. A value sealed under a key the store lacks fails
// with ErrUnknownSecretKey, never comes back as garbage.
//
// A store opened without a key stores secrets as given. Refusing would
// break every host that opens a store today (tests, tools, a host whose
// disk is encrypted already), and the reference server always has a key
// (it generates one beside the database on first start). Such a store
// still reads plaintext and refuses sealed values with ErrUnknownSecretKey.
//
// Open with a key re-seals, in one transaction, every secret found in
// plaintext or under one of WithSecretKey's older keys (ResealSecrets),
// and fails when a secret is sealed under a key it was not given, so a
// wrong key is found at start, not at the first delivery. Rotation is that
// call: open with the new key and the old one, and the old key then opens
// nothing.
//
// New SQLite database files are created mode 0600; SQLite gives the -wal
// and -shm files the database file's mode. A file that exists keeps its
// mode.
//
// # Jobs
//
// River runs on the store's *sql.DB with riverdatabasesql (Postgres) or
// riversqlite (SQLite). InsertEvents enqueues one records.FanoutArgs job per
// event with InsertManyTx in the write's own transaction, so an event's job
// exists if and only if the write committed. Before NewJobClient is called
// the jobs go through an insert-only client; after, through the new client.
package store
