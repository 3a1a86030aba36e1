package integration

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/ingest"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
)

// bulkJob opens a job, uploads data, closes it and waits until it ends.
func (e *env) bulkJob(tb testing.TB, key string, spec map[string]any, data string) map[string]any {
	tb.Helper()
	r := e.do(tb, "POST", "/api/v1/bulk/jobs", key, spec)
	require.Equal(tb, http.StatusCreated, r.status, "body: %s", r.body)
	id := r.json(tb)["id"].(string)
	require.Equal(tb, "open", r.json(tb)["state"])
	r = e.do(tb, "PUT", "/api/v1/bulk/jobs/"+id+"/data", key, data)
	require.Equal(tb, http.StatusOK, r.status, "body: %s", r.body)
	r = e.do(tb, "POST", "/api/v1/bulk/jobs/"+id+"/close", key, nil)
	require.Equal(tb, http.StatusAccepted, r.status, "body: %s", r.body)
	require.Equal(tb, "queued", r.json(tb)["state"])
	return e.waitJob(tb, key, id)
}

// waitJob polls the job until it is in a terminal state.
func (e *env) waitJob(tb testing.TB, key, id string) map[string]any {
	tb.Helper()
	var j map[string]any
	require.Eventually(tb, func() bool {
		r := e.do(tb, "GET", "/api/v1/bulk/jobs/"+id, key, nil)
		require.Equal(tb, http.StatusOK, r.status, "body: %s", r.body)
		j = r.json(tb)
		return ingest.JobState(j["state"].(string)).Terminal()
	}, 60*time.Second, 20*time.Millisecond, "job %s did not end", id)
	return j
}

// bulkResults reads every JSON result of a job, page by page.
func (e *env) bulkResults(tb testing.TB, key, id, query string) []ingest.RowResult {
	tb.Helper()
	var all []ingest.RowResult
	cursor := ""
	for {
		r := e.do(tb, "GET", "/api/v1/bulk/jobs/"+id+"/results?limit=2"+query+cursor, key, nil)
		require.Equal(tb, http.StatusOK, r.status, "body: %s", r.body)
		var p struct {
			Data []ingest.RowResult `json:"data"`
			Next *string            `json:"next_cursor"`
		}
		require.NoError(tb, json.Unmarshal(r.body, &p))
		all = append(all, p.Data...)
		if p.Next == nil {
			return all
		}
		cursor = "&cursor=" + *p.Next
	}
}

func (e *env) bulkCSV(tb testing.TB, key, id, query string) [][]string {
	tb.Helper()
	r := e.do(tb, "GET", "/api/v1/bulk/jobs/"+id+"/results"+query, key, nil, "Accept", "text/csv")
	require.Equal(tb, http.StatusOK, r.status, "body: %s", r.body)
	require.Equal(tb, "text/csv; charset=utf-8", r.header.Get("Content-Type"))
	recs, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
	require.NoError(tb, err)
	return recs
}

// summary is a result without what differs between runs (new ids).
func summary(rs []ingest.RowResult) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		s := fmt.Sprintf("%d %s %s", r.Row, r.Status, r.Action)
		if r.Error != nil {
			s += " " + r.Error.Code
			for _, f := range r.Error.Fields {
				s += " " + f.Field + ":" + f.Code
			}
		}
		out[i] = s
	}
	return out
}

