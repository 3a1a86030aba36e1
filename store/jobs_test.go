package store_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store/storetest"
)

type fanoutWorker struct {
	river.WorkerDefaults[records.FanoutArgs]
	got chan string
}

func (w *fanoutWorker) Work(ctx context.Context, job *river.Job[records.FanoutArgs]) error {
	w.got <- job.Args.EventID
	return nil
}

// errorLog collects what River logs at warning level and above, so a test
// can tell that no job operation failed (SQLITE_BUSY, say).
type errorLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *errorLog) Enabled(_ context.Context, lvl slog.Level) bool { return lvl >= slog.LevelWarn }
func (l *errorLog) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, b.String())
	return nil
}
func (l *errorLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *errorLog) WithGroup(string) slog.Handler      { return l }

// TestJobClientWorksFanoutJobs writes records from several goroutines while
// a River client works the fanout jobs on the same database: every event's
// job must run once, and River must log no failure.
func TestJobClientWorksFanoutJobs(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st := open(t, dsn)
		ws := storetest.Workspace(t, st, "pro")

		const writes = 30
		w := &fanoutWorker{got: make(chan string, writes)}
		workers := river.NewWorkers()
		river.AddWorker(workers, w)
		logs := &errorLog{}
		client, err := st.NewJobClient(&river.Config{
			Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 4}},
			Workers:           workers,
			FetchCooldown:     20 * time.Millisecond,
			FetchPollInterval: 50 * time.Millisecond,
			Logger:            slog.New(logs),
		})
		require.NoError(t, err)
		require.Same(t, client, st.JobClient())
		require.NoError(t, client.Start(ctx))
		t.Cleanup(func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			require.NoError(t, client.Stop(stopCtx))
		})

		var wg sync.WaitGroup
		want := make(chan string, writes)
		for range writes {
			wg.Go(func() {
				r := storetest.NewRecord(ws.ID, "lead", records.Fields{"n": 1.0})
				e := &records.Event{Workspace: ws.ID, Type: records.EventCreated, Object: "lead", Record: r}
				err := st.InTx(ctx, func(ctx context.Context, tx records.Tx) error {
					if err := tx.ReserveRecords(ctx, ws.ID, 1, 0); err != nil {
						return err
					}
					if err := tx.InsertRecord(ctx, r, "", nil); err != nil {
						return err
					}
					return tx.InsertEvents(ctx, e)
				})
				if err != nil {
					t.Error(err)
					return
				}
				want <- e.ID
			})
		}
		wg.Wait()
		close(want)

		expected := map[string]bool{}
		for id := range want {
			expected[id] = true
		}
		require.Len(t, expected, writes)
		deadline := time.After(60 * time.Second)
		for len(expected) > 0 {
			select {
			case id := <-w.got:
				require.True(t, expected[id], "job for unknown or repeated event %s", id)
				delete(expected, id)
			case <-deadline:
				t.Fatalf("%d fanout jobs never ran", len(expected))
			}
		}
		logs.mu.Lock()
		defer logs.mu.Unlock()
		require.Empty(t, logs.msgs)
	})
}

func TestNewJobClientNeedsConfig(t *testing.T) {
	st := open(t, testdb.SQLiteDSN(t))
	_, err := st.NewJobClient(nil)
	require.Error(t, err)
	// Before NewJobClient, an insert-only client enqueues.
	require.NotNil(t, st.JobClient())
}
