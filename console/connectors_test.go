package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/connector"
	"github.com/smartlite/crmkit/console"
	"github.com/smartlite/crmkit/records"
)

var _ console.Connectors = (*connector.Service)(nil)

// customerToken is the credential the loopback customer API wants; no page
// or log line may ever show it.
const customerToken = "Bearer cust-token-4f9a0c2e7b"

// customerAPI is a loopback customer API like examples/sampleapi: GET
// /customers answers {"data":[…],"meta":{"next_cursor":"…"}}, ?limit= at
// a time from ?cursor=, those updated at or after ?updated_since=, and
// wants customerToken. While held, answers wait until released.
type customerAPI struct {
	srv *httptest.Server

	mu   sync.Mutex
	recs []map[string]any
	hold chan struct{}
}

func newCustomerAPI(tb testing.TB, n int) *customerAPI {
	tb.Helper()
	a := &customerAPI{}
	industries := []string{"Retail", "Software", "Logistics"}
	for i := 1; i <= n; i++ {
		a.recs = append(a.recs, map[string]any{"id": i, "name": fmt.Sprintf("Customer %d", i),
			"industry": industries[i%len(industries)], "updated_at": fmt.Sprintf("2024-01-01T00:%02d:00Z", i)})
	}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	tb.Cleanup(func() {
		a.release()
		a.srv.Close()
	})
	return a
}

func (a *customerAPI) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	hold := a.hold
	a.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	if r.Header.Get("Authorization") != customerToken {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	q := r.URL.Query()
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit <= 0 {
		limit = 100
	}
	from, _ := strconv.Atoi(q.Get("cursor"))
	a.mu.Lock()
	var all []map[string]any
	for _, rec := range a.recs {
		if since := q.Get("updated_since"); since == "" || rec["updated_at"].(string) >= since {
			all = append(all, rec)
		}
	}
	a.mu.Unlock()
	from = min(from, len(all))
	to := min(from+limit, len(all))
	next := ""
	if to < len(all) {
		next = strconv.Itoa(to)
	}
	page := all[from:to]
	if page == nil {
		page = []map[string]any{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"data": page, "meta": map[string]any{"next_cursor": next}})
}

// holdAnswers makes answers wait until release.
func (a *customerAPI) holdAnswers() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.hold == nil {
		a.hold = make(chan struct{})
	}
}

func (a *customerAPI) release() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.hold != nil {
		close(a.hold)
		a.hold = nil
	}
}

// connectorFormValues is the New Connector form for the customer API, as an
// admin fills it in: the defaults the form offers, with a name, the URL,
// the token and the object's mapping.
func connectorFormValues(a *customerAPI) url.Values {
	return url.Values{
		"name": {"Billing customers"}, "url": {a.srv.URL + "/customers"}, "records_path": {"data"},
		"header_name": {"Authorization"}, "header_value": {customerToken},
		"pagination_kind": {"cursor"}, "cursor_param": {"cursor"}, "next_path": {"meta.next_cursor"},
		"size_param": {"limit"}, "page_size": {"2"},
		"inc_field": {"updated_at"}, "inc_param": {"updated_since"}, "inc_start": {"2020-01-01T00:00:00Z"},
		"mode": {"incremental"}, "deletes": {"off"}, "enabled": {"true"},
		"object": {"account"}, "external_id": {"'billing-' + string(id)"}, "fields": {"name = name\nindustry = industry"},
	}
}

// connAccounts answers how many accounts the workspace holds.
func (e *apiEnv) connAccounts(tb testing.TB, ws string) int {
	tb.Helper()
	recs, _, err := e.svc.Pipeline().List(context.Background(), records.ListQuery{Workspace: ws, Object: "account", Limit: 1000})
	require.NoError(tb, err)
	return len(recs)
}

// connWaitRun waits for a run of the connector to finish and answers the
// latest run.
func (e *apiEnv) connWaitRun(tb testing.TB, ws, connectorID string) *connector.Run {
	tb.Helper()
	var run *connector.Run
	require.Eventually(tb, func() bool {
		runs, err := e.svc.Connectors().Runs(context.Background(), ws, connectorID, "", 1)
		if err != nil || len(runs) == 0 || runs[0].FinishedAt == nil {
			return false
		}
		run = runs[0]
		return true
	}, waitTimeout, 20*time.Millisecond)
	return run
}