func TestBulkJobCSVUpsertFixAndRetry(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := startedEnv(t, dsn)
		bulk := e.key(t, e.ws, apikey.ScopeBulk)
		data := "external_id,name,amount,stage\n" +
			"fin-1,Deal one,100,Proposal\n" +
			"fin-2,Deal two,-5,Proposal\n" +
			"fin-3,Deal three,300,Nonsense\n" +
			"fin-4,Deal four,400,Negotiation\n"
		j := e.bulkJob(t, bulk, map[string]any{"object": "opportunity", "operation": "upsert", "format": "csv"}, data)
		require.Equal(t, "completed", j["state"])
		require.EqualValues(t, 4, j["rows"])
		require.EqualValues(t, 4, j["processed"])
		require.EqualValues(t, 2, j["succeeded"])
		require.EqualValues(t, 2, j["failed"])
		require.NotNil(t, j["started_at"])
		require.NotNil(t, j["finished_at"])
		id := j["id"].(string)

		rs := e.bulkResults(t, bulk, id, "")
		require.Equal(t, []string{
			"1 succeeded created",
			"2 failed  validation_failed amount:min",
			"3 failed  validation_failed stage:one_of",
			"4 succeeded created",
		}, summary(rs))
		require.True(t, strings.HasPrefix(rs[0].RecordID, "rec_"))
		failed := e.bulkResults(t, bulk, id, "&status=failed")
		require.Equal(t, []string{"2 failed  validation_failed amount:min", "3 failed  validation_failed stage:one_of"}, summary(failed))

		// The failed rows as CSV: the input columns plus error, ready to fix.
		recs := e.bulkCSV(t, bulk, id, "?status=failed")
		require.Equal(t, []string{"external_id", "name", "amount", "stage", "error"}, recs[0])
		require.Len(t, recs, 3)
		require.Equal(t, []string{"fin-2", "Deal two", "-5", "Proposal"}, recs[1][:4])
		require.Contains(t, recs[1][4], "amount: must be at least 0")
		require.Equal(t, []string{"fin-3", "Deal three", "300", "Nonsense"}, recs[2][:4])
		ok := e.bulkCSV(t, bulk, id, "?status=succeeded")
		require.Equal(t, []string{"external_id", "name", "amount", "stage", "record_id", "action"}, ok[0])
		require.Equal(t, []string{"fin-1", "Deal one", "100", "Proposal", rs[0].RecordID, "created"}, ok[1])

		// Fixed and uploaded again as a new job: the failed rows go in, and
		// a row already written is updated, not duplicated.
		var fixed strings.Builder
		w := csv.NewWriter(&fixed)
		require.NoError(t, w.Write(recs[0][:4]))
		require.NoError(t, w.Write([]string{"fin-2", "Deal two", "5", "Proposal"}))
		require.NoError(t, w.Write([]string{"fin-3", "Deal three", "300", "Negotiation"}))
		require.NoError(t, w.Write([]string{"fin-1", "Deal one", "150", "Proposal"}))
		w.Flush()
		j = e.bulkJob(t, bulk, map[string]any{"object": "opportunity", "operation": "upsert", "format": "csv"}, fixed.String())
		require.EqualValues(t, 3, j["succeeded"], "%v", j)
		rs2 := e.bulkResults(t, bulk, j["id"].(string), "")
		require.Equal(t, []string{"1 succeeded created", "2 succeeded created", "3 succeeded updated"}, summary(rs2))
		require.Equal(t, rs[0].RecordID, rs2[2].RecordID)

		list := e.do(t, "GET", "/api/v1/records/opportunity?limit=200", e.admin, nil).json(t)["data"].([]any)
		require.Len(t, list, 4)

		jobs := e.do(t, "GET", "/api/v1/bulk/jobs?limit=1", bulk, nil)
		require.Equal(t, http.StatusOK, jobs.status)
		require.Len(t, jobs.json(t)["data"], 1)
		require.NotNil(t, jobs.json(t)["next_cursor"])
	})
}

