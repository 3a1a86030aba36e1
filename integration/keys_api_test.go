package integration

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/internal/testdb"
)

func TestKeysAPI(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		clk := &offsetClock{}
		e := newEnv(t, dsn, Config{Clock: clk.now})

		t.Run("create shows the plaintext once", func(t *testing.T) {
			r := e.do(t, "POST", "/api/v1/keys", e.admin, map[string]any{"name": "Finance Sync", "scopes": []string{"READ", "WRITE"}, "expires_at": nil})
			require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
			k := r.json(t)
			plain := k["key"].(string)
			_, err := apikey.Parse(plain)
			require.NoError(t, err)
			id := k["id"].(string)
			require.True(t, strings.HasPrefix(id, "key_"))
			require.Equal(t, "Finance Sync", k["name"])
			require.Equal(t, []any{"READ", "WRITE"}, k["scopes"])
			require.Equal(t, plain[:len(k["prefix"].(string))], k["prefix"])
			require.NotEmpty(t, k["created_at"])
			require.Nil(t, k["expires_at"])
			require.Contains(t, k, "last_used_at")

			got := e.do(t, "GET", "/api/v1/keys/"+id, e.admin, nil)
			require.Equal(t, http.StatusOK, got.status)
			require.NotContains(t, got.json(t), "key")
			require.NotContains(t, string(got.body), plain)
			list := e.do(t, "GET", "/api/v1/keys", e.admin, nil)
			require.Equal(t, http.StatusOK, list.status)
			require.NotContains(t, string(list.body), plain)
			var found bool
			for _, d := range list.json(t)["data"].([]any) {
				m := d.(map[string]any)
				require.NotContains(t, m, "key")
				for _, f := range []string{"id", "name", "prefix", "scopes", "created_at", "last_used_at", "expires_at"} {
					require.Contains(t, m, f)
				}
				found = found || m["id"] == id
			}
			require.True(t, found)

			// The new key works, within its scopes.
			require.Equal(t, http.StatusOK, e.do(t, "GET", "/api/v1/records/opportunity", plain, nil).status)
			require.Equal(t, http.StatusForbidden, e.do(t, "GET", "/api/v1/keys", plain, nil).status)
		})

		t.Run("invalid input", func(t *testing.T) {
			for _, body := range []map[string]any{
				{"name": "", "scopes": []string{"READ"}},
				{"name": "x", "scopes": []string{}},
				{"name": "x", "scopes": []string{"ROOT"}},
				{"name": "x", "scopes": []string{"READ"}, "expires_at": time.Now().Add(-time.Hour)},
			} {
				r := e.do(t, "POST", "/api/v1/keys", e.admin, body)
				require.Equal(t, http.StatusUnprocessableEntity, r.status, "%v: %s", body, r.body)
				require.Equal(t, "validation_failed", r.code(t))
				require.NotEmpty(t, r.json(t)["errors"])
			}
		})

		t.Run("only ADMIN creates keys, and nobody grants what it lacks", func(t *testing.T) {
			writer := e.key(t, e.ws, apikey.ScopeRead, apikey.ScopeWrite)
			r := e.do(t, "POST", "/api/v1/keys", writer, map[string]any{"name": "x", "scopes": []string{"READ"}})
			require.Equal(t, http.StatusForbidden, r.status)
			require.Equal(t, "ADMIN", r.json(t)["scope"])

			// The grant check itself, as a handler behind a key that passed the
			// route's scope but lacks one it tries to grant.
			rec := &captureWriter{header: http.Header{}}
			req, _ := http.NewRequest("POST", "/api/v1/keys", strings.NewReader(`{"name":"x","scopes":["READ","BULK"]}`))
			req = req.WithContext(apikey.WithPrincipal(context.Background(), &apikey.Principal{KeyID: "key_x", Workspace: e.ws, Scopes: []apikey.Scope{apikey.ScopeRead}}))
			e.svc.bare(route{handle: e.svc.createKey}).ServeHTTP(rec, req)
			require.Equal(t, http.StatusForbidden, rec.status)
			require.Contains(t, rec.body.String(), `"scope":"BULK"`)
		})

		t.Run("revoke", func(t *testing.T) {
			plain, id := e.createKey(t, "Revoked", "READ")
			require.Equal(t, http.StatusOK, e.do(t, "GET", "/api/v1/records/account", plain, nil).status)
			r := e.do(t, "DELETE", "/api/v1/keys/"+id, e.admin, nil)
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			require.NotNil(t, r.json(t)["revoked_at"])
			require.Equal(t, http.StatusUnauthorized, e.do(t, "GET", "/api/v1/records/account", plain, nil).status)
			require.Equal(t, http.StatusNotFound, e.do(t, "DELETE", "/api/v1/keys/key_nope", e.admin, nil).status)
		})

		t.Run("rotate", func(t *testing.T) {
			old, id := e.createKey(t, "Rotating", "READ")
			r := e.do(t, "POST", "/api/v1/keys/"+id+"/rotate", e.admin, map[string]any{"grace_seconds": 3600})
			require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
			next := r.json(t)
			require.NotEqual(t, id, next["id"])
			require.Equal(t, "Rotating", next["name"])
			newPlain := next["key"].(string)
			require.Equal(t, http.StatusOK, e.do(t, "GET", "/api/v1/records/account", old, nil).status, "the old key lives through the grace period")
			require.Equal(t, http.StatusOK, e.do(t, "GET", "/api/v1/records/account", newPlain, nil).status)
			r = e.do(t, "POST", "/api/v1/keys/"+id+"/rotate", e.admin, map[string]any{"grace_seconds": 0})
			require.Equal(t, http.StatusConflict, r.status, "a key being rotated cannot be rotated again")
			require.Equal(t, "key_inactive", r.code(t))

			old2, id2 := e.createKey(t, "Rotating now", "READ")
			r = e.do(t, "POST", "/api/v1/keys/"+id2+"/rotate", e.admin, nil)
			require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
			require.Equal(t, http.StatusUnauthorized, e.do(t, "GET", "/api/v1/records/account", old2, nil).status, "no grace: the old key ends at once")
			r = e.do(t, "POST", "/api/v1/keys/"+id2+"/rotate", e.admin, map[string]any{"grace_seconds": -1})
			require.Equal(t, http.StatusUnprocessableEntity, r.status)
		})

		t.Run("every refused key gets the same 401", func(t *testing.T) {
			revoked, revokedID := e.createKey(t, "Gone", "READ")
			require.Equal(t, http.StatusOK, e.do(t, "DELETE", "/api/v1/keys/"+revokedID, e.admin, nil).status)
			r := e.do(t, "POST", "/api/v1/keys", e.admin, map[string]any{"name": "Brief", "scopes": []string{"READ"}, "expires_at": clk.now().Add(time.Hour)})
			require.Equal(t, http.StatusCreated, r.status)
			expiring := r.json(t)["key"].(string)
			require.Equal(t, http.StatusOK, e.do(t, "GET", "/api/v1/records/account", expiring, nil).status)
			unknown, err := apikey.Generate(nil)
			require.NoError(t, err)
			badSum := []byte(e.admin)
			if badSum[len(badSum)-1] == '0' {
				badSum[len(badSum)-1] = '1'
			} else {
				badSum[len(badSum)-1] = '0'
			}
			clk.advance(2 * time.Hour)
			require.Equal(t, http.StatusOK, e.do(t, "GET", "/api/v1/records/account", e.admin, nil).status)
			var first []byte
			for name, header := range map[string]string{
				"missing":      "",
				"not bearer":   "Basic " + e.admin,
				"malformed":    "Bearer slk_short",
				"bad checksum": "Bearer " + string(badSum),
				"unknown":      "Bearer " + unknown,
				"revoked":      "Bearer " + revoked,
				"expired":      "Bearer " + expiring,
			} {
				var h []string
				if header != "" {
					h = []string{"Authorization", header}
				}
				r := e.do(t, "GET", "/api/v1/records/account", "", nil, h...)
				require.Equal(t, http.StatusUnauthorized, r.status, name)
				require.Equal(t, "unauthorized", r.code(t), name)
				if first == nil {
					first = r.body
				}
				require.Equal(t, string(first), string(r.body), name)
			}
		})

		t.Run("another workspace's keys do not exist", func(t *testing.T) {
			_, id := e.createKey(t, "Mine", "READ")
			_, otherAdmin := e.workspace(t, "enterprise")
			require.Equal(t, http.StatusNotFound, e.do(t, "GET", "/api/v1/keys/"+id, otherAdmin, nil).status)
			require.Equal(t, http.StatusNotFound, e.do(t, "DELETE", "/api/v1/keys/"+id, otherAdmin, nil).status)
			require.Equal(t, http.StatusNotFound, e.do(t, "POST", "/api/v1/keys/"+id+"/rotate", otherAdmin, nil).status)
			list := e.do(t, "GET", "/api/v1/keys", otherAdmin, nil)
			require.Len(t, list.json(t)["data"], 1, "only its own admin key")
		})

		t.Run("list pages", func(t *testing.T) {
			ws, admin := e.workspace(t, "enterprise")
			for range 4 {
				e.key(t, ws, apikey.ScopeRead)
			}
			r := e.do(t, "GET", "/api/v1/keys?limit=3", admin, nil)
			page := r.json(t)
			require.Len(t, page["data"], 3)
			next := page["next_cursor"].(string)
			r = e.do(t, "GET", "/api/v1/keys?limit=3&cursor="+next, admin, nil)
			page = r.json(t)
			require.Len(t, page["data"], 2)
			require.Nil(t, page["next_cursor"])
		})
	})
}

