package integration

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/ingest"
	"github.com/smartlite/crmkit/records"
)

// importsAPI is spreadsheet import (section 8.5): a file upload in front
// of bulk jobs. The job it starts is run by the bulk feature's worker and
// read through the /api/v1/bulk/jobs routes like any other.
type importsAPI struct {
	s   *Service
	im  *ingest.Importer
	err error
}

// importsFeature is the /api/v1/imports routes. It works no jobs of its
// own: an import is a bulk job.
func (s *Service) importsFeature() feature {
	a := &importsAPI{s: s}
	cfg := s.cfg.Imports
	cfg.Bulk, a.err = ingest.NewBulk(ingest.BulkConfig{Store: s.store, Pipeline: s.pipeline, Logger: s.log, Clock: s.clock})
	if a.err == nil {
		a.im, a.err = ingest.NewImporter(cfg)
	}
	if a.err == nil {
		s.importer = a.im
	}
	return feature{name: "imports", routes: a.routes(), schemas: importSchemas()}
}

func (a *importsAPI) routes() []route {
	const tag = "imports"
	h := func(fn func(w http.ResponseWriter, r *http.Request) error) func(w http.ResponseWriter, r *http.Request) error {
		return func(w http.ResponseWriter, r *http.Request) error {
			if a.err != nil {
				return a.err
			}
			return importError(fn(w, r))
		}
	}
	return []route{
		{method: "POST", pattern: "/api/v1/imports", scope: apikey.ScopeBulk, handle: h(a.create), tag: tag, id: "createImport",
			summary: "Import an .xlsx or .csv file (multipart/form-data: file, object, operation, mode, validate_only, sheet, header_row, mapping) as a bulk job",
			status:  201, response: "BulkJob", errors: []int{400, 413, 422}},
		{method: "POST", pattern: "/api/v1/imports/preview", scope: apikey.ScopeBulk, handle: h(a.preview), tag: tag, id: "previewImport",
			summary: "The columns, mapping and first rows of an import as they would convert (same form as createImport); nothing is written",
			status:  200, response: "ImportPreview", errors: []int{400, 413, 422}},
	}
}

// importError turns the importer's refusals into their problems: a file
// over a limit is 413 naming the limit, any other refused or unreadable
// file 422, a mapping that does not fit the file 422.
func importError(err error) error {
	var le *ingest.LimitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &le):
		return &requestError{status: http.StatusRequestEntityTooLarge, code: "file_too_large",
			detail: "the file is " + le.Error()}
	case errors.Is(err, ingest.ErrRefused), errors.Is(err, ingest.ErrMalformed):
		return &requestError{status: http.StatusUnprocessableEntity, code: "file_refused", detail: strings.TrimPrefix(err.Error(), "ingest: ")}
	case errors.Is(err, ingest.ErrMapping):
		return &requestError{status: http.StatusUnprocessableEntity, code: "invalid_mapping", detail: strings.TrimPrefix(err.Error(), "ingest: ")}
	}
	return err
}

// maxFormValue caps each form field other than the file.
const maxFormValue = 1 << 20