func TestBulkOperationsResults(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, Config{Plans: []records.Plan{
			{Name: "tiny", MaxRecords: 4, RequestsPerMinute: 6000},
			{Name: "enterprise", RequestsPerMinute: 6000}}})
		require.NoError(t, e.svc.Start(context.Background()))
		ws, admin := e.workspace(t, "tiny")
		bulk := e.key(t, ws, apikey.ScopeBulk)
		existing := e.create(t, admin, "account", map[string]any{"name": "Taken", "external_id": "acc-taken"})

		// insert: created, a field error, a duplicate external id, an id
		// where none belongs, an unreadable row, and the plan's cap of 4
		// (one place is taken).
		j := e.bulkJob(t, bulk, map[string]any{"object": "account", "operation": "insert", "format": "ndjson"},
			`{"fields":{"name":"A1","external_id":"acc-1"}}
{"name":"","external_id":"acc-2"}
{"name":"Dup","external_id":"acc-taken"}
{"id":"rec_x","name":"With id"}
not json
{"name":"A2","website":"https://example.com"}
{"name":"A3"}
{"name":"A4 over the cap"}
`)
		require.Equal(t, "completed", j["state"])
		ins := e.bulkResults(t, bulk, j["id"].(string), "")
		require.Equal(t, []string{
			"1 succeeded created",
			"2 failed  validation_failed name:required",
			"3 failed  duplicate",
			"4 failed  validation_failed id:not_allowed",
			"5 failed  malformed_row",
			"6 succeeded created",
			"7 succeeded created",
			"8 failed  plan_limit_exceeded",
		}, summary(ins))

		// update by id: updated, unchanged, not found, field error.
		a1, a2 := ins[0].RecordID, ins[5].RecordID
		j = e.bulkJob(t, bulk, map[string]any{"object": "account", "operation": "update", "format": "json"}, fmt.Sprintf(
			`[{"id":%q,"fields":{"industry":"Finance"}},{"id":%q,"fields":{"name":"A2"}},{"id":"rec_nope","fields":{"name":"x"}},{"id":%q,"fields":{"website":"not a url at all"}},{"fields":{"name":"no id"}}]`,
			a1, a2, a2))
		upID := j["id"].(string)
		up := e.bulkResults(t, bulk, upID, "")
		require.Equal(t, []string{
			"1 succeeded updated",
			"2 succeeded unchanged",
			"3 failed  not_found",
			"4 failed  validation_failed website:url",
			"5 failed  validation_failed id:required",
		}, summary(up))
		require.Equal(t, a1, up[0].RecordID)

		// upsert by the external id: update of an existing record, and the
		// cap still holds for creates.
		j = e.bulkJob(t, bulk, map[string]any{"object": "account", "operation": "upsert", "format": "json"},
			`[{"external_id":"acc-taken","name":"Taken, renamed"},{"external_id":"acc-new","name":"New"},{"name":"no key"}]`)
		ups := e.bulkResults(t, bulk, j["id"].(string), "")
		require.Equal(t, []string{"1 succeeded updated", "2 failed  plan_limit_exceeded", "3 failed  validation_failed external_id:required"}, summary(ups))
		require.Equal(t, existing["id"], ups[0].RecordID)

		// delete: deleted, not found.
		j = e.bulkJob(t, bulk, map[string]any{"object": "account", "operation": "delete", "format": "csv"},
			"id\n"+a1+"\nrec_nope\n")
		del := e.bulkResults(t, bulk, j["id"].(string), "")
		require.Equal(t, []string{"1 succeeded deleted", "2 failed  not_found"}, summary(del))
		r := e.do(t, "GET", "/api/v1/records/account/"+a1, admin, nil)
		require.Equal(t, http.StatusNotFound, r.status)

		// A JSON job's failed rows as CSV: an id column and the object's
		// fields, then the error.
		recs := e.bulkCSV(t, bulk, upID, "?status=failed")
		require.Equal(t, [][]string{
			{"id", "name", "website", "industry", "external_id", "error"},
			{"rec_nope", "x", "", "", "", "not_found: no such record"},
			{a2, "", "not a url at all", "", "", "website: must be an http or https URL"},
			{"", "no id", "", "", "", "id: is required to update"},
		}, recs)
	})
}

