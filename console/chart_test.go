package console_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/console"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// logOnly hides the delivery service's DeliveryCounter, so the chart
// reads the log as it does for a Webhooks that cannot count.
type logOnly struct{ console.Webhooks }

var _ console.DeliveryCounter = (*outbound.Service)(nil)

// endpointPage renders an endpoint's page with a console over keys and
// hooks whose clock stands at now, for a host-authenticated person.
func endpointPage(tb testing.TB, keys console.Keys, hooks console.Webhooks, ws, id string, now time.Time) string {
	tb.Helper()
	h, err := console.New(console.Config{Keys: keys, Webhooks: hooks, Authenticator: headerAuth{}, Clock: func() time.Time { return now }})
	require.NoError(tb, err)
	r := httptest.NewRequest(http.MethodGet, "/webhooks/"+id, nil)
	r.Header.Set("X-Test-Workspace", ws)
	r.Header.Set("X-Test-Session", "chart")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	require.Equal(tb, http.StatusOK, rec.Code)
	return rec.Body.String()
}

// TestChartCounted checks that the chart drawn from a DeliveryCounter's
// counts is the one drawn from reading the log, on both databases.
func TestChartCounted(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st, err := store.Open(ctx, dsn)
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		keys, err := apikey.New(apikey.Config{Store: st})
		require.NoError(t, err)
		hooks, err := outbound.New(outbound.Config{Store: st, AllowPrivate: true})
		require.NoError(t, err)
		w := &records.Workspace{Name: "Chart", Plan: "enterprise"}
		require.NoError(t, st.CreateWorkspace(ctx, w))
		e, _, err := hooks.Create(ctx, w.ID, outbound.EndpointInput{URL: "http://127.0.0.1:9/hooks", Events: []string{records.EventUpdated}})
		require.NoError(t, err)
		now := time.Now().UTC()
		// About 960 of them in the chart's 24 hours, some before.
		seedDeliveries(t, st, w.ID, e.ID, 1200, 30*time.Hour, now)

		chartOf := func(hooks console.Webhooks) string {
			t.Helper()
			body := endpointPage(t, keys, hooks, w.ID, e.ID, now)
			i, j := strings.Index(body, `<figure class="chart">`), strings.Index(body, `</figure>`)
			require.True(t, i >= 0 && j > i)
			return body[i:j]
		}
		read := chartOf(logOnly{hooks})
		require.NotContains(t, read, "only the latest ones are counted")
		require.Regexp(t, `9[0-9]{2} deliveries, [0-9]+ failed`, read)
		require.Equal(t, read, chartOf(hooks), "counted by the store, the chart is the one read from the log")
	})
}

// TestChartCapped checks that a chart read from the log says when it left
// deliveries out, and that a counted one leaves none out.
func TestChartCapped(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, testdb.SQLiteDSN(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	keys, err := apikey.New(apikey.Config{Store: st})
	require.NoError(t, err)
	hooks, err := outbound.New(outbound.Config{Store: st, AllowPrivate: true})
	require.NoError(t, err)
	w := &records.Workspace{Name: "Chart", Plan: "enterprise"}
	require.NoError(t, st.CreateWorkspace(ctx, w))
	e, _, err := hooks.Create(ctx, w.ID, outbound.EndpointInput{URL: "http://127.0.0.1:9/hooks", Events: []string{records.EventUpdated}})
	require.NoError(t, err)
	now := time.Now().UTC()
	seedDeliveries(t, st, w.ID, e.ID, 2500, 20*time.Hour, now)

	read := endpointPage(t, keys, logOnly{hooks}, w.ID, e.ID, now)
	require.Contains(t, read, "2000 deliveries, ")
	require.Contains(t, read, "(only the latest ones are counted)")
	counted := endpointPage(t, keys, hooks, w.ID, e.ID, now)
	require.Contains(t, counted, "2500 deliveries, ")
	require.NotContains(t, counted, "only the latest ones are counted")
}
