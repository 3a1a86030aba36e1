package integration

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/ingest"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
	"github.com/smartlite/crmkit/webhook"
)

// shopifySecret is a Shopify app's client secret, as the app's settings
// show it.
const shopifySecret = "shpss_0123456789abcdef0123456789abcdef"

// shopifyMapping is the README's mapping: the customer becomes an account,
// the order a won opportunity linked to it.
var shopifyMapping = map[string]any{"targets": []any{
	map[string]any{"object": "account", "external_id": "'shopify-' + string(customer.id)",
		"fields": map[string]any{"name": "customer.first_name + ' ' + customer.last_name"}},
	map[string]any{"object": "opportunity", "external_id": "'shopify-' + string(id)",
		"fields": map[string]any{"name": "'Shopify order ' + name", "amount": "float(total_price)",
			"stage": "'Closed Won'", "account_id": "ref('account', 'shopify-' + string(customer.id))"}},
}}

// shopifyOrder reads the orders/create fixture, shaped as Shopify documents
// it.
func shopifyOrder(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../webhook/testdata/shopify_orders_create.json")
	require.NoError(t, err)
	return bytes.TrimSpace(b)
}

// shopifySign computes X-Shopify-Hmac-Sha256 as Shopify does: the base64
// HMAC-SHA256 of the raw body keyed with the client secret.
func shopifySign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// orderWith answers the fixture order with members replaced at the top
// level (an id, an updated_at, a total), keeping every other byte's
// meaning.
func orderWith(t testing.TB, changes map[string]any) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(shopifyOrder(t)))
	dec.UseNumber()
	var doc map[string]any
	require.NoError(t, dec.Decode(&doc))
	for k, v := range changes {
		doc[k] = v
	}
	b, err := json.Marshal(doc)
	require.NoError(t, err)
	return b
}

// createSource makes an inbound source through the API and answers its
// JSON form.
func (e *env) createSource(t testing.TB, body map[string]any) map[string]any {
	t.Helper()
	r := e.do(t, "POST", "/api/v1/inbound-sources", e.admin, body)
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	return r.json(t)
}

// postShopify posts body to a source as Shopify would, signed with secret.
func (e *env) postShopify(t testing.TB, srcID, secret, webhookID string, body []byte) response {
	t.Helper()
	return e.do(t, "POST", "/api/v1/inbound/"+srcID, "", body,
		"X-Shopify-Hmac-Sha256", shopifySign(secret, body), "X-Shopify-Webhook-Id", webhookID,
		"X-Shopify-Topic", "orders/create", "X-Shopify-Shop-Domain", "jsmith.myshopify.com")
}

