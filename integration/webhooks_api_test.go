package integration

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// hookReceiver is a loopback webhook receiver that keeps every request.
type hookReceiver struct {
	*httptest.Server
	mu   sync.Mutex
	got  []hookRequest
	fail func(n int) int // status to answer the n-th request with; nil: 200
}

type hookRequest struct {
	header http.Header
	body   []byte
}

func newHookReceiver(t *testing.T) *hookReceiver {
	t.Helper()
	rv := &hookReceiver{}
	rv.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rv.mu.Lock()
		rv.got = append(rv.got, hookRequest{header: r.Header.Clone(), body: b})
		n, fail := len(rv.got), rv.fail
		rv.mu.Unlock()
		status := http.StatusOK
		if fail != nil {
			status = fail(n)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rv.Close)
	return rv
}

func (rv *hookReceiver) requests() []hookRequest {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return append([]hookRequest(nil), rv.got...)
}

// startedEnv is an env whose background jobs run, with private webhook
// targets allowed (receivers are on loopback) and quick retries.
func startedEnv(t *testing.T, dsn string) *env {
	t.Helper()
	e := newEnv(t, dsn, Config{AllowPrivateWebhooks: true,
		Webhooks: outbound.Config{Schedule: []time.Duration{50 * time.Millisecond}, Jitter: -1}})
	require.NoError(t, e.svc.Start(context.Background()))
	return e
}

