package apikey_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type env struct {
	st    *store.Store
	svc   *apikey.Service
	clock *clock
	ws    string
}

func openStore(tb testing.TB, dsn string) *store.Store {
	tb.Helper()
	st, err := store.Open(context.Background(), dsn)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

func newWorkspace(tb testing.TB, st *store.Store) string {
	tb.Helper()
	ws := &records.Workspace{Name: "Acme", Plan: "starter"}
	require.NoError(tb, st.CreateWorkspace(context.Background(), ws))
	return ws.ID
}

func newService(tb testing.TB, st apikey.Store, c *clock) *apikey.Service {
	tb.Helper()
	svc, err := apikey.New(apikey.Config{Store: st, Clock: c.Now})
	require.NoError(tb, err)
	tb.Cleanup(svc.Flush)
	return svc
}

func setup(tb testing.TB, dsn string) *env {
	tb.Helper()
	st := openStore(tb, dsn)
	c := newClock()
	return &env{st: st, svc: newService(tb, st, c), clock: c, ws: newWorkspace(tb, st)}
}

func (e *env) create(tb testing.TB, scopes ...apikey.Scope) (apikey.Key, string) {
	tb.Helper()
	k, plain, err := e.svc.Create(context.Background(), e.ws, "Finance Sync", scopes, nil)
	require.NoError(tb, err)
	return k, plain
}

func TestCreateGetList(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := setup(t, dsn)
		ctx := context.Background()
		k, plain, err := e.svc.Create(ctx, e.ws, "  Finance Sync ", []apikey.Scope{"write", "READ"}, nil)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(k.ID, "key_"))
		require.Equal(t, "Finance Sync", k.Name)
		require.Equal(t, []apikey.Scope{apikey.ScopeRead, apikey.ScopeWrite}, k.Scopes)
		require.Equal(t, plain[:apikey.DisplayLen], k.Prefix)
		require.Equal(t, e.clock.Now(), k.CreatedAt)

		got, err := e.svc.Get(ctx, e.ws, k.ID)
		require.NoError(t, err)
		require.Equal(t, k, got)

		b, err := json.Marshal(got)
		require.NoError(t, err)
		require.NotContains(t, string(b), plain[apikey.DisplayLen:])
		require.JSONEq(t, `{"id":"`+k.ID+`","name":"Finance Sync","prefix":"`+k.Prefix+`","scopes":["READ","WRITE"],
			"created_at":"2026-03-02T09:00:00Z","expires_at":null,"revoked_at":null,"last_used_at":null}`, string(b))

		p, err := e.svc.Verify(ctx, plain)
		require.NoError(t, err)
		require.Equal(t, apikey.Principal{KeyID: k.ID, Workspace: e.ws, Name: "Finance Sync", Scopes: k.Scopes}, *p)

		var ids []string
		for range 4 {
			k, _ := e.create(t, apikey.ScopeRead)
			ids = append(ids, k.ID)
		}
		all := append([]string{k.ID}, ids...)
		page1, err := e.svc.List(ctx, e.ws, "", 3)
		require.NoError(t, err)
		require.Equal(t, all[:3], keyIDs(page1))
		page2, err := e.svc.List(ctx, e.ws, page1[2].ID, 3)
		require.NoError(t, err)
		require.Equal(t, all[3:], keyIDs(page2))
	})
}

func keyIDs(ks []apikey.Key) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.ID
	}
	return out
}

func TestCreateValidation(t *testing.T) {
	e := setup(t, testdb.SQLiteDSN(t))
	past := e.clock.Now().Add(-time.Second)
	tests := []struct {
		name    string
		keyName string
		scopes  []apikey.Scope
		expires *time.Time
		field   string
	}{
		{"no name", " ", []apikey.Scope{"READ"}, nil, "name"},
		{"long name", strings.Repeat("x", 201), []apikey.Scope{"READ"}, nil, "name"},
		{"no scopes", "n", nil, nil, "scopes"},
		{"unknown scope", "n", []apikey.Scope{"READ", "ROOT"}, nil, "scopes"},
		{"expired already", "n", []apikey.Scope{"READ"}, &past, "expires_at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := e.svc.Create(context.Background(), e.ws, tt.keyName, tt.scopes, tt.expires)
			var ve *records.ValidationError
			require.ErrorAs(t, err, &ve)
			require.ErrorIs(t, err, records.ErrValidation)
			require.Equal(t, tt.field, ve.Fields[0].Field)
		})
	}
}

