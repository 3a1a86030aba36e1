package console_test

import (
	"context"
	"html"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/ingest"
)

// TestBrowserInbound walks an admin through inbound webhooks in headless
// Chromium, on the REST API and the console as the reference server
// mounts them: create a Standard Webhooks source whose mapping is first
// refused beside the mapping, read its secret once, preview a pasted order
// (nothing is written), break the mapping in the editor, see the event a
// sender posts fail in the inbound log, fix the mapping, retry the event
// and see it processed with the records it wrote. Every page is checked
// with axe-core at 1280 and 390 px.
func TestBrowserInbound(t *testing.T) {
	chromium(t)
	e := newAPIEnv(t)
	ctx := context.Background()
	b := newTab(t, e.srv.URL)

	b.signIn("/", e.admin, `nav a[href="/inbound"]`)
	b.do("inbound",
		chromedp.Click(chromedp.CSS(`nav a[href="/inbound"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a.button[href="/inbound/sources/new"]`)),
	)
	b.screenshots("inbound-empty")

	// New source: a misspelt field is refused beside the mapping, naming
	// the target and field; what was typed is kept.
	b.do("new source form",
		chromedp.Click(chromedp.CSS(`a.button[href="/inbound/sources/new"]`)),
		chromedp.WaitVisible(chromedp.ID("mapping")),
	)
	require.Contains(t, b.value("#mapping"), `"object": "opportunity"`, "an example mapping is there to start from")
	b.screenshots("inbound-new")
	bad := strings.Replace(orderMapping("Closed Won"), `"amount"`, `"amout"`, 1)
	b.do("create with a misspelt field",
		chromedp.SendKeys(chromedp.ID("name"), "Shop orders"),
		chromedp.Click(chromedp.CSS(`input[name=kind][value=standard]`)),
		chromedp.SetValue(chromedp.ID("mapping"), bad),
		chromedp.Click(chromedp.CSS(`form[action="/inbound/sources"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("mapping-error")),
	)
	require.Contains(t, b.fieldError("#mapping", "mapping-error"), "target 1 (opportunity) amout")
	require.Equal(t, "Shop orders", b.value("#name"))
	require.Contains(t, b.value("#mapping"), `"amout"`)
	b.screenshots("inbound-new-refused")

	b.do("create source",
		chromedp.SetValue(chromedp.ID("mapping"), orderMapping("Closed Won")),
		chromedp.Click(chromedp.CSS(`form[action="/inbound/sources"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("secret")),
		chromedp.WaitVisible(chromedp.CSS(`button.copy[data-copy=secret]`)),
	)
	secret := b.value("#secret")
	srcs, err := e.svc.Inbound().Sources(ctx, e.ws, "", 10)
	require.NoError(t, err)
	require.Len(t, srcs, 1)
	src := srcs[0]
	require.Equal(t, secret, src.Secret, "the secret shown is the source's")
	require.Equal(t, ingest.KindStandard, src.Kind)
	require.Equal(t, e.srv.URL+"/api/v1/inbound/"+src.ID, b.value("#post-url"))
	b.screenshots("inbound-created")

	// Preview a pasted order: the records it would write, none written.
	before := e.countRecords(t)
	b.do("preview",
		chromedp.SetValue(chromedp.ID("sample"), order("820982911946154508", "#1001")),
		chromedp.Click(chromedp.CSS(`#preview button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("preview-result")),
	)
	preview := b.text("#preview-result")
	require.Contains(t, preview, "The sample would write 2 records. Nothing was written.")
	require.Contains(t, preview, "Shopify order #1001")
	require.Contains(t, preview, "shopify-820982911946154508")
	require.Equal(t, before, e.countRecords(t), "a preview writes nothing")
	b.screenshots("inbound-preview")

	// Break the mapping in the editor: the pipeline refuses the stage.
	b.do("save a mapping the pipeline will refuse",
		chromedp.SetValue(chromedp.ID("mapping"), orderMapping("Won")),
		chromedp.Click(chromedp.CSS(`form[action$="/settings"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`main > p.notice`)),
	)
	require.Contains(t, b.text("main > p.notice"), "The source was saved.")
	require.NotContains(t, html.UnescapeString(b.html()), secret, "the secret was shown once")

	// A sender posts an order: it fails, and the log says why.
	require.Equal(t, http.StatusAccepted, e.postStandard(t, src.ID, secret, "msg_browser_1", order("820982911946154508", "#1001")))
	failed := e.waitEvent(t, ingest.StatusFailed)
	b.do("inbound log",
		chromedp.Click(chromedp.CSS(`nav a[href="/inbound"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/inbound/events"]`)),
		chromedp.Click(chromedp.CSS(`a[href="/inbound/events"]`)),
		chromedp.WaitVisible(chromedp.ID("log")),
		chromedp.SetValue(chromedp.ID("filter_status"), "failed"),
		chromedp.Click(chromedp.CSS(`form.filters button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#log a[href="/inbound/events/`+failed.ID+`"]`)),
	)
	// The unfiltered log lists the event too: the filtered one has come
	// when htmx pushed the filter into the URL.
	require.Eventually(t, func() bool {
		loc, err := chromedp.Run(b.ctx, chromedp.Location())
		return err == nil && strings.Contains(loc, "status=failed")
	}, waitTimeout, 20*time.Millisecond, "htmx pushed the filter into the URL")
	log := b.text("#log")
	require.Contains(t, log, "Failed")
	require.Contains(t, log, "Shop orders")
	b.screenshots("inbound-log")

	b.do("event page",
		chromedp.Click(chromedp.CSS(`#log a[href="/inbound/events/`+failed.ID+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.event-error`)),
	)
	require.Contains(t, b.text(".event-error"), "stage")
	page := html.UnescapeString(b.html())
	require.Contains(t, page, "Webhook-Signature: [redacted]")
	require.Contains(t, page, `"name": "#1001"`)
	require.NotContains(t, page, secret)
	b.screenshots("inbound-event-failed")

	// Fix the mapping, retry the event: it is processed with the source's
	// current mapping, and its page shows the records written.
	b.do("fix the mapping",
		chromedp.Click(chromedp.CSS(`.crumbs a[href="/inbound/sources/`+src.ID+`"]`)),
		chromedp.WaitVisible(chromedp.ID("mapping")),
		chromedp.SetValue(chromedp.ID("mapping"), orderMapping("Closed Won")),
		chromedp.Click(chromedp.CSS(`form[action$="/settings"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`main > p.notice`)),
	)
	require.Contains(t, b.text("section:has(#events-title)"), "Failed", "the source page lists its failed event")
	b.screenshots("inbound-source")
	b.do("retry",
		chromedp.Click(chromedp.CSS(`section:has(#events-title) a[href="/inbound/events/`+failed.ID+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form.retry-one button`)),
		chromedp.Click(chromedp.CSS(`form.retry-one button`)),
		chromedp.WaitVisible(chromedp.CSS(`main > p.notice`)),
		// htmx refreshes the event while it waits to be processed.
		chromedp.WaitVisible(chromedp.CSS(`#event-status.ok`)),
	)
	require.Contains(t, b.text("main > p.notice"), "queued to be processed again")
	require.Equal(t, "Processed", b.text("#event-status"))
	written := b.text("#event table.list")
	require.Contains(t, written, "shopify-820982911946154508")
	require.Contains(t, written, "created")
	b.screenshots("inbound-event-retried")

	// Nothing failed is left to retry.
	b.do("retry failed since",
		chromedp.Click(chromedp.CSS(`.crumbs a[href="/inbound/events?source=`+src.ID+`"]`)),
		chromedp.WaitVisible(chromedp.ID("since")),
		chromedp.Click(chromedp.CSS(`form.retry button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`main > p.notice`)),
	)
	require.Contains(t, b.text("main > p.notice"), "There were no failed events to process again.")
	b.screenshots("inbound-log-retried")

	b.do("sources", chromedp.Click(chromedp.CSS(`nav a[href="/inbound"]`)), chromedp.WaitVisible(chromedp.CSS(`table.list`)))
	sources := b.text("table.list")
	require.Contains(t, sources, "Shop orders")
	require.Contains(t, sources, "Processed", "the last event")
	b.screenshots("inbound-sources")

	require.Eventually(t, func() bool {
		ev, err := e.svc.Inbound().Event(ctx, e.ws, failed.ID)
		return err == nil && ev.Status == ingest.StatusProcessed && len(ev.Written) == 2
	}, waitTimeout, 20*time.Millisecond)
	logs := e.logs.String()
	require.NotContains(t, logs, secret)
	require.NotContains(t, logs, e.admin)
	t.Logf("axe-core checked %d page views: %s", len(b.checked), strings.Join(b.checked, ", "))
}
