package integration

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/riverqueue/river"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/connector"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// connectorsAPI is pull connectors: their routes, runs and schedules.
type connectorsAPI struct {
	s   *Service
	svc *connector.Service
}

// connectorsFeature wires pull connectors onto the service's store and
// pipeline. Private targets are allowed with private webhook targets
// (AllowPrivateWebhooks), and a refusal names the reference server's flag.
func (s *Service) connectorsFeature() feature {
	cfg := s.cfg.Connectors
	cfg.Store, cfg.Pipeline, cfg.Objects = s.store, s.pipeline, s.mappingObjects()
	cfg.Client, cfg.Clock, cfg.Logger, cfg.Observe = s.JobClient, s.clock, s.log, s.metrics.ConnectorRun
	cfg.HTTP.AllowPrivate = cfg.HTTP.AllowPrivate || s.cfg.AllowPrivateWebhooks
	if cfg.HTTP.OptInHint == "" {
		cfg.HTTP.OptInHint = outbound.OptInHint
	}
	if s.cfg.Pipeline == nil && cfg.Lookup == nil {
		cfg.Lookup = s.store.GetRecordByExternalID
	}
	svc, err := connector.New(cfg)
	if err != nil {
		// Every required member is set above; this cannot fail.
		panic(err)
	}
	s.connectors = svc
	a := &connectorsAPI{s: s, svc: svc}
	return feature{
		name:    "connectors",
		routes:  a.routes(),
		schemas: connectorSchemas(),
		jobs: func(w *river.Workers) ([]*river.PeriodicJob, error) {
			if err := svc.Register(w); err != nil {
				return nil, err
			}
			svc.Watch()
			return svc.PeriodicJobs(context.Background()), nil
		},
		tune: svc.RiverConfig,
	}
}

func (a *connectorsAPI) routes() []route {
	const tag = "connectors"
	return []route{
		{method: "POST", pattern: "/api/v1/connectors", scope: apikey.ScopeAdmin, handle: a.create, tag: tag, id: "createConnector",
			summary: "Create a pull connector; header values are never shown back", request: "ConnectorInput",
			status: 201, response: "Connector", errors: []int{400, 413, 422}},
		{method: "GET", pattern: "/api/v1/connectors", scope: apikey.ScopeAdmin, handle: a.list, tag: tag, id: "listConnectors",
			summary: "List the workspace's connectors", query: []param{limitParam, cursorParam},
			status: 200, response: "ConnectorList", errors: []int{400}},
		{method: "GET", pattern: "/api/v1/connectors/{id}", scope: apikey.ScopeAdmin, handle: a.get, tag: tag, id: "getConnector",
			summary: "Get a connector (header values redacted)", status: 200, response: "Connector", errors: []int{404}},
		{method: "PATCH", pattern: "/api/v1/connectors/{id}", scope: apikey.ScopeAdmin, handle: a.update, tag: tag, id: "updateConnector",
			summary: "Change a connector: members left out stay; a header given as \"[redacted]\" keeps its value",
			request: "ConnectorInput", status: 200, response: "Connector", errors: []int{400, 404, 413, 422}},
		{method: "DELETE", pattern: "/api/v1/connectors/{id}", scope: apikey.ScopeAdmin, handle: a.delete, tag: tag, id: "deleteConnector",
			summary: "Delete a connector with its run log; the records it wrote stay", status: 204, errors: []int{404}},
		{method: "POST", pattern: "/api/v1/connectors/{id}/run", scope: apikey.ScopeAdmin, handle: a.run, tag: tag, id: "runConnector",
			summary: "Run the connector now", status: 202, response: "ConnectorRunQueued", errors: []int{404, 409, 503}},
		{method: "POST", pattern: "/api/v1/connectors/{id}/preview", scope: apikey.ScopeAdmin, handle: a.preview, tag: tag,
			id: "previewConnector", summary: "Fetch the first page, map it and validate it through the pipeline; nothing is written",
			status: 200, response: "ConnectorPreview", errors: []int{404, 422, 502}},
		{method: "POST", pattern: "/api/v1/connectors/{id}/reset", scope: apikey.ScopeAdmin, handle: a.reset, tag: tag, id: "resetConnector",
			summary: "Move the checkpoint back to incremental.start", status: 200, response: "Connector", errors: []int{404, 409}},
		{method: "GET", pattern: "/api/v1/connectors/{id}/runs", scope: apikey.ScopeAdmin, handle: a.runs, tag: tag, id: "listConnectorRuns",
			summary: "A connector's run log, newest first", query: []param{limitParam, cursorParam},
			status: 200, response: "ConnectorRunList", errors: []int{400, 404}},
		{method: "GET", pattern: "/api/v1/connector-runs/{id}", scope: apikey.ScopeAdmin, handle: a.getRun, tag: tag, id: "getConnectorRun",
			summary: "One run: status, pages, counts, checkpoints before and after, errors", status: 200,
			response: "ConnectorRun", errors: []int{404}},
	}
}

