package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/console"
	"github.com/smartlite/crmkit/ingest"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/webhook"
)

// The inbound service crmkit ships satisfies the console's interface.
var _ console.Inbound = (*ingest.Inbound)(nil)

// orderMapping maps a Shopify order: its customer becomes an account, the
// order an opportunity in stage, linked to the account.
func orderMapping(stage string) string {
	b, err := json.MarshalIndent(map[string]any{"targets": []any{
		map[string]any{"object": "account", "external_id": "'shopify-' + string(customer.id)",
			"fields": map[string]any{"name": "customer.first_name + ' ' + customer.last_name"}},
		map[string]any{"object": "opportunity", "external_id": "'shopify-' + string(id)",
			"fields": map[string]any{"name": "'Shopify order ' + name", "amount": "float(total_price)",
				"stage": "'" + stage + "'", "account_id": "ref('account', 'shopify-' + string(customer.id))"}},
	}}, "", "  ")
	if err != nil {
		panic(err)
	}
	return string(b)
}

// order is a Shopify order as a store posts it, its ids past a float64's
// exact range.
func order(id, name string) string {
	return `{"id": ` + id + `, "name": "` + name + `", "total_price": "199.65", "updated_at": "2026-01-02T10:00:00Z",` +
		` "customer": {"id": 115310627314723954, "first_name": "Jon", "last_name": "Snow"}}`
}

var (
	sourceSecretField = regexp.MustCompile(`id="secret" class="mono" value="([^"]+)"`)
	sourcePath        = regexp.MustCompile(`action="/inbound/sources/(src_[0-9a-z]+)/preview"`)
)

// newBrowser is a browser on the apiEnv's server.
func (e *apiEnv) browser(tb testing.TB) *browser { return newBrowser(tb, e.srv) }

// countRecords counts the records of every workspace.
func (e *apiEnv) countRecords(tb testing.TB) int {
	tb.Helper()
	n, err := e.st.DB().NewSelect().Table("records").Count(context.Background())
	require.NoError(tb, err)
	return int(n)
}

// createSource creates a source through the New Source form and answers
// its id and the secret shown ("" when none was generated).
func createSource(tb testing.TB, b *browser, form url.Values) (id, secret string) {
	tb.Helper()
	b.get("/inbound/sources/new")
	p := b.post("/inbound/sources", form)
	require.Equal(tb, http.StatusCreated, p.status, p.body)
	m := sourcePath.FindStringSubmatch(p.body)
	require.NotNil(tb, m, "the source page is shown")
	if s := sourceSecretField.FindStringSubmatch(p.body); s != nil {
		secret = html.UnescapeString(s[1])
	}
	return m[1], secret
}

