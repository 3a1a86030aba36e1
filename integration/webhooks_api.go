package integration

import (
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/riverqueue/river"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// webhooksFeature is outbound delivery: the endpoint and delivery routes,
// the fan-out and delivery workers, and retention's periodic prune.
func (s *Service) webhooksFeature() feature {
	return feature{
		name:    "webhooks",
		routes:  s.webhookRoutes(),
		schemas: webhookSchemas(),
		jobs: func(w *river.Workers) ([]*river.PeriodicJob, error) {
			if err := s.webhooks.Register(w); err != nil {
				return nil, err
			}
			return s.webhooks.PeriodicJobs(), nil
		},
		tune: s.webhooks.RiverConfig,
	}
}

// newWebhooks builds the outbound delivery service from the Config.
func (s *Service) newWebhooks() (*outbound.Service, error) {
	cfg := s.cfg.Webhooks
	cfg.Store, cfg.Logger, cfg.Clock, cfg.Signer = s.store, s.log, s.clock, s.signer
	cfg.AllowPrivate = cfg.AllowPrivate || s.cfg.AllowPrivateWebhooks
	if cfg.Plans == nil {
		cfg.Plans = s.plans
	}
	// SQLite's one writer and small pool cannot serve a producer per
	// delivery shard; see outbound.Config.DeliveryShards.
	if d, ok := s.store.(interface{ Dialect() string }); ok && d.Dialect() == "sqlite" && cfg.DeliveryShards == 0 {
		cfg.DeliveryShards = 1
	}
	if m := s.metrics; m != nil && cfg.Observe == nil {
		cfg.Observe = func(status string, sinceEvent time.Duration) {
			outcome := status
			if status == outbound.StatusPending {
				outcome = "retrying"
			}
			m.Delivery(outcome, sinceEvent)
		}
	}
	// A pipeline that can name its objects (records.Pipeline can) lets
	// endpoint registration refuse a misspelt object, or a condition on a
	// field the endpoint's objects lack.
	if p, ok := s.pipeline.(interface {
		Object(name string) (*records.Object, bool)
	}); ok {
		if cfg.KnownObject == nil {
			cfg.KnownObject = func(name string) bool { _, ok := p.Object(name); return ok }
		}
		if cfg.KnownField == nil {
			cfg.KnownField = func(object, field string) bool {
				o, ok := p.Object(object)
				return ok && slices.ContainsFunc(o.Fields, func(f records.Field) bool { return f.Name == field })
			}
		}
	}
	return outbound.New(cfg)
}

// Webhooks answers the outbound delivery service: endpoints, deliveries and
// their log, for a host that manages them without the REST API.
func (s *Service) Webhooks() *outbound.Service { return s.webhooks }

// jobsRunning answers errServiceNotStarted unless the job client runs, for
// the routes that enqueue (Start hands the client to the delivery service).
func (s *Service) jobsRunning() error {
	if s.JobClient() == nil {
		return errServiceNotStarted
	}
	return nil
}

var errServiceNotStarted = &requestError{status: http.StatusServiceUnavailable, code: "jobs_not_running",
	detail: "background jobs are not running on this server, so nothing can be sent now"}

func (s *Service) webhookRoutes() []route {
	const tag = "webhooks"
	statusParam := param{name: "status", description: "only deliveries in this status",
		schema: map[string]any{"type": "string", "enum": []string{"pending", "succeeded", "failed"}}}
	return []route{
		{method: "POST", pattern: "/api/v1/webhooks", scope: apikey.ScopeAdmin, handle: s.createWebhook, tag: tag, id: "createWebhook",
			summary: "Register a webhook endpoint; its secret is in this response only", request: "WebhookInput",
			status: 201, response: "WebhookCreated", errors: []int{400, 413, 422}},
		{method: "GET", pattern: "/api/v1/webhooks", scope: apikey.ScopeAdmin, handle: s.listWebhooks, tag: tag, id: "listWebhooks",
			summary: "List the workspace's webhook endpoints", query: []param{limitParam, cursorParam},
			status: 200, response: "WebhookList", errors: []int{400}},
		{method: "GET", pattern: "/api/v1/webhooks/{id}", scope: apikey.ScopeAdmin, handle: s.getWebhook, tag: tag, id: "getWebhook",
			summary: "Get a webhook endpoint", status: 200, response: "Webhook", errors: []int{404}},
		{method: "PATCH", pattern: "/api/v1/webhooks/{id}", scope: apikey.ScopeAdmin, handle: s.updateWebhook, tag: tag, id: "updateWebhook",
			summary: "Change a webhook endpoint; members left out stay as they are, \"condition\": null removes the condition",
			request: "WebhookInput", status: 200, response: "Webhook", errors: []int{400, 404, 413, 422}},
		{method: "DELETE", pattern: "/api/v1/webhooks/{id}", scope: apikey.ScopeAdmin, handle: s.deleteWebhook, tag: tag, id: "deleteWebhook",
			summary: "Delete a webhook endpoint with its delivery log", status: 204, errors: []int{404}},
		{method: "POST", pattern: "/api/v1/webhooks/{id}/rotate-secret", scope: apikey.ScopeAdmin, handle: s.rotateWebhookSecret, tag: tag,
			id: "rotateWebhookSecret", summary: "Issue a new secret; the old one keeps signing for grace_seconds (default a day)",
			request: "WebhookRotate", status: 200, response: "WebhookCreated", errors: []int{400, 404, 413, 422}},
		{method: "POST", pattern: "/api/v1/webhooks/{id}/test", scope: apikey.ScopeAdmin, handle: s.testWebhook, tag: tag, id: "testWebhook",
			summary: "Send a sample webhook.test event now and answer the attempt", status: 200, response: "WebhookTestResult",
			errors: []int{404}},
		{method: "GET", pattern: "/api/v1/webhooks/{id}/deliveries", scope: apikey.ScopeAdmin, handle: s.listDeliveries, tag: tag,
			id: "listWebhookDeliveries", summary: "An endpoint's deliveries with their attempts, newest first",
			query: []param{limitParam, cursorParam, statusParam}, status: 200, response: "DeliveryList", errors: []int{400, 404, 422}},
		{method: "GET", pattern: "/api/v1/deliveries", scope: apikey.ScopeAdmin, handle: s.listDeliveries, tag: tag, id: "listDeliveries",
			summary: "The workspace's deliveries with their attempts, newest first",
			query:   []param{limitParam, cursorParam, statusParam}, status: 200, response: "DeliveryList", errors: []int{400, 422}},
		{method: "GET", pattern: "/api/v1/deliveries/{id}", scope: apikey.ScopeAdmin, handle: s.getDelivery, tag: tag, id: "getDelivery",
			summary: "A delivery with every attempt", status: 200, response: "Delivery", errors: []int{404}},
		{method: "POST", pattern: "/api/v1/deliveries/{id}/redeliver", scope: apikey.ScopeAdmin, handle: s.redeliver, tag: tag, id: "redeliver",
			summary: "Send a delivery again", status: 202, response: "Delivery", errors: []int{404, 422, 503}},
		{method: "POST", pattern: "/api/v1/deliveries/replay", scope: apikey.ScopeAdmin, handle: s.replayDeliveries, tag: tag, id: "replayDeliveries",
			summary: "Send again every failed delivery created since a time", request: "ReplayInput",
			status: 202, response: "ReplayResult", errors: []int{400, 404, 413, 422, 503}},
	}
}

type webhookCreated struct {
	*outbound.Endpoint
	Secret string `json:"secret"`
}

func (s *Service) createWebhook(w http.ResponseWriter, r *http.Request) error {
	var in outbound.EndpointInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	e, secret, err := s.webhooks.Create(r.Context(), workspaceOf(r), in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/webhooks/"+e.ID)
	return writeJSON(w, http.StatusCreated, webhookCreated{Endpoint: e, Secret: secret})
}

func (s *Service) listWebhooks(w http.ResponseWriter, r *http.Request) error {
	return listRoute(func(r *http.Request, cursor string, limit int) ([]*outbound.Endpoint, error) {
		return s.webhooks.List(r.Context(), workspaceOf(r), cursor, limit)
	}, endpointID)(w, r)
}

func endpointID(e *outbound.Endpoint) string { return e.ID }

func (s *Service) getWebhook(w http.ResponseWriter, r *http.Request) error {
	e, err := s.webhooks.Get(r.Context(), workspaceOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, e)
}

func (s *Service) updateWebhook(w http.ResponseWriter, r *http.Request) error {
	e, err := s.webhooks.Update(r.Context(), workspaceOf(r), r.PathValue("id"), func(in *outbound.EndpointInput) error {
		// Decoding onto the current settings leaves absent members as
		// they are, which is what makes this a partial update.
		return s.decode(w, r, in)
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, e)
}

func (s *Service) deleteWebhook(w http.ResponseWriter, r *http.Request) error {
	if err := s.webhooks.Delete(r.Context(), workspaceOf(r), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// defaultSecretGrace is how long a rotated-out secret keeps signing when the
// request does not say: a day lets receivers roll the new one out.
const defaultSecretGrace = 24 * time.Hour

func (s *Service) rotateWebhookSecret(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		GraceSeconds *int64 `json:"grace_seconds"`
	}
	if r.ContentLength != 0 {
		if err := s.decode(w, r, &in); err != nil {
			return err
		}
	}
	grace := defaultSecretGrace
	if in.GraceSeconds != nil {
		if *in.GraceSeconds < 0 || *in.GraceSeconds > int64(maxGrace/time.Second) {
			return errInvalid(records.FieldError{Field: "grace_seconds", Code: "max",
				Message: "must be from 0 to " + strconv.FormatInt(int64(maxGrace/time.Second), 10) + " seconds"})
		}
		grace = time.Duration(*in.GraceSeconds) * time.Second
	}
	e, secret, err := s.webhooks.RotateSecret(r.Context(), workspaceOf(r), r.PathValue("id"), grace)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, webhookCreated{Endpoint: e, Secret: secret})
}

func (s *Service) testWebhook(w http.ResponseWriter, r *http.Request) error {
	a, err := s.webhooks.SendTest(r.Context(), workspaceOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct {
		Succeeded bool `json:"succeeded"`
		*outbound.Attempt
	}{a.Error == "", a})
}

// listDeliveries answers a delivery list, of one endpoint when the route
// names it, newest first.
func (s *Service) listDeliveries(w http.ResponseWriter, r *http.Request) error {
	return listRoute(func(r *http.Request, cursor string, limit int) ([]*outbound.Delivery, error) {
		return s.webhooks.Deliveries(r.Context(), outbound.DeliveryQuery{Workspace: workspaceOf(r),
			EndpointID: r.PathValue("id"), Status: r.URL.Query().Get("status"), Before: cursor, Limit: limit})
	}, func(d *outbound.Delivery) string { return d.ID })(w, r)
}

func (s *Service) getDelivery(w http.ResponseWriter, r *http.Request) error {
	d, err := s.webhooks.Delivery(r.Context(), workspaceOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, d)
}

func (s *Service) redeliver(w http.ResponseWriter, r *http.Request) error {
	if err := s.jobsRunning(); err != nil {
		return err
	}
	d, err := s.webhooks.Redeliver(r.Context(), workspaceOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, d)
}

func (s *Service) replayDeliveries(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Since      *time.Time `json:"since"`
		EndpointID string     `json:"endpoint_id"`
	}
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	if in.Since == nil {
		return errInvalid(records.FieldError{Field: "since", Code: "required", Message: "since is required (RFC 3339)"})
	}
	if err := s.jobsRunning(); err != nil {
		return err
	}
	n, err := s.webhooks.Replay(r.Context(), workspaceOf(r), *in.Since, in.EndpointID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, map[string]int{"replayed": n})
}

func webhookSchemas() map[string]any {
	strList := map[string]any{"type": "array", "items": map[string]any{"type": "string"}}
	condition := obj("Limits the endpoint to writes that changed field to changed_to.", []string{"field", "changed_to"}, map[string]any{
		"field": str("A field of every object the endpoint names.", "example", "stage", "maxLength", outbound.MaxNameLength),
		"changed_to": map[string]any{"description": "The value the field changed to: a string (at most " +
			strconv.Itoa(outbound.MaxConditionValueLength) + " characters), a number, true, false or null.",
			"type": []string{"string", "number", "boolean", "null"}, "example": "Closed Won"},
	})
	return map[string]any{
		"WebhookCondition": condition,
		"Webhook": obj("A webhook endpoint. Its secret is shown only when created or rotated.",
			[]string{"id", "url", "events", "objects", "condition", "description", "enabled", "created_at", "updated_at"}, map[string]any{
				"id":  str("", "example", "whk_01hzy3v6b5q6c8n9d0e1f2g3h4"),
				"url": str("", "format", "uri", "example", "https://finance.example.com/hooks/crm"),
				"events": map[string]any{"type": "array", "items": str("record.created, record.updated, record.deleted, record.* or *"),
					"example": []string{"record.updated"}},
				"objects":                    strList,
				"condition":                  nullable(ref("WebhookCondition")),
				"description":                str(""),
				"enabled":                    map[string]any{"type": "boolean"},
				"created_at":                 dateTime(""),
				"updated_at":                 dateTime(""),
				"previous_secret_expires_at": dateTime("While a rotated-out secret still signs deliveries."),
				"disabled_at":                dateTime(""),
				"disabled_reason":            str("Why the endpoint was disabled: 410 Gone, failing too long, or an administrator."),
				"failing_since":              dateTime("The first failed attempt since the last success."),
			}),
		"WebhookCreated": map[string]any{"allOf": []any{ref("Webhook"), obj("", []string{"secret"}, map[string]any{
			"secret": str("The signing secret. Shown only in this response: store it now.", "example", "whsec_…"),
		})}},
		"WebhookInput": obj("An endpoint's settings; on update, only the members to change.", nil, map[string]any{
			"url":         str("", "format", "uri", "maxLength", outbound.MaxURLLength),
			"events":      map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "maxItems": outbound.MaxEvents},
			"objects":     map[string]any{"type": "array", "items": str("", "maxLength", outbound.MaxNameLength), "maxItems": outbound.MaxObjects},
			"condition":   nullable(ref("WebhookCondition")),
			"description": str("", "maxLength", outbound.MaxDescriptionLength),
			"enabled":     map[string]any{"type": "boolean", "default": true},
		}),
		"WebhookRotate": obj("How long the old secret keeps signing.", nil, map[string]any{
			"grace_seconds": map[string]any{"type": "integer", "minimum": 0, "default": 86400,
				"description": "Seconds the old secret keeps signing beside the new one; 0 retires it at once."},
		}),
		"WebhookList": list("Webhook"),
		"Attempt": obj("One attempt at a delivery.", []string{"number", "at", "duration_ms", "trigger"}, map[string]any{
			"number":           integer(""),
			"at":               dateTime(""),
			"duration_ms":      integer(""),
			"status_code":      integer("The answer's HTTP status; absent when there was none."),
			"response_headers": obj("", nil, nil, "additionalProperties", strList),
			"response_body":    str("The first 4 KiB of the answer's body."),
			"error":            str("Why the attempt failed."),
			"error_kind":       str("", "enum", []string{"dns", "refused", "timeout", "tls", "redirect", "http_status", "blocked_address", "connection", "network"}),
			"trigger":          str("", "enum", []string{"scheduled", "manual", "replay"}),
		}),
		"WebhookTestResult": map[string]any{"allOf": []any{ref("Attempt"), obj("", []string{"succeeded"}, map[string]any{
			"succeeded": map[string]any{"type": "boolean"},
		})}},
		"Delivery": obj("One event on its way to one endpoint.", []string{"id", "endpoint_id", "event_id", "event_type", "status", "attempt_count", "created_at", "attempts"}, map[string]any{
			"id":              str("", "example", "dlv_01hzy3v6b5q6c8n9d0e1f2g3h4"),
			"endpoint_id":     str(""),
			"event_id":        str("", "example", "evt_01hzy3v6b5q6c8n9d0e1f2g3h4"),
			"event_type":      str("", "example", "record.updated"),
			"status":          str("", "enum", []string{"pending", "succeeded", "failed"}),
			"attempt_count":   integer(""),
			"created_at":      dateTime(""),
			"last_attempt_at": dateTime(""),
			"next_attempt_at": dateTime("When the next automatic attempt is due, while pending."),
			"attempts":        map[string]any{"type": "array", "items": ref("Attempt")},
		}),
		"DeliveryList": list("Delivery"),
		"ReplayInput": obj("Which failed deliveries to send again.", []string{"since"}, map[string]any{
			"since":       dateTime("Failed deliveries created at or after this time."),
			"endpoint_id": str("Only this endpoint's."),
		}),
		"ReplayResult": obj("", []string{"replayed"}, map[string]any{"replayed": integer("How many deliveries were queued again.")}),
	}
}
