package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// The noisy workspace's size.
const (
	noisyRecords   = 100_000
	noisyEndpoints = 2_000
)

var noisyScenario = scenario{
	description: "one workspace floods (-concurrency filtered lists over 100,000 records, and -rate updates a second, " +
		"default 2, each to 2,000 webhook endpoints) while another updates a record every 200 ms to one endpoint; " +
		"/healthz statuses and latency, the other workspace's commit-to-receipt latency, the flood's lists by status " +
		"(in-process only)",
	run: runNoisy,
}

// noisyTally counts answers by status and keeps the latencies of some.
type noisyTally struct {
	mu        sync.Mutex
	statuses  map[string]int
	latencies []time.Duration
}

func (n *noisyTally) add(status string, d time.Duration, keep bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.statuses[status]++
	if keep {
		n.latencies = append(n.latencies, d)
	}
}

func (n *noisyTally) figures(prefix string, into map[string]any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	lat := slices.Clone(n.latencies)
	slices.Sort(lat)
	into[prefix+"_statuses"] = n.statuses
	into[prefix+"_p50_ms"] = round(ms(percentile(lat, 0.50)))
	into[prefix+"_p99_ms"] = round(ms(percentile(lat, 0.99)))
}

func runNoisy(ctx context.Context, t *target, o options) (map[string]any, error) {
	if t.st == nil {
		return nil, errors.New("the noisy scenario runs in-process only (it seeds the database directly)")
	}
	if o.rate <= 0 {
		o.rate = 2
	}
	// Two receivers: the noisy workspace's endpoints all answer at once on
	// one; the quiet workspace's on the other, which notes latencies.
	quiet := &hookSink{seen: map[string]bool{}, receipts: map[string]time.Time{}}
	var noisyHits sync.Map
	noisyURL, stopNoisy, err := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noisyHits.Store(r.Header.Get("webhook-id")+r.URL.Path, true)
		w.WriteHeader(http.StatusNoContent)
	}))
	if err != nil {
		return nil, err
	}
	defer stopNoisy()
	quietURL, stopQuiet, err := serve(quiet)
	if err != nil {
		return nil, err
	}
	defer stopQuiet()

	noisy, noisyKey, err := noisyWorkspace(ctx, t, "Noisy")
	if err != nil {
		return nil, err
	}
	quietWS, quietKey, err := noisyWorkspace(ctx, t, "Quiet")
	if err != nil {
		return nil, err
	}
	if err := seedNoisy(ctx, t.st, noisy, noisyRecords); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	for i := range noisyEndpoints {
		if _, _, err := t.svc.Webhooks().Create(ctx, noisy, outbound.EndpointInput{
			URL: noisyURL + "/" + strconv.Itoa(i), Events: []string{"record.updated"}}); err != nil {
			return nil, fmt.Errorf("noisy endpoint: %w", err)
		}
	}
	if _, _, err := t.svc.Webhooks().Create(ctx, quietWS, outbound.EndpointInput{
		URL: quietURL + "/hook", Events: []string{"record.updated"}}); err != nil {
		return nil, fmt.Errorf("quiet endpoint: %w", err)
	}
	var quietRec struct {
		ID string `json:"id"`
	}
	if _, err := t.call(ctx, "POST", "/api/v1/records/opportunity", quietKey, map[string]any{"fields": map[string]any{
		"name": "Quiet deal", "amount": 1, "stage": "Prospecting"}}, &quietRec); err != nil {
		return nil, err
	}

	fctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var wg sync.WaitGroup
	health := &noisyTally{statuses: map[string]int{}}
	lists := &noisyTally{statuses: map[string]int{}}
	writes := &noisyTally{statuses: map[string]int{}}
	quietWrites := 0

	// The flood: filtered lists that match one record each, so SQLite
	// reads every record of the object to answer.
	for range o.concurrency {
		wg.Go(func() {
			for fctx.Err() == nil {
				q := url.Values{"filter[name]": {"deal " + strconv.Itoa(rand.IntN(noisyRecords)+1)}, "limit": {"50"}}
				t0 := time.Now()
				code, err := t.call(fctx, "GET", "/api/v1/records/opportunity?"+q.Encode(), noisyKey, nil, nil)
				if fctx.Err() != nil {
					return
				}
				lists.add(statusOf(code, err), time.Since(t0), code == http.StatusOK)
				if code == http.StatusServiceUnavailable {
					// Retry-After is 1 s; a client that honours it.
					sleep(fctx, time.Second)
				}
			}
		})
	}
	// Updates of the noisy workspace, each to every one of its endpoints.
	wg.Go(func() {
		tick := time.NewTicker(time.Duration(float64(time.Second) / o.rate))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-fctx.Done():
				return
			case <-tick.C:
			}
			id := fmt.Sprintf("rec_%08d", rand.IntN(noisyRecords)+1)
			t0 := time.Now()
			code, err := t.call(fctx, "PATCH", "/api/v1/records/opportunity/"+id, noisyKey,
				map[string]any{"fields": map[string]any{"amount": i}}, nil)
			if fctx.Err() != nil {
				return
			}
			writes.add(statusOf(code, err), time.Since(t0), code == http.StatusOK)
		}
	})
	// The quiet workspace's updates, whose deliveries are the figure: from
	// sending the write to receiving its delivery, so a write held up by
	// the flood counts too.
	sent := map[string]time.Time{}
	quietTally := &noisyTally{statuses: map[string]int{}}
	wg.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-fctx.Done():
				return
			case <-tick.C:
			}
			var rec struct {
				Version int64 `json:"version"`
			}
			t0 := time.Now()
			code, err := t.call(fctx, "PATCH", "/api/v1/records/opportunity/"+quietRec.ID, quietKey,
				map[string]any{"fields": map[string]any{"amount": i + 2}}, &rec)
			if fctx.Err() != nil {
				quietTally.add("cut off", 0, false)
				return
			}
			quietTally.add(statusOf(code, err), time.Since(t0), code == http.StatusOK)
			if err == nil {
				sent[recordVersion(quietRec.ID, rec.Version)] = t0
				quietWrites++
			}
		}
	})
	// The liveness probe, as an orchestrator would call it.
	wg.Go(func() {
		probe := &http.Client{Timeout: 5 * time.Second}
		for fctx.Err() == nil {
			t0 := time.Now()
			resp, err := probe.Get(t.url + "/healthz")
			code := 0
			if err == nil {
				code = resp.StatusCode
				_ = resp.Body.Close()
			}
			if fctx.Err() != nil {
				return
			}
			health.add(statusOf(code, err), time.Since(t0), true)
			sleep(fctx, 100*time.Millisecond)
		}
	})
	wg.Wait()
	// Deliveries of the quiet workspace's last writes may still be on
	// their way; give them what the flood's backlog lets them have.
	deadline := time.Now().Add(30 * time.Second)
	for quiet.count() < quietWrites && time.Now().Before(deadline) {
		sleep(ctx, 100*time.Millisecond)
	}

	res := map[string]any{}
	health.figures("healthz", res)
	lists.figures("flood_list", res)
	writes.figures("flood_write", res)
	quietTally.figures("quiet_write", res)
	quiet.mu.Lock()
	var lat []time.Duration
	for k, t0 := range sent {
		if at, ok := quiet.receipts[k]; ok {
			lat = append(lat, at.Sub(t0))
		}
	}
	quiet.mu.Unlock()
	slices.Sort(lat)
	res["quiet_delivered"] = len(lat)
	res["quiet_delivery_p50_ms"] = round(ms(percentile(lat, 0.50)))
	res["quiet_delivery_p99_ms"] = round(ms(percentile(lat, 0.99)))
	res["quiet_delivery_max_ms"] = round(ms(percentile(lat, 1)))
	n := 0
	noisyHits.Range(func(any, any) bool { n++; return true })
	res["flood_deliveries"] = n
	return res, nil
}

