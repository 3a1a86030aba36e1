package console_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"html"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/xuri/excelize/v2"

	"github.com/smartlite/crmkit/console"
	"github.com/smartlite/crmkit/ingest"
	"github.com/smartlite/crmkit/integration"
	"github.com/smartlite/crmkit/records"
)

// The importer crmkit ships satisfies the console's interface.
var _ console.Imports = (*ingest.Importer)(nil)

// importEnv is an apiEnv whose console has the Imports pages only, with a
// second workspace and its ADMIN key. Import files are spooled in tmp,
// held to limits.
type importEnv struct {
	*apiEnv
	tmp   string
	clock *testClock

	ws2, admin2 string
}

func newImportEnv(tb testing.TB, limits ingest.Limits) *importEnv {
	tb.Helper()
	e := &importEnv{tmp: tb.TempDir(), clock: &testClock{}}
	e.apiEnv = newAPIEnvWith(tb, func(c *integration.Config) {
		c.Imports = ingest.ImportConfig{Limits: limits, TempDir: e.tmp}
	}, func(c *console.Config) {
		c.Webhooks, c.Audit, c.Inbound, c.Connectors = nil, nil, nil, nil
		// Sessions outlive the uploads, whose expiry the clock tests.
		c.Clock, c.IdleTimeout, c.MaxAge = e.clock.Now, 24*time.Hour, 24*time.Hour
	})
	require.NotNil(tb, e.svc.Importer())
	e.ws2, e.admin2 = e.workspace(tb, "Globex", "enterprise")
	return e
}

// browser answers a cookie-keeping client of the console, signed in with
// key.
func (e *importEnv) browser(tb testing.TB, key string) *browser {
	tb.Helper()
	b := newBrowser(tb, e.srv)
	b.signIn(key)
	return b
}