// TestWebhookStory is the story: an admin registers an endpoint for
// opportunity updates that close the deal, a deal is moved to Closed Won
// through the API, and the receiver gets record.updated with the change and
// checks X-SmartLite-Signature by recomputing the HMAC.
func TestWebhookStory(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := startedEnv(t, dsn)
		rv := newHookReceiver(t)

		r := e.do(t, "POST", "/api/v1/webhooks", e.admin, map[string]any{
			"url": rv.URL + "/crm", "events": []string{"record.updated"}, "objects": []string{"opportunity"},
			"condition": map[string]any{"field": "stage", "changed_to": "Closed Won"}, "description": "Finance"})
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		created := r.json(t)
		secret := created["secret"].(string)
		endpointID := created["id"].(string)
		require.True(t, strings.HasPrefix(secret, "whsec_"))
		require.True(t, strings.HasPrefix(endpointID, "whk_"))
		require.Equal(t, "/api/v1/webhooks/"+endpointID, r.header.Get("Location"))

		deal := e.create(t, e.admin, "opportunity", map[string]any{"name": "Acme renewal", "amount": 48000, "stage": "Negotiation"})
		id := deal["id"].(string)
		r = e.do(t, "PATCH", "/api/v1/records/opportunity/"+id, e.admin, map[string]any{"fields": map[string]any{"amount": 50000}})
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		r = e.do(t, "PATCH", "/api/v1/records/opportunity/"+id, e.admin, map[string]any{"fields": map[string]any{"stage": "Closed Won"}})
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)

		require.Eventually(t, func() bool { return len(rv.requests()) >= 1 }, 30*time.Second, 20*time.Millisecond)
		got := rv.requests()[0]

		sig := got.header.Get("X-SmartLite-Signature")
		parts := strings.Split(sig, ",")
		require.Len(t, parts, 2, sig)
		ts, v1 := strings.TrimPrefix(parts[0], "t="), strings.TrimPrefix(parts[1], "v1=")
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(ts + "." + string(got.body)))
		require.Equal(t, hex.EncodeToString(mac.Sum(nil)), v1, "the HMAC recomputed with the endpoint secret matches")

		var payload struct {
			ID        string `json:"id"`
			Type      string `json:"type"`
			Workspace string `json:"workspace_id"`
			Data      struct {
				Object string `json:"object"`
				Record struct {
					ID      string         `json:"id"`
					Version int            `json:"version"`
					Fields  map[string]any `json:"fields"`
				} `json:"record"`
				Changes map[string]struct {
					From any `json:"from"`
					To   any `json:"to"`
				} `json:"changes"`
				Source string            `json:"source"`
				Actor  map[string]string `json:"actor"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(got.body, &payload))
		require.Equal(t, "record.updated", payload.Type)
		require.Equal(t, got.header.Get("webhook-id"), payload.ID)
		require.Equal(t, e.ws, payload.Workspace)
		require.Equal(t, "opportunity", payload.Data.Object)
		require.Equal(t, id, payload.Data.Record.ID)
		require.Equal(t, 3, payload.Data.Record.Version)
		require.Equal(t, "Negotiation", payload.Data.Changes["stage"].From)
		require.Equal(t, "Closed Won", payload.Data.Changes["stage"].To)
		require.Contains(t, payload.Data.Record.Fields, "closed_at", "the Closed Won rule ran before the event")
		require.Equal(t, "api", payload.Data.Source)
		require.Equal(t, "api_key", payload.Data.Actor["kind"])

		// The log shows one successful delivery; the amount change and the
		// creation did not match.
		r = e.do(t, "GET", "/api/v1/webhooks/"+endpointID+"/deliveries", e.admin, nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		var list struct {
			Data       []outbound.Delivery `json:"data"`
			NextCursor *string             `json:"next_cursor"`
		}
		require.NoError(t, json.Unmarshal(r.body, &list))
		require.Len(t, list.Data, 1)
		require.Nil(t, list.NextCursor)
		d := list.Data[0]
		require.Equal(t, payload.ID, d.EventID)
		require.Eventually(t, func() bool {
			r = e.do(t, "GET", "/api/v1/deliveries/"+d.ID, e.admin, nil)
			return r.json(t)["status"] == "succeeded"
		}, 30*time.Second, 20*time.Millisecond)
		m := r.json(t)
		attempts := m["attempts"].([]any)
		require.Len(t, attempts, 1)
		a := attempts[0].(map[string]any)
		require.EqualValues(t, 1, a["number"])
		require.EqualValues(t, 200, a["status_code"])
		require.Equal(t, "scheduled", a["trigger"])
		require.Contains(t, a, "duration_ms")
		require.Contains(t, a, "at")
		require.Len(t, rv.requests(), 1)
	})
}

func TestWebhookAPI(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := startedEnv(t, dsn)
		rv := newHookReceiver(t)
		create := func(body map[string]any) map[string]any {
			t.Helper()
			r := e.do(t, "POST", "/api/v1/webhooks", e.admin, body)
			require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
			return r.json(t)
		}
		first := create(map[string]any{"url": rv.URL + "/a", "events": []string{"*"}})
		second := create(map[string]any{"url": rv.URL + "/b", "events": []string{"record.created"}, "enabled": false})
		id := first["id"].(string)

		t.Run("list and get", func(t *testing.T) {
			r := e.do(t, "GET", "/api/v1/webhooks?limit=1", e.admin, nil)
			require.Equal(t, http.StatusOK, r.status)
			page := r.json(t)
			require.Len(t, page["data"], 1)
			require.NotContains(t, page["data"].([]any)[0], "secret", "lists never show secrets")
			r = e.do(t, "GET", "/api/v1/webhooks?cursor="+page["next_cursor"].(string), e.admin, nil)
			require.Equal(t, second["id"], r.json(t)["data"].([]any)[0].(map[string]any)["id"])

			r = e.do(t, "GET", "/api/v1/webhooks/"+id, e.admin, nil)
			require.Equal(t, http.StatusOK, r.status)
			got := r.json(t)
			require.Equal(t, rv.URL+"/a", got["url"])
			require.Equal(t, true, got["enabled"])
			require.NotContains(t, got, "secret")
			require.NotContains(t, string(r.body), first["secret"].(string))
		})

		t.Run("workspace isolation and scope", func(t *testing.T) {
			_, otherAdmin := e.workspace(t, "enterprise")
			require.Equal(t, http.StatusNotFound, e.do(t, "GET", "/api/v1/webhooks/"+id, otherAdmin, nil).status)
			require.Equal(t, http.StatusNotFound, e.do(t, "DELETE", "/api/v1/webhooks/"+id, otherAdmin, nil).status)
			r := e.do(t, "GET", "/api/v1/webhooks", otherAdmin, nil)
			require.Equal(t, []any{}, r.json(t)["data"])
			writer := e.key(t, e.ws, apikey.ScopeWrite)
			r = e.do(t, "GET", "/api/v1/webhooks", writer, nil)
			require.Equal(t, http.StatusForbidden, r.status)
			require.Equal(t, "missing_scope", r.code(t))
		})

		t.Run("update", func(t *testing.T) {
			r := e.do(t, "PATCH", "/api/v1/webhooks/"+id, e.admin, map[string]any{
				"events": []string{"record.updated"}, "condition": map[string]any{"field": "stage", "changed_to": "Closed Won"}})
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			got := r.json(t)
			require.Equal(t, []any{"record.updated"}, got["events"])
			require.Equal(t, rv.URL+"/a", got["url"], "members left out stay")
			require.Equal(t, "Closed Won", got["condition"].(map[string]any)["changed_to"])
			r = e.do(t, "PATCH", "/api/v1/webhooks/"+id, e.admin, `{"condition": null, "events": ["*"]}`)
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			require.Nil(t, r.json(t)["condition"])
			r = e.do(t, "PATCH", "/api/v1/webhooks/"+id, e.admin, map[string]any{"events": []string{"record.archived"}})
			require.Equal(t, http.StatusUnprocessableEntity, r.status)
			require.Equal(t, "validation_failed", r.code(t))
			r = e.do(t, "PATCH", "/api/v1/webhooks/"+id, e.admin, map[string]any{"urll": "x"})
			require.Equal(t, http.StatusBadRequest, r.status)
		})

		t.Run("rotate secret", func(t *testing.T) {
			r := e.do(t, "POST", "/api/v1/webhooks/"+id+"/rotate-secret", e.admin, map[string]any{"grace_seconds": 3600})
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			got := r.json(t)
			require.NotEqual(t, first["secret"], got["secret"])
			require.True(t, strings.HasPrefix(got["secret"].(string), "whsec_"))
			require.Contains(t, got, "previous_secret_expires_at")
			r = e.do(t, "POST", "/api/v1/webhooks/"+id+"/rotate-secret", e.admin, map[string]any{"grace_seconds": -1})
			require.Equal(t, http.StatusUnprocessableEntity, r.status)
		})

		t.Run("send test", func(t *testing.T) {
			r := e.do(t, "POST", "/api/v1/webhooks/"+id+"/test", e.admin, nil)
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			got := r.json(t)
			require.Equal(t, true, got["succeeded"])
			require.EqualValues(t, 200, got["status_code"])
			reqs := rv.requests()
			last := reqs[len(reqs)-1]
			require.Equal(t, outbound.TestEventType, last.header.Get("X-SmartLite-Event"))
		})

		t.Run("deliveries, redeliver and replay", func(t *testing.T) {
			rv.mu.Lock()
			rv.fail = func(int) int { return http.StatusInternalServerError }
			rv.mu.Unlock()
			since := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
			e.create(t, e.admin, "account", map[string]any{"name": "Acme"})
			var dlv string
			require.Eventually(t, func() bool {
				r := e.do(t, "GET", "/api/v1/deliveries?status=failed", e.admin, nil)
				data := r.json(t)["data"].([]any)
				if len(data) == 1 {
					dlv = data[0].(map[string]any)["id"].(string)
				}
				return len(data) == 1
			}, 30*time.Second, 20*time.Millisecond)
			r := e.do(t, "GET", "/api/v1/deliveries/"+dlv, e.admin, nil)
			got := r.json(t)
			require.Len(t, got["attempts"], 2)
			require.Equal(t, "http_status", got["attempts"].([]any)[0].(map[string]any)["error_kind"])
			r = e.do(t, "GET", "/api/v1/webhooks/"+id+"/deliveries?status=succeeded", e.admin, nil)
			require.Equal(t, []any{}, r.json(t)["data"])
			r = e.do(t, "GET", "/api/v1/deliveries?status=bogus", e.admin, nil)
			require.Equal(t, http.StatusUnprocessableEntity, r.status)

			rv.mu.Lock()
			rv.fail = nil
			rv.mu.Unlock()
			r = e.do(t, "POST", "/api/v1/deliveries/"+dlv+"/redeliver", e.admin, nil)
			require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
			require.Equal(t, "pending", r.json(t)["status"])
			require.Eventually(t, func() bool {
				return e.do(t, "GET", "/api/v1/deliveries/"+dlv, e.admin, nil).json(t)["status"] == "succeeded"
			}, 30*time.Second, 20*time.Millisecond)
			attempts := e.do(t, "GET", "/api/v1/deliveries/"+dlv, e.admin, nil).json(t)["attempts"].([]any)
			require.Equal(t, "manual", attempts[len(attempts)-1].(map[string]any)["trigger"])

			r = e.do(t, "POST", "/api/v1/deliveries/replay", e.admin, map[string]any{"since": since, "endpoint_id": id})
			require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
			require.EqualValues(t, 0, r.json(t)["replayed"], "nothing failed is left")
			r = e.do(t, "POST", "/api/v1/deliveries/replay", e.admin, map[string]any{})
			require.Equal(t, http.StatusUnprocessableEntity, r.status)
			r = e.do(t, "POST", "/api/v1/deliveries/nope/redeliver", e.admin, nil)
			require.Equal(t, http.StatusNotFound, r.status)
		})

		t.Run("delete", func(t *testing.T) {
			r := e.do(t, "DELETE", "/api/v1/webhooks/"+id, e.admin, nil)
			require.Equal(t, http.StatusNoContent, r.status)
			require.Equal(t, http.StatusNotFound, e.do(t, "GET", "/api/v1/webhooks/"+id, e.admin, nil).status)
		})
	})
}

// TestWebhookSSRFRefusal: without the opt-in, private targets are refused
// with 422 and a message that names the reference server's switch.
func TestWebhookSSRFRefusal(t *testing.T) {
	e := newEnv(t, testdb.SQLiteDSN(t), Config{})
	for _, url := range []string{"http://127.0.0.1:8081/hook", "http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data/", "ftp://127.0.0.1/"} {
		r := e.do(t, "POST", "/api/v1/webhooks", e.admin, map[string]any{"url": url, "events": []string{"*"}})
		require.Equal(t, http.StatusUnprocessableEntity, r.status, "body: %s", r.body)
		require.Equal(t, "validation_failed", r.code(t))
		if !strings.HasPrefix(url, "ftp") {
			require.Contains(t, string(r.body), "-allow-private-webhooks")
			require.Contains(t, string(r.body), "CRMKIT_ALLOW_PRIVATE_WEBHOOKS")
		}
	}
}
