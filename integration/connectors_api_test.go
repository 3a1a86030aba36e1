package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/connector"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// sampleRecord is one customer of the loopback API.
type sampleRecord struct {
	ID        int    `json:"id"`
	Name      string `json:"name"`
	Industry  string `json:"industry,omitempty"`
	UpdatedAt string `json:"updated_at"`
}

// sampleAPI is a loopback customer API: GET /customers answers the records
// with updated_at at or after ?updated_since=, ordered by (updated_at, id),
// paginated as kind says, ?limit= at a time.
type sampleAPI struct {
	*httptest.Server
	mu   sync.Mutex
	recs map[int]sampleRecord
	// sorted is recs in answer order, nil when recs changed since.
	sorted []sampleRecord
	kind   string
	auth   []string // Authorization headers seen
	calls  int
	// hold, when set, is waited on before each answer.
	hold chan struct{}
	// answer, when set, may answer a request itself (failures).
	answer func(n int, w http.ResponseWriter) bool
}

func newSampleAPI(t *testing.T, kind string) *sampleAPI {
	t.Helper()
	a := &sampleAPI{recs: map[int]sampleRecord{}, kind: kind}
	a.Server = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.Close)
	return a
}

func (a *sampleAPI) put(recs ...sampleRecord) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range recs {
		a.recs[r.ID] = r
	}
	a.sorted = nil
}

func (a *sampleAPI) remove(ids ...int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		delete(a.recs, id)
	}
	a.sorted = nil
}

// ordered answers the records ordered by (updated_at, id).
func (a *sampleAPI) ordered() []sampleRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sorted == nil {
		a.sorted = make([]sampleRecord, 0, len(a.recs))
		for _, rec := range a.recs {
			a.sorted = append(a.sorted, rec)
		}
		slices.SortFunc(a.sorted, func(x, y sampleRecord) int {
			if x.UpdatedAt != y.UpdatedAt {
				if x.UpdatedAt < y.UpdatedAt {
					return -1
				}
				return 1
			}
			return x.ID - y.ID
		})
	}
	return a.sorted
}

