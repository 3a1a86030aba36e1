package outbound_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/internal/testlog"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
	"github.com/smartlite/crmkit/webhook/outbound"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

// waitTimeout bounds every wait for asynchronous delivery. It is a ceiling
// for a loaded CI machine, not a performance expectation.
const waitTimeout = 30 * time.Second

// testClock is a clock tests can move forward.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

type harness struct {
	t      *testing.T
	st     *store.Store
	svc    *outbound.Service
	client *river.Client[*sql.Tx]
	ws     string
	clock  *testClock
	logs   *testlog.Buffer
}

// quickSchedule retries fast enough for tests and still exercises retries.
var quickSchedule = []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}

// newHarness opens a store on dsn and runs a Service on a started River
// client. cfg's Store, Clock and Logger are filled in; the rest is kept,
// with a quick retry schedule and no jitter unless set.
func newHarness(t *testing.T, dsn string, cfg outbound.Config) *harness {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	ws := &records.Workspace{Name: "acme", Plan: "pro"}
	require.NoError(t, st.CreateWorkspace(ctx, ws))
	h := &harness{t: t, st: st, ws: ws.ID}
	h.start(cfg)
	return h
}

// start runs a Service and River client on h's store; a second call makes
// a second, independent replica on the same database.
func (h *harness) start(cfg outbound.Config) {
	t := h.t
	h.clock, h.logs = &testClock{}, &testlog.Buffer{}
	cfg.Store, cfg.Clock = h.st, h.clock.Now
	cfg.Logger = slog.New(slog.NewJSONHandler(h.logs, nil))
	if cfg.Schedule == nil {
		cfg.Schedule = quickSchedule
	}
	if cfg.Jitter == 0 {
		cfg.Jitter = -1
	}
	svc, err := outbound.New(cfg)
	require.NoError(t, err)
	workers := river.NewWorkers()
	require.NoError(t, svc.Register(workers))
	rc := &river.Config{
		Workers:      workers,
		PeriodicJobs: svc.PeriodicJobs(),
		TestOnly:     true,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	svc.RiverConfig(rc)
	client, err := h.st.NewJobClient(rc)
	require.NoError(t, err)
	svc.SetClient(client)
	require.NoError(t, client.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.StopAndCancel(ctx)
	})
	h.svc, h.client = svc, client
}

// emit commits events the way the pipeline does: stored, with their fan-out
// jobs, in one transaction.
func (h *harness) emit(evs ...*records.Event) {
	h.t.Helper()
	require.NoError(h.t, h.st.InTx(context.Background(), func(ctx context.Context, tx records.Tx) error {
		return tx.InsertEvents(ctx, evs...)
	}))
}

func (h *harness) endpoint(in outbound.EndpointInput) (*outbound.Endpoint, string) {
	h.t.Helper()
	e, secret, err := h.svc.Create(context.Background(), h.ws, in)
	require.NoError(h.t, err)
	return e, secret
}

// deliveries answers the endpoint's deliveries, newest first.
func (h *harness) deliveries(endpointID string) []*outbound.Delivery {
	h.t.Helper()
	ds, err := h.svc.Deliveries(context.Background(), outbound.DeliveryQuery{Workspace: h.ws, EndpointID: endpointID, Limit: 200})
	require.NoError(h.t, err)
	return ds
}

// waitDelivery waits until the endpoint has a delivery in one of the
// statuses and answers it.
func (h *harness) waitDelivery(endpointID string, statuses ...string) *outbound.Delivery {
	h.t.Helper()
	var got *outbound.Delivery
	require.Eventually(h.t, func() bool {
		for _, d := range h.deliveries(endpointID) {
			for _, s := range statuses {
				if d.Status == s {
					got = d
					return true
				}
			}
		}
		return false
	}, waitTimeout, 20*time.Millisecond, "no delivery of %s reached %v", endpointID, statuses)
	return got
}

// waitFanout waits until no fan-out job is left to run.
func (h *harness) waitFanout() {
	h.t.Helper()
	require.Eventually(h.t, func() bool {
		var n int
		err := h.st.DB().NewRaw("SELECT count(*) FROM river_job WHERE kind = ? AND state <> 'completed'",
			records.FanoutArgs{}.Kind()).Scan(context.Background(), &n)
		return err == nil && n == 0
	}, waitTimeout, 20*time.Millisecond)
}

