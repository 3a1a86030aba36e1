package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// capPlans are the default plans with starter's key and endpoint caps made
// small enough to reach in a test.
func capPlans(keys, endpoints int) []records.Plan {
	plans := records.DefaultPlans()
	plans[0].MaxAPIKeys, plans[0].MaxWebhookEndpoints = keys, endpoints
	return plans
}

// concurrently sends n copies of a request at once and answers the
// responses.
func (e *env) concurrently(tb testing.TB, n int, method, path, key string, body any) []response {
	tb.Helper()
	out := make([]response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { out[i] = e.do(tb, method, path, key, body) })
	}
	wg.Wait()
	return out
}

// TestPlanCapsOnKeysAndEndpoints: a workspace's plan caps its API keys and
// webhook endpoints; creates past the cap answer 403 plan_limit_exceeded
// naming what, exactly at the cap under concurrent creates.
func TestPlanCapsOnKeysAndEndpoints(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, Config{Plans: capPlans(3, 2), AllowPrivateWebhooks: true})
		e.srv.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = 20
		ws, admin := e.workspace(t, records.PlanStarter) // its admin key is the first of 3

		count := func(rs []response, limit string) (created int) {
			t.Helper()
			for _, r := range rs {
				if r.status == http.StatusCreated {
					created++
					continue
				}
				require.Equal(t, http.StatusForbidden, r.status, "body: %s", r.body)
				require.Equal(t, "plan_limit_exceeded", r.code(t))
				require.Equal(t, limit, r.json(t)["limit"])
				require.Contains(t, r.json(t)["detail"], "starter plan allows")
			}
			return created
		}

		keys := e.concurrently(t, 10, "POST", "/api/v1/keys", admin, map[string]any{"name": "sync", "scopes": []string{"READ"}})
		require.Equal(t, 2, count(keys, "api_keys"))

		hooks := e.concurrently(t, 10, "POST", "/api/v1/webhooks", admin,
			map[string]any{"url": "http://127.0.0.1:9/hook", "events": []string{"*"}})
		require.Equal(t, 2, count(hooks, "webhook_endpoints"))

		t.Run("a revoked key and a deleted endpoint leave room", func(t *testing.T) {
			var id string
			for _, r := range keys {
				if r.status == http.StatusCreated {
					id = r.json(t)["id"].(string)
				}
			}
			require.Less(t, e.do(t, "DELETE", "/api/v1/keys/"+id, admin, nil).status, 300)
			require.Equal(t, 1, count([]response{e.do(t, "POST", "/api/v1/keys", admin, map[string]any{"name": "again", "scopes": []string{"READ"}})}, ""))

			for _, r := range hooks {
				if r.status == http.StatusCreated {
					id = r.json(t)["id"].(string)
				}
			}
			require.Equal(t, http.StatusNoContent, e.do(t, "DELETE", "/api/v1/webhooks/"+id, admin, nil).status)
			require.Equal(t, 1, count([]response{e.do(t, "POST", "/api/v1/webhooks", admin,
				map[string]any{"url": "http://127.0.0.1:9/hook", "events": []string{"*"}})}, ""))
		})

		t.Run("other workspaces and plans are apart", func(t *testing.T) {
			_, other := e.workspace(t, records.PlanStarter)
			r := e.do(t, "POST", "/api/v1/keys", other, map[string]any{"name": "sync", "scopes": []string{"READ"}})
			require.Equal(t, http.StatusCreated, r.status)
			require.NoError(t, e.svc.SetPlan(t.Context(), ws, records.PlanPro))
			r = e.do(t, "POST", "/api/v1/keys", admin, map[string]any{"name": "more", "scopes": []string{"READ"}})
			require.Equal(t, http.StatusCreated, r.status, "pro allows more keys: %s", r.body)
		})
	})
}

