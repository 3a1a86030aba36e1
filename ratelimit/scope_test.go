package ratelimit_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/ratelimit"
)

// TestWorkspaceScope: a workspace limiter inside a key limiter holds all
// the keys of a workspace to one budget, and the headers say which limit
// applied.
func TestWorkspaceScope(t *testing.T) {
	keys := newLimiter(t, ratelimit.Config{Limits: map[string]uint64{"starter": 3}})
	workspaces := newLimiter(t, ratelimit.Config{Scope: ratelimit.ScopeWorkspace, Limits: map[string]uint64{"starter": 5},
		Key: func(r *http.Request) (string, string, bool) {
			return r.Header.Get("X-Workspace"), r.Header.Get("X-Plan"), true
		}})
	srv := httptest.NewServer(keys.Middleware(workspaces.Middleware(okHandler)))
	t.Cleanup(srv.Close)
	get := func(key, workspace string) result {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
		require.NoError(t, err)
		req.Header.Set("X-Key-ID", key)
		req.Header.Set("X-Workspace", workspace)
		req.Header.Set("X-Plan", "starter")
		return doReq(t, srv.Client(), req)
	}

	r := get("a", "ws1")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, []string{`"starter";q=3;w=60`, `"starter-workspace";q=5;w=60`}, r.header.Values("RateLimit-Policy"))
	require.Len(t, r.header.Values("RateLimit"), 2)
	require.Equal(t, "key", r.header.Get("X-RateLimit-Scope"), "the key has 2 left, the workspace 4")
	require.Equal(t, "2", r.header.Get("X-RateLimit-Remaining"))

	require.Equal(t, http.StatusOK, get("a", "ws1").status)
	require.Equal(t, http.StatusOK, get("b", "ws1").status)
	r = get("b", "ws1")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "key", r.header.Get("X-RateLimit-Scope"), "the workspace has 1 left, key b 1 too: a tie stays with the key")
	r = get("c", "ws1")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "workspace", r.header.Get("X-RateLimit-Scope"), "the workspace has 0 left, key c 2")
	require.Equal(t, "0", r.header.Get("X-RateLimit-Remaining"))
	require.Equal(t, "5", r.header.Get("X-RateLimit-Limit"))

	// A sixth request of the workspace, by a fresh key with its own budget
	// untouched, is refused by the workspace's limit.
	r = get("d", "ws1")
	require.Equal(t, http.StatusTooManyRequests, r.status)
	require.Equal(t, "workspace", r.header.Get("X-RateLimit-Scope"))
	require.NotEmpty(t, r.header.Get("Retry-After"))
	var body map[string]any
	require.NoError(t, json.Unmarshal(r.body, &body))
	require.Equal(t, "rate_limited", body["code"])
	require.Equal(t, "workspace", body["limit"])
	require.Contains(t, body["detail"], "per workspace")

	// Another workspace is apart; a key's own limit still says "key".
	for range 3 {
		require.Equal(t, http.StatusOK, get("e", "ws2").status)
	}
	r = get("e", "ws2")
	require.Equal(t, http.StatusTooManyRequests, r.status)
	require.Equal(t, "key", r.header.Get("X-RateLimit-Scope"))
	require.NoError(t, json.Unmarshal(r.body, &body))
	require.Equal(t, "key", body["limit"])
}

func TestUnknownScope(t *testing.T) {
	_, err := ratelimit.New(ratelimit.Config{Scope: "team", Key: keyFromHeader})
	require.Error(t, err)
}

func doReq(tb testing.TB, client *http.Client, req *http.Request) result {
	tb.Helper()
	resp, err := client.Do(req)
	require.NoError(tb, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	return result{resp.StatusCode, resp.Header, body}
}
