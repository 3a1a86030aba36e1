package integration

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/metrics"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// scrape reads a Prometheus text exposition into series → value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		out[line[:i]] = v
	}
	return out
}

// TestMetrics scrapes /metrics after real traffic and checks each counter
// moved by what the traffic did: requests by route pattern and status,
// 429s by plan, deliveries by outcome with their latency, River's finished
// jobs and the queue depth gauge.
func TestMetrics(t *testing.T) {
	m := metrics.New()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	scraper := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer scraper.Close()

	e := newEnv(t, testdb.SQLiteDSN(t), Config{Metrics: m, AllowPrivateWebhooks: true,
		Plans:    []records.Plan{{Name: records.PlanStarter, RequestsPerMinute: 3}, {Name: records.PlanEnterprise, RequestsPerMinute: 6000}},
		Webhooks: outbound.Config{Schedule: []time.Duration{20 * time.Millisecond}, Jitter: -1}})
	before := scrape(t, scraper.URL)

	ok := newHookReceiver(t)
	failing := newHookReceiver(t)
	failing.fail = func(int) int { return http.StatusInternalServerError }
	for _, url := range []string{ok.URL, failing.URL} {
		r := e.do(t, "POST", "/api/v1/webhooks", e.admin, map[string]any{"url": url, "events": []string{"record.created"}})
		require.Equal(t, http.StatusCreated, r.status)
	}
	rec := e.create(t, e.admin, "account", map[string]any{"name": "Acme"})
	// Jobs are not worked yet: the event's fan-out job waits in the queue.
	require.Equal(t, 1.0, scrape(t, scraper.URL)[`crmkit_job_queue_depth{kind="crmkit_event_fanout",state="available"}`])
	require.NoError(t, e.svc.Start(context.Background()))
	for range 4 {
		require.Equal(t, http.StatusOK, e.do(t, "GET", "/api/v1/records/account/"+rec["id"].(string), e.admin, nil).status)
	}
	require.Equal(t, http.StatusNotFound, e.do(t, "GET", "/api/v1/records/account/rec_nothing", e.admin, nil).status)
	require.Equal(t, http.StatusNotFound, e.do(t, "GET", "/no/such/route", "", nil).status)

	ws, _ := e.workspace(t, records.PlanStarter)
	starter := e.key(t, ws, apikey.ScopeRead)
	for i := range 5 {
		r := e.do(t, "GET", "/api/v1/records/account", starter, nil)
		if i < 3 {
			require.Equal(t, http.StatusOK, r.status)
		} else {
			require.Equal(t, http.StatusTooManyRequests, r.status)
		}
	}

	// One delivery succeeds; the other fails its first try and its retry.
	require.Eventually(t, func() bool {
		got := scrape(t, scraper.URL)
		return got[`crmkit_webhook_deliveries_total{outcome="succeeded"}`] == 1 &&
			got[`crmkit_webhook_deliveries_total{outcome="failed"}`] == 1
	}, 10*time.Second, 20*time.Millisecond)

	got := scrape(t, scraper.URL)
	delta := func(series string) float64 { return got[series] - before[series] }
	require.Equal(t, 4.0, delta(`crmkit_http_requests_total{method="GET",route="/api/v1/records/{object}/{id}",status="200"}`))
	require.Equal(t, 1.0, delta(`crmkit_http_requests_total{method="GET",route="/api/v1/records/{object}/{id}",status="404"}`))
	require.Equal(t, 1.0, delta(`crmkit_http_requests_total{method="POST",route="/api/v1/records/{object}",status="201"}`))
	require.Equal(t, 2.0, delta(`crmkit_http_requests_total{method="POST",route="/api/v1/webhooks",status="201"}`))
	require.Equal(t, 3.0, delta(`crmkit_http_requests_total{method="GET",route="/api/v1/records/{object}",status="200"}`))
	require.Equal(t, 2.0, delta(`crmkit_http_requests_total{method="GET",route="/api/v1/records/{object}",status="429"}`))
	require.Equal(t, 1.0, delta(`crmkit_http_requests_total{method="GET",route="/",status="404"}`), "unmatched paths share one label")
	for series := range got {
		require.NotContains(t, series, "rec_", "no raw path in a label")
	}
	require.Equal(t, 2.0, delta(`crmkit_rate_limited_requests_total{plan="starter"}`))
	require.Equal(t, 1.0, delta(`crmkit_webhook_deliveries_total{outcome="retrying"}`))
	require.Equal(t, 1.0, delta(`crmkit_webhook_delivery_latency_seconds_count`))
	require.Greater(t, got[`crmkit_webhook_delivery_latency_seconds_sum`], 0.0)
	// River reports a finished job on its event stream a moment after the
	// job's effects are visible.
	require.Eventually(t, func() bool {
		return scrape(t, scraper.URL)[`crmkit_jobs_total{kind="crmkit_event_fanout",outcome="completed"}`]-
			before[`crmkit_jobs_total{kind="crmkit_event_fanout",outcome="completed"}`] >= 1
	}, 10*time.Second, 20*time.Millisecond)

	// The paths that ingest records: their counters move by what they did.
	before = got
	// Inbound: one Shopify order accepted and processed, the same delivery
	// again (a duplicate), one refused for its signature (no status).
	src := e.createSource(t, map[string]any{"name": "Shop", "kind": "shopify", "secret": shopifySecret, "mapping": shopifyMapping})
	order := shopifyOrder(t)
	r := e.postShopify(t, src["id"].(string), shopifySecret, "wh-1", order)
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	e.waitEvent(t, r.json(t)["id"].(string))
	require.Equal(t, http.StatusOK, e.postShopify(t, src["id"].(string), shopifySecret, "wh-1", order).status)
	require.Equal(t, http.StatusUnauthorized, e.postShopify(t, src["id"].(string), "wrong", "wh-2", order).status)

	// Bulk: three rows, one of which fails validation.
	bulkKey := e.key(t, e.ws, apikey.ScopeBulk)
	job := e.bulkJob(t, bulkKey, map[string]any{"object": "account", "operation": "insert", "format": "csv"},
		"name,website\nA,\nB,not a url\nC,\n")
	require.Equal(t, "completed", job["state"])

	got = scrape(t, scraper.URL)
	require.Equal(t, 1.0, delta(`crmkit_inbound_events_total{status="received"}`))
	require.Equal(t, 1.0, delta(`crmkit_inbound_events_total{status="processed"}`))
	require.Equal(t, 1.0, delta(`crmkit_inbound_events_total{status="duplicate"}`))
	require.Equal(t, 2.0, delta(`crmkit_bulk_rows_total{status="succeeded"}`))
	require.Equal(t, 1.0, delta(`crmkit_bulk_rows_total{status="failed"}`))
}
