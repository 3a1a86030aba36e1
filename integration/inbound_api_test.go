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
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
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