func TestWorkspaceIsolation(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := setup(t, dsn)
		ctx := context.Background()
		other := newWorkspace(t, e.st)
		k, _ := e.create(t, apikey.ScopeAdmin)

		_, err := e.svc.Get(ctx, other, k.ID)
		require.ErrorIs(t, err, records.ErrNotFound)
		_, err = e.svc.Revoke(ctx, other, k.ID)
		require.ErrorIs(t, err, records.ErrNotFound)
		_, _, err = e.svc.Rotate(ctx, other, k.ID, time.Hour)
		require.ErrorIs(t, err, records.ErrNotFound)
		ks, err := e.svc.List(ctx, other, "", 50)
		require.NoError(t, err)
		require.Empty(t, ks)

		got, err := e.svc.Get(ctx, e.ws, k.ID)
		require.NoError(t, err)
		require.Nil(t, got.RevokedAt)
	})
}

// serve runs Authenticate + RequireScope(READ) in front of a handler that
// names the principal, on a loopback test server.
func serve(tb testing.TB, v apikey.Verifier, scope apikey.Scope) *httptest.Server {
	tb.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := apikey.PrincipalFrom(r.Context())
		if !ok {
			http.Error(w, "no principal", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, p.KeyID)
	})
	srv := httptest.NewServer(apikey.Authenticate(v)(apikey.RequireScope(scope)(h)))
	tb.Cleanup(srv.Close)
	return srv
}

type response struct {
	status int
	header http.Header
	body   string
}

func get(tb testing.TB, url, authorization string) response {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(tb, err)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(tb, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	resp.Header.Del("Date")
	return response{resp.StatusCode, resp.Header, string(b)}
}

// Every way a key can be wrong gets the very same answer.
func TestUnauthorizedNoOracle(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := setup(t, dsn)
		ctx := context.Background()
		srv := serve(t, e.svc, apikey.ScopeRead)

		good, goodPlain := e.create(t, apikey.ScopeRead)
		_, revokedPlain := e.create(t, apikey.ScopeRead)
		revoked, err := e.svc.Verify(ctx, revokedPlain)
		require.NoError(t, err)
		_, err = e.svc.Revoke(ctx, e.ws, revoked.KeyID)
		require.NoError(t, err)
		soon := e.clock.Now().Add(time.Hour)
		_, expiredPlain, err := e.svc.Create(ctx, e.ws, "Short lived", []apikey.Scope{apikey.ScopeRead}, &soon)
		require.NoError(t, err)
		unknown, err := apikey.Generate(nil)
		require.NoError(t, err)
		c := byte('a')
		if goodPlain[20] == 'a' {
			c = 'b'
		}
		badChecksum := goodPlain[:20] + string(c) + goodPlain[21:]
		_, err = apikey.Parse(badChecksum)
		require.ErrorIs(t, err, apikey.ErrChecksum)

		ok := get(t, srv.URL, "Bearer "+goodPlain)
		require.Equal(t, http.StatusOK, ok.status)
		require.Equal(t, good.ID, ok.body)
		ok = get(t, srv.URL, "bearer "+expiredPlain)
		require.Equal(t, http.StatusOK, ok.status)

		e.clock.Advance(time.Hour)
		cases := map[string]string{
			"missing":      "",
			"malformed":    "Bearer slk_short",
			"bad checksum": "Bearer " + badChecksum,
			"unknown":      "Bearer " + unknown,
			"revoked":      "Bearer " + revokedPlain,
			"expired":      "Bearer " + expiredPlain,
			"wrong scheme": "Basic " + goodPlain,
			"no token":     "Bearer ",
		}
		var first *response
		for name, auth := range cases {
			r := get(t, srv.URL, auth)
			require.Equal(t, http.StatusUnauthorized, r.status, name)
			require.Equal(t, "Bearer", r.header.Get("WWW-Authenticate"), name)
			require.Equal(t, "application/problem+json", r.header.Get("Content-Type"), name)
			require.Contains(t, r.body, `"code":"unauthorized"`)
			if first == nil {
				first = &r
				continue
			}
			require.Equal(t, first.body, r.body, name)
			require.Equal(t, first.header, r.header, name)
		}
	})
}

func TestMissingScope(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := setup(t, dsn)
		_, readOnly := e.create(t, apikey.ScopeRead, apikey.ScopeBulk)
		_, admin := e.create(t, apikey.ScopeAdmin)
		for _, scope := range []apikey.Scope{apikey.ScopeWrite, apikey.ScopeDelete, apikey.ScopeAdmin} {
			srv := serve(t, e.svc, scope)
			r := get(t, srv.URL, "Bearer "+readOnly)
			require.Equal(t, http.StatusForbidden, r.status)
			var p struct {
				Code, Scope, Detail string
			}
			require.NoError(t, json.Unmarshal([]byte(r.body), &p))
			require.Equal(t, "missing_scope", p.Code)
			require.Equal(t, string(scope), p.Scope)
			require.Contains(t, p.Detail, string(scope))

			require.Equal(t, http.StatusOK, get(t, srv.URL, "Bearer "+admin).status)
		}
		require.Equal(t, http.StatusOK, get(t, serve(t, e.svc, apikey.ScopeBulk).URL, "Bearer "+readOnly).status)
	})
}

