package storetest

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// newEndpoint is an unsaved, enabled endpoint of workspace.
func newEndpoint(workspace string) *outbound.Endpoint {
	now := time.Now()
	return &outbound.Endpoint{
		ID: records.NewID("whk"), Workspace: workspace, URL: "https://hooks.example.com/crm",
		Events: []string{"record.updated"}, Objects: []string{"opportunity"},
		Condition:   &outbound.Condition{Field: "stage", ChangedTo: "Closed Won"},
		Description: "finance", Enabled: true, Secret: "whsec_c2VjcmV0", CreatedAt: now, UpdatedAt: now,
	}
}

func createEndpoint(tb testing.TB, st Store, workspace string) *outbound.Endpoint {
	tb.Helper()
	e := newEndpoint(workspace)
	require.NoError(tb, st.CreateEndpoint(context.Background(), e))
	return e
}

// insertEvent stores an opportunity's stage change in workspace.
func insertEvent(tb testing.TB, st Store, workspace string) *records.Event {
	tb.Helper()
	r := NewRecord(workspace, "opportunity", records.Fields{"stage": "Closed Won"})
	r.Version = 2
	ev := &records.Event{Workspace: workspace, Type: records.EventUpdated, Object: "opportunity", Record: r,
		Changes: map[string]records.Change{"stage": {From: "Negotiation", To: "Closed Won"}}, Source: records.SourceAPI}
	require.NoError(tb, st.InTx(context.Background(), func(ctx context.Context, tx records.Tx) error {
		return tx.InsertEvents(ctx, ev)
	}))
	return ev
}

// newDelivery is an unsaved delivery of ev to e, with status, created at.
func newDelivery(e *outbound.Endpoint, ev *records.Event, status string, at time.Time) *outbound.Delivery {
	return &outbound.Delivery{ID: records.NewID("dlv"), Workspace: e.Workspace, EndpointID: e.ID, EventID: ev.ID,
		EventType: ev.Type, Status: status, CreatedAt: at}
}

// createDelivery stores d, which must be new.
func createDelivery(tb testing.TB, st Store, d *outbound.Delivery) {
	tb.Helper()
	created, err := st.CreateDeliveries(context.Background(), []*outbound.Delivery{d}, nil)
	require.NoError(tb, err)
	require.Len(tb, created, 1)
}

// enqueueLog is an outbound.EnqueueFunc that notes what it is handed, and
// fails with fail when set.
type enqueueLog struct {
	ids   []string
	calls int
	nilTx bool
	fail  error
}

func (l *enqueueLog) enqueue(_ context.Context, tx *sql.Tx, ds []*outbound.Delivery) error {
	l.calls++
	l.nilTx = l.nilTx || tx == nil
	for _, d := range ds {
		l.ids = append(l.ids, d.ID)
	}
	return l.fail
}

func deliveryIDs(ds []*outbound.Delivery) []string {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	return ids
}

func endpointIDs(es []*outbound.Endpoint) []string {
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.ID
	}
	return ids
}

