package integration

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/riverqueue/river"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/ingest"
	"github.com/smartlite/crmkit/records"
)

// bulkAPI is the bulk jobs feature's handlers over its job runner.
type bulkAPI struct {
	s    *Service
	bulk *ingest.Bulk
	err  error // why the runner could not be built; every route answers it
}

// bulkFeature is bulk jobs (section 8.4): the /api/v1/bulk routes, the
// worker that runs jobs through the pipeline on their own River queue, and
// the sweep that resumes jobs whose process died.
func (s *Service) bulkFeature() feature {
	a := s.newBulkAPI(ingest.BulkConfig{})
	s.bulk = a.bulk
	f := feature{name: "bulk", routes: a.routes(), schemas: bulkSchemas()}
	if a.bulk != nil {
		f.jobs = func(w *river.Workers) ([]*river.PeriodicJob, error) {
			if err := a.bulk.Register(w); err != nil {
				return nil, err
			}
			return a.bulk.PeriodicJobs(), nil
		}
		f.tune = a.bulk.RiverConfig
	}
	return f
}

// newBulkAPI builds the runner from cfg, filling in the service's store,
// pipeline, logger, clock and metrics.
func (s *Service) newBulkAPI(cfg ingest.BulkConfig) *bulkAPI {
	cfg.Store, cfg.Pipeline, cfg.Logger, cfg.Clock = s.store, s.pipeline, s.log, s.clock
	if cfg.OnRows == nil {
		cfg.OnRows = s.metrics.BulkRows
	}
	b, err := ingest.NewBulk(cfg)
	return &bulkAPI{s: s, bulk: b, err: err}
}

func (a *bulkAPI) routes() []route {
	const tag = "bulk"
	h := func(fn func(w http.ResponseWriter, r *http.Request) error) func(w http.ResponseWriter, r *http.Request) error {
		return func(w http.ResponseWriter, r *http.Request) error {
			if a.err != nil {
				return a.err
			}
			return bulkError(fn(w, r))
		}
	}
	statusParam := param{name: "status", description: "only results of this status",
		schema: map[string]any{"type": "string", "enum": []string{ingest.RowSucceeded, ingest.RowFailed}}}
	return []route{
		{method: "POST", pattern: "/api/v1/bulk/jobs", scope: apikey.ScopeBulk, handle: h(a.create), tag: tag, id: "createBulkJob",
			summary: "Open a bulk job; upload its rows, then close it", request: "BulkJobInput",
			status: 201, response: "BulkJob", errors: []int{400, 413, 422}},
		{method: "GET", pattern: "/api/v1/bulk/jobs", scope: apikey.ScopeBulk, handle: h(a.list), tag: tag, id: "listBulkJobs",
			summary: "List the workspace's bulk jobs, oldest first", query: []param{limitParam, cursorParam},
			status: 200, response: "BulkJobList", errors: []int{400}},
		{method: "GET", pattern: "/api/v1/bulk/jobs/{id}", scope: apikey.ScopeBulk, handle: h(a.get), tag: tag, id: "getBulkJob",
			summary: "A bulk job with its live counts", status: 200, response: "BulkJob", errors: []int{404}},
		{method: "PUT", pattern: "/api/v1/bulk/jobs/{id}/data", scope: apikey.ScopeBulk, handle: h(a.upload), tag: tag, id: "uploadBulkData",
			summary: "Upload the job's rows (JSON array, NDJSON or CSV, as the job's format says), streamed; replaces an earlier upload",
			status:  200, response: "BulkJob", errors: []int{400, 404, 409, 413}},
		{method: "POST", pattern: "/api/v1/bulk/jobs/{id}/close", scope: apikey.ScopeBulk, handle: h(a.close), tag: tag, id: "closeBulkJob",
			summary: "End the upload and queue the job to run", status: 202, response: "BulkJob", errors: []int{404, 409}},
		{method: "POST", pattern: "/api/v1/bulk/jobs/{id}/abort", scope: apikey.ScopeBulk, handle: h(a.abort), tag: tag, id: "abortBulkJob",
			summary: "Stop an open, queued or running job; rows already committed stay", status: 200, response: "BulkJob",
			errors: []int{404, 409}},
		{method: "GET", pattern: "/api/v1/bulk/jobs/{id}/results", scope: apikey.ScopeBulk, handle: h(a.results), tag: tag, id: "listBulkResults",
			summary: "Per-row results in row order; with Accept: text/csv, every result as CSV with the input columns",
			query:   []param{limitParam, cursorParam, statusParam}, status: 200, response: "BulkResultList", errors: []int{400, 404}},
		{method: "POST", pattern: "/api/v1/bulk/jobs/{id}/undo", scope: apikey.ScopeBulk, handle: h(a.undo), tag: tag, id: "undoBulkJob",
			summary: "Reverse a completed job through the pipeline, as a new job", status: 202, response: "BulkJob",
			errors: []int{404, 409}},
	}
}