var (
	errRunActive = &requestError{status: http.StatusConflict, code: "run_active",
		detail: "a run of this connector is queued or running; try again when it has finished"}
	errConnectorJobs = &requestError{status: http.StatusServiceUnavailable, code: "jobs_not_running",
		detail: "background jobs are not running on this server, so the connector cannot run now"}
)

// connectorError turns the connector package's errors into the API's.
func connectorError(err error) error {
	var re *connector.RunError
	switch {
	case errors.Is(err, connector.ErrRunActive):
		return errRunActive
	case errors.Is(err, connector.ErrNotStarted):
		return errConnectorJobs
	case errors.As(err, &re):
		return &requestError{status: http.StatusBadGateway, code: re.Code, detail: re.Message}
	}
	return err
}

func (a *connectorsAPI) body(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, a.s.maxBody))
}

func (a *connectorsAPI) create(w http.ResponseWriter, r *http.Request) error {
	b, err := a.body(w, r)
	if err != nil {
		return err
	}
	c, err := a.svc.Create(r.Context(), workspaceOf(r), b)
	if err != nil {
		return connectorError(err)
	}
	w.Header().Set("Location", "/api/v1/connectors/"+c.ID)
	return writeJSON(w, http.StatusCreated, c)
}

func (a *connectorsAPI) list(w http.ResponseWriter, r *http.Request) error {
	return listRoute(func(r *http.Request, cursor string, limit int) ([]*connector.Connector, error) {
		return a.svc.List(r.Context(), workspaceOf(r), cursor, limit)
	}, func(c *connector.Connector) string { return c.ID })(w, r)
}

func (a *connectorsAPI) get(w http.ResponseWriter, r *http.Request) error {
	c, err := a.svc.Get(r.Context(), workspaceOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, c)
}

func (a *connectorsAPI) update(w http.ResponseWriter, r *http.Request) error {
	b, err := a.body(w, r)
	if err != nil {
		return err
	}
	c, err := a.svc.Update(r.Context(), workspaceOf(r), r.PathValue("id"), b)
	if err != nil {
		return connectorError(err)
	}
	return writeJSON(w, http.StatusOK, c)
}

