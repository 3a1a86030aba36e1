package authbench_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/ratelimit"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
)

var bare = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })

// chain builds Authenticate + RequireScope(READ) + the rate limiter (with a
// limit no benchmark reaches) on a real SQLite store, and a key already in
// the cache.
func chain(b *testing.B) (http.Handler, string, *apikey.Service) {
	b.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	require.NoError(b, err)
	b.Cleanup(func() { _ = st.Close() })
	ws := &records.Workspace{Name: "Bench", Plan: "pro"}
	require.NoError(b, st.CreateWorkspace(ctx, ws))
	svc, err := apikey.New(apikey.Config{Store: st})
	require.NoError(b, err)
	b.Cleanup(svc.Flush)
	_, plain, err := svc.Create(ctx, ws.ID, "bench", []apikey.Scope{apikey.ScopeRead}, nil)
	require.NoError(b, err)
	_, err = svc.Verify(ctx, plain)
	require.NoError(b, err)

	l, err := ratelimit.New(ratelimit.Config{
		Limits: map[string]uint64{"starter": 1 << 62, "pro": 1 << 62},
		Key: func(r *http.Request) (string, string, bool) {
			p, ok := apikey.PrincipalFrom(r.Context())
			if !ok {
				return "", "", false
			}
			return p.KeyID, "pro", true
		},
	})
	require.NoError(b, err)
	b.Cleanup(func() { _ = l.Close(context.Background()) })
	h := apikey.Authenticate(svc)(apikey.RequireScope(apikey.ScopeRead)(l.Middleware(bare)))
	return h, plain, svc
}

func serve(b *testing.B, h http.Handler, key string) {
	b.Helper()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/records/opportunity", nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// BenchmarkBare is the handler alone, the baseline for the others.
func BenchmarkBare(b *testing.B) { serve(b, bare, "") }

// BenchmarkChain is the whole chain with a cached key.
func BenchmarkChain(b *testing.B) {
	h, key, _ := chain(b)
	serve(b, h, key)
}

func BenchmarkChainParallel(b *testing.B) {
	h, key, _ := chain(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/records/opportunity", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		for pb.Next() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusNoContent {
				b.Errorf("status %d", rec.Code)
				return
			}
		}
	})
}

// BenchmarkVerifyCached is Service.Verify alone on a cached key.
func BenchmarkVerifyCached(b *testing.B) {
	_, key, svc := chain(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := svc.Verify(ctx, key); err != nil {
			b.Fatal(err)
		}
	}
}