var connectorPathRE = regexp.MustCompile(`^/connectors/(con_[0-9a-z]+)$`)

// connFieldError answers the message shown beside input name, checking it
// is tied to the input and its field box is marked invalid.
func connFieldError(tb testing.TB, body, name string) string {
	tb.Helper()
	m := regexp.MustCompile(`id="` + name + `-error"[^>]*>([^<]*)<`).FindStringSubmatch(body)
	require.NotNil(tb, m, "an error beside %s", name)
	require.Regexp(tb, `(?s)<div class="field invalid">\s*<label for="`+name+`"`, body, "the field box of %s is marked invalid", name)
	require.Regexp(tb, `id="`+name+`"[^>]*aria-describedby="[^"]*`+name+`-error`, body)
	return m[1]
}

func TestConnectorForm(t *testing.T) {
	e := newAPIEnv(t)
	api := newCustomerAPI(t, 3)
	b := e.browser(t)
	b.signIn(e.admin)

	p := b.get("/connectors")
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, "There are no connectors yet.")
	p = b.get("/connectors/new")
	require.Equal(t, http.StatusOK, p.status)
	for _, label := range []string{`<label for="name">Name`, `<label for="url">URL`, `<label for="object">Object`,
		`<label for="schedule">Schedule`, `<label for="mode">Mode`, `<label for="pagination_kind">`, `<label for="records_path">`,
		`<label for="header_name">`, `<label for="header_value">`, `<label for="fields">Fields`, `<label for="advanced">`} {
		require.Contains(t, p.body, label)
	}
	require.Contains(t, p.body, `value="meta.next_cursor"`, "the form comes filled with a working example")
	require.Contains(t, p.body, `<input id="object" name="object" list="object-names"`, "the object input suggests the schema's objects")
	for _, o := range []string{"account", "contact", "opportunity"} {
		require.Contains(t, p.body, `<option value="`+o+`">`)
	}

	for _, tc := range []struct {
		name   string
		change url.Values
		errors map[string]string
	}{
		{"no name", url.Values{"name": {""}}, map[string]string{"name": "name is required"}},
		{"not http", url.Values{"url": {"ftp://example.com/customers"}}, map[string]string{"url": "scheme"}},
		{"metadata address", url.Values{"url": {"http://169.254.169.254/latest"}}, map[string]string{"url": "169.254.169.254"}},
		{"cursor without its parameter", url.Values{"cursor_param": {""}}, map[string]string{"cursor_param": "cursor_param"}},
		{"unknown object", url.Values{"object": {"widget"}}, map[string]string{"object": "widget"}},
		{"unknown field", url.Values{"fields": {"name = name\nshoe_size = industry"}}, map[string]string{"fields": "shoe_size"}},
		{"bad expression", url.Values{"external_id": {"'billing-' + "}}, map[string]string{"external_id": ""}},
		{"bad schedule", url.Values{"schedule": {"every now and then"}}, map[string]string{"schedule": "not a duration"}},
		{"deletes without full", url.Values{"deletes": {"delete"}}, map[string]string{"deletes": "mode full"}},
		{"field line", url.Values{"fields": {"name"}}, map[string]string{"fields": "line 1"}},
		{"page size", url.Values{"page_size": {"lots"}}, map[string]string{"page_size": "whole number"}},
		{"advanced not JSON", url.Values{"advanced": {"{max_delete_ratio: 1}"}}, map[string]string{"advanced": "JSON object"}},
		{"advanced member", url.Values{"advanced": {`{"max_delete_ratio": 3}`}}, map[string]string{"advanced": "max_delete_ratio"}},
		{"mapping in advanced", url.Values{"advanced": {`{"mapping": {"targets": [{"object": "widget", "external_id": "'w-' + string(id)", "fields": {"name": "name"}}]}}`}},
			map[string]string{"advanced": "widget"}},
		{"no header value", url.Values{"header_value": {""}}, map[string]string{"header_value": "value"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := connectorFormValues(api)
			for k, v := range tc.change {
				form[k] = v
			}
			p := b.post("/connectors", form)
			require.Equal(t, http.StatusUnprocessableEntity, p.status, p.body)
			for name, want := range tc.errors {
				require.Contains(t, connFieldError(t, p.body, name), want)
			}
			require.Contains(t, p.body, `value="`+html.EscapeString(form.Get("url"))+`"`, "what was typed is kept")
			require.NotContains(t, p.body, customerToken, "the header's value is not shown back")
		})
	}
	cs, err := e.svc.Connectors().List(context.Background(), e.ws, "", 10)
	require.NoError(t, err)
	require.Empty(t, cs, "nothing refused was stored")
}