// spooled answers the names of the files in the importer's temporary
// directory.
func (e *importEnv) spooled(tb testing.TB) []string {
	tb.Helper()
	des, err := os.ReadDir(e.tmp)
	require.NoError(tb, err)
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func (e *importEnv) jobs(tb testing.TB, ws string) []*ingest.Job {
	tb.Helper()
	js, err := e.svc.Bulk().List(context.Background(), ws, "", 100)
	require.NoError(tb, err)
	return js
}

// waitJob waits for a job to end and answers it.
func (e *importEnv) waitJob(tb testing.TB, ws, id string) *ingest.Job {
	tb.Helper()
	var j *ingest.Job
	require.Eventually(tb, func() bool {
		var err error
		j, err = e.svc.Bulk().Get(context.Background(), ws, id)
		return err == nil && j.State.Terminal()
	}, waitTimeout, 20*time.Millisecond)
	return j
}

// upload posts the upload form as a browser does: the CSRF token first,
// then the settings, then the file.
func (b *browser) upload(fileName string, file []byte, fields ...string) page {
	b.tb.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	require.NoError(b.tb, mw.WriteField("csrf", b.csrf))
	for i := 0; i+1 < len(fields); i += 2 {
		require.NoError(b.tb, mw.WriteField(fields[i], fields[i+1]))
	}
	fw, err := mw.CreateFormFile("file", fileName)
	require.NoError(b.tb, err)
	_, err = fw.Write(file)
	require.NoError(b.tb, err)
	require.NoError(b.tb, mw.Close())
	req, err := http.NewRequest(http.MethodPost, b.base+"/imports/upload", &body)
	require.NoError(b.tb, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return b.do(req)
}

// importWorkbook builds an .xlsx file of one sheet from rows written from
// A1 (a nil cell is left empty).
func importWorkbook(tb testing.TB, sheet string, rows [][]any) []byte {
	tb.Helper()
	f := excelize.NewFile()
	defer f.Close()
	require.NoError(tb, f.SetSheetName("Sheet1", sheet))
	for r, row := range rows {
		for c, v := range row {
			if v == nil {
				continue
			}
			ref, err := excelize.CoordinatesToCellName(c+1, r+1)
			require.NoError(tb, err)
			require.NoError(tb, f.SetCellValue(sheet, ref, v))
		}
	}
	var buf bytes.Buffer
	require.NoError(tb, f.Write(&buf))
	return buf.Bytes()
}

// dealRows are deals to import under a title row; the third deal's amount
// is not a number. Owner is no field of an opportunity.
var dealRows = [][]any{
	{"Q3 pipeline"},
	{"Name", "Amount", "Stage", "Close Date", "Owner"},
	{"Acme renewal", 1250.5, "closed won", time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC), "Jo"},
	{"Globex", "1,500", "Proposal", "2025-04-01", "Sam"},
	{"Initech", "lots", "Negotiation", "2025-05-02", "Kim"},
	{"Umbrella", 99, "Qualification", "2025-06-30", "Lee"},
}

// selected answers the value of the option selected in the select name,
// "" when none is.
func selected(tb testing.TB, body, name string) string {
	tb.Helper()
	m := regexp.MustCompile(`(?s)<select id="` + name + `" name="` + name + `".*?</select>`).FindString(body)
	require.NotEmpty(tb, m, "select %s is on the page", name)
	if s := regexp.MustCompile(`<option value="([^"]*)" selected>`).FindStringSubmatch(m); s != nil {
		return s[1]
	}
	return ""
}

var uploadPath = regexp.MustCompile(`/imports/uploads/([A-Za-z0-9_-]+)$`)

// TestImports walks an import through the console: upload, columns
// auto-mapped, a preview that writes nothing, a refused mapping, start,
// progress, results with the bad row's error at its sheet row, the failed
// rows as CSV, undo; refused files stored nowhere; another workspace's
// import and upload answering 404.
func TestImports(t *testing.T) {
	e := newImportEnv(t, ingest.Limits{FileSize: 64 << 10})
	ctx := context.Background()
	b := e.browser(t, e.admin)

	p := b.get("/imports")
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, "There are no imports yet.")
	require.Contains(t, p.body, `href="/imports" aria-current="page"`)
	p = b.get("/imports/new")
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, `enctype="multipart/form-data"`)
	require.Contains(t, p.body, `<label for="file">File</label>`)
	require.Contains(t, p.body, `<option value="opportunity">opportunity</option>`)
	require.Contains(t, p.body, "up to 64 KiB")

	file := importWorkbook(t, "Deals", dealRows)
	p = b.upload("q3 deals.xlsx", file, "object", "opportunity", "operation", "insert", "header_row", "2")
	require.Equal(t, http.StatusOK, p.status, p.body)
	m := uploadPath.FindStringSubmatch(p.url.Path)
	require.NotNil(t, m, "the upload has a page of its own: %s", p.url)
	token := m[1]
	uploadURL := "/imports/uploads/" + token
	require.Len(t, e.spooled(t), 1, "the upload is kept")

	// Auto-mapped by name; Owner fills no field.
	require.Equal(t, "name", selected(t, p.body, "col0"))
	require.Equal(t, "amount", selected(t, p.body, "col1"))
	require.Equal(t, "stage", selected(t, p.body, "col2"))
	require.Equal(t, "close_date", selected(t, p.body, "col3"))
	require.Equal(t, "", selected(t, p.body, "col4"))
	require.Contains(t, p.body, `<label for="col4">Owner <span class="optional">column E</span></label>`)
	require.Contains(t, p.body, `<option value="Deals" selected>Deals</option>`)
	// The preview: rows as written, the bad cell's error in its place.
	require.Contains(t, p.body, `<th scope="row">5</th>`)
	text := html.UnescapeString(p.body)
	require.Contains(t, text, `"lots" is not a number`)
	require.Contains(t, text, "Closed Won", "the picklist value as written")
	require.Contains(t, text, "2025-03-14", "the date as written")
	n, err := e.st.RecordCount(ctx, e.ws)
	require.NoError(t, err)
	require.Zero(t, n, "a preview writes nothing")
	require.Empty(t, e.jobs(t, e.ws), "a preview makes no job")

	form := func(action string, cols ...string) url.Values {
		f := url.Values{"action": {action}, "shown": {"2:Deals"}, "sheet": {"Deals"}, "header_row": {"2"}}
		for i, c := range cols {
			f.Set("col"+string(rune('0'+i)), c)
		}
		return f
	}

	// Two columns for one field are refused beside the second.
	p = b.post(uploadURL, form("preview", "name", "amount", "stage", "close_date", "name"))
	require.Equal(t, http.StatusUnprocessableEntity, p.status, p.body)
	require.Regexp(t, `<p class="field-error" id="col4-error">Column A already fills name`, p.body)
	require.Contains(t, p.body, `aria-describedby="columns-hint col4-error" aria-invalid="true"`)
	require.Equal(t, "name", selected(t, p.body, "col4"), "the choice refused is kept")

	// Stage skipped: the preview has no stage.
	p = b.post(uploadURL, form("preview", "name", "amount", "", "close_date", ""))
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Equal(t, "", selected(t, p.body, "col2"))
	require.NotContains(t, html.UnescapeString(p.body), "Closed Won")

	// A header row with nothing under it, then back.
	p = b.post(uploadURL, url.Values{"action": {"preview"}, "shown": {"2:Deals"}, "sheet": {"Deals"}, "header_row": {"0"}})
	require.Equal(t, http.StatusUnprocessableEntity, p.status, p.body)
	require.Contains(t, p.body, `id="header-row-error"`)

	// Start, stage mapped again.
	p = b.post(uploadURL, form("start", "name", "amount", "stage", "close_date", ""))
	require.Equal(t, http.StatusOK, p.status, p.body)
	jobID := strings.TrimPrefix(p.url.Path, "/imports/jobs/")
	require.True(t, strings.HasPrefix(jobID, "job_"), p.url.Path)
	require.Empty(t, e.spooled(t), "the upload is removed once the import starts")
	require.Equal(t, http.StatusNotFound, b.get(uploadURL).status)

	j := e.waitJob(t, e.ws, jobID)
	require.Equal(t, ingest.StateCompleted, j.State, "job: %+v", j)
	require.EqualValues(t, 4, j.Rows)
	require.EqualValues(t, 3, j.Succeeded)
	require.EqualValues(t, 1, j.Failed)
	require.Equal(t, records.Actor{Kind: "api_key", ID: keyID(t, e, e.admin)}, j.Actor)

	p = b.get("/imports/jobs/" + jobID)
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, `<progress id="progress-bar" max="4" value="4">100%</progress>`)
	require.Contains(t, p.body, "Of the rows that succeeded: 3 created.")
	require.NotContains(t, p.body, "hx-trigger", "an import that ended is not polled")
	require.Regexp(t, `<td data-label="Sheet row">5</td>\s*<td data-label="Error" class="row-error">amount: [^<]*column &#34;Amount&#34; \(B5\)`, p.body)
	require.Contains(t, p.body, `href="/imports/jobs/`+jobID+`/failed.csv"`)
	require.Contains(t, p.body, `action="/imports/jobs/`+jobID+`/undo"`)
	frag := b.get("/imports/jobs/" + jobID + "/progress")
	require.Equal(t, http.StatusOK, frag.status)
	require.True(t, strings.HasPrefix(strings.TrimSpace(frag.body), `<section id="job"`), frag.body)
	require.Contains(t, frag.body, "row-error")

	list := b.get("/imports")
	require.Contains(t, list.body, "q3 deals.xlsx")
	require.Contains(t, list.body, "Completed with failures")
	require.Contains(t, list.body, "4 of 4")

	// The failed rows as CSV: the file's columns, then the error.
	csvPage := b.get("/imports/jobs/" + jobID + "/failed.csv")
	require.Equal(t, http.StatusOK, csvPage.status)
	require.Equal(t, "text/csv; charset=utf-8", csvPage.header.Get("Content-Type"))
	require.Equal(t, `attachment; filename="q3 deals-failed.csv"`, csvPage.header.Get("Content-Disposition"))
	recs, err := csv.NewReader(strings.NewReader(csvPage.body)).ReadAll()
	require.NoError(t, err)
	require.Equal(t, []string{"Name", "Amount", "Stage", "Close Date", "Owner", "error"}, recs[0])
	require.Len(t, recs, 2)
	require.Equal(t, []string{"Initech", "lots", "Negotiation", "2025-05-02", "Kim"}, recs[1][:5])
	require.Contains(t, recs[1][5], `column "Amount" (B5)`)

	t.Run("refused files are stored nowhere", func(t *testing.T) {
		b.get("/imports/new")
		for _, tc := range []struct {
			name, file string
			data       []byte
			status     int
			msg        string
		}{
			{"not a workbook", "deals.xlsx", []byte("this is not a workbook at all"), http.StatusUnprocessableEntity, "not a zip archive"},
			{"too large", "big.csv", []byte("name\n" + strings.Repeat("Acme\n", 40<<10)), http.StatusRequestEntityTooLarge, "too large to import"},
			{"empty", "", nil, http.StatusUnprocessableEntity, "Choose a file"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p := b.upload(tc.file, tc.data, "object", "account", "operation", "insert", "header_row", "1")
				require.Equal(t, tc.status, p.status, p.body)
				require.Regexp(t, `<p class="field-error" id="file-error">[^<]*`+regexp.QuoteMeta(tc.msg), p.body)
				require.Regexp(t, `<input id="file" name="file" type="file" [^>]*aria-describedby="file-hint file-error" aria-invalid="true">`, p.body)
				require.Contains(t, p.body, `<option value="account" selected>account</option>`, "the settings are kept")
				require.Empty(t, e.spooled(t))
			})
		}
		p := b.upload("deals.xlsx", file, "object", "opportunity", "operation", "insert", "sheet", "Missing")
		require.Equal(t, http.StatusUnprocessableEntity, p.status, p.body)
		require.Contains(t, p.body, `<p class="field-error" id="sheet-error">The workbook has no such sheet: it has Deals.</p>`)
		p = b.upload("deals.xlsx", file, "object", "opportunity", "operation", "merge")
		require.Equal(t, http.StatusUnprocessableEntity, p.status, p.body)
		require.Contains(t, p.body, `id="operation-error"`)
		require.Empty(t, e.spooled(t))
		require.Len(t, e.jobs(t, e.ws), 1)

		// Without its CSRF token the upload is refused before it is read.
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, err := mw.CreateFormFile("file", "deals.xlsx")
		require.NoError(t, err)
		_, _ = fw.Write(file)
		require.NoError(t, mw.Close())
		req, err := http.NewRequest(http.MethodPost, b.base+"/imports/upload", &body)
		require.NoError(t, err)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		require.Equal(t, http.StatusForbidden, b.do(req).status)
		require.Empty(t, e.spooled(t))
	})

	t.Run("another workspace", func(t *testing.T) {
		p := b.get("/imports/new")
		p = b.upload("q3.xlsx", file, "object", "opportunity", "operation", "insert", "header_row", "2")
		require.Equal(t, http.StatusOK, p.status, p.body)
		pending := p.url.Path

		b2 := e.browser(t, e.admin2)
		require.NotContains(t, b2.get("/imports").body, "q3 deals.xlsx")
		for _, path := range []string{"/imports/jobs/" + jobID, "/imports/jobs/" + jobID + "/progress", "/imports/jobs/" + jobID + "/failed.csv", pending} {
			p := b2.get(path)
			require.Equal(t, http.StatusNotFound, p.status, path)
			require.NotContains(t, p.body, "Initech")
		}
		b2.get("/imports")
		require.Equal(t, http.StatusNotFound, b2.post("/imports/jobs/"+jobID+"/undo", nil).status)
		require.Equal(t, http.StatusNotFound, b2.post(pending, url.Values{"action": {"cancel"}}).status)
		require.Len(t, e.spooled(t), 1, "the other workspace could not discard it")

		// Its owner can.
		b.get(pending)
		p = b.post(pending, url.Values{"action": {"cancel"}})
		require.Equal(t, http.StatusOK, p.status)
		require.Contains(t, p.body, "The upload was discarded.")
		require.Empty(t, e.spooled(t))
	})

	t.Run("undo", func(t *testing.T) {
		b.get("/imports/jobs/" + jobID)
		p := b.post("/imports/jobs/"+jobID+"/undo", nil)
		require.Equal(t, http.StatusOK, p.status, p.body)
		undoID := strings.TrimPrefix(p.url.Path, "/imports/jobs/")
		require.NotEqual(t, jobID, undoID)
		require.Contains(t, p.body, "The undo was queued")
		u := e.waitJob(t, e.ws, undoID)
		require.EqualValues(t, 3, u.Succeeded)
		n, err := e.st.RecordCount(ctx, e.ws)
		require.NoError(t, err)
		require.Zero(t, n)
		p = b.get("/imports/jobs/" + undoID)
		require.Contains(t, p.body, "Undo of q3 deals.xlsx")
		require.NotContains(t, p.body, "/undo", "an undo is not undone")
	})

	t.Run("stop", func(t *testing.T) {
		// With the bulk queue paused the import waits, and is stopped
		// before it writes anything; resumed, the queue leaves it alone.
		jobs := e.svc.JobClient()
		require.NoError(t, jobs.QueuePause(ctx, ingest.QueueBulk, nil))
		p := b.upload("stop me.xlsx", importWorkbook(t, "Deals", dealRows), "object", "opportunity", "operation", "insert", "header_row", "2")
		require.Equal(t, http.StatusOK, p.status, p.body)
		p = b.post(p.url.Path, form("start", "name", "amount", "stage", "close_date", ""))
		require.Equal(t, http.StatusOK, p.status, p.body)
		stopID := strings.TrimPrefix(p.url.Path, "/imports/jobs/")
		require.Contains(t, p.body, `action="/imports/jobs/`+stopID+`/abort"`)
		require.Contains(t, b.get("/imports/jobs/"+stopID+"/progress").body, "Stop import", "the live fragment keeps the button")

		b2 := e.browser(t, e.admin2)
		b2.get("/imports")
		require.Equal(t, http.StatusNotFound, b2.post("/imports/jobs/"+stopID+"/abort", nil).status)

		p = b.post("/imports/jobs/"+stopID+"/abort", nil)
		require.Equal(t, http.StatusOK, p.status, p.body)
		require.Contains(t, p.body, "The import was stopped")
		require.Contains(t, p.body, `<span class="badge muted">Aborted</span>`)
		require.NotContains(t, p.body, "Stop import")
		require.NoError(t, jobs.QueueResume(ctx, ingest.QueueBulk, nil))
		require.Eventually(t, func() bool {
			qs, err := e.st.QueueDepth(ctx)
			require.NoError(t, err)
			for _, q := range qs {
				if q.Kind == (ingest.RunArgs{}).Kind() && q.Count > 0 {
					return false
				}
			}
			return true
		}, waitTimeout, 20*time.Millisecond, "the queue worked the stopped import's job")
		j, err := e.svc.Bulk().Get(ctx, e.ws, stopID)
		require.NoError(t, err)
		require.Equal(t, ingest.StateAborted, j.State)
		require.Zero(t, j.Processed, "a stopped import writes nothing")
		recs, err := e.st.RecordCount(ctx, e.ws)
		require.NoError(t, err)
		require.Zero(t, recs)

		// Stopping what has ended says so.
		p = b.post("/imports/jobs/"+stopID+"/abort", nil)
		require.Equal(t, http.StatusConflict, p.status, p.body)
		require.Contains(t, p.body, "already ended")
	})

	require.NotContains(t, e.logs.String(), e.admin)
}

