package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun/driver/sqliteshim"

	"github.com/smartlite/crmkit/records"
)

// Expensive reads. A record list with filters may have to look at every
// record of an object (always on SQLite, which has no index on JSON
// fields), so one caller firing many of them at once could take every
// connection of the pool, and the job queue and the health check would wait
// behind them. These reads therefore run apart:
//
//   - on a pool of their own, of ExpensiveReads.Concurrent connections,
//     beside the main pool that River, writes, health checks and every other
//     read use; on SQLite a pool of query_only connections to the same file
//     (WAL lets them read beside the writer), on Postgres a pool whose
//     sessions carry statement_timeout;
//   - at most Concurrent at a time; one more waits up to Wait for a turn and
//     then fails with records.ErrBusy, which the API answers 503 with
//     Retry-After;
//   - each for at most Timeout (Postgres's statement_timeout, and the
//     query's context on both, which interrupts SQLite), after which it
//     fails with records.ErrQueryTimeout.
//
// A list inside a transaction (ctx carries one) reads in it, as every read
// does, without these bounds: its caller is the process itself.
//
// Ping, which health and readiness probes call, has a connection of its
// own for the same reason: a pool busy with a flood of work answers a probe
// late, and an orchestrator that reads that as a dead process restarts
// the one process doing the work. On SQLite it reads the database file,
// not only the connection.
//
// On Postgres a filter is a JSON containment (fields @> '{"stage":"Won"}')
// that the GIN index of migration 0010 serves; the separate pool and the
// bound stay, for filters that match much of a large object.

// ExpensiveReads bounds the reads described above. Zero fields take the
// defaults of DefaultExpensiveReads.
type ExpensiveReads struct {
	// Concurrent is how many run at once, and the size of their pool.
	Concurrent int
	// Wait is how long one waits for a turn before failing with
	// records.ErrBusy.
	Wait time.Duration
	// Timeout is how long one may run before failing with
	// records.ErrQueryTimeout.
	Timeout time.Duration
}

// DefaultExpensiveReads answers the defaults for a dialect: on SQLite, one
// at a time for every two cores (GOMAXPROCS), at least one, since a scan
// runs in this process and takes a core for its whole length (about 1.5 s
// for 100,000 records on a busy 2-core machine); on Postgres 4. Half a
// second's wait, and a 5 s timeout.
func DefaultExpensiveReads(dialect string) ExpensiveReads {
	n := 4
	if dialect == DialectSQLite {
		n = max(runtime.GOMAXPROCS(0)/2, 1)
	}
	return ExpensiveReads{Concurrent: n, Wait: 500 * time.Millisecond, Timeout: 5 * time.Second}
}

// WithExpensiveReads sets the bounds of expensive reads (see
// ExpensiveReads); zero fields keep the dialect's defaults.
func WithExpensiveReads(r ExpensiveReads) Option {
	return func(c *config) { c.expensive = r }
}

// heavyReads is the pool and the turns of expensive reads, and the
// connection of Ping.
type heavyReads struct {
	db    *sql.DB
	probe *sql.DB
	turns chan struct{}
	cfg   ExpensiveReads
}

// openHeavy opens the pool of expensive reads on the database dsn names.
func (s *Store) openHeavy(dsn string) error {
	cfg := DefaultExpensiveReads(s.dialect)
	if r := s.cfg.expensive; r.Concurrent > 0 {
		cfg.Concurrent = r.Concurrent
	}
	if r := s.cfg.expensive; r.Wait > 0 {
		cfg.Wait = r.Wait
	}
	if r := s.cfg.expensive; r.Timeout > 0 {
		cfg.Timeout = r.Timeout
	}
	open := func(n int, timeout time.Duration) (*sql.DB, error) {
		var db *sql.DB
		if s.dialect == DialectPostgres {
			pc, err := pgx.ParseConfig(dsn)
			if err != nil {
				return nil, fmt.Errorf("store: open postgres: %w", err)
			}
			// 0 would be no timeout at all.
			pc.RuntimeParams["statement_timeout"] = strconv.FormatInt(max(timeout.Milliseconds(), 1), 10)
			db = stdlib.OpenDB(*pc, stdlib.OptionAfterConnect(textArrayParams))
		} else {
			uri, err := sqliteURI(dsn, s.cfg.sqliteBusyWait)
			if err != nil {
				return nil, err
			}
			path, rawQuery, _ := strings.Cut(uri, "?")
			q, err := url.ParseQuery(rawQuery)
			if err != nil {
				return nil, fmt.Errorf("store: sqlite dsn query: %w", err)
			}
			q.Add("_pragma", "query_only(1)")
			if db, err = sql.Open(sqliteshim.ShimName, path+"?"+q.Encode()); err != nil {
				return nil, fmt.Errorf("store: open sqlite: %w", err)
			}
		}
		db.SetMaxOpenConns(n)
		db.SetMaxIdleConns(n)
		db.SetConnMaxIdleTime(5 * time.Minute)
		return db, nil
	}
	db, err := open(cfg.Concurrent, cfg.Timeout)
	if err != nil {
		return err
	}
	probe, err := open(1, 5*time.Second)
	if err != nil {
		_ = db.Close()
		return err
	}
	s.heavy = &heavyReads{db: db, probe: probe, turns: make(chan struct{}, cfg.Concurrent), cfg: cfg}
	return nil
}

func (h *heavyReads) close() error {
	if h == nil {
		return nil
	}
	return errors.Join(h.db.Close(), h.probe.Close())
}

// ping asks the database on the probe's connection: on SQLite for the
// schema version, which reads the database file.
func (h *heavyReads) ping(ctx context.Context, dialect string) error {
	q := "SELECT 1"
	if dialect == DialectSQLite {
		q = "PRAGMA schema_version"
	}
	var n int
	return h.probe.QueryRowContext(ctx, q).Scan(&n)
}

