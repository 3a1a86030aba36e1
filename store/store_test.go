package store_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
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
	storetest.Run(t, func(t *testing.T) storetest.Store { return open(t, testdb.SQLiteDSN(t)) }, conformance)
}

func TestConformancePostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return open(t, testdb.PostgresDSN(t)) }, conformance)
}

var _ storetest.Store = (*store.Store)(nil)

// conformance lets the suite see River's jobs.
var conformance = storetest.Options{Jobs: riverJobs}

// riverJobs answers the args of the River jobs of kind, oldest first, in
// ctx's transaction when it carries one.
func riverJobs(ctx context.Context, s storetest.Store, kind string) ([]json.RawMessage, error) {
	st, ok := s.(*store.Store)
	if !ok {
		return nil, fmt.Errorf("riverJobs: %T is not a *store.Store", s)
	}
	col := "args"
	if st.Dialect() == store.DialectSQLite {
		col = "json(args)" // River keeps SQLite's binary JSONB
	}
	var args []string
	err := st.IDB(ctx).NewRaw("SELECT "+col+" FROM river_job WHERE kind = ? ORDER BY id", kind).Scan(ctx, &args)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	out := make([]json.RawMessage, len(args))
	for i, a := range args {
		out[i] = json.RawMessage(a)
	}
	return out, nil
}

// Only Postgres writes a row in one statement; on SQLite the pipeline makes
// the separate calls, and the suite's WriteRow case has nothing to run.
func TestRowTxOnPostgresOnly(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		st := open(t, dsn)
		require.NoError(t, st.InTx(context.Background(), func(ctx context.Context, tx records.Tx) error {
			_, ok := tx.(records.RowTx)
			require.Equal(t, st.Dialect() == store.DialectPostgres, ok)
			return nil
		}))
	})
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
