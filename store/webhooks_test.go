package store_test

import (
	"context"
	"database/sql"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
	"github.com/smartlite/crmkit/webhook/outbound"
)

func openWebhookStore(t *testing.T, dsn string) (*store.Store, string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	ws := &records.Workspace{Name: "acme", Plan: "starter"}
	require.NoError(t, st.CreateWorkspace(ctx, ws))
	return st, ws.ID
}

func newTestEndpoint(ws string) *outbound.Endpoint {
	now := time.Now()
	return &outbound.Endpoint{
		ID: records.NewID("whk"), Workspace: ws, URL: "https://hooks.example.com/crm",
		Events: []string{"record.updated"}, Objects: []string{"opportunity"},
		Condition:   &outbound.Condition{Field: "stage", ChangedTo: "Closed Won"},
		Description: "finance", Enabled: true, Secret: "whsec_c2VjcmV0", CreatedAt: now, UpdatedAt: now,
	}
}

func insertTestEvent(t *testing.T, st *store.Store, ws string) *records.Event {
	t.Helper()
	ev := &records.Event{Workspace: ws, Type: records.EventUpdated, Object: "opportunity",
		Record:  &records.Record{ID: records.NewID("rec"), Object: "opportunity", Workspace: ws, Version: 2, Fields: records.Fields{"stage": "Closed Won"}},
		Changes: map[string]records.Change{"stage": {From: "Negotiation", To: "Closed Won"}}, Source: records.SourceAPI}
	require.NoError(t, st.InTx(context.Background(), func(ctx context.Context, tx records.Tx) error {
		return tx.InsertEvents(ctx, ev)
	}))
	return ev
}

func TestWebhookEndpoints(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st, ws := openWebhookStore(t, dsn)
		other := &records.Workspace{Name: "other", Plan: "starter"}
		require.NoError(t, st.CreateWorkspace(ctx, other))

		e := newTestEndpoint(ws)
		require.NoError(t, st.CreateEndpoint(ctx, e))
		got, err := st.GetEndpoint(ctx, ws, e.ID)
		require.NoError(t, err)
		require.Equal(t, e, got)

		_, err = st.GetEndpoint(ctx, other.ID, e.ID)
		require.ErrorIs(t, err, records.ErrNotFound, "another workspace's endpoint does not exist")

		exp := time.Now().Add(time.Hour)
		got.URL, got.Condition, got.Objects = "https://hooks.example.com/v2", nil, nil
		got.PreviousSecret, got.PreviousSecretExpiresAt, got.Secret = got.Secret, &exp, "whsec_bmV3"
		require.NoError(t, st.UpdateEndpoint(ctx, got))
		again, err := st.GetEndpoint(ctx, ws, e.ID)
		require.NoError(t, err)
		require.Equal(t, "https://hooks.example.com/v2", again.URL)
		require.Nil(t, again.Condition)
		require.Equal(t, []string{}, again.Objects)
		require.Equal(t, []string{"whsec_bmV3", "whsec_c2VjcmV0"}, again.Secrets(time.Now()))
		require.Equal(t, e.CreatedAt, again.CreatedAt)

		foreign := *again
		foreign.Workspace = other.ID
		require.ErrorIs(t, st.UpdateEndpoint(ctx, &foreign), records.ErrNotFound)

		second := newTestEndpoint(ws)
		second.Enabled = false
		require.NoError(t, st.CreateEndpoint(ctx, second))
		page, err := st.ListEndpoints(ctx, ws, "", 1)
		require.NoError(t, err)
		require.Len(t, page, 1)
		require.Equal(t, e.ID, page[0].ID)
		page, err = st.ListEndpoints(ctx, ws, page[0].ID, 10)
		require.NoError(t, err)
		require.Len(t, page, 1)
		require.Equal(t, second.ID, page[0].ID)

		ev := insertTestEvent(t, st, ws)
		gotEv, enabled, err := st.FanoutTargets(ctx, ws, ev.ID)
		require.NoError(t, err)
		require.Equal(t, ev.ID, gotEv.ID)
		require.Equal(t, "opportunity", gotEv.Object)
		require.Equal(t, "Closed Won", gotEv.Changes["stage"].To)
		require.Len(t, enabled, 1, "only enabled endpoints")
		require.Equal(t, got.URL, enabled[0].URL)
		require.Equal(t, e.ID, enabled[0].ID)
		_, _, err = st.FanoutTargets(ctx, other.ID, ev.ID)
		require.ErrorIs(t, err, records.ErrNotFound, "another workspace's event does not exist")
		otherEv := insertTestEvent(t, st, other.ID)
		_, none, err := st.FanoutTargets(ctx, other.ID, otherEv.ID)
		require.NoError(t, err)
		require.Empty(t, none)

		at := time.Now()
		require.NoError(t, st.DisableEndpoint(ctx, ws, e.ID, at, "the endpoint answered 410 Gone"))
		require.NoError(t, st.DisableEndpoint(ctx, ws, e.ID, at.Add(time.Hour), "a later reason"))
		disabled, err := st.GetEndpoint(ctx, ws, e.ID)
		require.NoError(t, err)
		require.False(t, disabled.Enabled)
		require.Equal(t, "the endpoint answered 410 Gone", disabled.DisabledReason)
		require.WithinDuration(t, at, *disabled.DisabledAt, time.Millisecond)

		require.ErrorIs(t, st.DeleteEndpoint(ctx, other.ID, e.ID), records.ErrNotFound)
		require.NoError(t, st.DeleteEndpoint(ctx, ws, e.ID))
		require.ErrorIs(t, st.DeleteEndpoint(ctx, ws, e.ID), records.ErrNotFound)
	})
}

