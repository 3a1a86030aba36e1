package integration

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/internal/testdb"
)

// TestHostileInputsAnswer4xx: inputs no database can store (a NUL
// character, bytes that are not UTF-8) and malformed requests answer 4xx on
// every path that takes them, on both databases; none reaches a statement.
func TestHostileInputsAnswer4xx(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, Config{AllowPrivateWebhooks: true})
		e.create(t, e.admin, "opportunity", map[string]any{"name": "Big", "amount": 48000, "stage": "Prospecting", "external_id": "opp-1"})
		cases := []struct {
			name, method, path, body string
			status                   int
			code                     string
		}{
			{"NUL in a key name", "POST", "/api/v1/keys", `{"name":"a\u0000b","scopes":["READ"]}`, 400, "invalid_json"},
			{"NUL in a webhook description", "POST", "/api/v1/webhooks", `{"url":"http://127.0.0.1:1/","events":["*"],"description":"x\u0000"}`, 400, "invalid_json"},
			{"NUL in a record field", "POST", "/api/v1/records/account", `{"fields":{"name":"a\u0000"}}`, 400, "invalid_json"},
			{"NUL in a filter value", "GET", "/api/v1/records/account?filter[name]=a%00b", "", 400, "invalid_parameter"},
			{"NUL in a path", "GET", "/api/v1/records/account/rec_%00", "", 400, "invalid_parameter"},
			{"invalid UTF-8 in an external id", "PUT", "/api/v1/records/account/external/%ff%fe", `{"fields":{"name":"x"}}`, 400, "invalid_parameter"},
			{"invalid UTF-8 in a filter", "GET", "/api/v1/records/account?filter[name]=%ff", "", 400, "invalid_parameter"},
			{"a filter the field's type cannot hold", "GET", "/api/v1/records/opportunity?filter[amount]=abc", "", 400, "invalid_parameter"},
			{"a weak If-Match", "PATCH", "/api/v1/records/opportunity/rec_x", `{"fields":{}}`, 400, "invalid_if_match"},
			{"a body of the wrong JSON type", "POST", "/api/v1/records/account", `[]`, 400, "invalid_json"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				var hdr []string
				if c.code == "invalid_if_match" {
					hdr = []string{"If-Match", `W/"1"`}
				}
				r := e.do(t, c.method, c.path, e.admin, c.body, hdr...)
				require.Equal(t, c.status, r.status, "body: %s", r.body)
				require.Equal(t, c.code, r.code(t))
				require.NotContains(t, string(r.body), "integration.", "no Go type names in answers")
			})
		}

		r := e.do(t, "GET", "/api/v1/records/opportunity?filter[amount]=abc", e.admin, nil)
		require.Contains(t, string(r.body), "filter[amount]")
		require.Contains(t, string(r.body), "number")
		r = e.do(t, "GET", "/api/v1/records/opportunity?filter[amount]=48000.0", e.admin, nil)
		require.Equal(t, http.StatusOK, r.status)
		require.Len(t, r.json(t)["data"], 1, "a filter matches the value as the field stores it")
	})
}

// TestUpsertChecks: the external-id PUT honours If-Match, and refuses a
// body whose external id differs from the path's.
func TestUpsertChecks(t *testing.T) {
	e := newEnv(t, testdb.SQLiteDSN(t), Config{})
	path := "/api/v1/records/account/external/acme-1"
	r := e.do(t, "PUT", path, e.admin, map[string]any{"fields": map[string]any{"name": "Acme"}})
	require.Equal(t, http.StatusCreated, r.status)
	r = e.do(t, "PUT", path, e.admin, map[string]any{"fields": map[string]any{"name": "Acme 2"}}, "If-Match", `"5"`)
	require.Equal(t, http.StatusConflict, r.status, "body: %s", r.body)
	require.Equal(t, "version_conflict", r.code(t))
	r = e.do(t, "PUT", path, e.admin, map[string]any{"fields": map[string]any{"name": "Acme 2"}}, "If-Match", `"1"`)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)

	r = e.do(t, "PUT", path, e.admin, map[string]any{"fields": map[string]any{"name": "Acme", "external_id": "globex-9"}})
	require.Equal(t, http.StatusUnprocessableEntity, r.status)
	require.Contains(t, string(r.body), "external_id_mismatch")
	r = e.do(t, "PUT", path, e.admin, map[string]any{"fields": map[string]any{"name": "Acme 3", "external_id": "acme-1"}})
	require.Equal(t, http.StatusOK, r.status, "the same external id in both places is fine")
}