func TestRevokeIsImmediate(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := setup(t, dsn)
		ctx := context.Background()
		// Another replica on the same database, with its own cache.
		replica := newService(t, e.st, e.clock)
		k, plain := e.create(t, apikey.ScopeRead)
		for _, s := range []*apikey.Service{e.svc, replica} {
			_, err := s.Verify(ctx, plain)
			require.NoError(t, err)
		}

		revoked, err := e.svc.Revoke(ctx, e.ws, k.ID)
		require.NoError(t, err)
		require.Equal(t, e.clock.Now(), *revoked.RevokedAt)
		_, err = e.svc.Verify(ctx, plain)
		require.ErrorIs(t, err, apikey.ErrRevoked)

		// The replica's cache holds the key until its TTL runs out.
		_, err = replica.Verify(ctx, plain)
		require.NoError(t, err)
		e.clock.Advance(5 * time.Second)
		_, err = replica.Verify(ctx, plain)
		require.ErrorIs(t, err, apikey.ErrRevoked)

		// Revoking again keeps the first time.
		e.clock.Advance(time.Minute)
		again, err := e.svc.Revoke(ctx, e.ws, k.ID)
		require.NoError(t, err)
		require.Equal(t, *revoked.RevokedAt, *again.RevokedAt)
	})
}

func TestRotation(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := setup(t, dsn)
		ctx := context.Background()
		expires := e.clock.Now().Add(30 * 24 * time.Hour)
		old, oldPlain, err := e.svc.Create(ctx, e.ws, "Invoicing", []apikey.Scope{apikey.ScopeWrite}, &expires)
		require.NoError(t, err)
		_, err = e.svc.Verify(ctx, oldPlain)
		require.NoError(t, err)

		next, nextPlain, err := e.svc.Rotate(ctx, e.ws, old.ID, time.Hour)
		require.NoError(t, err)
		require.NotEqual(t, old.ID, next.ID)
		require.NotEqual(t, oldPlain, nextPlain)
		require.Equal(t, old.Name, next.Name)
		require.Equal(t, old.Scopes, next.Scopes)
		require.Equal(t, old.ExpiresAt, next.ExpiresAt)

		got, err := e.svc.Get(ctx, e.ws, old.ID)
		require.NoError(t, err)
		require.Equal(t, e.clock.Now().Add(time.Hour), *got.RevokedAt)

		// During the grace both keys work.
		e.clock.Advance(59 * time.Minute)
		for _, plain := range []string{oldPlain, nextPlain} {
			_, err := e.svc.Verify(ctx, plain)
			require.NoError(t, err)
		}
		// A key being rotated cannot be rotated again.
		_, _, err = e.svc.Rotate(ctx, e.ws, old.ID, time.Hour)
		require.ErrorIs(t, err, apikey.ErrInactive)
		require.ErrorIs(t, err, records.ErrConflict)

		e.clock.Advance(time.Minute)
		_, err = e.svc.Verify(ctx, oldPlain)
		require.ErrorIs(t, err, apikey.ErrRevoked)
		p, err := e.svc.Verify(ctx, nextPlain)
		require.NoError(t, err)
		require.Equal(t, next.ID, p.KeyID)

		// No grace ends the old key at once; revoking during a grace cuts it.
		third, thirdPlain, err := e.svc.Rotate(ctx, e.ws, next.ID, 0)
		require.NoError(t, err)
		_, err = e.svc.Verify(ctx, nextPlain)
		require.ErrorIs(t, err, apikey.ErrRevoked)
		_, _, err = e.svc.Rotate(ctx, e.ws, third.ID, 24*time.Hour)
		require.NoError(t, err)
		_, err = e.svc.Verify(ctx, thirdPlain)
		require.NoError(t, err)
		_, err = e.svc.Revoke(ctx, e.ws, third.ID)
		require.NoError(t, err)
		_, err = e.svc.Verify(ctx, thirdPlain)
		require.ErrorIs(t, err, apikey.ErrRevoked)

		_, _, err = e.svc.Rotate(ctx, e.ws, old.ID, -time.Second)
		require.ErrorIs(t, err, records.ErrValidation)
	})
}