// TestConnectorPreviewRunLog creates a connector through the form,
// previews it (nothing written), runs it, reads its counts in the run
// log, is answered 409 beside Run now while a run is going, edits it
// without retyping the token, resets and deletes it; another workspace
// sees none of it. The token is in no page and no log line.
func TestConnectorPreviewRunLog(t *testing.T) {
	e := newAPIEnv(t)
	ctx := context.Background()
	api := newCustomerAPI(t, 5)
	b := e.browser(t)
	b.signIn(e.admin)

	b.get("/connectors/new")
	p := b.post("/connectors", connectorFormValues(api))
	require.Equal(t, http.StatusOK, p.status, p.body)
	m := connectorPathRE.FindStringSubmatch(p.url.Path)
	require.NotNil(t, m, p.url.String())
	id := m[1]
	require.Contains(t, p.body, "The connector was created.")
	require.Contains(t, p.body, "<code>Authorization</code>")
	require.Contains(t, p.body, "No runs yet.")
	c, err := e.svc.Connectors().Get(ctx, e.ws, id)
	require.NoError(t, err)
	require.Equal(t, customerToken, c.Headers["Authorization"], "the token typed is stored")
	require.Equal(t, "account", c.Mapping.Targets[0].Object)

	// Preview: the first page (2 records), what each becomes, nothing
	// written.
	p = b.post("/connectors/"+id+"/preview", nil)
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Contains(t, p.body, "2 records fetched, more pages follow")
	require.Contains(t, p.body, "A run would create 2, update 0")
	require.Contains(t, p.body, "billing-1")
	require.Contains(t, p.body, "Customer 2")
	require.Equal(t, 0, e.connAccounts(t, e.ws), "a preview writes nothing")
	runs, err := e.svc.Connectors().Runs(ctx, e.ws, id, "", 10)
	require.NoError(t, err)
	require.Empty(t, runs)

	// Run now: the run is queued, then in the log with its counts.
	p = b.post("/connectors/"+id+"/run", nil)
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Contains(t, p.body, "The run was queued")
	run := e.connWaitRun(t, e.ws, id)
	require.Equal(t, connector.RunSucceeded, run.Status, run.Error)
	require.EqualValues(t, 5, run.Created)
	require.Equal(t, 5, e.connAccounts(t, e.ws))
	p = b.get("/connectors/" + id)
	runs1 := runRows(t, p.body)
	require.Len(t, runs1, 1)
	require.Equal(t, map[string]string{"Status": "Succeeded run " + run.ID + " manual", "Pages": "3", "Created": "5", "Updated": "0",
		"Unchanged": "0", "Failed": "0", "Error": "—"}, pickCells(runs1[0], "Status", "Pages", "Created", "Updated", "Unchanged", "Failed", "Error"))
	p = b.get("/connectors/" + id + "/runs/" + run.ID)
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, "5 created, 0 updated, 0 unchanged, 0 deleted, 0 failed, 0 skipped")
	require.Contains(t, p.body, "<code>2024-01-01T00:05:00Z</code>", "the checkpoint after")

	// A run while one is going: 409, shown beside Run now.
	api.holdAnswers()
	p = b.post("/connectors/"+id+"/run", nil)
	require.Equal(t, http.StatusOK, p.status)
	p = b.post("/connectors/"+id+"/run", nil)
	require.Equal(t, http.StatusConflict, p.status)
	require.Regexp(t, `(?s)<div class="field invalid">\s*<button type="submit" id="run-button" aria-describedby="run-error">Run now</button>\s*<p class="field-error" id="run-error" role="alert">A run of this connector is already queued or running`, p.body)
	require.Contains(t, p.body, `hx-trigger="every 2s"`, "the log follows the run going")
	// Reset is refused too, on its confirmation page.
	p = b.get("/connectors/" + id + "/reset")
	require.Equal(t, http.StatusOK, p.status)
	p = b.post("/connectors/"+id+"/reset", nil)
	require.Equal(t, http.StatusConflict, p.status)
	require.Contains(t, p.body, `id="reset-error" role="alert">A run of this connector is queued or running`)
	api.release()
	run2 := e.connWaitRun(t, e.ws, id)
	require.NotEqual(t, run.ID, run2.ID)
	require.Equal(t, connector.RunSucceeded, run2.Status, run2.Error)
	p = b.get("/connectors/" + id)
	rows := runRows(t, p.body)
	require.Len(t, rows, 2)
	require.Contains(t, rows[0]["Status"], run2.ID, "newest first")
	require.Equal(t, "0", rows[0]["Created"])
	require.NotContains(t, p.body, `hx-trigger="every 2s"`, "nothing to follow once the run ended")

	// Edit without retyping the token: it is kept.
	p = b.get("/connectors/" + id + "/edit")
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, `value="Billing customers"`)
	require.Contains(t, p.body, "leave it empty to keep the stored one")
	form := connectorFormValues(api)
	form.Set("name", "Billing customers (EU)")
	form.Set("header_value", "")
	form.Set("schedule", "every 1h")
	p = b.post("/connectors/"+id, form)
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Contains(t, p.body, "The connector was saved.")
	c, err = e.svc.Connectors().Get(ctx, e.ws, id)
	require.NoError(t, err)
	require.Equal(t, "Billing customers (EU)", c.Name)
	require.Equal(t, "every 1h", c.Schedule)
	require.Equal(t, customerToken, c.Headers["Authorization"])
	form.Set("schedule", "sometimes")
	p = b.post("/connectors/"+id, form)
	require.Equal(t, http.StatusUnprocessableEntity, p.status)
	require.Contains(t, connFieldError(t, p.body, "schedule"), "sometimes")

	// The list.
	p = b.get("/connectors")
	list := p.body
	require.Contains(t, list, "Billing customers (EU)")
	require.Contains(t, list, "<code>every 1h</code>")
	require.Contains(t, list, `<span class="badge ok">Succeeded</span>`)

	// Another workspace's admin finds none of it.
	_, admin2 := e.workspace(t, "Globex", "enterprise")
	b2 := e.browser(t)
	b2.signIn(admin2)
	require.NotContains(t, b2.get("/connectors").body, "Billing customers")
	for _, path := range []string{"/connectors/" + id, "/connectors/" + id + "/edit", "/connectors/" + id + "/reset",
		"/connectors/" + id + "/delete", "/connectors/" + id + "/runs/" + run.ID} {
		require.Equal(t, http.StatusNotFound, b2.get(path).status, path)
	}
	for _, path := range []string{"/connectors/" + id + "/run", "/connectors/" + id + "/preview", "/connectors/" + id + "/reset",
		"/connectors/" + id + "/delete", "/connectors/" + id} {
		b2.get("/connectors")
		require.Equal(t, http.StatusNotFound, b2.post(path, connectorFormValues(api)).status, path)
	}
	// A run of the connector under another connector's path is not found either.
	require.Equal(t, http.StatusNotFound, b.get("/connectors/con_00000000000000000000000000/runs/"+run.ID).status)
	c, err = e.svc.Connectors().Get(ctx, e.ws, id)
	require.NoError(t, err, "still there")
	require.Equal(t, "Billing customers (EU)", c.Name)

	// Reset and delete, each confirmed.
	p = b.get("/connectors/" + id + "/reset")
	require.Contains(t, p.body, "The checkpoint is now <code>2024-01-01T00:05:00Z</code>")
	p = b.post("/connectors/"+id+"/reset", nil)
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, "The checkpoint was reset")
	require.Contains(t, p.body, "from the start")
	p = b.get("/connectors/" + id + "/delete")
	require.Contains(t, p.body, "The records it wrote stay.")
	p = b.post("/connectors/"+id+"/delete", nil)
	require.Equal(t, http.StatusOK, p.status)
	require.Equal(t, "/connectors", p.url.Path)
	require.Contains(t, p.body, "There are no connectors yet.")
	require.Equal(t, 5, e.connAccounts(t, e.ws))

	urls, pages := b.seen()
	_, pages2 := b2.seen()
	for _, s := range []string{urls, pages, pages2, e.logs.String()} {
		require.NotContains(t, s, customerToken)
		require.NotContains(t, s, strings.TrimPrefix(customerToken, "Bearer "))
	}
}

