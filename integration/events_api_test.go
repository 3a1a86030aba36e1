package integration

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/internal/testdb"
)

// feedPage is one answer of GET /api/v1/events.
type feedPage struct {
	Data []struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Data struct {
			Object string `json:"object"`
			Record struct {
				ID      string `json:"id"`
				Version int64  `json:"version"`
			} `json:"record"`
		} `json:"data"`
	} `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// poll reads the whole feed from after, a page of limit at a time, as a
// polling consumer does, and answers the event ids in order.
func (e *env) poll(t *testing.T, key, after, filter string, limit int) []string {
	t.Helper()
	var ids []string
	for {
		q := url.Values{"limit": {fmt.Sprint(limit)}}
		if after != "" {
			q.Set("after", after)
		}
		r := e.do(t, "GET", "/api/v1/events?"+q.Encode()+filter, key, nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		var p feedPage
		require.NoError(t, json.Unmarshal(r.body, &p))
		for _, ev := range p.Data {
			ids = append(ids, ev.ID)
			after = ev.ID
		}
		if p.NextCursor == nil {
			return ids
		}
		require.Equal(t, after, *p.NextCursor)
	}
}

// TestEventFeed: the feed answers a workspace's events in commit order,
// resumable from the last id seen, filtered by type and object, never
// another workspace's; a consumer that polls and one that receives webhooks
// see the same events.
func TestEventFeed(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := startedEnv(t, dsn)
		rv := newHookReceiver(t)
		r := e.do(t, "POST", "/api/v1/webhooks", e.admin, map[string]any{"url": rv.URL, "events": []string{"*"}})
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		reader := e.key(t, e.ws, apikey.ScopeRead)
		writer := e.key(t, e.ws, apikey.ScopeRead, apikey.ScopeWrite, apikey.ScopeDelete)
		otherWS, otherAdmin := e.workspace(t, "enterprise")

		// Writers at once, so ids are made in one order and commits land in
		// another; plus an update and a delete of one record.
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 5 {
					e.create(t, writer, "account", map[string]any{"name": fmt.Sprintf("Acme %d-%d", w, i)})
				}
			}()
		}
		wg.Wait()
		opp := e.create(t, writer, "opportunity", map[string]any{"name": "Deal", "amount": 10, "stage": "Prospecting"})
		oppID := opp["id"].(string)
		require.Equal(t, http.StatusOK, e.do(t, "PATCH", "/api/v1/records/opportunity/"+oppID, writer,
			map[string]any{"fields": map[string]any{"stage": "Closed Won"}}).status)
		require.Equal(t, http.StatusNoContent, e.do(t, "DELETE", "/api/v1/records/opportunity/"+oppID, writer, nil).status)
		e.create(t, otherAdmin, "account", map[string]any{"name": "Other workspace"})

		var all []string
		require.Eventually(t, func() bool {
			all = e.poll(t, reader, "", "", 7)
			return len(all) == 23
		}, 10*time.Second, 20*time.Millisecond, "every committed event is in the feed")

		// The webhook consumer got the same events.
		require.Eventually(t, func() bool { return len(rv.requests()) >= 23 }, 10*time.Second, 20*time.Millisecond)
		pushed := map[string]bool{}
		for _, req := range rv.requests() {
			pushed[req.header.Get("webhook-id")] = true
		}
		require.Len(t, pushed, 23)
		for _, id := range all {
			require.True(t, pushed[id], "event %s was polled but not pushed", id)
		}

		// Resuming from any id answers exactly what follows it.
		for _, cut := range []int{0, 5, 21} {
			require.Equal(t, all[cut+1:], e.poll(t, reader, all[cut], "", 50))
		}
		require.Empty(t, e.poll(t, reader, all[22], "", 50), "nothing new, nothing answered")

		// Filters.
		upd := e.poll(t, reader, "", "&type=record.updated", 50)
		require.Len(t, upd, 1)
		opps := e.poll(t, reader, "", "&object=opportunity", 50)
		require.Len(t, opps, 3)
		require.Equal(t, []string{"record.created", "record.updated", "record.deleted"}, eventTypesOf(t, e, reader, "&object=opportunity"))

		// Another workspace sees its own event only, and cannot resume from ours.
		otherKey := e.key(t, otherWS, apikey.ScopeRead)
		require.Len(t, e.poll(t, otherKey, "", "", 50), 1)
		bad := e.do(t, "GET", "/api/v1/events?after="+all[0], otherKey, nil)
		require.Equal(t, http.StatusBadRequest, bad.status)
		require.Equal(t, "invalid_parameter", bad.code(t))
		require.Equal(t, http.StatusBadRequest, e.do(t, "GET", "/api/v1/events?type=record.exploded", reader, nil).status)
	})
}

func eventTypesOf(t *testing.T, e *env, key, filter string) []string {
	t.Helper()
	r := e.do(t, "GET", "/api/v1/events?limit=200"+filter, key, nil)
	require.Equal(t, http.StatusOK, r.status)
	var p feedPage
	require.NoError(t, json.Unmarshal(r.body, &p))
	var types []string
	for _, ev := range p.Data {
		types = append(types, ev.Type)
	}
	return types
}

// TestReadyz: ready while the database answers and jobs run; 503 before
// the job client starts and once the database stops answering, while
// /healthz stays the liveness probe.
func TestReadyz(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, Config{})
		r := e.do(t, "GET", "/readyz", "", nil)
		require.Equal(t, http.StatusServiceUnavailable, r.status)
		require.Equal(t, "stopped", r.json(t)["jobs"])
		require.Equal(t, http.StatusOK, e.do(t, "GET", "/healthz", "", nil).status)

		require.NoError(t, e.svc.Start(context.Background()))
		r = e.do(t, "GET", "/readyz", "", nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		require.Equal(t, map[string]any{"status": "ok", "database": "ok", "jobs": "running"}, r.json(t))

		stopDatabase(t, e, dsn)
		r = e.do(t, "GET", "/readyz", "", nil)
		require.Equal(t, http.StatusServiceUnavailable, r.status)
		require.Equal(t, "unavailable", r.json(t)["database"])
		require.Equal(t, http.StatusServiceUnavailable, e.do(t, "GET", "/healthz", "", nil).status)
	})
}

// stopDatabase makes the service's database stop answering: on SQLite the
// store's connections close; on Postgres the database refuses connections
// and its sessions are ended from outside, as when the server goes away.
func stopDatabase(t *testing.T, e *env, dsn string) {
	t.Helper()
	if !strings.HasPrefix(dsn, "postgres") {
		require.NoError(t, e.svc.Stop(context.Background()))
		require.NoError(t, e.st.Close())
		return
	}
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	name := strings.TrimPrefix(u.Path, "/")
	u.Path = "/postgres"
	admin, err := sql.Open("pgx", u.String())
	require.NoError(t, err)
	defer admin.Close()
	ctx := context.Background()
	_, err = admin.ExecContext(ctx, `ALTER DATABASE "`+name+`" ALLOW_CONNECTIONS false`)
	require.NoError(t, err)
	t.Cleanup(func() {
		if a, err := sql.Open("pgx", u.String()); err == nil {
			_, _ = a.ExecContext(context.Background(), `ALTER DATABASE "`+name+`" ALLOW_CONNECTIONS true`)
			_ = a.Close()
		}
	})
	_, err = admin.ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, name)
	require.NoError(t, err)
}
