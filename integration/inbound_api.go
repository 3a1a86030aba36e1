package integration

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/riverqueue/river"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/ingest"
	"github.com/smartlite/crmkit/mapping"
	"github.com/smartlite/crmkit/records"
)

// inboundAPI is inbound webhooks: the sources, the unauthenticated
// delivery route, the inbound log with its retries, and the processing
// jobs.
type inboundAPI struct {
	s  *Service
	in *ingest.Inbound
}

// inboundFeature wires inbound webhooks onto the service's store and
// pipeline.
func (s *Service) inboundFeature() feature {
	a := &inboundAPI{s: s}
	cfg := ingest.InboundConfig{Store: s.store, Pipeline: s.pipeline, Objects: s.mappingObjects(),
		Clock: s.clock, Logger: s.log, Observe: s.metrics.InboundEvent}
	if s.cfg.Pipeline == nil {
		// The default pipeline writes to the store, whose indexed read by
		// external id answers inside the processing transaction.
		cfg.Lookup = s.store.GetRecordByExternalID
	}
	in, err := ingest.NewInbound(cfg)
	if err != nil {
		// Every required member is set above; this cannot fail.
		panic(err)
	}
	a.in, s.inbound = in, in
	return feature{
		name:    "inbound",
		routes:  a.routes(),
		schemas: inboundSchemas(),
		jobs: func(w *river.Workers) ([]*river.PeriodicJob, error) {
			if err := in.Register(w); err != nil {
				return nil, err
			}
			return in.PeriodicJobs(), nil
		},
		tune: in.RiverConfig,
	}
}

// mappingObjects answers the schema mappings compile against: the
// pipeline's when it names its objects, else the configured objects.
func (s *Service) mappingObjects() mapping.Objects {
	if o, ok := s.pipeline.(mapping.Objects); ok {
		return o
	}
	objs := s.cfg.Objects
	if objs == nil {
		objs = records.DefaultObjects()
	}
	if v, err := records.NewValidator(objs); err == nil {
		return v
	}
	return noObjects{}
}

// noObjects knows no object, so every mapping is refused naming its
// targets' objects.
type noObjects struct{}

func (noObjects) Object(string) (*records.Object, bool) { return nil, false }

