package ingest

import (
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/xuri/excelize/v2"

	"github.com/smartlite/crmkit/records"
)

// benchObject has one field per column of the benchmark workbook, of every
// type a cell converts to.
var benchObject = records.Object{Name: "deal", Fields: []records.Field{
	{Name: "name", Type: records.TypeString},
	{Name: "amount", Type: records.TypeNumber},
	{Name: "stage", Type: records.TypePicklist, Options: []string{"Prospecting", "Proposal", "Closed Won", "Closed Lost"}},
	{Name: "close_date", Type: records.TypeDate},
	{Name: "created_at", Type: records.TypeDateTime},
	{Name: "active", Type: records.TypeBoolean},
	{Name: "email", Type: records.TypeEmail},
	{Name: "website", Type: records.TypeURL},
	{Name: "seats", Type: records.TypeInteger},
	{Name: "notes", Type: records.TypeText},
	{Name: "owner_id", Type: records.TypeReference},
	{Name: "region", Type: records.TypePicklist, Options: []string{"EMEA", "AMER", "APAC"}},
}}

// writeBenchWorkbook writes rows data rows of 12 columns under a header,
// with excelize's StreamWriter, to path.
func writeBenchWorkbook(tb testing.TB, path string, rows int) {
	tb.Helper()
	f := excelize.NewFile()
	defer f.Close()
	sw, err := f.NewStreamWriter("Sheet1")
	require.NoError(tb, err)
	require.NoError(tb, sw.SetRow("A1", []any{"Name", "Amount", "Stage", "Close Date", "Created At", "Active",
		"Email", "Website", "Seats", "Notes", "Owner Id", "Region"}))
	stages := []string{"Prospecting", "proposal", "Closed Won", "closed lost"}
	regions := []string{"EMEA", "AMER", "APAC"}
	for i := 1; i <= rows; i++ {
		cell, _ := excelize.CoordinatesToCellName(1, i+1)
		require.NoError(tb, sw.SetRow(cell, []any{
			fmt.Sprintf("Deal %d", i),
			float64(i) * 10.25,
			stages[i%len(stages)],
			45000 + i%3000,
			45000.25 + float64(i%3000),
			i%2 == 0,
			fmt.Sprintf("buyer%d@example.com", i),
			fmt.Sprintf("www.example%d.com", i%100),
			i % 500,
			"Renewal discussed with procurement; follow up next quarter.",
			fmt.Sprintf("rec_%026d", i),
			regions[i%len(regions)],
		}))
	}
	require.NoError(tb, sw.Flush())
	require.NoError(tb, f.SaveAs(path))
}

// BenchmarkXLSXRead reads a 100,000-row, 12-column workbook through
// OpenXLSX (checks and pre-scan included), AutoMap and NewTableRows,
// converting every cell.
func BenchmarkXLSXRead(b *testing.B) {
	const rows = 100000
	path := filepath.Join(b.TempDir(), "bench.xlsx")
	writeBenchWorkbook(b, path, rows)
	b.Run("100k_rows_12_cols", func(b *testing.B) {
		for b.Loop() {
			t, err := OpenXLSXFile(path, TableOptions{TempDir: b.TempDir()})
			require.NoError(b, err)
			m, err := AutoMap(&benchObject, t.Columns(), nil)
			require.NoError(b, err)
			require.Empty(b, m.Unmapped)
			r := NewTableRows(t, m, t.Converter())
			n := 0
			for {
				row, err := r.Next()
				if err == io.EOF {
					break
				}
				require.NoError(b, err)
				if row.Err != nil {
					b.Fatal(row.Err)
				}
				n++
			}
			require.Equal(b, rows, n)
			require.NoError(b, t.Close())
		}
		b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}

// The benchmark's workbook converts without errors, cell by cell as
// written; checked on a small one so the test stays fast.
func TestBenchWorkbookConverts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "small.xlsx")
	writeBenchWorkbook(t, path, 3)
	tab, err := OpenXLSXFile(path, TableOptions{})
	require.NoError(t, err)
	defer tab.Close()
	m, err := AutoMap(&benchObject, tab.Columns(), nil)
	require.NoError(t, err)
	require.Empty(t, m.Unmapped)
	rows, err := readRows(t, NewTableRows(tab, m, tab.Converter()))
	require.NoError(t, err)
	require.Len(t, rows, 3)
	require.NoError(t, rows[0].Err)
	require.Equal(t, records.Fields{
		"name": "Deal 1", "amount": 10.25, "stage": "Proposal", "close_date": "2023-03-16",
		"created_at": "2023-03-16T06:00:00Z", "active": false, "email": "buyer1@example.com",
		"website": "https://www.example1.com", "seats": 1.0,
		"notes":    "Renewal discussed with procurement; follow up next quarter.",
		"owner_id": "rec_00000000000000000000000001", "region": "AMER",
	}, rows[0].Fields)
}
