package store_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/store"
)

func TestDialectsHoldTheSameMigrations(t *testing.T) {
	lite, err := store.Migrations(store.DialectSQLite)
	require.NoError(t, err)
	pg, err := store.Migrations(store.DialectPostgres)
	require.NoError(t, err)
	require.NotEmpty(t, lite)
	require.Equal(t, lite, pg)
	require.Equal(t, "0001_core.sql", lite[0])
}

func TestSQLitePragmasOnEveryConnection(t *testing.T) {
	ctx := context.Background()
	st := open(t, testdb.SQLiteDSN(t))
	// Hold several connections at once so the pool must open distinct ones.
	const n = 3
	for i := range n {
		conn, err := st.SQLDB().Conn(ctx)
		require.NoError(t, err)
		defer conn.Close()
		var journal string
		var foreignKeys, busy, synchronous int
		require.NoError(t, conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&journal))
		require.NoError(t, conn.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&foreignKeys))
		require.NoError(t, conn.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy))
		require.NoError(t, conn.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&synchronous))
		require.Equal(t, "wal", journal, "connection %d", i)
		require.Equal(t, 1, foreignKeys, "connection %d", i)
		require.Equal(t, 10000, busy, "connection %d", i)
		require.Equal(t, 1, synchronous, "connection %d: NORMAL", i)
	}
	require.GreaterOrEqual(t, st.SQLDB().Stats().OpenConnections, n)
}

func TestMigrate(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		dialect := store.DialectSQLite
		if strings.HasPrefix(dsn, "postgres") {
			dialect = store.DialectPostgres
		}
		names, err := store.Migrations(dialect)
		require.NoError(t, err)

		// Two processes opening a new database at once: both must succeed
		// and each migration must be applied once.
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range errs {
			wg.Go(func() {
				st, err := store.Open(ctx, dsn)
				if err == nil {
					err = st.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}

		st := open(t, dsn)
		require.NoError(t, st.Migrate(ctx), "migrating again is a no-op")
		var applied []string
		require.NoError(t, st.DB().NewRaw("SELECT name FROM schema_migrations ORDER BY name").Scan(ctx, &applied))
		require.Equal(t, names, applied)

		var jobs int
		require.NoError(t, st.DB().NewRaw("SELECT count(*) FROM river_job").Scan(ctx, &jobs), "River's tables exist")
	})
}

func TestWithoutMigrate(t *testing.T) {
	ctx := context.Background()
	st := open(t, testdb.SQLiteDSN(t), store.WithoutMigrate())
	var n int
	err := st.DB().NewRaw("SELECT count(*) FROM workspaces").Scan(ctx, &n)
	require.Error(t, err, "no tables before Migrate")
	require.NoError(t, st.Migrate(ctx))
	require.NoError(t, st.DB().NewRaw("SELECT count(*) FROM workspaces").Scan(ctx, &n))
}