// TestDeliveriesCarryIdempotencyKey: every delivery carries the event id as
// Idempotency-Key, which lets Go's transport send it again at once on a
// fresh connection when a kept-alive one the receiver closed fails before
// the request is written.
func TestDeliveriesCarryIdempotencyKey(t *testing.T) {
	e := startedEnv(t, testdb.SQLiteDSN(t))
	rv := newHookReceiver(t)
	r := e.do(t, "POST", "/api/v1/webhooks", e.admin, map[string]any{"url": rv.URL, "events": []string{"*"}})
	require.Equal(t, http.StatusCreated, r.status)
	e.create(t, e.admin, "account", map[string]any{"name": "Acme"})
	require.Eventually(t, func() bool { return len(rv.requests()) == 1 }, 10*time.Second, 10*time.Millisecond)
	h := rv.requests()[0].header
	require.NotEmpty(t, h.Get("Idempotency-Key"))
	require.Equal(t, h.Get("webhook-id"), h.Get("Idempotency-Key"))
}

// FuzzRecordsAndWebhooksAPI builds requests to the records and webhooks
// routes from arbitrary methods, paths, queries and bodies, and holds that
// none answers a server error.
func FuzzRecordsAndWebhooksAPI(f *testing.F) {
	e := newEnv(f, testdb.SQLiteDSN(f), Config{AllowPrivateWebhooks: true})
	rec := e.create(f, e.admin, "opportunity", map[string]any{"name": "Seed", "amount": 1, "stage": "Prospecting"})
	key := e.key(f, e.ws, apikey.ScopeAdmin)
	for _, seed := range []struct{ method, path, body string }{
		{"GET", "/api/v1/records/opportunity?filter[amount]=1", ""},
		{"POST", "/api/v1/records/account", `{"fields":{"name":"x"}}`},
		{"PATCH", "/api/v1/records/opportunity/" + rec["id"].(string), `{"fields":{"stage":"Closed Won"}}`},
		{"PUT", "/api/v1/records/account/external/a%00b", `{"fields":{"name":"\u0000"}}`},
		{"POST", "/api/v1/webhooks", `{"url":"http://127.0.0.1:1/","events":["record.*"],"condition":{"field":"stage","changed_to":[[[]]]}}`},
		{"GET", "/api/v1/deliveries?status=%ff&limit=-1", ""},
		{"DELETE", "/api/v1/records/lead/rec_%ff", ""},
	} {
		f.Add(seed.method, seed.path, seed.body)
	}
	h := e.svc.Handler()
	f.Fuzz(func(t *testing.T, method, path, body string) {
		switch method {
		case "GET", "POST", "PATCH", "PUT", "DELETE":
		default:
			return
		}
		if !strings.HasPrefix(path, "/api/v1/records/") && !strings.HasPrefix(path, "/api/v1/webhooks") &&
			!strings.HasPrefix(path, "/api/v1/deliveries") {
			return
		}
		req, err := http.NewRequestWithContext(context.Background(), method, "http://crmkit.test"+path, strings.NewReader(body))
		if err != nil {
			return // not a URL at all: no request to build
		}
		req.Header.Set("Authorization", "Bearer "+key)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s %q answered %d: %s", method, path, body, w.Code, w.Body.String())
		}
	})
}
