package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/sqliteshim"

	"github.com/smartlite/crmkit/internal/sealed"
)

// The dialect names Dialect answers.
const (
	DialectPostgres = "postgres"
	DialectSQLite   = "sqlite"
)

// Store is the bun-backed storage of crmkit on Postgres or SQLite. It is safe
// for concurrent use.
type Store struct {
	db      *bun.DB
	sqldb   *sql.DB
	dialect string
	cfg     config

	mu   sync.RWMutex
	jobs *river.Client[*sql.Tx]
	// wake tells the job clients of this store about jobs its committed
	// transactions made available (see wake.go).
	wake wakeBus

	stmtMu sync.RWMutex
	stmts  map[string]*sql.Stmt

	// heavy runs expensive reads on a pool of their own (see reads.go).
	heavy *heavyReads

	// keys seals and opens stored secrets; nil when Open got no
	// WithSecretKey (see secrets.go).
	keys *sealed.Keyring
}

type config struct {
	migrate        bool
	maxOpenConns   int
	sqliteBusyWait time.Duration
	logger         *slog.Logger
	expensive      ExpensiveReads
	secretKey      SecretKey
	olderKeys      []SecretKey
}

// Option tunes Open.
type Option func(*config)

// WithoutMigrate makes Open skip applying migrations; call Migrate yourself.
func WithoutMigrate() Option { return func(c *config) { c.migrate = false } }

// WithMaxOpenConns sets the size of the connection pool. The defaults are 20
// for Postgres and 4 for SQLite (see the package documentation for why).
func WithMaxOpenConns(n int) Option { return func(c *config) { c.maxOpenConns = n } }

// WithSQLiteBusyTimeout sets how long an SQLite connection waits for another
// writer before failing with SQLITE_BUSY. The default is 10 seconds.
func WithSQLiteBusyTimeout(d time.Duration) Option {
	return func(c *config) { c.sqliteBusyWait = d }
}

// WithLogger sets the logger River's migrator and insert-only client log to;
// River's default logs warnings to standard output.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// Open connects to the database named by dsn, applies the embedded migrations
// (crmkit's and River's) unless WithoutMigrate is given, and prepares an
// insert-only River client for the events InsertEvents enqueues.
//
// A dsn starting with postgres:// or postgresql:// selects Postgres (through
// pgx's database/sql adapter); anything else is an SQLite database file: a
// plain path, a file: URI, or a path prefixed with sqlite:.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	cfg := config{migrate: true, sqliteBusyWait: 10 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	s := &Store{cfg: cfg}
	keys, err := cfg.keyring()
	if err != nil {
		return nil, err
	}
	s.keys = keys
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		sqldb, err := openPostgres(dsn)
		if err != nil {
			return nil, err
		}
		n := 20
		if cfg.maxOpenConns > 0 {
			n = cfg.maxOpenConns
		}
		sqldb.SetMaxOpenConns(n)
		// Every open connection may stay idle: with fewer idle slots than
		// open ones, a busy pool closes connections only to open them again
		// moments later, and each new one starts a Postgres backend process
		// (under webhook load, about a hundred in ten seconds).
		sqldb.SetMaxIdleConns(n)
		sqldb.SetConnMaxIdleTime(5 * time.Minute)
		sqldb.SetConnMaxLifetime(30 * time.Minute)
		s.sqldb, s.dialect = sqldb, DialectPostgres
		s.db = bun.NewDB(sqldb, pgdialect.New())
	} else {
		uri, err := sqliteURI(dsn, cfg.sqliteBusyWait)
		if err != nil {
			return nil, err
		}
		if err := createSQLiteFile(uri); err != nil {
			return nil, err
		}
		sqldb, err := sql.Open(sqliteshim.ShimName, uri)
		if err != nil {
			return nil, fmt.Errorf("store: open sqlite: %w", err)
		}
		n := sqliteDefaultConns
		if cfg.maxOpenConns > 0 {
			n = cfg.maxOpenConns
		}
		sqldb.SetMaxOpenConns(n)
		sqldb.SetMaxIdleConns(n)
		s.sqldb, s.dialect = sqldb, DialectSQLite
		s.db = bun.NewDB(sqldb, sqlitedialect.New())
	}
	if err := s.ping(ctx); err != nil {
		_ = s.sqldb.Close()
		return nil, fmt.Errorf("store: connect %s: %w", s.dialect, err)
	}
	if cfg.migrate {
		if err := s.Migrate(ctx); err != nil {
			_ = s.sqldb.Close()
			return nil, err
		}
		if s.keys != nil {
			if _, err := s.ResealSecrets(ctx); err != nil {
				_ = s.sqldb.Close()
				return nil, err
			}
		}
	}
	jobs, err := river.NewClient(s.riverDriver(), &river.Config{Logger: cfg.logger})
	if err != nil {
		_ = s.sqldb.Close()
		return nil, fmt.Errorf("store: river insert client: %w", err)
	}
	s.jobs = jobs
	if err := s.openHeavy(dsn); err != nil {
		_ = s.sqldb.Close()
		return nil, err
	}
	return s, nil
}