func (a *sampleAPI) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.calls++
	n, hold, answer := a.calls, a.hold, a.answer
	a.auth = append(a.auth, r.Header.Get("Authorization"))
	a.mu.Unlock()
	if hold != nil {
		<-hold
	}
	if answer != nil && answer(n, w) {
		return
	}
	q := r.URL.Query()
	all := a.ordered()
	if since := q.Get("updated_since"); since != "" {
		// The first record at or after since; all is ordered by updated_at.
		i, _ := slices.BinarySearchFunc(all, since, func(r sampleRecord, t string) int { return strings.Compare(r.UpdatedAt, t) })
		all = all[i:]
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 {
		limit = len(all) + 1
	}
	from := 0
	switch a.kind {
	case "cursor":
		from, _ = strconv.Atoi(q.Get("cursor"))
	case "page":
		p, _ := strconv.Atoi(q.Get("page"))
		from = (p - 1) * limit
	case "offset", "link":
		from, _ = strconv.Atoi(q.Get("offset"))
	case "none":
		limit = len(all) + 1
	}
	from = min(from, len(all))
	to := min(from+limit, len(all))
	page := all[from:to]
	if page == nil {
		page = []sampleRecord{}
	}
	w.Header().Set("Content-Type", "application/json")
	body := map[string]any{"data": page}
	switch a.kind {
	case "cursor":
		next := ""
		if to < len(all) {
			next = strconv.Itoa(to)
		}
		body["meta"] = map[string]any{"next_cursor": next}
	case "link":
		if to < len(all) {
			u := *r.URL
			nq := u.Query()
			nq.Set("offset", strconv.Itoa(to))
			u.RawQuery = nq.Encode()
			w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="next"`, u.String()))
		}
	case "none":
		_ = json.NewEncoder(w).Encode(page)
		return
	}
	_ = json.NewEncoder(w).Encode(body)
}

// accountMapping maps a customer to an account.
var accountMapping = map[string]any{"targets": []any{map[string]any{
	"object": "account", "external_id": "'cus-' + string(id)",
	"fields": map[string]any{"name": "name", "industry": "industry"},
}}}

// connectorDef is the definition of a connector of a sampleAPI.
func connectorDef(a *sampleAPI, pageSize int) map[string]any {
	def := map[string]any{
		"name": "Sample customers", "url": a.URL + "/customers",
		"headers":      map[string]string{"Authorization": "Bearer sample-secret-token"},
		"records_path": "data",
		"incremental":  map[string]any{"field": "updated_at", "param": "updated_since", "start": "2020-01-01T00:00:00Z"},
		"mapping":      accountMapping,
	}
	pg := map[string]any{"kind": a.kind, "size_param": "limit", "page_size": pageSize}
	switch a.kind {
	case "cursor":
		pg["cursor_param"], pg["next_path"] = "cursor", "meta.next_cursor"
	case "page":
		pg["page_param"] = "page"
	case "offset":
		pg["offset_param"] = "offset"
	case "none":
		pg = map[string]any{"kind": "none"}
		def["records_path"] = ""
	}
	def["pagination"] = pg
	return def
}

// connectorEnv is a started env whose connectors may reach loopback.
func connectorEnv(t *testing.T, dsn string, cfg Config) *env {
	t.Helper()
	cfg.AllowPrivateWebhooks = true
	cfg.Connectors.HTTP.Backoff = connector.Backoff{Attempts: 3, BaseDelay: 10 * time.Millisecond}
	e := newEnv(t, dsn, cfg)
	require.NoError(t, e.svc.Start(context.Background()))
	return e
}

func (e *env) createConnector(t *testing.T, def map[string]any) string {
	t.Helper()
	r := e.do(t, "POST", "/api/v1/connectors", e.admin, def)
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	return r.json(t)["id"].(string)
}

// runConnector runs a connector now and answers the finished run.
func (e *env) runConnector(t *testing.T, id string) map[string]any {
	t.Helper()
	r := e.do(t, "POST", "/api/v1/connectors/"+id+"/run", e.admin, nil)
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	return e.waitRun(t, r.json(t)["run_id"].(string))
}

func (e *env) waitRun(t *testing.T, runID string) map[string]any {
	t.Helper()
	var run map[string]any
	require.Eventually(t, func() bool {
		r := e.do(t, "GET", "/api/v1/connector-runs/"+runID, e.admin, nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		run = r.json(t)
		return run["status"] == "succeeded" || run["status"] == "failed"
	}, 10*time.Minute, 10*time.Millisecond, "run %s did not finish", runID)
	return run
}

// tally is what a workspace holds: records of object by external id with
// their versions, audit entries and events.
type tally struct {
	versions map[string]int64
	audit    int
	events   int
}

func (e *env) tally(t *testing.T, object string) tally {
	t.Helper()
	ctx := context.Background()
	tl := tally{versions: map[string]int64{}}
	after := ""
	for {
		recs, err := e.st.ListRecords(ctx, records.ListQuery{Workspace: e.ws, Object: object, After: after, Limit: 500})
		require.NoError(t, err)
		for _, r := range recs {
			ext, _ := r.Fields["external_id"].(string)
			_, dup := tl.versions[ext]
			require.False(t, dup, "two records hold external id %s", ext)
			tl.versions[ext] = r.Version
		}
		if len(recs) < 500 {
			break
		}
		after = recs[len(recs)-1].ID
	}
	after = ""
	for {
		es, err := e.st.ListAudit(ctx, e.ws, "", after, 1000)
		require.NoError(t, err)
		tl.audit += len(es)
		if len(es) < 1000 {
			break
		}
		after = es[len(es)-1].ID
	}
	after = ""
	for {
		evs, err := e.st.ListEvents(ctx, e.ws, after, 1000)
		require.NoError(t, err)
		tl.events += len(evs)
		if len(evs) < 1000 {
			break
		}
		after = evs[len(evs)-1].ID
	}
	return tl
}

func num(m map[string]any, k string) int {
	f, _ := m[k].(float64)
	return int(f)
}

// stamp answers the n-th second after a fixed instant, as updated_at.
func stamp(n int) string {
	return time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Second).Format(time.RFC3339)
}

// TestConnectorIncrementalNoGapsNoDuplicates: 1,000 records, 300 of which
// share the greatest updated_at, in pages of 70 that split that group.
// Every record arrives once; records added (one at the checkpoint's very
// instant) and changed between runs arrive in the next run, written once;
// a run with nothing new writes nothing.
func TestConnectorIncrementalNoGapsNoDuplicates(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := connectorEnv(t, dsn, Config{})
		api := newSampleAPI(t, "cursor")
		for i := range 1000 {
			ts := stamp(i)
			if i >= 700 {
				ts = stamp(700)
			}
			api.put(sampleRecord{ID: i, Name: "Customer " + strconv.Itoa(i), UpdatedAt: ts})
		}
		id := e.createConnector(t, connectorDef(api, 70))

		run := e.runConnector(t, id)
		require.Equal(t, "succeeded", run["status"], "%v", run)
		require.Equal(t, 1000, num(run, "created"))
		require.Equal(t, 0, num(run, "updated")+num(run, "failed"))
		require.Equal(t, 15, num(run, "pages"), "1,000 records in pages of 70 and the empty page after")
		tl := e.tally(t, "account")
		require.Len(t, tl.versions, 1000)
		for ext, v := range tl.versions {
			require.EqualValues(t, 1, v, "%s written more than once", ext)
		}
		require.Equal(t, 1000, tl.audit)
		require.Equal(t, 1000, tl.events)

		// Between runs: 10 records change, 20 are added, one of them at the
		// checkpoint's own instant.
		for i := range 10 {
			api.put(sampleRecord{ID: i * 7, Name: "Changed " + strconv.Itoa(i), UpdatedAt: stamp(800 + i)})
		}
		api.put(sampleRecord{ID: 5000, Name: "Same instant", UpdatedAt: stamp(700)})
		for i := range 19 {
			api.put(sampleRecord{ID: 6000 + i, Name: "New " + strconv.Itoa(i), UpdatedAt: stamp(900 + i)})
		}
		run = e.runConnector(t, id)
		require.Equal(t, "succeeded", run["status"], "%v", run)
		require.Equal(t, 20, num(run, "created"))
		require.Equal(t, 10, num(run, "updated"))
		require.Equal(t, 300, num(run, "skipped"), "the records at the checkpoint's instant it already had")
		tl = e.tally(t, "account")
		require.Len(t, tl.versions, 1020)
		for i := range 10 {
			require.EqualValues(t, 2, tl.versions["cus-"+strconv.Itoa(i*7)])
		}
		require.EqualValues(t, 1, tl.versions["cus-5000"])
		require.Equal(t, 1030, tl.audit)
		require.Equal(t, 1030, tl.events)

		run = e.runConnector(t, id)
		require.Equal(t, "succeeded", run["status"], "%v", run)
		require.Equal(t, 0, num(run, "created")+num(run, "updated")+num(run, "failed"))
		again := e.tally(t, "account")
		require.Equal(t, tl, again, "a run with nothing new wrote something")
	})
}

// TestConnectorPaginationKinds: every pagination kind reads every record
// of a loopback API, page size and records path included.
func TestConnectorPaginationKinds(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := connectorEnv(t, dsn, Config{})
		for _, kind := range []string{"cursor", "page", "offset", "link", "none"} {
			t.Run(kind, func(t *testing.T) {
				api := newSampleAPI(t, kind)
				base := map[string]int{"cursor": 0, "page": 100, "offset": 200, "link": 300, "none": 400}[kind]
				for i := range 25 {
					api.put(sampleRecord{ID: base + i, Name: kind + " " + strconv.Itoa(i), UpdatedAt: stamp(i)})
				}
				run := e.runConnector(t, e.createConnector(t, connectorDef(api, 10)))
				require.Equal(t, "succeeded", run["status"], "%v", run)
				require.Equal(t, 25, num(run, "created"))
				if kind == "none" {
					require.Equal(t, 1, num(run, "pages"))
				} else {
					require.GreaterOrEqual(t, num(run, "pages"), 3)
				}
				tl := e.tally(t, "account")
				for i := range 25 {
					require.Contains(t, tl.versions, "cus-"+strconv.Itoa(base+i))
				}
			})
		}
	})
}

// TestConnectorAPI: create, get with header values redacted, list, patch
// (a redacted header keeps its value), run now and 409 while it runs,
// preview writing nothing, reset, the run log, delete.
func TestConnectorAPI(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := connectorEnv(t, dsn, Config{})
		api := newSampleAPI(t, "page")
		for i := range 5 {
			api.put(sampleRecord{ID: i, Name: "Customer " + strconv.Itoa(i), UpdatedAt: stamp(i)})
		}
		def := connectorDef(api, 2)
		r := e.do(t, "POST", "/api/v1/connectors", e.admin, def)
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		require.NotContains(t, string(r.body), "sample-secret-token")
		c := r.json(t)
		id := c["id"].(string)
		require.Regexp(t, `^con_`, id)
		require.Equal(t, map[string]any{"Authorization": "[redacted]"}, c["headers"])
		require.Equal(t, "incremental", c["mode"])
		require.Equal(t, "off", c["deletes"])

		r = e.do(t, "GET", "/api/v1/connectors/"+id, e.admin, nil)
		require.Equal(t, http.StatusOK, r.status)
		require.NotContains(t, string(r.body), "sample-secret-token")
		r = e.do(t, "GET", "/api/v1/connectors", e.admin, nil)
		require.Equal(t, http.StatusOK, r.status)
		require.Len(t, r.json(t)["data"], 1)

		// Invalid definitions are refused with the members named.
		bad := e.do(t, "POST", "/api/v1/connectors", e.admin, map[string]any{"name": "x", "url": "ftp://x",
			"mapping":  map[string]any{"targets": []any{map[string]any{"object": "account", "fields": map[string]any{"nme": "name"}}}},
			"schedule": "every 1s", "mode": "full", "deletes": "sometimes"})
		require.Equal(t, http.StatusUnprocessableEntity, bad.status, "body: %s", bad.body)
		for _, field := range []string{"url", "schedule", "deletes", "mapping/targets/0/fields/nme", "mapping/targets/0/external_id"} {
			require.Contains(t, string(bad.body), `"field":"`+field+`"`)
		}

		// A PATCH that sends the redacted header back keeps its value.
		r = e.do(t, "PATCH", "/api/v1/connectors/"+id, e.admin, map[string]any{"name": "Renamed",
			"headers": map[string]string{"Authorization": "[redacted]", "X-Extra": "1"}})
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		require.Equal(t, "Renamed", r.json(t)["name"])

		// Preview: the real poller and mapping on the first page, nothing written.
		r = e.do(t, "POST", "/api/v1/connectors/"+id+"/preview", e.admin, nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		p := r.json(t)
		require.Len(t, p["records"], 2)
		first := p["records"].([]any)[0].(map[string]any)
		require.Equal(t, "written", first["status"])
		target := first["targets"].([]any)[0].(map[string]any)
		require.Equal(t, "created", target["action"])
		require.Equal(t, "Customer 0", target["fields"].(map[string]any)["name"])
		require.Empty(t, e.tally(t, "account").versions, "preview wrote records")
		require.Nil(t, e.do(t, "GET", "/api/v1/connectors/"+id, e.admin, nil).json(t)["active_run_id"])

		// Run now; a second run while it is held answers 409.
		hold := make(chan struct{})
		api.mu.Lock()
		api.hold = hold
		api.mu.Unlock()
		r = e.do(t, "POST", "/api/v1/connectors/"+id+"/run", e.admin, nil)
		require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
		runID := r.json(t)["run_id"].(string)
		require.Regexp(t, `^run_`, runID)
		again := e.do(t, "POST", "/api/v1/connectors/"+id+"/run", e.admin, nil)
		require.Equal(t, http.StatusConflict, again.status, "body: %s", again.body)
		require.Equal(t, "run_active", again.code(t))
		reset := e.do(t, "POST", "/api/v1/connectors/"+id+"/reset", e.admin, nil)
		require.Equal(t, http.StatusConflict, reset.status, "body: %s", reset.body)
		api.mu.Lock()
		api.hold = nil
		api.mu.Unlock()
		close(hold)
		run := e.waitRun(t, runID)
		require.Equal(t, "succeeded", run["status"], "%v", run)
		require.Equal(t, 5, num(run, "created"))
		require.Equal(t, "manual", run["trigger"])
		require.Contains(t, run["cursor_after"], stamp(4))
		api.mu.Lock()
		for _, h := range api.auth {
			require.Equal(t, "Bearer sample-secret-token", h)
		}
		api.mu.Unlock()

		r = e.do(t, "GET", "/api/v1/connectors/"+id+"/runs", e.admin, nil)
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, runID, r.json(t)["data"].([]any)[0].(map[string]any)["id"])
		c = e.do(t, "GET", "/api/v1/connectors/"+id, e.admin, nil).json(t)
		require.Equal(t, stamp(4), c["checkpoint"].(map[string]any)["value"])

		r = e.do(t, "POST", "/api/v1/connectors/"+id+"/reset", e.admin, nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		require.Equal(t, "2020-01-01T00:00:00Z", r.json(t)["checkpoint"].(map[string]any)["value"])
		run = e.runConnector(t, id)
		require.Equal(t, 5, num(run, "unchanged"), "%v", run)
		require.Equal(t, 0, num(run, "created")+num(run, "updated"))

		require.Equal(t, http.StatusNoContent, e.do(t, "DELETE", "/api/v1/connectors/"+id, e.admin, nil).status)
		require.Equal(t, http.StatusNotFound, e.do(t, "GET", "/api/v1/connectors/"+id, e.admin, nil).status)
		require.Equal(t, http.StatusNotFound, e.do(t, "GET", "/api/v1/connector-runs/"+runID, e.admin, nil).status)
		require.Len(t, e.tally(t, "account").versions, 5, "the records a deleted connector wrote stay")
	})
}

// TestConnectorUnchangedWritesNothing: a full re-read of records whose
// mapped fields equal what is stored bumps no version and writes no audit
// entry and no event; a record changed in the CRM since is written again.
func TestConnectorUnchangedWritesNothing(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := connectorEnv(t, dsn, Config{})
		api := newSampleAPI(t, "offset")
		for i := range 30 {
			api.put(sampleRecord{ID: i, Name: "Customer " + strconv.Itoa(i), Industry: "Retail", UpdatedAt: stamp(i)})
		}
		def := connectorDef(api, 8)
		def["mode"] = "full"
		id := e.createConnector(t, def)
		run := e.runConnector(t, id)
		require.Equal(t, 30, num(run, "created"), "%v", run)
		before := e.tally(t, "account")

		run = e.runConnector(t, id)
		require.Equal(t, "succeeded", run["status"])
		require.Equal(t, 30, num(run, "unchanged"))
		require.Equal(t, 0, num(run, "created")+num(run, "updated"))
		require.Equal(t, before, e.tally(t, "account"))

		// Someone edits a record in the CRM: the connector's next run puts
		// the upstream value back, through the pipeline.
		rec, err := e.st.GetRecordByExternalID(context.Background(), e.ws, "account", "cus-3")
		require.NoError(t, err)
		r := e.do(t, "PATCH", "/api/v1/records/account/"+rec.ID, e.admin, map[string]any{"fields": map[string]any{"industry": "Edited"}})
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		run = e.runConnector(t, id)
		require.Equal(t, 1, num(run, "updated"), "%v", run)
		require.Equal(t, 29, num(run, "unchanged"))
		after := e.tally(t, "account")
		require.EqualValues(t, 3, after.versions["cus-3"])
		require.Equal(t, before.audit+2, after.audit)
	})
}

// TestConnectorOnePipeline: records a connector pulls take the pipeline:
// the Closed Won rule, an audit entry with source connector and the
// connector as actor, an outbound webhook, and the plan cap, which stops
// the run with the failure in its log and loses nothing once lifted.
func TestConnectorOnePipeline(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		plans := append(records.DefaultPlans(), records.Plan{Name: "tiny", MaxRecords: 4, RequestsPerMinute: 6000})
		e := connectorEnv(t, dsn, Config{Plans: plans,
			Webhooks: outbound.Config{Schedule: []time.Duration{50 * time.Millisecond}, Jitter: -1}})
		rv := newHookReceiver(t)
		r := e.do(t, "POST", "/api/v1/webhooks", e.admin, map[string]any{"url": rv.URL + "/hook", "events": []string{"record.created"}})
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)

		api := newSampleAPI(t, "page")
		for i := range 3 {
			api.put(sampleRecord{ID: i, Name: "Deal " + strconv.Itoa(i), UpdatedAt: stamp(i)})
		}
		def := connectorDef(api, 2)
		def["mapping"] = map[string]any{"targets": []any{map[string]any{
			"object": "opportunity", "external_id": "'deal-' + string(id)",
			"fields": map[string]any{"name": "name", "stage": "'Closed Won'", "amount": "float(id) * 100"},
		}}}
		id := e.createConnector(t, def)
		run := e.runConnector(t, id)
		require.Equal(t, "succeeded", run["status"], "%v", run)

		ctx := context.Background()
		rec, err := e.st.GetRecordByExternalID(ctx, e.ws, "opportunity", "deal-1")
		require.NoError(t, err)
		require.NotEmpty(t, rec.Fields["closed_at"], "the Closed Won rule did not run")
		audit, err := e.st.ListAudit(ctx, e.ws, rec.ID, "", 10)
		require.NoError(t, err)
		require.Len(t, audit, 1)
		require.Equal(t, records.SourceConnector, audit[0].Source)
		require.Equal(t, records.Actor{Kind: "connector", ID: id}, audit[0].Actor)
		require.Eventually(t, func() bool {
			for _, req := range rv.requests() {
				var ev map[string]any
				if json.Unmarshal(req.body, &ev) == nil {
					data := ev["data"].(map[string]any)
					if data["source"] == "connector" && data["record"].(map[string]any)["id"] == rec.ID {
						return true
					}
				}
			}
			return false
		}, 30*time.Second, 20*time.Millisecond, "no webhook for the pulled record")

		// The plan cap: a workspace on a plan of 4 records.
		ws, admin := e.workspace(t, "tiny")
		tiny := &env{st: e.st, svc: e.svc, srv: e.srv, ws: ws, admin: admin}
		api2 := newSampleAPI(t, "page")
		for i := range 7 {
			api2.put(sampleRecord{ID: i, Name: "Customer " + strconv.Itoa(i), UpdatedAt: stamp(i)})
		}
		cid := tiny.createConnector(t, connectorDef(api2, 3))
		run = tiny.runConnector(t, cid)
		require.Equal(t, "failed", run["status"], "%v", run)
		require.Equal(t, "plan_limit_exceeded", run["error"].(map[string]any)["code"])
		held := tiny.tally(t, "account")
		require.Len(t, held.versions, 3, "the first page is written, the second would pass the cap and is not")

		require.NoError(t, e.svc.SetPlan(ctx, ws, "enterprise"))
		run = tiny.runConnector(t, cid)
		require.Equal(t, "succeeded", run["status"], "%v", run)
		done := tiny.tally(t, "account")
		require.Len(t, done.versions, 7, "every record arrives once the cap is lifted")
		for ext, v := range done.versions {
			require.EqualValues(t, 1, v, "%s written twice", ext)
		}
		require.Equal(t, 7, done.audit)
	})
}

// TestConnectorFetchFailures: 429 and 503 are retried (Retry-After in
// seconds and as an HTTP date) until the page comes; a persistent 500
// fails the run with the status and the body in its log; a 404 fails at
// once; a target on loopback is refused without the opt-in, naming it.
func TestConnectorFetchFailures(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := connectorEnv(t, dsn, Config{})
		api := newSampleAPI(t, "none")
		api.put(sampleRecord{ID: 1, Name: "One", UpdatedAt: stamp(1)})
		id := e.createConnector(t, connectorDef(api, 0))

		var mu sync.Mutex
		var asked []time.Time
		api.mu.Lock()
		api.answer = func(n int, w http.ResponseWriter) bool {
			mu.Lock()
			asked = append(asked, time.Now())
			mu.Unlock()
			switch n {
			case 1:
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				return true
			case 2:
				w.Header().Set("Retry-After", time.Now().Add(time.Second).UTC().Format(http.TimeFormat))
				w.WriteHeader(http.StatusServiceUnavailable)
				return true
			}
			return false
		}
		api.mu.Unlock()
		run := e.runConnector(t, id)
		require.Equal(t, "succeeded", run["status"], "%v", run)
		require.Equal(t, 1, num(run, "created"))
		mu.Lock()
		require.Len(t, asked, 3)
		require.GreaterOrEqual(t, asked[1].Sub(asked[0]), 900*time.Millisecond, "Retry-After in seconds not honoured")
		mu.Unlock()

		api.mu.Lock()
		api.calls = 0
		api.answer = func(n int, w http.ResponseWriter) bool {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(strings.Repeat("overloaded ", 1000)))
			return true
		}
		api.mu.Unlock()
		run = e.runConnector(t, id)
		require.Equal(t, "failed", run["status"])
		rerr := run["error"].(map[string]any)
		require.Equal(t, "fetch_failed", rerr["code"])
		require.EqualValues(t, 500, rerr["status_code"])
		require.Len(t, rerr["body"], 4096, "the first 4 KiB of the body")
		require.Contains(t, rerr["message"], "gave up after 3 attempts")
		api.mu.Lock()
		require.Equal(t, 3, api.calls)

		api.calls = 0
		api.answer = func(n int, w http.ResponseWriter) bool {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"no such tenant"}`))
			return true
		}
		api.mu.Unlock()
		run = e.runConnector(t, id)
		require.Equal(t, "failed", run["status"])
		rerr = run["error"].(map[string]any)
		require.EqualValues(t, 404, rerr["status_code"])
		require.Equal(t, `{"error":"no such tenant"}`, rerr["body"])
		api.mu.Lock()
		require.Equal(t, 1, api.calls, "a 404 is not asked again")
		api.mu.Unlock()

		// A loopback target without the opt-in is refused, naming the flag.
		strict := newEnv(t, dsn, Config{})
		r := strict.do(t, "POST", "/api/v1/connectors", strict.admin, connectorDef(api, 0))
		require.Equal(t, http.StatusUnprocessableEntity, r.status, "body: %s", r.body)
		require.Contains(t, string(r.body), "blocked_address")
		require.Contains(t, string(r.body), "-allow-private-webhooks")
	})
}