func TestBulkValidateOnlyAndAllOrNone(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, Config{Plans: []records.Plan{
			{Name: "tiny", MaxRecords: 3, RequestsPerMinute: 6000},
			{Name: "enterprise", RequestsPerMinute: 6000}}})
		require.NoError(t, e.svc.Start(context.Background()))
		ws, admin := e.workspace(t, "tiny")
		bulk := e.key(t, ws, apikey.ScopeBulk)
		// Later rows depend on earlier ones (the same external id twice),
		// a Before rule sets closed_at, a field fails, and the plan's cap
		// stops the fourth create.
		data := `{"external_id":"o-1","name":"One","stage":"Proposal"}
{"external_id":"o-1","stage":"Closed Won"}
{"external_id":"o-2","name":"Two","amount":-1}
{"external_id":"o-3","name":"Three"}
{"external_id":"o-4","name":"Four"}
{"external_id":"o-5","name":"Five"}
`
		spec := map[string]any{"object": "opportunity", "operation": "upsert", "format": "ndjson"}
		spec["validate_only"] = true
		dry := e.bulkJob(t, bulk, spec, data)
		require.Equal(t, "completed", dry["state"])
		dryRes := e.bulkResults(t, bulk, dry["id"].(string), "")
		list := e.do(t, "GET", "/api/v1/records/opportunity", admin, nil).json(t)["data"].([]any)
		require.Empty(t, list, "validate_only wrote nothing")
		audit := e.do(t, "GET", "/api/v1/audit", admin, nil).json(t)["data"].([]any)
		require.Empty(t, audit)

		delete(spec, "validate_only")
		real := e.bulkJob(t, bulk, spec, data)
		realRes := e.bulkResults(t, bulk, real["id"].(string), "")
		require.Equal(t, []string{
			"1 succeeded created", "2 succeeded updated", "3 failed  validation_failed amount:min",
			"4 succeeded created", "5 succeeded created", "6 failed  plan_limit_exceeded",
		}, summary(realRes))
		require.Equal(t, summary(realRes), summary(dryRes), "validate_only answers what the real run does")
		require.Equal(t, realRes[0].RecordID, realRes[1].RecordID)
		require.Equal(t, dryRes[0].RecordID, dryRes[1].RecordID)
		require.Equal(t, real["succeeded"], dry["succeeded"])

		// all_or_none: two rows fail, nothing is written, and the results
		// name them; the others say they were not written.
		ws2, admin2 := e.workspace(t, "enterprise")
		bulk2 := e.key(t, ws2, apikey.ScopeBulk)
		spec["mode"] = "all_or_none"
		aon := e.bulkJob(t, bulk2, spec, data)
		require.Equal(t, "failed", aon["state"])
		require.Equal(t, "1 of 6 rows failed (row 3); nothing was written", aon["error"])
		aonRes := e.bulkResults(t, bulk2, aon["id"].(string), "&status=failed")
		require.Len(t, aonRes, 6)
		require.Equal(t, "validation_failed", aonRes[2].Error.Code)
		require.Equal(t, ingest.CodeNotWritten, aonRes[0].Error.Code)
		list = e.do(t, "GET", "/api/v1/records/opportunity", admin2, nil).json(t)["data"].([]any)
		require.Empty(t, list)

		// Fixed, the all-or-none job writes every row.
		aon = e.bulkJob(t, bulk2, spec, strings.Replace(data, `"amount":-1`, `"amount":1`, 1))
		require.Equal(t, "completed", aon["state"], "%v", aon)
		require.EqualValues(t, 6, aon["succeeded"])
		list = e.do(t, "GET", "/api/v1/records/opportunity", admin2, nil).json(t)["data"].([]any)
		require.Len(t, list, 5)
	})
}