// postStandard delivers body to a source as a Standard Webhooks sender
// does, and answers the status.
func (e *apiEnv) postStandard(tb testing.TB, srcID, secret, msgID, body string) int {
	tb.Helper()
	now := time.Now()
	sig, err := webhook.SignStandard(secret, msgID, now, []byte(body))
	require.NoError(tb, err)
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/api/v1/inbound/"+srcID, strings.NewReader(body))
	require.NoError(tb, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhook.HeaderWebhookID, msgID)
	req.Header.Set(webhook.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(webhook.HeaderWebhookSignature, sig)
	resp, err := e.srv.Client().Do(req)
	require.NoError(tb, err)
	resp.Body.Close()
	return resp.StatusCode
}

// waitEvent waits for the event a delivery made, the newest of the
// workspace, to reach status, and answers it.
func (e *apiEnv) waitEvent(tb testing.TB, status string) *ingest.InboundEvent {
	tb.Helper()
	var got *ingest.InboundEvent
	require.Eventually(tb, func() bool {
		evs, err := e.svc.Inbound().Events(context.Background(), ingest.InboundEventQuery{Workspace: e.ws, Limit: 1})
		if err != nil || len(evs) == 0 || evs[0].Status != status {
			return false
		}
		got = evs[0]
		return true
	}, waitTimeout, 20*time.Millisecond)
	return got
}

func TestInboundSourceForm(t *testing.T) {
	e := newAPIEnv(t)
	ctx := context.Background()
	b := e.browser(t)
	b.signIn(e.admin)

	p := b.get("/inbound")
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, "There are no inbound sources yet.")
	require.Contains(t, p.body, `<a href="/inbound" aria-current="page">Inbound</a>`)

	p = b.get("/inbound/sources/new")
	for _, label := range []string{`<label for="name">Name</label>`, `<legend>Kind</legend>`, `<label for="secret">Secret`,
		`<label for="mapping">Mapping</label>`} {
		require.Contains(t, p.body, label)
	}
	require.Contains(t, html.UnescapeString(p.body), `"account_id": "ref('account', 'shopify-' + string(customer.id))"`,
		"the mapping is prefilled with an example")
	require.Regexp(t, `<input type="radio" name="kind" value="shopify" checked>`, p.body)

	bad := strings.Replace(orderMapping("Closed Won"), `"amount"`, `"amout"`, 1)
	for _, tc := range []struct {
		name   string
		form   url.Values
		errors map[string]string
	}{
		{"nothing", url.Values{"mapping": {""}}, map[string]string{"name": "The name is required",
			"kind": "The kind is required", "mapping": "The mapping is required"}},
		{"shopify without its secret", url.Values{"name": {"Shop"}, "kind": {"shopify"}, "mapping": {orderMapping("Closed Won")}},
			map[string]string{"secret": "required for a shopify source"}},
		{"misspelt field", url.Values{"name": {"Shop"}, "kind": {"standard"}, "mapping": {bad}},
			map[string]string{"mapping": "target 1 (opportunity) amout"}},
		{"not JSON", url.Values{"name": {"Shop"}, "kind": {"standard"}, "mapping": {"{targets: ["}},
			map[string]string{"mapping": "The mapping is not valid: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := b.post("/inbound/sources", tc.form)
			require.Equal(t, http.StatusUnprocessableEntity, p.status, p.body)
			for field, msg := range tc.errors {
				require.Regexp(t, `<(p|div) class="field-error" id="`+field+`-error">[^<]*`+regexp.QuoteMeta(msg), p.body)
			}
			if v := tc.form.Get("mapping"); v != "" {
				require.Contains(t, html.UnescapeString(p.body), v, "the mapping typed is kept")
			}
			if _, ok := tc.errors["mapping"]; ok {
				require.Contains(t, p.body, `aria-describedby="mapping-hint mapping-error" aria-invalid="true"`)
			}
		})
	}
	t.Run("a secret typed is not sent back", func(t *testing.T) {
		p := b.post("/inbound/sources", url.Values{"name": {"Shop"}, "kind": {"shopify"}, "secret": {"shpss_typed_secret"},
			"mapping": {bad}})
		require.Equal(t, http.StatusUnprocessableEntity, p.status)
		require.NotContains(t, p.body, "shpss_typed_secret")
		require.Contains(t, p.body, `id="secret-error">Paste the secret again`)
	})
	srcs, err := e.svc.Inbound().Sources(ctx, e.ws, "", 10)
	require.NoError(t, err)
	require.Empty(t, srcs, "nothing refused was stored")

	// A shopify source keeps the client secret given, and shows none.
	shopID, shown := createSource(t, b, url.Values{"name": {"Shopify orders"}, "kind": {"shopify"},
		"secret": {"shpss_0123456789abcdef"}, "mapping": {orderMapping("Closed Won")}})
	require.Empty(t, shown)
	shop, err := e.svc.Inbound().Source(ctx, e.ws, shopID)
	require.NoError(t, err)
	require.Equal(t, "shpss_0123456789abcdef", shop.Secret)
	require.Len(t, shop.Mapping.Targets, 2)

	// A standard source gets a generated secret, shown once.
	stdID, secret := createSource(t, b, url.Values{"name": {"Billing"}, "kind": {"standard"}, "mapping": {orderMapping("Closed Won")}})
	require.True(t, strings.HasPrefix(secret, "whsec_"), secret)
	std, err := e.svc.Inbound().Source(ctx, e.ws, stdID)
	require.NoError(t, err)
	require.Equal(t, secret, std.Secret)

	p = b.get("/inbound/sources/" + stdID)
	require.Equal(t, http.StatusOK, p.status)
	require.NotContains(t, html.UnescapeString(p.body), secret, "the secret is shown only once")
	require.Contains(t, p.body, `value="`+e.srv.URL+`/api/v1/inbound/`+stdID+`"`, "the URL senders post to")
	require.Contains(t, html.UnescapeString(p.body), `"stage": "'Closed Won'"`, "the editor holds the saved mapping")
	p = b.get("/inbound")
	require.Contains(t, p.body, "Shopify orders")
	require.Contains(t, p.body, "Standard Webhooks")
	require.Contains(t, p.body, e.srv.URL+"/api/v1/inbound/"+shopID)
	require.NotContains(t, html.UnescapeString(p.body), secret)

	// Saving a mapping the service refuses shows why beside the mapping,
	// naming the target and field, and keeps what was typed.
	p = b.post("/inbound/sources/"+stdID+"/settings", url.Values{"name": {"Billing"}, "mapping": {bad}})
	require.Equal(t, http.StatusUnprocessableEntity, p.status)
	require.Regexp(t, `<div class="field-error" id="mapping-error">target 1 \(opportunity\) amout: [^<]+</div>`, p.body)
	require.Contains(t, html.UnescapeString(p.body), `"amout"`)
	src, err := e.svc.Inbound().Source(ctx, e.ws, stdID)
	require.NoError(t, err)
	require.Contains(t, src.Mapping.Targets[1].Fields, "amount", "the refused mapping was not saved")

	p = b.post("/inbound/sources/"+stdID+"/settings", url.Values{"name": {"Billing system"}, "mapping": {orderMapping("Negotiation")}})
	require.Equal(t, http.StatusOK, p.status)
	require.Equal(t, "/inbound/sources/"+stdID, p.url.Path)
	require.Contains(t, p.body, "The source was saved.")
	src, err = e.svc.Inbound().Source(ctx, e.ws, stdID)
	require.NoError(t, err)
	require.Equal(t, "Billing system", src.Name)
	require.Equal(t, "'Negotiation'", src.Mapping.Targets[1].Fields["stage"])

	// Disable and enable.
	p = b.post("/inbound/sources/"+stdID+"/enabled", url.Values{"enabled": {"false"}})
	require.Contains(t, p.body, "The source was disabled")
	src, err = e.svc.Inbound().Source(ctx, e.ws, stdID)
	require.NoError(t, err)
	require.False(t, src.Enabled)
	require.Equal(t, http.StatusUnauthorized, e.postStandard(t, stdID, secret, "msg_off", order("1", "#1")))
	p = b.post("/inbound/sources/"+stdID+"/enabled", url.Values{"enabled": {"true"}})
	require.Contains(t, p.body, "The source was enabled")

	// Rotating the secret shows the new one once; the old one verifies for
	// the grace period.
	p = b.post("/inbound/sources/"+stdID+"/rotate-secret", url.Values{"grace_hours": {"500"}})
	require.Equal(t, http.StatusUnprocessableEntity, p.status)
	require.Contains(t, p.body, `id="grace-error"`)
	p = b.post("/inbound/sources/"+stdID+"/rotate-secret", url.Values{"grace_hours": {"1"}})
	require.Equal(t, http.StatusOK, p.status)
	m := sourceSecretField.FindStringSubmatch(p.body)
	require.NotNil(t, m)
	rotated := html.UnescapeString(m[1])
	require.NotEqual(t, secret, rotated)
	require.Contains(t, p.body, "Secret rotated.")
	require.Contains(t, p.body, "still verifies until")
	p = b.get("/inbound/sources/" + stdID)
	require.NotContains(t, html.UnescapeString(p.body), rotated)

	// A shopify source's rotation takes the app's new client secret.
	p = b.post("/inbound/sources/"+shopID+"/rotate-secret", url.Values{"grace_hours": {"0"}})
	require.Equal(t, http.StatusUnprocessableEntity, p.status)
	require.Regexp(t, `id="new-secret-error">The secret is required`, p.body)
	p = b.post("/inbound/sources/"+shopID+"/rotate-secret", url.Values{"grace_hours": {"0"}, "new_secret": {"shpss_new"}})
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, "The secret was replaced.")
	require.NotContains(t, p.body, "shpss_new")
	shop, err = e.svc.Inbound().Source(ctx, e.ws, shopID)
	require.NoError(t, err)
	require.Equal(t, "shpss_new", shop.Secret)

	// Delete asks first.
	p = b.get("/inbound/sources/" + shopID + "/delete")
	require.Contains(t, p.body, "Delete “Shopify orders”?")
	_, err = e.svc.Inbound().Source(ctx, e.ws, shopID)
	require.NoError(t, err, "asking deletes nothing")
	p = b.post("/inbound/sources/"+shopID+"/delete", nil)
	require.Equal(t, "/inbound", p.url.Path)
	require.Contains(t, p.body, "The source was deleted with its log.")
	require.NotContains(t, p.body, "Shopify orders")
	_, err = e.svc.Inbound().Source(ctx, e.ws, shopID)
	require.ErrorIs(t, err, records.ErrNotFound)
	require.Equal(t, http.StatusNotFound, b.get("/inbound/sources/"+shopID).status)

	logs := e.logs.String()
	for _, s := range []string{secret, rotated, "shpss_0123456789abcdef", "shpss_new", "shpss_typed_secret"} {
		require.NotContains(t, logs, s, "no secret is logged")
	}
}