// TestKeysStoredHashedOnly greps the SQLite database files for the plaintext
// of keys issued through the API.
func TestKeysStoredHashedOnly(t *testing.T) {
	dir := t.TempDir()
	dsn := filepath.Join(dir, "keys.db")
	e := newEnv(t, dsn, Config{})
	var plains []string
	for i := range 5 {
		plain, _ := e.createKey(t, "k"+string(rune('a'+i)), "READ")
		plains = append(plains, plain)
	}
	plains = append(plains, e.admin)
	require.NoError(t, e.st.Close())
	files, err := filepath.Glob(filepath.Join(dir, "keys.db*"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, p := range plains {
			require.False(t, bytes.Contains(b, []byte(p)), "plaintext key found in %s", f)
			require.False(t, bytes.Contains(b, []byte(p[len(apikey.Prefix):])), "key body found in %s", f)
		}
	}
}

// createKey creates a key through the API and answers its plaintext and id.
func (e *env) createKey(tb testing.TB, name string, scopes ...string) (plain, id string) {
	tb.Helper()
	r := e.do(tb, "POST", "/api/v1/keys", e.admin, map[string]any{"name": name, "scopes": scopes})
	require.Equal(tb, http.StatusCreated, r.status, "body: %s", r.body)
	k := r.json(tb)
	return k["key"].(string), k["id"].(string)
}

// captureWriter records a handler's answer without a server.
type captureWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *captureWriter) Header() http.Header { return w.header }
func (w *captureWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *captureWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}

// offsetClock is the real time moved forward by however much a test
// advanced it.
type offsetClock struct{ offset atomic.Int64 }

func (c *offsetClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *offsetClock) advance(d time.Duration) { c.offset.Add(int64(d)) }
