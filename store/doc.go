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
// refuses at once whatever the timeout. The pool holds a few connections so
// that reads run beside the one writer SQLite allows.
//
// # Transactions
//
// InTx puts its transaction in the context it hands fn; the store's reads
// given that context read inside the transaction. Code of other features in
// this package queries through IDB(ctx) for the same reason.
//
// # Jobs
//
// River runs on the store's *sql.DB with riverdatabasesql (Postgres) or
// riversqlite (SQLite). InsertEvents enqueues one records.FanoutArgs job per
// event with InsertManyTx in the write's own transaction, so an event's job
// exists if and only if the write committed. Before NewJobClient is called
// the jobs go through an insert-only client; after, through the new client.
package store
