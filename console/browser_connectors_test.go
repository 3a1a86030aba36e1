package console_test

import (
	"context"
	"fmt"
	"html"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/connector"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// connPoll waits until the JavaScript expression js is true on the page,
// asking again while the page is being replaced by the next one.
func connPoll(b *tab, what, js string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+js+")"))
		if err == nil && ok {
			return
		}
		select {
		case <-ctx.Done():
			b.screenshot("failed-" + what)
			b.t.Fatalf("%s: %v (last error: %v)", what, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestBrowserConnectors drives the Connectors pages in headless Chromium
// by clicking and typing: create a connector of a loopback customer API
// (a misspelt object is refused beside its field, and the token must be
// typed again), preview its first page (nothing written), run it now and
// see the run and its counts arrive in the run log, and run it again
// while a run is going: the 409 is shown beside Run now. Every page is
// checked with axe-core at 1280 and 390 px; the token is on no page and
// in no log line.
func TestBrowserConnectors(t *testing.T) {
	chromium(t)
	e := newAPIEnv(t)
	ctx := context.Background()
	api := newCustomerAPI(t, 5)
	b := newTab(t, e.srv.URL)
	b.signIn("/sign-in", e.admin, `a.button[href="/keys/new"]`)

	b.do("connectors",
		chromedp.Click(chromedp.CSS(`nav a[href="/connectors"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a.button[href="/connectors/new"]`)),
	)
	b.screenshots("connectors-empty")

	// New connector: the form comes filled in for an API like the sample
	// one; the admin gives a name, the URL, the token, two records a page
	// and, misspelt, the object.
	b.do("new connector form",
		chromedp.Click(chromedp.CSS(`a.button[href="/connectors/new"]`)),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), "Billing customers"),
		chromedp.SendKeys(chromedp.ID("url"), api.srv.URL+"/customers"),
		chromedp.SendKeys(chromedp.ID("header_value"), customerToken),
		chromedp.Clear(chromedp.ID("page_size")),
		chromedp.SendKeys(chromedp.ID("page_size"), "2"),
		chromedp.Clear(chromedp.ID("object")),
		chromedp.SendKeys(chromedp.ID("object"), "acount"),
	)
	b.screenshots("new-connector")
	b.do("create connector with a misspelt object",
		chromedp.Click(chromedp.CSS(`form[action="/connectors"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("object-error")),
	)
	require.Contains(t, b.fieldError("#object", "object-error"), "acount")
	require.Equal(t, api.srv.URL+"/customers", b.value("#url"), "what was typed is kept")
	require.Equal(t, "", b.value("#header_value"), "but not the token")
	b.screenshots("new-connector-refused")
	b.do("create connector",
		chromedp.SetValue(chromedp.ID("object"), "account"),
		chromedp.SendKeys(chromedp.ID("header_value"), customerToken),
		chromedp.Click(chromedp.CSS(`form[action="/connectors"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("run-button")),
	)
	require.Contains(t, b.text("p.notice"), "The connector was created.")
	cs, err := e.svc.Connectors().List(ctx, e.ws, "", 10)
	require.NoError(t, err)
	require.Len(t, cs, 1)
	id := cs[0].ID
	require.Equal(t, customerToken, cs[0].Headers["Authorization"])
	b.screenshots("connector")

	// Preview: the first page and what it would become; nothing written.
	b.do("preview",
		chromedp.Click(chromedp.ID("preview-button")),
		chromedp.WaitVisible(chromedp.CSS(`#preview table.preview`)),
	)
	preview := b.text("#preview")
	require.Contains(t, preview, "2 records fetched, more pages follow")
	require.Contains(t, preview, "Customer 1")
	require.Contains(t, preview, "billing-2")
	require.Equal(t, 0, e.connAccounts(t, e.ws), "a preview writes nothing")
	b.screenshots("connector-preview")

	// Run now: the run log follows the run to its end.
	b.do("run now", chromedp.Click(chromedp.ID("run-button")))
	connPoll(b, "run queued", `document.querySelector("p.notice")?.textContent.includes("The run was queued")`)
	b.do("run log", chromedp.WaitVisible(chromedp.CSS(`#runs tbody tr:first-child .badge.ok`)))
	run := e.connWaitRun(t, e.ws, id)
	require.Equal(t, connector.RunSucceeded, run.Status)
	require.Equal(t, 5, e.connAccounts(t, e.ws))
	row := b.text(`#runs tbody tr:first-child`)
	require.Contains(t, row, "Succeeded")
	require.Equal(t, "3", b.text(`#runs tbody tr:first-child td[data-label=Pages]`))
	require.Equal(t, "5", b.text(`#runs tbody tr:first-child td[data-label=Created]`))
	require.Equal(t, "0", b.text(`#runs tbody tr:first-child td[data-label=Updated]`))
	require.Equal(t, "0", b.text(`#runs tbody tr:first-child td[data-label=Unchanged]`))
	require.Equal(t, "0", b.text(`#runs tbody tr:first-child td[data-label=Failed]`))
	b.screenshots("connector-run-log")

	// Run now while a run is going: the service answers 409, shown beside
	// the button; the run log shows the run going, then its end.
	api.holdAnswers()
	b.do("run again", chromedp.Click(chromedp.ID("run-button")))
	connPoll(b, "second run queued", `document.querySelectorAll("#runs tbody tr").length === 2`)
	b.do("run while running",
		chromedp.Click(chromedp.ID("run-button")),
		chromedp.WaitVisible(chromedp.ID("run-error")),
	)
	require.Contains(t, b.fieldError("#run-button", "run-error"), "already queued or running")
	require.NotContains(t, b.text(`#runs tbody tr:first-child`), "Succeeded")
	b.screenshots("connector-run-409")
	api.release()
	b.do("second run ends", chromedp.WaitVisible(chromedp.CSS(`#runs tbody tr:first-child .badge.ok`)))
	require.Equal(t, "0", b.text(`#runs tbody tr:first-child td[data-label=Created]`), "the checkpoint covered everything")
	runs, err := e.svc.Connectors().Runs(ctx, e.ws, id, "", 10)
	require.NoError(t, err)
	require.Len(t, runs, 2, "the refused run was not queued")

	// The run page.
	b.do("run page",
		chromedp.Click(chromedp.CSS(`#runs tbody tr:last-child td[data-label=Status] a`)),
		chromedp.WaitVisible(chromedp.CSS(`dl.facts`)),
	)
	require.Contains(t, b.text("h1"), run.ID)
	require.Contains(t, b.text("dl.facts"), "5 created, 0 updated, 0 unchanged")
	b.screenshots("connector-run")

	// The list, and the edit form, which never shows the token.
	b.do("list",
		chromedp.Click(chromedp.CSS(`nav a[href="/connectors"]`)),
		chromedp.WaitVisible(chromedp.CSS(`table.list`)),
	)
	list := b.text("table.list")
	require.Contains(t, list, "Billing customers")
	require.Contains(t, list, "account")
	require.Contains(t, list, "Succeeded")
	b.screenshots("connectors")
	b.open("/connectors/"+id+"/edit", "#header_value")
	require.Equal(t, "", b.value("#header_value"))
	b.screenshots("connector-edit")

	for _, s := range []string{html.UnescapeString(b.html()), e.logs.String()} {
		require.NotContains(t, s, customerToken)
		require.NotContains(t, s, strings.TrimPrefix(customerToken, "Bearer "))
	}
	t.Logf("axe-core checked %d page views: %s", len(b.checked), strings.Join(b.checked, ", "))
}

// TestBrowserPlanLimit signs in to a workspace on the starter plan that
// holds the API keys and webhook endpoints its plan allows, and submits
// New Key and New Endpoint: each form shows the plan's limit on the form,
// keeping what was typed.
func TestBrowserPlanLimit(t *testing.T) {
	chromium(t)
	e := newAPIEnv(t)
	ctx := context.Background()
	rv := newReceiver(t)
	ws, admin := e.workspace(t, "Initech", "starter")
	plan, err := e.svc.Plans().Of(ctx, ws)
	require.NoError(t, err)
	for i := 1; i < plan.MaxAPIKeys; i++ {
		_, _, err := e.svc.Keys().Create(ctx, ws, fmt.Sprintf("Sync %d", i), []apikey.Scope{apikey.ScopeRead}, nil)
		require.NoError(t, err)
	}
	for i := 0; i < plan.MaxWebhookEndpoints; i++ {
		_, _, err := e.svc.Webhooks().Create(ctx, ws, outbound.EndpointInput{URL: fmt.Sprintf("%s/hook/%d", rv.srv.URL, i),
			Events: []string{"record.updated"}})
		require.NoError(t, err)
	}
	b := newTab(t, e.srv.URL)
	b.signIn("/sign-in", admin, `a.button[href="/keys/new"]`)

	b.open("/keys/new", "#name")
	b.do("new key over the plan's limit",
		chromedp.SendKeys(chromedp.ID("name"), "Finance Sync"),
		chromedp.Click(chromedp.CSS(`input[name=scopes][value=READ]`)),
		chromedp.Click(chromedp.CSS(`form[action="/keys"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`p.error[role=alert]`)),
	)
	msg := b.text(`p.error[role=alert]`)
	require.Contains(t, msg, fmt.Sprintf("starter plan allows %d API keys", plan.MaxAPIKeys))
	connPoll(b, "the error is beside the form", `document.querySelector("p.error[role=alert]").nextElementSibling.matches("form[action='/keys']")`)
	require.Equal(t, "Finance Sync", b.value("#name"), "what was typed is kept")
	b.screenshots("key-plan-limit")

	b.open("/webhooks/new", "#url")
	b.do("new endpoint over the plan's limit",
		chromedp.SendKeys(chromedp.ID("url"), rv.srv.URL+"/finance"),
		chromedp.Click(chromedp.CSS(`form[action="/webhooks"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`p.error[role=alert]`)),
	)
	require.Contains(t, b.text(`p.error[role=alert]`), fmt.Sprintf("starter plan allows %d webhook endpoints", plan.MaxWebhookEndpoints))
	connPoll(b, "the error is beside the form", `document.querySelector("p.error[role=alert]").nextElementSibling.matches("form[action='/webhooks']")`)
	require.Equal(t, rv.srv.URL+"/finance", b.value("#url"))
	b.screenshots("endpoint-plan-limit")

	eps, err := e.svc.Webhooks().List(ctx, ws, "", 100)
	require.NoError(t, err)
	require.Len(t, eps, plan.MaxWebhookEndpoints, "nothing over the limit was created")
	require.NotContains(t, e.logs.String(), admin)
}
