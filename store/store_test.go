package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
	"github.com/smartlite/crmkit/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

// open opens a store on dsn, closed when the test ends.
func open(tb testing.TB, dsn string, opts ...store.Option) *store.Store {
	tb.Helper()
	st, err := store.Open(context.Background(), dsn, opts...)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, st.Close()) })
	return st
}

func TestConformanceSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *store.Store { return open(t, testdb.SQLiteDSN(t)) })
}

func TestConformancePostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *store.Store { return open(t, testdb.PostgresDSN(t)) })
}

func TestDialectFromDSN(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, dsn, want string
	}{
		{"plain path", filepath.Join(dir, "a.db"), store.DialectSQLite},
		{"file uri", "file:" + filepath.Join(dir, "b.db"), store.DialectSQLite},
		{"file uri with query", "file:" + filepath.Join(dir, "c.db") + "?cache=private", store.DialectSQLite},
		{"sqlite prefix", "sqlite:" + filepath.Join(dir, "d.db"), store.DialectSQLite},
		{"sqlite url", "sqlite://" + filepath.Join(dir, "e.db"), store.DialectSQLite},
		{"odd characters in path", filepath.Join(dir, "f?x#y%z.db"), store.DialectSQLite},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := open(t, tc.dsn)
			require.Equal(t, tc.want, st.Dialect())
			require.NoError(t, st.CreateWorkspace(context.Background(), &records.Workspace{Name: "x"}))
		})
	}
	t.Run("postgres", func(t *testing.T) {
		st := open(t, testdb.PostgresDSN(t))
		require.Equal(t, store.DialectPostgres, st.Dialect())
	})
	t.Run("in-memory refused", func(t *testing.T) {
		_, err := store.Open(context.Background(), ":memory:")
		require.ErrorContains(t, err, "in-memory")
	})
}
