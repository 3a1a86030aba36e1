package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
)

func TestRecordsAPI(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, Config{
			MaxBodyBytes: 4 << 10,
			Plans:        append(records.DefaultPlans(), records.Plan{Name: "tiny", MaxRecords: 1}),
		})
		key := e.key(t, e.ws, apikey.ScopeRead, apikey.ScopeWrite, apikey.ScopeDelete)

		t.Run("create", func(t *testing.T) {
			r := e.do(t, "POST", "/api/v1/records/opportunity", key, map[string]any{"fields": map[string]any{"name": "Acme renewal", "amount": 1200, "stage": "Prospecting"}})
			require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
			rec := r.json(t)
			id := rec["id"].(string)
			require.True(t, strings.HasPrefix(id, "rec_"), id)
			require.Equal(t, "opportunity", rec["object"])
			require.EqualValues(t, 1, rec["version"])
			require.Equal(t, "/api/v1/records/opportunity/"+id, r.header.Get("Location"))
			require.Equal(t, `"1"`, r.header.Get("ETag"))
			require.Equal(t, "Acme renewal", rec["fields"].(map[string]any)["name"])
			require.NotEmpty(t, rec["created_at"])
			require.NotEmpty(t, rec["updated_at"])
		})

		t.Run("get", func(t *testing.T) {
			id := e.create(t, key, "account", map[string]any{"name": "Acme"})["id"].(string)
			r := e.do(t, "GET", "/api/v1/records/account/"+id, key, nil)
			require.Equal(t, http.StatusOK, r.status)
			require.Equal(t, id, r.json(t)["id"])
			require.Equal(t, http.StatusNotFound, e.do(t, "GET", "/api/v1/records/account/rec_nope", key, nil).status)
			// The right id under the wrong object does not exist either.
			require.Equal(t, http.StatusNotFound, e.do(t, "GET", "/api/v1/records/lead/"+id, key, nil).status)
		})

		t.Run("list pages filters and updated_since", func(t *testing.T) {
			var ids []string
			for i := range 5 {
				stage := "Prospecting"
				if i%2 == 1 {
					stage = "Negotiation"
				}
				ids = append(ids, e.create(t, key, "lead", map[string]any{"name": fmt.Sprintf("Lead %d", i), "status": map[string]string{"Prospecting": "New", "Negotiation": "Contacted"}[stage]})["id"].(string))
			}
			var seen []string
			path := "/api/v1/records/lead?limit=2"
			for pages := 0; ; pages++ {
				require.Less(t, pages, 5)
				r := e.do(t, "GET", path, key, nil)
				require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
				page := r.json(t)
				for _, d := range page["data"].([]any) {
					seen = append(seen, d.(map[string]any)["id"].(string))
				}
				next, ok := page["next_cursor"].(string)
				if !ok {
					require.Nil(t, page["next_cursor"])
					break
				}
				path = "/api/v1/records/lead?limit=2&cursor=" + url.QueryEscape(next)
			}
			require.Equal(t, ids, seen)

			r := e.do(t, "GET", "/api/v1/records/lead?"+url.Values{"filter[status]": {"Contacted"}}.Encode(), key, nil)
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			data := r.json(t)["data"].([]any)
			require.Len(t, data, 2)
			for _, d := range data {
				require.Equal(t, "Contacted", d.(map[string]any)["fields"].(map[string]any)["status"])
			}

			future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
			r = e.do(t, "GET", "/api/v1/records/lead?updated_since="+url.QueryEscape(future), key, nil)
			require.Equal(t, http.StatusOK, r.status)
			require.Empty(t, r.json(t)["data"])
			past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
			r = e.do(t, "GET", "/api/v1/records/lead?limit=200&updated_since="+url.QueryEscape(past), key, nil)
			require.Len(t, r.json(t)["data"], 5)
		})

		t.Run("list parameters", func(t *testing.T) {
			for _, q := range []string{"limit=0", "limit=x", "updated_since=yesterday", "filter[]=x", "colour=red"} {
				r := e.do(t, "GET", "/api/v1/records/lead?"+q, key, nil)
				require.Equal(t, http.StatusBadRequest, r.status, q)
				require.Equal(t, "invalid_parameter", r.code(t), q)
			}
			r := e.do(t, "GET", "/api/v1/records/lead?limit=1000", key, nil)
			require.Equal(t, http.StatusOK, r.status, "a limit over 200 is lowered, not refused")
			r = e.do(t, "GET", "/api/v1/records/lead?filter[colour]=red", key, nil)
			require.Equal(t, http.StatusBadRequest, r.status, "a filter is a query parameter: 400 naming it")
			require.Equal(t, "invalid_parameter", r.code(t))
			require.Contains(t, string(r.body), "filter[colour]")
		})

		t.Run("update with If-Match", func(t *testing.T) {
			id := e.create(t, key, "opportunity", map[string]any{"name": "Deal", "stage": "Prospecting", "amount": 10})["id"].(string)
			path := "/api/v1/records/opportunity/" + id
			r := e.do(t, "PATCH", path, key, map[string]any{"fields": map[string]any{"amount": 20}}, "If-Match", `"1"`)
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			rec := r.json(t)
			require.EqualValues(t, 2, rec["version"])
			require.Equal(t, `"2"`, r.header.Get("ETag"))
			f := rec["fields"].(map[string]any)
			require.EqualValues(t, 20, f["amount"])
			require.Equal(t, "Deal", f["name"], "a partial update keeps the other fields")

			r = e.do(t, "PATCH", path, key, map[string]any{"fields": map[string]any{"amount": 30}}, "If-Match", "2")
			require.Equal(t, http.StatusOK, r.status, "an unquoted version works too")
			r = e.do(t, "PATCH", path, key, map[string]any{"fields": map[string]any{"amount": 40}}, "If-Match", `"1"`)
			require.Equal(t, http.StatusConflict, r.status)
			require.Equal(t, "version_conflict", r.code(t))
			r = e.do(t, "PATCH", path, key, map[string]any{"fields": map[string]any{"amount": 40}}, "If-Match", "soon")
			require.Equal(t, http.StatusBadRequest, r.status)
			require.Equal(t, "invalid_if_match", r.code(t))
			r = e.do(t, "PATCH", path, key, map[string]any{"fields": map[string]any{"amount": 40}})
			require.Equal(t, http.StatusOK, r.status, "without If-Match any version is updated")
			require.EqualValues(t, 4, r.json(t)["version"])
			require.Equal(t, http.StatusNotFound, e.do(t, "PATCH", "/api/v1/records/opportunity/rec_nope", key, map[string]any{"fields": map[string]any{}}).status)
		})

		t.Run("upsert by external id", func(t *testing.T) {
			path := "/api/v1/records/account/external/erp-42"
			r := e.do(t, "PUT", path, key, map[string]any{"fields": map[string]any{"name": "Globex"}})
			require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
			first := r.json(t)
			require.Equal(t, "erp-42", first["fields"].(map[string]any)["external_id"])
			require.NotEmpty(t, r.header.Get("Location"))
			r = e.do(t, "PUT", path, key, map[string]any{"fields": map[string]any{"industry": "Energy"}})
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			second := r.json(t)
			require.Equal(t, first["id"], second["id"])
			require.EqualValues(t, 2, second["version"])
			require.Equal(t, "Globex", second["fields"].(map[string]any)["name"])
		})

		t.Run("duplicate external id", func(t *testing.T) {
			e.create(t, key, "account", map[string]any{"name": "One", "external_id": "dup-1"})
			r := e.do(t, "POST", "/api/v1/records/account", key, map[string]any{"fields": map[string]any{"name": "Two", "external_id": "dup-1"}})
			require.Equal(t, http.StatusConflict, r.status, "body: %s", r.body)
			require.Equal(t, "duplicate", r.code(t))
		})

		t.Run("delete", func(t *testing.T) {
			id := e.create(t, key, "contact", map[string]any{"first_name": "Ada", "last_name": "Lovelace"})["id"].(string)
			path := "/api/v1/records/contact/" + id
			require.Equal(t, http.StatusConflict, e.do(t, "DELETE", path, key, nil, "If-Match", "7").status)
			r := e.do(t, "DELETE", path, key, nil)
			require.Equal(t, http.StatusNoContent, r.status, "body: %s", r.body)
			require.Empty(t, r.body)
			require.Equal(t, http.StatusNotFound, e.do(t, "GET", path, key, nil).status)
			require.Equal(t, http.StatusNotFound, e.do(t, "DELETE", path, key, nil).status)
		})

		t.Run("errors", func(t *testing.T) {
			big := `{"fields":{"name":"` + strings.Repeat("x", 5<<10) + `"}}`
			cases := []struct {
				name, method, path, body string
				status                   int
				code                     string
			}{
				{"unknown object", "GET", "/api/v1/records/spaceship", "", 404, "not_found"},
				{"unknown object write", "POST", "/api/v1/records/spaceship", `{"fields":{}}`, 404, "not_found"},
				{"malformed json", "POST", "/api/v1/records/account", `{"fields":`, 400, "invalid_json"},
				{"not an object", "POST", "/api/v1/records/account", `[1,2]`, 400, "invalid_json"},
				{"two values", "POST", "/api/v1/records/account", `{"fields":{"name":"a"}} {}`, 400, "invalid_json"},
				{"empty body", "POST", "/api/v1/records/account", ``, 400, "invalid_json"},
				{"misspelt member", "POST", "/api/v1/records/account", `{"feilds":{"name":"a"}}`, 400, "invalid_json"},
				{"too large", "POST", "/api/v1/records/account", big, 413, "body_too_large"},
				{"validation", "POST", "/api/v1/records/opportunity", `{"fields":{"amount":-1,"stage":"Won?"}}`, 422, "validation_failed"},
				{"no such route", "GET", "/api/v1/nothing", "", 404, "not_found"},
				{"wrong method", "POST", "/api/v1/records/account/rec_x", `{}`, 405, "method_not_allowed"},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					var body any
					if c.body != "" {
						body = c.body
					}
					r := e.do(t, c.method, c.path, key, body)
					require.Equal(t, c.status, r.status, "body: %s", r.body)
					require.Equal(t, c.code, r.code(t))
					p := r.json(t)
					require.EqualValues(t, c.status, p["status"])
					require.NotEmpty(t, p["title"])
					require.NotEmpty(t, p["type"])
				})
			}
		})

		t.Run("validation lists every field", func(t *testing.T) {
			r := e.do(t, "POST", "/api/v1/records/opportunity", key, map[string]any{"fields": map[string]any{"amount": -1, "stage": "Won?"}})
			require.Equal(t, http.StatusUnprocessableEntity, r.status)
			errs := r.json(t)["errors"].([]any)
			fields := map[string]string{}
			for _, fe := range errs {
				m := fe.(map[string]any)
				require.NotEmpty(t, m["message"])
				fields[m["field"].(string)] = m["code"].(string)
			}
			require.Contains(t, fields, "name")
			require.Contains(t, fields, "amount")
			require.Contains(t, fields, "stage")
			require.Equal(t, "required", fields["name"])
		})

		t.Run("another workspace's records do not exist", func(t *testing.T) {
			id := e.create(t, key, "account", map[string]any{"name": "Mine"})["id"].(string)
			other, otherAdmin := e.workspace(t, "enterprise")
			_ = other
			for _, c := range []struct{ method, path string }{
				{"GET", "/api/v1/records/account/" + id},
				{"PATCH", "/api/v1/records/account/" + id},
				{"DELETE", "/api/v1/records/account/" + id},
			} {
				var body any
				if c.method == "PATCH" {
					body = map[string]any{"fields": map[string]any{"name": "Theirs"}}
				}
				r := e.do(t, c.method, c.path, otherAdmin, body)
				require.Equal(t, http.StatusNotFound, r.status, "%s %s: %s", c.method, c.path, r.body)
				require.Equal(t, "not_found", r.code(t))
			}
			r := e.do(t, "GET", "/api/v1/records/account?limit=200", otherAdmin, nil)
			require.Empty(t, r.json(t)["data"])
			require.Equal(t, http.StatusOK, e.do(t, "GET", "/api/v1/records/account/"+id, key, nil).status)
		})

		t.Run("plan limit", func(t *testing.T) {
			_, tinyAdmin := e.workspace(t, "tiny")
			e.create(t, tinyAdmin, "account", map[string]any{"name": "Only"})
			r := e.do(t, "POST", "/api/v1/records/account", tinyAdmin, map[string]any{"fields": map[string]any{"name": "One too many"}})
			require.Equal(t, http.StatusForbidden, r.status, "body: %s", r.body)
			require.Equal(t, "plan_limit_exceeded", r.code(t))
		})

		t.Run("scopes", func(t *testing.T) {
			reader := e.key(t, e.ws, apikey.ScopeRead)
			writer := e.key(t, e.ws, apikey.ScopeWrite)
			id := e.create(t, key, "account", map[string]any{"name": "Scoped"})["id"].(string)
			cases := []struct {
				key, method, path string
				body              any
				scope             string
			}{
				{reader, "POST", "/api/v1/records/account", map[string]any{"fields": map[string]any{"name": "x"}}, "WRITE"},
				{reader, "PATCH", "/api/v1/records/account/" + id, map[string]any{"fields": map[string]any{"name": "x"}}, "WRITE"},
				{reader, "PUT", "/api/v1/records/account/external/x", map[string]any{"fields": map[string]any{"name": "x"}}, "WRITE"},
				{writer, "DELETE", "/api/v1/records/account/" + id, nil, "DELETE"},
				{key, "GET", "/api/v1/keys", nil, "ADMIN"},
				{key, "GET", "/api/v1/audit", nil, "ADMIN"},
				{writer, "GET", "/api/v1/keys", nil, "ADMIN"},
			}
			for _, c := range cases {
				r := e.do(t, c.method, c.path, c.key, c.body)
				require.Equal(t, http.StatusForbidden, r.status, "%s %s", c.method, c.path)
				require.Equal(t, "missing_scope", r.code(t))
				require.Equal(t, c.scope, r.json(t)["scope"])
			}
		})

		t.Run("every write is audited with source api and the key", func(t *testing.T) {
			id := e.create(t, key, "opportunity", map[string]any{"name": "Audited", "stage": "Prospecting"})["id"].(string)
			require.Equal(t, http.StatusOK, e.do(t, "PATCH", "/api/v1/records/opportunity/"+id, key, map[string]any{"fields": map[string]any{"stage": "Negotiation"}}).status)
			require.Equal(t, http.StatusNoContent, e.do(t, "DELETE", "/api/v1/records/opportunity/"+id, key, nil).status)
			up := e.do(t, "PUT", "/api/v1/records/opportunity/external/audit-1", key, map[string]any{"fields": map[string]any{"name": "Upserted"}})
			require.Equal(t, http.StatusCreated, up.status)
			upID := up.json(t)["id"].(string)

			keyID := principalKeyID(t, e, key)
			for rid, actions := range map[string][]string{id: {"create", "update", "delete"}, upID: {"create"}} {
				r := e.do(t, "GET", "/api/v1/audit?record_id="+rid, e.admin, nil)
				require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
				data := r.json(t)["data"].([]any)
				require.Len(t, data, len(actions))
				for i, d := range data {
					m := d.(map[string]any)
					require.Equal(t, actions[i], m["action"])
					require.Equal(t, "api", m["source"])
					require.Equal(t, map[string]any{"kind": "api_key", "id": keyID}, m["actor"])
					require.Equal(t, rid, m["record_id"])
				}
			}
			// The log pages like every list.
			r := e.do(t, "GET", "/api/v1/audit?limit=2&record_id="+id, e.admin, nil)
			page := r.json(t)
			require.Len(t, page["data"], 2)
			r = e.do(t, "GET", "/api/v1/audit?limit=2&record_id="+id+"&cursor="+page["next_cursor"].(string), e.admin, nil)
			page = r.json(t)
			require.Len(t, page["data"], 1)
			require.Equal(t, "delete", page["data"].([]any)[0].(map[string]any)["action"])
			require.Nil(t, page["next_cursor"])

			// Events were written with the same source and actor.
			evs, err := e.st.ListEvents(context.Background(), e.ws, "", 1000)
			require.NoError(t, err)
			var mine int
			for _, ev := range evs {
				if ev.RecordID == id {
					mine++
					require.Equal(t, records.SourceAPI, ev.Source)
					require.Equal(t, records.Actor{Kind: "api_key", ID: keyID}, ev.Actor)
				}
			}
			require.Equal(t, 3, mine)
		})
	})
}

// principalKeyID answers the id of a plaintext key.
func principalKeyID(tb testing.TB, e *env, plain string) string {
	tb.Helper()
	p, err := e.svc.Keys().Verify(context.Background(), plain)
	require.NoError(tb, err)
	return p.KeyID
}