func TestInboundPreview(t *testing.T) {
	e := newAPIEnv(t)
	b := e.browser(t)
	b.signIn(e.admin)
	id, _ := createSource(t, b, url.Values{"name": {"Shop"}, "kind": {"standard"}, "mapping": {orderMapping("Closed Won")}})

	before := e.countRecords(t)
	p := b.post("/inbound/sources/"+id+"/preview", url.Values{"sample": {order("820982911946154508", "#1001")}})
	require.Equal(t, http.StatusOK, p.status, p.body)
	text := html.UnescapeString(p.body)
	require.Contains(t, text, "The sample would write 2 records. Nothing was written.")
	require.Contains(t, text, "external id <code>shopify-820982911946154508</code>", "the id's digits as sent")
	require.Contains(t, text, "<dt>name</dt><dd>Shopify order #1001</dd>")
	require.Contains(t, text, "<dt>amount</dt><dd>199.65</dd>")
	require.Contains(t, text, "<dt>stage</dt><dd>Closed Won</dd>")
	require.Contains(t, text, "<dt>account_id</dt><dd>the account with external id shopify-115310627314723954</dd>")
	require.Contains(t, text, "would be created")
	require.Contains(t, text, order("820982911946154508", "#1001"), "the sample pasted is kept")
	require.Equal(t, before, e.countRecords(t), "a preview writes nothing")

	// A document the pipeline would refuse shows why.
	p = b.post("/inbound/sources/"+id+"/preview", url.Values{"sample": {`{"id": 5, "name": "#5", "total_price": "-3", "customer": {"id": 1, "first_name": "A", "last_name": "B"}}`}})
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, "A delivery of this sample would fail")
	require.Contains(t, p.body, "<code>amount</code>")
	require.Contains(t, p.body, "at target 1 (opportunity)")
	// One without the external id's path.
	p = b.post("/inbound/sources/"+id+"/preview", url.Values{"sample": {`{"name": "#6"}`}})
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, "A delivery of this sample would fail")
	// Not JSON: beside the sample.
	p = b.post("/inbound/sources/"+id+"/preview", url.Values{"sample": {"name=#7"}})
	require.Equal(t, http.StatusOK, p.status)
	require.Regexp(t, `<p class="field-error" id="sample-error">The sample is not a JSON object`, p.body)
	require.Contains(t, p.body, `aria-describedby="sample-hint sample-error" aria-invalid="true"`)
	p = b.post("/inbound/sources/"+id+"/preview", url.Values{"sample": {" "}})
	require.Equal(t, http.StatusUnprocessableEntity, p.status)
	require.Contains(t, p.body, `id="sample-error">Paste a sample payload`)
	require.Equal(t, before, e.countRecords(t), "no preview wrote anything")

	// The editor's mapping, not yet saved, is what a preview applies; the
	// saved one is unchanged and the page keeps both texts as typed.
	edited := orderMapping("Proposal")
	p = b.post("/inbound/sources/"+id+"/preview", url.Values{"name": {"Shop"}, "mapping": {edited},
		"sample": {order("820982911946154508", "#1001")}})
	require.Equal(t, http.StatusOK, p.status, p.body)
	text = html.UnescapeString(p.body)
	require.Contains(t, text, "<dt>stage</dt><dd>Proposal</dd>", "the edited mapping was applied")
	require.Contains(t, text, `"stage": "'Proposal'"`, "the editor keeps the edited mapping")
	src, err := e.svc.Inbound().Source(context.Background(), e.ws, id)
	require.NoError(t, err)
	require.Equal(t, "'Closed Won'", src.Mapping.Targets[1].Fields["stage"], "a preview saves nothing")
	// An edited mapping that does not compile: its problems beside the
	// mapping, both texts kept, nothing previewed or saved.
	broken := strings.Replace(edited, `"amount"`, `"amout"`, 1)
	p = b.post("/inbound/sources/"+id+"/preview", url.Values{"name": {"Shop"}, "mapping": {broken},
		"sample": {order("820982911946154508", "#1001")}})
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Contains(t, p.body, `id="mapping-error"`)
	require.Contains(t, html.UnescapeString(p.body), "amout")
	require.NotContains(t, p.body, "The sample would write")
	require.Contains(t, html.UnescapeString(p.body), order("820982911946154508", "#1001"), "the sample is kept")
	require.Equal(t, before, e.countRecords(t), "no preview wrote anything")
}