func testWebhookEndpoints(t *testing.T, st Store) {
	ctx := context.Background()
	ws, other := Workspace(t, st, "pro"), Workspace(t, st, "pro")

	e := newEndpoint(ws.ID)
	require.NoError(t, st.CreateEndpoint(ctx, e))
	got, err := st.GetEndpoint(ctx, ws.ID, e.ID)
	require.NoError(t, err)
	require.Equal(t, e, got)
	_, err = st.GetEndpoint(ctx, other.ID, e.ID)
	require.ErrorIs(t, err, records.ErrNotFound, "another workspace's endpoint does not exist")
	_, err = st.GetEndpoint(ctx, ws.ID, "whk_missing")
	require.ErrorIs(t, err, records.ErrNotFound)

	t.Run("update", func(t *testing.T) {
		now := time.Now()
		exp := now.Add(time.Hour)
		u := *got
		u.URL, u.Condition, u.Objects, u.Description = "https://hooks.example.com/v2", nil, nil, ""
		u.PreviousSecret, u.PreviousSecretExpiresAt, u.Secret = u.Secret, &exp, "whsec_bmV3"
		u.UpdatedAt, u.CreatedAt = now.Add(time.Minute), now.Add(time.Hour)
		require.NoError(t, st.UpdateEndpoint(ctx, &u))
		again, err := st.GetEndpoint(ctx, ws.ID, e.ID)
		require.NoError(t, err)
		require.Equal(t, "https://hooks.example.com/v2", again.URL)
		require.Nil(t, again.Condition)
		require.Equal(t, []string{}, again.Objects, "no objects read back empty, not nil")
		require.Empty(t, again.Description)
		require.Equal(t, []string{"whsec_bmV3", "whsec_c2VjcmV0"}, again.Secrets(now))
		require.Equal(t, "whsec_c2VjcmV0", again.PreviousSecret)
		require.True(t, stored(exp).Equal(*again.PreviousSecretExpiresAt))
		require.Equal(t, stored(now.Add(time.Minute)), again.UpdatedAt)
		require.Equal(t, e.CreatedAt, again.CreatedAt, "the creation time stays")

		foreign := *again
		foreign.Workspace, foreign.URL = other.ID, "https://evil.example.com/"
		require.ErrorIs(t, st.UpdateEndpoint(ctx, &foreign), records.ErrNotFound)
		missing := newEndpoint(ws.ID)
		require.ErrorIs(t, st.UpdateEndpoint(ctx, missing), records.ErrNotFound)
		unchanged, err := st.GetEndpoint(ctx, ws.ID, e.ID)
		require.NoError(t, err)
		require.Equal(t, again, unchanged)
	})

	second, third := createEndpoint(t, st, ws.ID), createEndpoint(t, st, ws.ID)
	theirs := createEndpoint(t, st, other.ID)

	t.Run("list pages by id", func(t *testing.T) {
		page, err := st.ListEndpoints(ctx, ws.ID, "", 2)
		require.NoError(t, err)
		require.Equal(t, []string{e.ID, second.ID}, endpointIDs(page))
		page, err = st.ListEndpoints(ctx, ws.ID, second.ID, 2)
		require.NoError(t, err)
		require.Equal(t, []string{third.ID}, endpointIDs(page))
		require.Equal(t, third, page[0])
		page, err = st.ListEndpoints(ctx, ws.ID, third.ID, 2)
		require.NoError(t, err)
		require.Empty(t, page)
		page, err = st.ListEndpoints(ctx, other.ID, "", 10)
		require.NoError(t, err)
		require.Equal(t, []string{theirs.ID}, endpointIDs(page))
	})

	t.Run("fan-out targets", func(t *testing.T) {
		off := *second
		off.Enabled = false
		require.NoError(t, st.UpdateEndpoint(ctx, &off))
		ev := insertEvent(t, st, ws.ID)
		gotEv, targets, err := st.FanoutTargets(ctx, ws.ID, ev.ID)
		require.NoError(t, err)
		require.Equal(t, ev.ID, gotEv.ID)
		require.Equal(t, records.EventUpdated, gotEv.Type)
		require.Equal(t, "opportunity", gotEv.Object)
		require.Equal(t, ev.Record.ID, gotEv.RecordID)
		require.Equal(t, ev.Record.Fields, gotEv.Record.Fields)
		require.Equal(t, "Closed Won", gotEv.Changes["stage"].To)
		require.ElementsMatch(t, []string{e.ID, third.ID}, endpointIDs(targets), "the enabled endpoints of its workspace")
		for _, target := range targets {
			want, err := st.GetEndpoint(ctx, ws.ID, target.ID)
			require.NoError(t, err)
			require.Equal(t, want, target)
		}

		_, _, err = st.FanoutTargets(ctx, other.ID, ev.ID)
		require.ErrorIs(t, err, records.ErrNotFound, "another workspace's event does not exist")
		_, _, err = st.FanoutTargets(ctx, ws.ID, "evt_missing")
		require.ErrorIs(t, err, records.ErrNotFound)

		lonely := Workspace(t, st, "pro")
		lonelyEv := insertEvent(t, st, lonely.ID)
		gotEv, none, err := st.FanoutTargets(ctx, lonely.ID, lonelyEv.ID)
		require.NoError(t, err)
		require.Equal(t, lonelyEv.ID, gotEv.ID)
		require.Empty(t, none)
	})

	t.Run("delete", func(t *testing.T) {
		require.ErrorIs(t, st.DeleteEndpoint(ctx, other.ID, e.ID), records.ErrNotFound)
		_, err := st.GetEndpoint(ctx, ws.ID, e.ID)
		require.NoError(t, err)
		require.NoError(t, st.DeleteEndpoint(ctx, ws.ID, e.ID))
		_, err = st.GetEndpoint(ctx, ws.ID, e.ID)
		require.ErrorIs(t, err, records.ErrNotFound)
		require.ErrorIs(t, st.DeleteEndpoint(ctx, ws.ID, e.ID), records.ErrNotFound)
		page, err := st.ListEndpoints(ctx, ws.ID, "", 10)
		require.NoError(t, err)
		require.Equal(t, []string{second.ID, third.ID}, endpointIDs(page))
	})
}