func TestWebhookDeliveries(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st, ws := openWebhookStore(t, dsn)
		e := newTestEndpoint(ws)
		require.NoError(t, st.CreateEndpoint(ctx, e))
		ev := insertTestEvent(t, st, ws)

		var enqueued []string
		enqueue := func(_ context.Context, tx *sql.Tx, ds []*outbound.Delivery) error {
			require.NotNil(t, tx)
			for _, d := range ds {
				enqueued = append(enqueued, d.ID)
			}
			return nil
		}
		now := time.Now()
		d := &outbound.Delivery{ID: records.NewID("dlv"), Workspace: ws, EndpointID: e.ID, EventID: ev.ID,
			EventType: ev.Type, Status: outbound.StatusPending, CreatedAt: now}
		require.NoError(t, errOf(st.CreateDeliveries(ctx, []*outbound.Delivery{d}, enqueue)))
		require.Equal(t, []string{d.ID}, enqueued)

		// A fan-out that runs twice creates nothing the second time.
		dup := *d
		dup.ID = records.NewID("dlv")
		require.NoError(t, errOf(st.CreateDeliveries(ctx, []*outbound.Delivery{&dup}, enqueue)))
		require.Equal(t, []string{d.ID}, enqueued)

		// Without an enqueue function (Postgres: one statement) it still
		// skips existing pairs and answers what it created.
		again := dup
		again.ID = records.NewID("dlv")
		created, err := st.CreateDeliveries(ctx, []*outbound.Delivery{&again}, nil)
		require.NoError(t, err)
		require.Empty(t, created)
		other := newTestEndpoint(ws)
		require.NoError(t, st.CreateEndpoint(ctx, other))
		fresh := &outbound.Delivery{ID: records.NewID("dlv"), Workspace: ws, EndpointID: other.ID, EventID: ev.ID,
			EventType: ev.Type, Status: outbound.StatusPending, CreatedAt: now, NextAttemptAt: &now}
		created, err = st.CreateDeliveries(ctx, []*outbound.Delivery{fresh, &again}, nil)
		require.NoError(t, err)
		require.Len(t, created, 1)
		require.Equal(t, fresh.ID, created[0].ID)
		require.NoError(t, st.DeleteEndpoint(ctx, ws, other.ID))

		gotD, gotE, gotEv, err := st.DeliveryTarget(ctx, d.ID)
		require.NoError(t, err)
		require.Equal(t, d.ID, gotD.ID)
		require.Equal(t, e.ID, gotE.ID)
		require.Equal(t, ev.ID, gotEv.ID)
		require.Equal(t, "Closed Won", gotEv.Changes["stage"].To)

		// Failure: the endpoint starts failing; success clears it.
		next := now.Add(5 * time.Second)
		fail := &outbound.AttemptRecord{Workspace: ws, DeliveryID: d.ID, EndpointID: e.ID, Status: outbound.StatusPending,
			NextAttemptAt: &next, Attempt: outbound.Attempt{At: now, DurationMS: 12, StatusCode: 500,
				Headers: http.Header{"Content-Type": {"text/plain"}}, Body: "boom", Error: "unexpected status 500 Internal Server Error",
				ErrorKind: outbound.ErrorKindStatus, Trigger: outbound.TriggerScheduled}}
		require.NoError(t, st.RecordAttempt(ctx, fail))
		require.Equal(t, 1, fail.Attempt.Number)
		failing, err := st.GetEndpoint(ctx, ws, e.ID)
		require.NoError(t, err)
		require.NotNil(t, failing.FailingSince)

		later := now.Add(time.Minute)
		fail2 := &outbound.AttemptRecord{Workspace: ws, DeliveryID: d.ID, EndpointID: e.ID, Status: outbound.StatusPending, WasFailing: true,
			Attempt: outbound.Attempt{At: later, ErrorKind: outbound.ErrorKindRefused, Error: "connection refused", Trigger: outbound.TriggerScheduled}}
		require.NoError(t, st.RecordAttempt(ctx, fail2))
		require.Equal(t, 2, fail2.Attempt.Number)
		stillFailing, err := st.GetEndpoint(ctx, ws, e.ID)
		require.NoError(t, err)
		require.Equal(t, failing.FailingSince, stillFailing.FailingSince, "the first failure dates the failing period")

		ok := &outbound.AttemptRecord{Workspace: ws, DeliveryID: d.ID, EndpointID: e.ID, Status: outbound.StatusSucceeded,
			WasFailing: true, Attempt: outbound.Attempt{At: later, StatusCode: 204, Trigger: outbound.TriggerScheduled}}
		require.NoError(t, st.RecordAttempt(ctx, ok))
		require.Equal(t, 3, ok.Attempt.Number)
		healthy, err := st.GetEndpoint(ctx, ws, e.ID)
		require.NoError(t, err)
		require.Nil(t, healthy.FailingSince)

		full, err := st.GetDelivery(ctx, ws, d.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.StatusSucceeded, full.Status)
		require.Equal(t, 3, full.AttemptCount)
		require.Len(t, full.Attempts, 3)
		require.Equal(t, 500, full.Attempts[0].StatusCode)
		require.Equal(t, "boom", full.Attempts[0].Body)
		require.Equal(t, "text/plain", full.Attempts[0].Headers.Get("Content-Type"))
		require.Equal(t, outbound.ErrorKindRefused, full.Attempts[1].ErrorKind)
		require.Equal(t, 204, full.Attempts[2].StatusCode)

		// Listing: newest first, by endpoint and status, with a cursor.
		ev2 := insertTestEvent(t, st, ws)
		d2 := &outbound.Delivery{ID: records.NewID("dlv"), Workspace: ws, EndpointID: e.ID, EventID: ev2.ID,
			EventType: ev2.Type, Status: outbound.StatusPending, CreatedAt: now}
		require.NoError(t, errOf(st.CreateDeliveries(ctx, []*outbound.Delivery{d2}, enqueue)))
		require.NoError(t, st.SetDeliveryStatus(ctx, ws, d2.ID, outbound.StatusFailed))
		list, err := st.ListDeliveries(ctx, outbound.DeliveryQuery{Workspace: ws, EndpointID: e.ID, Limit: 1})
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, d2.ID, list[0].ID)
		list, err = st.ListDeliveries(ctx, outbound.DeliveryQuery{Workspace: ws, Before: d2.ID})
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, d.ID, list[0].ID)
		require.Len(t, list[0].Attempts, 3)
		list, err = st.ListDeliveries(ctx, outbound.DeliveryQuery{Workspace: ws, Status: outbound.StatusFailed})
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, d2.ID, list[0].ID)

		// Replay requeues failed deliveries of enabled endpoints since a time.
		enqueued = nil
		requeued, err := st.RequeueDeliveries(ctx, outbound.RequeueQuery{Workspace: ws, At: now, FailedSince: now.Add(-time.Hour)}, enqueue)
		require.NoError(t, err)
		require.Len(t, requeued, 1)
		require.Equal(t, []string{d2.ID}, enqueued)
		pending, err := st.GetDelivery(ctx, ws, d2.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.StatusPending, pending.Status)
		requeued, err = st.RequeueDeliveries(ctx, outbound.RequeueQuery{Workspace: ws, At: now, FailedSince: now.Add(-time.Hour)}, enqueue)
		require.NoError(t, err)
		require.Empty(t, requeued)

		// Redeliver by id, whatever the status; never another workspace's.
		enqueued = nil
		requeued, err = st.RequeueDeliveries(ctx, outbound.RequeueQuery{Workspace: ws, At: now, IDs: []string{d.ID}}, enqueue)
		require.NoError(t, err)
		require.Len(t, requeued, 1)
		requeued, err = st.RequeueDeliveries(ctx, outbound.RequeueQuery{Workspace: "ws_other", At: now, IDs: []string{d.ID}}, enqueue)
		require.NoError(t, err)
		require.Empty(t, requeued)
		_, err = st.GetDelivery(ctx, "ws_other", d.ID)
		require.ErrorIs(t, err, records.ErrNotFound)

		// Pruning keeps pending deliveries and recent ones.
		require.NoError(t, st.SetDeliveryStatus(ctx, ws, d.ID, outbound.StatusSucceeded))
		n, err := st.PruneDeliveries(ctx, now.Add(-time.Hour))
		require.NoError(t, err)
		require.Zero(t, n)
		n, err = st.PruneDeliveries(ctx, now.Add(time.Hour))
		require.NoError(t, err)
		require.Equal(t, int64(1), n, "the succeeded one goes, the pending one stays")
		_, err = st.GetDelivery(ctx, ws, d.ID)
		require.ErrorIs(t, err, records.ErrNotFound)
		var attempts int
		require.NoError(t, st.DB().NewRaw("SELECT count(*) FROM webhook_attempts").Scan(ctx, &attempts))
		require.Zero(t, attempts, "attempts go with their delivery")

		// Deleting the endpoint deletes its log.
		require.NoError(t, st.DeleteEndpoint(ctx, ws, e.ID))
		_, err = st.GetDelivery(ctx, ws, d2.ID)
		require.ErrorIs(t, err, records.ErrNotFound)
		_, _, _, err = st.DeliveryTarget(ctx, d2.ID)
		require.ErrorIs(t, err, records.ErrNotFound)
	})
}

