package integration

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/xuri/excelize/v2"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/ingest"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// postImport sends file as the multipart form of an import (path is
// /api/v1/imports or its preview) with the form fields.
func (e *env) postImport(tb testing.TB, path, key, fileName string, file []byte, fields map[string]string) response {
	tb.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		require.NoError(tb, mw.WriteField(k, v))
	}
	fw, err := mw.CreateFormFile("file", fileName)
	require.NoError(tb, err)
	_, err = fw.Write(file)
	require.NoError(tb, err)
	require.NoError(tb, mw.Close())
	return e.do(tb, "POST", path, key, body.Bytes(), "Content-Type", mw.FormDataContentType())
}

// importJob starts an import and waits until its job ends.
func (e *env) importJob(tb testing.TB, key, fileName string, file []byte, fields map[string]string) map[string]any {
	tb.Helper()
	r := e.postImport(tb, "/api/v1/imports", key, fileName, file, fields)
	require.Equal(tb, http.StatusCreated, r.status, "body: %s", r.body)
	require.Equal(tb, "queued", r.json(tb)["state"])
	return e.waitJob(tb, key, r.json(tb)["id"].(string))
}

// workbook builds an .xlsx file: sheets in order, each a list of rows
// written from A1 (a nil cell is left empty). A time.Time is written as a
// date cell, which excelize stores as its serial number.
func workbook(tb testing.TB, sheets ...sheetData) []byte {
	tb.Helper()
	f := excelize.NewFile()
	defer f.Close()
	for i, sh := range sheets {
		if i == 0 {
			require.NoError(tb, f.SetSheetName("Sheet1", sh.name))
		} else {
			_, err := f.NewSheet(sh.name)
			require.NoError(tb, err)
		}
		for r, row := range sh.rows {
			for c, v := range row {
				if v == nil {
					continue
				}
				ref, err := excelize.CoordinatesToCellName(c+1, r+1)
				require.NoError(tb, err)
				require.NoError(tb, f.SetCellValue(sh.name, ref, v))
			}
		}
	}
	var buf bytes.Buffer
	require.NoError(tb, f.Write(&buf))
	return buf.Bytes()
}

type sheetData struct {
	name string
	rows [][]any
}

// rezip answers the zip of data with the parts in replace replaced (added
// when missing) and the parts in drop left out.
func rezip(tb testing.TB, data []byte, replace map[string][]byte, drop ...string) []byte {
	tb.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	require.NoError(tb, err)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	done := map[string]bool{}
	for _, zf := range zr.File {
		skip := false
		for _, d := range drop {
			skip = skip || zf.Name == d
		}
		if skip {
			continue
		}
		w, err := zw.Create(zf.Name)
		require.NoError(tb, err)
		if b, ok := replace[zf.Name]; ok {
			_, err = w.Write(b)
			done[zf.Name] = true
		} else {
			rc, oerr := zf.Open()
			require.NoError(tb, oerr)
			_, err = io.Copy(w, rc)
			rc.Close()
		}
		require.NoError(tb, err)
	}
	for name, b := range replace {
		if !done[name] {
			w, err := zw.Create(name)
			require.NoError(tb, err)
			_, err = w.Write(b)
			require.NoError(tb, err)
		}
	}
	require.NoError(tb, zw.Close())
	return buf.Bytes()
}

func dealsWorkbook(tb testing.TB) []byte {
	tb.Helper()
	return workbook(tb,
		sheetData{name: "Notes", rows: [][]any{{"nothing to import here"}}},
		sheetData{name: "Deals", rows: [][]any{
			{"Q3 pipeline export"},
			{"Deal Name", "External ID", "Amount", "STAGE", "Close Date", "Probability", "Owner notes"},
			{"Acme renewal", "acme-1", 1250.5, "closed won", time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC), 90, "call Jo"},
			{"Globex", "globex-1", "1,500", "Proposal", "2025-04-01", "40", nil},
			{},
			{"Initech", "initech-1", "lots", "Negotiation", "2025-05-02", 50, nil},
			{"Umbrella", "umbrella-1", 99, "Closed Lost", "2025-06-30", 150, nil},
		}},
	)
}