func testWebhookDeliveries(t *testing.T, st Store) {
	ctx := context.Background()
	ws, other := Workspace(t, st, "pro"), Workspace(t, st, "pro")
	e, e2 := createEndpoint(t, st, ws.ID), createEndpoint(t, st, ws.ID)
	ev := insertEvent(t, st, ws.ID)
	now := time.Now()

	log := &enqueueLog{}
	d := newDelivery(e, ev, outbound.StatusPending, now)
	created, err := st.CreateDeliveries(ctx, []*outbound.Delivery{d}, log.enqueue)
	require.NoError(t, err)
	require.Equal(t, []string{d.ID}, deliveryIDs(created))
	require.Equal(t, []string{d.ID}, log.ids)
	require.False(t, log.nilTx, "enqueue gets the transaction")

	got, err := st.GetDelivery(ctx, ws.ID, d.ID)
	require.NoError(t, err)
	require.Equal(t, d.ID, got.ID)
	require.Equal(t, ws.ID, got.Workspace)
	require.Equal(t, e.ID, got.EndpointID)
	require.Equal(t, ev.ID, got.EventID)
	require.Equal(t, ev.Type, got.EventType)
	require.Equal(t, outbound.StatusPending, got.Status)
	require.Zero(t, got.AttemptCount)
	require.Empty(t, got.Attempts)
	require.Equal(t, d.CreatedAt, got.CreatedAt)
	_, err = st.GetDelivery(ctx, other.ID, d.ID)
	require.ErrorIs(t, err, records.ErrNotFound, "another workspace's delivery does not exist")

	t.Run("once per event and endpoint", func(t *testing.T) {
		log := &enqueueLog{}
		dup := newDelivery(e, ev, outbound.StatusPending, now)
		created, err := st.CreateDeliveries(ctx, []*outbound.Delivery{dup}, log.enqueue)
		require.NoError(t, err)
		require.Empty(t, created)
		require.Zero(t, log.calls, "no enqueue when nothing was created")
		_, err = st.GetDelivery(ctx, ws.ID, dup.ID)
		require.ErrorIs(t, err, records.ErrNotFound)

		// Without an enqueue function, the same.
		next := time.Now()
		fresh := newDelivery(e2, ev, outbound.StatusPending, now)
		fresh.NextAttemptAt = &next
		created, err = st.CreateDeliveries(ctx, []*outbound.Delivery{dup, fresh}, nil)
		require.NoError(t, err)
		require.Equal(t, []string{fresh.ID}, deliveryIDs(created))
		stored, err := st.GetDelivery(ctx, ws.ID, fresh.ID)
		require.NoError(t, err)
		require.Equal(t, *fresh.NextAttemptAt, *stored.NextAttemptAt)
	})

	t.Run("a failed enqueue creates nothing", func(t *testing.T) {
		boom := errors.New("queue down")
		log := &enqueueLog{fail: boom}
		lost := newDelivery(e, insertEvent(t, st, ws.ID), outbound.StatusPending, now)
		_, err := st.CreateDeliveries(ctx, []*outbound.Delivery{lost}, log.enqueue)
		require.ErrorIs(t, err, boom)
		require.Equal(t, []string{lost.ID}, log.ids)
		_, err = st.GetDelivery(ctx, ws.ID, lost.ID)
		require.ErrorIs(t, err, records.ErrNotFound)
		// The pair is free for the retry.
		created, err := st.CreateDeliveries(ctx, []*outbound.Delivery{lost}, nil)
		require.NoError(t, err)
		require.Len(t, created, 1)
	})

	t.Run("the worker's target", func(t *testing.T) {
		gotD, gotE, gotEv, err := st.DeliveryTarget(ctx, d.ID)
		require.NoError(t, err)
		require.Equal(t, d.ID, gotD.ID)
		require.Equal(t, outbound.StatusPending, gotD.Status)
		stored, err := st.GetEndpoint(ctx, ws.ID, e.ID)
		require.NoError(t, err)
		require.Equal(t, stored, gotE)
		require.Equal(t, ev.ID, gotEv.ID)
		require.Equal(t, ev.Record.ID, gotEv.RecordID)
		require.Equal(t, "opportunity", gotEv.Object)
		require.Equal(t, "Closed Won", gotEv.Changes["stage"].To)
		_, _, _, err = st.DeliveryTarget(ctx, "dlv_missing")
		require.ErrorIs(t, err, records.ErrNotFound)
	})

	t.Run("list newest first", func(t *testing.T) {
		ws := Workspace(t, st, "pro")
		a, b := createEndpoint(t, st, ws.ID), createEndpoint(t, st, ws.ID)
		var ds []*outbound.Delivery // oldest first
		for i := range 3 {
			ev := insertEvent(t, st, ws.ID)
			for _, e := range []*outbound.Endpoint{a, b} {
				status := outbound.StatusPending
				if i == 1 {
					status = outbound.StatusFailed
				}
				d := newDelivery(e, ev, status, now)
				createDelivery(t, st, d)
				ds = append(ds, d)
			}
		}
		theirs := newDelivery(createEndpoint(t, st, other.ID), insertEvent(t, st, other.ID), outbound.StatusFailed, now)
		createDelivery(t, st, theirs)
		require.NoError(t, st.SetDeliveryStatus(ctx, ws.ID, ds[4].ID, outbound.StatusSucceeded))
		require.NoError(t, st.SetDeliveryStatus(ctx, other.ID, ds[5].ID, outbound.StatusSucceeded),
			"another workspace's delivery is left alone")

		ids := func(idx ...int) []string {
			out := make([]string, len(idx))
			for i, j := range idx {
				out[i] = ds[j].ID
			}
			return out
		}
		tests := []struct {
			name string
			q    outbound.DeliveryQuery
			want []string
		}{
			{"all", outbound.DeliveryQuery{Workspace: ws.ID}, ids(5, 4, 3, 2, 1, 0)},
			{"limit", outbound.DeliveryQuery{Workspace: ws.ID, Limit: 2}, ids(5, 4)},
			{"before", outbound.DeliveryQuery{Workspace: ws.ID, Before: ds[4].ID, Limit: 2}, ids(3, 2)},
			{"before the first", outbound.DeliveryQuery{Workspace: ws.ID, Before: ds[0].ID}, []string{}},
			{"endpoint", outbound.DeliveryQuery{Workspace: ws.ID, EndpointID: b.ID}, ids(5, 3, 1)},
			{"status", outbound.DeliveryQuery{Workspace: ws.ID, Status: outbound.StatusFailed}, ids(3, 2)},
			{"succeeded", outbound.DeliveryQuery{Workspace: ws.ID, Status: outbound.StatusSucceeded}, ids(4)},
			{"pending", outbound.DeliveryQuery{Workspace: ws.ID, Status: outbound.StatusPending}, ids(5, 1, 0)},
			{"endpoint and status", outbound.DeliveryQuery{Workspace: ws.ID, EndpointID: a.ID, Status: outbound.StatusPending}, ids(0)},
			{"everything at once", outbound.DeliveryQuery{Workspace: ws.ID, EndpointID: a.ID, Status: outbound.StatusFailed,
				Before: ds[3].ID, Limit: 1}, ids(2)},
			{"another workspace's", outbound.DeliveryQuery{Workspace: other.ID, Status: outbound.StatusFailed}, []string{theirs.ID}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := st.ListDeliveries(ctx, tc.q)
				require.NoError(t, err)
				require.Equal(t, tc.want, deliveryIDs(got))
			})
		}
	})

	t.Run("deleting the endpoint deletes its deliveries", func(t *testing.T) {
		require.NoError(t, st.DeleteEndpoint(ctx, ws.ID, e.ID))
		_, err := st.GetDelivery(ctx, ws.ID, d.ID)
		require.ErrorIs(t, err, records.ErrNotFound)
		_, _, _, err = st.DeliveryTarget(ctx, d.ID)
		require.ErrorIs(t, err, records.ErrNotFound)
		left, err := st.ListDeliveries(ctx, outbound.DeliveryQuery{Workspace: ws.ID, EndpointID: e.ID})
		require.NoError(t, err)
		require.Empty(t, left)
		left, err = st.ListDeliveries(ctx, outbound.DeliveryQuery{Workspace: ws.ID, EndpointID: e2.ID})
		require.NoError(t, err)
		require.Len(t, left, 1, "the other endpoint's stay")
	})
}

