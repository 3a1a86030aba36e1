package integration

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
)

// discardWriter is a ResponseWriter that keeps nothing but its header map,
// cleared for each request, so the benchmark measures the handler and not
// a recorder.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkRecordGet measures GET /api/v1/records/{object}/{id} on SQLite:
// bare is the handler alone; chain is the same handler behind Authenticate,
// the rate limit and RequireScope, with the key cached and a limit the run
// cannot reach. The difference is what the middleware costs per request.
func BenchmarkRecordGet(b *testing.B) {
	st := newEnv(b, testdb.SQLiteDSN(b), Config{
		RateLimits:  map[string]uint64{"starter": 60, "enterprise": 1 << 50},
		KeyCacheTTL: time.Hour,
	})
	key := st.key(b, st.ws, apikey.ScopeRead)
	rec, err := st.svc.Pipeline().Create(context.Background(), records.Write{Workspace: st.ws, Object: "opportunity",
		Fields: records.Fields{"name": "Bench", "amount": 1000, "stage": "Prospecting"}, Actor: records.Actor{Kind: "system", ID: "bench"}})
	require.NoError(b, err)
	p, err := st.svc.Keys().Verify(context.Background(), key)
	require.NoError(b, err)

	var get route
	for _, rt := range st.svc.table {
		if rt.id == "getRecord" {
			get = rt
		}
	}
	require.NotNil(b, get.handle)

	run := func(b *testing.B, h http.Handler, req *http.Request) {
		w := &discardWriter{h: http.Header{}}
		h.ServeHTTP(w, req)
		require.Equal(b, http.StatusOK, w.status)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			clear(w.h)
			w.status = 0
			h.ServeHTTP(w, req)
		}
		b.StopTimer()
		require.Equal(b, http.StatusOK, w.status)
	}
	newReq := func() *http.Request {
		req := httptest.NewRequest("GET", "/api/v1/records/opportunity/"+rec.ID, nil)
		req.SetPathValue("object", "opportunity")
		req.SetPathValue("id", rec.ID)
		return req
	}

	b.Run("bare", func(b *testing.B) {
		req := newReq()
		req = req.WithContext(apikey.WithPrincipal(req.Context(), p))
		run(b, st.svc.bare(get), req)
	})
	b.Run("chain", func(b *testing.B) {
		req := newReq()
		req.Header.Set("Authorization", "Bearer "+key)
		run(b, st.svc.guard(get.scope, st.svc.bare(get)), req)
	})
	// bare and chain in alternating blocks of requests, so that load from
	// other processes, which shifts separate runs by more than the chain
	// costs, falls on both alike; reports each one's ns per request and
	// the difference.
	b.Run("paired", func(b *testing.B) {
		bareReq := newReq()
		bareReq = bareReq.WithContext(apikey.WithPrincipal(bareReq.Context(), p))
		chainReq := newReq()
		chainReq.Header.Set("Authorization", "Bearer "+key)
		bare, chain := st.svc.bare(get), st.svc.guard(get.scope, st.svc.bare(get))

		w := &discardWriter{h: http.Header{}}
		const block = 100
		var bareTime, chainTime time.Duration
		var n int
		b.ResetTimer()
		timed := func(h http.Handler, req *http.Request) time.Duration {
			t0 := time.Now()
			for range block {
				clear(w.h)
				h.ServeHTTP(w, req)
			}
			return time.Since(t0)
		}
		// The second block of a pair runs measurably slower than the first
		// whatever it holds, so the order alternates (bare, chain, chain,
		// bare, ...) to cancel that out.
		for i := 0; b.Loop(); i++ {
			if i%2 == 0 {
				bareTime += timed(bare, bareReq)
				chainTime += timed(chain, chainReq)
			} else {
				chainTime += timed(chain, chainReq)
				bareTime += timed(bare, bareReq)
			}
			n += block
		}
		b.StopTimer()
		require.Equal(b, http.StatusOK, w.status)
		b.ReportMetric(float64(bareTime.Nanoseconds())/float64(n), "bare-ns/req")
		b.ReportMetric(float64(chainTime.Nanoseconds())/float64(n), "chain-ns/req")
		b.ReportMetric(float64((chainTime-bareTime).Nanoseconds())/float64(n), "added-ns/req")
	})
	// The chain around a handler that does nothing: the middleware's own
	// cost, without the database's noise.
	b.Run("middleware", func(b *testing.B) {
		req := newReq()
		req.Header.Set("Authorization", "Bearer "+key)
		run(b, st.svc.guard(get.scope, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusOK)
		})), req)
	})
}