// TestImportXLSXPreviewRunFixRetry is DESIGN 8.5 end to end: a workbook
// whose data is on its second sheet under a title row, previewed (columns,
// mapping by name with case and spacing ignored plus one explicit, the
// unmapped column, rows converted with a cell error), imported as an
// upsert (results with sheet_row, a cell error naming column and cell, a
// pipeline error), its failed rows downloaded as CSV, fixed and imported
// again.
func TestImportXLSXPreviewRunFixRetry(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := startedEnv(t, dsn)
		bulk := e.key(t, e.ws, apikey.ScopeBulk)
		file := dealsWorkbook(t)
		form := map[string]string{"object": "opportunity", "operation": "upsert", "sheet": "deals", "header_row": "2",
			"mapping": `{"Deal Name": "name"}`}

		r := e.postImport(t, "/api/v1/imports/preview", bulk, "deals.xlsx", file, form)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		var p ingest.Preview
		require.NoError(t, json.Unmarshal(r.body, &p))
		require.Equal(t, ingest.FormatXLSX, p.Format)
		require.Equal(t, "Deals", p.Sheet)
		require.Equal(t, []string{"Notes", "Deals"}, p.Sheets)
		require.Equal(t, map[string]string{"Deal Name": "name", "External ID": "external_id", "Amount": "amount",
			"STAGE": "stage", "Close Date": "close_date", "Probability": "probability"}, p.Mapping)
		require.Equal(t, []string{"Owner notes"}, p.Unmapped)
		require.Equal(t, ingest.PreviewColumn{Letter: "C", Header: "Amount", Field: "amount"}, p.Columns[2])
		require.Len(t, p.Rows, 4, "the blank row is skipped")
		require.Equal(t, 3, p.Rows[0].SheetRow)
		require.Equal(t, records.Fields{"name": "Acme renewal", "external_id": "acme-1", "amount": 1250.5, "stage": "Closed Won",
			"close_date": "2025-03-14", "probability": float64(90)}, p.Rows[0].Fields)
		require.Equal(t, 1500.0, p.Rows[1].Fields["amount"], "text holding a number")
		require.Equal(t, 6, p.Rows[2].SheetRow)
		require.Len(t, p.Rows[2].Errors, 1)
		require.Equal(t, "C6", p.Rows[2].Errors[0].Cell)
		require.Equal(t, "Amount", p.Rows[2].Errors[0].Column)
		require.Contains(t, p.Rows[2].Errors[0].Message, `"lots" is not a number`)
		n, err := e.st.RecordCount(context.Background(), e.ws)
		require.NoError(t, err)
		require.Zero(t, n, "a preview writes nothing")
		jobs := e.do(t, "GET", "/api/v1/bulk/jobs", bulk, nil).json(t)["data"].([]any)
		require.Empty(t, jobs, "a preview makes no job")

		j := e.importJob(t, bulk, "deals.xlsx", file, form)
		require.Equal(t, "completed", j["state"], "job: %v", j)
		require.Equal(t, "xlsx", j["format"])
		require.EqualValues(t, 4, j["rows"])
		require.EqualValues(t, 2, j["succeeded"])
		require.EqualValues(t, 2, j["failed"])
		id := j["id"].(string)
		rs := e.bulkResults(t, bulk, id, "")
		require.Equal(t, []string{"1 succeeded created", "2 succeeded created",
			"3 failed  validation_failed amount:invalid_cell", "4 failed  validation_failed probability:max"}, summary(rs))
		require.Equal(t, []int64{3, 4, 6, 7}, []int64{rs[0].SheetRow, rs[1].SheetRow, rs[2].SheetRow, rs[3].SheetRow})
		require.Contains(t, rs[2].Error.Fields[0].Message, `column "Amount" (C6)`)
		acme := e.do(t, "GET", "/api/v1/records/opportunity/"+rs[0].RecordID, e.admin, nil).json(t)["fields"].(map[string]any)
		require.Equal(t, "2025-03-14", acme["close_date"])
		require.Equal(t, "Closed Won", acme["stage"])

		// The failed rows as CSV, with the file's own columns; fixed and
		// sent again as a .csv import of the same mapping.
		failed := e.bulkCSV(t, bulk, id, "?status=failed")
		require.Equal(t, []string{"Deal Name", "External ID", "Amount", "STAGE", "Close Date", "Probability", "Owner notes", "error"}, failed[0])
		require.Len(t, failed, 3)
		require.Equal(t, "2025-05-02", failed[1][4])
		require.Contains(t, failed[1][7], `column "Amount" (C6)`)
		failed[1][2], failed[2][5] = "7000", "15"
		var fixed bytes.Buffer
		cw := csv.NewWriter(&fixed)
		require.NoError(t, cw.WriteAll(failed))
		j2 := e.importJob(t, bulk, "fixed.csv", fixed.Bytes(), map[string]string{"object": "opportunity", "operation": "upsert",
			"mapping": `{"Deal Name": "name"}`})
		require.Equal(t, "csv", j2["format"])
		rs2 := e.bulkResults(t, bulk, j2["id"].(string), "")
		require.Equal(t, []string{"1 succeeded created", "2 succeeded created"}, summary(rs2))
		require.Equal(t, []int64{2, 3}, []int64{rs2[0].SheetRow, rs2[1].SheetRow})
		n, err = e.st.RecordCount(context.Background(), e.ws)
		require.NoError(t, err)
		require.EqualValues(t, 4, n)

		// validate_only and all_or_none: the same file writes nothing.
		for _, tc := range []struct {
			extra             map[string]string
			succeeded, failed int
		}{{map[string]string{"validate_only": "true"}, 2, 2}, {map[string]string{"mode": "all_or_none"}, 0, 4}} {
			f := map[string]string{"object": "opportunity", "operation": "insert", "sheet": "Deals", "header_row": "2",
				"mapping": `{"Deal Name": "name", "External ID": ""}`}
			for k, v := range tc.extra {
				f[k] = v
			}
			jv := e.importJob(t, bulk, "deals.xlsx", file, f)
			require.EqualValues(t, tc.succeeded, jv["succeeded"], "%v: %v", tc.extra, jv)
			require.EqualValues(t, tc.failed, jv["failed"], "%v: %v", tc.extra, jv)
		}
		n, err = e.st.RecordCount(context.Background(), e.ws)
		require.NoError(t, err)
		require.EqualValues(t, 4, n)

		// Undo of the first import removes the two records it created.
		r = e.do(t, "POST", "/api/v1/bulk/jobs/"+id+"/undo", bulk, nil)
		require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
		u := e.waitJob(t, bulk, r.json(t)["id"].(string))
		require.EqualValues(t, 2, u["succeeded"])

		// Bad forms.
		r = e.postImport(t, "/api/v1/imports", bulk, "deals.xlsx", file, map[string]string{"object": "opportunity", "operation": "upsert",
			"sheet": "Deals", "header_row": "2", "mapping": `{"No Such Column": "name"}`})
		require.Equal(t, http.StatusUnprocessableEntity, r.status, "body: %s", r.body)
		require.Equal(t, "invalid_mapping", r.code(t))
		r = e.postImport(t, "/api/v1/imports", bulk, "deals.xlsx", file, map[string]string{"object": "opportunity", "operation": "upsert",
			"sheet": "Missing"})
		require.Equal(t, http.StatusUnprocessableEntity, r.status, "body: %s", r.body)
		require.Contains(t, r.json(t)["detail"], "Notes, Deals")
		r = e.postImport(t, "/api/v1/imports", bulk, "deals.xlsx", file, map[string]string{"object": "nope", "operation": "merge"})
		require.Equal(t, http.StatusUnprocessableEntity, r.status, "body: %s", r.body)
		require.Equal(t, "validation_failed", r.code(t))
		r = e.do(t, "POST", "/api/v1/imports", bulk, map[string]any{"object": "opportunity"})
		require.Equal(t, http.StatusUnsupportedMediaType, r.status, "body: %s", r.body)
		read := e.key(t, e.ws, apikey.ScopeRead)
		r = e.postImport(t, "/api/v1/imports", read, "deals.xlsx", file, form)
		require.Equal(t, http.StatusForbidden, r.status, "body: %s", r.body)
	})
}

