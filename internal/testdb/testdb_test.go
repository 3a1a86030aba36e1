package testdb_test

import (
	"context"
	"database/sql"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

func TestPostgresDSNGivesFreshDatabases(t *testing.T) {
	a, b := testdb.PostgresDSN(t), testdb.PostgresDSN(t)
	require.NotEqual(t, a, b)
	for _, dsn := range []string{a, b} {
		db, err := sql.Open("pgx", dsn)
		require.NoError(t, err)
		var n int
		require.NoError(t, db.QueryRowContext(context.Background(),
			"SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").Scan(&n))
		require.Zero(t, n)
		_, err = db.ExecContext(context.Background(), "CREATE TABLE t (id int)")
		require.NoError(t, err)
		require.NoError(t, db.Close())
	}
}

func TestDialects(t *testing.T) {
	var seen []string
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		require.NotEmpty(t, dsn)
		seen = append(seen, t.Name())
	})
	require.Len(t, seen, 2)
}
