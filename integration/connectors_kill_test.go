package integration

import (
	"context"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
)

// TestConnectorRunSurvivesKill: the reference server is killed with
// SIGKILL while a run is mid-way; restarted, it resumes the run from its
// last committed page, and the set completes with every record written
// exactly once (one version, one audit entry, one event each).
func TestConnectorRunSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the reference server and kills it")
	}
	bin := buildReferenceServer(t)
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		dir := t.TempDir()
		keyFile := filepath.Join(dir, "admin.key")
		args := []string{"-db", dsn, "-allow-private-webhooks", "-admin-key-file", keyFile}

		const n = 3000
		api := newSampleAPI(t, "cursor")
		for i := range n {
			api.put(sampleRecord{ID: i, Name: "Customer " + strconv.Itoa(i), UpdatedAt: stamp(i / 7)})
		}
		// Slow pages keep the run going when the kill comes.
		api.answer = func(int, http.ResponseWriter) bool {
			time.Sleep(40 * time.Millisecond)
			return false
		}

		srv := runServer(t, bin, dir, args...)
		admin := adminKey(t, keyFile)
		st, err := store.Open(ctx, dsn)
		require.NoError(t, err)
		defer st.Close()
		require.NoError(t, st.SetWorkspacePlan(ctx, "ws_default", "enterprise"))
		require.Eventually(t, func() bool { return srv.rateLimit(admin) == "6000" }, 30*time.Second, 100*time.Millisecond,
			"the server did not apply the enterprise plan")

		status, body := srv.call(t, "POST", "/api/v1/connectors", admin, connectorDef(api, 100))
		require.Equal(t, http.StatusCreated, status, "%v", body)
		id := body["id"].(string)
		status, body = srv.call(t, "POST", "/api/v1/connectors/"+id+"/run", admin, nil)
		require.Equal(t, http.StatusAccepted, status, "%v", body)
		runID := body["run_id"].(string)

		run := func() map[string]any {
			_, r := srv.call(t, "GET", "/api/v1/connector-runs/"+runID, admin, nil)
			return r
		}
		require.Eventually(t, func() bool { return num(run(), "pages") >= 8 }, 60*time.Second, 5*time.Millisecond,
			"the run commits pages")
		srv.kill(t)
		before, err := st.GetConnectorRun(ctx, "ws_default", runID)
		require.NoError(t, err)
		require.Equal(t, "running", before.Status)
		require.Less(t, before.Pages, int64(n/100), "killed mid-way")
		t.Logf("killed after %d committed pages", before.Pages)

		srv = runServer(t, bin, dir, args...)
		var final map[string]any
		require.Eventually(t, func() bool {
			final = run()
			return final["status"] == "succeeded" || final["status"] == "failed"
		}, 120*time.Second, 50*time.Millisecond, "the run is resumed and finishes")
		require.Equal(t, "succeeded", final["status"], "%v", final)
		require.Equal(t, runID, final["id"], "the same run resumed")
		require.GreaterOrEqual(t, num(final, "pages"), n/100)

		versions := map[string]int64{}
		after := ""
		for {
			recs, err := st.ListRecords(ctx, records.ListQuery{Workspace: "ws_default", Object: "account", After: after, Limit: 500})
			require.NoError(t, err)
			for _, r := range recs {
				ext := r.Fields["external_id"].(string)
				require.NotContains(t, versions, ext, "two records hold %s", ext)
				versions[ext] = r.Version
			}
			if len(recs) < 500 {
				break
			}
			after = recs[len(recs)-1].ID
		}
		require.Len(t, versions, n, "every record arrived")
		for ext, v := range versions {
			require.EqualValues(t, 1, v, "%s written more than once", ext)
		}
		audit, events := 0, 0
		after = ""
		for {
			es, err := st.ListAudit(ctx, "ws_default", "", after, 1000)
			require.NoError(t, err)
			audit += len(es)
			if len(es) < 1000 {
				break
			}
			after = es[len(es)-1].ID
		}
		after = ""
		for {
			evs, err := st.ListEvents(ctx, "ws_default", after, 1000)
			require.NoError(t, err)
			events += len(evs)
			if len(evs) < 1000 {
				break
			}
			after = evs[len(evs)-1].ID
		}
		require.Equal(t, n, audit, "one audit entry per record")
		require.Equal(t, n, events, "one event per record")
	})
}