// TestImportHostileFiles: each hostile file is refused with a 4xx whose
// detail names what is wrong (the limit, for a limit), and nothing is
// written: no job, no record.
func TestImportHostileFiles(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, Config{Imports: ingest.ImportConfig{Limits: ingest.Limits{
			FileSize: 256 << 10, UncompressedSize: 4 << 20, SharedStringsSize: 128 << 10, Rows: 1000}}})
		require.NoError(t, e.svc.Start(context.Background()))
		bulk := e.key(t, e.ws, apikey.ScopeBulk)
		good := workbook(t, sheetData{name: "Sheet1", rows: [][]any{{"name"}, {"Acme"}}})

		var plain bytes.Buffer
		zw := zip.NewWriter(&plain)
		w, _ := zw.Create("readme.txt")
		_, _ = w.Write([]byte("hello"))
		require.NoError(t, zw.Close())

		sheetXML := func(body string) []byte {
			return []byte(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` +
				`<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>` + body + `</sheetData></worksheet>`)
		}
		var many strings.Builder
		for i := 1; i <= 1001; i++ {
			fmt.Fprintf(&many, `<row r="%d"><c r="A%d" t="inlineStr"><is><t>x</t></is></c></row>`, i, i)
		}
		bomb := sheetXML(`<row r="1"><c r="A1" t="inlineStr"><is><t>name</t></is></c></row>` + strings.Repeat(" ", 8<<20))
		sst := []byte(`<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1"><si><t>` +
			strings.Repeat("a", 1<<20) + `</t></si></sst>`)
		encrypted := append([]byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}, bytes.Repeat([]byte{0}, 4096)...)
		big := []byte("name\n" + strings.Repeat("Acme\n", 60<<10))

		for _, tc := range []struct {
			name   string
			file   []byte
			fname  string
			status int
			detail string
		}{
			{"not a zip", []byte("this is not a workbook at all"), "deals.xlsx", 422, "not a zip archive"},
			{"a zip that is not a workbook", plain.Bytes(), "deals.xlsx", 422, "no xl/workbook.xml"},
			{"encrypted", encrypted, "deals.xlsx", 422, "encrypted"},
			{"zip bomb", rezip(t, good, map[string][]byte{"xl/worksheets/sheet1.xml": bomb}), "bomb.xlsx", 413, "uncompressed size limit of 4194304"},
			{"too many rows", rezip(t, good, map[string][]byte{"xl/worksheets/sheet1.xml": sheetXML(many.String())}), "rows.xlsx", 413, "rows limit of 1000"},
			{"shared strings bomb", rezip(t, good, map[string][]byte{"xl/sharedStrings.xml": sst}), "sst.xlsx", 413, "shared strings size limit of 131072"},
			{"file too large", big, "big.csv", 413, "file size limit of 262144"},
			{"too many csv rows", []byte("name\n" + strings.Repeat("Acme\n", 1000)), "rows.csv", 413, "rows limit of 1000"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				require.Less(t, len(tc.file), 400<<10, "the hostile file itself is small")
				for _, path := range []string{"/api/v1/imports/preview", "/api/v1/imports"} {
					r := e.postImport(t, path, bulk, tc.fname, tc.file, map[string]string{"object": "account", "operation": "insert"})
					require.Equal(t, tc.status, r.status, "%s body: %s", path, r.body)
					require.Contains(t, r.json(t)["detail"], tc.detail)
				}
			})
		}
		jobs := e.do(t, "GET", "/api/v1/bulk/jobs", bulk, nil).json(t)["data"].([]any)
		require.Empty(t, jobs)
		n, err := e.st.RecordCount(context.Background(), e.ws)
		require.NoError(t, err)
		require.Zero(t, n)

		// The good workbook within the same limits imports.
		j := e.importJob(t, bulk, "good.xlsx", good, map[string]string{"object": "account", "operation": "insert"})
		require.EqualValues(t, 1, j["succeeded"], "job: %v", j)
	})
}

