package integration

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/metrics"
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
		Plans: []records.Plan{{Name: records.PlanStarter, MaxRecords: 10_000, RequestsPerMinute: 60},
			{Name: records.PlanEnterprise, RequestsPerMinute: 1 << 50}},
		KeyCacheTTL: time.Hour,
	})
	key := st.key(b, st.ws, apikey.ScopeRead)
	rec, err := st.svc.Pipeline().Create(context.Background(), records.Write{Workspace: st.ws, Object: "opportunity",
		Fields: records.Fields{"name": "Bench", "amount": 1000, "stage": "Prospecting"}, Actor: records.Actor{Kind: "system", ID: "bench"}})
	require.NoError(b, err)
	p, err := st.svc.Keys().Verify(context.Background(), key)
	require.NoError(b, err)

	var get route
	for _, rt := range routeTable(st.svc.features) {
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
	// bare and chain served alternately (see pairedRun); paired-control
	// serves the bare handler in both places: its difference is what the
	// method itself reads where there is none.
	paired := func(b *testing.B, h http.Handler, req *http.Request) {
		bareReq := newReq()
		bareReq = bareReq.WithContext(apikey.WithPrincipal(bareReq.Context(), p))
		pairedRun(b, st.svc.bare(get), bareReq, h, req)
	}
	b.Run("paired", func(b *testing.B) {
		req := newReq()
		req.Header.Set("Authorization", "Bearer "+key)
		paired(b, st.svc.guard(get.scope, st.svc.bare(get)), req)
	})
	b.Run("paired-control", func(b *testing.B) {
		req := newReq()
		req = req.WithContext(apikey.WithPrincipal(req.Context(), p))
		paired(b, st.svc.bare(get), req)
	})
	// The whole route (access log, key, limit, scope, handler) of a service
	// without metrics against the same route of one with them, on the same
	// database: added-p50-ns is what recording metrics costs a GET.
	b.Run("paired-metrics", func(b *testing.B) {
		withMetrics, err := New(Config{Store: st.st, Logger: st.svc.log, Metrics: metrics.New(), KeyCacheTTL: time.Hour,
			Plans: st.svc.plans.Catalog()})
		require.NoError(b, err)
		offReq, onReq := newReq(), newReq()
		offReq.Header.Set("Authorization", "Bearer "+key)
		onReq.Header.Set("Authorization", "Bearer "+key)
		pairedRun(b, st.svc.chain(get), offReq, withMetrics.chain(get), onReq)
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

// pairedRun serves base and h alternately, one request each, every request
// timed on its own: load from other processes, which shifts separate runs
// by more than the difference measured, falls on both alike, and the
// medians leave out the requests a GC pause or a preemption landed on.
// added-p50-ns is h's median less base's; added-mean-ns the same for the
// means; bare-p50-ns is base's median.
func pairedRun(b *testing.B, base http.Handler, baseReq *http.Request, h http.Handler, req *http.Request) {
	w := &discardWriter{h: http.Header{}}
	serve := func(h http.Handler, req *http.Request) time.Duration {
		clear(w.h)
		w.status = 0
		t0 := time.Now()
		h.ServeHTTP(w, req)
		return time.Since(t0)
	}
	baseNs := make([]time.Duration, 0, 1<<16)
	hNs := make([]time.Duration, 0, 1<<16)
	// Whichever request of a pair goes second runs a little slower, so the
	// order alternates.
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			baseNs = append(baseNs, serve(base, baseReq))
			hNs = append(hNs, serve(h, req))
		} else {
			hNs = append(hNs, serve(h, req))
			baseNs = append(baseNs, serve(base, baseReq))
		}
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
	b.StopTimer()
	baseP50, baseMean := median(baseNs), mean(baseNs)
	b.ReportMetric(float64(baseP50), "bare-p50-ns")
	b.ReportMetric(float64(median(hNs)-baseP50), "added-p50-ns")
	b.ReportMetric(float64(mean(hNs)-baseMean), "added-mean-ns")
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func mean(d []time.Duration) time.Duration {
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return sum / time.Duration(len(d))
}
