// Package testdb gives tests real databases: a temporary SQLite file, or a
// fresh Postgres database on a shared server.
//
// The Postgres server is CRMKIT_TEST_POSTGRES when set: the URL of a server
// on which the given user may CREATE DATABASE (CI starts one). Otherwise the
// first PostgresDSN of a test process starts a throwaway cluster from the
// local initdb, pg_ctl and postgres binaries (on PATH or under
// /usr/lib/postgresql/*/bin), as the postgres OS user when the tests run as
// root, listening on 127.0.0.1 only; Main stops it when the tests end. When
// neither is available the test is skipped with the reason, or fails when
// CRMKIT_TEST_REQUIRE_POSTGRES=1.
//
// A package whose tests use Postgres (or Redis) calls Main from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// Environment variables the helpers read.
const (
	EnvPostgres        = "CRMKIT_TEST_POSTGRES"
	EnvRequirePostgres = "CRMKIT_TEST_REQUIRE_POSTGRES"
)

var (
	mainRunning atomic.Bool

	cleanupMu sync.Mutex
	cleanups  []func()
)

// addCleanup registers fn to run when Main returns, after every test: the
// place to stop servers started once per test process. Cleanups run in
// reverse order of registration.
func addCleanup(fn func()) {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	cleanups = append(cleanups, fn)
}

// Main runs the tests, then stops the servers the helpers started. Call it
// from TestMain of every package that uses PostgresDSN or RedisAddr.
func Main(m *testing.M) int {
	mainRunning.Store(true)
	code := m.Run()
	cleanupMu.Lock()
	fns := cleanups
	cleanups = nil
	cleanupMu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
	return code
}

// SQLiteDSN answers the path of a new SQLite file in the test's temporary
// directory, removed when the test ends.
func SQLiteDSN(tb testing.TB) string {
	tb.Helper()
	return filepath.Join(tb.TempDir(), "crmkit.db")
}

// PostgresDSN answers the URL of a new, empty database, dropped when the
// test ends.
func PostgresDSN(tb testing.TB) string {
	tb.Helper()
	server, admin, err := postgresServer()
	if err != nil {
		unavailable(tb, EnvRequirePostgres, "postgres", err)
	}
	name := "crmkit_test_" + randomHex(8)
	ctx := context.Background()
	// template0 never has sessions, so a CREATE DATABASE from another test
	// process cannot find its template busy.
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name+" TEMPLATE template0"); err != nil {
		tb.Fatalf("testdb: create database: %v", err)
	}
	tb.Cleanup(func() {
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("testdb: drop database %s: %v", name, err)
		}
	})
	u := *server
	u.Path = "/" + name
	return u.String()
}

// Dialects runs fn as one subtest per dialect, "sqlite" and "postgres", each
// with a fresh database.
func Dialects(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLiteDSN(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, PostgresDSN(t)) })
}

var pg struct {
	once   sync.Once
	server *url.URL
	admin  *sql.DB
	err    error
}

// postgresServer answers the server's URL and a pool on its maintenance
// database, starting a throwaway cluster the first time when no server is
// configured.
func postgresServer() (*url.URL, *sql.DB, error) {
	pg.once.Do(func() {
		raw := os.Getenv(EnvPostgres)
		if raw == "" {
			if !mainRunning.Load() {
				pg.err = fmt.Errorf("%s is unset and this package's TestMain does not call testdb.Main, which would stop a throwaway server", EnvPostgres)
				return
			}
			raw, pg.err = startCluster()
			if pg.err != nil {
				return
			}
		}
		pg.server, pg.err = url.Parse(raw)
		if pg.err != nil {
			pg.err = fmt.Errorf("%s: %w", EnvPostgres, pg.err)
			return
		}
		pg.admin, pg.err = sql.Open("pgx", raw)
		if pg.err != nil {
			return
		}
		pg.admin.SetMaxOpenConns(4)
		if pg.err = pg.admin.PingContext(context.Background()); pg.err != nil {
			pg.err = fmt.Errorf("connect to %s: %w", redact(pg.server), pg.err)
			return
		}
		addCleanup(func() { _ = pg.admin.Close() })
	})
	return pg.server, pg.admin, pg.err
}

// unavailable skips the test, or fails it when env says the service is
// required.
func unavailable(tb testing.TB, env, what string, err error) {
	tb.Helper()
	if os.Getenv(env) == "1" {
		tb.Fatalf("testdb: %s required (%s=1) but unavailable: %v", what, env, err)
	}
	tb.Skipf("testdb: no %s, skipping (set %s=1 to fail instead): %v", what, env, err)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func redact(u *url.URL) string {
	return u.Redacted()
}