// statusOf names an answer: its status code, or "error" when there was none.
func statusOf(code int, err error) string {
	if code == 0 && err != nil {
		return "error"
	}
	return strconv.Itoa(code)
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// serve runs h on a loopback port and answers its URL.
func serve(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// noisyWorkspace creates a workspace on the unmetered plan and an ADMIN key
// of it.
func noisyWorkspace(ctx context.Context, t *target, name string) (string, string, error) {
	ws := &records.Workspace{Name: name, Plan: unmetered}
	if err := t.st.CreateWorkspace(ctx, ws); err != nil {
		return "", "", err
	}
	_, key, err := t.svc.Keys().Create(ctx, ws.ID, name+" admin", []apikey.Scope{apikey.ScopeAdmin}, nil)
	return ws.ID, key, err
}

// seedNoisy writes n opportunities into ws in one statement: record i has
// id rec_<i, 8 digits>, name "deal i", amount i, stage Prospecting. The
// workspace's record count is left alone; its plan has no cap.
func seedNoisy(ctx context.Context, st *store.Store, ws string, n int) error {
	now := time.Now().UTC()
	if st.Dialect() == store.DialectSQLite {
		_, err := st.DB().ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
			INSERT INTO records (id, workspace_id, object, version, fields, created_at, updated_at)
			SELECT printf('rec_%08d', i), ?, 'opportunity', 1,
				json_object('name', 'deal ' || i, 'amount', i, 'stage', 'Prospecting'), ?, ?
			FROM n`, n, ws, now, now)
		return err
	}
	_, err := st.DB().ExecContext(ctx, `INSERT INTO records (id, workspace_id, object, version, fields, created_at, updated_at)
		SELECT 'rec_' || lpad(i::text, 8, '0'), ?, 'opportunity', 1,
			jsonb_build_object('name', 'deal ' || i, 'amount', i, 'stage', 'Prospecting'), ?, ?
		FROM generate_series(1, ?) AS i`, ws, now, now, n)
	if err == nil {
		_, err = st.DB().ExecContext(ctx, "ANALYZE records")
	}
	return err
}
