package ingest_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"strings"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/smartlite/crmkit/ingest"
	"github.com/smartlite/crmkit/records"
)

// A bulk job's NDJSON rows, one at a time: a faulty row fails alone.
func ExampleNewNDJSONRows() {
	in := `{"fields":{"name":"Acme","amount":1200.5}}
{"id":"rec_01jz8x4m6b2c3d4e5f6g7h8j9k","fields":{"stage":"Closed Won"}}
{"name": oops}
{"name":"Shopify order","order_id":820982911946154508}
`
	rows := ingest.NewNDJSONRows(strings.NewReader(in), ingest.RowOptions{})
	for {
		row, err := rows.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		if row.Err != nil {
			fmt.Println("failed:", row.Err)
			continue
		}
		fmt.Println(row.Num, row.ID, row.Fields)
	}
	// Output:
	// 1  map[amount:1200.5 name:Acme]
	// 2 rec_01jz8x4m6b2c3d4e5f6g7h8j9k map[stage:Closed Won]
	// failed: row 3 (line 3): malformed input: invalid character 'o' looking for beginning of value
	// 4  map[name:Shopify order order_id:820982911946154508]
}

// An uploaded workbook, checked, mapped to the opportunity object and
// converted row by row; the failed rows are written back as CSV.
func ExampleOpenXLSX() {
	upload := workbook()
	table, err := ingest.OpenXLSX(bytes.NewReader(upload), int64(len(upload)), ingest.TableOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer table.Close()

	var opportunity records.Object
	for _, o := range records.DefaultObjects() {
		if o.Name == "opportunity" {
			opportunity = o
		}
	}
	mapping, err := ingest.AutoMap(&opportunity, table.Columns(), map[string]string{"Deal": "name"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("mapping:", mapping.Used(), "unmapped:", mapping.Unmapped)

	var failed bytes.Buffer
	headers := make([]string, len(table.Columns()))
	for i, c := range table.Columns() {
		headers[i] = c.Header
	}
	results, err := ingest.NewResultWriter(&failed, headers, ingest.FailedResults)
	if err != nil {
		log.Fatal(err)
	}
	rows := ingest.NewTableRows(table, mapping, table.Converter())
	for {
		row, err := rows.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		if row.Err != nil {
			_ = results.Write(row.Columns, ingest.Result{Error: row.Err.Error()})
			continue
		}
		fmt.Println("sheet row", row.SheetRow, row.Fields)
	}
	if err := results.Flush(); err != nil {
		log.Fatal(err)
	}
	fmt.Print(failed.String())
	// Output:
	// mapping: map[Amount:amount Close Date:close_date Deal:name Stage:stage] unmapped: [Owner]
	// sheet row 2 map[amount:1200.5 close_date:2025-06-30 name:Acme renewal stage:Closed Won]
	// sheet row 3 map[amount:1234.5 close_date:2025-07-01 name:Beta stage:Proposal]
	// Deal,Amount,Close Date,Stage,Owner,error
	// Gamma,abc,45840,won,Ada,"column ""Amount"" (B4): ""abc"" is not a number; column ""Stage"" (D4): ""won"" is not one of: Prospecting, Qualification, Proposal, Negotiation, Closed Won, Closed Lost"
}

// Files that are not what they claim are refused before they are read.
func ExampleOpenXLSX_refused() {
	for _, file := range [][]byte{
		[]byte("name,amount\nAcme,1\n"),
		{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0, 0, 0},
		workbook(),
	} {
		_, err := ingest.OpenXLSX(bytes.NewReader(file), int64(len(file)), ingest.TableOptions{
			Limits: ingest.Limits{FileSize: 4096},
		})
		var limit *ingest.LimitError
		fmt.Println(errors.Is(err, ingest.ErrRefused), errors.As(err, &limit), err)
	}
	// Output:
	// true false ingest: not an xlsx file: not a zip archive
	// true false ingest: the workbook is encrypted (or a legacy .xls file): save it without a password as .xlsx
	// true true ingest: over the file size limit of 4096
}

// workbook answers a small xlsx file as a user would upload it.
func workbook() []byte {
	f := excelize.NewFile()
	defer f.Close()
	dateStyle, err := f.NewStyle(&excelize.Style{NumFmt: 14})
	if err != nil {
		log.Fatal(err)
	}
	rows := [][]any{
		{"Deal", "Amount", "Close Date", "Stage", "Owner"},
		{"Acme renewal", 1200.5, time.Date(2025, 6, 30, 0, 0, 0, 0, time.UTC), "closed won", "Ada"},
		{"Beta", "1,234.50", "2025-07-01", "Proposal", "Grace"},
		{"Gamma", "abc", time.Date(2025, 7, 2, 0, 0, 0, 0, time.UTC), "won", "Ada"},
	}
	for i, r := range rows {
		cell, _ := excelize.CoordinatesToCellName(1, i+1)
		if err := f.SetSheetRow("Sheet1", cell, &r); err != nil {
			log.Fatal(err)
		}
	}
	if err := f.SetColStyle("Sheet1", "C", dateStyle); err != nil {
		log.Fatal(err)
	}
	buf, err := f.WriteToBuffer()
	if err != nil {
		log.Fatal(err)
	}
	return buf.Bytes()
}