func (a *inboundAPI) routes() []route {
	const tag = "inbound"
	statusParam := param{name: "status", description: "only events in this status; duplicate: those delivered more than once",
		schema: map[string]any{"type": "string", "enum": []string{"received", "processed", "failed", "duplicate"}}}
	return []route{
		{method: "POST", pattern: "/api/v1/inbound-sources", scope: apikey.ScopeAdmin, handle: a.create, tag: tag, id: "createInboundSource",
			summary: "Create an inbound webhook source; a generated secret is in this response only", request: "InboundSourceInput",
			status: 201, response: "InboundSourceCreated", errors: []int{400, 413, 422}},
		{method: "GET", pattern: "/api/v1/inbound-sources", scope: apikey.ScopeAdmin, handle: a.list, tag: tag, id: "listInboundSources",
			summary: "List the workspace's inbound sources", query: []param{limitParam, cursorParam},
			status: 200, response: "InboundSourceList", errors: []int{400}},
		{method: "GET", pattern: "/api/v1/inbound-sources/{id}", scope: apikey.ScopeAdmin, handle: a.get, tag: tag, id: "getInboundSource",
			summary: "Get an inbound source (never its secret)", status: 200, response: "InboundSource", errors: []int{404}},
		{method: "PATCH", pattern: "/api/v1/inbound-sources/{id}", scope: apikey.ScopeAdmin, handle: a.update, tag: tag, id: "updateInboundSource",
			summary: "Change a source: members left out stay; replace the mapping, or rotate the secret (the old one verifies for grace_seconds)",
			request: "InboundSourceUpdate", status: 200, response: "InboundSourceCreated", errors: []int{400, 404, 413, 422}},
		{method: "DELETE", pattern: "/api/v1/inbound-sources/{id}", scope: apikey.ScopeAdmin, handle: a.delete, tag: tag, id: "deleteInboundSource",
			summary: "Delete an inbound source with its log", status: 204, errors: []int{404}},
		{method: "POST", pattern: "/api/v1/inbound-sources/{id}/preview", scope: apikey.ScopeAdmin, handle: a.preview, tag: tag,
			id: "previewInboundSource", summary: "Map a sample payload and validate the records it makes; nothing is written",
			request: "InboundPayload", status: 200, response: "InboundPreview", errors: []int{400, 404, 413}},
		{method: "POST", pattern: "/api/v1/inbound/{source_id}", handle: a.receive, tag: tag, id: "receiveInbound",
			summary: "Deliver a signed document to a source (no API key: the source's signature)", request: "InboundPayload",
			status: 202, response: "InboundAccepted", errors: []int{401, 413},
			headers: []param{
				{name: "X-Shopify-Hmac-Sha256", description: "shopify sources: base64 HMAC-SHA256 of the body keyed with the client secret", schema: map[string]any{"type": "string"}},
				{name: "X-Shopify-Webhook-Id", description: "shopify sources: the delivery id duplicates are dropped by", schema: map[string]any{"type": "string"}},
				{name: "webhook-id", description: "standard and smartlite sources: the delivery id duplicates are dropped by", schema: map[string]any{"type": "string"}},
				{name: "webhook-timestamp", description: "standard sources", schema: map[string]any{"type": "string"}},
				{name: "webhook-signature", description: "standard sources: v1,<base64 HMAC-SHA256>", schema: map[string]any{"type": "string"}},
				{name: "X-SmartLite-Signature", description: "smartlite sources: t=<unix seconds>,v1=<hex HMAC-SHA256>", schema: map[string]any{"type": "string"}},
			}},
		{method: "GET", pattern: "/api/v1/inbound-sources/{id}/events", scope: apikey.ScopeAdmin, handle: a.events, tag: tag,
			id: "listInboundSourceEvents", summary: "A source's inbound log, newest first",
			query: []param{limitParam, cursorParam, statusParam}, status: 200, response: "InboundEventList", errors: []int{400, 404, 422}},
		{method: "GET", pattern: "/api/v1/inbound-events", scope: apikey.ScopeAdmin, handle: a.events, tag: tag, id: "listInboundEvents",
			summary: "The workspace's inbound log, newest first", query: []param{limitParam, cursorParam, statusParam},
			status: 200, response: "InboundEventList", errors: []int{400, 422}},
		{method: "GET", pattern: "/api/v1/inbound-events/{id}", scope: apikey.ScopeAdmin, handle: a.event, tag: tag, id: "getInboundEvent",
			summary: "An inbound event with its headers (secrets redacted), raw body and outcome", status: 200, response: "InboundEvent",
			errors: []int{404}},
		{method: "POST", pattern: "/api/v1/inbound-events/{id}/retry", scope: apikey.ScopeAdmin, handle: a.retry, tag: tag,
			id: "retryInboundEvent", summary: "Process an event again with the source's current mapping", status: 202,
			response: "InboundEvent", errors: []int{404, 409}},
		{method: "POST", pattern: "/api/v1/inbound-events/retry", scope: apikey.ScopeAdmin, handle: a.retryAll, tag: tag,
			id: "retryInboundEvents", summary: "Process again every failed event received since a time", request: "InboundRetryInput",
			status: 202, response: "InboundRetryResult", errors: []int{400, 404, 413, 422}},
	}
}

// sourceView is a source as the API shows it: never its secret, except one
// just generated.
type sourceView struct {
	*ingest.InboundSource
	URL    string `json:"url"`
	Secret string `json:"secret,omitempty"`
}

func viewSource(s *ingest.InboundSource, secret string) sourceView {
	return sourceView{InboundSource: s, URL: s.URL(), Secret: secret}
}