// TestImportRoundTrip: records read through the records list API and
// written as CSV (a header of field names, a row per record), then
// imported back as an upsert, change nothing: every row is unchanged, no
// version moves.
func TestImportRoundTrip(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := startedEnv(t, dsn)
		bulk := e.key(t, e.ws, apikey.ScopeBulk)
		for i := range 25 {
			f := map[string]any{"name": fmt.Sprintf("Deal, \"%d\"", i), "external_id": fmt.Sprintf("ext-%d", i),
				"amount": 1000.25 + float64(i), "stage": "Negotiation", "close_date": "2025-07-01", "probability": i}
			if i%3 == 0 {
				f["stage"] = "Closed Won"
				delete(f, "amount")
			}
			e.create(t, e.admin, "opportunity", f)
		}
		header := []string{"id", "name", "amount", "stage", "close_date", "closed_at", "probability", "account_id", "external_id"}
		var out bytes.Buffer
		cw := csv.NewWriter(&out)
		require.NoError(t, cw.Write(header))
		versions := map[string]float64{}
		cursor := ""
		for {
			r := e.do(t, "GET", "/api/v1/records/opportunity?limit=10"+cursor, e.admin, nil)
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			var page struct {
				Data []map[string]any `json:"data"`
				Next *string          `json:"next_cursor"`
			}
			require.NoError(t, json.Unmarshal(r.body, &page))
			for _, rec := range page.Data {
				versions[rec["id"].(string)] = rec["version"].(float64)
				fields := rec["fields"].(map[string]any)
				row := []string{rec["id"].(string)}
				for _, h := range header[1:] {
					v := fields[h]
					switch x := v.(type) {
					case nil:
						row = append(row, "")
					case float64:
						row = append(row, fmt.Sprint(x))
					default:
						row = append(row, fmt.Sprint(x))
					}
				}
				require.NoError(t, cw.Write(row))
			}
			if page.Next == nil {
				break
			}
			cursor = "&cursor=" + *page.Next
		}
		cw.Flush()
		require.Len(t, versions, 25)

		j := e.importJob(t, bulk, "export.csv", out.Bytes(), map[string]string{"object": "opportunity", "operation": "upsert"})
		require.Equal(t, "completed", j["state"])
		require.EqualValues(t, 25, j["succeeded"], "job: %v", j)
		for _, r := range e.bulkResults(t, bulk, j["id"].(string), "") {
			require.Equal(t, ingest.RowUnchanged, r.Action, "row %d (sheet row %d): %+v", r.Row, r.SheetRow, r.Error)
		}
		for id, v := range versions {
			rec := e.do(t, "GET", "/api/v1/records/opportunity/"+id, e.admin, nil).json(t)
			require.Equal(t, v, rec["version"], id)
		}
		evs, err := e.st.ListEvents(context.Background(), e.ws, "", 100)
		require.NoError(t, err)
		require.Len(t, evs, 25, "only the creates made events")
	})
}