// TestConnectorFullModeDeletes: a complete full run deletes, through the
// pipeline, the records of its connector it no longer saw; one that would
// delete more than max_delete_ratio deletes nothing and says why; a failed
// run deletes nothing. With deletes flag the records get
// connector_deleted_at instead, cleared when they come back.
func TestConnectorFullModeDeletes(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		objs := records.DefaultObjects()
		for i := range objs {
			if objs[i].Name == "account" {
				objs[i].Fields = append(objs[i].Fields, records.Field{Name: "connector_deleted_at", Type: records.TypeDateTime})
			}
		}
		e := connectorEnv(t, dsn, Config{Objects: objs})
		ctx := context.Background()
		api := newSampleAPI(t, "page")
		for i := range 10 {
			api.put(sampleRecord{ID: i, Name: "Customer " + strconv.Itoa(i), UpdatedAt: stamp(i)})
		}
		def := connectorDef(api, 4)
		def["mode"], def["deletes"] = "full", "delete"
		id := e.createConnector(t, def)
		require.Equal(t, 10, num(e.runConnector(t, id), "created"))
		// A record of the same object the connector did not write is not its to delete.
		e.create(t, e.admin, "account", map[string]any{"name": "Typed in the CRM"})

		api.remove(0, 1, 2)
		run := e.runConnector(t, id)
		require.Equal(t, "succeeded", run["status"], "%v", run)
		require.Equal(t, 3, num(run, "deleted"))
		tl := e.tally(t, "account")
		require.Len(t, tl.versions, 8)
		require.NotContains(t, tl.versions, "cus-0")
		deleted, err := e.st.ListAudit(ctx, e.ws, "", "", 1000)
		require.NoError(t, err)
		n := 0
		for _, a := range deleted {
			if a.Action == "delete" {
				require.Equal(t, records.SourceConnector, a.Source)
				require.Equal(t, id, a.Actor.ID)
				n++
			}
		}
		require.Equal(t, 3, n)

		// 5 of the remaining 7 gone upstream: more than half, so nothing goes.
		api.remove(3, 4, 5, 6, 7)
		run = e.runConnector(t, id)
		require.Equal(t, "succeeded", run["status"])
		require.Equal(t, 0, num(run, "deleted"))
		require.Contains(t, run["notes"].([]any)[0], "max_delete_ratio")
		require.Len(t, e.tally(t, "account").versions, 8)

		// A run that fails on its second page deletes nothing.
		for i := 3; i < 8; i++ {
			api.put(sampleRecord{ID: i, Name: "Customer " + strconv.Itoa(i), UpdatedAt: stamp(i)})
		}
		api.remove(9)
		api.mu.Lock()
		api.calls = 0
		api.answer = func(n int, w http.ResponseWriter) bool {
			if n == 2 {
				w.WriteHeader(http.StatusBadRequest)
				return true
			}
			return false
		}
		api.mu.Unlock()
		run = e.runConnector(t, id)
		require.Equal(t, "failed", run["status"])
		require.Equal(t, 0, num(run, "deleted"))
		require.Contains(t, e.tally(t, "account").versions, "cus-9")

		// Flag instead of delete.
		flagAPI := newSampleAPI(t, "none")
		for i := range 4 {
			flagAPI.put(sampleRecord{ID: 100 + i, Name: "Flagged " + strconv.Itoa(i), UpdatedAt: stamp(i)})
		}
		def = connectorDef(flagAPI, 0)
		def["mode"], def["deletes"] = "full", "flag"
		fid := e.createConnector(t, def)
		require.Equal(t, 4, num(e.runConnector(t, fid), "created"))
		flagAPI.remove(100)
		run = e.runConnector(t, fid)
		require.Equal(t, 1, num(run, "deleted"), "%v", run)
		rec, err := e.st.GetRecordByExternalID(ctx, e.ws, "account", "cus-100")
		require.NoError(t, err)
		require.NotEmpty(t, rec.Fields["connector_deleted_at"])
		flagAPI.put(sampleRecord{ID: 100, Name: "Flagged 0", UpdatedAt: stamp(0)})
		run = e.runConnector(t, fid)
		require.Equal(t, 1, num(run, "updated"), "%v", run)
		rec, err = e.st.GetRecordByExternalID(ctx, e.ws, "account", "cus-100")
		require.NoError(t, err)
		require.NotContains(t, rec.Fields, "connector_deleted_at")

		// Flag needs the field on every target object.
		def["mapping"] = map[string]any{"targets": []any{map[string]any{"object": "lead", "external_id": "string(id)",
			"fields": map[string]any{"name": "name"}}}}
		r := e.do(t, "POST", "/api/v1/connectors", e.admin, def)
		require.Equal(t, http.StatusUnprocessableEntity, r.status)
		require.Contains(t, string(r.body), "no_flag_field")
	})
}

