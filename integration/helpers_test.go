package integration

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
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/internal/testlog"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

// env is one service on a real database behind a loopback test server, with
// a workspace and its ADMIN key.
type env struct {
	st    *store.Store
	svc   *Service
	srv   *httptest.Server
	ws    string
	admin string
}

// newEnv opens dsn and serves a Service on it, with a workspace on the
// enterprise plan (whose rate limit no test trips by accident). cfg.Store is
// filled in.
func newEnv(tb testing.TB, dsn string, cfg Config) *env {
	tb.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = st.Close() })
	cfg.Store = st
	if cfg.Logger == nil {
		// Warnings and errors (a job's failed run among them) are shown
		// when the test fails.
		logs := &testlog.Buffer{}
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
		tb.Cleanup(func() {
			if out := logs.String(); tb.Failed() && out != "" {
				const most = 16 << 10
				if len(out) > most {
					out = "…" + out[len(out)-most:]
				}
				tb.Logf("the service logged:\n%s", out)
			}
		})
	}
	svc, err := New(cfg)
	require.NoError(tb, err)
	srv := httptest.NewServer(svc.Handler())
	tb.Cleanup(srv.Close)
	tb.Cleanup(func() { _ = svc.Stop(context.Background()) })
	e := &env{st: st, svc: svc, srv: srv}
	e.ws, e.admin = e.workspace(tb, "enterprise")
	return e
}

// workspace creates a workspace on plan and an ADMIN key for it.
func (e *env) workspace(tb testing.TB, plan string) (ws, adminKey string) {
	tb.Helper()
	w := &records.Workspace{Name: "Test", Plan: plan}
	require.NoError(tb, e.st.CreateWorkspace(context.Background(), w))
	return w.ID, e.key(tb, w.ID, apikey.ScopeAdmin)
}

// key issues a key of ws with scopes, straight through the key service.
func (e *env) key(tb testing.TB, ws string, scopes ...apikey.Scope) string {
	tb.Helper()
	_, plain, err := e.svc.Keys().Create(context.Background(), ws, "test "+string(scopes[0]), scopes, nil)
	require.NoError(tb, err)
	return plain
}

// response is an answer read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a map.
func (r response) json(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	require.NoError(tb, json.Unmarshal(r.body, &m), "body: %s", r.body)
	return m
}

// code answers the problem code of an error response.
func (r response) code(tb testing.TB) string {
	tb.Helper()
	require.Equal(tb, "application/problem+json", r.header.Get("Content-Type"), "body: %s", r.body)
	c, _ := r.json(tb)["code"].(string)
	return c
}

// do sends a request with key as bearer (none when ""). body is sent as is
// when it is a string or []byte, and as JSON otherwise.
func (e *env) do(tb testing.TB, method, path, key string, body any, header ...string) response {
	tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		require.NoError(tb, err)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	require.NoError(tb, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	require.NoError(tb, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// create makes a record through the API and answers it decoded.
func (e *env) create(tb testing.TB, key, object string, fields map[string]any) map[string]any {
	tb.Helper()
	r := e.do(tb, "POST", "/api/v1/records/"+object, key, map[string]any{"fields": fields})
	require.Equal(tb, http.StatusCreated, r.status, "body: %s", r.body)
	return r.json(tb)
}
