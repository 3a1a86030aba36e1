package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// problemFields answers the field errors of a 422 as "field:code", checking
// the answer is one.
func problemFields(tb testing.TB, r response) []string {
	tb.Helper()
	require.Equal(tb, 422, r.status, "body: %.2000s", r.body)
	require.Equal(tb, "validation_failed", r.code(tb))
	var p struct {
		Errors []struct{ Field, Code string }
	}
	require.NoError(tb, json.Unmarshal(r.body, &p))
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Field+":"+e.Code)
	}
	return out
}

// TestWebhookInputBounds: every stored string, list and JSON value of an
// endpoint has a bound, and a value over it is a 422 naming the field, on
// create and on update; a value at the bound is stored.
func TestWebhookInputBounds(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, Config{AllowPrivateWebhooks: true})
		base := "http://127.0.0.1:9/hook"
		longURL := func(n int) string { return base + "?" + strings.Repeat("a", n-len(base)-1) }
		valid := func() map[string]any {
			return map[string]any{"url": base, "events": []string{"record.updated"}}
		}
		with := func(k string, v any) map[string]any { m := valid(); m[k] = v; return m }
		deep := any("Closed Won")
		for range 5000 {
			deep = []any{deep}
		}
		many := func(n int, s string) []string {
			out := make([]string, n)
			for i := range out {
				out[i] = s
			}
			return out
		}

		refused := []struct {
			name string
			body map[string]any
			want string
		}{
			{"url", with("url", longURL(outbound.MaxURLLength+1)), "url:max"},
			{"events", with("events", many(outbound.MaxEvents+1, "record.updated")), "events:max"},
			{"100,000 events", with("events", many(100_000, "*")), "events:max"},
			{"objects", with("objects", many(outbound.MaxObjects+1, "opportunity")), "objects:max"},
			{"object name", with("objects", []string{strings.Repeat("o", outbound.MaxNameLength+1)}), "objects:max"},
			{"description", with("description", strings.Repeat("é", outbound.MaxDescriptionLength+1)), "description:max"},
			{"condition.field length", with("condition", map[string]any{"field": strings.Repeat("f", outbound.MaxNameLength+1), "changed_to": 1}), "condition.field:max"},
			{"condition.field unknown", func() map[string]any {
				m := with("objects", []string{"opportunity"})
				m["condition"] = map[string]any{"field": "stagee", "changed_to": "Closed Won"}
				return m
			}(), "condition.field:unknown_field"},
			{"condition.changed_to deep", with("condition", map[string]any{"field": "stage", "changed_to": deep}), "condition.changed_to:type"},
			{"condition.changed_to object", with("condition", map[string]any{"field": "stage", "changed_to": map[string]any{"a": 1}}), "condition.changed_to:type"},
			{"condition.changed_to list", with("condition", map[string]any{"field": "stage", "changed_to": []any{"a"}}), "condition.changed_to:type"},
			{"condition.changed_to length", with("condition", map[string]any{"field": "stage", "changed_to": strings.Repeat("x", outbound.MaxConditionValueLength+1)}), "condition.changed_to:max"},
		}
		r := e.do(t, "POST", "/api/v1/webhooks", e.admin, valid())
		require.Equal(t, 201, r.status, "%s", r.body)
		id := r.json(t)["id"].(string)
		for _, c := range refused {
			t.Run(c.name, func(t *testing.T) {
				r := e.do(t, "POST", "/api/v1/webhooks", e.admin, c.body)
				got := problemFields(t, r)
				require.Equal(t, []string{c.want}, got)
				require.Less(t, len(r.body), 2048, "the answer stays small: %.500s", r.body)
				// The same through a partial update.
				patch := map[string]any{}
				for k, v := range c.body {
					if k != "url" || c.want == "url:max" {
						patch[k] = v
					}
				}
				r = e.do(t, "PATCH", "/api/v1/webhooks/"+id, e.admin, patch)
				require.Equal(t, []string{c.want}, problemFields(t, r))
			})
		}

		// At the bounds, and with each scalar condition value, it is stored.
		for i, v := range []any{"Closed Won", 48000.5, true, nil, strings.Repeat("x", outbound.MaxConditionValueLength)} {
			at := map[string]any{
				"url":         longURL(outbound.MaxURLLength),
				"events":      many(outbound.MaxEvents, "record.*"),
				"objects":     []string{"opportunity"},
				"description": strings.Repeat("é", outbound.MaxDescriptionLength),
				"condition":   map[string]any{"field": "stage", "changed_to": v},
			}
			r := e.do(t, "POST", "/api/v1/webhooks", e.admin, at)
			require.Equal(t, 201, r.status, "%d: %.1000s", i, r.body)
			got := e.do(t, "GET", "/api/v1/webhooks/"+r.json(t)["id"].(string), e.admin, nil).json(t)
			require.Equal(t, v, got["condition"].(map[string]any)["changed_to"])
		}
		// Without objects, a condition may name any field.
		r = e.do(t, "POST", "/api/v1/webhooks", e.admin, with("condition", map[string]any{"field": "anything", "changed_to": 1}))
		require.Equal(t, 201, r.status, "%s", r.body)
	})
}

// TestKeyNameBound: a key's name is at most 200 characters; over it, 422
// naming name.
func TestKeyNameBound(t *testing.T) {
	e := newEnv(t, testdb.SQLiteDSN(t), Config{})
	r := e.do(t, "POST", "/api/v1/keys", e.admin, map[string]any{"name": strings.Repeat("n", 201), "scopes": []string{"READ"}})
	require.Equal(t, []string{"name:max"}, problemFields(t, r))
	r = e.do(t, "POST", "/api/v1/keys", e.admin, map[string]any{"name": strings.Repeat("n", 200), "scopes": []string{"READ"}})
	require.Equal(t, 201, r.status, "%s", r.body)
}

// TestProblemErrorsCapped: a 422 lists at most 100 field errors and counts
// the rest, so a large bad request gets a small answer.
func TestProblemErrorsCapped(t *testing.T) {
	e := newEnv(t, testdb.SQLiteDSN(t), Config{})
	fields := map[string]any{"name": "Big deal"}
	for i := range 5000 {
		fields[fmt.Sprintf("no_such_field_%04d_%s", i, strings.Repeat("x", 100))] = strings.Repeat("v", 50)
	}
	r := e.do(t, "POST", "/api/v1/records/opportunity", e.admin, map[string]any{"fields": fields})
	got := problemFields(t, r)
	require.Len(t, got, 100)
	var p struct {
		ErrorsOmitted int `json:"errors_omitted"`
	}
	require.NoError(t, json.Unmarshal(r.body, &p))
	require.GreaterOrEqual(t, p.ErrorsOmitted, 4900)
	require.Less(t, len(r.body), 32<<10, "answer of %d bytes", len(r.body))

	// Under the cap, no count.
	r = e.do(t, "POST", "/api/v1/records/opportunity", e.admin, map[string]any{"fields": map[string]any{"nope": 1}})
	require.NotContains(t, string(r.body), "errors_omitted")
}
