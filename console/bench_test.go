package console_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/console"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// benchDeliveries is how many deliveries the benchmarked endpoint has,
// created over benchSpan up to now: with the default 30 days' retention,
// an endpoint that gets about 140 events an hour.
const (
	benchDeliveries = 100_000
	benchSpan       = 30 * 24 * time.Hour
)

// benchDelivery and benchAttempt are rows of the store's delivery log
// tables, for seeding them in bulk: the store writes deliveries one event
// at a time, which would take minutes for 100,000.
type benchDelivery struct {
	bun.BaseModel `bun:"table:webhook_deliveries"`

	ID            string     `bun:"id,pk"`
	WorkspaceID   string     `bun:"workspace_id"`
	EndpointID    string     `bun:"endpoint_id"`
	EventID       string     `bun:"event_id"`
	EventType     string     `bun:"event_type"`
	Status        string     `bun:"status"`
	AttemptCount  int        `bun:"attempt_count"`
	CreatedAt     time.Time  `bun:"created_at"`
	LastAttemptAt *time.Time `bun:"last_attempt_at"`
	NextAttemptAt *time.Time `bun:"next_attempt_at"`
}

type benchAttempt struct {
	bun.BaseModel `bun:"table:webhook_attempts"`

	DeliveryID      string    `bun:"delivery_id,pk"`
	Number          int       `bun:"number,pk"`
	At              time.Time `bun:"at"`
	DurationMS      int64     `bun:"duration_ms"`
	StatusCode      int       `bun:"status_code"`
	ResponseHeaders *string   `bun:"response_headers"`
	ResponseBody    string    `bun:"response_body"`
	Error           string    `bun:"error"`
	ErrorKind       string    `bun:"error_kind"`
	TriggeredBy     string    `bun:"triggered_by"`
}

// benchID makes an id of records.NewID's form for a time, so that the
// seeded log sorts by creation time as a real one does.
func benchID(prefix string, at time.Time, seq uint64) string {
	const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	hi, lo := uint64(at.UnixMilli())<<16, seq
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = alphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return prefix + "_" + string(out[:])
}

// seedDeliveries writes n deliveries of the endpoint, evenly spread over
// span up to now: one in twelve failed after three attempts with an error
// and the receiver's answer, the last few pending, the rest succeeded at
// the first attempt. Rows go in 500 at a time, in one transaction.
func seedDeliveries(tb testing.TB, st *store.Store, ws, endpointID string, n int, span time.Duration, now time.Time) {
	tb.Helper()
	ctx := context.Background()
	headers := `{"Content-Type":["text/plain"],"X-Receiver":["bench"]}`
	step := span / time.Duration(n)
	start := now.Add(-span)
	err := st.DB().RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		const batch = 500
		ds := make([]benchDelivery, 0, batch)
		as := make([]benchAttempt, 0, 3*batch)
		flush := func() error {
			if len(ds) == 0 {
				return nil
			}
			if _, err := tx.NewInsert().Model(&ds).Exec(ctx); err != nil {
				return err
			}
			if _, err := tx.NewInsert().Model(&as).Exec(ctx); err != nil {
				return err
			}
			ds, as = ds[:0], as[:0]
			return nil
		}
		for i := range n {
			at := start.Add(time.Duration(i) * step).UTC().Truncate(time.Microsecond)
			d := benchDelivery{ID: benchID("dlv", at, uint64(i)), WorkspaceID: ws, EndpointID: endpointID,
				EventID: benchID("evt", at, uint64(i)), EventType: records.EventUpdated, CreatedAt: at}
			switch {
			case i >= n-5:
				d.Status = outbound.StatusPending
				next := at.Add(time.Minute)
				d.NextAttemptAt = &next
			case i%12 == 0:
				d.Status, d.AttemptCount = outbound.StatusFailed, 3
				for k := 1; k <= 3; k++ {
					aAt := at.Add(time.Duration(k) * time.Second)
					as = append(as, benchAttempt{DeliveryID: d.ID, Number: k, At: aAt, DurationMS: 40, StatusCode: 502,
						ResponseHeaders: &headers, ResponseBody: "upstream unavailable", Error: "unexpected status 502 Bad Gateway",
						ErrorKind: outbound.ErrorKindStatus, TriggeredBy: "scheduled"})
					d.LastAttemptAt = &aAt
				}
			default:
				d.Status, d.AttemptCount = outbound.StatusSucceeded, 1
				aAt := at.Add(50 * time.Millisecond)
				as = append(as, benchAttempt{DeliveryID: d.ID, Number: 1, At: aAt, DurationMS: 35, StatusCode: 200,
					ResponseHeaders: &headers, ResponseBody: "ok", TriggeredBy: "scheduled"})
				d.LastAttemptAt = &aAt
			}
			ds = append(ds, d)
			if len(ds) == batch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return flush()
	})
	require.NoError(tb, err)
	if st.Dialect() == store.DialectPostgres {
		// Statistics, as autovacuum keeps them for a log that grew over a
		// month. SQLite gets none: the store never runs ANALYZE there.
		_, err = st.DB().ExecContext(ctx, "ANALYZE")
		require.NoError(tb, err)
	}
}