// waitEvent waits until an inbound event leaves status received and
// answers it.
func (e *env) waitEvent(t testing.TB, id string) map[string]any {
	t.Helper()
	var ev map[string]any
	require.Eventually(t, func() bool {
		r := e.do(t, "GET", "/api/v1/inbound-events/"+id, e.admin, nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		ev = r.json(t)
		return ev["status"] != "received"
	}, 20*time.Second, 10*time.Millisecond, "event %s not processed", id)
	return ev
}

// countRows counts a table's rows.
func countRows(t testing.TB, st *store.Store, table string) int {
	t.Helper()
	n, err := st.DB().NewSelect().Table(table).Count(context.Background())
	require.NoError(t, err)
	return int(n)
}

// TestInboundShopifyStory is the story: an admin creates a shopify
// source with the app's client secret and a mapping, Shopify posts
// orders/create signed as Shopify signs it, and an account and a won
// opportunity exist; the audit log names source inbound and the source,
// the Closed Won rule ran, and finance's webhook for won deals fired.
func TestInboundShopifyStory(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := startedEnv(t, dsn)
		rv := newHookReceiver(t)
		r := e.do(t, "POST", "/api/v1/webhooks", e.admin, map[string]any{"url": rv.URL + "/finance",
			"events": []string{"record.created", "record.updated"}, "objects": []string{"opportunity"},
			"condition": map[string]any{"field": "stage", "changed_to": "Closed Won"}})
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)

		src := e.createSource(t, map[string]any{"name": "Shopify orders", "kind": "shopify",
			"secret": shopifySecret, "mapping": shopifyMapping})
		srcID := src["id"].(string)
		require.True(t, strings.HasPrefix(srcID, "src_"), srcID)
		require.Equal(t, "/api/v1/inbound/"+srcID, src["url"])
		require.NotContains(t, src, "secret", "a given secret is not shown back")

		order := shopifyOrder(t)
		posted := time.Now()
		r = e.postShopify(t, srcID, shopifySecret, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", order)
		require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
		acc := r.json(t)
		require.Equal(t, "received", acc["status"])
		evID := acc["id"].(string)
		require.True(t, strings.HasPrefix(evID, "inb_"), evID)

		ev := e.waitEvent(t, evID)
		t.Logf("processed %s after the post", time.Since(posted))
		require.Equal(t, "processed", ev["status"], "event: %v", ev)
		require.Equal(t, string(order), ev["body"], "the raw body is kept byte for byte")
		headers := ev["headers"].(map[string]any)
		require.Equal(t, []any{"[redacted]"}, headers["X-Shopify-Hmac-Sha256"])
		require.Equal(t, []any{"orders/create"}, headers["X-Shopify-Topic"])
		require.NotContains(t, string(e.do(t, "GET", "/api/v1/inbound-events/"+evID, e.admin, nil).body), shopifySign(shopifySecret, order))
		written := ev["written"].([]any)
		require.Len(t, written, 2)
		account, opp := written[0].(map[string]any), written[1].(map[string]any)
		require.Equal(t, map[string]any{"object": "account", "id": account["id"], "external_id": "shopify-115310627314723954", "action": "created"}, account)
		require.Equal(t, "created", opp["action"])
		require.Equal(t, "shopify-820982911946154508", opp["external_id"])

		r = e.do(t, "GET", "/api/v1/records/opportunity/"+opp["id"].(string), e.admin, nil)
		require.Equal(t, http.StatusOK, r.status)
		fields := r.json(t)["fields"].(map[string]any)
		require.Equal(t, "Shopify order #9999", fields["name"])
		require.Equal(t, 199.65, fields["amount"])
		require.Equal(t, "Closed Won", fields["stage"])
		require.Equal(t, account["id"], fields["account_id"])
		require.Equal(t, "shopify-820982911946154508", fields["external_id"])
		require.NotEmpty(t, fields["closed_at"], "the Closed Won rule ran")
		r = e.do(t, "GET", "/api/v1/records/account/"+account["id"].(string), e.admin, nil)
		require.Equal(t, "John Smith", r.json(t)["fields"].(map[string]any)["name"])

		for _, w := range written {
			id := w.(map[string]any)["id"].(string)
			r = e.do(t, "GET", "/api/v1/audit?record_id="+id, e.admin, nil)
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			entries := r.json(t)["data"].([]any)
			require.Len(t, entries, 1)
			entry := entries[0].(map[string]any)
			require.Equal(t, "inbound", entry["source"])
			require.Equal(t, map[string]any{"kind": "inbound_source", "id": srcID}, entry["actor"])
		}

		require.Eventually(t, func() bool { return len(rv.requests()) == 1 }, 10*time.Second, 10*time.Millisecond,
			"finance's webhook for the won deal")
		var delivered records.Event
		require.NoError(t, json.Unmarshal(rv.requests()[0].body, &delivered))
		require.Equal(t, records.EventCreated, delivered.Type)
		require.Equal(t, opp["id"], delivered.Record.ID)
		require.Equal(t, records.SourceInbound, delivered.Source)

		// Shopify retries the same delivery: nothing new.
		before := countRows(t, e.st, "inbound_events")
		r = e.postShopify(t, srcID, shopifySecret, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", order)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		require.Equal(t, map[string]any{"id": evID, "status": "duplicate"}, r.json(t))
		require.Equal(t, before, countRows(t, e.st, "inbound_events"))
	})
}