// bulkError turns the runner's state and data errors into their problems.
func bulkError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ingest.ErrJobState):
		return &requestError{status: http.StatusConflict, code: "invalid_state", detail: strings.TrimPrefix(err.Error(), "ingest: ")}
	case errors.Is(err, ingest.ErrBadData):
		return errBadRequest("invalid_data", err.Error())
	}
	return err
}

func (a *bulkAPI) actor(r *http.Request) records.Actor {
	return records.Actor{Kind: "api_key", ID: keyIDOf(r)}
}

func (a *bulkAPI) create(w http.ResponseWriter, r *http.Request) error {
	var in ingest.JobInput
	if err := a.s.decode(w, r, &in); err != nil {
		return err
	}
	j, err := a.bulk.Create(r.Context(), workspaceOf(r), a.actor(r), in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/bulk/jobs/"+j.ID)
	return writeJSON(w, http.StatusCreated, j)
}

func (a *bulkAPI) list(w http.ResponseWriter, r *http.Request) error {
	return listRoute(func(r *http.Request, cursor string, limit int) ([]*ingest.Job, error) {
		return a.bulk.List(r.Context(), workspaceOf(r), cursor, limit)
	}, func(j *ingest.Job) string { return j.ID })(w, r)
}

func (a *bulkAPI) get(w http.ResponseWriter, r *http.Request) error {
	j, err := a.bulk.Get(r.Context(), workspaceOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, j)
}

func (a *bulkAPI) upload(w http.ResponseWriter, r *http.Request) error {
	body := http.MaxBytesReader(w, r.Body, a.bulk.MaxUploadBytes())
	j, err := a.bulk.Upload(r.Context(), workspaceOf(r), r.PathValue("id"), body)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, j)
}

func (a *bulkAPI) close(w http.ResponseWriter, r *http.Request) error {
	j, err := a.bulk.Close(r.Context(), workspaceOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, j)
}

func (a *bulkAPI) abort(w http.ResponseWriter, r *http.Request) error {
	j, err := a.bulk.Abort(r.Context(), workspaceOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, j)
}

func (a *bulkAPI) undo(w http.ResponseWriter, r *http.Request) error {
	j, err := a.bulk.Undo(r.Context(), workspaceOf(r), r.PathValue("id"), a.actor(r))
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/bulk/jobs/"+j.ID)
	return writeJSON(w, http.StatusAccepted, j)
}

func (a *bulkAPI) results(w http.ResponseWriter, r *http.Request) error {
	status := r.URL.Query().Get("status")
	switch status {
	case "", ingest.RowSucceeded, ingest.RowFailed:
	default:
		return errBadRequest("invalid_parameter", "status must be succeeded or failed")
	}
	ws, id := workspaceOf(r), r.PathValue("id")
	if strings.Contains(r.Header.Get("Accept"), "text/csv") {
		j, err := a.bulk.Get(r.Context(), ws, id)
		if err != nil {
			return err
		}
		h := w.Header()
		h.Set("Content-Type", "text/csv; charset=utf-8")
		h.Set("Content-Disposition", `attachment; filename="`+j.ID+`-results.csv"`)
		h.Set("X-Content-Type-Options", "nosniff")
		// Written as read: once the first byte is out, a failure can only
		// cut the body short, which the missing final newline shows.
		return a.bulk.WriteResultsCSV(r.Context(), w, j, status)
	}
	return listRoute(func(r *http.Request, cursor string, limit int) ([]ingest.RowResult, error) {
		var after int64
		if cursor != "" {
			n, err := strconv.ParseInt(cursor, 10, 64)
			if err != nil || n < 0 {
				return nil, errBadRequest("invalid_parameter", "cursor must be the next_cursor of a previous page")
			}
			after = n
		}
		return a.bulk.Results(r.Context(), ws, id, status, after, limit)
	}, func(rr ingest.RowResult) string { return strconv.FormatInt(rr.Row, 10) })(w, r)
}

