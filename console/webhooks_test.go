package console_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/console"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/webhook"
	"github.com/smartlite/crmkit/webhook/outbound"
)

func endpointInput(u string) outbound.EndpointInput {
	return outbound.EndpointInput{URL: u, Events: []string{records.EventUpdated}}
}

var (
	secretField  = regexp.MustCompile(`id="secret" class="mono" value="(whsec_[^"]+)"`)
	endpointPath = regexp.MustCompile(`action="/webhooks/(whk_[0-9a-z]+)/test"`)
)

// createEndpoint registers an endpoint for record.updated of opportunities
// that close, through the form, and answers its id and secret.
func createEndpoint(tb testing.TB, b *browser, u string) (id, secret string) {
	tb.Helper()
	b.get("/webhooks/new")
	p := b.post("/webhooks", url.Values{"url": {u}, "events": {records.EventUpdated}, "objects": {"opportunity"},
		"condition_field": {"stage"}, "condition_value": {"Closed Won"}, "description": {"Finance"}})
	require.Equal(tb, http.StatusCreated, p.status, p.body)
	s := secretField.FindStringSubmatch(p.body)
	require.NotNil(tb, s, "the secret is shown")
	m := endpointPath.FindStringSubmatch(p.body)
	require.NotNil(tb, m)
	return m[1], html.UnescapeString(s[1])
}

// logSection answers the delivery log part of an endpoint page.
func logSection(tb testing.TB, body string) string {
	tb.Helper()
	i := strings.Index(body, `<div id="log">`)
	require.GreaterOrEqual(tb, i, 0)
	return body[i:]
}

func TestEndpointForm(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser(t)
	b.signIn(e.admin)
	p := b.get("/webhooks/new")
	for _, label := range []string{`<label for="url">URL</label>`, `<legend>Events</legend>`, `<label for="objects">Objects`,
		`<label for="condition_field">Field</label>`, `<label for="condition_value">Changed to</label>`} {
		require.Contains(t, p.body, label)
	}
	for _, tc := range []struct {
		name   string
		form   url.Values
		errors map[string]string
	}{
		{"nothing", url.Values{}, map[string]string{"url": "url is required", "events": "events is required"}},
		{"unknown object", url.Values{"url": {"http://127.0.0.1:1/x"}, "events": {"record.updated"}, "objects": {"opportunity, widget"}},
			map[string]string{"objects": `there is no object named &#34;widget&#34;`}},
		{"value without field", url.Values{"url": {"http://127.0.0.1:1/x"}, "events": {"record.updated"}, "condition_value": {"Closed Won"}},
			map[string]string{"condition": "a condition needs a field"}},
		{"metadata address", url.Values{"url": {"http://169.254.169.254/latest"}, "events": {"record.created"}},
			map[string]string{"url": "169.254.169.254"}},
		{"not a URL", url.Values{"url": {"ftp://example.com/x"}, "events": {"record.created"}}, map[string]string{"url": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := b.post("/webhooks", tc.form)
			require.Equal(t, http.StatusUnprocessableEntity, p.status)
			for field, msg := range tc.errors {
				require.Regexp(t, `<p class="field-error" id="`+field+`-error">[^<]*`+regexp.QuoteMeta(msg), p.body)
			}
			if v := tc.form.Get("url"); v != "" {
				require.Contains(t, p.body, `value="`+v+`"`, "what was typed is kept")
			}
		})
	}
	eps, err := e.hooks.List(context.Background(), e.ws, "", 10)
	require.NoError(t, err)
	require.Empty(t, eps)
}

