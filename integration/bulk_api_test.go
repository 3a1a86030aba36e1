package integration

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
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
