package integration

import (
	"context"
	"database/sql"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
)

// TestGuideWalkthrough is the product guide's story: an admin creates the
// "Finance Sync" key with READ and WRITE, and with it lists opportunities,
// creates one, and closes it, which sets closed_at.
func TestGuideWalkthrough(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, Config{})
		r := e.do(t, "POST", "/api/v1/keys", e.admin, map[string]any{"name": "Finance Sync", "scopes": []string{"READ", "WRITE"}, "expires_at": nil})
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		key := r.json(t)["key"].(string)

		r = e.do(t, "GET", "/api/v1/records/opportunity", key, nil)
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, []any{}, r.json(t)["data"])

		rec := e.create(t, key, "opportunity", map[string]any{"name": "Acme Corp renewal", "amount": 48000, "stage": "Negotiation"})
		id := rec["id"].(string)
		require.NotContains(t, rec["fields"], "closed_at")

		r = e.do(t, "GET", "/api/v1/records/opportunity", key, nil)
		data := r.json(t)["data"].([]any)
		require.Len(t, data, 1)
		require.Equal(t, id, data[0].(map[string]any)["id"])

		r = e.do(t, "PATCH", "/api/v1/records/opportunity/"+id, key, map[string]any{"fields": map[string]any{"stage": "Closed Won"}})
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		fields := r.json(t)["fields"].(map[string]any)
		require.Equal(t, "Closed Won", fields["stage"])
		closed, err := time.Parse(time.RFC3339Nano, fields["closed_at"].(string))
		require.NoError(t, err)
		require.WithinDuration(t, time.Now(), closed, time.Minute)

		// The key cannot delete: the guide gave it READ and WRITE only.
		require.Equal(t, http.StatusForbidden, e.do(t, "DELETE", "/api/v1/records/opportunity/"+id, key, nil).status)
	})
}

// TestPublish: events a host publishes in its own transaction exist only if
// that transaction commits.
func TestPublish(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, Config{})
		ctx := context.Background()
		event := func(name string) *records.Event {
			rec := &records.Record{ID: records.NewID("rec"), Object: "opportunity", Workspace: e.ws, Version: 2,
				CreatedAt: time.Now(), UpdatedAt: time.Now(), Fields: records.Fields{"name": name, "stage": "Closed Won"}}
			return &records.Event{Type: records.EventUpdated, Workspace: e.ws, Object: "opportunity", Record: rec,
				Changes: map[string]records.Change{"stage": {From: "Negotiation", To: "Closed Won"}},
				Source:  records.SourceUI, Actor: records.Actor{Kind: "user", ID: "usr_1"}}
		}
		publish := func(commit bool, ev *records.Event) {
			tx, err := e.st.SQLDB().BeginTx(ctx, nil)
			require.NoError(t, err)
			require.NoError(t, e.svc.Publish(ctx, tx, ev))
			if commit {
				require.NoError(t, tx.Commit())
			} else {
				require.NoError(t, tx.Rollback())
			}
		}
		kept, dropped := event("kept"), event("dropped")
		publish(true, kept)
		publish(false, dropped)
		require.NotEmpty(t, kept.ID)

		evs, err := e.st.ListEvents(ctx, e.ws, "", 100)
		require.NoError(t, err)
		require.Len(t, evs, 1)
		require.Equal(t, kept.ID, evs[0].ID)
		require.Equal(t, records.SourceUI, evs[0].Source)
		require.Equal(t, "Closed Won", evs[0].Record.Fields["stage"])

		var jobs int
		require.NoError(t, e.st.SQLDB().QueryRowContext(ctx, "SELECT count(*) FROM river_job WHERE kind = 'crmkit_event_fanout'").Scan(&jobs))
		require.Equal(t, 1, jobs, "one fan-out job, for the committed event only")

		require.Error(t, e.svc.Publish(ctx, &sql.Tx{}, &records.Event{Type: "record.moved"}))
	})
}