// TestBulkOnePipeline: a bulk row takes every step a single write takes:
// the Closed Won rule, an audit entry with source bulk and the key as
// actor, an event, a delivered webhook; and the plan's cap holds exactly
// while single creates race the job.
func TestBulkOnePipeline(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := startedEnv(t, dsn)
		rv := newHookReceiver(t)
		r := e.do(t, "POST", "/api/v1/webhooks", e.admin, map[string]any{"url": rv.URL + "/hook", "events": []string{"*"}})
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		bulk := e.key(t, e.ws, apikey.ScopeBulk)
		bulkKeyID := e.keyID(t, e.ws, "test BULK")

		j := e.bulkJob(t, bulk, map[string]any{"object": "opportunity", "operation": "insert", "format": "json"},
			`[{"name":"Won","stage":"Closed Won"},{"name":"Bad","amount":-3},{"name":"Open","stage":"Proposal"}]`)
		rs := e.bulkResults(t, bulk, j["id"].(string), "")
		require.Equal(t, []string{"1 succeeded created", "2 failed  validation_failed amount:min", "3 succeeded created"}, summary(rs))
		won := e.do(t, "GET", "/api/v1/records/opportunity/"+rs[0].RecordID, e.admin, nil).json(t)
		require.NotEmpty(t, won["fields"].(map[string]any)["closed_at"], "the Closed Won rule fired")
		open := e.do(t, "GET", "/api/v1/records/opportunity/"+rs[2].RecordID, e.admin, nil).json(t)
		require.NotContains(t, open["fields"], "closed_at")

		for _, id := range []string{rs[0].RecordID, rs[2].RecordID} {
			entries, err := e.st.ListAudit(context.Background(), e.ws, id, "", 10)
			require.NoError(t, err)
			require.Len(t, entries, 1)
			require.Equal(t, records.SourceBulk, entries[0].Source)
			require.Equal(t, records.Actor{Kind: "api_key", ID: bulkKeyID}, entries[0].Actor)
		}
		evs, err := e.st.ListEvents(context.Background(), e.ws, "", 100)
		require.NoError(t, err)
		require.Len(t, evs, 2)
		require.Eventually(t, func() bool {
			got := map[string]bool{}
			for _, q := range rv.requests() {
				got[q.header.Get("webhook-id")] = true
			}
			return got[evs[0].ID] && got[evs[1].ID]
		}, 30*time.Second, 20*time.Millisecond, "both events delivered")

		// The cap: a workspace on a plan of 40 records; a job of 60 creates
		// races 30 single creates.
		planCapRace(t, dsn, nil, func(capSvc *env, key string) string {
			var rows strings.Builder
			rows.WriteString("name\n")
			for i := range 60 {
				fmt.Fprintf(&rows, "Bulk %d\n", i)
			}
			return capSvc.bulkJob(t, key, map[string]any{"object": "account", "operation": "insert", "format": "csv"}, rows.String())["id"].(string)
		})
	})
}