func testWebhookAttempts(t *testing.T, st Store) {
	ctx := context.Background()
	ws, other := Workspace(t, st, "pro"), Workspace(t, st, "pro")
	e := createEndpoint(t, st, ws.ID)
	ev := insertEvent(t, st, ws.ID)
	now := stored(time.Now())
	d := newDelivery(e, ev, outbound.StatusPending, now)
	createDelivery(t, st, d)
	endpoint := func(id string) *outbound.Endpoint {
		got, err := st.GetEndpoint(ctx, ws.ID, id)
		require.NoError(t, err)
		return got
	}
	delivery := func(id string) *outbound.Delivery {
		got, err := st.GetDelivery(ctx, ws.ID, id)
		require.NoError(t, err)
		return got
	}

	// A failure makes a healthy endpoint failing; a second one keeps the
	// time of the first; a success makes it healthy again.
	retryAt := now.Add(5 * time.Second)
	fail := &outbound.AttemptRecord{Workspace: ws.ID, DeliveryID: d.ID, EndpointID: e.ID, Status: outbound.StatusPending,
		NextAttemptAt: &retryAt, Attempt: outbound.Attempt{At: now, DurationMS: 12, StatusCode: 500,
			Headers: http.Header{"Content-Type": {"text/plain"}}, Body: "boom", Error: "unexpected status 500 Internal Server Error",
			ErrorKind: outbound.ErrorKindStatus, Trigger: outbound.TriggerScheduled}}
	require.NoError(t, st.RecordAttempt(ctx, fail))
	require.Equal(t, 1, fail.Attempt.Number)
	require.Equal(t, now, *endpoint(e.ID).FailingSince)
	got := delivery(d.ID)
	require.Equal(t, outbound.StatusPending, got.Status)
	require.Equal(t, 1, got.AttemptCount)
	require.Equal(t, now, *got.LastAttemptAt)
	require.Equal(t, retryAt, *got.NextAttemptAt)

	later := now.Add(time.Minute)
	fail2 := &outbound.AttemptRecord{Workspace: ws.ID, DeliveryID: d.ID, EndpointID: e.ID, Status: outbound.StatusPending, WasFailing: true,
		Attempt: outbound.Attempt{At: later, ErrorKind: outbound.ErrorKindRefused, Error: "connection refused", Trigger: outbound.TriggerManual}}
	require.NoError(t, st.RecordAttempt(ctx, fail2))
	require.Equal(t, 2, fail2.Attempt.Number)
	require.Equal(t, now, *endpoint(e.ID).FailingSince, "the first failure dates the failing period")

	ok := &outbound.AttemptRecord{Workspace: ws.ID, DeliveryID: d.ID, EndpointID: e.ID, Status: outbound.StatusSucceeded,
		WasFailing: true, Attempt: outbound.Attempt{At: later, DurationMS: 3, StatusCode: 204, Trigger: outbound.TriggerScheduled}}
	require.NoError(t, st.RecordAttempt(ctx, ok))
	require.Equal(t, 3, ok.Attempt.Number)
	require.Nil(t, endpoint(e.ID).FailingSince)

	got = delivery(d.ID)
	require.Equal(t, outbound.StatusSucceeded, got.Status)
	require.Equal(t, 3, got.AttemptCount)
	require.Equal(t, later, *got.LastAttemptAt)
	require.Nil(t, got.NextAttemptAt)
	require.Equal(t, []outbound.Attempt{fail.Attempt, fail2.Attempt, ok.Attempt}, got.Attempts, "every attempt, in number order")
	require.Equal(t, "text/plain", got.Attempts[0].Headers.Get("Content-Type"))

	t.Run("a success on a healthy endpoint", func(t *testing.T) {
		d := newDelivery(e, insertEvent(t, st, ws.ID), outbound.StatusPending, now)
		createDelivery(t, st, d)
		a := &outbound.AttemptRecord{Workspace: ws.ID, DeliveryID: d.ID, EndpointID: e.ID, Status: outbound.StatusSucceeded,
			Attempt: outbound.Attempt{At: later, StatusCode: 200, Trigger: outbound.TriggerScheduled}}
		require.NoError(t, st.RecordAttempt(ctx, a))
		require.Equal(t, 1, a.Attempt.Number)
		require.Nil(t, endpoint(e.ID).FailingSince)
		got := delivery(d.ID)
		require.Equal(t, outbound.StatusSucceeded, got.Status)
		require.Equal(t, []outbound.Attempt{a.Attempt}, got.Attempts)
	})

	t.Run("no such delivery", func(t *testing.T) {
		for name, r := range map[string]*outbound.AttemptRecord{
			"another workspace's": {Workspace: other.ID, DeliveryID: d.ID, EndpointID: e.ID, Status: outbound.StatusFailed},
			"unknown":             {Workspace: ws.ID, DeliveryID: "dlv_missing", EndpointID: e.ID, Status: outbound.StatusFailed, WasFailing: true},
		} {
			r.Attempt = outbound.Attempt{At: later, Error: "timeout", ErrorKind: outbound.ErrorKindTimeout, Trigger: outbound.TriggerScheduled}
			require.ErrorIs(t, st.RecordAttempt(ctx, r), records.ErrNotFound, name)
		}
		got := delivery(d.ID)
		require.Equal(t, outbound.StatusSucceeded, got.Status)
		require.Len(t, got.Attempts, 3)
		require.Nil(t, endpoint(e.ID).FailingSince)
	})

	t.Run("the retry is enqueued with the attempt", func(t *testing.T) {
		d := newDelivery(e, insertEvent(t, st, ws.ID), outbound.StatusPending, now)
		createDelivery(t, st, d)
		attempt := func(log *enqueueLog) *outbound.AttemptRecord {
			return &outbound.AttemptRecord{Workspace: ws.ID, DeliveryID: d.ID, EndpointID: e.ID, Status: outbound.StatusPending,
				NextAttemptAt: &retryAt, Enqueue: log.enqueue,
				Attempt: outbound.Attempt{At: now, StatusCode: 503, Error: "unexpected status 503 Service Unavailable",
					ErrorKind: outbound.ErrorKindStatus, Trigger: outbound.TriggerScheduled}}
		}
		boom := errors.New("queue down")
		failed := &enqueueLog{fail: boom}
		require.ErrorIs(t, st.RecordAttempt(ctx, attempt(failed)), boom)
		require.Equal(t, []string{d.ID}, failed.ids)
		got := delivery(d.ID)
		require.Zero(t, got.AttemptCount, "nothing of the attempt is kept")
		require.Empty(t, got.Attempts)
		require.Nil(t, got.LastAttemptAt)
		require.Nil(t, endpoint(e.ID).FailingSince)

		log := &enqueueLog{}
		require.NoError(t, st.RecordAttempt(ctx, attempt(log)))
		require.Equal(t, []string{d.ID}, log.ids)
		require.False(t, log.nilTx)
		require.Len(t, delivery(d.ID).Attempts, 1)
		require.Equal(t, now, *endpoint(e.ID).FailingSince)
	})

	t.Run("a first attempt stores its delivery", func(t *testing.T) {
		e := createEndpoint(t, st, ws.ID)
		for _, tc := range []struct {
			name      string
			attempt   outbound.Attempt
			status    string
			next      *time.Time
			wantFails bool
		}{
			{"success", outbound.Attempt{At: now, StatusCode: 200, Trigger: outbound.TriggerScheduled},
				outbound.StatusSucceeded, nil, false},
			{"failure", outbound.Attempt{At: now, Error: "dns lookup failed", ErrorKind: outbound.ErrorKindDNS, Trigger: outbound.TriggerScheduled},
				outbound.StatusPending, &retryAt, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				d := newDelivery(e, insertEvent(t, st, ws.ID), outbound.StatusPending, now)
				r := &outbound.AttemptRecord{Workspace: ws.ID, DeliveryID: d.ID, EndpointID: e.ID, Status: tc.status,
					NextAttemptAt: tc.next, Attempt: tc.attempt, New: d}
				require.NoError(t, st.RecordAttempt(ctx, r))
				require.Equal(t, 1, r.Attempt.Number)
				got := delivery(d.ID)
				require.Equal(t, tc.status, got.Status)
				require.Equal(t, 1, got.AttemptCount)
				require.Equal(t, now, *got.LastAttemptAt)
				require.Equal(t, tc.next, got.NextAttemptAt)
				require.Equal(t, []outbound.Attempt{r.Attempt}, got.Attempts)
				require.Equal(t, tc.wantFails, endpoint(e.ID).FailingSince != nil)

				// The same event and endpoint again, whether or not the
				// endpoint's health would change: a duplicate, recording nothing.
				failingSince := endpoint(e.ID).FailingSince
				for _, wasFailing := range []bool{false, true} {
					again := newDelivery(e, &records.Event{ID: d.EventID, Type: d.EventType}, outbound.StatusPending, now)
					r2 := &outbound.AttemptRecord{Workspace: ws.ID, DeliveryID: again.ID, EndpointID: e.ID, Status: tc.status,
						WasFailing: wasFailing, NextAttemptAt: tc.next, Attempt: tc.attempt, New: again}
					require.ErrorIs(t, st.RecordAttempt(ctx, r2), records.ErrDuplicate)
					_, err := st.GetDelivery(ctx, ws.ID, again.ID)
					require.ErrorIs(t, err, records.ErrNotFound)
					require.Len(t, delivery(d.ID).Attempts, 1)
					require.Equal(t, failingSince, endpoint(e.ID).FailingSince)
				}
			})
		}
	})

	t.Run("an attempt disables its endpoint", func(t *testing.T) {
		e := createEndpoint(t, st, ws.ID)
		gone := func(d *outbound.Delivery, reason string, at time.Time) *outbound.AttemptRecord {
			return &outbound.AttemptRecord{Workspace: ws.ID, DeliveryID: d.ID, EndpointID: e.ID, Status: outbound.StatusFailed,
				WasFailing: true, DisableReason: reason,
				Attempt: outbound.Attempt{At: at, StatusCode: 410, Error: "unexpected status 410 Gone",
					ErrorKind: outbound.ErrorKindStatus, Trigger: outbound.TriggerScheduled}}
		}
		// A delivery that does not exist records nothing, and disables nothing.
		require.ErrorIs(t, st.RecordAttempt(ctx, gone(&outbound.Delivery{ID: "dlv_missing"}, "the endpoint answered 410 Gone", now)),
			records.ErrNotFound)
		require.True(t, endpoint(e.ID).Enabled)

		d := newDelivery(e, insertEvent(t, st, ws.ID), outbound.StatusPending, now)
		createDelivery(t, st, d)
		r := gone(d, "the endpoint answered 410 Gone", now)
		require.NoError(t, st.RecordAttempt(ctx, r))
		require.Equal(t, 1, r.Attempt.Number)
		disabled := endpoint(e.ID)
		require.False(t, disabled.Enabled)
		require.Equal(t, "the endpoint answered 410 Gone", disabled.DisabledReason)
		require.Equal(t, now, *disabled.DisabledAt)
		got := delivery(d.ID)
		require.Equal(t, outbound.StatusFailed, got.Status)
		require.Equal(t, []outbound.Attempt{r.Attempt}, got.Attempts)

		// Disabled already, it keeps its first reason.
		d2 := newDelivery(e, insertEvent(t, st, ws.ID), outbound.StatusPending, now)
		createDelivery(t, st, d2)
		require.NoError(t, st.RecordAttempt(ctx, gone(d2, "failing for 3 days", later)))
		disabled = endpoint(e.ID)
		require.Equal(t, "the endpoint answered 410 Gone", disabled.DisabledReason)
		require.Equal(t, now, *disabled.DisabledAt)
		require.Len(t, delivery(d2.ID).Attempts, 1)
	})
}