func TestInboundLogAndRetry(t *testing.T) {
	e := newAPIEnv(t)
	ctx := context.Background()
	b := e.browser(t)
	b.signIn(e.admin)

	// The mapping puts orders in a stage the pipeline refuses.
	id, secret := createSource(t, b, url.Values{"name": {"Shop"}, "kind": {"standard"}, "mapping": {orderMapping("Won")}})
	p := b.get("/inbound/events")
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, "No events yet.")

	body := order("820982911946154508", "#1001")
	require.Equal(t, http.StatusAccepted, e.postStandard(t, id, secret, "msg_1", body))
	failed := e.waitEvent(t, ingest.StatusFailed)

	p = b.get("/inbound/events")
	require.Contains(t, p.body, `href="/inbound/events/`+failed.ID+`"`)
	require.Contains(t, p.body, `<span class="badge fail">Failed</span>`)
	require.Contains(t, p.body, `<td data-label="Source">Shop</td>`)
	require.Contains(t, b.get("/inbound/events?status=failed&source="+id).body, failed.ID)
	require.NotContains(t, b.get("/inbound/events?status=processed").body, failed.ID)
	require.Contains(t, b.get("/inbound").body, `<span class="badge fail">Failed</span>`, "the list shows the last event")
	require.Contains(t, b.get("/inbound/sources/"+id).body, failed.ID, "the source page lists its events")

	p = b.get("/inbound/events/" + failed.ID)
	require.Equal(t, http.StatusOK, p.status)
	text := html.UnescapeString(p.body)
	require.Contains(t, text, "validation_failed")
	require.Contains(t, text, "The record was refused: a field's value is not valid.")
	require.Contains(t, text, "target 1 (opportunity)")
	require.Contains(t, text, "<code>stage</code>")
	require.Contains(t, text, "Webhook-Signature: [redacted]")
	require.Contains(t, text, "Webhook-Id: msg_1")
	require.Contains(t, text, `"name": "#1001"`, "the body")
	require.Contains(t, text, "820982911946154508")
	require.NotContains(t, text, secret)

	// Fix the mapping, then retry: the event is processed and its records
	// are on its page.
	p = b.post("/inbound/sources/"+id+"/settings", url.Values{"name": {"Shop"}, "mapping": {orderMapping("Closed Won")}})
	require.Equal(t, http.StatusOK, p.status)
	b.get("/inbound/events/" + failed.ID)
	p = b.post("/inbound/events/"+failed.ID+"/retry", nil)
	require.Equal(t, http.StatusOK, p.status)
	require.Equal(t, "/inbound/events/"+failed.ID, p.url.Path)
	require.Contains(t, p.body, "The event was queued to be processed again.")
	ev := e.waitEvent(t, ingest.StatusProcessed)
	require.Equal(t, failed.ID, ev.ID)
	require.Equal(t, 2, ev.Attempts)
	p = b.get("/inbound/events/" + failed.ID)
	require.Contains(t, p.body, "Records written")
	require.Contains(t, p.body, "<code>shopify-820982911946154508</code>")
	require.Contains(t, p.body, `<td data-label="Action">created</td>`)
	require.Contains(t, p.body, `<span class="badge ok" id="event-status">Processed</span>`)
	rec, err := e.st.GetRecordByExternalID(ctx, e.ws, "opportunity", "shopify-820982911946154508")
	require.NoError(t, err)
	require.Equal(t, "Closed Won", rec.Fields["stage"])

	// Retry failed since a time: another order fails, the mapping is
	// fixed again, and the failed one is processed.
	p = b.post("/inbound/sources/"+id+"/settings", url.Values{"name": {"Shop"}, "mapping": {orderMapping("Won")}})
	require.Equal(t, http.StatusOK, p.status)
	require.Equal(t, http.StatusAccepted, e.postStandard(t, id, secret, "msg_2", order("820982911946154509", "#1002")))
	second := e.waitEvent(t, ingest.StatusFailed)
	require.NotEqual(t, failed.ID, second.ID)
	b.post("/inbound/sources/"+id+"/settings", url.Values{"name": {"Shop"}, "mapping": {orderMapping("Closed Won")}})

	b.get("/inbound/events")
	p = b.post("/inbound/events/retry", url.Values{"since": {"yesterday"}})
	require.Equal(t, http.StatusUnprocessableEntity, p.status)
	require.Contains(t, p.body, `<p class="field-error" id="since-error">`)
	since := time.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04")
	p = b.post("/inbound/events/retry", url.Values{"since": {since}, "source": {id}})
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, "The failed events were queued to be processed again.")
	require.Equal(t, id, p.url.Query().Get("source"))
	require.Eventually(t, func() bool {
		ev, err := e.svc.Inbound().Event(ctx, e.ws, second.ID)
		return err == nil && ev.Status == ingest.StatusProcessed
	}, waitTimeout, 20*time.Millisecond)
	p = b.post("/inbound/events/retry", url.Values{"since": {since}})
	require.Contains(t, p.body, "There were no failed events to process again.")

	// Another workspace sees none of it.
	other := e.browser(t)
	_, otherAdmin := e.workspace(t, "Globex", "enterprise")
	other.signIn(otherAdmin)
	for _, path := range []string{"/inbound/sources/" + id, "/inbound/sources/" + id + "/delete",
		"/inbound/events/" + failed.ID, "/inbound/events?source=" + id} {
		require.Equal(t, http.StatusNotFound, other.get(path).status, path)
	}
	other.get("/inbound")
	for _, path := range []string{"/inbound/sources/" + id + "/preview", "/inbound/sources/" + id + "/settings",
		"/inbound/sources/" + id + "/enabled", "/inbound/sources/" + id + "/delete", "/inbound/events/" + failed.ID + "/retry"} {
		require.Equal(t, http.StatusNotFound, other.post(path, url.Values{"sample": {body}, "name": {"x"},
			"mapping": {orderMapping("Closed Won")}}).status, path)
	}
	p = other.post("/inbound/events/retry", url.Values{"since": {since}, "source": {id}})
	require.Equal(t, http.StatusNotFound, p.status)
	p = other.get("/inbound/events")
	require.NotContains(t, p.body, failed.ID)
	require.Contains(t, p.body, "No events yet.")
	require.Contains(t, other.get("/inbound").body, "There are no inbound sources yet.")
	_, err = e.svc.Inbound().Source(ctx, e.ws, id)
	require.NoError(t, err, "the other workspace deleted nothing")

	require.NotContains(t, e.logs.String(), secret)
	require.False(t, bytes.Contains([]byte(e.logs.String()), []byte(e.admin)))
}