// TestImportUploadsKept: a session keeps its three latest uploads, the
// older ones removed; an upload unused for 30 minutes is removed too.
func TestImportUploadsKept(t *testing.T) {
	e := newImportEnv(t, ingest.Limits{})
	b := e.browser(t, e.admin)
	file := importWorkbook(t, "Deals", dealRows)
	var pages []string
	for range 4 {
		b.get("/imports/new")
		p := b.upload("deals.xlsx", file, "object", "opportunity", "operation", "upsert", "header_row", "2")
		require.Equal(t, http.StatusOK, p.status, p.body)
		pages = append(pages, p.url.Path)
	}
	require.Len(t, e.spooled(t), 3)
	p := b.get(pages[0])
	require.Equal(t, http.StatusNotFound, p.status)
	require.Contains(t, p.body, "This upload is no longer kept")
	require.Equal(t, http.StatusOK, b.get(pages[3]).status)

	e.clock.Advance(31 * time.Minute)
	require.Equal(t, http.StatusNotFound, b.get(pages[3]).status)
	require.Len(t, e.spooled(t), 2, "removed when asked for")
	b.get("/imports/new")
	p = b.upload("deals.xlsx", file, "object", "opportunity", "operation", "upsert", "header_row", "2")
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Len(t, e.spooled(t), 1, "the others were removed with the next upload")
	require.Empty(t, e.jobs(t, e.ws))
}

// keyID answers the id of a plaintext key.
func keyID(tb testing.TB, e *importEnv, key string) string {
	tb.Helper()
	p, err := e.svc.Keys().Verify(context.Background(), key)
	require.NoError(tb, err)
	return p.KeyID
}
