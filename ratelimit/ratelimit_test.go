package ratelimit_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sethvargo/go-limiter"
	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/ratelimit"
	"github.com/smartlite/crmkit/records"
)

// keyFromHeader reads the caller's key id and plan from test headers.
func keyFromHeader(r *http.Request) (string, string, bool) {
	id := r.Header.Get("X-Key-ID")
	return id, r.Header.Get("X-Plan"), id != ""
}

func newLimiter(tb testing.TB, cfg ratelimit.Config) *ratelimit.Limiter {
	tb.Helper()
	if cfg.Key == nil {
		cfg.Key = keyFromHeader
	}
	l, err := ratelimit.New(cfg)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = l.Close(context.Background()) })
	return l
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })

type result struct {
	status int
	header http.Header
	body   []byte
}

func do(tb testing.TB, client *http.Client, url, id, plan string) result {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(tb, err)
	req.Header.Set("X-Key-ID", id)
	req.Header.Set("X-Plan", plan)
	resp, err := client.Do(req)
	require.NoError(tb, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	return result{resp.StatusCode, resp.Header, body}
}

var (
	rateLimitRe = regexp.MustCompile(`^"([a-z]+)";r=(\d+);t=(\d+)$`)
	policyRe    = regexp.MustCompile(`^"([a-z]+)";q=(\d+);w=60$`)
)

// checkHeaders asserts every rate limit header is present and consistent.
func checkHeaders(tb testing.TB, h http.Header, plan string, limit int) {
	tb.Helper()
	m := policyRe.FindStringSubmatch(h.Get("RateLimit-Policy"))
	require.NotNil(tb, m, "RateLimit-Policy %q", h.Get("RateLimit-Policy"))
	require.Equal(tb, plan, m[1])
	require.Equal(tb, strconv.Itoa(limit), m[2])
	m = rateLimitRe.FindStringSubmatch(h.Get("RateLimit"))
	require.NotNil(tb, m, "RateLimit %q", h.Get("RateLimit"))
	require.Equal(tb, plan, m[1])
	require.Equal(tb, h.Get("X-RateLimit-Remaining"), m[2])
	require.LessOrEqual(tb, atoi(tb, m[3]), 60)
	require.Equal(tb, strconv.Itoa(limit), h.Get("X-RateLimit-Limit"))
	reset := atoi(tb, h.Get("X-RateLimit-Reset"))
	now := int(time.Now().Unix())
	require.GreaterOrEqual(tb, reset, now-1)
	require.LessOrEqual(tb, reset, now+61)
}

func atoi(tb testing.TB, s string) int {
	tb.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(tb, err, "%q", s)
	return n
}

// checkLimited asserts a 429 is the documented one.
func checkLimited(tb testing.TB, r result) {
	tb.Helper()
	require.Equal(tb, http.StatusTooManyRequests, r.status)
	require.GreaterOrEqual(tb, atoi(tb, r.header.Get("Retry-After")), 1)
	require.Equal(tb, "application/problem+json", r.header.Get("Content-Type"))
	var p struct {
		Code   string `json:"code"`
		Status int    `json:"status"`
	}
	require.NoError(tb, json.Unmarshal(r.body, &p))
	require.Equal(tb, "rate_limited", p.Code)
	require.Equal(tb, http.StatusTooManyRequests, p.Status)
}

// hammer sends n concurrent requests for one key to the urls in turn.
func hammer(tb testing.TB, n int, urls []string, id, plan string) []result {
	tb.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	results := make([]result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			results[i] = do(tb, client, urls[i%len(urls)], id, plan)
		})
	}
	close(start)
	wg.Wait()
	return results
}

func tally(tb testing.TB, results []result, plan string, limit int) (ok int) {
	tb.Helper()
	for _, r := range results {
		checkHeaders(tb, r.header, plan, limit)
		if r.status == http.StatusOK {
			ok++
			continue
		}
		checkLimited(tb, r)
	}
	return ok
}

func TestConcurrentStarterKey(t *testing.T) {
	l := newLimiter(t, ratelimit.Config{})
	srv := httptest.NewServer(l.Middleware(okHandler))
	defer srv.Close()

	results := hammer(t, 200, []string{srv.URL}, "key_starter", records.PlanStarter)
	require.Equal(t, 60, tally(t, results, "starter", 60))

	// Another key has its own bucket.
	r := do(t, http.DefaultClient, srv.URL, "key_other", records.PlanStarter)
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "59", r.header.Get("X-RateLimit-Remaining"))
}

func TestHeaders(t *testing.T) {
	l := newLimiter(t, ratelimit.Config{Limits: map[string]uint64{"starter": 2}})
	srv := httptest.NewServer(l.Middleware(okHandler))
	defer srv.Close()

	for i, want := range []struct {
		status    int
		remaining string
	}{{200, "1"}, {200, "0"}, {429, "0"}, {429, "0"}} {
		r := do(t, http.DefaultClient, srv.URL, "key_h", "starter")
		require.Equal(t, want.status, r.status, "request %d", i)
		checkHeaders(t, r.header, "starter", 2)
		require.Equal(t, want.remaining, r.header.Get("X-RateLimit-Remaining"))
		if r.status == http.StatusOK {
			require.Equal(t, "ok", string(r.body))
			require.Empty(t, r.header.Get("Retry-After"))
		} else {
			checkLimited(t, r)
		}
	}
}

