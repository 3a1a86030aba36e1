package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
	"github.com/smartlite/crmkit/store/storetest"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// The storage behaviour of webhooks is in the conformance suite; these are
// what only this store has or shows.

func newTestEndpoint(ws string) *outbound.Endpoint {
	now := time.Now()
	return &outbound.Endpoint{
		ID: records.NewID("whk"), Workspace: ws, URL: "https://hooks.example.com/crm",
		Events: []string{"record.updated"}, Enabled: true, Secret: "whsec_c2VjcmV0", CreatedAt: now, UpdatedAt: now,
	}
}

// newTestDelivery stores an event of ws and a pending delivery of it to e.
func newTestDelivery(t *testing.T, st *store.Store, e *outbound.Endpoint, at time.Time) *outbound.Delivery {
	t.Helper()
	ctx := context.Background()
	ev := &records.Event{Workspace: e.Workspace, Type: records.EventCreated, Object: "lead",
		Record: storetest.NewRecord(e.Workspace, "lead", nil)}
	require.NoError(t, st.InTx(ctx, func(ctx context.Context, tx records.Tx) error { return tx.InsertEvents(ctx, ev) }))
	d := &outbound.Delivery{ID: records.NewID("dlv"), Workspace: e.Workspace, EndpointID: e.ID, EventID: ev.ID,
		EventType: ev.Type, Status: outbound.StatusPending, CreatedAt: at}
	created, err := st.CreateDeliveries(ctx, []*outbound.Delivery{d}, nil)
	require.NoError(t, err)
	require.Len(t, created, 1)
	return d
}

func TestDisableEndpoint(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st := open(t, dsn)
		ws, other := storetest.Workspace(t, st, "pro"), storetest.Workspace(t, st, "pro")
		e := newTestEndpoint(ws.ID)
		require.NoError(t, st.CreateEndpoint(ctx, e))

		at := time.Now()
		require.NoError(t, st.DisableEndpoint(ctx, other.ID, e.ID, at, "not theirs to disable"))
		got, err := st.GetEndpoint(ctx, ws.ID, e.ID)
		require.NoError(t, err)
		require.True(t, got.Enabled)

		require.NoError(t, st.DisableEndpoint(ctx, ws.ID, e.ID, at, "the endpoint answered 410 Gone"))
		require.NoError(t, st.DisableEndpoint(ctx, ws.ID, e.ID, at.Add(time.Hour), "a later reason"))
		got, err = st.GetEndpoint(ctx, ws.ID, e.ID)
		require.NoError(t, err)
		require.False(t, got.Enabled)
		require.Equal(t, "the endpoint answered 410 Gone", got.DisabledReason, "the first reason stays")
		require.True(t, at.Truncate(time.Microsecond).Equal(*got.DisabledAt))
	})
}

// Attempts are rows of their own; pruning a delivery or deleting its
// endpoint takes them too, which no read of the store can show.
func TestAttemptsGoWithTheirDelivery(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st := open(t, dsn)
		ws := storetest.Workspace(t, st, "pro")
		attempts := func() int {
			var n int
			require.NoError(t, st.DB().NewRaw("SELECT count(*) FROM webhook_attempts").Scan(ctx, &n))
			return n
		}
		attempt := func(d *outbound.Delivery, status string) {
			r := &outbound.AttemptRecord{Workspace: ws.ID, DeliveryID: d.ID, EndpointID: d.EndpointID, Status: status,
				Attempt: outbound.Attempt{At: time.Now(), StatusCode: 200, Trigger: outbound.TriggerScheduled}}
			require.NoError(t, st.RecordAttempt(ctx, r))
		}

		e := newTestEndpoint(ws.ID)
		require.NoError(t, st.CreateEndpoint(ctx, e))
		old, kept := newTestDelivery(t, st, e, time.Now().Add(-time.Hour)), newTestDelivery(t, st, e, time.Now())
		attempt(old, outbound.StatusSucceeded)
		attempt(kept, outbound.StatusSucceeded)
		require.Equal(t, 2, attempts())

		n, err := st.PruneDeliveries(ctx, time.Now().Add(-time.Minute))
		require.NoError(t, err)
		require.Equal(t, int64(1), n)
		require.Equal(t, 1, attempts())

		require.NoError(t, st.DeleteEndpoint(ctx, ws.ID, e.ID))
		require.Zero(t, attempts())
	})
}
