package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

var inboundScenario = scenario{
	description: "signed Shopify orders/create posts to a shopify inbound source, each a new customer and order: " +
		"accept latency (request → 202) and, from the inbound log, receipt → records committed; with -rate " +
		"paced at that many posts a second, else as fast as -concurrency senders go (accepted/s, processed/s)",
	run: runInbound,
}

// inboundSecret is the client secret of the load's source.
const inboundSecret = "shpss_load0123456789abcdef0123456789"

// inboundMapping is the README's: the customer becomes an account, the
// order a won opportunity linked to it.
var inboundMapping = map[string]any{"targets": []any{
	map[string]any{"object": "account", "external_id": "'shopify-' + string(customer.id)",
		"fields": map[string]any{"name": "customer.first_name + ' ' + customer.last_name"}},
	map[string]any{"object": "opportunity", "external_id": "'shopify-' + string(id)",
		"fields": map[string]any{"name": "'Shopify order ' + name", "amount": "float(total_price)",
			"stage": "'Closed Won'", "account_id": "ref('account', 'shopify-' + string(customer.id))"}},
}}

// inboundOrder is an orders/create payload shaped as Shopify sends it,
// trimmed to what a shop's order carries around the mapped members.
const inboundOrder = `{"id":%d,"admin_graphql_api_id":"gid://shopify/Order/%d","name":"#%d","email":"buyer%d@example.com",` +
	`"created_at":"2024-03-01T17:02:46-05:00","updated_at":"2024-03-01T17:02:46-05:00","currency":"USD",` +
	`"financial_status":"paid","total_price":"199.65","subtotal_price":"188.65","total_tax":"11.00",` +
	`"customer":{"id":%d,"email":"buyer%d@example.com","first_name":"Buyer","last_name":"%d","state":"enabled"},` +
	`"line_items":[{"id":866550311766439020,"name":"IPod Nano - 8GB","price":"199.00","quantity":1,"sku":"IPOD2008PINK"}],` +
	`"shipping_address":{"first_name":"Steve","address1":"123 Shipping Street","city":"Shippington","zip":"40003","country_code":"US"}}`

func runInbound(ctx context.Context, t *target, o options) (map[string]any, error) {
	var src struct {
		ID string `json:"id"`
	}
	if _, err := t.call(ctx, "POST", "/api/v1/inbound-sources", t.admin, map[string]any{"name": "Load orders",
		"kind": "shopify", "secret": inboundSecret, "mapping": inboundMapping}, &src); err != nil {
		return nil, err
	}
	base := time.Now().UnixNano() / 1000 // distinct orders across runs on one database
	var seq atomic.Int64
	post := func(ctx context.Context) error {
		n := base + seq.Add(1)
		body := fmt.Appendf(nil, inboundOrder, n, n, n, n, n, n, n)
		m := hmac.New(sha256.New, []byte(inboundSecret))
		m.Write(body)
		req, err := http.NewRequestWithContext(ctx, "POST", t.url+"/api/v1/inbound/"+src.ID, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(m.Sum(nil)))
		req.Header.Set("X-Shopify-Webhook-Id", "load-"+strconv.FormatInt(n, 10))
		req.Header.Set("X-Shopify-Topic", "orders/create")
		resp, err := t.client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("POST inbound: %d %s", resp.StatusCode, bytes.TrimSpace(b))
		}
		return nil
	}
	var res map[string]any
	start := time.Now()
	if o.rate > 0 {
		var err error
		if res, err = paced(ctx, o, post); err != nil {
			return nil, err
		}
	} else {
		res = hammer(ctx, o, post)
	}
	elapsed := time.Since(start)
	accepted := res["requests"].(int) - res["errors"].(int)
	res["accepted"] = accepted
	res["accepted_per_s"] = round(float64(accepted) / elapsed.Seconds())
	res["accept_p50_ms"], res["accept_p99_ms"] = res["p50_ms"], res["p99_ms"]
	delete(res, "p50_ms")
	delete(res, "p99_ms")

	evs, err := drainInbound(ctx, t, src.ID, accepted, 2*time.Minute)
	if err != nil {
		return res, err
	}
	var lat []time.Duration
	var first, last time.Time
	failed := 0
	for _, e := range evs {
		if e.Status != "processed" {
			failed++
			continue
		}
		lat = append(lat, e.ProcessedAt.Sub(e.ReceivedAt))
		if first.IsZero() || e.ReceivedAt.Before(first) {
			first = e.ReceivedAt
		}
		if e.ProcessedAt.After(last) {
			last = *e.ProcessedAt
		}
	}
	slices.Sort(lat)
	res["processed"] = len(lat)
	res["failed_events"] = failed
	res["processed_p50_ms"] = round(ms(percentile(lat, 0.50)))
	res["processed_p99_ms"] = round(ms(percentile(lat, 0.99)))
	if span := last.Sub(first); len(lat) > 1 && span > 0 {
		res["processed_per_s"] = round(float64(len(lat)) / span.Seconds())
	}
	return res, nil
}

type loadEvent struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	ReceivedAt  time.Time  `json:"received_at"`
	ProcessedAt *time.Time `json:"processed_at"`
}

// drainInbound waits until the source's log holds at least want events,
// none still received, and answers them.
func drainInbound(ctx context.Context, t *target, srcID string, want int, limit time.Duration) ([]loadEvent, error) {
	deadline := time.Now().Add(limit)
	for {
		var all []loadEvent
		cursor := ""
		for {
			var page struct {
				Data       []loadEvent `json:"data"`
				NextCursor *string     `json:"next_cursor"`
			}
			path := "/api/v1/inbound-sources/" + srcID + "/events?limit=200"
			if cursor != "" {
				path += "&cursor=" + url.QueryEscape(cursor)
			}
			if _, err := t.call(ctx, "GET", path, t.admin, nil, &page); err != nil {
				return nil, err
			}
			all = append(all, page.Data...)
			if page.NextCursor == nil {
				break
			}
			cursor = *page.NextCursor
		}
		waiting := 0
		for _, e := range all {
			if e.Status == "received" {
				waiting++
			}
		}
		if waiting == 0 && len(all) >= want {
			return all, nil
		}
		if time.Now().After(deadline) {
			return nil, errors.New("inbound events still waiting to be processed: " + strconv.Itoa(waiting))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