var (
	runRowRE  = regexp.MustCompile(`(?s)<tr>(.*?)</tr>`)
	runCellRE = regexp.MustCompile(`(?s)<td data-label="([^"]+)"[^>]*>(.*?)</td>`)
	runTagRE  = regexp.MustCompile(`<[^>]+>`)
)

// runRows answers the rows of the run log, each cell's text by its label.
func runRows(tb testing.TB, body string) []map[string]string {
	tb.Helper()
	i := strings.Index(body, `<div id="runs"`)
	require.GreaterOrEqual(tb, i, 0)
	var rows []map[string]string
	for _, r := range runRowRE.FindAllStringSubmatch(body[i:], -1) {
		row := map[string]string{}
		for _, c := range runCellRE.FindAllStringSubmatch(r[1], -1) {
			row[c[1]] = strings.Join(strings.Fields(runTagRE.ReplaceAllString(c[2], "")), " ")
		}
		if len(row) > 0 {
			rows = append(rows, row)
		}
	}
	return rows
}

func pickCells(m map[string]string, keys ...string) map[string]string {
	out := map[string]string{}
	for _, k := range keys {
		out[k] = m[k]
	}
	return out
}

// TestConnectorFailures: a source that refuses the token fails the
// preview and the run, each showing the source's answer; a record the
// pipeline refuses is shown failing in the preview and listed on the run
// page, the others written.
func TestConnectorFailures(t *testing.T) {
	e := newAPIEnv(t)
	api := newCustomerAPI(t, 3)
	b := e.browser(t)
	b.signIn(e.admin)

	b.get("/connectors/new")
	form := connectorFormValues(api)
	form.Set("name", "Wrong token")
	form.Set("header_value", "Bearer wrong-token")
	p := b.post("/connectors", form)
	require.Equal(t, http.StatusOK, p.status, p.body)
	wrong := connectorPathRE.FindStringSubmatch(p.url.Path)[1]
	p = b.post("/connectors/"+wrong+"/preview", nil)
	require.Equal(t, http.StatusBadGateway, p.status)
	require.Contains(t, p.body, "The first page could not be fetched</strong>: HTTP 401.")
	require.Contains(t, html.UnescapeString(p.body), `{"error":"unauthorized"}`)
	b.post("/connectors/"+wrong+"/run", nil)
	run := e.connWaitRun(t, e.ws, wrong)
	require.Equal(t, connector.RunFailed, run.Status)
	rows := runRows(t, b.get("/connectors/"+wrong).body)
	require.Len(t, rows, 1)
	require.Contains(t, rows[0]["Status"], "Failed")
	require.Contains(t, rows[0]["Error"], "fetch_failed")
	p = b.get("/connectors/" + wrong + "/runs/" + run.ID)
	require.Contains(t, p.body, "<strong>fetch_failed</strong>: HTTP 401")

	b.get("/connectors/new")
	form = connectorFormValues(api)
	form.Set("name", "One bad website")
	form.Set("fields", "name = name\nwebsite = id == 2 ? 'not a url' : 'https://example.com/' + string(id)")
	p = b.post("/connectors", form)
	require.Equal(t, http.StatusOK, p.status, p.body)
	bad := connectorPathRE.FindStringSubmatch(p.url.Path)[1]
	p = b.post("/connectors/"+bad+"/preview", nil)
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, "A run would create 1, update 0, leave 0 unchanged, skip 0 and fail 1.")
	require.Contains(t, p.body, `<span class="badge fail">Fails</span>`)
	require.Contains(t, p.body, "<code>website</code>")
	b.post("/connectors/"+bad+"/run", nil)
	run = e.connWaitRun(t, e.ws, bad)
	require.Equal(t, connector.RunSucceeded, run.Status)
	require.EqualValues(t, 2, run.Created)
	require.EqualValues(t, 1, run.Failed)
	rows = runRows(t, b.get("/connectors/"+bad).body)
	require.Equal(t, map[string]string{"Created": "2", "Failed": "1"}, pickCells(rows[0], "Created", "Failed"))
	p = b.get("/connectors/" + bad + "/runs/" + run.ID)
	require.Contains(t, p.body, "Records not written")
	require.Contains(t, p.body, "<code>billing-2</code>")
	require.Contains(t, p.body, "<code>website</code>")
}