// TestConnectorScheduleTwoInstances: two servers on one Postgres with a
// connector scheduled every 10 s: each scheduled run happens once (the
// leader inserts it), runs never overlap, and a run now on the other
// instance while one is active answers 409.
func TestConnectorScheduleTwoInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for three scheduled runs")
	}
	dsn := testdb.PostgresDSN(t)
	cfg := Config{AllowPrivateWebhooks: true}
	a := newEnv(t, dsn, cfg)
	b := newEnv(t, dsn, cfg)
	b.ws, b.admin = a.ws, a.admin
	api := newSampleAPI(t, "none")
	for i := range 5 {
		api.put(sampleRecord{ID: i, Name: "Customer " + strconv.Itoa(i), UpdatedAt: stamp(i)})
	}
	// Each page takes a while, so a run is seen active.
	api.answer = func(int, http.ResponseWriter) bool {
		time.Sleep(1500 * time.Millisecond)
		return false
	}
	def := connectorDef(api, 0)
	def["schedule"] = "every 10s"
	id := a.createConnector(t, def)
	ctx := context.Background()
	require.NoError(t, a.svc.Start(ctx))
	require.NoError(t, b.svc.Start(ctx))
	started := time.Now()

	var active string
	require.Eventually(t, func() bool {
		c := b.do(t, "GET", "/api/v1/connectors/"+id, b.admin, nil).json(t)
		active, _ = c["active_run_id"].(string)
		return active != ""
	}, 30*time.Second, 20*time.Millisecond, "a scheduled run starts")
	r := b.do(t, "POST", "/api/v1/connectors/"+id+"/run", b.admin, nil)
	require.Equal(t, http.StatusConflict, r.status, "body: %s", r.body)
	require.Equal(t, "run_active", r.code(t))

	// Three ticks' worth.
	require.Eventually(t, func() bool {
		runs, err := a.st.ListConnectorRuns(ctx, a.ws, id, "", 50)
		require.NoError(t, err)
		return len(runs) >= 3 && runs[0].FinishedAt != nil
	}, 60*time.Second, 50*time.Millisecond, "three scheduled runs")
	runs, err := a.st.ListConnectorRuns(ctx, a.ws, id, "", 50)
	require.NoError(t, err)
	t.Logf("%d runs in %s", len(runs), time.Since(started).Round(time.Second))
	slices.Reverse(runs)
	for i, run := range runs {
		require.Equal(t, "schedule", run.Trigger)
		require.Equal(t, "succeeded", run.Status, "%+v", run.Error)
		if i == 0 {
			continue
		}
		prev := runs[i-1]
		require.NotNil(t, prev.FinishedAt)
		require.False(t, run.StartedAt.Before(*prev.FinishedAt), "run %s started before run %s finished", run.ID, prev.ID)
		require.GreaterOrEqual(t, run.CreatedAt.Sub(prev.CreatedAt), 9*time.Second,
			"two scheduled runs %s apart: a tick inserted twice", run.CreatedAt.Sub(prev.CreatedAt))
	}
	require.Equal(t, 5, num(a.do(t, "GET", "/api/v1/connector-runs/"+runs[0].ID, a.admin, nil).json(t), "created"))
}