func TestWebhooks(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	rv := newReceiver(t)
	b := e.browser(t)
	b.signIn(e.admin)

	id, secret := createEndpoint(t, b, rv.srv.URL+"/hook")
	ep, err := e.hooks.Get(ctx, e.ws, id)
	require.NoError(t, err)
	require.Equal(t, secret, ep.Secret)
	require.Equal(t, []string{"opportunity"}, ep.Objects)
	require.Equal(t, &outbound.Condition{Field: "stage", ChangedTo: "Closed Won"}, ep.Condition)

	p := b.get("/webhooks/" + id)
	require.NotContains(t, html.UnescapeString(p.body), secret, "the secret is shown only once")
	require.Contains(t, p.body, "<code>stage</code> changed to <code>Closed Won</code>")
	require.Contains(t, p.body, "No deliveries yet.")

	// A deal closes: the receiver gets it, signed with the secret shown.
	e.closeDeal(t, e.ws)
	first := e.waitDeliveries(t, e.ws, id, 1)[0]
	require.Equal(t, outbound.StatusSucceeded, first.Status)
	rv.mu.Lock()
	require.NoError(t, webhook.Verify(rv.got[0].Header, rv.bodies[0], []string{secret}))
	rv.mu.Unlock()

	p = b.get("/webhooks/" + id)
	log := logSection(t, p.body)
	require.Contains(t, log, first.ID)
	require.Contains(t, log, "record.updated")
	require.Contains(t, log, "HTTP 200")
	require.Contains(t, log, "X-Receiver: test", "response headers")
	require.Contains(t, log, "thanks", "response body")
	require.Contains(t, p.body, "1 in all, 0 failed", "the chart counts it")

	// The receiver fails: the delivery fails after its retry, with the
	// receiver's answer in the log.
	rv.setStatus(http.StatusInternalServerError)
	e.closeDeal(t, e.ws)
	ds := e.waitDeliveries(t, e.ws, id, 2)
	failed := ds[0]
	require.Equal(t, outbound.StatusFailed, failed.Status)

	p = b.get("/webhooks/" + id + "?status=failed")
	log = logSection(t, p.body)
	require.Contains(t, log, failed.ID)
	require.NotContains(t, log, first.ID, "filtered by status")
	require.Contains(t, log, "HTTP 500")
	require.Contains(t, log, "receiver says no")
	require.Contains(t, log, "2 attempts")
	require.Contains(t, p.body, `<option value="failed" selected>`)
	require.Contains(t, p.body, "2 in all, 1 failed")

	list := b.get("/webhooks")
	require.Contains(t, list.body, rv.srv.URL+"/hook")
	require.Contains(t, list.body, "50% <small>of 2</small>")
	require.Contains(t, list.body, "Failing")

	t.Run("since filter", func(t *testing.T) {
		later := e.clock.Now().UTC().Add(time.Hour).Format("2006-01-02T15:04")
		p := b.get("/webhooks/" + id + "?since=" + later)
		require.Contains(t, logSection(t, p.body), "No deliveries match the filter.")
		earlier := e.clock.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04")
		p = b.get("/webhooks/" + id + "?since=" + earlier)
		require.Contains(t, logSection(t, p.body), failed.ID)
		p = b.get("/webhooks/" + id + "?since=yesterday")
		require.Contains(t, p.body, `id="filter-since-error"`)
	})

	t.Run("send test", func(t *testing.T) {
		p := b.post("/webhooks/"+id+"/test", nil)
		require.Equal(t, http.StatusOK, p.status)
		require.Contains(t, p.body, "Test event failed")
		require.Contains(t, p.body, "HTTP 500")
		rv.setStatus(http.StatusOK)
		p = b.post("/webhooks/"+id+"/test", nil)
		require.Contains(t, p.body, "Test event delivered")
	})

	t.Run("redeliver", func(t *testing.T) {
		before := rv.received()
		p := b.post("/deliveries/"+failed.ID+"/redeliver", nil)
		require.Equal(t, "/deliveries/"+failed.ID, p.url.Path)
		require.Contains(t, p.body, "queued to be sent again")
		require.Eventually(t, func() bool {
			d, err := e.hooks.Delivery(ctx, e.ws, failed.ID)
			return err == nil && d.Status == outbound.StatusSucceeded
		}, waitTimeout, 20*time.Millisecond)
		require.Greater(t, rv.received(), before)
		p = b.get("/deliveries/" + failed.ID)
		require.Contains(t, p.body, "Attempt 3")
		require.Regexp(t, `Attempt 3</strong> · [^·]+ · manual ·\s*<span class="code ok">HTTP 200`, p.body)
	})

	t.Run("replay failed since a time", func(t *testing.T) {
		rv.setStatus(http.StatusServiceUnavailable)
		e.closeDeal(t, e.ws)
		ds := e.waitDeliveries(t, e.ws, id, 3)
		require.Equal(t, outbound.StatusFailed, ds[0].Status)
		rv.setStatus(http.StatusOK)

		p := b.post("/webhooks/"+id+"/replay", url.Values{"since": {"last week"}})
		require.Equal(t, http.StatusUnprocessableEntity, p.status)
		require.Contains(t, p.body, `id="since-error"`)

		since := e.clock.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04")
		p = b.post("/webhooks/"+id+"/replay", url.Values{"since": {since}})
		require.Contains(t, p.body, "The failed deliveries were queued to be sent again.")
		require.Eventually(t, func() bool {
			d, err := e.hooks.Delivery(ctx, e.ws, ds[0].ID)
			return err == nil && d.Status == outbound.StatusSucceeded
		}, waitTimeout, 20*time.Millisecond)
		p = b.post("/webhooks/"+id+"/replay", url.Values{"since": {since}})
		require.Contains(t, p.body, "There were no failed deliveries to send again.")
	})

	t.Run("rotate secret", func(t *testing.T) {
		p := b.post("/webhooks/"+id+"/rotate-secret", url.Values{"grace_hours": {"1000"}})
		require.Equal(t, http.StatusUnprocessableEntity, p.status)
		require.Contains(t, p.body, `id="grace-error"`)

		p = b.post("/webhooks/"+id+"/rotate-secret", url.Values{"grace_hours": {"3"}})
		require.Equal(t, http.StatusOK, p.status)
		s := secretField.FindStringSubmatch(p.body)
		require.NotNil(t, s)
		rotated := html.UnescapeString(s[1])
		require.NotEqual(t, secret, rotated)
		require.Contains(t, p.body, "Secret rotated.")
		require.Contains(t, p.body, "still signs until")
		ep, err := e.hooks.Get(ctx, e.ws, id)
		require.NoError(t, err)
		require.Equal(t, rotated, ep.Secret)
		require.Equal(t, secret, ep.PreviousSecret)
		require.NotContains(t, html.UnescapeString(b.get("/webhooks/"+id).body), rotated)
	})

	t.Run("disable and enable", func(t *testing.T) {
		p := b.post("/webhooks/"+id+"/enabled", url.Values{"enabled": {"false"}})
		require.Contains(t, p.body, "The endpoint was disabled.")
		require.Contains(t, p.body, "Enable endpoint")
		ep, err := e.hooks.Get(ctx, e.ws, id)
		require.NoError(t, err)
		require.False(t, ep.Enabled)

		p = b.post("/deliveries/"+failed.ID+"/redeliver", nil)
		require.Equal(t, http.StatusUnprocessableEntity, p.status)
		require.Contains(t, p.body, "the endpoint is disabled")

		p = b.post("/webhooks/"+id+"/enabled", url.Values{"enabled": {"true"}})
		require.Contains(t, p.body, "The endpoint was enabled.")
		ep, err = e.hooks.Get(ctx, e.ws, id)
		require.NoError(t, err)
		require.True(t, ep.Enabled)
	})
}