func TestBulkUndo(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := startedEnv(t, dsn)
		bulk := e.key(t, e.ws, apikey.ScopeBulk)
		a := e.create(t, e.admin, "opportunity", map[string]any{"name": "A", "stage": "Negotiation", "external_id": "u-a", "amount": 10})
		b := e.create(t, e.admin, "opportunity", map[string]any{"name": "B", "stage": "Proposal", "external_id": "u-b"})
		j := e.bulkJob(t, bulk, map[string]any{"object": "opportunity", "operation": "upsert", "format": "ndjson"},
			`{"external_id":"u-a","stage":"Closed Won","amount":20}
{"external_id":"u-b","name":"B changed"}
{"external_id":"u-new","name":"New"}
{"external_id":"u-new2","name":"New 2"}
{"external_id":"u-a","amount":30}
`)
		rs := e.bulkResults(t, bulk, j["id"].(string), "")
		require.Equal(t, []string{"1 succeeded updated", "2 succeeded updated", "3 succeeded created", "4 succeeded created", "5 succeeded updated"}, summary(rs))

		// Someone edits B and New 2 after the job: those stay as they are.
		r := e.do(t, "PATCH", "/api/v1/records/opportunity/"+b["id"].(string), e.admin, map[string]any{"fields": map[string]any{"amount": 5}})
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		r = e.do(t, "PATCH", "/api/v1/records/opportunity/"+rs[3].RecordID, e.admin, map[string]any{"fields": map[string]any{"amount": 7}})
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)

		r = e.do(t, "POST", "/api/v1/bulk/jobs/"+j["id"].(string)+"/undo", bulk, nil)
		require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
		undo := r.json(t)
		require.Equal(t, "undo", undo["operation"])
		require.Equal(t, j["id"], undo["undo_of"])
		done := e.waitJob(t, bulk, undo["id"].(string))
		require.Equal(t, "completed", done["state"])
		require.EqualValues(t, 4, done["rows"])
		urs := e.bulkResults(t, bulk, undo["id"].(string), "")
		require.Equal(t, []string{"1 succeeded updated", "2 failed  changed_since", "3 succeeded deleted", "4 failed  changed_since"}, summary(urs))

		ra := e.do(t, "GET", "/api/v1/records/opportunity/"+a["id"].(string), e.admin, nil).json(t)
		require.Equal(t, "Negotiation", ra["fields"].(map[string]any)["stage"])
		require.EqualValues(t, 10, ra["fields"].(map[string]any)["amount"])
		rb := e.do(t, "GET", "/api/v1/records/opportunity/"+b["id"].(string), e.admin, nil).json(t)
		require.Equal(t, "B changed", rb["fields"].(map[string]any)["name"])
		require.Equal(t, http.StatusNotFound, e.do(t, "GET", "/api/v1/records/opportunity/"+rs[2].RecordID, e.admin, nil).status)
		require.Equal(t, http.StatusOK, e.do(t, "GET", "/api/v1/records/opportunity/"+rs[3].RecordID, e.admin, nil).status)

		// Only a completed job can be undone; an undo is not undone.
		r = e.do(t, "POST", "/api/v1/bulk/jobs/"+undo["id"].(string)+"/undo", bulk, nil)
		require.Equal(t, http.StatusConflict, r.status)
		require.Equal(t, "invalid_state", r.code(t))
	})
}

func TestBulkUploadLimitsAndStates(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, Config{})
		bulk := e.key(t, e.ws, apikey.ScopeBulk)
		write := e.key(t, e.ws, apikey.ScopeWrite)
		spec := map[string]any{"object": "account", "operation": "insert", "format": "json"}
		r := e.do(t, "POST", "/api/v1/bulk/jobs", write, spec)
		require.Equal(t, http.StatusForbidden, r.status)
		r = e.do(t, "POST", "/api/v1/bulk/jobs", bulk, map[string]any{"object": "nope", "operation": "merge", "format": "xml"})
		require.Equal(t, http.StatusUnprocessableEntity, r.status)
		require.Len(t, r.json(t)["errors"], 3)

		id := e.do(t, "POST", "/api/v1/bulk/jobs", bulk, spec).json(t)["id"].(string)
		r = e.do(t, "PUT", "/api/v1/bulk/jobs/"+id+"/data", bulk, `[{"name":"a"},{"name":`)
		require.Equal(t, http.StatusBadRequest, r.status)
		require.Equal(t, "invalid_data", r.code(t))
		r = e.do(t, "PUT", "/api/v1/bulk/jobs/"+id+"/data", bulk, `[{"name":"a"},{"name":"b"}]`)
		require.Equal(t, http.StatusOK, r.status)
		require.EqualValues(t, 2, r.json(t)["rows"])

		// A smaller limit, on the same service: 413 past it, and nothing kept.
		api := e.svc.newBulkAPI(ingest.BulkConfig{MaxUploadBytes: 1 << 10})
		mux := http.NewServeMux()
		for _, rt := range api.routes() {
			mux.Handle(rt.method+" "+rt.pattern, e.svc.chain(rt))
		}
		small := httptest.NewServer(mux)
		defer small.Close()
		big := "[" + strings.Repeat(`{"name":"0123456789"},`, 100) + `{"name":"x"}]`
		req, err := http.NewRequest("PUT", small.URL+"/api/v1/bulk/jobs/"+id+"/data", strings.NewReader(big))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+bulk)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)

		// Abort while open; then nothing more is allowed.
		r = e.do(t, "POST", "/api/v1/bulk/jobs/"+id+"/abort", bulk, nil)
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, "aborted", r.json(t)["state"])
		for _, p := range []string{"/close", "/abort", "/undo"} {
			r = e.do(t, "POST", "/api/v1/bulk/jobs/"+id+p, bulk, nil)
			require.Equal(t, http.StatusConflict, r.status, p)
		}
		// Another workspace's job does not exist.
		_, admin2 := e.workspace(t, "enterprise")
		require.Equal(t, http.StatusNotFound, e.do(t, "GET", "/api/v1/bulk/jobs/"+id, admin2, nil).status)

		// Abort while queued (no job client runs here).
		id2 := e.do(t, "POST", "/api/v1/bulk/jobs", bulk, spec).json(t)["id"].(string)
		require.Equal(t, http.StatusOK, e.do(t, "PUT", "/api/v1/bulk/jobs/"+id2+"/data", bulk, `[{"name":"q"}]`).status)
		require.Equal(t, http.StatusAccepted, e.do(t, "POST", "/api/v1/bulk/jobs/"+id2+"/close", bulk, nil).status)
		r = e.do(t, "POST", "/api/v1/bulk/jobs/"+id2+"/abort", bulk, nil)
		require.Equal(t, "aborted", r.json(t)["state"])
		n, err := e.st.RecordCount(context.Background(), e.ws)
		require.NoError(t, err)
		require.Zero(t, n)
	})
}