func TestPlanChangeWithoutRestart(t *testing.T) {
	var plan atomic.Value
	plan.Store(records.PlanStarter)
	l := newLimiter(t, ratelimit.Config{Key: func(r *http.Request) (string, string, bool) {
		return "key_upgrade", plan.Load().(string), true
	}})
	srv := httptest.NewServer(l.Middleware(okHandler))
	defer srv.Close()

	results := hammer(t, 61, []string{srv.URL}, "", "")
	require.Equal(t, 60, tally(t, results, "starter", 60))

	// The workspace upgrades; the very next request counts against Pro.
	plan.Store(records.PlanPro)
	r := do(t, http.DefaultClient, srv.URL, "", "")
	require.Equal(t, http.StatusOK, r.status)
	checkHeaders(t, r.header, "pro", 600)
	require.Equal(t, "599", r.header.Get("X-RateLimit-Remaining"))

	// And a downgrade back finds the Starter bucket still spent.
	plan.Store(records.PlanStarter)
	checkLimited(t, do(t, http.DefaultClient, srv.URL, "", ""))
}

func TestPlans(t *testing.T) {
	l := newLimiter(t, ratelimit.Config{})
	h := l.Middleware(okHandler)
	tests := []struct {
		plan, policy string
		limit        int
	}{
		{"starter", `"starter";q=60;w=60`, 60},
		{"pro", `"pro";q=600;w=60`, 600},
		{"enterprise", `"enterprise";q=6000;w=60`, 6000},
		{"unheard-of", `"starter";q=60;w=60`, 60},
		{"", `"starter";q=60;w=60`, 60},
	}
	for _, tt := range tests {
		t.Run(tt.plan, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.Header.Set("X-Key-ID", "key_plan_"+tt.plan)
			req.Header.Set("X-Plan", tt.plan)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, http.StatusOK, rec.Code)
			require.Equal(t, tt.policy, rec.Header().Get("RateLimit-Policy"))
			require.Equal(t, strconv.Itoa(tt.limit), rec.Header().Get("X-RateLimit-Limit"))
		})
	}
}

func TestUnauthenticatedPassesThrough(t *testing.T) {
	l := newLimiter(t, ratelimit.Config{})
	rec := httptest.NewRecorder()
	l.Middleware(okHandler).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Empty(t, rec.Header().Get("RateLimit"))
}

// failingStore fails every call, as an unreachable Redis would.
type failingStore struct{ limiter.Store }

func (failingStore) Take(context.Context, string) (uint64, uint64, uint64, bool, error) {
	return 0, 0, 0, false, errors.New("connection refused")
}
func (failingStore) Close(context.Context) error { return nil }

func TestStoreFailure(t *testing.T) {
	newStore := func(uint64, time.Duration) (limiter.Store, error) { return failingStore{}, nil }
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("X-Key-ID", "key_f")

	closed := newLimiter(t, ratelimit.Config{NewStore: newStore})
	rec := httptest.NewRecorder()
	closed.Middleware(okHandler).ServeHTTP(rec, req)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Contains(t, rec.Body.String(), `"code":"rate_limit_unavailable"`)

	open := newLimiter(t, ratelimit.Config{NewStore: newStore, FailOpen: true})
	rec = httptest.NewRecorder()
	open.Middleware(okHandler).ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code)

	_, err := closed.Take(context.Background(), "key_f", "pro")
	require.ErrorIs(t, err, ratelimit.ErrUnavailable)
}

func TestConfig(t *testing.T) {
	key := func(*http.Request) (string, string, bool) { return "", "", false }
	tests := []struct {
		name string
		cfg  ratelimit.Config
	}{
		{"no key func", ratelimit.Config{}},
		{"zero limit", ratelimit.Config{Key: key, Limits: map[string]uint64{"starter": 0}}},
		{"quote in plan", ratelimit.Config{Key: key, Limits: map[string]uint64{"starter": 1, `a"b`: 1}}},
		{"default plan without limit", ratelimit.Config{Key: key, Limits: map[string]uint64{"gold": 1}}},
		{"fractional window", ratelimit.Config{Key: key, Window: 1500 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ratelimit.New(tt.cfg)
			require.Error(t, err)
		})
	}
}

func TestClose(t *testing.T) {
	l, err := ratelimit.New(ratelimit.Config{Key: keyFromHeader})
	require.NoError(t, err)
	_, err = l.Take(context.Background(), "key_c", "starter")
	require.NoError(t, err)
	require.NoError(t, l.Close(context.Background()))
	_, err = l.Take(context.Background(), "key_c", "starter")
	require.ErrorIs(t, err, ratelimit.ErrUnavailable)
}