func testWebhookRequeueAndPrune(t *testing.T, st Store) {
	ctx := context.Background()
	ws, other := Workspace(t, st, "pro"), Workspace(t, st, "pro")
	a, b, off := createEndpoint(t, st, ws.ID), createEndpoint(t, st, ws.ID), createEndpoint(t, st, ws.ID)
	now := stored(time.Now())
	since := now.Add(-time.Hour)

	// ds are the deliveries, by what they are.
	ds := map[string]*outbound.Delivery{}
	add := func(name string, e *outbound.Endpoint, status string, at time.Time) {
		d := newDelivery(e, insertEvent(t, st, e.Workspace), status, at)
		createDelivery(t, st, d)
		ds[name] = d
	}
	add("old failed", a, outbound.StatusFailed, now.Add(-2*time.Hour))
	add("old succeeded", a, outbound.StatusSucceeded, now.Add(-2*time.Hour))
	add("old pending", a, outbound.StatusPending, now.Add(-2*time.Hour))
	add("failed at the start", a, outbound.StatusFailed, since)
	add("failed", a, outbound.StatusFailed, now)
	add("failed on b", b, outbound.StatusFailed, now)
	add("failed on a disabled endpoint", off, outbound.StatusFailed, now)
	add("succeeded", a, outbound.StatusSucceeded, now)
	add("theirs", createEndpoint(t, st, other.ID), outbound.StatusFailed, now)
	disabled := *off
	disabled.Enabled = false
	require.NoError(t, st.UpdateEndpoint(ctx, &disabled))

	names := func(ns ...string) []string {
		ids := make([]string, len(ns))
		for i, n := range ns {
			ids[i] = ds[n].ID
		}
		return ids
	}
	status := func(name string) string {
		d := ds[name]
		got, err := st.GetDelivery(ctx, d.Workspace, d.ID)
		require.NoError(t, err)
		return got.Status
	}
	reset := func(ns ...string) {
		for _, n := range ns {
			require.NoError(t, st.SetDeliveryStatus(ctx, ds[n].Workspace, ds[n].ID, outbound.StatusFailed))
		}
	}
	at := now.Add(time.Second)

	tests := []struct {
		name string
		q    outbound.RequeueQuery
		want []string
	}{
		{"failed since, of enabled endpoints", outbound.RequeueQuery{Workspace: ws.ID, At: at, FailedSince: since},
			names("failed at the start", "failed", "failed on b")},
		{"of one endpoint", outbound.RequeueQuery{Workspace: ws.ID, At: at, FailedSince: since, EndpointID: b.ID},
			names("failed on b")},
		{"of a disabled endpoint", outbound.RequeueQuery{Workspace: ws.ID, At: at, FailedSince: since, EndpointID: off.ID},
			[]string{}},
		{"by id, whatever the status", outbound.RequeueQuery{Workspace: ws.ID, At: at, IDs: names("succeeded", "old failed", "failed on a disabled endpoint")},
			names("succeeded", "old failed", "failed on a disabled endpoint")},
		{"never another workspace's", outbound.RequeueQuery{Workspace: other.ID, At: at, IDs: names("failed", "succeeded")},
			[]string{}},
		{"another workspace's own", outbound.RequeueQuery{Workspace: other.ID, At: at, FailedSince: since},
			names("theirs")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := map[string]string{}
			for n := range ds {
				before[n] = status(n)
			}
			log := &enqueueLog{}
			got, err := st.RequeueDeliveries(ctx, tc.q, log.enqueue)
			require.NoError(t, err)
			require.ElementsMatch(t, tc.want, deliveryIDs(got))
			require.ElementsMatch(t, tc.want, log.ids)
			require.False(t, log.nilTx)
			for n, d := range ds {
				stored, err := st.GetDelivery(ctx, d.Workspace, d.ID)
				require.NoError(t, err)
				if !slices.Contains(tc.want, d.ID) {
					require.Equal(t, before[n], stored.Status, "%s is left alone", n)
					continue
				}
				require.Equal(t, outbound.StatusPending, stored.Status, n)
				require.Equal(t, at, *stored.NextAttemptAt, n)
			}
			// Put things back for the next case.
			for n, d := range ds {
				if slices.Contains(tc.want, d.ID) && before[n] != outbound.StatusPending {
					require.NoError(t, st.SetDeliveryStatus(ctx, d.Workspace, d.ID, before[n]))
				}
			}
		})
	}

	t.Run("nothing selected", func(t *testing.T) {
		got, err := st.RequeueDeliveries(ctx, outbound.RequeueQuery{Workspace: ws.ID, At: at, IDs: []string{"dlv_missing"}}, (&enqueueLog{}).enqueue)
		require.NoError(t, err)
		require.Empty(t, got)
		got, err = st.RequeueDeliveries(ctx, outbound.RequeueQuery{Workspace: ws.ID, At: at, FailedSince: now.Add(time.Minute)}, (&enqueueLog{}).enqueue)
		require.NoError(t, err)
		require.Empty(t, got)
	})

	t.Run("limit", func(t *testing.T) {
		log := &enqueueLog{}
		got, err := st.RequeueDeliveries(ctx, outbound.RequeueQuery{Workspace: ws.ID, At: at, FailedSince: since, Limit: 2}, log.enqueue)
		require.NoError(t, err)
		require.Len(t, got, 2)
		require.Subset(t, names("failed at the start", "failed", "failed on b"), deliveryIDs(got))
		rest, err := st.RequeueDeliveries(ctx, outbound.RequeueQuery{Workspace: ws.ID, At: at, FailedSince: since, Limit: 2}, log.enqueue)
		require.NoError(t, err)
		require.Len(t, rest, 1)
		require.ElementsMatch(t, names("failed at the start", "failed", "failed on b"), append(deliveryIDs(got), deliveryIDs(rest)...))
		reset("failed at the start", "failed", "failed on b")
	})

	t.Run("a failed enqueue requeues nothing", func(t *testing.T) {
		boom := errors.New("queue down")
		log := &enqueueLog{fail: boom}
		_, err := st.RequeueDeliveries(ctx, outbound.RequeueQuery{Workspace: ws.ID, At: at, FailedSince: since}, log.enqueue)
		require.ErrorIs(t, err, boom)
		require.Len(t, log.ids, 3)
		for _, n := range []string{"failed at the start", "failed", "failed on b"} {
			require.Equal(t, outbound.StatusFailed, status(n), n)
		}
	})

	t.Run("prune", func(t *testing.T) {
		n, err := st.PruneDeliveries(ctx, now.Add(-3*time.Hour))
		require.NoError(t, err)
		require.Zero(t, n)

		// Attempts go with their delivery.
		r := &outbound.AttemptRecord{Workspace: ws.ID, DeliveryID: ds["old succeeded"].ID, EndpointID: a.ID,
			Status: outbound.StatusSucceeded, Attempt: outbound.Attempt{At: now.Add(-2 * time.Hour), StatusCode: 200, Trigger: outbound.TriggerScheduled}}
		require.NoError(t, st.RecordAttempt(ctx, r))

		n, err = st.PruneDeliveries(ctx, since)
		require.NoError(t, err)
		require.Equal(t, int64(2), n, "the old deliveries that are no longer pending")
		for name, d := range ds {
			_, err := st.GetDelivery(ctx, d.Workspace, d.ID)
			if name == "old failed" || name == "old succeeded" {
				require.ErrorIs(t, err, records.ErrNotFound, name)
			} else {
				require.NoError(t, err, name)
			}
		}
		_, _, _, err = st.DeliveryTarget(ctx, ds["old succeeded"].ID)
		require.ErrorIs(t, err, records.ErrNotFound)
	})
}