func bulkSchemas() map[string]any {
	return map[string]any{
		"BulkJobInput": obj("A new bulk job.", []string{"object", "operation"}, map[string]any{
			"object":        str("The object the rows write.", "example", "opportunity"),
			"operation":     str("insert; update (rows name id); upsert (by the object's external id field); delete (rows name id)", "enum", []string{"insert", "update", "upsert", "delete"}),
			"mode":          str("partial: each row succeeds or fails alone; all_or_none: nothing is written if any row fails", "enum", []string{"partial", "all_or_none"}, "default", "partial"),
			"validate_only": map[string]any{"type": "boolean", "default": false, "description": "Run every step, rules and plan limits included, and roll back: the results are those a real run would give."},
			"format":        str("json: an array of rows; ndjson: a row per line; csv: a header of field names, then a row per line", "enum", []string{"json", "ndjson", "csv"}, "default", "json"),
		}),
		"BulkJob": obj("A bulk job and its live counts.", []string{"id", "object", "operation", "mode", "validate_only", "format", "state",
			"rows", "processed", "succeeded", "failed", "created_at", "started_at", "finished_at", "error"}, map[string]any{
			"id":            str("", "example", "job_01hzy3v6b5q6c8n9d0e1f2g3h4"),
			"object":        str(""),
			"operation":     str("", "enum", []string{"insert", "update", "upsert", "delete", "undo"}),
			"mode":          str("", "enum", []string{"partial", "all_or_none"}),
			"validate_only": map[string]any{"type": "boolean"},
			"format":        str("xlsx for a spreadsheet import", "enum", []string{"json", "ndjson", "csv", "xlsx"}),
			"state":         str("", "enum", []string{"open", "queued", "running", "completed", "failed", "aborted"}),
			"rows":          integer("Data rows uploaded."),
			"processed":     integer("Rows with a result."),
			"succeeded":     integer(""),
			"failed":        integer(""),
			"created_at":    dateTime(""),
			"started_at":    nullable(dateTime("")),
			"finished_at":   nullable(dateTime("")),
			"error":         str("Why the job failed as a whole; empty otherwise."),
			"undo_of":       str("The job an undo job reverses."),
			"import": obj("How an import job reads its file.", []string{"header_row", "columns", "mapping", "unmapped"}, map[string]any{
				"file_name":  str(""),
				"sheet":      str("The sheet read (xlsx)."),
				"header_row": integer(""),
				"columns":    map[string]any{"type": "array", "items": str("")},
				"mapping":    map[string]any{"type": "object", "additionalProperties": str(""), "description": "Every column's field; empty for a column not imported."},
				"unmapped":   map[string]any{"type": "array", "items": str("")},
			}),
		}),
		"BulkJobList": list("BulkJob"),
		"BulkRowError": obj("Why a row failed.", []string{"code", "message"}, map[string]any{
			"code": str("validation_failed, plan_limit_exceeded, duplicate, version_conflict, not_found, malformed_row, " +
				"not_written (an all-or-none job wrote nothing), changed_since and not_undoable (undo)"),
			"message": str(""),
			"fields":  map[string]any{"type": "array", "items": ref("FieldError")},
		}),
		"BulkResult": obj("The outcome of one data row (1-based; a CSV header is not counted).", []string{"row", "status"}, map[string]any{
			"row":       integer(""),
			"sheet_row": integer("Imports: the row number the spreadsheet shows."),
			"status":    str("", "enum", []string{"succeeded", "failed"}),
			"record_id": str(""),
			"action":    str("", "enum", []string{"created", "updated", "unchanged", "deleted"}),
			"error":     ref("BulkRowError"),
		}),
		"BulkResultList": list("BulkResult"),
	}
}