func (a *inboundAPI) create(w http.ResponseWriter, r *http.Request) error {
	var in ingest.SourceInput
	if err := a.s.decode(w, r, &in); err != nil {
		return err
	}
	src, secret, err := a.in.CreateSource(r.Context(), workspaceOf(r), in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/inbound-sources/"+src.ID)
	return writeJSON(w, http.StatusCreated, viewSource(src, secret))
}

func (a *inboundAPI) list(w http.ResponseWriter, r *http.Request) error {
	return listRoute(func(r *http.Request, cursor string, limit int) ([]sourceView, error) {
		srcs, err := a.in.Sources(r.Context(), workspaceOf(r), cursor, limit)
		if err != nil {
			return nil, err
		}
		out := make([]sourceView, len(srcs))
		for i, s := range srcs {
			out[i] = viewSource(s, "")
		}
		return out, nil
	}, func(v sourceView) string { return v.ID })(w, r)
}

func (a *inboundAPI) get(w http.ResponseWriter, r *http.Request) error {
	src, err := a.in.Source(r.Context(), workspaceOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, viewSource(src, ""))
}

func (a *inboundAPI) update(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		ingest.SourceInput
		RotateSecret bool   `json:"rotate_secret"`
		GraceSeconds *int64 `json:"grace_seconds"`
	}
	if err := a.s.decode(w, r, &in); err != nil {
		return err
	}
	grace := defaultSecretGrace
	if in.GraceSeconds != nil {
		if *in.GraceSeconds < 0 || *in.GraceSeconds > int64(maxGrace/time.Second) {
			return errInvalid(records.FieldError{Field: "grace_seconds", Code: "max",
				Message: "must be from 0 to " + strconv.FormatInt(int64(maxGrace/time.Second), 10) + " seconds"})
		}
		grace = time.Duration(*in.GraceSeconds) * time.Second
	}
	src, secret, err := a.in.UpdateSource(r.Context(), workspaceOf(r), r.PathValue("id"),
		ingest.SourceUpdate{SourceInput: in.SourceInput, RotateSecret: in.RotateSecret, Grace: grace})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, viewSource(src, secret))
}

func (a *inboundAPI) delete(w http.ResponseWriter, r *http.Request) error {
	if err := a.in.DeleteSource(r.Context(), workspaceOf(r), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *inboundAPI) preview(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.s.maxBody))
	if err != nil {
		return err
	}
	p, err := a.in.Preview(r.Context(), workspaceOf(r), r.PathValue("id"), body)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

var errInboundUnauthenticated = &requestError{status: http.StatusUnauthorized, code: "invalid_signature",
	detail: "unknown or disabled source, or a missing, invalid or expired signature"}

// receive takes a delivery. It answers 401 alike for every refusal, so a
// caller cannot tell a wrong signature from a source that does not exist.
func (a *inboundAPI) receive(w http.ResponseWriter, r *http.Request) error {
	ev, dup, err := a.in.Receive(r.Context(), r.PathValue("source_id"), r.Header, r.Body)
	if errors.Is(err, ingest.ErrUnauthenticated) {
		// The reason never holds a secret or a signature.
		a.s.log.LogAttrs(r.Context(), slog.LevelInfo, "inbound delivery refused",
			slog.String("source_id", r.PathValue("source_id")), slog.String("reason", err.Error()))
		return errInboundUnauthenticated
	}
	if err != nil {
		return err
	}
	if dup {
		return writeJSON(w, http.StatusOK, inboundAccepted{ID: ev.ID, Status: ingest.StatusDuplicate})
	}
	return writeJSON(w, http.StatusAccepted, inboundAccepted{ID: ev.ID, Status: ev.Status})
}

type inboundAccepted struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

func (a *inboundAPI) events(w http.ResponseWriter, r *http.Request) error {
	return listRoute(func(r *http.Request, cursor string, limit int) ([]*ingest.InboundEvent, error) {
		return a.in.Events(r.Context(), ingest.InboundEventQuery{Workspace: workspaceOf(r), SourceID: r.PathValue("id"),
			Status: r.URL.Query().Get("status"), Before: cursor, Limit: limit})
	}, func(e *ingest.InboundEvent) string { return e.ID })(w, r)
}

// eventView is an event with its raw body: as text when it is UTF-8 (JSON
// documents are), else in base64.
type eventView struct {
	*ingest.InboundEvent
	Body       *string `json:"body,omitempty"`
	BodyBase64 []byte  `json:"body_base64,omitempty"`
}

