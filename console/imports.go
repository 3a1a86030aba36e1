package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/smartlite/crmkit/ingest"
	"github.com/smartlite/crmkit/records"
)

// Imports is what the console needs of spreadsheet imports;
// *ingest.Importer satisfies it.
//
// Job, Results, WriteResultsCSV and Undo answer an error wrapping
// records.ErrNotFound for a job that is not the workspace's. A file that
// cannot be imported is refused with an error matching ingest.ErrRefused
// (an *ingest.LimitError for a file over a limit, ingest.ErrNoSheet for a
// sheet the workbook does not have) or ingest.ErrMalformed; a mapping that
// does not fit the file with ingest.ErrMapping; bad settings with a
// *records.ValidationError.
type Imports interface {
	// Limits answers the limits files are held to.
	Limits() ingest.Limits
	// Spool copies an uploaded file to temporary storage, failing with an
	// *ingest.LimitError past Limits().FileSize. Close the answer.
	Spool(r io.Reader) (*ingest.Upload, error)
	// Preview answers the file's columns, their mapping and its first rows
	// converted, writing nothing.
	Preview(in ingest.ImportInput, u *ingest.Upload) (*ingest.Preview, error)
	// Start checks the whole file and queues the job that imports it.
	Start(ctx context.Context, workspace string, actor records.Actor, in ingest.ImportInput, u *ingest.Upload) (*ingest.Job, error)
	// Objects answers the objects a file can be imported into; nil when
	// they cannot be listed (the upload form then asks for a name).
	Objects() []*records.Object
	// Imports answers up to limit import jobs with an id before the given
	// one ("" for the newest), newest first.
	Imports(ctx context.Context, workspace, before string, limit int) ([]*ingest.Job, error)
	// Job answers one bulk job.
	Job(ctx context.Context, workspace, id string) (*ingest.Job, error)
	// Results answers up to limit row results of a job, of status ("" for
	// every status), with a row number after afterRow, in row order.
	Results(ctx context.Context, workspace, id, status string, afterRow int64, limit int) ([]ingest.RowResult, error)
	// WriteResultsCSV writes the job's results of status as CSV: the
	// file's own columns, then the result's.
	WriteResultsCSV(ctx context.Context, w io.Writer, j *ingest.Job, status string) error
	// Undo queues a job that reverses a completed import; a job that
	// cannot be undone is an error matching ingest.ErrJobState.
	Undo(ctx context.Context, workspace, id string, actor records.Actor) (*ingest.Job, error)
	// Actions answers how many of a job's succeeded rows had each action
	// (ingest.RowCreated and the others).
	Actions(ctx context.Context, workspace, id string) (map[string]int64, error)
	// Abort stops an import that has not ended; the rows it committed
	// stay. One that has ended is an error matching ingest.ErrJobState.
	Abort(ctx context.Context, workspace, id string) (*ingest.Job, error)
}

// importUploadPath is where the upload form posts: the one request whose
// body may be as large as an import file.
const importUploadPath = "/imports/upload"

func (h *handler) importRoutes(m *http.ServeMux) {
	h.uploads = newImportUploads(h.clock)
	m.HandleFunc("GET /imports", h.signedIn(h.importsPage))
	m.HandleFunc("GET /imports/new", h.signedIn(h.newImportForm))
	m.HandleFunc("POST "+importUploadPath, h.uploadImport)
	m.HandleFunc("GET /imports/uploads/{token}", h.signedIn(h.mappingPage))
	m.HandleFunc("POST /imports/uploads/{token}", h.signedIn(h.mappingAction))
	m.HandleFunc("GET /imports/jobs/{id}", h.signedIn(h.importJobPage))
	m.HandleFunc("GET /imports/jobs/{id}/progress", h.signedIn(h.importProgress))
	m.HandleFunc("GET /imports/jobs/{id}/failed.csv", h.signedIn(h.failedRowsCSV))
	m.HandleFunc("POST /imports/jobs/{id}/undo", h.signedIn(h.undoImport))
	m.HandleFunc("POST /imports/jobs/{id}/abort", h.signedIn(h.abortImport))
}

// uploadBodyBytes bounds the body of an upload: the largest file the
// importer takes, and room for the form's other fields.
func (h *handler) uploadBodyBytes() int64 {
	return h.imports.Limits().FileSize + maxFormBytes
}

