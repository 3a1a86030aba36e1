package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/ingest"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/store"
)

// raw sends body as is to the server and answers the status and the JSON
// answer; status 0 when the server could not be asked.
func (p *serverProcess) raw(t *testing.T, method, path, key, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, p.url+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// TestBulkJobSurvivesKill: a bulk job is killed with its server (SIGKILL)
// mid-way; after a restart it resumes and completes, every row written
// exactly once (records, versions, audit entries and events counted), and
// its results complete.
func TestBulkJobSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the reference server and kills it")
	}
	bin := buildReferenceServer(t)
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		dir := t.TempDir()
		keyFile := filepath.Join(dir, "admin.key")
		args := []string{"-db", dsn, "-admin-key-file", keyFile}
		srv := runServer(t, bin, dir, args...)
		admin := adminKey(t, keyFile)
		st, err := store.Open(ctx, dsn)
		require.NoError(t, err)
		defer st.Close()
		require.NoError(t, st.SetWorkspacePlan(ctx, "ws_default", "enterprise"))
		require.Eventually(t, func() bool { return srv.rateLimit(admin) == "6000" }, 30*time.Second, 100*time.Millisecond)

		const rows = 30000
		var data strings.Builder
		for i := range rows {
			fmt.Fprintf(&data, `{"name":"Kill %d","external_id":"k-%d"}`+"\n", i, i)
		}
		status, job := srv.raw(t, "POST", "/api/v1/bulk/jobs", admin, `{"object":"account","operation":"upsert","format":"ndjson"}`)
		require.Equal(t, http.StatusCreated, status, "%v", job)
		id := job["id"].(string)
		status, job = srv.raw(t, "PUT", "/api/v1/bulk/jobs/"+id+"/data", admin, data.String())
		require.Equal(t, http.StatusOK, status, "%v", job)
		require.EqualValues(t, rows, job["rows"])
		status, _ = srv.raw(t, "POST", "/api/v1/bulk/jobs/"+id+"/close", admin, "")
		require.Equal(t, http.StatusAccepted, status)

		require.Eventually(t, func() bool {
			j, err := st.GetBulkJob(ctx, "", id)
			require.NoError(t, err)
			require.NotEqual(t, ingest.StateCompleted, j.State, "the job ended before the kill")
			return j.Processed >= 2000
		}, 60*time.Second, time.Millisecond)
		srv.kill(t)
		before, err := st.GetBulkJob(ctx, "", id)
		require.NoError(t, err)
		t.Logf("killed at %d of %d rows", before.Processed, rows)
		require.Less(t, before.Processed, int64(rows))

		srv = runServer(t, bin, dir, args...)
		restarted := time.Now()
		var j *ingest.Job
		require.Eventually(t, func() bool {
			j, err = st.GetBulkJob(ctx, "", id)
			require.NoError(t, err)
			return j.State.Terminal()
		}, 2*time.Minute, 50*time.Millisecond)
		t.Logf("resumed and completed %.1fs after the restart", time.Since(restarted).Seconds())
		require.Equal(t, ingest.StateCompleted, j.State, "%+v", j)
		require.EqualValues(t, rows, j.Processed)
		require.EqualValues(t, rows, j.Succeeded)

		// Every row's record exactly once, at version 1, with one audit
		// entry and one event each; the results name each record once.
		n, err := st.RecordCount(ctx, "ws_default")
		require.NoError(t, err)
		require.EqualValues(t, rows, n)
		seen := map[string]bool{}
		var after int64
		for {
			page, err := st.ListBulkResults(ctx, id, "", after, 1000)
			require.NoError(t, err)
			for _, r := range page {
				require.Equal(t, after+1, r.Row, "results are complete")
				after = r.Row
				require.Equal(t, ingest.RowCreated, r.Action)
				require.EqualValues(t, 1, r.Version)
				require.False(t, seen[r.RecordID])
				seen[r.RecordID] = true
			}
			if len(page) < 1000 {
				break
			}
		}
		require.EqualValues(t, rows, after)
		audits, cursor := 0, ""
		for {
			page, err := st.ListAudit(ctx, "ws_default", "", cursor, 1000)
			require.NoError(t, err)
			for _, a := range page {
				require.True(t, seen[a.RecordID])
				audits++
			}
			if len(page) < 1000 {
				break
			}
			cursor = page[len(page)-1].ID
		}
		require.Equal(t, rows, audits)
		events, cursor := 0, ""
		for {
			page, err := st.ListEvents(ctx, "ws_default", cursor, 1000)
			require.NoError(t, err)
			for _, e := range page {
				require.True(t, seen[e.RecordID])
				require.EqualValues(t, 1, e.Record.Version)
				events++
			}
			if len(page) < 1000 {
				break
			}
			cursor = page[len(page)-1].ID
		}
		require.Equal(t, rows, events)
	})
}