// TestInboundSourcesAPI: sources through the ADMIN API, a generated
// secret shown once, mappings compiled on save with 422 naming target and
// field, and a preview that writes nothing.
func TestInboundSourcesAPI(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, Config{})
		src := e.createSource(t, map[string]any{"name": "Billing", "kind": "standard", "secret": nil, "mapping": shopifyMapping})
		id := src["id"].(string)
		secret, _ := src["secret"].(string)
		require.True(t, strings.HasPrefix(secret, "whsec_"), "a generated secret is shown once: %v", src)
		require.Equal(t, true, src["enabled"])
		require.EqualValues(t, 1<<20, src["max_body_bytes"])

		for _, path := range []string{"/api/v1/inbound-sources/" + id, "/api/v1/inbound-sources"} {
			r := e.do(t, "GET", path, e.admin, nil)
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			require.NotContains(t, string(r.body), secret, "%s shows the secret", path)
			require.NotContains(t, string(r.body), `"secret"`)
		}
		reader := e.key(t, e.ws, "READ")
		r := e.do(t, "GET", "/api/v1/inbound-sources", reader, nil)
		require.Equal(t, http.StatusForbidden, r.status)

		// Refusals name what is wrong.
		r = e.do(t, "POST", "/api/v1/inbound-sources", e.admin, map[string]any{"name": "Shop", "kind": "shopify", "mapping": shopifyMapping})
		require.Equal(t, http.StatusUnprocessableEntity, r.status, "body: %s", r.body)
		require.Contains(t, string(r.body), `"field":"secret"`)
		bad := map[string]any{"targets": []any{
			map[string]any{"object": "account", "external_id": "'x'", "fields": map[string]any{"name": "customer.first_name +"}},
			map[string]any{"object": "opportunity", "fields": map[string]any{"amount": "1", "colour": "'red'"}},
			map[string]any{"object": "invoice", "fields": map[string]any{"total": "1"}},
		}}
		r = e.do(t, "POST", "/api/v1/inbound-sources", e.admin, map[string]any{"name": "Shop", "kind": "shopify", "secret": "s", "mapping": bad})
		require.Equal(t, http.StatusUnprocessableEntity, r.status, "body: %s", r.body)
		require.Equal(t, "validation_failed", r.code(t))
		errs := map[string]string{}
		for _, fe := range r.json(t)["errors"].([]any) {
			m := fe.(map[string]any)
			errs[m["field"].(string)] = m["code"].(string) + ": " + m["message"].(string)
		}
		require.Contains(t, errs["mapping/targets/0/fields/name"], "compile: target 0 (account) name")
		require.Contains(t, errs["mapping/targets/1/fields/colour"], "unknown_field: target 1 (opportunity) colour")
		require.Contains(t, errs["mapping/targets/2/object"], "unknown_object: target 2 (invoice)")
		r = e.do(t, "PATCH", "/api/v1/inbound-sources/"+id, e.admin, map[string]any{"mapping": bad})
		require.Equal(t, http.StatusUnprocessableEntity, r.status, "body: %s", r.body)

		// A preview maps and validates, and writes nothing.
		counts := func() [3]int {
			return [3]int{countRows(t, e.st, "records"), countRows(t, e.st, "audit_entries"), countRows(t, e.st, "events")}
		}
		before := counts()
		r = e.do(t, "POST", "/api/v1/inbound-sources/"+id+"/preview", e.admin, shopifyOrder(t))
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		p := r.json(t)
		require.Equal(t, true, p["valid"], "preview: %s", r.body)
		recs := p["records"].([]any)
		require.Len(t, recs, 2)
		opp := recs[1].(map[string]any)
		require.Equal(t, "created", opp["action"])
		require.Equal(t, 199.65, opp["fields"].(map[string]any)["amount"])
		require.NotEmpty(t, opp["fields"].(map[string]any)["closed_at"], "the preview runs the workflow rules")
		require.Equal(t, before, counts(), "a preview writes nothing")

		r = e.do(t, "PATCH", "/api/v1/inbound-sources/"+id, e.admin, map[string]any{"mapping": map[string]any{"targets": []any{
			map[string]any{"object": "opportunity", "external_id": "string(id)",
				"fields": map[string]any{"name": "name", "stage": "'Won'"}}}}})
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		require.NotContains(t, string(r.body), `"secret"`)
		r = e.do(t, "POST", "/api/v1/inbound-sources/"+id+"/preview", e.admin, shopifyOrder(t))
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		p = r.json(t)
		require.Equal(t, false, p["valid"])
		perr := p["error"].(map[string]any)
		require.Equal(t, "validation_failed", perr["code"])
		require.Equal(t, "stage", perr["fields"].([]any)[0].(map[string]any)["field"])
		require.Equal(t, before, counts())

		// Rotation answers the new secret once; the old one verifies during
		// its grace period.
		r = e.do(t, "PATCH", "/api/v1/inbound-sources/"+id, e.admin, map[string]any{"rotate_secret": true, "grace_seconds": 3600})
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		next := r.json(t)["secret"].(string)
		require.NotEqual(t, secret, next)
		for i, s := range []string{secret, next} {
			body := []byte(`{"id": ` + strconv.Itoa(100+i) + `, "name": "Order"}`)
			h, err := webhook.Headers([]string{s}, "msg_rot"+strconv.Itoa(i), time.Now(), body)
			require.NoError(t, err)
			r = e.do(t, "POST", "/api/v1/inbound/"+id, "", body, "webhook-id", h.Get("webhook-id"),
				"webhook-timestamp", h.Get("webhook-timestamp"), "webhook-signature", h.Get("webhook-signature"))
			require.Equal(t, http.StatusAccepted, r.status, "secret %d: %s", i, r.body)
		}

		r = e.do(t, "DELETE", "/api/v1/inbound-sources/"+id, e.admin, nil)
		require.Equal(t, http.StatusNoContent, r.status)
		require.Zero(t, countRows(t, e.st, "inbound_events"), "the log goes with its source")
		r = e.do(t, "GET", "/api/v1/inbound-sources/"+id, e.admin, nil)
		require.Equal(t, http.StatusNotFound, r.status)
	})
}