// ping opens a first connection. On SQLite it tries again while the answer
// is SQLITE_BUSY, for up to the busy timeout: a connection switching a new
// database to WAL mode gets that answer at once, without waiting
// busy_timeout, when another process is opening the same new file (one in
// about fifteen of three processes starting together did).
func (s *Store) ping(ctx context.Context) error {
	if s.dialect != DialectSQLite {
		return s.sqldb.PingContext(ctx)
	}
	deadline := time.Now().Add(s.cfg.sqliteBusyWait)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err := s.sqldb.PingContext(ctx)
		if err == nil || !sqliteBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// sqliteBusy answers whether err is SQLite's SQLITE_BUSY, by the message
// SQLite gives it, which reads the same through either driver sqliteshim
// may pick.
func sqliteBusy(err error) bool { return strings.Contains(err.Error(), "database is locked") }

// sqliteDefaultConns lets readers run beside the one writer SQLite allows.
const sqliteDefaultConns = 4

// sqlitePragmas are set on every new connection through the DSN, so each
// pooled connection gets them, not only the first.
var sqlitePragmas = []string{"journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)"}

// sqliteURI turns the forms of SQLite dsn Open accepts into a file: URI for
// the modernc driver, adding the pragmas and the transaction lock mode.
func sqliteURI(dsn string, busy time.Duration) (string, error) {
	path, rawQuery := dsn, ""
	switch {
	case strings.HasPrefix(dsn, "file:"):
		path = strings.TrimPrefix(dsn, "file:")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path, rawQuery = path[:i], path[i+1:]
		}
	case strings.HasPrefix(dsn, "sqlite:"):
		path = strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path, rawQuery = path[:i], path[i+1:]
		}
		path = escapeSQLitePath(path)
	default:
		path = escapeSQLitePath(path)
	}
	if path == "" {
		return "", errors.New("store: empty sqlite path")
	}
	if path == ":memory:" {
		return "", errors.New("store: in-memory sqlite is not supported: every pooled connection would see its own database; use a temporary file")
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", fmt.Errorf("store: sqlite dsn query: %w", err)
	}
	has := func(name string) bool {
		for _, p := range q["_pragma"] {
			if strings.HasPrefix(strings.ToLower(strings.TrimSpace(p)), name) {
				return true
			}
		}
		return false
	}
	// busy_timeout goes first: the driver runs it before the others, so that
	// switching to WAL waits for a concurrent opener instead of failing.
	if !has("busy_timeout") {
		q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	}
	for _, p := range sqlitePragmas {
		if !has(p[:strings.IndexByte(p, '(')]) {
			q.Add("_pragma", p)
		}
	}
	// BEGIN IMMEDIATE takes the write lock when the transaction starts, so a
	// transaction never has to upgrade a read lock to a write lock, which
	// SQLite answers with SQLITE_BUSY at once instead of waiting busy_timeout.
	if q.Get("_txlock") == "" {
		q.Set("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode(), nil
}

// createSQLiteFile creates the database file of uri, readable and writable
// by its owner only, when it does not exist yet: SQLite would create it
// with mode 0644 (less the umask), and it holds every record. SQLite gives
// the -wal and -shm files it makes beside it the database file's mode.
// A file that exists keeps the mode it has; a URI that names no file on
// disk (a mode= or vfs= parameter) is left to SQLite.
func createSQLiteFile(uri string) error {
	path, rawQuery, _ := strings.Cut(strings.TrimPrefix(uri, "file:"), "?")
	q, _ := url.ParseQuery(rawQuery)
	if q.Has("mode") || q.Has("vfs") {
		return nil
	}
	p, err := url.PathUnescape(path)
	if err != nil {
		return nil
	}
	if strings.HasPrefix(p, "//") {
		// file://host/path or file:///path: SQLite takes the path after
		// an empty or "localhost" authority.
		rest := strings.TrimPrefix(p, "//")
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			return nil
		}
		p = rest[i:]
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		return f.Close()
	case errors.Is(err, os.ErrExist):
		return nil
	default:
		return fmt.Errorf("store: create sqlite file: %w", err)
	}
}