// importOps are the operations an import offers.
var importOps = []records.Op{records.OpInsert, records.OpUpdate, records.OpUpsert}

// actor is who an import is written by: the API key signed in with, or the
// host's user.
func (req *request) actor() records.Actor {
	if req.session != nil {
		return records.Actor{Kind: "api_key", ID: req.id.Actor}
	}
	return records.Actor{Kind: "user", ID: req.id.Actor}
}

type importRow struct {
	*ingest.Job
	File string
}

type importsData struct {
	Imports []importRow
	Next    string
}

func (h *handler) importsPage(w http.ResponseWriter, r *http.Request, req *request) error {
	before := r.URL.Query().Get("before")
	jobs, err := h.imports.Imports(r.Context(), req.id.Workspace, before, pageSize+1)
	if err != nil {
		return err
	}
	jobs, next := paged(jobs, pageSize, func(j *ingest.Job) string { return j.ID })
	d := importsData{Next: next}
	for _, j := range jobs {
		d.Imports = append(d.Imports, importRow{Job: j, File: fileName(j)})
	}
	h.render(w, r, http.StatusOK, "imports", req, "Imports", d)
	return nil
}

// fileName answers the name of the file a job imported.
func fileName(j *ingest.Job) string {
	if j.Import != nil && j.Import.FileName != "" {
		return j.Import.FileName
	}
	return "(unnamed " + string(j.Format) + " file)"
}

// uploadForm is the first step of an import.
type uploadForm struct {
	Objects   []string
	Object    string
	Ops       []records.Op
	Operation string
	Sheet     string
	HeaderRow string
	// FileName is the name of the file refused.
	FileName string
	// MaxSize is the largest file taken, for people to read.
	MaxSize string
	Errors  fieldErrors
}

func (h *handler) newUploadForm() uploadForm {
	f := uploadForm{Ops: importOps, Operation: string(records.OpInsert), HeaderRow: "1",
		MaxSize: byteSize(h.imports.Limits().FileSize)}
	for _, o := range h.imports.Objects() {
		f.Objects = append(f.Objects, o.Name)
	}
	return f
}

func (h *handler) newImportForm(w http.ResponseWriter, r *http.Request, req *request) error {
	f := h.newUploadForm()
	if q := r.URL.Query().Get("object"); slices.Contains(f.Objects, q) {
		f.Object = q
	}
	h.render(w, r, http.StatusOK, "importnew", req, "New import", f)
	return nil
}

// byteSize writes a size in bytes for people.
func byteSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', -1, 64) + " MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', -1, 64) + " KiB"
	}
	return fmt.Sprintf("%d bytes", n)
}

// maxUploadField caps each field of the upload form but the file.
const maxUploadField = 4 << 10

