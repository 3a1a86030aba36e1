package store_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/connector"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/mapping"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
	"github.com/smartlite/crmkit/store/storetest"
)

func newTestConnector(ws string) *connector.Connector {
	now := time.Now()
	return &connector.Connector{ID: records.NewID("con"), Workspace: ws, Name: "Billing", Kind: connector.KindHTTP,
		Settings: json.RawMessage(`{"url":"https://billing.example/api"}`),
		Headers:  map[string]string{"Authorization": "Bearer connector-secret-value"},
		Mode:     connector.ModeIncremental, Deletes: connector.DeletesOff, MaxDeleteRatio: 0.5, Enabled: true,
		Mapping: mapping.Spec{Targets: []mapping.Target{{Object: "account", ExternalID: "string(id)",
			Fields: map[string]string{"name": "name"}}}},
		CreatedAt: now, UpdatedAt: now}
}

// TestConnectorHeadersSealedAtRest: a connector's header values are stored
// sealed under the store's key, come back in plaintext from every read,
// and are re-sealed under a new key.
func TestConnectorHeadersSealedAtRest(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		key := secretKey(t)
		st := open(t, dsn, store.WithSecretKey(key))
		ws := storetest.Workspace(t, st, "pro")
		c := newTestConnector(ws.ID)
		require.NoError(t, st.CreateConnector(ctx, c))

		var raw string
		require.NoError(t, st.DB().NewRaw("SELECT headers FROM connectors WHERE id = ?", c.ID).Scan(ctx, &raw))
		require.NotContains(t, raw, "connector-secret-value")
		require.Contains(t, raw, "sealed:v1:"+key.ID()+":")

		got, err := st.GetConnector(ctx, ws.ID, c.ID)
		require.NoError(t, err)
		require.Equal(t, c.Headers, got.Headers)
		list, err := st.ListConnectors(ctx, ws.ID, "", 0)
		require.NoError(t, err)
		require.Equal(t, c.Headers, list[0].Headers)

		next := secretKey(t)
		require.NoError(t, st.Close())
		st = open(t, dsn, store.WithSecretKey(next, key))
		require.NoError(t, st.DB().NewRaw("SELECT headers FROM connectors WHERE id = ?", c.ID).Scan(ctx, &raw))
		require.Contains(t, raw, "sealed:v1:"+next.ID()+":")
		got, err = st.GetConnector(ctx, "", c.ID)
		require.NoError(t, err)
		require.Equal(t, c.Headers, got.Headers)
	})
}

// TestConnectorRunLock: one run holds a connector at a time; a worker's
// page commits and its finish need its lease, and a run whose lease ran
// out is claimed by the next worker, after which the first one's commits
// are refused.
func TestConnectorRunLock(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st := open(t, dsn)
		_, err := st.NewJobClient(&river.Config{})
		require.NoError(t, err)
		ws := storetest.Workspace(t, st, "pro")
		c := newTestConnector(ws.ID)
		require.NoError(t, st.CreateConnector(ctx, c))

		now := time.Now()
		job := func(run *connector.Run) river.InsertManyParams {
			return river.InsertManyParams{Args: connector.RunArgs{ConnectorID: c.ID, RunID: run.ID}}
		}
		run := &connector.Run{ID: records.NewID("run"), Workspace: ws.ID, ConnectorID: c.ID, Trigger: connector.TriggerManual,
			Status: connector.RunQueued, CreatedAt: now}
		require.NoError(t, st.BeginConnectorRun(ctx, run, now.Add(time.Minute), job(run)))
		second := &connector.Run{ID: records.NewID("run"), Workspace: ws.ID, ConnectorID: c.ID, Trigger: connector.TriggerManual,
			Status: connector.RunQueued, CreatedAt: now}
		require.ErrorIs(t, st.BeginConnectorRun(ctx, second, now.Add(time.Minute), job(second)), connector.ErrRunActive)
		require.ErrorIs(t, st.ResetConnector(ctx, ws.ID, c.ID, ""), connector.ErrRunActive)
		require.ErrorIs(t, st.BeginConnectorRun(ctx, &connector.Run{ID: records.NewID("run"), Workspace: "ws_other",
			ConnectorID: c.ID, CreatedAt: now}, now, job(second)), records.ErrNotFound)

		_, claimed, ok, err := st.ClaimConnectorRun(ctx, c.ID, run.ID, "worker-a", now, now.Add(time.Minute))
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, connector.RunRunning, claimed.Status)
		_, _, ok, err = st.ClaimConnectorRun(ctx, c.ID, run.ID, "worker-b", now, now.Add(time.Minute))
		require.NoError(t, err)
		require.False(t, ok, "a live worker's run is not claimed")

		commit := func(token, state string) error {
			return st.InTx(ctx, func(ctx context.Context, _ records.Tx) error {
				return st.CommitConnectorPage(ctx, connector.PageCommit{ConnectorID: c.ID, RunID: run.ID, Token: token,
					State: state, LeaseUntil: now.Add(time.Minute)})
			})
		}
		require.NoError(t, commit("worker-a", "page-1"))

		// worker-a stops renewing; after its lease worker-b takes over.
		later := now.Add(2 * time.Minute)
		stale, err := st.StaleConnectorRuns(ctx, later)
		require.NoError(t, err)
		require.Len(t, stale, 1)
		require.Equal(t, run.ID, stale[0].ID)
		got, claimed, ok, err := st.ClaimConnectorRun(ctx, c.ID, run.ID, "worker-b", later, later.Add(time.Minute))
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "page-1", got.State, "the run resumes at its last committed page")
		require.EqualValues(t, 1, claimed.Pages)
		require.ErrorIs(t, commit("worker-a", "page-2"), connector.ErrLeaseLost)
		require.ErrorIs(t, st.ExtendConnectorLease(ctx, c.ID, "worker-a", later), connector.ErrLeaseLost)
		require.ErrorIs(t, st.FinishConnectorRun(ctx, run, "worker-a", "done"), connector.ErrLeaseLost)
		require.NoError(t, commit("worker-b", "page-2"))
		run.Status = connector.RunSucceeded
		require.NoError(t, st.FinishConnectorRun(ctx, run, "worker-b", "done"))

		got, err = st.GetConnector(ctx, ws.ID, c.ID)
		require.NoError(t, err)
		require.Equal(t, "done", got.State)
		require.Empty(t, got.ActiveRunID)
		fin, err := st.GetConnectorRun(ctx, ws.ID, run.ID)
		require.NoError(t, err)
		require.Equal(t, connector.RunSucceeded, fin.Status)
		require.EqualValues(t, 2, fin.Pages)
		require.NoError(t, st.BeginConnectorRun(ctx, second, now, job(second)), "a released connector runs again")
		require.True(t, strings.HasPrefix(second.ID, "run_"))
	})
}
