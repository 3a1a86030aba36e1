package ingest_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/ingest"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
)

// flakyStore fails the first write of a job's results, as a database busy
// or gone for a moment would.
type flakyStore struct {
	*store.Store
	failed atomic.Bool
}

func (s *flakyStore) PutBulkResults(ctx context.Context, jobID string, rs []ingest.RowResult) error {
	if s.failed.CompareAndSwap(false, true) {
		return errors.New("the database is busy")
	}
	return s.Store.PutBulkResults(ctx, jobID, rs)
}

// TestBulkRunFailureReleasesLease: a run that fails for a moment gives up
// its lease, so the next run (River's retry) claims the job at once rather
// than after the lease lapses (an hour here), and completes it with every
// row written once.
func TestBulkRunFailureReleasesLease(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st, err := store.Open(ctx, dsn)
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		flaky := &flakyStore{Store: st}
		p, err := records.NewPipeline(records.Config{Store: st, Objects: []records.Object{benchDeal}})
		require.NoError(t, err)
		bk, err := ingest.NewBulk(ingest.BulkConfig{Store: flaky, Pipeline: p, Lease: time.Hour})
		require.NoError(t, err)
		ws := &records.Workspace{Name: "Retry", Plan: records.PlanEnterprise}
		require.NoError(t, st.CreateWorkspace(ctx, ws))
		j, err := bk.Create(ctx, ws.ID, records.Actor{Kind: "api_key", ID: "key_retry"},
			ingest.JobInput{Object: "deal", Operation: records.OpUpsert, Format: ingest.FormatNDJSON})
		require.NoError(t, err)
		const n = 1200
		_, err = bk.Upload(ctx, ws.ID, j.ID, bytes.NewReader(benchRows(n)))
		require.NoError(t, err)
		_, err = bk.Close(ctx, ws.ID, j.ID)
		require.NoError(t, err)

		require.ErrorContains(t, bk.Run(ctx, j.ID), "the database is busy")
		j, err = bk.Get(ctx, ws.ID, j.ID)
		require.NoError(t, err)
		require.Equal(t, ingest.StateRunning, j.State, "the job is still to finish")
		require.Nil(t, j.HeartbeatAt, "its lease was given up")

		require.NoError(t, bk.Run(ctx, j.ID))
		j, err = bk.Get(ctx, ws.ID, j.ID)
		require.NoError(t, err)
		require.Equal(t, ingest.StateCompleted, j.State)
		require.EqualValues(t, n, j.Succeeded)
		require.EqualValues(t, n, j.Processed)
		count, err := st.RecordCount(ctx, ws.ID)
		require.NoError(t, err)
		require.EqualValues(t, n, count)
		rs, err := bk.Results(ctx, ws.ID, j.ID, "", 0, n+1)
		require.NoError(t, err)
		require.Len(t, rs, n)
		for i, r := range rs {
			require.EqualValues(t, i+1, r.Row)
			require.Equal(t, ingest.RowCreated, r.Action, "row %d", r.Row)
		}
	})
}