func TestInboundLogPages(t *testing.T) {
	e := newAPIEnv(t)
	b := e.browser(t)
	b.signIn(e.admin)
	id, secret := createSource(t, b, url.Values{"name": {"Shop"}, "kind": {"standard"}, "mapping": {orderMapping("Closed Won")}})
	const n = 51 // a page and one more
	for i := range n {
		num := strconv.Itoa(1000 + i)
		require.Equal(t, http.StatusAccepted, e.postStandard(t, id, secret, "msg_"+num, order(num, "#"+num)))
	}
	var evs []*ingest.InboundEvent
	require.Eventually(t, func() bool {
		var err error
		evs, err = e.svc.Inbound().Events(context.Background(), ingest.InboundEventQuery{Workspace: e.ws,
			Status: ingest.StatusProcessed, Limit: n + 1})
		return err == nil && len(evs) == n
	}, waitTimeout, 20*time.Millisecond)

	rows := regexp.MustCompile(`href="/inbound/events/(inb_[0-9a-z]+)"`)
	ids := func(body string) []string {
		var out []string
		for _, m := range rows.FindAllStringSubmatch(body, -1) {
			out = append(out, m[1])
		}
		return out
	}
	p := b.get("/inbound/events?status=processed&source=" + id)
	first := ids(p.body)
	require.Len(t, first, 50)
	require.Equal(t, evs[0].ID, first[0], "newest first")
	next := regexp.MustCompile(`<a href="([^"]+)">Older events</a>`).FindStringSubmatch(p.body)
	require.NotNil(t, next)
	u, err := url.Parse(html.UnescapeString(next[1]))
	require.NoError(t, err)
	require.Equal(t, "processed", u.Query().Get("status"), "the next page keeps the filters")
	require.Equal(t, id, u.Query().Get("source"))
	p = b.get(u.RequestURI())
	require.Equal(t, []string{evs[n-1].ID}, ids(p.body))
	require.NotContains(t, p.body, "Older events")
}

// TestInboundAPIURL: with Config.APIURL the pages give senders that
// address, not the console's own host.
func TestInboundAPIURL(t *testing.T) {
	e := newAPIEnv(t)
	name, kind := "Shop", ingest.KindStandard
	src, _, err := e.svc.Inbound().CreateSource(context.Background(), e.ws, ingest.SourceInput{Name: &name, Kind: &kind,
		Mapping: json.RawMessage(orderMapping("Closed Won"))})
	require.NoError(t, err)
	con, err := console.New(console.Config{Keys: e.svc.Keys(), Inbound: e.svc.Inbound(), APIURL: "https://crm.example.com/"})
	require.NoError(t, err)
	srv := httptest.NewServer(con)
	t.Cleanup(srv.Close)
	b := newBrowser(t, srv)
	b.signIn(e.admin)
	for _, path := range []string{"/inbound", "/inbound/sources/" + src.ID} {
		p := b.get(path)
		require.Equal(t, http.StatusOK, p.status, path)
		require.Contains(t, p.body, "https://crm.example.com/api/v1/inbound/"+src.ID, path)
		require.NotContains(t, p.body, srv.URL+"/api/v1/inbound/", path)
	}
}