// escapeSQLitePath escapes what a file: URI would otherwise read as syntax.
func escapeSQLitePath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}

// Close stops nothing River runs (stop your job client first) and closes the
// database.
func (s *Store) Close() error {
	s.stmtMu.Lock()
	var errs []error
	for _, st := range s.stmts {
		errs = append(errs, st.Close())
	}
	s.stmts = nil
	s.stmtMu.Unlock()
	return errors.Join(append(errs, s.heavy.close(), s.sqldb.Close())...)
}

// boundRows runs q, whose values are bound ($1, $2, … each once, in order:
// SQLite reads them as parameters so named, numbered as they appear), on
// the transaction in ctx or the pool. A query bun builds has its values
// formatted into its text, so on Postgres each new text costs pgx a round
// trip to prepare it and a place in its statement cache; a bound text is
// prepared once per connection. SQLite has no such cache, so there the
// statement is prepared once (see prepared), and reused in a transaction.
func (s *Store) boundRows(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	t := s.txFrom(ctx)
	if s.dialect != DialectSQLite {
		if t != nil {
			return t.tx.Tx.QueryContext(ctx, q, args...)
		}
		return s.sqldb.QueryContext(ctx, q, args...)
	}
	stmt, err := s.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	if t != nil {
		stmt = t.tx.Tx.StmtContext(ctx, stmt)
	}
	return stmt.QueryContext(ctx, args...)
}

// queryOne runs q (see boundRows) and scans its first row into dest, a bun
// model, through bun's scanner, which also reads the timestamps SQLite
// keeps as text. It answers sql.ErrNoRows when there is no row.
func (s *Store) queryOne(ctx context.Context, dest any, q string, args ...any) error {
	rows, err := s.boundRows(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := s.db.ScanRow(ctx, rows, dest); err != nil {
		return err
	}
	return rows.Close()
}

// queryAll runs q (see boundRows) and scans its rows into dest, a slice of
// bun models.
func (s *Store) queryAll(ctx context.Context, dest any, q string, args ...any) error {
	rows, err := s.boundRows(ctx, q, args...)
	if err != nil {
		return err
	}
	return s.db.ScanRows(ctx, rows, dest)
}

// prepared answers the statement of q prepared on the pool, preparing it
// on first use. database/sql prepares it again on each connection it
// runs on, once, and keeps it there.
func (s *Store) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	s.stmtMu.RLock()
	st := s.stmts[q]
	s.stmtMu.RUnlock()
	if st != nil {
		return st, nil
	}
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	if st := s.stmts[q]; st != nil {
		return st, nil
	}
	st, err := s.sqldb.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("store: prepare: %w", err)
	}
	if s.stmts == nil {
		s.stmts = map[string]*sql.Stmt{}
	}
	s.stmts[q] = st
	return st, nil
}

// DB is the bun handle, for storage code of other features in this package
// and for tests.
func (s *Store) DB() *bun.DB { return s.db }

// SQLDB is the database/sql pool bun and River share.
func (s *Store) SQLDB() *sql.DB { return s.sqldb }

// Dialect answers DialectPostgres or DialectSQLite.
func (s *Store) Dialect() string { return s.dialect }