// TestConnectorAdvanced: what the form's fields do not cover goes through
// the advanced JSON, and an edit keeps it, header values included, which
// the edit form shows as "[redacted]" only.
func TestConnectorAdvanced(t *testing.T) {
	e := newAPIEnv(t)
	ctx := context.Background()
	api := newCustomerAPI(t, 3)
	b := e.browser(t)
	b.signIn(e.admin)

	b.get("/connectors/new")
	form := connectorFormValues(api)
	form.Set("advanced", `{"max_delete_ratio": 0.2, "headers": {"X-Api-Version": "v-2024-01-secret"}}`)
	p := b.post("/connectors", form)
	require.Equal(t, http.StatusOK, p.status, p.body)
	id := connectorPathRE.FindStringSubmatch(p.url.Path)[1]
	c, err := e.svc.Connectors().Get(ctx, e.ws, id)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"Authorization": customerToken, "X-Api-Version": "v-2024-01-secret"}, c.Headers)
	require.InDelta(t, 0.2, c.MaxDeleteRatio, 1e-9)
	require.Contains(t, p.body, "<code>Authorization</code>, <code>X-Api-Version</code>")

	p = b.get("/connectors/" + id + "/edit")
	require.Contains(t, p.body, "&#34;X-Api-Version&#34;: &#34;[redacted]&#34;")
	require.Contains(t, p.body, "&#34;max_delete_ratio&#34;: 0.2")
	adv := regexp.MustCompile(`(?s)<textarea id="advanced"[^>]*>(.*?)</textarea>`).FindStringSubmatch(p.body)
	require.NotNil(t, adv)
	form = connectorFormValues(api)
	form.Set("header_value", "")
	form.Set("advanced", html.UnescapeString(adv[1]))
	form.Set("mode", "full")
	p = b.post("/connectors/"+id, form)
	require.Equal(t, http.StatusOK, p.status, p.body)
	c, err = e.svc.Connectors().Get(ctx, e.ws, id)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"Authorization": customerToken, "X-Api-Version": "v-2024-01-secret"}, c.Headers)
	require.Equal(t, connector.ModeFull, c.Mode)

	// A connector made through the API with two targets is edited with
	// its mapping in the advanced JSON.
	def, err := json.Marshal(map[string]any{"name": "Two targets", "url": api.srv.URL + "/customers",
		"headers": map[string]string{"Authorization": customerToken}, "records_path": "data",
		"pagination": map[string]any{"kind": "cursor", "cursor_param": "cursor", "next_path": "meta.next_cursor"},
		"mapping": map[string]any{"targets": []any{
			map[string]any{"object": "account", "external_id": "'a-' + string(id)", "fields": map[string]string{"name": "name"}},
			map[string]any{"object": "contact", "external_id": "'c-' + string(id)", "fields": map[string]string{"last_name": "name",
				"account_id": "ref('account', 'a-' + string(id))"}},
		}}})
	require.NoError(t, err)
	two, err := e.svc.Connectors().Create(ctx, e.ws, def)
	require.NoError(t, err)
	p = b.get("/connectors/" + two.ID + "/edit")
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, `<input id="object" name="object" list="object-names" autocomplete="off" value=""`)
	adv = regexp.MustCompile(`(?s)<textarea id="advanced"[^>]*>(.*?)</textarea>`).FindStringSubmatch(p.body)
	require.Contains(t, adv[1], "contact")
	form = url.Values{"name": {"Two targets, renamed"}, "url": {api.srv.URL + "/customers"}, "records_path": {"data"},
		"header_name": {"Authorization"}, "pagination_kind": {"cursor"}, "cursor_param": {"cursor"}, "next_path": {"meta.next_cursor"},
		"mode": {"incremental"}, "deletes": {"off"}, "advanced": {html.UnescapeString(adv[1])}}
	p = b.post("/connectors/"+two.ID, form)
	require.Equal(t, http.StatusOK, p.status, p.body)
	c, err = e.svc.Connectors().Get(ctx, e.ws, two.ID)
	require.NoError(t, err)
	require.Equal(t, "Two targets, renamed", c.Name)
	require.Equal(t, two.Mapping, c.Mapping)
	require.False(t, c.Enabled, "the checkbox was left unticked")

	_, pages := b.seen()
	require.NotContains(t, pages, "v-2024-01-secret")
	require.NotContains(t, pages, customerToken)
}
