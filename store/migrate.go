package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/uptrace/bun"

	"github.com/smartlite/crmkit/metrics"
)

//go:embed migrations/postgres/*.sql migrations/sqlite/*.sql
var migrationFS embed.FS

// migrationLockKey is the Postgres advisory lock that serialises processes
// migrating the same database at once ("crmkit" in ASCII).
const migrationLockKey = 0x63726d6b6974

// Migrations lists the names of the embedded migration files of a dialect, in
// the order they apply.
func Migrations(dialect string) ([]string, error) {
	entries, err := fs.ReadDir(migrationFS, path.Join("migrations", dialect))
	if err != nil {
		return nil, fmt.Errorf("store: migrations of %q: %w", dialect, err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".sql") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// Migrate applies the embedded migrations not yet applied, then River's own
// migrations. Two processes migrating the same database at once are safe:
// on Postgres a session advisory lock makes the second wait and then find
// nothing left to do; on SQLite everything runs in one transaction, whose
// write lock does the same.
//
// Applied files are recorded by name in schema_migrations. A file is never
// applied twice, so a released migration must not be edited: add a new one.
func (s *Store) Migrate(ctx context.Context) error {
	if err := s.migrate(ctx); err != nil {
		return fmt.Errorf("store: migrate %s: %w", s.dialect, err)
	}
	return nil
}

func (s *Store) migrate(ctx context.Context) error {
	if s.dialect == DialectSQLite {
		return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if err := s.applyOwn(ctx, tx); err != nil {
				return err
			}
			return s.migrateRiverTx(ctx, tx.Tx)
		})
	}
	// River's Postgres migrations cannot share one transaction (one adds an
	// enum value a later one uses), so the lock is a session lock held on a
	// connection of its own while the migrations run on others.
	conn, err := s.sqldb.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migrationLockKey); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLockKey)
	}()
	if err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		return s.applyOwn(ctx, tx)
	}); err != nil {
		return err
	}
	m, err := rivermigrate.New(s.riverDriver(), &rivermigrate.Config{Logger: s.cfg.logger})
	if err != nil {
		return err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river: %w", err)
	}
	return nil
}

// applyOwn applies crmkit's embedded migrations not yet recorded.
func (s *Store) applyOwn(ctx context.Context, tx bun.Tx) error {
	names, err := Migrations(s.dialect)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name TEXT PRIMARY KEY,
		applied_at TEXT NOT NULL
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var applied []string
	if err := tx.NewRaw("SELECT name FROM schema_migrations").Scan(ctx, &applied); err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	for _, name := range names {
		if slices.Contains(applied, name) {
			continue
		}
		body, err := migrationFS.ReadFile(path.Join("migrations", s.dialect, name))
		if err != nil {
			return err
		}
		// The SQL goes to the driver as is: bun would read its "?" as
		// placeholders. Both drivers run several statements in one Exec
		// when it has no arguments.
		if _, err := tx.Tx.ExecContext(ctx, string(body)); err != nil {
			return fmt.Errorf("apply %s: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
			name, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
			return fmt.Errorf("record %s: %w", name, err)
		}
	}
	return nil
}

// migrateRiverTx applies River's SQLite migrations inside tx. River
// deprecates MigrateTx because some of its Postgres migrations cannot share a
// transaction; its SQLite ones can (TestMigrate applies them all at once from
// several openers), and the transaction is what serialises processes opening
// the same SQLite file, which no other lock does without blocking the pool.
func (s *Store) migrateRiverTx(ctx context.Context, tx *sql.Tx) error {
	m, err := rivermigrate.New(s.riverDriver(), &rivermigrate.Config{Logger: s.cfg.logger})
	if err != nil {
		return err
	}
	//lint:ignore SA1019 see the function comment: safe for River's SQLite migrations.
	if _, err = m.MigrateTx(ctx, tx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river: %w", err)
	}
	return nil
}

// riverDriver is River's driver for the store's dialect, on the store's
// pool, with the store's wake-ups (see wakeDriver).
func (s *Store) riverDriver() riverdriver.Driver[*sql.Tx] {
	d := &wakeDriver{Driver: riversqlite.New(s.sqldb), s: s}
	if s.dialect == DialectPostgres {
		d.Driver = riverdatabasesql.New(s.sqldb)
	}
	return d
}

// NewJobClient creates a River client on the store's database with the
// driver of its dialect, and makes it the client InsertEvents enqueues
// through. cfg is River's own configuration: give it Queues and Workers to
// work jobs. The client does not wait for its poll to find new jobs: every
// job client of the store hears at once of the jobs the store's committed
// transactions made available, and on Postgres those that other processes
// committed too (River's insert notifications, heard on a LISTEN connection
// of the client's own). FetchPollInterval is then only the fallback for a
// notification that was lost. A client with Workers must register a worker for
// records.FanoutArgs (or set SkipUnknownJobCheck), or InsertEvents fails.
func (s *Store) NewJobClient(cfg *river.Config) (*river.Client[*sql.Tx], error) {
	if cfg == nil {
		return nil, fmt.Errorf("store: NewJobClient: nil config")
	}
	c, err := river.NewClient(s.riverDriver(), cfg)
	if err != nil {
		return nil, fmt.Errorf("store: river client: %w", err)
	}
	s.mu.Lock()
	s.jobs = c
	s.mu.Unlock()
	return c, nil
}

// JobClient answers the River client InsertEvents uses: the last one
// NewJobClient made, or an insert-only client before that.
func (s *Store) JobClient() *river.Client[*sql.Tx] {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.jobs
}

// QueueDepth answers how many jobs wait or run, by kind and state: the
// job_queue_depth gauge of package metrics.
func (s *Store) QueueDepth(ctx context.Context) ([]metrics.QueueCount, error) {
	var rows []struct {
		Kind  string `bun:"kind"`
		State string `bun:"state"`
		N     int64  `bun:"n"`
	}
	err := s.db.NewRaw(`SELECT kind, state, count(*) AS n FROM river_job
		WHERE state IN ('available', 'scheduled', 'retryable', 'running') GROUP BY kind, state`).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("store: queue depth: %w", err)
	}
	out := make([]metrics.QueueCount, len(rows))
	for i, r := range rows {
		out[i] = metrics.QueueCount{Kind: r.Kind, State: r.State, Count: r.N}
	}
	return out, nil
}