// keyID answers the id of the workspace's key named name.
func (e *env) keyID(tb testing.TB, ws, name string) string {
	tb.Helper()
	keys, err := e.svc.Keys().List(context.Background(), ws, "", 200)
	require.NoError(tb, err)
	for _, k := range keys {
		if k.Name == name {
			return k.ID
		}
	}
	tb.Fatalf("no key named %q", name)
	return ""
}

// planCapRace checks that a plan's record cap holds exactly while a job
// races single creates: on a database of its own (a second service's
// workers on the first one's queue, with another plan catalogue, would
// work its jobs), a workspace on a plan of 40 records runs the job start
// makes with a BULK key (60 account rows) while 30 single creates race
// it. Exactly 40 records exist after, and every row that failed failed
// with plan_limit_exceeded.
func planCapRace(t *testing.T, dsn string, adjust func(*Config), start func(capSvc *env, key string) (jobID string)) {
	t.Helper()
	capDSN := testdb.SQLiteDSN(t)
	if strings.HasPrefix(dsn, "postgres") {
		capDSN = testdb.PostgresDSN(t)
	}
	cfg := Config{Plans: []records.Plan{{Name: "capped", MaxRecords: 40, RequestsPerMinute: 6000},
		{Name: "enterprise", RequestsPerMinute: 6000}}}
	if adjust != nil {
		adjust(&cfg)
	}
	capSvc := newEnv(t, capDSN, cfg)
	require.NoError(t, capSvc.svc.Start(context.Background()))
	ws, admin := capSvc.workspace(t, "capped")
	bk := capSvc.key(t, ws, apikey.ScopeBulk)
	created := make(chan int, 1)
	go func() {
		n := 0
		for i := range 30 {
			req := capSvc.do(t, "POST", "/api/v1/records/account", admin, map[string]any{"fields": map[string]any{"name": fmt.Sprint("Single ", i)}})
			if req.status == http.StatusCreated {
				n++
			}
		}
		created <- n
	}()
	id := start(capSvc, bk)
	singles := <-created
	res := capSvc.bulkResults(t, bk, id, "")
	require.Len(t, res, 60)
	ok := 0
	for _, r := range res {
		if r.Status == ingest.RowSucceeded {
			ok++
		} else {
			require.Equal(t, "plan_limit_exceeded", r.Error.Code, "row %d", r.Row)
		}
	}
	require.Equal(t, 40, ok+singles, "job %d + single %d", ok, singles)
	n, err := capSvc.st.RecordCount(context.Background(), ws)
	require.NoError(t, err)
	require.EqualValues(t, 40, n)
}