// TestInboundRefusals: every kind is verified on the raw bytes before
// anything is stored; a bad, missing or stale signature, an unknown or a
// disabled source answer 401 and store nothing; an oversized body 413.
func TestInboundRefusals(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, Config{})
		shop := e.createSource(t, map[string]any{"name": "Shop", "kind": "shopify", "secret": shopifySecret,
			"mapping": shopifyMapping, "max_body_bytes": 8192})["id"].(string)
		std := e.createSource(t, map[string]any{"name": "Std", "kind": "standard", "mapping": shopifyMapping})
		stdID, stdSecret := std["id"].(string), std["secret"].(string)
		sl := e.createSource(t, map[string]any{"name": "SL", "kind": "smartlite", "mapping": shopifyMapping})
		slID, slSecret := sl["id"].(string), sl["secret"].(string)
		off := e.createSource(t, map[string]any{"name": "Off", "kind": "shopify", "secret": shopifySecret,
			"mapping": shopifyMapping, "enabled": false})["id"].(string)

		order := shopifyOrder(t)
		counts := func() [3]int {
			return [3]int{countRows(t, e.st, "inbound_events"), countRows(t, e.st, "river_job"), countRows(t, e.st, "records")}
		}
		before := counts()
		stdHeaders := func(secret string, at time.Time, body []byte) []string {
			h, err := webhook.Headers([]string{secret}, "msg_1", at, body)
			require.NoError(t, err)
			return []string{"webhook-id", h.Get("webhook-id"), "webhook-timestamp", h.Get("webhook-timestamp"), "webhook-signature", h.Get("webhook-signature")}
		}
		tampered := bytes.Replace(order, []byte(`"199.65"`), []byte(`"1.00"`), 1)
		cases := []struct {
			name   string
			src    string
			body   []byte
			header []string
		}{
			{"shopify, signature of other bytes", shop, tampered, []string{"X-Shopify-Hmac-Sha256", shopifySign(shopifySecret, order)}},
			{"shopify, wrong secret", shop, order, []string{"X-Shopify-Hmac-Sha256", shopifySign("shpss_other", order)}},
			{"shopify, no signature", shop, order, nil},
			{"shopify, malformed signature", shop, order, []string{"X-Shopify-Hmac-Sha256", "not base64!"}},
			{"standard, wrong secret", stdID, order, stdHeaders("whsec_"+base64.StdEncoding.EncodeToString(make([]byte, 32)), time.Now(), order)},
			{"standard, stale timestamp", stdID, order, stdHeaders(stdSecret, time.Now().Add(-10*time.Minute), order)},
			{"standard, no signature", stdID, order, nil},
			{"standard, shopify signature", stdID, order, []string{"X-Shopify-Hmac-Sha256", shopifySign(stdSecret, order)}},
			{"smartlite, stale", slID, order, []string{"X-SmartLite-Signature", webhook.Sign(slSecret, time.Now().Add(-time.Hour), order)}},
			{"smartlite, wrong secret", slID, order, []string{"X-SmartLite-Signature", webhook.Sign("whsec_x", time.Now(), order)}},
			{"unknown source", "src_01hzy3v6b5q6c8n9d0e1f2g3h4", order, []string{"X-Shopify-Hmac-Sha256", shopifySign(shopifySecret, order)}},
			{"disabled source", off, order, []string{"X-Shopify-Hmac-Sha256", shopifySign(shopifySecret, order)}},
		}
		for _, c := range cases {
			r := e.do(t, "POST", "/api/v1/inbound/"+c.src, "", c.body, c.header...)
			require.Equal(t, http.StatusUnauthorized, r.status, "%s: %s", c.name, r.body)
			require.Equal(t, "invalid_signature", r.code(t), c.name)
		}
		require.Equal(t, before, counts(), "refused deliveries store nothing")

		big := orderWith(t, map[string]any{"note": strings.Repeat("x", 9000)})
		r := e.postShopify(t, shop, shopifySecret, "big", big)
		require.Equal(t, http.StatusRequestEntityTooLarge, r.status, "body: %s", r.body)
		require.Equal(t, before, counts())

		// Each kind accepts what it signs.
		r = e.postShopify(t, shop, shopifySecret, "ok-1", order)
		require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
		r = e.do(t, "POST", "/api/v1/inbound/"+stdID, "", order, stdHeaders(stdSecret, time.Now(), order)...)
		require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
		r = e.do(t, "POST", "/api/v1/inbound/"+slID, "", order, "X-SmartLite-Signature", webhook.Sign(slSecret, time.Now(), order))
		require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
		require.Equal(t, before[0]+3, countRows(t, e.st, "inbound_events"))
		require.Equal(t, before[1]+3, countRows(t, e.st, "river_job"), "one job per accepted event")
	})
}