func (a *connectorsAPI) delete(w http.ResponseWriter, r *http.Request) error {
	if err := a.svc.Delete(r.Context(), workspaceOf(r), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *connectorsAPI) run(w http.ResponseWriter, r *http.Request) error {
	run, err := a.svc.Run(r.Context(), workspaceOf(r), r.PathValue("id"))
	if err != nil {
		return connectorError(err)
	}
	w.Header().Set("Location", "/api/v1/connector-runs/"+run.ID)
	return writeJSON(w, http.StatusAccepted, map[string]string{"run_id": run.ID, "status": run.Status})
}

func (a *connectorsAPI) preview(w http.ResponseWriter, r *http.Request) error {
	p, err := a.svc.Preview(r.Context(), workspaceOf(r), r.PathValue("id"))
	if err != nil {
		return connectorError(err)
	}
	return writeJSON(w, http.StatusOK, p)
}

func (a *connectorsAPI) reset(w http.ResponseWriter, r *http.Request) error {
	c, err := a.svc.Reset(r.Context(), workspaceOf(r), r.PathValue("id"))
	if err != nil {
		return connectorError(err)
	}
	return writeJSON(w, http.StatusOK, c)
}

func (a *connectorsAPI) runs(w http.ResponseWriter, r *http.Request) error {
	return listRoute(func(r *http.Request, cursor string, limit int) ([]*connector.Run, error) {
		return a.svc.Runs(r.Context(), workspaceOf(r), r.PathValue("id"), cursor, limit)
	}, func(run *connector.Run) string { return run.ID })(w, r)
}

func (a *connectorsAPI) getRun(w http.ResponseWriter, r *http.Request) error {
	run, err := a.svc.GetRun(r.Context(), workspaceOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, run)
}

func connectorSchemas() map[string]any {
	counts := map[string]any{
		"created":   integer("CRM records created."),
		"updated":   integer("CRM records updated."),
		"unchanged": integer("CRM records whose mapped fields equal what is stored: nothing written."),
		"deleted":   integer("CRM records deleted or flagged after a complete full run."),
		"failed":    integer("Upstream records not written (mapping or validation); see failures."),
		"skipped":   integer("Upstream records the checkpoint already covered."),
	}
	pagination := obj("How pages follow.", []string{"kind"}, map[string]any{
		"kind":         str("", "enum", []string{"cursor", "page", "offset", "link", "none"}),
		"cursor_param": str("cursor: the query parameter that carries the cursor."),
		"next_path":    str("cursor: the dot path of the next cursor in the answer.", "example", "meta.next_cursor"),
		"page_param":   str("page: the query parameter of the page number, from 1."),
		"offset_param": str("offset: the query parameter of the records read so far, from 0."),
		"size_param":   str("The query parameter that carries page_size."),
		"page_size":    integer(""),
	})
	incremental := obj("The field whose greatest value, with the ids at it, is the checkpoint.", []string{"field"}, map[string]any{
		"field": str("", "example", "updated_at"),
		"param": str("The query parameter that sends the checkpoint's value.", "example", "updated_since"),
		"start": str("The checkpoint of a new or reset connector.", "example", "2020-01-01T00:00:00Z"),
	})
	input := map[string]any{
		"name":             str("", "example", "Billing customers"),
		"kind":             str("The poller kind; http unless the host registered others.", "default", "http"),
		"url":              str("", "format", "uri", "example", "https://billing.example/api/customers"),
		"headers":          obj("Sent with every request. Values are never shown back.", nil, nil, "additionalProperties", str("")),
		"records_path":     str("The dot path of the records array in the answer; empty: the answer is the array.", "example", "data"),
		"pagination":       pagination,
		"incremental":      incremental,
		"schedule":         str("every <duration> or a cron expression (UTC); empty: run only on demand.", "example", "every 5m"),
		"mode":             str("", "enum", []string{"incremental", "full"}, "default", "incremental"),
		"deletes":          str("full mode: what a complete run does with records no longer seen.", "enum", []string{"off", "delete", "flag"}, "default", "off"),
		"max_delete_ratio": map[string]any{"type": "number", "default": 0.5, "description": "The largest share of the connector's records one run may delete."},
		"mapping":          ref("InboundMapping"),
		"enabled":          map[string]any{"type": "boolean", "default": true},
	}
	conn := map[string]any{
		"id":            str("", "example", "con_01hzy3v6b5q6c8n9d0e1f2g3h4"),
		"active_run_id": nullable(str("The run queued or running.")),
		"checkpoint":    nullable(obj("Where the next run starts.", nil, map[string]any{"value": str(""), "ids": map[string]any{"type": "array", "items": str("")}})),
		"created_at":    dateTime(""),
		"updated_at":    dateTime(""),
	}
	for k, v := range input {
		conn[k] = v
	}
	runError := obj("Why the run failed.", []string{"code", "message"}, map[string]any{
		"code":        str("", "enum", []string{"fetch_failed", "blocked_address", "plan_limit_exceeded", "invalid_connector", "internal"}),
		"message":     str(""),
		"status_code": integer("The source's HTTP status."),
		"body":        str("The first 4 KiB of the source's answer."),
	})
	failure := obj("An upstream record that was not written.", []string{"page", "index", "code", "message"}, map[string]any{
		"page": integer(""), "index": integer(""), "external_id": str(""), "code": str(""), "message": str(""),
		"target": integer(""), "object": str(""),
		"fields": map[string]any{"type": "array", "items": obj("", nil, map[string]any{"field": str(""), "code": str(""), "message": str("")})},
	})
	run := map[string]any{
		"id":            str("", "example", "run_01hzy3v6b5q6c8n9d0e1f2g3h4"),
		"connector_id":  str(""),
		"trigger":       str("", "enum", []string{"manual", "schedule"}),
		"status":        str("", "enum", []string{"queued", "running", "succeeded", "failed"}),
		"created_at":    dateTime(""),
		"started_at":    dateTime(""),
		"finished_at":   dateTime(""),
		"pages":         integer("Pages committed."),
		"cursor_before": str("The checkpoint the run started from (JSON)."),
		"cursor_after":  str("The checkpoint it ended at (JSON)."),
		"error":         runError,
		"failures":      map[string]any{"type": "array", "items": failure},
		"notes":         map[string]any{"type": "array", "items": str("")},
	}
	for k, v := range counts {
		run[k] = v
	}
	return map[string]any{
		"ConnectorInput": obj("A connector's definition; on update, only the members to change.", nil, input),
		"Connector":      obj("A pull connector. Header values are \"[redacted]\".", []string{"id", "name", "kind", "mapping", "enabled"}, conn),
		"ConnectorList":  list("Connector"),
		"ConnectorRunQueued": obj("", []string{"run_id"}, map[string]any{
			"run_id": str("", "example", "run_01hzy3v6b5q6c8n9d0e1f2g3h4"), "status": str("", "enum", []string{"queued"}),
		}),
		"ConnectorRun":     obj("One run of a connector.", []string{"id", "connector_id", "status"}, run),
		"ConnectorRunList": list("ConnectorRun"),
		"ConnectorPreview": obj("What the first page would become; nothing was written.", []string{"records", "more"}, map[string]any{
			"more":   map[string]any{"type": "boolean"},
			"counts": obj("", nil, counts),
			"error":  runError,
			"records": map[string]any{"type": "array", "items": obj("", []string{"index", "status", "targets"}, map[string]any{
				"index":  integer(""),
				"raw":    obj("The upstream record as fetched.", nil, nil, "additionalProperties", true),
				"status": str("", "enum", []string{"written", "unchanged", "skipped", "failed"}),
				"error":  failure,
				"targets": map[string]any{"type": "array", "items": obj("", []string{"object", "external_id", "fields"}, map[string]any{
					"object": str(""), "external_id": str(""),
					"action": str("", "enum", []string{"created", "updated", "unchanged"}),
					"fields": obj("", nil, nil, "additionalProperties", true),
				})},
			})},
		}),
	}
}