// TestWorkspaceRateLimit: the keys of a workspace share its plan's
// workspace limit, so making keys does not multiply a key's rate; the
// headers and the 429 say which limit applied.
func TestWorkspaceRateLimit(t *testing.T) {
	e := newEnv(t, testdb.SQLiteDSN(t), Config{})
	e.srv.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = 100
	ws, _ := e.workspace(t, records.PlanStarter)
	first, second, third := e.key(t, ws, apikey.ScopeRead), e.key(t, ws, apikey.ScopeRead), e.key(t, ws, apikey.ScopeRead)

	counts, _ := e.burst(t, first, 60)
	require.Equal(t, map[int]int{200: 60}, counts)
	counts, _ = e.burst(t, second, 60)
	require.Equal(t, map[int]int{200: 60}, counts, "starter's workspace limit is 120 a minute")
	counts, limited := e.burst(t, third, 10)
	require.Equal(t, map[int]int{429: 10}, counts, "a third key adds nothing")
	require.Equal(t, "workspace", limited.header.Get("X-RateLimit-Scope"))
	require.Equal(t, "120", limited.header.Get("X-RateLimit-Limit"))
	require.Contains(t, limited.header.Values("RateLimit-Policy"), `"starter-workspace";q=120;w=60`)

	r := e.do(t, "GET", "/api/v1/records/opportunity", third, nil)
	require.Equal(t, http.StatusTooManyRequests, r.status)
	require.Equal(t, "workspace", r.json(t)["limit"])
	r = e.do(t, "GET", "/api/v1/records/opportunity", first, nil)
	require.Equal(t, "key", r.json(t)["limit"], "the first key's own limit refuses it first")

	_, other := e.workspace(t, records.PlanStarter)
	r = e.do(t, "GET", "/api/v1/records/opportunity", other, nil)
	require.Equal(t, http.StatusOK, r.status, "another workspace has its own budget")
	require.Equal(t, "key", r.header.Get("X-RateLimit-Scope"))
}