func TestAudit(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	b := e.browser(t)
	b.signIn(e.admin)
	r := e.closeDeal(t, e.ws)
	other := e.closeDeal(t, e.ws)
	k, _, err := e.keys.Create(ctx, e.ws, "Finance Sync", []apikey.Scope{apikey.ScopeWrite}, nil)
	require.NoError(t, err)
	imported, err := e.pipeline.Create(ctx, records.Write{Workspace: e.ws, Object: "account", Fields: records.Fields{"name": "Initech"},
		Source: records.SourceImport, Actor: records.Actor{Kind: "api_key", ID: k.ID}})
	require.NoError(t, err)
	_, err = e.pipeline.Create(ctx, records.Write{Workspace: e.ws2, Object: "account", Fields: records.Fields{"name": "Elsewhere"},
		Source: records.SourceImport, Actor: records.Actor{Kind: "api_key", ID: k.ID}})
	require.NoError(t, err)

	p := b.get("/audit")
	require.Contains(t, p.body, r.ID)
	require.Contains(t, p.body, other.ID)
	require.Contains(t, p.body, imported.ID)
	require.NotContains(t, p.body, "Elsewhere")
	require.Contains(t, p.body, "<code>stage</code>: Negotiation → Closed Won")
	require.Contains(t, p.body, "<code>amount</code>: — → 5000", "a field that had no value")
	require.Contains(t, p.body, `Finance Sync <a href="/audit?actor=`+k.ID+`">`, "an API key actor is named")

	p = b.get("/audit?record_id=" + r.ID)
	require.Contains(t, p.body, r.ID)
	require.NotContains(t, p.body, other.ID)

	for _, q := range []string{"source=import", "actor=" + k.ID, "source=import&actor=" + k.ID} {
		p = b.get("/audit?" + q)
		require.Contains(t, p.body, imported.ID, q)
		require.NotContains(t, p.body, r.ID, q)
		require.NotContains(t, p.body, "Elsewhere", q)
	}
	p = b.get("/audit?source=bulk")
	require.Contains(t, p.body, "No entries match the filter.")
	p = b.get("/audit?source=import&record_id=" + r.ID)
	require.Contains(t, p.body, "No entries match the filter.")
	p = b.get("/audit?source=nonsense")
	require.Contains(t, p.body, imported.ID, "an unknown source is no filter")
	require.Contains(t, p.body, r.ID)
}