// TestInboundFailuresAndRetry: a document the pipeline refuses fails its
// event with the field named and writes nothing; once the mapping is
// fixed, retrying one event or all failed since a time writes them. A plan
// cap stops the write and is logged on the event.
func TestInboundFailuresAndRetry(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		plans := append(records.DefaultPlans(), records.Plan{Name: "tiny", MaxRecords: 1, RequestsPerMinute: 6000})
		e := newEnv(t, dsn, Config{Plans: plans})
		require.NoError(t, e.svc.Start(context.Background()))
		broken := map[string]any{"targets": []any{
			shopifyMapping["targets"].([]any)[0],
			map[string]any{"object": "opportunity", "external_id": "'shopify-' + string(id)",
				"fields": map[string]any{"name": "'Shopify order ' + name", "stage": "'Won'",
					"account_id": "ref('account', 'shopify-' + string(customer.id))"}},
		}}
		src := e.createSource(t, map[string]any{"name": "Shop", "kind": "shopify", "secret": shopifySecret, "mapping": broken})["id"].(string)

		var failed []string
		for i := range 3 {
			body := orderWith(t, map[string]any{"id": 1000 + i, "name": "#" + strconv.Itoa(1000+i)})
			r := e.postShopify(t, src, shopifySecret, "fail-"+strconv.Itoa(i), body)
			require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
			failed = append(failed, r.json(t)["id"].(string))
		}
		for _, id := range failed {
			ev := e.waitEvent(t, id)
			require.Equal(t, "failed", ev["status"], "event: %v", ev)
			evErr := ev["error"].(map[string]any)
			require.Equal(t, "validation_failed", evErr["code"])
			require.EqualValues(t, 1, evErr["target"])
			require.Equal(t, "opportunity", evErr["object"])
			require.Equal(t, "stage", evErr["fields"].([]any)[0].(map[string]any)["field"])
			require.Nil(t, ev["written"])
		}
		require.Zero(t, countRows(t, e.st, "records"), "a refused document writes none of its targets")
		r := e.do(t, "GET", "/api/v1/inbound-sources/"+src+"/events?status=failed", e.admin, nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		require.Len(t, r.json(t)["data"].([]any), 3)

		r = e.do(t, "PATCH", "/api/v1/inbound-sources/"+src, e.admin, map[string]any{"mapping": shopifyMapping})
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		r = e.do(t, "POST", "/api/v1/inbound-events/"+failed[0]+"/retry", e.admin, nil)
		require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
		ev := e.waitEvent(t, failed[0])
		require.Equal(t, "processed", ev["status"], "event: %v", ev)
		require.EqualValues(t, 2, ev["attempts"])
		require.Equal(t, "created", ev["written"].([]any)[1].(map[string]any)["action"])

		r = e.do(t, "POST", "/api/v1/inbound-events/retry", e.admin, map[string]any{"source_id": src, "status": "failed",
			"since": time.Now().Add(-time.Hour).Format(time.RFC3339)})
		require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
		require.EqualValues(t, 2, r.json(t)["retried"])
		for _, id := range failed[1:] {
			ev := e.waitEvent(t, id)
			require.Equal(t, "processed", ev["status"], "event: %v", ev)
			w := ev["written"].([]any)
			require.Equal(t, "unchanged", w[0].(map[string]any)["action"], "the customer's account exists already")
			require.Equal(t, "created", w[1].(map[string]any)["action"])
		}
		require.Equal(t, 4, countRows(t, e.st, "records"))

		// A workspace at its plan's cap: the event fails with the limit,
		// and nothing of the document is written.
		require.NoError(t, e.svc.SetPlan(context.Background(), e.ws, "tiny"))
		capped := e.createSource(t, map[string]any{"name": "Capped", "kind": "shopify", "secret": shopifySecret, "mapping": shopifyMapping})["id"].(string)
		_ = capped
		r = e.postShopify(t, capped, shopifySecret, "cap-1", orderWith(t, map[string]any{"id": 2000, "customer": map[string]any{"id": 77, "first_name": "Ann", "last_name": "Lee"}}))
		require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
		ev = e.waitEvent(t, r.json(t)["id"].(string))
		require.Equal(t, "failed", ev["status"])
		require.Equal(t, "plan_limit_exceeded", ev["error"].(map[string]any)["code"])
		require.Equal(t, 4, countRows(t, e.st, "records"))

		r = e.do(t, "POST", "/api/v1/inbound-events/inb_nope/retry", e.admin, nil)
		require.Equal(t, http.StatusNotFound, r.status)
	})
}

