package integration

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
)

// hostPipeline is a host's own record service: it wraps the default
// pipeline and counts what passes through it, as a host's audit or
// metering layer would.
type hostPipeline struct {
	*records.Pipeline
	batches, rows atomic.Int64
}

func (h *hostPipeline) Batch(ctx context.Context, items []records.BatchItem, opts records.BatchOptions) ([]records.BatchResult, error) {
	h.batches.Add(1)
	h.rows.Add(int64(len(items)))
	return h.Pipeline.Batch(ctx, items, opts)
}

// TestHostPipelineBatch: a batch given to the Service goes through the
// host's pipeline, with the semantics of records.Pipeline.Batch: partial
// mode keeps the good rows, all-or-none writes nothing when a row fails,
// a dry run answers what a real run would and keeps nothing.
func TestHostPipelineBatch(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st, err := store.Open(ctx, dsn)
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		def, err := records.NewPipeline(records.Config{Store: st})
		require.NoError(t, err)
		host := &hostPipeline{Pipeline: def}
		svc, err := New(Config{Store: st, Pipeline: host})
		require.NoError(t, err)
		ws := &records.Workspace{Name: "Host", Plan: records.PlanEnterprise}
		require.NoError(t, st.CreateWorkspace(ctx, ws))

		row := func(name string) records.BatchItem {
			f := records.Fields{"name": name}
			if name == "" {
				f = records.Fields{"website": "not a url"}
			}
			return records.BatchItem{Op: records.OpInsert, Write: records.Write{Workspace: ws.ID, Object: "account", Fields: f,
				Source: records.SourceBulk, Actor: records.Actor{Kind: "api_key", ID: "key_host"}}}
		}
		items := []records.BatchItem{row("Acme"), row(""), row("Globex")}
		count := func() int {
			recs, _, err := svc.Pipeline().List(ctx, records.ListQuery{Workspace: ws.ID, Object: "account", Limit: 200})
			require.NoError(t, err)
			return len(recs)
		}

		dry, err := svc.Pipeline().Batch(ctx, items, records.BatchOptions{DryRun: true})
		require.NoError(t, err)
		require.Equal(t, 0, count(), "a dry run keeps nothing")

		res, err := svc.Pipeline().Batch(ctx, items, records.BatchOptions{AllOrNone: true})
		require.Error(t, err)
		require.Len(t, res, 3)
		require.ErrorIs(t, res[0].Err, records.ErrBatchAborted)
		var verr *records.ValidationError
		require.ErrorAs(t, res[1].Err, &verr)
		require.Equal(t, 0, count(), "all-or-none writes nothing when a row fails")

		res, err = svc.Pipeline().Batch(ctx, items, records.BatchOptions{})
		require.NoError(t, err)
		require.NoError(t, res[0].Err)
		require.ErrorAs(t, res[1].Err, &verr)
		require.NoError(t, res[2].Err)
		require.True(t, res[0].Created)
		require.Equal(t, 2, count(), "partial mode keeps the good rows")
		for i := range res {
			require.Equal(t, res[i].Err == nil, dry[i].Err == nil, "row %d: the dry run said what the real run did", i+1)
		}

		require.Equal(t, int64(3), host.batches.Load())
		require.Equal(t, int64(9), host.rows.Load())
	})
}

// TestTwoServicesShareNothing: two Services in one process, on one
// database, with different objects, plans and body limits: each answers by
// its own configuration, and neither's routes, schemas or jobs leak into
// the other.
func TestTwoServicesShareNothing(t *testing.T) {
	invoice := records.Object{Name: "invoice", Fields: []records.Field{{Name: "number", Type: records.TypeString, Required: true}}}
	a := newEnv(t, testdb.SQLiteDSN(t), Config{Objects: append(records.DefaultObjects(), invoice),
		Plans: []records.Plan{{Name: records.PlanEnterprise, RequestsPerMinute: 7}}})
	b := newEnv(t, testdb.SQLiteDSN(t), Config{MaxBodyBytes: 64})
	ctx := context.Background()
	require.NoError(t, a.svc.Start(ctx))
	require.NoError(t, b.svc.Start(ctx))
	require.NotNil(t, a.svc.JobClient())
	require.NotSame(t, a.svc.JobClient(), b.svc.JobClient())

	inv := map[string]any{"fields": map[string]any{"number": "INV-1"}}
	ra := a.do(t, "POST", "/api/v1/records/invoice", a.admin, inv)
	require.Equal(t, http.StatusCreated, ra.status)
	require.Equal(t, "7", ra.header.Get("X-RateLimit-Limit"))
	rb := b.do(t, "POST", "/api/v1/records/invoice", b.admin, inv)
	require.Equal(t, http.StatusNotFound, rb.status, "b has no invoice object")
	require.Equal(t, "6000", rb.header.Get("X-RateLimit-Limit"))

	big := map[string]any{"fields": map[string]any{"name": "A name long enough to pass sixty-four bytes of body"}}
	require.Equal(t, http.StatusRequestEntityTooLarge, b.do(t, "POST", "/api/v1/records/account", b.admin, big).status)
	require.Equal(t, http.StatusCreated, a.do(t, "POST", "/api/v1/records/account", a.admin, big).status)

	// Each document has every route of its own table exactly once.
	require.Equal(t, len(routeTable(a.svc.features)), len(routeTable(b.svc.features)))
	require.Len(t, routeTable(a.svc.buildFeatures()), len(routeTable(a.svc.features)), "building features again adds nothing")
}