// webhookJobKinds are the kinds of the jobs that make delivery attempts.
var webhookJobKinds = []string{records.FanoutArgs{}.Kind(), outbound.DeliverArgs{}.Kind()}

// webhookJobs answers the fan-out and delivery jobs in the given states.
func (h *harness) webhookJobs(states ...rivertype.JobState) ([]*rivertype.JobRow, error) {
	res, err := h.client.JobList(context.Background(),
		river.NewJobListParams().Kinds(webhookJobKinds...).States(states...).First(10_000))
	if err != nil {
		return nil, err
	}
	return res.Jobs, nil
}

// waitIdle waits until no fan-out or delivery job is left that could make
// another attempt: once it returns, every request a receiver will ever get
// from the jobs so far has been answered.
func (h *harness) waitIdle() {
	h.t.Helper()
	require.Eventually(h.t, func() bool {
		jobs, err := h.webhookJobs(rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
			rivertype.JobStateRunning, rivertype.JobStateScheduled)
		return err == nil && len(jobs) == 0
	}, waitTimeout, 20*time.Millisecond, "fan-out and delivery jobs still to run")
}

// deliverJob answers the newest delivery job of the delivery, nil when
// there is none.
func (h *harness) deliverJob(deliveryID string) *rivertype.JobRow {
	h.t.Helper()
	res, err := h.client.JobList(context.Background(), river.NewJobListParams().Kinds(outbound.DeliverArgs{}.Kind()).
		States(rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable, rivertype.JobStateRunning,
			rivertype.JobStateScheduled, rivertype.JobStateCompleted, rivertype.JobStateCancelled, rivertype.JobStateDiscarded).
		First(10_000))
	if err != nil {
		return nil
	}
	var newest *rivertype.JobRow
	for _, j := range res.Jobs {
		var args outbound.DeliverArgs
		if json.Unmarshal(j.EncodedArgs, &args) == nil && args.DeliveryID == deliveryID && (newest == nil || j.ID > newest.ID) {
			newest = j
		}
	}
	return newest
}

// jobWorkers counts, per River client id, the fan-out and delivery jobs it
// worked.
func (h *harness) jobWorkers() map[string]int {
	h.t.Helper()
	jobs, err := h.webhookJobs(rivertype.JobStateCompleted)
	require.NoError(h.t, err)
	workers := map[string]int{}
	for _, j := range jobs {
		for _, id := range j.AttemptedBy {
			workers[id]++
		}
	}
	return workers
}

func opportunityEvent(ws, typ string, changes map[string]records.Change) *records.Event {
	rec := &records.Record{ID: records.NewID("rec"), Object: "opportunity", Workspace: ws, Version: 2,
		Fields: records.Fields{"name": "Acme renewal", "stage": "Closed Won", "amount": 12000.0}}
	return &records.Event{Workspace: ws, Type: typ, Object: "opportunity", Record: rec, Changes: changes,
		Source: records.SourceAPI, Actor: records.Actor{Kind: "api_key", ID: "key_test"}}
}

func closedWon(ws string) *records.Event {
	return opportunityEvent(ws, records.EventUpdated, map[string]records.Change{"stage": {From: "Negotiation", To: "Closed Won"}})
}

// receiver is a loopback HTTP server that records what it gets and answers
// with the status respond picks (200 when nil).
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []received
	respond  atomic.Pointer[func(n int, w http.ResponseWriter, r *http.Request)]
}

type received struct {
	at     time.Time
	path   string
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rv := &receiver{}
	rv.Server = httptest.NewServer(http.HandlerFunc(rv.serve))
	t.Cleanup(rv.Close)
	return rv
}

func (rv *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rv.mu.Lock()
	rv.requests = append(rv.requests, received{at: time.Now(), path: r.URL.Path, header: r.Header.Clone(), body: body})
	n := len(rv.requests)
	rv.mu.Unlock()
	if f := rv.respond.Load(); f != nil {
		(*f)(n, w, r)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (rv *receiver) setRespond(f func(n int, w http.ResponseWriter, r *http.Request)) {
	rv.respond.Store(&f)
}

func (rv *receiver) got() []received {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return append([]received(nil), rv.requests...)
}

func (rv *receiver) byPath(path string) []received {
	var out []received
	for _, r := range rv.got() {
		if r.path == path {
			out = append(out, r)
		}
	}
	return out
}