// TestInboundStale: a document older than the one last applied to a record
// leaves the record alone and is processed with action stale; a newer one
// updates it.
func TestInboundStale(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := startedEnv(t, dsn)
		src := e.createSource(t, map[string]any{"name": "Shop", "kind": "shopify", "secret": shopifySecret, "mapping": shopifyMapping})["id"].(string)
		post := func(hook, updated, total string) map[string]any {
			r := e.postShopify(t, src, shopifySecret, hook, orderWith(t, map[string]any{"updated_at": updated, "total_price": total}))
			require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
			return e.waitEvent(t, r.json(t)["id"].(string))
		}
		actions := func(ev map[string]any) []string {
			var out []string
			for _, w := range ev["written"].([]any) {
				out = append(out, w.(map[string]any)["action"].(string))
			}
			return out
		}
		ev := post("v2", "2024-03-01T12:00:00-05:00", "250.00")
		require.Equal(t, []string{"created", "created"}, actions(ev))
		oppID := ev["written"].([]any)[1].(map[string]any)["id"].(string)
		amount := func() any {
			r := e.do(t, "GET", "/api/v1/records/opportunity/"+oppID, e.admin, nil)
			return r.json(t)["fields"].(map[string]any)["amount"]
		}
		ev = post("v1", "2024-03-01T11:00:00-05:00", "100.00")
		require.Equal(t, "processed", ev["status"])
		require.Equal(t, []string{"stale", "stale"}, actions(ev))
		require.Equal(t, oppID, ev["written"].([]any)[1].(map[string]any)["id"])
		require.Equal(t, 250.0, amount(), "an older document does not overwrite newer data")
		ev = post("v3", "2024-03-01T18:00:00Z", "300.00")
		require.Equal(t, []string{"unchanged", "updated"}, actions(ev))
		require.Equal(t, 300.0, amount())
	})
}