func TestExpiry(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := setup(t, dsn)
		ctx := context.Background()
		at := e.clock.Now().Add(24 * time.Hour)
		k, plain, err := e.svc.Create(ctx, e.ws, "Trial", []apikey.Scope{apikey.ScopeRead}, &at)
		require.NoError(t, err)
		require.Equal(t, at, *k.ExpiresAt)

		e.clock.Advance(24*time.Hour - time.Second)
		_, err = e.svc.Verify(ctx, plain)
		require.NoError(t, err)
		e.clock.Advance(time.Second)
		_, err = e.svc.Verify(ctx, plain)
		require.ErrorIs(t, err, apikey.ErrExpired)

		_, _, err = e.svc.Rotate(ctx, e.ws, k.ID, time.Hour)
		require.ErrorIs(t, err, apikey.ErrInactive)
	})
}

func TestLastUsedThrottled(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := setup(t, dsn)
		ctx := context.Background()
		k, plain := e.create(t, apikey.ScopeRead)
		lastUsed := func() *time.Time {
			t.Helper()
			e.svc.Flush()
			got, err := e.svc.Get(ctx, e.ws, k.ID)
			require.NoError(t, err)
			return got.LastUsedAt
		}
		require.Nil(t, lastUsed())

		t0 := e.clock.Now()
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				_, err := e.svc.Verify(ctx, plain)
				require.NoError(t, err)
			})
		}
		wg.Wait()
		require.Equal(t, t0, *lastUsed())

		// Within the minute nothing is written, whatever the traffic.
		for range 5 {
			e.clock.Advance(10 * time.Second)
			_, err := e.svc.Verify(ctx, plain)
			require.NoError(t, err)
			require.Equal(t, t0, *lastUsed())
		}

		e.clock.Advance(10 * time.Second)
		t1 := e.clock.Now()
		_, err := e.svc.Verify(ctx, plain)
		require.NoError(t, err)
		require.Equal(t, t1, *lastUsed())

		// Another replica that loads the key sees the recent use and leaves
		// it be.
		e.clock.Advance(30 * time.Second)
		replica := newService(t, e.st, e.clock)
		_, err = replica.Verify(ctx, plain)
		require.NoError(t, err)
		replica.Flush()
		require.Equal(t, t1, *lastUsed())
	})
}

// countingStore counts lookups by hash on a real store.
type countingStore struct {
	*store.Store
	byHash atomic.Int64
}

func (c *countingStore) APIKeyByHash(ctx context.Context, hash string) (*apikey.Key, error) {
	c.byHash.Add(1)
	return c.Store.APIKeyByHash(ctx, hash)
}

func TestVerifyCachesByHash(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		st := openStore(t, dsn)
		cs := &countingStore{Store: st}
		c := newClock()
		svc := newService(t, cs, c)
		ws := newWorkspace(t, st)
		_, plain, err := svc.Create(context.Background(), ws, "k", []apikey.Scope{apikey.ScopeRead}, nil)
		require.NoError(t, err)

		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				_, err := svc.Verify(context.Background(), plain)
				require.NoError(t, err)
			})
		}
		wg.Wait()
		require.Equal(t, int64(1), cs.byHash.Load())

		// Unknown keys are remembered too, so a flood of them costs one query each TTL.
		unknown, err := apikey.Generate(nil)
		require.NoError(t, err)
		for range 10 {
			_, err := svc.Verify(context.Background(), unknown)
			require.ErrorIs(t, err, apikey.ErrUnknownKey)
		}
		require.Equal(t, int64(2), cs.byHash.Load())

		c.Advance(5 * time.Second)
		_, err = svc.Verify(context.Background(), plain)
		require.NoError(t, err)
		require.Equal(t, int64(3), cs.byHash.Load())

		// Malformed and mistyped keys never reach the store.
		_, err = svc.Verify(context.Background(), plain[:apikey.Len-1]+"!")
		require.ErrorIs(t, err, apikey.ErrMalformed)
		require.Equal(t, int64(3), cs.byHash.Load())
	})
}

// A store failure is a 503, not a 401, and neither it nor anything else
// logs the key.
func TestStoreFailureAndLogs(t *testing.T) {
	var logs bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })

	e := setup(t, testdb.SQLiteDSN(t))
	srv := serve(t, e.svc, apikey.ScopeRead)
	_, plain := e.create(t, apikey.ScopeRead)
	require.NoError(t, e.st.Close())

	r := get(t, srv.URL, "Bearer "+plain)
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	require.Contains(t, r.body, `"code":"auth_unavailable"`)
	require.NotEmpty(t, logs.String())
	require.NotContains(t, logs.String(), plain[apikey.DisplayLen:])
	require.NotContains(t, r.body, plain[apikey.DisplayLen:])
}