// BenchmarkDeliveryLogPage renders an endpoint's page (its health, the
// chart of the last 24 hours and the first page of its delivery log) for
// an endpoint with 100,000 deliveries, on each database, and reports the
// median and 95th percentile of the server-side time of one page: the
// handler's, with no network in between. The variants are the page as
// opened, filtered by status (failed, pending) and since a time, and a
// page deep in the log; each with the chart read from the log (what
// a Webhooks without a DeliveryCounter offers) and counted (what
// *outbound.Service offers, through the store's CountDeliveries).
func BenchmarkDeliveryLogPage(b *testing.B) {
	for _, db := range []struct {
		name string
		dsn  func(testing.TB) string
	}{{"sqlite", testdb.SQLiteDSN}, {"postgres", testdb.PostgresDSN}} {
		b.Run(db.name, func(b *testing.B) {
			ctx := context.Background()
			st, err := store.Open(ctx, db.dsn(b))
			require.NoError(b, err)
			b.Cleanup(func() { _ = st.Close() })
			keys, err := apikey.New(apikey.Config{Store: st})
			require.NoError(b, err)
			hooks, err := outbound.New(outbound.Config{Store: st, AllowPrivate: true})
			require.NoError(b, err)
			w := &records.Workspace{Name: "Bench", Plan: "enterprise"}
			require.NoError(b, st.CreateWorkspace(ctx, w))
			e, _, err := hooks.Create(ctx, w.ID, outbound.EndpointInput{URL: "http://127.0.0.1:9/hooks", Events: []string{records.EventUpdated}})
			require.NoError(b, err)
			now := time.Now().UTC()
			seedDeliveries(b, st, w.ID, e.ID, benchDeliveries, benchSpan, now)
			middle, err := hooks.Deliveries(ctx, outbound.DeliveryQuery{Workspace: w.ID, EndpointID: e.ID,
				Before: benchID("dlv", now.Add(-benchSpan/2), 0), Limit: 1})
			require.NoError(b, err)
			require.Len(b, middle, 1)
			for _, chart := range []struct {
				name  string
				hooks console.Webhooks
			}{{"chart=log", logOnly{hooks}}, {"chart=counted", hooks}} {
				h, err := console.New(console.Config{Keys: keys, Webhooks: chart.hooks, Authenticator: headerAuth{}})
				require.NoError(b, err)
				for _, v := range []struct{ name, query string }{
					{"opened", ""},
					{"failed", "?status=failed"},
					{"pending", "?status=pending"},
					{"since", "?since=" + url.QueryEscape(now.Add(-6*time.Hour).Format("2006-01-02T15:04"))},
					{"deep", "?before=" + middle[0].ID},
				} {
					b.Run(chart.name+"/"+v.name, func(b *testing.B) {
						get := func() *httptest.ResponseRecorder {
							r := httptest.NewRequest(http.MethodGet, "/webhooks/"+e.ID+v.query, nil)
							r.Header.Set("X-Test-Workspace", w.ID)
							r.Header.Set("X-Test-Session", "bench")
							rec := httptest.NewRecorder()
							h.ServeHTTP(rec, r)
							return rec
						}
						rec := get()
						require.Equal(b, http.StatusOK, rec.Code)
						body := rec.Body.String()
						want := 50
						if v.name == "pending" {
							want = 5
						}
						require.Equal(b, want, strings.Count(body, `<details class="delivery"`), "a page of the log")
						require.Contains(b, body, "Failed")
						times := make([]time.Duration, 0, 1024)
						for b.Loop() {
							t0 := time.Now()
							rec := get()
							times = append(times, time.Since(t0))
							if rec.Code != http.StatusOK {
								b.Fatalf("status %d", rec.Code)
							}
						}
						slices.Sort(times)
						pct := func(p float64) float64 {
							return float64(times[int(p*float64(len(times)-1))]) / float64(time.Millisecond)
						}
						b.ReportMetric(pct(0.50), "p50-ms")
						b.ReportMetric(pct(0.95), "p95-ms")
						b.ReportMetric(0, "ns/op")
					})
				}
			}
		})
	}
}

// TestBenchmarkSeed checks the seeded log reads back as the store's own
// writes do, on both databases, so the benchmark measures a real log.
func TestBenchmarkSeed(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st, err := store.Open(ctx, dsn)
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		hooks, err := outbound.New(outbound.Config{Store: st, AllowPrivate: true})
		require.NoError(t, err)
		w := &records.Workspace{Name: "Seed", Plan: "enterprise"}
		require.NoError(t, st.CreateWorkspace(ctx, w))
		e, _, err := hooks.Create(ctx, w.ID, outbound.EndpointInput{URL: "http://127.0.0.1:9/hooks", Events: []string{records.EventUpdated}})
		require.NoError(t, err)
		now := time.Now().UTC()
		seedDeliveries(t, st, w.ID, e.ID, 1200, 24*time.Hour, now)

		ds, err := hooks.Deliveries(ctx, outbound.DeliveryQuery{Workspace: w.ID, EndpointID: e.ID, Limit: 200})
		require.NoError(t, err)
		require.Len(t, ds, 200)
		require.Equal(t, outbound.StatusPending, ds[0].Status, "newest first")
		require.True(t, slices.IsSortedFunc(ds, func(a, b *outbound.Delivery) int { return b.CreatedAt.Compare(a.CreatedAt) }))
		failed, err := hooks.Deliveries(ctx, outbound.DeliveryQuery{Workspace: w.ID, EndpointID: e.ID, Status: outbound.StatusFailed, Limit: 200})
		require.NoError(t, err)
		require.Len(t, failed, 100)
		require.Len(t, failed[0].Attempts, 3)
		require.Equal(t, "unexpected status 502 Bad Gateway", failed[0].Attempts[2].Error)
		require.Equal(t, http.Header{"Content-Type": {"text/plain"}, "X-Receiver": {"bench"}}, failed[0].Attempts[2].Headers)
		d, err := hooks.Delivery(ctx, w.ID, ds[10].ID)
		require.NoError(t, err)
		require.Equal(t, outbound.StatusSucceeded, d.Status)
		require.Equal(t, 200, d.Attempts[0].StatusCode)
		require.WithinDuration(t, now.Add(-24*time.Hour), ds[len(ds)-1].CreatedAt, 24*time.Hour)
	})
}