// TestInboundDuplicates: a delivery id seen once is a duplicate after a
// restart and on another replica, and two replicas receiving it at once
// store it once.
func TestInboundDuplicates(t *testing.T) {
	dsn := testdb.PostgresDSN(t)
	a := newEnv(t, dsn, Config{})
	src := a.createSource(t, map[string]any{"name": "Shop", "kind": "shopify", "secret": shopifySecret, "mapping": shopifyMapping})["id"].(string)
	order := shopifyOrder(t)
	r := a.postShopify(t, src, shopifySecret, "restart-1", order)
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	first := r.json(t)["id"]
	require.NoError(t, a.svc.Stop(context.Background()))

	// Another process on the same database: a restart, or a second replica.
	b := newEnv(t, dsn, Config{})
	before := countRows(t, b.st, "inbound_events")
	r = b.postShopify(t, src, shopifySecret, "restart-1", order)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.Equal(t, map[string]any{"id": first, "status": "duplicate"}, r.json(t))
	require.Equal(t, before, countRows(t, b.st, "inbound_events"))

	c := newEnv(t, dsn, Config{})
	for i := range 10 {
		hook := "race-" + strconv.Itoa(i)
		statuses := make(chan int, 4)
		for _, e := range []*env{a, b, c, a} {
			go func() { statuses <- e.postShopify(t, src, shopifySecret, hook, order).status }()
		}
		got := map[int]int{}
		for range 4 {
			got[<-statuses]++
		}
		require.Equal(t, map[int]int{http.StatusAccepted: 1, http.StatusOK: 3}, got, "delivery %s", hook)
	}
	require.Equal(t, before+10, countRows(t, a.st, "inbound_events"))
	r = b.do(t, "GET", "/api/v1/inbound-events?status=duplicate", b.key(t, a.ws, "ADMIN"), nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.Len(t, r.json(t)["data"].([]any), 11)
}

// TestInboundSurviveKill: signed orders are accepted while the reference
// server processes them, the server is killed with SIGKILL with events
// still waiting, and after a restart every stored event is processed
// exactly once: one opportunity per order, one record.created event and
// one audit entry per record.
func TestInboundSurviveKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the reference server and kills it")
	}
	bin := buildReferenceServer(t)
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		dir := t.TempDir()
		keyFile := filepath.Join(dir, "admin.key")
		args := []string{"-db", dsn, "-admin-key-file", keyFile}
		srv := runServer(t, bin, dir, args...)
		admin := adminKey(t, keyFile)
		status, src := srv.call(t, "POST", "/api/v1/inbound-sources", admin, map[string]any{"name": "Shop", "kind": "shopify",
			"secret": shopifySecret, "mapping": shopifyMapping})
		require.Equal(t, http.StatusCreated, status, "%v", src)
		srcID := src["id"].(string)

		st, err := store.Open(ctx, dsn)
		require.NoError(t, err)
		defer st.Close()

		var accepted atomicCounter
		stop := make(chan struct{})
		done := make(chan struct{})
		for w := range 8 {
			go func() {
				defer func() { done <- struct{}{} }()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					n := 1_000_000*(w+1) + i
					body := orderWith(t, map[string]any{"id": n, "name": "#" + strconv.Itoa(n),
						"customer": map[string]any{"id": n, "first_name": "Buyer", "last_name": strconv.Itoa(n)}})
					req, err := http.NewRequest("POST", srv.url+"/api/v1/inbound/"+srcID, bytes.NewReader(body))
					require.NoError(t, err)
					req.Header.Set("X-Shopify-Hmac-Sha256", shopifySign(shopifySecret, body))
					req.Header.Set("X-Shopify-Webhook-Id", "kill-"+strconv.Itoa(n))
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						return // the server is gone
					}
					_ = resp.Body.Close()
					if resp.StatusCode == http.StatusAccepted {
						accepted.add()
					}
				}
			}()
		}
		require.Eventually(t, func() bool { return accepted.get() >= 150 }, 60*time.Second, 5*time.Millisecond)
		srv.kill(t)
		close(stop)
		for range 8 {
			<-done
		}
		waiting := func() int {
			evs, err := st.ListInboundEvents(ctx, ingest.InboundEventQuery{Workspace: "ws_default", Status: ingest.StatusReceived, Limit: 100_000})
			require.NoError(t, err)
			return len(evs)
		}
		pending := waiting()
		t.Logf("killed after %d accepted deliveries, %d stored events not processed yet", accepted.get(), pending)
		require.Positive(t, pending, "the kill came before every event was processed")

		srv = runServer(t, bin, dir, args...)
		restarted := time.Now()
		require.Eventually(t, func() bool { return waiting() == 0 }, 90*time.Second, 50*time.Millisecond,
			"events still waiting after the restart")
		t.Logf("every event processed %.1fs after the restart", time.Since(restarted).Seconds())

		evs, err := st.ListInboundEvents(ctx, ingest.InboundEventQuery{Workspace: "ws_default", Limit: 100_000})
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(evs), accepted.get(), "every accepted delivery is stored")
		opps := map[string]string{}
		for _, ev := range evs {
			require.Equal(t, ingest.StatusProcessed, ev.Status, "event %s: %+v", ev.ID, ev.Error)
			require.Equal(t, 1, ev.Attempts, "event %s processed more than once", ev.ID)
			require.Len(t, ev.Written, 2)
			require.Equal(t, ingest.ActionCreated, ev.Written[1].Action)
			_, seen := opps[ev.Written[1].ExternalID]
			require.False(t, seen, "order %s written by two events", ev.Written[1].ExternalID)
			opps[ev.Written[1].ExternalID] = ev.Written[1].ID
		}
		count := func(q string, args ...any) int {
			var n int
			require.NoError(t, st.DB().NewRaw(q, args...).Scan(ctx, &n))
			return n
		}
		require.Equal(t, len(evs), count("SELECT count(*) FROM records WHERE object = 'opportunity'"), "one opportunity per order")
		require.Equal(t, 2*len(evs), count("SELECT count(*) FROM records"))
		require.Equal(t, 2*len(evs), count("SELECT count(*) FROM events WHERE type = 'record.created'"), "one created event per record")
		require.Equal(t, 2*len(evs), count("SELECT count(DISTINCT record_id) FROM events"))
		require.Equal(t, 2*len(evs), count("SELECT count(*) FROM audit_entries"))
	})
}