// query runs q on the pool of expensive reads once it has a turn, under the
// timeout, and hands the rows to scan.
func (h *heavyReads) query(ctx context.Context, scan func(*sql.Rows) error, q string, args ...any) error {
	wait := time.NewTimer(h.cfg.Wait)
	select {
	case h.turns <- struct{}{}:
		wait.Stop()
	case <-wait.C:
		return fmt.Errorf("store: %d expensive reads are running; waited %s: %w", h.cfg.Concurrent, h.cfg.Wait, records.ErrBusy)
	case <-ctx.Done():
		wait.Stop()
		return ctx.Err()
	}
	defer func() { <-h.turns }()
	// The timeout bounds the statement, not the wait for a connection: one
	// opened now, on a busy machine, may take longer than a short timeout.
	conn, err := h.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// The context's deadline is a little later than Postgres's own
	// statement_timeout, which ends the statement on the server (a
	// cancelled context only drops the connection); on SQLite it is what
	// interrupts the statement.
	qctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout+h.cfg.Timeout/10)
	defer cancel()
	rows, err := conn.QueryContext(qctx, q, args...)
	if err == nil {
		err = scan(rows)
	}
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if (errors.As(err, &pgErr) && pgErr.Code == "57014") ||
		(ctx.Err() == nil && (qctx.Err() != nil || errors.Is(err, context.DeadlineExceeded))) {
		return fmt.Errorf("store: the read ran past %s: %w", h.cfg.Timeout, records.ErrQueryTimeout)
	}
	return err
}

// ListRecords answers the records of q ordered by id, at most q.Limit
// (DefaultListLimit when 0). UpdatedSince is inclusive. A filter on a field
// name that could not be a field fails with a *records.ValidationError.
//
// A filter with a value in q.FilterValues matches, on Postgres, records
// whose field holds that JSON value, type included; on SQLite, and for a
// filter without one, it compares the text of the field's JSON value: a
// string as is, a number or boolean as JSON writes it ("42", "true"). Null
// and missing fields match nothing.
//
// Outside a transaction a list with filters is an expensive read (see
// ExpensiveReads): it may fail with records.ErrBusy or
// records.ErrQueryTimeout.
func (s *Store) ListRecords(ctx context.Context, q records.ListQuery) ([]*records.Record, error) {
	query, args, err := s.listRecordsSQL(q)
	if err != nil {
		return nil, err
	}
	var rows []recordRow
	scan := func(r *sql.Rows) error { return s.db.ScanRows(ctx, r, &rows) }
	if len(q.Filter) > 0 && s.txFrom(ctx) == nil && s.heavy != nil {
		err = s.heavy.query(ctx, scan, query, args...)
	} else {
		var r *sql.Rows
		if r, err = s.boundRows(ctx, query, args...); err == nil {
			err = scan(r)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("store: list records: %w", err)
	}
	out := make([]*records.Record, len(rows))
	for i := range rows {
		rec, err := rows[i].record()
		if err != nil {
			return nil, err
		}
		out[i] = rec
	}
	return out, nil
}

// listRecordsSQL answers the statement of ListRecords and its arguments,
// bound ($1, $2, … each once, in order; see boundRows).
func (s *Store) listRecordsSQL(q records.ListQuery) (string, []any, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	var b strings.Builder
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	b.WriteString("SELECT id, workspace_id, object, external_id, version, fields, created_at, updated_at FROM records WHERE workspace_id = ")
	b.WriteString(arg(q.Workspace))
	b.WriteString(" AND object = ")
	b.WriteString(arg(q.Object))
	names := make([]string, 0, len(q.Filter))
	for name := range q.Filter {
		if !filterFieldRE.MatchString(name) {
			return "", nil, &records.ValidationError{Object: q.Object, Fields: []records.FieldError{{
				Field: name, Code: "unknown_field", Message: "is not a field name",
			}}}
		}
		names = append(names, name)
	}
	slices.Sort(names)
	contains := map[string]any{}
	for _, name := range names {
		text := q.Filter[name]
		switch v, typed := q.FilterValues[name]; {
		case s.dialect == DialectPostgres && typed:
			contains[name] = v
		case s.dialect == DialectPostgres:
			fmt.Fprintf(&b, " AND fields->>(%s::text) = %s", arg(name), arg(text))
		default:
			// ->> alone would answer 1 for true; -> answers JSON text, which
			// for numbers and booleans is the text Postgres's ->> gives.
			fmt.Fprintf(&b, ` AND (CASE json_type(fields, '$.' || %s) WHEN 'text' THEN fields ->> ('$.' || %s)
				WHEN 'null' THEN NULL ELSE fields -> ('$.' || %s) END) = %s`, arg(name), arg(name), arg(name), arg(text))
		}
	}
	if len(contains) > 0 {
		doc, err := json.Marshal(contains)
		if err != nil {
			return "", nil, fmt.Errorf("store: list records: filter: %w", err)
		}
		fmt.Fprintf(&b, " AND fields @> %s::jsonb", arg(string(doc)))
	}
	if !q.UpdatedSince.IsZero() {
		var t any = q.UpdatedSince.UTC()
		if s.dialect == DialectSQLite {
			// As bun writes times into SQLite's text columns.
			t = q.UpdatedSince.UTC().Format("2006-01-02 15:04:05.999999-07:00")
		}
		b.WriteString(" AND updated_at >= " + arg(t))
	}
	if q.After != "" {
		b.WriteString(" AND id > " + arg(q.After))
	}
	b.WriteString(" ORDER BY id LIMIT " + arg(limit))
	return b.String(), args, nil
}
