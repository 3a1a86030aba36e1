package outbound_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// noPoll is a fallback poll no test lasts long enough to see: whatever is
// delivered under it was woken by a notification.
const noPoll = time.Hour

// deliverEach emits n events one at a time through emit, each once the one
// before it has been delivered, and requires every one to be delivered.
func deliverEach(t *testing.T, h *harness, endpointID string, n int, emit func(ev *records.Event)) {
	t.Helper()
	for i := range n {
		emit(closedWon(h.ws))
		require.Eventually(t, func() bool {
			ds := h.deliveries(endpointID)
			return len(ds) == i+1 && ds[0].Status == outbound.StatusSucceeded
		}, waitTimeout, 5*time.Millisecond, "event %d was not delivered", i+1)
	}
}

// TestCommitWakesFanout: with the fallback poll out of reach, each
// committed write is delivered by the process that wrote it, woken in
// process when the transaction commits.
func TestCommitWakesFanout(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		h := newHarness(t, dsn, outbound.Config{AllowPrivate: true, PollInterval: noPoll})
		rv := newReceiver(t)
		e, _ := h.endpoint(outbound.EndpointInput{URL: rv.URL + "/hook", Events: []string{"*"}})
		deliverEach(t, h, e.ID, 20, func(ev *records.Event) { h.emit(ev) })
		require.Len(t, rv.got(), 20)
	})
}

// TestCommitWakesOtherReplica: a write committed by a process that works no
// jobs (its store has only the insert-only client) is delivered by another
// process on the same Postgres, woken by the notification the transaction
// sent, though that process's fallback poll is out of reach. The writes
// follow each other closely, as they would from a busy API replica: each
// one still wakes the worker.
func TestCommitWakesOtherReplica(t *testing.T) {
	dsn := testdb.PostgresDSN(t)
	h := newHarness(t, dsn, outbound.Config{AllowPrivate: true, PollInterval: noPoll})
	writer, err := store.Open(context.Background(), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = writer.Close() })
	rv := newReceiver(t)
	e, _ := h.endpoint(outbound.EndpointInput{URL: rv.URL + "/hook", Events: []string{"*"}})
	deliverEach(t, h, e.ID, 20, func(ev *records.Event) {
		require.NoError(t, writer.InTx(context.Background(), func(ctx context.Context, tx records.Tx) error {
			return tx.InsertEvents(ctx, ev)
		}))
	})
	h.waitIdle()
	workers := h.jobWorkers()
	require.Len(t, workers, 1)
	require.Equal(t, 20, workers[h.client.ID()], "the fan-outs were worked by the worker replica")
}

// TestLostNotificationFallsBackToPoll: a write whose notification never
// reaches the worker is delivered all the same, by the fallback poll.
func TestLostNotificationFallsBackToPoll(t *testing.T) {
	const fallback = 200 * time.Millisecond
	t.Run("postgres listener dropped", func(t *testing.T) {
		dsn := testdb.PostgresDSN(t)
		h := newHarness(t, dsn, outbound.Config{AllowPrivate: true, PollInterval: fallback})
		writer, err := store.Open(context.Background(), dsn)
		require.NoError(t, err)
		t.Cleanup(func() { _ = writer.Close() })
		rv := newReceiver(t)
		e, _ := h.endpoint(outbound.EndpointInput{URL: rv.URL + "/hook", Events: []string{"*"}})

		// The worker's LISTEN session is ended by the server; River's
		// notifier reconnects after a backoff of about a second, and a
		// notification sent meanwhile is lost.
		ctx := context.Background()
		var ended int
		require.NoError(t, writer.DB().NewRaw(`SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND query LIKE 'LISTEN%') AS t`).Scan(ctx, &ended))
		require.Equal(t, 1, ended, "the worker's listener session")
		require.Eventually(t, func() bool {
			var n int
			err := writer.DB().NewRaw(`SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND query LIKE 'LISTEN%'`).Scan(ctx, &n)
			return err == nil && n == 0
		}, waitTimeout, time.Millisecond)
		ev := closedWon(h.ws)
		require.NoError(t, writer.InTx(ctx, func(ctx context.Context, tx records.Tx) error {
			return tx.InsertEvents(ctx, ev)
		}))
		d := h.waitDelivery(e.ID, outbound.StatusSucceeded)
		require.Equal(t, ev.ID, d.EventID)
		require.Len(t, rv.got(), 1)
	})
	t.Run("sqlite commit unseen", func(t *testing.T) {
		h := newHarness(t, testdb.SQLiteDSN(t), outbound.Config{AllowPrivate: true, PollInterval: fallback})
		rv := newReceiver(t)
		e, _ := h.endpoint(outbound.EndpointInput{URL: rv.URL + "/hook", Events: []string{"*"}})
		// A host's own transaction: the store does not see it commit, so
		// nothing wakes the worker.
		ctx := context.Background()
		tx, err := h.st.SQLDB().BeginTx(ctx, nil)
		require.NoError(t, err)
		ev := closedWon(h.ws)
		require.NoError(t, h.st.PublishTx(ctx, tx, ev))
		require.NoError(t, tx.Commit())
		d := h.waitDelivery(e.ID, outbound.StatusSucceeded)
		require.Equal(t, ev.ID, d.EventID)
		require.Len(t, rv.got(), 1)
	})
}