// form reads the multipart form as it streams: the file part is spooled
// to a temporary file (within the file size limit), every other part is a
// short value. Close the answered upload.
func (a *importsAPI) form(w http.ResponseWriter, r *http.Request) (ingest.ImportInput, *ingest.Upload, error) {
	var in ingest.ImportInput
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		return in, nil, &requestError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
			detail: "send the file as multipart/form-data, in a part named file"}
	}
	// The file, plus room for the other fields and the parts' headers.
	r.Body = http.MaxBytesReader(w, r.Body, a.im.Limits().FileSize+16*maxFormValue)
	mr, err := r.MultipartReader()
	if err != nil {
		return in, nil, errBadRequest("invalid_form", "the multipart form cannot be read: "+err.Error())
	}
	var up *ingest.Upload
	fail := func(err error) (ingest.ImportInput, *ingest.Upload, error) {
		_ = up.Close()
		return in, nil, err
	}
	var fields []records.FieldError
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(formReadError(err))
		}
		name := p.FormName()
		if name == "file" {
			if up != nil {
				return fail(errBadRequest("invalid_form", "the form holds more than one file"))
			}
			in.FileName = p.FileName()
			if up, err = a.im.Spool(p); err != nil {
				return fail(formReadError(err))
			}
			continue
		}
		b, err := io.ReadAll(io.LimitReader(p, maxFormValue+1))
		if err != nil {
			return fail(formReadError(err))
		}
		if len(b) > maxFormValue {
			return fail(errBadRequest("invalid_form", "form field "+name+" is longer than 1 MiB"))
		}
		v := strings.TrimSpace(string(b))
		switch name {
		case "object":
			in.Object = v
		case "operation":
			in.Operation = records.Op(v)
		case "mode":
			in.Mode = ingest.Mode(v)
		case "format":
			in.Format = ingest.Format(v)
		case "sheet":
			in.Sheet = v
		case "validate_only":
			if v != "" {
				if in.ValidateOnly, err = strconv.ParseBool(v); err != nil {
					fields = append(fields, records.FieldError{Field: name, Code: "invalid_type", Message: "must be true or false"})
				}
			}
		case "header_row":
			if v != "" {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 {
					fields = append(fields, records.FieldError{Field: name, Code: "min", Message: "must be a row number, 1 or more"})
				}
				in.HeaderRow = n
			}
		case "mapping":
			if v != "" {
				if err := json.Unmarshal(b, &in.Mapping); err != nil {
					fields = append(fields, records.FieldError{Field: name, Code: "invalid_type",
						Message: `must be a JSON object of column headers to field names, {"Column header": "field"}`})
				}
			}
		default:
			fields = append(fields, records.FieldError{Field: name, Code: "unknown_field", Message: "is not a field of an import form"})
		}
	}
	if len(fields) > 0 {
		return fail(&records.ValidationError{Fields: fields})
	}
	return in, up, nil
}

// formReadError tells a body over the limit (413) and a file over the
// file size limit from a broken form (400).
func formReadError(err error) error {
	var tooBig *http.MaxBytesError
	var le *ingest.LimitError
	if errors.As(err, &tooBig) || errors.As(err, &le) {
		return err
	}
	return errBadRequest("invalid_form", "the multipart form cannot be read: "+err.Error())
}

func (a *importsAPI) create(w http.ResponseWriter, r *http.Request) error {
	in, up, err := a.form(w, r)
	if err != nil {
		return err
	}
	defer up.Close()
	j, err := a.im.Start(r.Context(), workspaceOf(r), records.Actor{Kind: "api_key", ID: keyIDOf(r)}, in, up)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/bulk/jobs/"+j.ID)
	return writeJSON(w, http.StatusCreated, j)
}

func (a *importsAPI) preview(w http.ResponseWriter, r *http.Request) error {
	in, up, err := a.form(w, r)
	if err != nil {
		return err
	}
	defer up.Close()
	p, err := a.im.Preview(in, up)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

func importSchemas() map[string]any {
	return map[string]any{
		"ImportPreview": obj("What an import of the file would read; nothing is written.",
			[]string{"format", "header_row", "columns", "mapping", "unmapped", "rows"}, map[string]any{
				"format":     str("", "enum", []string{"xlsx", "csv"}),
				"sheet":      str("The sheet read (xlsx)."),
				"sheets":     map[string]any{"type": "array", "items": str("")},
				"header_row": integer("The row holding the column headers."),
				"columns": map[string]any{"type": "array", "items": obj("A column of the file.", []string{"letter", "header", "field"}, map[string]any{
					"letter": str("", "example", "C"),
					"header": str(""),
					"field":  str("The field it fills; empty when the column is not imported."),
				})},
				"mapping":  map[string]any{"type": "object", "additionalProperties": str(""), "description": `{"Column header": "field"} as used`},
				"unmapped": map[string]any{"type": "array", "items": str(""), "description": "Headers of the columns not imported."},
				"rows": map[string]any{"type": "array", "items": obj("A data row as converted.", []string{"row", "sheet_row", "fields", "errors"}, map[string]any{
					"row":       integer("1-based data row."),
					"sheet_row": integer("The row number the spreadsheet shows."),
					"id":        str("The record id the row names, if any."),
					"fields":    map[string]any{"type": "object"},
					"errors": map[string]any{"type": "array", "items": obj("A cell that does not convert.", []string{"column", "cell", "field", "message"}, map[string]any{
						"column":  str("The column's header."),
						"cell":    str("", "example", "C7"),
						"field":   str(""),
						"message": str(""),
					})},
				})},
			}),
	}
}