func viewEvent(e *ingest.InboundEvent) eventView {
	v := eventView{InboundEvent: e}
	if utf8.Valid(e.Body) {
		b := string(e.Body)
		v.Body = &b
	} else {
		v.BodyBase64 = e.Body
	}
	return v
}

func (a *inboundAPI) event(w http.ResponseWriter, r *http.Request) error {
	e, err := a.in.Event(r.Context(), workspaceOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, viewEvent(e))
}

var errInboundNotRetryable = &requestError{status: http.StatusConflict, code: "not_retryable",
	detail: "the event is waiting to be processed; retry it once it is processed or failed"}

func (a *inboundAPI) retry(w http.ResponseWriter, r *http.Request) error {
	e, err := a.in.Retry(r.Context(), workspaceOf(r), r.PathValue("id"))
	if errors.Is(err, ingest.ErrNotRetryable) {
		return errInboundNotRetryable
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, e)
}

func (a *inboundAPI) retryAll(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		SourceID string     `json:"source_id"`
		Status   string     `json:"status"`
		Since    *time.Time `json:"since"`
	}
	if err := a.s.decode(w, r, &in); err != nil {
		return err
	}
	if in.Since == nil {
		return errInvalid(records.FieldError{Field: "since", Code: "required", Message: "since is required (RFC 3339)"})
	}
	n, err := a.in.RetryAll(r.Context(), ingest.InboundRequeue{Workspace: workspaceOf(r), SourceID: in.SourceID,
		Status: in.Status, Since: *in.Since})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, map[string]int{"retried": n})
}