// uploadImport takes the upload form, a multipart form that signedIn's
// form parsing does not read: it is read here as it streams, the file
// going straight to the importer's spool. The CSRF token is checked
// before any of the file is kept, so it must come before the file, as it
// does in the form.
func (h *handler) uploadImport(w http.ResponseWriter, r *http.Request) {
	req, err := h.identify(w, r)
	if err != nil {
		h.renderFailure(w, r, err)
		return
	}
	if req == nil {
		h.notSignedIn(w, r)
		return
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	mr, err := r.MultipartReader()
	if mt != "multipart/form-data" || err != nil {
		h.renderError(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	form := h.newUploadForm()
	form.HeaderRow = ""
	form.Errors = fieldErrors{}
	var (
		in     = ingest.ImportInput{Mode: ingest.ModePartial}
		up     *ingest.Upload
		csrfOK bool
		refuse error
	)
	defer func() {
		if up != nil {
			_ = up.Close()
		}
	}()
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			refuse = err
			break
		}
		name := p.FormName()
		if name == "file" {
			if !csrfOK {
				h.csrfRefused(w, r, req)
				return
			}
			if up != nil {
				refuse = errors.New("the form holds more than one file")
				break
			}
			in.FileName = path.Base(strings.ReplaceAll(p.FileName(), `\`, "/"))
			if in.FileName == "." || in.FileName == "/" {
				in.FileName = ""
			}
			form.FileName = in.FileName
			if up, err = h.imports.Spool(p); err != nil {
				refuse = err
				break
			}
			continue
		}
		b, err := io.ReadAll(io.LimitReader(p, maxUploadField+1))
		if err != nil {
			refuse = err
			break
		}
		if len(b) > maxUploadField {
			refuse = fmt.Errorf("form field %s is too long", name)
			break
		}
		v := strings.TrimSpace(string(b))
		switch name {
		case "csrf":
			csrfOK = sameToken(v, req.csrf)
		case "object":
			form.Object, in.Object = v, v
		case "operation":
			form.Operation, in.Operation = v, records.Op(v)
		case "sheet":
			form.Sheet, in.Sheet = v, v
		case "header_row":
			form.HeaderRow = v
		}
	}
	if !csrfOK {
		h.csrfRefused(w, r, req)
		return
	}
	if refuse != nil {
		fe, ok := importFormErrors(refuse)
		if !ok {
			// A form the browser could not send whole (a dropped
			// connection): there is no field to blame.
			fe = fieldErrors{"file": "The file did not arrive whole. Choose it and upload it again."}
		}
		h.refuseUpload(w, r, req, form, fe, refuse)
		return
	}
	if !slices.Contains(importOps, in.Operation) {
		form.Errors["operation"] = "Choose insert, update or upsert."
	}
	if form.HeaderRow == "" {
		form.HeaderRow = "1"
	}
	if n, ok := parseHeaderRow(form.HeaderRow); ok {
		in.HeaderRow = n
	} else {
		form.Errors["header_row"] = headerRowMessage
	}
	if up == nil || (up.Size() == 0 && in.FileName == "") {
		form.Errors["file"] = "Choose a file to import."
	}
	if len(form.Errors) > 0 {
		h.render(w, r, http.StatusUnprocessableEntity, "importnew", req, "New import", form)
		return
	}
	// A preview reads the file as the import will: a file that cannot be
	// imported is refused now, beside the file input.
	if _, err := h.imports.Preview(in, up); err != nil {
		fe, ok := importFormErrors(err)
		if !ok {
			h.renderFailure(w, r, err)
			return
		}
		h.refuseUpload(w, r, req, form, fe, err)
		return
	}
	token, err := h.uploads.add(req, in, up)
	if err != nil {
		h.refuseUpload(w, r, req, form, fieldErrors{"file": "The server is busy with other imports' files. Try again in a few minutes."}, err)
		return
	}
	up = nil // kept
	http.Redirect(w, r, h.base+"/imports/uploads/"+token, http.StatusSeeOther)
}

func (h *handler) csrfRefused(w http.ResponseWriter, r *http.Request, req *request) {
	h.log.LogAttrs(r.Context(), slog.LevelWarn, "console: CSRF token missing or wrong",
		slog.String("path", r.URL.Path), slog.String("workspace", req.id.Workspace))
	h.renderError(w, r, http.StatusForbidden, "This form has expired. Go back, reload the page and try again.")
}

// refuseUpload shows the upload form again with why the file was refused.
func (h *handler) refuseUpload(w http.ResponseWriter, r *http.Request, req *request, form uploadForm, fe fieldErrors, err error) {
	if msg, ok := strings.CutPrefix(fe["file"], "This file"); ok && form.FileName != "" {
		// The file input comes back empty: say which file it was.
		fe["file"] = strconv.Quote(form.FileName) + msg
	}
	form.Errors = fe
	status := http.StatusUnprocessableEntity
	var le *ingest.LimitError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &le), errors.As(err, &tooBig):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, errTooManyUploads):
		status = http.StatusServiceUnavailable
	}
	h.render(w, r, status, "importnew", req, "New import", form)
}

// importFields names the inputs of the importer's settings, in the
// messages beside them.
var importFields = map[string]string{
	"object": "Object", "operation": "Operation", "mode": "Mode", "header_row": "Header row",
	"file": "File", "format": "File", "sheet": "Sheet",
}

// importFormErrors turns the importer's refusal of a file or of its
// settings into messages beside the form's inputs: the file's faults
// beside the file, a missing sheet beside the sheet. ok is false for
// errors no form explains.
func importFormErrors(err error) (fe fieldErrors, ok bool) {
	var (
		le      *ingest.LimitError
		tooBig  *http.MaxBytesError
		invalid *records.ValidationError
	)
	switch {
	case errors.As(err, &le):
		return fieldErrors{"file": "This file is too large to import: it is " + le.Error() + "."}, true
	case errors.As(err, &tooBig):
		return fieldErrors{"file": "This file is too large to import: files of up to " + byteSize(tooBig.Limit-maxFormBytes) + " are taken."}, true
	case errors.Is(err, ingest.ErrNoSheet):
		return fieldErrors{"sheet": "The workbook has no such sheet" + sheetList(err) + "."}, true
	case errors.Is(err, ingest.ErrRefused), errors.Is(err, ingest.ErrMalformed):
		return fieldErrors{"file": "This file cannot be imported: " + strings.TrimPrefix(err.Error(), "ingest: ") + "."}, true
	case errors.Is(err, ingest.ErrMapping):
		return fieldErrors{"": "The column mapping does not fit the file: " + strings.TrimPrefix(err.Error(), "ingest: invalid column mapping: ") + "."}, true
	case errors.As(err, &invalid):
		fe = fieldErrors{}
		for _, f := range invalid.Fields {
			name, label := f.Field, importFields[f.Field]
			if f.Field == "format" {
				name = "file"
			}
			if label == "" {
				name, label = "", f.Field
			}
			msg := label + " " + f.Message + "."
			if fe[name] != "" {
				msg = fe[name] + " " + msg
			}
			fe[name] = msg
		}
		return fe, true
	}
	return formErrors(err, nil)
}

// sheetList answers the sheets an ErrNoSheet error lists, as " (sheets:
// …)", or "".
func sheetList(err error) string {
	if _, s, ok := strings.Cut(err.Error(), "(sheets: "); ok {
		return ": it has " + strings.TrimSuffix(s, ")")
	}
	return ""
}

// mappingColumn is one column of the mapping form.
type mappingColumn struct {
	ingest.PreviewColumn
	// Input is the name and id of its select.
	Input string
	// Sample is the column's first value, to recognise it by.
	Sample string
	Error  string
}

// fieldOption is one choice of a column's select.
type fieldOption struct {
	Name  string
	Label string
}

// previewCell is one cell of a preview row: a field's value as it would
// be written, or why its cell does not convert.
type previewCell struct {
	Value string
	Error string
}

type previewRow struct {
	SheetRow int
	Cells    []previewCell
	Failed   bool
}

// mappingData is the mapping page: the columns with their selects, the
// options, and the preview of the first rows as they would be written.
type mappingData struct {
	Token     string
	FileName  string
	Object    string
	Operation string
	Format    ingest.Format
	Sheets    []string
	Sheet     string
	HeaderRow string
	Columns   []mappingColumn
	Fields    []fieldOption
	// Mapped are the columns that fill a field, the preview's columns.
	Mapped       []mappingColumn
	Rows         []previewRow
	Shown        string
	ValidateOnly bool
	AllOrNone    bool
	Expires      time.Time
	Errors       fieldErrors
}

// previewShown is the hidden value that names the sheet and header row the
// mapping form's columns were read from: the selects are those columns'
// only while neither changes.
func previewShown(sheet string, headerRow int) string {
	return strconv.Itoa(headerRow) + ":" + sheet
}

// uploadGone says why an upload's page is not there.
func (h *handler) uploadGone(w http.ResponseWriter, r *http.Request) {
	h.renderError(w, r, http.StatusNotFound, fmt.Sprintf("This upload is no longer kept: an uploaded file is discarded once its import "+
		"starts, or %d minutes after it was last used. Upload the file again from Imports.", int(uploadLifetime.Minutes())))
}

func (h *handler) mappingPage(w http.ResponseWriter, r *http.Request, req *request) error {
	pu, err := h.uploads.use(req, r.PathValue("token"))
	if err != nil {
		h.uploadGone(w, r)
		return nil
	}
	defer pu.mu.Unlock()
	d, err := h.mappingData(pu, fieldErrors{})
	if err != nil {
		fe, ok := importFormErrors(err)
		if !ok {
			return err
		}
		// Back to the file's first sheet, its columns mapped afresh.
		pu.in.Sheet, pu.in.HeaderRow, pu.in.Mapping = "", 1, nil
		if d, err = h.mappingData(pu, fe); err != nil {
			return err
		}
		h.render(w, r, http.StatusUnprocessableEntity, "importmap", req, "Map columns", d)
		return nil
	}
	h.render(w, r, http.StatusOK, "importmap", req, "Map columns", d)
	return nil
}

// mappingData previews the upload with its current settings.
func (h *handler) mappingData(pu *pendingUpload, fe fieldErrors) (mappingData, error) {
	p, err := h.imports.Preview(pu.in, pu.up)
	if err != nil {
		return mappingData{}, err
	}
	// The sheet and header row actually read, so that the mapping posted
	// back is recognised as this one's.
	pu.in.Sheet, pu.in.HeaderRow, pu.columns = p.Sheet, p.HeaderRow, p.Columns
	d := mappingData{Token: pu.token, FileName: pu.in.FileName, Object: pu.in.Object, Operation: string(pu.in.Operation),
		Format: p.Format, Sheets: p.Sheets, Sheet: p.Sheet, HeaderRow: strconv.Itoa(p.HeaderRow),
		Shown: previewShown(p.Sheet, p.HeaderRow), ValidateOnly: pu.in.ValidateOnly,
		AllOrNone: pu.in.Mode == ingest.ModeAllOrNone, Expires: pu.expires, Errors: fe}
	d.Fields = append(d.Fields, fieldOption{Name: ingest.IDField, Label: "id (the record id)"})
	if obj := h.importObject(pu.in.Object); obj != nil {
		for _, f := range obj.Fields {
			label := f.Name
			if f.Name == obj.ExternalID {
				label += " (external id)"
			}
			if f.Required {
				label += " (required)"
			}
			if !f.ReadOnly {
				d.Fields = append(d.Fields, fieldOption{Name: f.Name, Label: label})
			}
		}
	}
	for i, c := range p.Columns {
		mc := mappingColumn{PreviewColumn: c, Input: "col" + strconv.Itoa(i), Error: fe["col"+strconv.Itoa(i)]}
		if len(p.Rows) > 0 {
			mc.Sample = columnValue(p.Rows[0], c)
		}
		d.Columns = append(d.Columns, mc)
		if c.Field != "" {
			d.Mapped = append(d.Mapped, mc)
		}
	}
	for _, row := range p.Rows {
		pr := previewRow{SheetRow: row.SheetRow, Failed: len(row.Errors) > 0}
		for _, c := range d.Mapped {
			cell := previewCell{Value: columnValue(row, c.PreviewColumn)}
			for _, e := range row.Errors {
				if e.Column == c.Header {
					cell.Error = e.Message
				}
			}
			pr.Cells = append(pr.Cells, cell)
		}
		d.Rows = append(d.Rows, pr)
	}
	return d, nil
}

// columnValue answers a row's value of a column, as converted; "" for a
// column that fills no field.
func columnValue(row ingest.PreviewRow, c ingest.PreviewColumn) string {
	switch c.Field {
	case "":
		return ""
	case ingest.IDField:
		return row.ID
	}
	if v, ok := row.Fields[c.Field]; ok {
		return formatValue(v)
	}
	return ""
}

func (h *handler) importObject(name string) *records.Object {
	for _, o := range h.imports.Objects() {
		if o.Name == name {
			return o
		}
	}
	return nil
}

// headerRowMessage answers a header row that is not a row number.
const headerRowMessage = "Give a row number, 1 or more."

// parseHeaderRow reads a header row's number, 1 or more.
func parseHeaderRow(s string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	return n, err == nil && n >= 1
}

// readMapping reads the mapping form into the settings of an import of
// pu, with messages beside the inputs it refuses.
func (h *handler) readMapping(f url.Values, pu *pendingUpload) (ingest.ImportInput, fieldErrors) {
	fe := fieldErrors{}
	in := pu.in
	in.ValidateOnly = f.Get("validate_only") == "true"
	in.Mode = ingest.ModePartial
	if f.Get("all_or_none") == "true" {
		in.Mode = ingest.ModeAllOrNone
	}
	if f.Has("sheet") {
		in.Sheet = strings.TrimSpace(f.Get("sheet"))
	}
	if n, ok := parseHeaderRow(f.Get("header_row")); ok {
		in.HeaderRow = n
	} else {
		fe["header_row"] = headerRowMessage
	}
	if f.Get("shown") != previewShown(in.Sheet, in.HeaderRow) {
		// Another sheet or header row: its columns are mapped afresh.
		in.Mapping = nil
		return in, fe
	}
	// The selects are the columns of the sheet shown: they decide.
	in.Mapping = make(map[string]string, len(pu.columns))
	used := map[string]string{}
	obj := h.importObject(in.Object)
	for i, c := range pu.columns {
		input := "col" + strconv.Itoa(i)
		field := f.Get(input)
		if field != ingest.IDField && !isImportField(obj, field) {
			field = ""
		}
		if other, taken := used[field]; taken && field != "" {
			fe[input] = "Column " + other + " already fills " + field + ": choose another field, or Skip."
		} else if field != "" {
			used[field] = c.Letter
		}
		in.Mapping[c.Header] = field
	}
	return in, fe
}

func (h *handler) mappingAction(w http.ResponseWriter, r *http.Request, req *request) error {
	pu, err := h.uploads.use(req, r.PathValue("token"))
	if err != nil {
		h.uploadGone(w, r)
		return nil
	}
	defer pu.mu.Unlock()
	f := r.PostForm
	if f.Get("action") == "cancel" {
		h.uploads.drop(pu)
		http.Redirect(w, r, h.base+"/imports?notice=import_cancelled", http.StatusSeeOther)
		return nil
	}
	in, fe := h.readMapping(f, pu)
	// The options are kept whatever else is refused.
	pu.in.ValidateOnly, pu.in.Mode = in.ValidateOnly, in.Mode
	if len(fe) > 0 {
		return h.showMapping(w, r, req, pu, fe)
	}
	kept := pu.in
	pu.in = in
	d, err := h.mappingData(pu, fe)
	if err != nil {
		refused, ok := importFormErrors(err)
		if !ok {
			return err
		}
		pu.in = kept
		return h.showMapping(w, r, req, pu, refused)
	}
	if f.Get("action") != "start" {
		h.render(w, r, http.StatusOK, "importmap", req, "Map columns", d)
		return nil
	}
	j, err := h.imports.Start(r.Context(), req.id.Workspace, req.actor(), pu.in, pu.up)
	if err != nil {
		fe, ok := importFormErrors(err)
		if !ok {
			return err
		}
		d.Errors = fe
		h.render(w, r, http.StatusUnprocessableEntity, "importmap", req, "Map columns", d)
		return nil
	}
	h.uploads.drop(pu)
	http.Redirect(w, r, h.base+"/imports/jobs/"+url.PathEscape(j.ID), http.StatusSeeOther)
	return nil
}

// showMapping renders the mapping page with what the form refused beside
// its inputs, keeping in them what was chosen.
func (h *handler) showMapping(w http.ResponseWriter, r *http.Request, req *request, pu *pendingUpload, fe fieldErrors) error {
	d, err := h.mappingData(pu, fe)
	if err != nil {
		return err
	}
	f := r.PostForm
	if f.Get("shown") == d.Shown {
		for i := range d.Columns {
			if f.Has(d.Columns[i].Input) {
				d.Columns[i].Field = f.Get(d.Columns[i].Input)
			}
		}
	}
	if fe["header_row"] != "" {
		d.HeaderRow = f.Get("header_row")
	}
	h.render(w, r, http.StatusUnprocessableEntity, "importmap", req, "Map columns", d)
	return nil
}

// isImportField reports whether an import may fill field of obj; any
// named field when the object is not known here (the importer checks it).
func isImportField(obj *records.Object, field string) bool {
	if obj == nil {
		return field != ""
	}
	return slices.ContainsFunc(obj.Fields, func(f records.Field) bool { return f.Name == field && !f.ReadOnly })
}

// failedPage is how many failed rows the job page lists at a time.
const failedPage = 50

// failedRow is one failed row of an import, as the job page lists it.
type failedRow struct {
	Row, SheetRow int64
	Errors        []string
}

// jobData is an import job's page: its progress and, once it has ended,
// its results.
type jobData struct {
	Job  *ingest.Job
	File string
	// UndoOf is the import an undo job reverses.
	UndoOf *ingest.Job
	Failed []failedRow
	// After is the row the failed rows listed come after; Next the row
	// the next page of them comes after, 0 on the last page.
	After int64
	Next  int64
	// Percent is how far the job is, 0 to 100.
	Percent  int
	Undoable bool
	// Actions sums up what the succeeded rows of a job that ended did,
	// such as "1,099 created, 100 updated"; "" when nothing succeeded.
	Actions string
	Errors  fieldErrors
}

// Max is the progress bar's maximum: the rows, and at least 1.
func (d jobData) Max() int64 { return max(d.Job.Rows, 1) }

// NotProcessed counts the rows a job that ended did not get to.
func (d jobData) NotProcessed() int64 { return max(d.Job.Rows-d.Job.Processed, 0) }

// Running reports whether the job may still move, so the page polls it.
func (d jobData) Running() bool { return !d.Job.State.Terminal() }

// importJobOf answers an import, or an undo of one with the import it
// reverses, of the workspace; other bulk jobs have no page here and are
// not found.
func (h *handler) importJobOf(ctx context.Context, req *request, id string) (j, undoOf *ingest.Job, err error) {
	ws := req.id.Workspace
	if j, err = h.imports.Job(ctx, ws, id); err != nil {
		return nil, nil, err
	}
	switch {
	case j.Import != nil:
		return j, nil, nil
	case j.UndoOf != "":
		if undoOf, err = h.imports.Job(ctx, ws, j.UndoOf); err != nil {
			return nil, nil, err
		}
		if undoOf.Import == nil {
			return nil, nil, fmt.Errorf("console: job %s undoes no import: %w", id, records.ErrNotFound)
		}
		return j, undoOf, nil
	}
	return nil, nil, fmt.Errorf("console: job %s is not an import: %w", id, records.ErrNotFound)
}

// importJob answers the job page's data, with the failed rows after the
// row after.
func (h *handler) importJob(ctx context.Context, req *request, id string, after int64) (jobData, error) {
	ws := req.id.Workspace
	j, undoOf, err := h.importJobOf(ctx, req, id)
	if err != nil {
		return jobData{}, err
	}
	d := jobData{Job: j, UndoOf: undoOf, After: max(after, 0), File: fileName(j)}
	if undoOf != nil {
		d.File = fileName(undoOf)
	}
	switch {
	case j.Rows > 0:
		d.Percent = int(min(j.Processed*100/j.Rows, 100))
	case j.State.Terminal():
		d.Percent = 100
	}
	d.Undoable = j.State == ingest.StateCompleted && j.Import != nil && !j.ValidateOnly && j.Succeeded > 0
	if j.State.Terminal() && j.Succeeded > 0 {
		counts, err := h.imports.Actions(ctx, ws, j.ID)
		if err != nil {
			return jobData{}, err
		}
		d.Actions = actionSummary(counts)
	}
	if j.State.Terminal() && j.Failed > 0 {
		rs, err := h.imports.Results(ctx, ws, j.ID, ingest.RowFailed, d.After, failedPage+1)
		if err != nil {
			return jobData{}, err
		}
		if len(rs) > failedPage {
			rs = rs[:failedPage]
			d.Next = rs[failedPage-1].Row
		}
		for _, r := range rs {
			d.Failed = append(d.Failed, failedRow{Row: r.Row, SheetRow: r.SheetRow, Errors: resultErrors(r.Error)})
		}
	}
	return d, nil
}

// resultErrors answers why a row failed, one message per field.
func resultErrors(e *ingest.ResultError) []string {
	if e == nil {
		return nil
	}
	if len(e.Fields) == 0 {
		return []string{e.Message}
	}
	out := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		out[i] = f.Field + ": " + f.Message
	}
	return out
}

func (h *handler) importJobPage(w http.ResponseWriter, r *http.Request, req *request) error {
	return h.showImportJob(w, r, req, http.StatusOK, nil)
}

func (h *handler) showImportJob(w http.ResponseWriter, r *http.Request, req *request, status int, fe fieldErrors) error {
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	d, err := h.importJob(r.Context(), req, r.PathValue("id"), after)
	if err != nil {
		return err
	}
	d.Errors = fe
	title := "Import"
	if d.UndoOf != nil {
		title = "Undo of an import"
	}
	h.render(w, r, status, "importjob", req, title, d)
	return nil
}

// importProgress is the part of the job page that changes while the job
// runs (progress, then results), which the page polls.
func (h *handler) importProgress(w http.ResponseWriter, r *http.Request, req *request) error {
	d, err := h.importJob(r.Context(), req, r.PathValue("id"), 0)
	if err != nil {
		return err
	}
	return h.renderPart(w, r, req, "importjob", "importProgress", d)
}

// renderPart writes one template of a page, without the layout, for htmx
// to swap in.
func (h *handler) renderPart(w http.ResponseWriter, r *http.Request, req *request, page, name string, data any) error {
	var buf bytes.Buffer
	if err := h.pages.byName[page].ExecuteTemplate(&buf, name, view{Base: h.base, CSRF: req.csrf, Data: data}); err != nil {
		return fmt.Errorf("console: render %s: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = buf.WriteTo(w)
	return nil
}

// failedRowsCSV downloads a job's failed rows: the file's own columns and
// the error.
func (h *handler) failedRowsCSV(w http.ResponseWriter, r *http.Request, req *request) error {
	j, undoOf, err := h.importJobOf(r.Context(), req, r.PathValue("id"))
	if err != nil {
		return err
	}
	if undoOf != nil {
		return fmt.Errorf("console: job %s has no failed rows file: %w", j.ID, records.ErrNotFound)
	}
	file := fileName(j)
	name := strings.TrimSuffix(file, path.Ext(file))
	if name == "" || strings.HasPrefix(name, "(") {
		name = j.ID
	}
	cw := &csvDownload{w: w, name: name + "-failed.csv"}
	if err := h.imports.WriteResultsCSV(r.Context(), cw, j, ingest.RowFailed); err != nil {
		if !cw.started {
			return err
		}
		// Part of the file went out: it cannot become an error page.
		h.log.LogAttrs(r.Context(), slog.LevelError, "console: failed rows download cut short",
			slog.String("job", j.ID), slog.String("error", err.Error()))
		panic(http.ErrAbortHandler)
	}
	if !cw.started {
		cw.start()
	}
	return nil
}

// csvDownload sets the headers of a CSV attachment with its first write,
// so that an error before it can still be shown as a page.
type csvDownload struct {
	w       http.ResponseWriter
	name    string
	started bool
}

func (c *csvDownload) start() {
	c.started = true
	hd := c.w.Header()
	hd.Set("Content-Type", "text/csv; charset=utf-8")
	cd := mime.FormatMediaType("attachment", map[string]string{"filename": c.name})
	if cd == "" {
		cd = "attachment"
	}
	hd.Set("Content-Disposition", cd)
	c.w.WriteHeader(http.StatusOK)
}

func (c *csvDownload) Write(p []byte) (int, error) {
	if !c.started {
		c.start()
	}
	return c.w.Write(p)
}

func (h *handler) undoImport(w http.ResponseWriter, r *http.Request, req *request) error {
	j, _, err := h.importJobOf(r.Context(), req, r.PathValue("id"))
	if err != nil {
		return err
	}
	u, err := h.imports.Undo(r.Context(), req.id.Workspace, j.ID, req.actor())
	if err != nil {
		if errors.Is(err, ingest.ErrJobState) {
			return h.showImportJob(w, r, req, http.StatusConflict, fieldErrors{"": "This import cannot be undone: only a completed import that wrote records can."})
		}
		return err
	}
	http.Redirect(w, r, h.base+"/imports/jobs/"+url.PathEscape(u.ID)+"?notice=undo_queued", http.StatusSeeOther)
	return nil
}

// abortImport stops a queued or running import.
func (h *handler) abortImport(w http.ResponseWriter, r *http.Request, req *request) error {
	j, _, err := h.importJobOf(r.Context(), req, r.PathValue("id"))
	if err != nil {
		return err
	}
	if _, err := h.imports.Abort(r.Context(), req.id.Workspace, j.ID); err != nil {
		if errors.Is(err, ingest.ErrJobState) {
			return h.showImportJob(w, r, req, http.StatusConflict, fieldErrors{"": "This import has already ended, so there is nothing to stop."})
		}
		return err
	}
	http.Redirect(w, r, h.base+"/imports/jobs/"+url.PathEscape(j.ID)+"?notice=import_stopped", http.StatusSeeOther)
	return nil
}

// actionSummary says how many rows had each action, in the order an admin
// reads them, leaving out the actions no row had.
func actionSummary(counts map[string]int64) string {
	var parts []string
	for _, a := range []string{ingest.RowCreated, ingest.RowUpdated, ingest.RowUnchanged, ingest.RowDeleted} {
		if n := counts[a]; n > 0 {
			parts = append(parts, formatCount(n)+" "+a)
		}
	}
	return strings.Join(parts, ", ")
}

// formatCount writes n with a comma between thousands.
func formatCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
