package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/ingest"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
	"github.com/smartlite/crmkit/store/storetest"
)

// TestListImportJobs: a workspace's import jobs come newest first, paged
// by the id before, without its other bulk jobs or another workspace's
// imports.
func TestListImportJobs(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st := open(t, dsn)
		ws := storetest.Workspace(t, st, "pro")
		other := storetest.Workspace(t, st, "pro")
		job := func(ws string, imported bool) string {
			var imp *ingest.ImportSpec
			if imported {
				imp = &ingest.ImportSpec{FileName: "accounts.xlsx", HeaderRow: 1, Columns: []string{"Name"},
					Mapping: map[string]string{"Name": "name"}}
			}
			return createJob(t, st, ws, imp)
		}
		var imports []string
		for i := range 5 {
			imports = append(imports, job(ws.ID, true))
			job(ws.ID, false)
			job(other.ID, i%2 == 0)
		}
		ids := func(js []*ingest.Job) []string {
			out := make([]string, len(js))
			for i, j := range js {
				require.Equal(t, ws.ID, j.Workspace)
				require.NotNil(t, j.Import)
				require.Equal(t, "accounts.xlsx", j.Import.FileName)
				out[i] = j.ID
			}
			return out
		}
		first, err := st.ListImportJobs(ctx, ws.ID, "", 3)
		require.NoError(t, err)
		require.Equal(t, []string{imports[4], imports[3], imports[2]}, ids(first))
		rest, err := st.ListImportJobs(ctx, ws.ID, first[2].ID, 3)
		require.NoError(t, err)
		require.Equal(t, []string{imports[1], imports[0]}, ids(rest))
		none, err := st.ListImportJobs(ctx, "ws_missing", "", 3)
		require.NoError(t, err)
		require.Empty(t, none)
	})
}

// TestCountBulkActions: a job's succeeded rows are counted by action;
// failed rows and other jobs' rows are not.
func TestCountBulkActions(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st := open(t, dsn)
		ws := storetest.Workspace(t, st, "pro")
		a, b := createJob(t, st, ws.ID, nil), createJob(t, st, ws.ID, nil)
		var rs []ingest.RowResult
		for i, action := range []string{ingest.RowCreated, ingest.RowCreated, ingest.RowUpdated, ingest.RowUnchanged, ingest.RowCreated} {
			rs = append(rs, ingest.RowResult{Row: int64(i + 1), Status: ingest.RowSucceeded, RecordID: records.NewID("rec"), Action: action})
		}
		rs = append(rs, ingest.RowResult{Row: 6, Status: ingest.RowFailed, Error: &ingest.ResultError{Code: "validation_failed", Message: "bad"}})
		require.NoError(t, st.PutBulkResults(ctx, a, rs))
		require.NoError(t, st.PutBulkResults(ctx, b, rs[:1]))
		got, err := st.CountBulkActions(ctx, a)
		require.NoError(t, err)
		require.Equal(t, map[string]int64{ingest.RowCreated: 3, ingest.RowUpdated: 1, ingest.RowUnchanged: 1}, got)
		got, err = st.CountBulkActions(ctx, records.NewID("blk"))
		require.NoError(t, err)
		require.Empty(t, got)
	})
}

// createJob stores an open job upserting accounts from a CSV file in ws,
// an import's when imp is set, and answers its id.
func createJob(t *testing.T, st *store.Store, ws string, imp *ingest.ImportSpec) string {
	t.Helper()
	j := &ingest.Job{ID: records.NewID("blk"), Workspace: ws, Object: "account", Operation: records.OpUpsert,
		Mode: ingest.ModePartial, Format: ingest.FormatCSV, State: ingest.StateOpen, CreatedAt: time.Now().UTC(), Import: imp}
	require.NoError(t, st.CreateBulkJob(context.Background(), j))
	return j.ID
}