// errOf drops a result to keep its error.
func errOf[T any](_ T, err error) error { return err }

// An attempt that disables its endpoint (a 410, or the failing period run
// out) logs the attempt and disables the endpoint in one transaction, on the
// Postgres path that would otherwise write the attempt alone too.
func TestAttemptDisablesEndpoint(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st, ws := openWebhookStore(t, dsn)
		e := newTestEndpoint(ws)
		require.NoError(t, st.CreateEndpoint(ctx, e))
		ev := insertTestEvent(t, st, ws)
		now := time.Now()
		d := &outbound.Delivery{ID: records.NewID("dlv"), Workspace: ws, EndpointID: e.ID, EventID: ev.ID,
			EventType: ev.Type, Status: outbound.StatusPending, CreatedAt: now}
		require.NoError(t, errOf(st.CreateDeliveries(ctx, []*outbound.Delivery{d}, nil)))

		gone := &outbound.AttemptRecord{Workspace: ws, DeliveryID: d.ID, EndpointID: e.ID, Status: outbound.StatusFailed,
			WasFailing: true, DisableReason: "the endpoint answered 410 Gone",
			Attempt: outbound.Attempt{At: now, StatusCode: 410, Error: "unexpected status 410 Gone",
				ErrorKind: outbound.ErrorKindStatus, Trigger: outbound.TriggerScheduled}}
		require.NoError(t, st.RecordAttempt(ctx, gone))
		require.Equal(t, 1, gone.Attempt.Number)

		got, err := st.GetEndpoint(ctx, ws, e.ID)
		require.NoError(t, err)
		require.False(t, got.Enabled)
		require.Equal(t, "the endpoint answered 410 Gone", got.DisabledReason)
		full, err := st.GetDelivery(ctx, ws, d.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.StatusFailed, full.Status)
		require.Len(t, full.Attempts, 1)
		require.Equal(t, 410, full.Attempts[0].StatusCode)

		// A delivery that does not exist records nothing, and disables nothing.
		other := newTestEndpoint(ws)
		require.NoError(t, st.CreateEndpoint(ctx, other))
		missing := &outbound.AttemptRecord{Workspace: ws, DeliveryID: records.NewID("dlv"), EndpointID: other.ID,
			Status: outbound.StatusFailed, WasFailing: true, DisableReason: "the endpoint answered 410 Gone",
			Attempt: outbound.Attempt{At: now, StatusCode: 410, Error: "unexpected status 410 Gone",
				ErrorKind: outbound.ErrorKindStatus, Trigger: outbound.TriggerScheduled}}
		require.ErrorIs(t, st.RecordAttempt(ctx, missing), records.ErrNotFound)
		still, err := st.GetEndpoint(ctx, ws, other.ID)
		require.NoError(t, err)
		require.True(t, still.Enabled)
	})
}