// TestImportOnePipeline: rows of an import go through the pipeline as any
// write does, with source import: the Closed Won rule fires, each record
// has its audit entry (source import, the key as actor) and its event,
// the webhook is delivered, and the plan cap holds against concurrent
// single creates.
func TestImportOnePipeline(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := startedEnv(t, dsn)
		rv := newHookReceiver(t)
		r := e.do(t, "POST", "/api/v1/webhooks", e.admin, map[string]any{"url": rv.URL + "/hook", "events": []string{"*"}})
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		bulk := e.key(t, e.ws, apikey.ScopeBulk)
		bulkKeyID := e.keyID(t, e.ws, "test BULK")

		file := workbook(t, sheetData{name: "Sheet1", rows: [][]any{
			{"Name", "Stage", "Amount"}, {"Won", "Closed Won", nil}, {"Bad", nil, -3}, {"Open", "Proposal", 10}}})
		j := e.importJob(t, bulk, "deals.xlsx", file, map[string]string{"object": "opportunity", "operation": "insert"})
		rs := e.bulkResults(t, bulk, j["id"].(string), "")
		require.Equal(t, []string{"1 succeeded created", "2 failed  validation_failed amount:min", "3 succeeded created"}, summary(rs))
		won := e.do(t, "GET", "/api/v1/records/opportunity/"+rs[0].RecordID, e.admin, nil).json(t)
		require.NotEmpty(t, won["fields"].(map[string]any)["closed_at"], "the Closed Won rule fired")
		open := e.do(t, "GET", "/api/v1/records/opportunity/"+rs[2].RecordID, e.admin, nil).json(t)
		require.NotContains(t, open["fields"], "closed_at")
		for _, id := range []string{rs[0].RecordID, rs[2].RecordID} {
			entries, err := e.st.ListAudit(context.Background(), e.ws, id, "", 10)
			require.NoError(t, err)
			require.Len(t, entries, 1)
			require.Equal(t, records.SourceImport, entries[0].Source)
			require.Equal(t, records.Actor{Kind: "api_key", ID: bulkKeyID}, entries[0].Actor)
		}
		evs, err := e.st.ListEvents(context.Background(), e.ws, "", 100)
		require.NoError(t, err)
		require.Len(t, evs, 2)
		require.Eventually(t, func() bool {
			got := map[string]bool{}
			for _, q := range rv.requests() {
				if q.header.Get("webhook-id") != "" && strings.Contains(string(q.body), `"source":"import"`) {
					got[q.header.Get("webhook-id")] = true
				}
			}
			return got[evs[0].ID] && got[evs[1].ID]
		}, 30*time.Second, 20*time.Millisecond, "both events delivered, with source import")

		// The cap: a plan of 40 records; an import of 60 rows races 30
		// single creates.
		planCapRace(t, dsn, func(c *Config) { c.Webhooks = outbound.Config{Jitter: -1} }, func(capSvc *env, key string) string {
			rows := [][]any{{"Account Name"}}
			for i := range 60 {
				rows = append(rows, []any{fmt.Sprint("Imported ", i)})
			}
			return capSvc.importJob(t, key, "accounts.xlsx", workbook(t, sheetData{name: "Sheet1", rows: rows}),
				map[string]string{"object": "account", "operation": "insert", "mapping": `{"Account Name": "name"}`})["id"].(string)
		})
	})
}