// TestAuditFilterPages pages a filtered audit log: a page that fills up
// links to the next match, and one that reads its bound of entries without
// filling up says so and goes on from where it stopped.
func TestAuditFilterPages(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	b := e.browser(t)
	b.signIn(e.admin)
	write := func(n int, src records.Source) []string {
		items := make([]records.BatchItem, n)
		for i := range items {
			items[i] = records.BatchItem{Op: records.OpInsert, Write: records.Write{Workspace: e.ws, Object: "account",
				Fields: records.Fields{"name": fmt.Sprintf("%s %d", src, i)}, Source: src, Actor: records.Actor{Kind: "system"}}}
		}
		res, err := e.pipeline.Batch(ctx, items, records.BatchOptions{AllOrNone: true})
		require.NoError(t, err)
		ids := make([]string, n)
		for i, r := range res {
			require.NoError(t, r.Err)
			ids[i] = r.Record.ID
		}
		return ids
	}
	// 51 bulk writes, then more API writes than a page reads, then one more
	// bulk write.
	bulk := write(51, records.SourceBulk)
	for range 5 {
		write(1000, records.SourceAPI)
	}
	last := write(1, records.SourceBulk)[0]

	p := b.get("/audit?source=bulk")
	require.Contains(t, p.body, bulk[49])
	require.NotContains(t, p.body, bulk[50], "a page shows 50 entries")
	next := regexp.MustCompile(`<a href="(/audit\?[^"]+)">Next page</a>`).FindStringSubmatch(p.body)
	require.NotNil(t, next, p.body)

	p = b.get(html.UnescapeString(next[1]))
	require.Contains(t, p.body, bulk[50])
	require.NotContains(t, p.body, last, "the page read only its bound of entries")
	require.Contains(t, p.body, "These are the matches among the next 5000 entries of the log.")
	next = regexp.MustCompile(`<a href="(/audit\?[^"]+)">Search further</a>`).FindStringSubmatch(p.body)
	require.NotNil(t, next, p.body)

	p = b.get(html.UnescapeString(next[1]))
	require.Contains(t, p.body, last)
	require.NotContains(t, p.body, bulk[50])
	require.NotContains(t, p.body, "Search further")
	require.NotContains(t, p.body, "Next page")
}

func TestHiddenFeatures(t *testing.T) {
	e := newEnv(t, func(c *console.Config) { c.Webhooks, c.Audit = nil, nil })
	b := e.browser(t)
	p := b.signIn(e.admin)
	require.Contains(t, p.body, ">API Keys</a>")
	require.NotContains(t, p.body, ">Webhooks</a>")
	require.NotContains(t, p.body, ">Audit log</a>")
	for _, name := range []string{"Inbound", "Connectors", "Imports"} {
		require.NotContains(t, p.body, ">"+name+"</a>")
	}
	for _, path := range []string{"/webhooks", "/audit", "/inbound", "/inbound/events", "/connectors", "/imports", "/imports/new"} {
		require.Equal(t, http.StatusNotFound, b.get(path).status, path)
	}
}