// TestInboundReadme runs the README's Shopify walk-through, the shell block
// as written (openssl signs, curl posts), against the reference server: only
// the admin key is pasted in, the address replaced by the test server's,
// and the sample order's path made absolute.
func TestInboundReadme(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	for _, tool := range []string{"sh", "curl", "sed", "openssl", "base64"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the README's walk-through needs %s", tool)
		}
	}
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	section := string(readme)[strings.Index(string(readme), "## Inbound webhooks"):]
	start := strings.Index(section, "```sh\n") + len("```sh\n")
	script := section[start : start+strings.Index(section[start:], "```")]

	dir := t.TempDir()
	keyFile := filepath.Join(dir, "admin.key")
	srv := runServer(t, buildReferenceServer(t), dir, "-db", filepath.Join(dir, "crmkit.db"), "-admin-key-file", keyFile)
	key, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	order, err := filepath.Abs("../webhook/testdata/shopify_orders_create.json")
	require.NoError(t, err)
	for _, s := range []string{"ADMIN_KEY=slk_…", "http://localhost:8080", "ORDER=webhook/testdata/shopify_orders_create.json"} {
		require.Contains(t, script, s)
	}
	script = strings.Replace(script, "ADMIN_KEY=slk_…", "ADMIN_KEY="+strings.TrimSpace(string(key)), 1)
	script = strings.ReplaceAll(script, "http://localhost:8080", srv.url)
	script = strings.Replace(script, "ORDER=webhook/testdata/shopify_orders_create.json", "ORDER="+order, 1)
	cmd := exec.Command("sh", "-eu", "-c", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "output:\n%s", out)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, 4, "output:\n%s", out)
	require.Regexp(t, `^src_[0-9a-z]+$`, lines[0])
	require.Regexp(t, `^\{"id":"inb_[0-9a-z]+","status":"received"\}$`, lines[1])
	require.Contains(t, lines[2], `"name":"Shopify order #9999"`)
	require.Contains(t, lines[2], `"amount":199.65`)
	require.Contains(t, lines[2], `"stage":"Closed Won"`)
	require.Contains(t, lines[2], `"closed_at":"`)
	require.Contains(t, lines[3], `"status":"processed"`)
	require.Contains(t, lines[3], `"object":"opportunity"`)
	require.Contains(t, lines[3], `"action":"created"`)
}
