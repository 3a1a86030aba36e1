package integration

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/records"
)

// TestConnectorSyncBenchmark measures a first sync of 100,000 records in
// pages of 500 from a loopback API into the Postgres at
// CRMKIT_CONNECTOR_BENCH_DSN, the second sync with nothing changed, and, in
// the same run, the same rows upserted through RecordPipeline.Batch in
// batches of 500 as the baseline; each three times (CRMKIT_CONNECTOR_BENCH_REPS),
// medians printed as JSON with the process's peak RSS. Skipped unless the
// variable is set.
func TestConnectorSyncBenchmark(t *testing.T) {
	dsn := os.Getenv("CRMKIT_CONNECTOR_BENCH_DSN")
	if dsn == "" {
		t.Skip("set CRMKIT_CONNECTOR_BENCH_DSN to a durable Postgres to run the connector benchmark")
	}
	n, reps := 100_000, 3
	if v, err := strconv.Atoi(os.Getenv("CRMKIT_CONNECTOR_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	if v, err := strconv.Atoi(os.Getenv("CRMKIT_CONNECTOR_BENCH_REPS")); err == nil && v > 0 {
		reps = v
	}
	e := connectorEnv(t, dsn, Config{})
	api := newSampleAPI(t, "cursor")
	for i := range n {
		api.put(sampleRecord{ID: i, Name: "Customer " + strconv.Itoa(i), Industry: "Retail", UpdatedAt: stamp(i / 10)})
	}
	ctx := context.Background()
	var first, second, baseline []float64
	var rssAfterSync int64
	for rep := range reps {
		// Baseline: the same rows, as the mapping makes them, through Batch.
		ws, _ := e.workspace(t, "enterprise")
		start := time.Now()
		for from := 0; from < n; from += 500 {
			items := make([]records.BatchItem, 0, 500)
			for i := from; i < min(from+500, n); i++ {
				ext := "cus-" + strconv.Itoa(i)
				items = append(items, records.BatchItem{Op: records.OpUpsert, Write: records.Write{Workspace: ws, Object: "account",
					ExternalID: ext, Source: records.SourceBulk, Fields: records.Fields{"name": "Customer " + strconv.Itoa(i), "industry": "Retail"}}})
			}
			res, err := e.svc.Pipeline().Batch(ctx, items, records.BatchOptions{})
			require.NoError(t, err)
			for _, r := range res {
				require.NoError(t, r.Err)
			}
		}
		baseline = append(baseline, float64(n)/time.Since(start).Seconds())

		tn := &env{st: e.st, svc: e.svc, srv: e.srv}
		tn.ws, tn.admin = e.workspace(t, "enterprise")
		// Without an incremental field every run reads all the records, so
		// the second run meets 100,000 unchanged ones.
		def := connectorDef(api, 500)
		delete(def, "incremental")
		id := tn.createConnector(t, def)
		start = time.Now()
		run := tn.runConnector(t, id)
		d := time.Since(start)
		require.Equal(t, "succeeded", run["status"], "%v", run)
		require.Equal(t, n, num(run, "created"))
		first = append(first, float64(n)/d.Seconds())
		rssAfterSync = max(rssAfterSync, peakRSS())

		start = time.Now()
		run = tn.runConnector(t, id)
		d = time.Since(start)
		require.Equal(t, n, num(run, "unchanged"), "%v", run)
		second = append(second, float64(n)/d.Seconds())
		t.Logf("rep %d: baseline %.0f rec/s, first sync %.0f rec/s, unchanged re-sync %.0f rec/s", rep+1,
			baseline[rep], first[rep], second[rep])
	}
	med := func(xs []float64) float64 {
		s := slices.Clone(xs)
		slices.Sort(s)
		return s[len(s)/2]
	}
	out, _ := json.Marshal(map[string]any{
		"records": n, "page_size": 500, "reps": reps,
		"baseline_batch_rec_per_s":    med(baseline),
		"first_sync_rec_per_s":        med(first),
		"unchanged_resync_rec_per_s":  med(second),
		"first_vs_baseline":           med(first) / med(baseline),
		"resync_vs_first":             med(second) / med(first),
		"peak_rss_mb_after_syncs":     float64(rssAfterSync) / 1024,
		"peak_rss_mb_process_overall": float64(peakRSS()) / 1024,
	})
	t.Logf("%s", out)
}

// peakRSS answers the process's peak resident set in KiB (Linux).
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return int64(ru.Maxrss)
}