// TestNoisyNeighbour: while one workspace floods (filtered lists over
// 20,000 records from 20 clients at once, and updates each delivered to
// 200 slow endpoints), /healthz answers 200 throughout, the flood's lists
// answer 200 or 503 with Retry-After (never a 5xx of another kind), and
// another workspace's deliveries arrive within a generous bound of their
// writes being sent. The figures under a bigger flood are the load tool's
// noisy scenario.
func TestNoisyNeighbour(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		plans := append(records.DefaultPlans(), records.Plan{Name: "unmetered", RequestsPerMinute: 1 << 40})
		e := newEnv(t, dsn, Config{Plans: plans, AllowPrivateWebhooks: true})
		require.NoError(t, e.svc.Start(ctx))
		e.srv.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = 100
		noisy, noisyKey := e.workspace(t, "unmetered")
		quiet, quietKey := e.workspace(t, "unmetered")

		now := time.Now().UTC()
		seed := `INSERT INTO records (id, workspace_id, object, version, fields, created_at, updated_at)
			SELECT 'rec_' || lpad(i::text, 8, '0'), ?, 'opportunity', 1,
				jsonb_build_object('name', 'deal ' || i, 'amount', i, 'stage', 'Prospecting'), ?, ?
			FROM generate_series(1, 20000) AS i`
		args := []any{noisy, now, now}
		if e.st.Dialect() == store.DialectSQLite {
			seed = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
				INSERT INTO records (id, workspace_id, object, version, fields, created_at, updated_at)
				SELECT printf('rec_%08d', i), ?, 'opportunity', 1,
					json_object('name', 'deal ' || i, 'amount', i, 'stage', 'Prospecting'), ?, ?
				FROM n`
		}
		_, err := e.st.DB().ExecContext(ctx, seed, args...)
		require.NoError(t, err)

		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(50 * time.Millisecond)
			w.WriteHeader(http.StatusNoContent)
		}))
		t.Cleanup(slow.Close)
		var mu sync.Mutex
		arrived := map[int64]time.Time{}
		fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var ev struct {
				Data struct {
					Record struct {
						Version int64 `json:"version"`
					} `json:"record"`
				} `json:"data"`
			}
			_ = json.NewDecoder(r.Body).Decode(&ev)
			mu.Lock()
			if _, ok := arrived[ev.Data.Record.Version]; !ok {
				arrived[ev.Data.Record.Version] = time.Now()
			}
			mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		}))
		t.Cleanup(fast.Close)
		// Straight into the store, in one transaction: registration's checks
		// and 200 commits cost a minute under the race detector, and are not
		// what this test is about.
		require.NoError(t, e.st.InTx(ctx, func(ctx context.Context, _ records.Tx) error {
			for i := range 200 {
				at := time.Now()
				if err := e.st.CreateEndpoint(ctx, &outbound.Endpoint{ID: records.NewID("whk"), Workspace: noisy,
					URL: slow.URL + "/" + strconv.Itoa(i), Events: []string{"record.updated"}, Objects: []string{},
					Enabled: true, Secret: "whsec_c2VjcmV0", CreatedAt: at, UpdatedAt: at}); err != nil {
					return err
				}
			}
			return nil
		}))
		_, _, err = e.svc.Webhooks().Create(ctx, quiet, outbound.EndpointInput{URL: fast.URL, Events: []string{"record.updated"}})
		require.NoError(t, err)
		rec := e.create(t, quietKey, "opportunity", map[string]any{"name": "Quiet deal", "amount": 1})

		flood, stop := context.WithCancel(ctx)
		defer stop()
		var wg sync.WaitGroup
		var fmu sync.Mutex
		lists, health := map[int]int{}, map[int]int{}
		get := func(path, key string) (int, http.Header) {
			req, _ := http.NewRequestWithContext(flood, "GET", e.srv.URL+path, nil)
			if key != "" {
				req.Header.Set("Authorization", "Bearer "+key)
			}
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				return 0, nil
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			return resp.StatusCode, resp.Header
		}
		for range 20 {
			wg.Go(func() {
				for flood.Err() == nil {
					code, h := get("/api/v1/records/opportunity?filter[name]=deal+"+strconv.Itoa(rand.IntN(20000)+1), noisyKey)
					if flood.Err() != nil {
						return
					}
					if code == http.StatusServiceUnavailable {
						require.NotEmpty(t, h.Get("Retry-After"))
					}
					fmu.Lock()
					lists[code]++
					fmu.Unlock()
				}
			})
		}
		wg.Go(func() {
			for i := 0; flood.Err() == nil; i++ {
				req, _ := http.NewRequestWithContext(flood, "PATCH", e.srv.URL+"/api/v1/records/opportunity/"+fmt.Sprintf("rec_%08d", i+1),
					strings.NewReader(`{"fields":{"amount":7}}`))
				req.Header.Set("Authorization", "Bearer "+noisyKey)
				req.Header.Set("Content-Type", "application/json")
				if resp, err := e.srv.Client().Do(req); err == nil {
					_ = resp.Body.Close()
				}
				select {
				case <-flood.Done():
				case <-time.After(500 * time.Millisecond):
				}
			}
		})
		wg.Go(func() {
			for flood.Err() == nil {
				code, _ := get("/healthz", "")
				if flood.Err() != nil {
					return
				}
				fmu.Lock()
				health[code]++
				fmu.Unlock()
				time.Sleep(50 * time.Millisecond)
			}
		})

		// The quiet workspace writes while the flood goes on.
		time.Sleep(time.Second)
		sent := map[int64]time.Time{}
		for i := range 10 {
			t0 := time.Now()
			r := e.do(t, "PATCH", "/api/v1/records/opportunity/"+rec["id"].(string), quietKey, map[string]any{"fields": map[string]any{"amount": i + 2}})
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			sent[int64(r.json(t)["version"].(float64))] = t0
			time.Sleep(200 * time.Millisecond)
		}
		// Generous: under the race detector SQLite runs many times slower
		// (without it, these deliveries arrive within a second).
		const bound = 20 * time.Second
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(arrived) >= len(sent)
		}, 2*bound, 20*time.Millisecond, "the quiet workspace's deliveries arrive during the flood")
		stop()
		wg.Wait()

		mu.Lock()
		for v, t0 := range sent {
			require.Less(t, arrived[v].Sub(t0), bound, "delivery of version %d", v)
		}
		mu.Unlock()
		require.Equal(t, []int{http.StatusOK}, slices.Collect(maps.Keys(health)), "healthz answers: %v", health)
		for code := range lists {
			require.Contains(t, []int{http.StatusOK, http.StatusServiceUnavailable}, code, "flood's lists: %v", lists)
		}
		require.Positive(t, lists[http.StatusOK], "the flood's lists are served, a few at a time: %v", lists)
		t.Logf("healthz %v; flood's lists %v", health, lists)
	})
}
