package ingest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/smartlite/crmkit/mapping"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/webhook"
)

// FuzzInboundVerify feeds arbitrary signature headers and bodies to the
// verification a delivery passes before anything is stored: it must never
// panic, and it may accept only a signature that is the HMAC of the body.
func FuzzInboundVerify(f *testing.F) {
	const shopSecret = "shpss_fuzz"
	stdSecret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"id":820982911946154508,"total_price":"199.65"}`)
	std, err := webhook.SignStandard(stdSecret, "msg_1", now, body)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(0, shopifyMAC(shopSecret, body), "", "", "", body)
	f.Add(0, "AAAA", "", "", "", body)
	f.Add(1, "", "msg_1", strconv.FormatInt(now.Unix(), 10), std, body)
	f.Add(1, "", "msg_1", "1700000000", "v1,AAAA v1a,x", body)
	f.Add(1, "", "", "-1", "v1,", []byte{})
	f.Add(2, "", "", "", webhook.Sign(stdSecret, now, body), body)
	f.Add(2, "", "", "", "t=,v1=zz", body)
	kinds := []string{KindShopify, KindStandard, KindSmartLite}
	f.Fuzz(func(t *testing.T, kind int, shop, id, ts, sig string, body []byte) {
		k := kinds[uint(kind)%uint(len(kinds))]
		h := http.Header{}
		h.Set(webhook.HeaderShopifyHmac, shop)
		h.Set(webhook.HeaderWebhookID, id)
		h.Set(webhook.HeaderWebhookTimestamp, ts)
		h.Set(webhook.HeaderWebhookSignature, sig)
		h.Set(webhook.HeaderSignature, sig)
		err := verifyDelivery(k, []string{shopSecret, stdSecret}, h, body, func() time.Time { return now })
		if err == nil && k == KindShopify && shop != shopifyMAC(shopSecret, body) && shop != shopifyMAC(stdSecret, body) {
			t.Fatalf("accepted a Shopify signature that is not the body's HMAC: %q", shop)
		}
		if err != nil && (len(err.Error()) > 200) {
			t.Fatalf("error too long to be a fixed explanation: %q", err)
		}
		_ = deliveryID(k, h)
		_ = redact(h)
	})
}

func shopifyMAC(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// FuzzInboundDocument maps arbitrary JSON with the Shopify mapping as
// processing does: it must never panic, and a document it plans has one
// output per target, each upserted target with its external id.
func FuzzInboundDocument(f *testing.F) {
	schema, err := records.NewValidator(records.DefaultObjects())
	if err != nil {
		f.Fatal(err)
	}
	spec, err := mapping.ParseSpec([]byte(`{"targets": [
	  {"object": "account", "external_id": "'shopify-' + string(customer.id)",
	   "fields": {"name": "customer.first_name + ' ' + customer.last_name", "website": "lower(trim(customer.email ?? ''))"}},
	  {"object": "opportunity", "external_id": "'shopify-' + string(id)",
	   "fields": {"name": "'Shopify order ' + name", "amount": "float(total_price)", "stage": "'Closed Won'",
	              "close_date": "date(created_at)", "probability": "int(len(line_items ?? []))",
	              "account_id": "ref('account', 'shopify-' + string(customer.id))"}}
	]}`))
	if err != nil {
		f.Fatal(err)
	}
	m, err := mapping.Compile(spec, schema)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"id":820982911946154508,"name":"#9999","total_price":"199.65","created_at":"2021-12-31T19:00:00-05:00","updated_at":"2021-12-31T19:00:00-05:00","customer":{"id":115310627314723954,"first_name":"John","last_name":"Smith"},"line_items":[{},{}]}`))
	f.Add([]byte(`{"id":1,"customer":null,"total_price":"abc","updated_at":"yesterday"}`))
	f.Add([]byte(`{"id":1e400,"customer":{"id":-0.0},"total_price":1e308,"line_items":"x"}`))
	f.Add([]byte(`[1,2,3]`))
	f.Add([]byte(`{"id":"x"} trailing`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, failure := planDocument(m, body, http.Header{webhook.HeaderShopifyTriggeredAt: {string(body)}})
		if failure != nil {
			if failure.Code == "" || failure.Message == "" {
				t.Fatalf("a failure without code or message: %+v", failure)
			}
			return
		}
		if len(p.outs) != 2 {
			t.Fatalf("%d outputs for 2 targets", len(p.outs))
		}
		for i, o := range p.outs {
			if p.upsert[i] && o.ExternalID == "" {
				t.Fatalf("target %d planned without its external id", i)
			}
		}
	})
}
