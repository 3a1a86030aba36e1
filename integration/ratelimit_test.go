package integration

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
)

// burst fires n concurrent GETs with key and answers the statuses counted,
// and one 429 response.
func (e *env) burst(tb testing.TB, key string, n int) (map[int]int, response) {
	tb.Helper()
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		counts   = map[int]int{}
		limited  response
		failures []error
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/records/opportunity?limit=1", nil)
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := e.srv.Client().Do(req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures = append(failures, err)
				return
			}
			_ = resp.Body.Close()
			counts[resp.StatusCode]++
			if resp.StatusCode == http.StatusTooManyRequests {
				limited = response{status: resp.StatusCode, header: resp.Header}
			}
		})
	}
	close(start)
	wg.Wait()
	require.Empty(tb, failures)
	return counts, limited
}

func TestRateLimit(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, Config{})
		ws, _ := e.workspace(t, "starter")
		key := e.key(t, ws, apikey.ScopeRead)

		t.Run("200 concurrent requests on starter: exactly 60 pass", func(t *testing.T) {
			// Many connections at once; the default transport keeps only 2 idle.
			e.srv.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = 200
			counts, limited := e.burst(t, key, 200)
			require.Equal(t, map[int]int{200: 60, 429: 140}, counts)
			retry, err := strconv.Atoi(limited.header.Get("Retry-After"))
			require.NoError(t, err)
			require.GreaterOrEqual(t, retry, 1)
			require.Equal(t, "0", limited.header.Get("X-RateLimit-Remaining"))
			require.Equal(t, "60", limited.header.Get("X-RateLimit-Limit"))
			r := e.do(t, "GET", "/api/v1/records/opportunity", key, nil)
			require.Equal(t, http.StatusTooManyRequests, r.status)
			require.Equal(t, "rate_limited", r.code(t))
		})

		t.Run("headers on every authenticated response", func(t *testing.T) {
			other := e.key(t, ws, apikey.ScopeRead)
			for _, path := range []string{"/api/v1/records/opportunity", "/api/v1/keys", "/api/v1/records/nothing"} {
				r := e.do(t, "GET", path, other, nil)
				require.NotEqual(t, http.StatusTooManyRequests, r.status)
				for _, h := range []string{"RateLimit-Policy", "RateLimit", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
					require.NotEmpty(t, r.header.Get(h), "%s on %s", h, path)
				}
				require.Equal(t, `"starter";q=60;w=60`, r.header.Get("RateLimit-Policy"))
			}
			// Keys are limited apart: another key of the workspace still passes.
			require.Equal(t, http.StatusOK, e.do(t, "GET", "/api/v1/records/opportunity", e.key(t, ws, apikey.ScopeRead), nil).status)
		})

		t.Run("a plan change applies without a restart", func(t *testing.T) {
			require.Equal(t, http.StatusTooManyRequests, e.do(t, "GET", "/api/v1/records/opportunity", key, nil).status)
			require.NoError(t, e.svc.SetPlan(context.Background(), ws, "pro"))
			r := e.do(t, "GET", "/api/v1/records/opportunity", key, nil)
			require.Equal(t, http.StatusOK, r.status)
			require.Equal(t, "600", r.header.Get("X-RateLimit-Limit"))
		})
	})
}

// TestPlanChangeWithoutInvalidate: another replica's plan change is seen
// once the plan cache's TTL has passed.
func TestPlanChangeWithoutInvalidate(t *testing.T) {
	e := newEnv(t, testdb.SQLiteDSN(t), Config{PlanCacheTTL: 20 * time.Millisecond})
	ws, _ := e.workspace(t, "starter")
	key := e.key(t, ws, apikey.ScopeRead)
	r := e.do(t, "GET", "/api/v1/records/opportunity", key, nil)
	require.Equal(t, "60", r.header.Get("X-RateLimit-Limit"))
	require.NoError(t, e.st.SetWorkspacePlan(context.Background(), ws, "enterprise"))
	require.Eventually(t, func() bool {
		r := e.do(t, "GET", "/api/v1/records/opportunity", key, nil)
		return r.header.Get("X-RateLimit-Limit") == "6000"
	}, 10*time.Second, 10*time.Millisecond)
}

// TestSetPlanMovesCapAndLimitTogether: one plan value carries the record cap
// and the rate limit, and one call moves a workspace between plans; the
// very next request sees both.
func TestSetPlanMovesCapAndLimitTogether(t *testing.T) {
	e := newEnv(t, testdb.SQLiteDSN(t), Config{Plans: []records.Plan{
		{Name: records.PlanStarter, MaxRecords: 2, RequestsPerMinute: 60},
		{Name: records.PlanPro, MaxRecords: 3, RequestsPerMinute: 600},
	}})
	ws, _ := e.workspace(t, records.PlanStarter)
	key := e.key(t, ws, apikey.ScopeRead, apikey.ScopeWrite)
	create := func() response {
		return e.do(t, "POST", "/api/v1/records/account", key, map[string]any{"fields": map[string]any{"name": "Acme"}})
	}
	for range 2 {
		require.Equal(t, http.StatusCreated, create().status)
	}
	r := create()
	require.Equal(t, http.StatusForbidden, r.status)
	require.Equal(t, "plan_limit_exceeded", r.code(t))
	require.Equal(t, "60", r.header.Get("X-RateLimit-Limit"))

	require.NoError(t, e.svc.SetPlan(context.Background(), ws, records.PlanPro))
	r = create()
	require.Equal(t, http.StatusCreated, r.status)
	require.Equal(t, "600", r.header.Get("X-RateLimit-Limit"))
	r = create()
	require.Equal(t, http.StatusForbidden, r.status, "the Pro cap is 3")
	require.Equal(t, "plan_limit_exceeded", r.code(t))

	var verr *records.ValidationError
	require.ErrorAs(t, e.svc.SetPlan(context.Background(), ws, "platinum"), &verr)
}