func inboundSchemas() map[string]any {
	mappingSchema := obj("A mapping: each target an object, an external id expression and field expressions (expr).", []string{"targets"}, map[string]any{
		"targets": map[string]any{"type": "array", "items": obj("", []string{"object", "fields"}, map[string]any{
			"object":      str("", "example", "opportunity"),
			"external_id": str("Expression of the external id the record is upserted on.", "example", "'shopify-' + string(id)"),
			"fields":      obj("Field name → expression.", nil, nil, "additionalProperties", str("")),
		})},
	})
	written := obj("What one target of the document did.", []string{"object", "action"}, map[string]any{
		"object":      str(""),
		"id":          str("", "example", "rec_01hzy3v6b5q6c8n9d0e1f2g3h4"),
		"external_id": str(""),
		"action":      str("", "enum", []string{"created", "updated", "unchanged", "stale"}),
	})
	fieldErrors := map[string]any{"type": "array", "items": obj("", []string{"field", "code", "message"}, map[string]any{
		"field": str(""), "code": str(""), "message": str(""),
	})}
	inboundError := obj("Why the event failed.", []string{"code", "message"}, map[string]any{
		"code": str("", "enum", []string{"invalid_document", "mapping_failed", "invalid_mapping", "validation_failed",
			"plan_limit_exceeded", "duplicate", "conflict", "not_found", "source_deleted", "internal"}),
		"message": str(""),
		"target":  integer("The index of the mapping's target that failed."),
		"object":  str(""),
		"fields":  fieldErrors,
	})
	source := obj("An inbound webhook source. Its secret is never shown, except when generated.",
		[]string{"id", "name", "kind", "mapping", "enabled", "max_body_bytes", "url", "created_at", "updated_at"}, map[string]any{
			"id":                         str("", "example", "src_01hzy3v6b5q6c8n9d0e1f2g3h4"),
			"name":                       str("", "example", "Shopify orders"),
			"kind":                       str("", "enum", []string{"shopify", "standard", "smartlite"}),
			"mapping":                    ref("InboundMapping"),
			"enabled":                    map[string]any{"type": "boolean"},
			"max_body_bytes":             integer("Deliveries with a larger body are refused with 413."),
			"url":                        str("The path to post deliveries to.", "example", "/api/v1/inbound/src_01hzy3v6b5q6c8n9d0e1f2g3h4"),
			"previous_secret_expires_at": dateTime("While a rotated-out secret still verifies."),
			"created_at":                 dateTime(""),
			"updated_at":                 dateTime(""),
		})
	event := obj("One accepted delivery and what processing made of it.",
		[]string{"id", "source_id", "status", "received_at", "attempts", "duplicates"}, map[string]any{
			"id":           str("", "example", "inb_01hzy3v6b5q6c8n9d0e1f2g3h4"),
			"source_id":    str(""),
			"delivery_id":  str("The sender's delivery id (X-Shopify-Webhook-Id, webhook-id)."),
			"status":       str("", "enum", []string{"received", "processed", "failed"}),
			"headers":      obj("The delivery's headers; signatures and credentials are \"[redacted]\". Not in lists.", nil, nil, "additionalProperties", map[string]any{"type": "array", "items": str("")}),
			"body":         str("The raw body, when it is UTF-8. Not in lists."),
			"body_base64":  str("The raw body in base64, when it is not UTF-8.", "format", "byte"),
			"received_at":  dateTime(""),
			"processed_at": dateTime(""),
			"attempts":     integer("Times the event was processed."),
			"duplicates":   integer("Later deliveries with the same delivery id, answered duplicate and not stored."),
			"written":      map[string]any{"type": "array", "items": written},
			"error":        inboundError,
		})
	return map[string]any{
		"InboundMapping": mappingSchema,
		"InboundSource":  source,
		"InboundSourceCreated": map[string]any{"allOf": []any{ref("InboundSource"), obj("", nil, map[string]any{
			"secret": str("A generated secret, in this response only: store it now.", "example", "whsec_…"),
		})}},
		"InboundSourceInput": obj("A new source.", []string{"name", "kind", "mapping"}, map[string]any{
			"name":           str(""),
			"kind":           str("", "enum", []string{"shopify", "standard", "smartlite"}),
			"secret":         nullable(str("shopify: the app's client secret (required). standard, smartlite: null to generate one.")),
			"mapping":        ref("InboundMapping"),
			"enabled":        map[string]any{"type": "boolean", "default": true},
			"max_body_bytes": integer("Default 1 MiB."),
		}),
		"InboundSourceUpdate": obj("The members to change.", nil, map[string]any{
			"name":           str(""),
			"mapping":        ref("InboundMapping"),
			"enabled":        map[string]any{"type": "boolean"},
			"max_body_bytes": integer(""),
			"secret":         str("A new secret to use (shopify: the new client secret); the old one verifies for grace_seconds."),
			"rotate_secret":  map[string]any{"type": "boolean", "description": "Generate a new secret (standard, smartlite), answered once."},
			"grace_seconds":  map[string]any{"type": "integer", "minimum": 0, "default": 86400},
		}),
		"InboundSourceList": list("InboundSource"),
		"InboundPayload":    obj("The document, as the sender posts it.", nil, nil, "additionalProperties", true),
		"InboundAccepted": obj("", []string{"id", "status"}, map[string]any{
			"id":     str("The event; for a duplicate, the first event with this delivery id.", "example", "inb_01hzy3v6b5q6c8n9d0e1f2g3h4"),
			"status": str("", "enum", []string{"received", "duplicate"}),
		}),
		"InboundWritten":   written,
		"InboundError":     inboundError,
		"InboundEvent":     event,
		"InboundEventList": list("InboundEvent"),
		"InboundPreview": obj("What the sample would become; nothing was written.", []string{"valid", "records"}, map[string]any{
			"valid": map[string]any{"type": "boolean"},
			"records": map[string]any{"type": "array", "items": obj("", []string{"target", "object", "fields"}, map[string]any{
				"target":      integer(""),
				"object":      str(""),
				"external_id": str(""),
				"action":      str("", "enum", []string{"created", "updated", "unchanged", "stale"}),
				"fields":      obj("", nil, nil, "additionalProperties", true),
				"refs":        obj("Fields filled by ref().", nil, nil, "additionalProperties", true),
			})},
			"error": inboundError,
		}),
		"InboundRetryInput": obj("Which events to process again.", []string{"since"}, map[string]any{
			"since":     dateTime("Events received at or after this time."),
			"source_id": str("Only this source's."),
			"status":    str("", "enum", []string{"failed", "processed"}, "default", "failed"),
		}),
		"InboundRetryResult": obj("", []string{"retried"}, map[string]any{"retried": integer("How many events were queued again.")}),
	}
}
