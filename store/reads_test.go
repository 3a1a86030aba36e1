package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
	"github.com/smartlite/crmkit/store/storetest"
)

// seedOpportunities writes n opportunities into ws straight in SQL, record
// i with name "deal i", code "c<i>", amount i and stage Closed Won for
// every fourth, New otherwise.
func seedOpportunities(tb testing.TB, st *store.Store, ws string, n int) {
	tb.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	q := `INSERT INTO records (id, workspace_id, object, version, fields, created_at, updated_at)
		SELECT 'rec_' || lpad(i::text, 8, '0'), ?, 'opportunity', 1,
			jsonb_build_object('name', 'deal ' || i, 'code', 'c' || i, 'amount', i,
				'stage', CASE i % 4 WHEN 0 THEN 'Closed Won' ELSE 'New' END), ?, ?
		FROM generate_series(1, ?) AS i`
	if st.Dialect() == store.DialectSQLite {
		q = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO records (id, workspace_id, object, version, fields, created_at, updated_at)
		SELECT printf('rec_%08d', i), ?, 'opportunity', 1,
			json_object('name', 'deal ' || i, 'code', 'c' || i, 'amount', i,
				'stage', CASE i % 4 WHEN 0 THEN 'Closed Won' ELSE 'New' END), ?, ?
		FROM n`
		_, err := st.DB().ExecContext(ctx, q, n, ws, now, now)
		require.NoError(tb, err)
		return
	}
	_, err := st.DB().ExecContext(ctx, q, ws, now, now, n)
	require.NoError(tb, err)
	_, err = st.DB().ExecContext(ctx, "ANALYZE records")
	require.NoError(tb, err)
}

// filter is a ListQuery's filter as the pipeline hands it on: the text and
// the typed value of each.
func filter(q *records.ListQuery, name string, v any) {
	if q.Filter == nil {
		q.Filter, q.FilterValues = map[string]string{}, map[string]any{}
	}
	text, ok := v.(string)
	if !ok {
		text = fmt.Sprint(v)
	}
	q.Filter[name], q.FilterValues[name] = text, v
}

// TestFilteredListUsesIndex: on Postgres a filter is a JSON containment the
// GIN index of migration 0010 serves.
func TestFilteredListUsesIndex(t *testing.T) {
	st := open(t, testdb.PostgresDSN(t))
	ws := storetest.Workspace(t, st, "enterprise")
	seedOpportunities(t, st, ws.ID, 20_000)
	q := records.ListQuery{Workspace: ws.ID, Object: "opportunity", Limit: 51}
	filter(&q, "code", "c12345")
	query, args, err := store.ListRecordsSQL(st, q)
	require.NoError(t, err)
	require.Contains(t, query, "@>")
	rows, err := st.SQLDB().QueryContext(context.Background(), "EXPLAIN "+query, args...)
	require.NoError(t, err)
	var plan []string
	for rows.Next() {
		var line string
		require.NoError(t, rows.Scan(&line))
		plan = append(plan, line)
	}
	require.NoError(t, rows.Err())
	require.Contains(t, strings.Join(plan, "\n"), "records_fields_idx")

	got, err := st.ListRecords(context.Background(), q)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "deal 12345", got[0].Fields["name"])
}

// TestTypedFilters: a filter matches by the field's JSON value on both
// dialects, numbers and strings alike.
func TestTypedFilters(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		st := open(t, dsn)
		ws := storetest.Workspace(t, st, "enterprise")
		seedOpportunities(t, st, ws.ID, 1000)
		list := func(q records.ListQuery) []*records.Record {
			t.Helper()
			q.Workspace, q.Object, q.Limit = ws.ID, "opportunity", 1000
			got, err := st.ListRecords(context.Background(), q)
			require.NoError(t, err)
			return got
		}
		var q records.ListQuery
		filter(&q, "amount", 123.0)
		require.Len(t, list(q), 1)
		q = records.ListQuery{}
		filter(&q, "stage", "Closed Won")
		require.Len(t, list(q), 250)
		filter(&q, "amount", 400)
		require.Len(t, list(q), 1, "two filters, both must hold")
		q = records.ListQuery{}
		filter(&q, "code", "x' OR '1'='1")
		require.Empty(t, list(q))
	})
}

// TestExpensiveReadsBounded: filtered lists beyond the bound wait briefly
// and fail with ErrBusy; everything else (pings, plain lists, reads inside
// a transaction) goes on meanwhile.
func TestExpensiveReadsBounded(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st := open(t, dsn, store.WithExpensiveReads(store.ExpensiveReads{Concurrent: 2, Wait: 20 * time.Millisecond}))
		ws := storetest.Workspace(t, st, "enterprise")
		seedOpportunities(t, st, ws.ID, 100)
		q := records.ListQuery{Workspace: ws.ID, Object: "opportunity"}
		filter(&q, "stage", "Closed Won")

		release := store.HoldExpensiveReads(st)
		_, err := st.ListRecords(ctx, q)
		require.ErrorIs(t, err, records.ErrBusy)

		require.NoError(t, st.Ping(ctx))
		plain, err := st.ListRecords(ctx, records.ListQuery{Workspace: ws.ID, Object: "opportunity"})
		require.NoError(t, err)
		require.Len(t, plain, store.DefaultListLimit)
		require.NoError(t, st.InTx(ctx, func(ctx context.Context, _ records.Tx) error {
			got, err := st.ListRecords(ctx, q)
			require.Len(t, got, 25)
			return err
		}), "a list inside a transaction is the process's own, and not bounded")

		release()
		got, err := st.ListRecords(ctx, q)
		require.NoError(t, err)
		require.Len(t, got, 25)
	})
}

// TestExpensiveReadTimeout: a filtered list that runs past the statement
// timeout fails with ErrQueryTimeout, and the store goes on working.
func TestExpensiveReadTimeout(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st := open(t, dsn, store.WithExpensiveReads(store.ExpensiveReads{Timeout: time.Millisecond}))
		ws := storetest.Workspace(t, st, "enterprise")
		seedOpportunities(t, st, ws.ID, 100_000)
		// A filter compared by its text scans every record on both
		// dialects (tens of milliseconds), far past a millisecond.
		q := records.ListQuery{Workspace: ws.ID, Object: "opportunity", Filter: map[string]string{"name": "nobody"}}
		_, err := st.ListRecords(ctx, q)
		require.ErrorIs(t, err, records.ErrQueryTimeout)
		require.NoError(t, st.Ping(ctx))
		got, err := st.ListRecords(ctx, records.ListQuery{Workspace: ws.ID, Object: "opportunity", Limit: 1})
		require.NoError(t, err)
		require.Len(t, got, 1)
	})
}
