package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/xuri/excelize/v2"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/records"
)

// importBenchObject has twelve fields, one per column of the benchmark's
// workbook, of most field types.
func importBenchObject() records.Object {
	zero, hundred := 0.0, 100.0
	return records.Object{Name: "deal_row", ExternalID: "external_id", Fields: []records.Field{
		{Name: "external_id", Type: records.TypeString},
		{Name: "name", Type: records.TypeString, Required: true},
		{Name: "amount", Type: records.TypeNumber, Min: &zero},
		{Name: "stage", Type: records.TypePicklist, Options: []string{"Prospecting", "Proposal", "Closed Won"}},
		{Name: "close_date", Type: records.TypeDate},
		{Name: "probability", Type: records.TypeInteger, Min: &zero, Max: &hundred},
		{Name: "email", Type: records.TypeEmail},
		{Name: "website", Type: records.TypeURL},
		{Name: "active", Type: records.TypeBoolean},
		{Name: "region", Type: records.TypeString},
		{Name: "notes", Type: records.TypeText},
		{Name: "seen_at", Type: records.TypeDateTime},
	}}
}

// writeBenchWorkbook writes n rows of twelve columns with excelize's
// stream writer.
func writeBenchWorkbook(tb testing.TB, path string, n int) {
	tb.Helper()
	f := excelize.NewFile()
	defer f.Close()
	sw, err := f.NewStreamWriter("Sheet1")
	require.NoError(tb, err)
	require.NoError(tb, sw.SetRow("A1", []any{"External ID", "Name", "Amount", "Stage", "Close Date", "Probability",
		"Email", "Website", "Active", "Region", "Notes", "Seen At"}))
	stages := []string{"Prospecting", "Proposal", "Closed Won"}
	day := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		ref, _ := excelize.CoordinatesToCellName(1, i+2)
		require.NoError(tb, sw.SetRow(ref, []any{"row-" + strconv.Itoa(i), "Deal " + strconv.Itoa(i), float64(i%50000) + 0.5,
			stages[i%3], day.AddDate(0, 0, i%365), i % 101, fmt.Sprintf("buyer%d@example.com", i), "https://example.com/" + strconv.Itoa(i),
			i%2 == 0, "EMEA", "imported in the benchmark", day.Add(time.Duration(i) * time.Minute)}))
	}
	require.NoError(tb, sw.Flush())
	require.NoError(tb, f.SaveAs(path))
}

// hwmRSS answers the process's peak resident set (VmHWM) in MB, and
// resetPeakRSS starts it again from the current RSS.
func hwmRSS() float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// TestImportBenchmark imports an n-row × 12-column workbook
// (CRMKIT_IMPORT_BENCH_ROWS, default 100,000) into the Postgres at
// CRMKIT_IMPORT_BENCH_DSN through POST /api/v1/imports, timed from the
// request to the job's end, with excelize reading the same file alone as
// the baseline in the same run; each phase's peak RSS is measured from a
// reset. Figures are printed as JSON. Skipped unless the variable is set.
func TestImportBenchmark(t *testing.T) {
	dsn := os.Getenv("CRMKIT_IMPORT_BENCH_DSN")
	if dsn == "" {
		t.Skip("set CRMKIT_IMPORT_BENCH_DSN to a durable Postgres to run the import benchmark")
	}
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("CRMKIT_IMPORT_BENCH_ROWS")); err == nil && v > 0 {
		n = v
	}
	path := filepath.Join(t.TempDir(), "bench.xlsx")
	writeBenchWorkbook(t, path, n)
	fi, err := os.Stat(path)
	require.NoError(t, err)

	// Baseline: excelize's row iterator over the same file, nothing else.
	resetPeakRSS()
	start := time.Now()
	f, err := excelize.OpenFile(path)
	require.NoError(t, err)
	rows, err := f.Rows("Sheet1")
	require.NoError(t, err)
	read := 0
	for rows.Next() {
		_, err := rows.Columns()
		require.NoError(t, err)
		read++
	}
	require.NoError(t, rows.Close())
	require.NoError(t, f.Close())
	readSecs := time.Since(start).Seconds()
	readRSS := hwmRSS()
	require.Equal(t, n+1, read)

	e := newEnv(t, dsn, Config{Objects: append(records.DefaultObjects(), importBenchObject())})
	require.NoError(t, e.svc.Start(context.Background()))
	bulk := e.key(t, e.ws, apikey.ScopeBulk)
	file, err := os.ReadFile(path)
	require.NoError(t, err)
	resetPeakRSS()
	start = time.Now()
	r := e.postImport(t, "/api/v1/imports", bulk, "bench.xlsx", file, map[string]string{"object": "deal_row", "operation": "upsert"})
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	accepted := time.Since(start).Seconds()
	id := r.json(t)["id"].(string)
	var j map[string]any
	for {
		j = e.do(t, "GET", "/api/v1/bulk/jobs/"+id, bulk, nil).json(t)
		if s := j["state"].(string); s == "completed" || s == "failed" || s == "aborted" {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	total := time.Since(start).Seconds()
	importRSS := hwmRSS()
	require.Equal(t, "completed", j["state"], "job: %v", j)
	require.EqualValues(t, n, j["succeeded"], "job: %v", j)

	out, _ := json.Marshal(map[string]any{
		"rows": n, "columns": 12, "file_bytes": fi.Size(),
		"read_only_secs": readSecs, "read_only_rows_per_sec": float64(n) / readSecs, "read_only_peak_rss_mb": readRSS,
		"import_accept_secs": accepted, "import_total_secs": total, "import_rows_per_sec": float64(n) / total,
		"import_run_rows_per_sec": float64(n) / (total - accepted),
		"ratio_to_read_only":      (float64(n) / total) / (float64(n) / readSecs), "import_peak_rss_mb": importRSS,
	})
	t.Logf("%s", out)
	fmt.Println(string(out))
}
