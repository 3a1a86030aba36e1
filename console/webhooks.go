package console

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/webhook/outbound"
)

func (h *handler) webhookRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /webhooks", h.signedIn(h.webhooksPage))
	m.HandleFunc("GET /webhooks/new", h.signedIn(h.newEndpointForm))
	m.HandleFunc("POST /webhooks", h.signedIn(h.createEndpoint))
	m.HandleFunc("GET /webhooks/{id}", h.signedIn(h.endpointPage))
	m.HandleFunc("POST /webhooks/{id}/test", h.signedIn(h.sendTest))
	m.HandleFunc("POST /webhooks/{id}/enabled", h.signedIn(h.setEnabled))
	m.HandleFunc("POST /webhooks/{id}/rotate-secret", h.signedIn(h.rotateSecret))
	m.HandleFunc("POST /webhooks/{id}/replay", h.signedIn(h.replay))
	m.HandleFunc("GET /deliveries/{id}", h.signedIn(h.deliveryPage))
	m.HandleFunc("POST /deliveries/{id}/redeliver", h.signedIn(h.redeliver))
}

// eventTypes are the event checkboxes of the endpoint form.
var eventTypes = []string{records.EventCreated, records.EventUpdated, records.EventDeleted}

// recentDeliveries is how many of an endpoint's latest deliveries its
// failure rate is taken over.
const recentDeliveries = 50

// health sums up how an endpoint has been doing.
type health struct {
	LastSuccess *time.Time
	// Finished and Failed count the recent deliveries that are no longer
	// pending, and those of them that failed.
	Finished, Failed int
}

// FailureRate is the share of recent finished deliveries that failed.
func (hl health) FailureRate() float64 {
	if hl.Finished == 0 {
		return 0
	}
	return float64(hl.Failed) / float64(hl.Finished)
}

// health sums up an endpoint's health from its latest deliveries, newest
// first: all of them when complete, else at least the recentDeliveries
// latest. Only when none of those succeeded is the last success looked up.
func (h *handler) health(ctx context.Context, ws, id string, latest []*outbound.Delivery, complete bool) (health, error) {
	var hl health
	for i, d := range latest {
		if hl.LastSuccess == nil && d.Status == outbound.StatusSucceeded {
			hl.LastSuccess = d.LastAttemptAt
		}
		if i >= recentDeliveries {
			continue
		}
		switch d.Status {
		case outbound.StatusSucceeded:
			hl.Finished++
		case outbound.StatusFailed:
			hl.Finished++
			hl.Failed++
		}
	}
	if hl.LastSuccess != nil || complete {
		return hl, nil
	}
	ok, err := h.webhooks.Deliveries(ctx, outbound.DeliveryQuery{Workspace: ws, EndpointID: id, Status: outbound.StatusSucceeded, Limit: 1})
	if err != nil {
		return hl, err
	}
	if len(ok) > 0 {
		hl.LastSuccess = ok[0].LastAttemptAt
	}
	return hl, nil
}

type endpointRow struct {
	*outbound.Endpoint
	Health health
}

type webhooksData struct {
	Endpoints []endpointRow
	Cursor    string
	Next      string
}

func (h *handler) webhooksPage(w http.ResponseWriter, r *http.Request, req *request) error {
	cursor := r.URL.Query().Get("cursor")
	eps, err := h.webhooks.List(r.Context(), req.id.Workspace, cursor, pageSize+1)
	if err != nil {
		return err
	}
	eps, next := paged(eps, pageSize, func(e *outbound.Endpoint) string { return e.ID })
	d := webhooksData{Cursor: cursor, Next: next}
	for _, e := range eps {
		latest, err := h.webhooks.Deliveries(r.Context(), outbound.DeliveryQuery{Workspace: req.id.Workspace, EndpointID: e.ID, Limit: recentDeliveries})
		if err != nil {
			return err
		}
		hl, err := h.health(r.Context(), req.id.Workspace, e.ID, latest, len(latest) < recentDeliveries)
		if err != nil {
			return err
		}
		d.Endpoints = append(d.Endpoints, endpointRow{Endpoint: e, Health: hl})
	}
	h.render(w, r, http.StatusOK, "webhooks", req, "Webhooks", d)
	return nil
}

type endpointForm struct {
	URL            string
	Events         map[string]bool
	Objects        string
	Description    string
	ConditionField string
	ConditionValue string
	Errors         fieldErrors
}

// EventTypes is what the event checkboxes offer.
func (endpointForm) EventTypes() []string { return eventTypes }

func (h *handler) newEndpointForm(w http.ResponseWriter, r *http.Request, req *request) error {
	h.render(w, r, http.StatusOK, "webhooknew", req, "New webhook endpoint",
		endpointForm{Events: map[string]bool{records.EventUpdated: true}})
	return nil
}

// splitList reads a comma- or space-separated list.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

func (h *handler) createEndpoint(w http.ResponseWriter, r *http.Request, req *request) error {
	f := r.PostForm
	form := endpointForm{
		URL: strings.TrimSpace(f.Get("url")), Events: map[string]bool{}, Objects: f.Get("objects"),
		Description: strings.TrimSpace(f.Get("description")), ConditionField: strings.TrimSpace(f.Get("condition_field")),
		ConditionValue: f.Get("condition_value"),
	}
	in := outbound.EndpointInput{URL: form.URL, Objects: splitList(form.Objects), Description: form.Description}
	for _, e := range f["events"] {
		form.Events[e] = true
		in.Events = append(in.Events, e)
	}
	if form.ConditionField != "" || form.ConditionValue != "" {
		// The value is compared as text: picklist and string fields, which
		// conditions are for, hold text.
		in.Condition = &outbound.Condition{Field: form.ConditionField, ChangedTo: form.ConditionValue}
	}
	e, secret, err := h.webhooks.Create(r.Context(), req.id.Workspace, in)
	if err != nil {
		fe, ok := formErrors(err, map[string]string{"url": "url", "events": "events", "objects": "objects",
			"condition.field": "condition_field", "description": "description"})
		if !ok {
			return err
		}
		form.Errors = fe
		h.render(w, r, formStatus(err), "webhooknew", req, "New webhook endpoint", form)
		return nil
	}
	return h.showEndpoint(w, r, req, http.StatusCreated, endpointExtra{endpoint: e, Secret: secret, Created: true})
}

// formStatus is the status of a page showing err beside a form's fields.
func formStatus(err error) int {
	var invalid *records.ValidationError
	if errors.As(err, &invalid) {
		return http.StatusUnprocessableEntity
	}
	return http.StatusConflict
}

// endpointExtra is what an action adds to the endpoint page it shows.
type endpointExtra struct {
	endpoint *outbound.Endpoint
	// Secret is a new secret, shown this once; Created says it came with a
	// new endpoint rather than a rotation.
	Secret  string
	Created bool
	Test    *outbound.Attempt
	Errors  fieldErrors
	// Grace and Since are the values of the rotate and replay forms.
	Grace string
	Since string
}

type deliveryFilter struct {
	Status string
	Since  string
	Before string
}

type endpointData struct {
	endpointExtra
	Endpoint   *outbound.Endpoint
	Health     health
	Chart      chart
	Filter     deliveryFilter
	Statuses   []string
	Deliveries []*outbound.Delivery
	// Next is the URL of the next page of the log, "" on the last.
	Next string
	// Self is this page's URL with its filters, which htmx refreshes.
	Self string
	// PreviousSecretUntil is when the rotated-out secret stops signing,
	// while it still does.
	PreviousSecretUntil *time.Time
}

func (h *handler) endpointPage(w http.ResponseWriter, r *http.Request, req *request) error {
	return h.showEndpoint(w, r, req, http.StatusOK, endpointExtra{})
}

// sinceLayouts are the time formats the since inputs accept, read as UTC.
var sinceLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339, time.DateOnly}

func parseSince(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, l := range sinceLayouts {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

const sinceFormat = "2006-01-02T15:04"

func (h *handler) showEndpoint(w http.ResponseWriter, r *http.Request, req *request, status int, x endpointExtra) error {
	ctx, ws := r.Context(), req.id.Workspace
	e := x.endpoint
	if e == nil {
		var err error
		if e, err = h.webhooks.Get(ctx, ws, r.PathValue("id")); err != nil {
			return err
		}
	}
	now := h.clock()
	if x.Grace == "" {
		x.Grace = strconv.Itoa(defaultSecretGraceHours)
	}
	if x.Since == "" {
		x.Since = now.UTC().Add(-24 * time.Hour).Format(sinceFormat)
	}
	d := endpointData{endpointExtra: x, Endpoint: e,
		Statuses: []string{outbound.StatusPending, outbound.StatusSucceeded, outbound.StatusFailed}}
	if e.PreviousSecret != "" && e.PreviousSecretExpiresAt != nil && now.Before(*e.PreviousSecretExpiresAt) {
		d.PreviousSecretUntil = e.PreviousSecretExpiresAt
	}
	// The newest deliveries serve the health figures, the unfiltered log's
	// first page and, unless the deliveries are counted, the chart's first
	// page: one read, not three.
	newest := chartPage
	if _, counts := h.webhooks.(DeliveryCounter); counts {
		newest = pageSize + 1
	}
	latest, err := h.webhooks.Deliveries(ctx, outbound.DeliveryQuery{Workspace: ws, EndpointID: e.ID, Limit: newest})
	if err != nil {
		return err
	}
	if d.Health, err = h.health(ctx, ws, e.ID, latest, len(latest) < newest); err != nil {
		return err
	}
	if d.Chart, err = h.chart(ctx, ws, e.ID, now, latest); err != nil {
		return err
	}

	q := r.URL.Query()
	if r.Method == http.MethodGet {
		d.Filter = deliveryFilter{Status: q.Get("status"), Since: q.Get("since"), Before: q.Get("before")}
	}
	if !slices.Contains(d.Statuses, d.Filter.Status) {
		d.Filter.Status = ""
	}
	var since time.Time
	if d.Filter.Since != "" {
		t, ok := parseSince(d.Filter.Since)
		if !ok {
			if d.Errors == nil {
				d.Errors = fieldErrors{}
			}
			d.Errors["filter_since"] = "Give a time as YYYY-MM-DDTHH:MM (UTC)."
		}
		since = t
	}
	ds := latest[:min(len(latest), pageSize+1)]
	if d.Filter.Status != "" || d.Filter.Before != "" {
		ds, err = h.webhooks.Deliveries(ctx, outbound.DeliveryQuery{Workspace: ws, EndpointID: e.ID,
			Status: d.Filter.Status, Before: d.Filter.Before, Limit: pageSize + 1})
		if err != nil {
			return err
		}
	}
	ds, next := paged(ds, pageSize, deliveryID)
	// The log is newest first, so the first delivery older than since ends
	// it.
	if i := slices.IndexFunc(ds, func(d *outbound.Delivery) bool { return d.CreatedAt.Before(since) }); i >= 0 {
		ds, next = ds[:i], ""
	}
	d.Deliveries = ds
	self := url.Values{}
	if d.Filter.Status != "" {
		self.Set("status", d.Filter.Status)
	}
	if d.Filter.Since != "" {
		self.Set("since", d.Filter.Since)
	}
	path := h.base + "/webhooks/" + url.PathEscape(e.ID)
	if next != "" {
		nq := url.Values{}
		for k, v := range self {
			nq[k] = v
		}
		nq.Set("before", next)
		d.Next = path + "?" + nq.Encode()
	}
	if d.Filter.Before != "" {
		self.Set("before", d.Filter.Before)
	}
	d.Self = path
	if len(self) > 0 {
		d.Self += "?" + self.Encode()
	}
	h.render(w, r, status, "webhook", req, "Webhook endpoint", d)
	return nil
}

func (h *handler) sendTest(w http.ResponseWriter, r *http.Request, req *request) error {
	a, err := h.webhooks.SendTest(r.Context(), req.id.Workspace, r.PathValue("id"))
	if err != nil {
		return err
	}
	return h.showEndpoint(w, r, req, http.StatusOK, endpointExtra{Test: a})
}

func (h *handler) endpointURL(id, notice string) string { return h.itemURL("/webhooks/", id, notice) }

func (h *handler) setEnabled(w http.ResponseWriter, r *http.Request, req *request) error {
	on := r.PostForm.Get("enabled") == "true"
	e, err := h.webhooks.Update(r.Context(), req.id.Workspace, r.PathValue("id"), func(in *outbound.EndpointInput) error {
		in.Enabled = &on
		return nil
	})
	if err != nil {
		if fe, ok := formErrors(err, nil); ok {
			return h.showEndpoint(w, r, req, formStatus(err), endpointExtra{Errors: fe})
		}
		return err
	}
	notice := "disabled"
	if e.Enabled {
		notice = "enabled"
	}
	http.Redirect(w, r, h.endpointURL(e.ID, notice), http.StatusSeeOther)
	return nil
}

// defaultSecretGraceHours is how long a rotated-out secret signs unless the
// form says otherwise: a day lets receivers roll the new one out.
const defaultSecretGraceHours = 24

func (h *handler) rotateSecret(w http.ResponseWriter, r *http.Request, req *request) error {
	x := endpointExtra{Grace: r.PostForm.Get("grace_hours")}
	grace, ok := parseGrace(x.Grace)
	if !ok {
		x.Errors = fieldErrors{"grace_hours": graceMessage}
		return h.showEndpoint(w, r, req, http.StatusUnprocessableEntity, x)
	}
	e, secret, err := h.webhooks.RotateSecret(r.Context(), req.id.Workspace, r.PathValue("id"), grace)
	if err != nil {
		fe, ok := formErrors(err, map[string]string{"grace_period": "grace_hours"})
		if !ok {
			return err
		}
		x.Errors = fe
		return h.showEndpoint(w, r, req, formStatus(err), x)
	}
	x.endpoint, x.Secret = e, secret
	return h.showEndpoint(w, r, req, http.StatusOK, x)
}

func (h *handler) replay(w http.ResponseWriter, r *http.Request, req *request) error {
	x := endpointExtra{Since: r.PostForm.Get("since")}
	since, ok := parseSince(x.Since)
	if !ok {
		x.Errors = fieldErrors{"since": "Give a time as YYYY-MM-DDTHH:MM (UTC)."}
		return h.showEndpoint(w, r, req, http.StatusUnprocessableEntity, x)
	}
	id := r.PathValue("id")
	n, err := h.webhooks.Replay(r.Context(), req.id.Workspace, since, id)
	if err != nil {
		fe, ok := formErrors(err, map[string]string{"since": "since", "endpoint_id": ""})
		if !ok {
			return err
		}
		x.Errors = fe
		return h.showEndpoint(w, r, req, formStatus(err), x)
	}
	notice := "replayed"
	if n == 0 {
		notice = "nothing"
	}
	http.Redirect(w, r, h.endpointURL(id, notice), http.StatusSeeOther)
	return nil
}

type deliveryData struct {
	Delivery *outbound.Delivery
	Endpoint *outbound.Endpoint
	Errors   fieldErrors
}

func (h *handler) showDelivery(w http.ResponseWriter, r *http.Request, req *request, status int, fe fieldErrors) error {
	ctx, ws := r.Context(), req.id.Workspace
	d, err := h.webhooks.Delivery(ctx, ws, r.PathValue("id"))
	if err != nil {
		return err
	}
	e, err := h.webhooks.Get(ctx, ws, d.EndpointID)
	if err != nil {
		return err
	}
	h.render(w, r, status, "delivery", req, "Delivery", deliveryData{Delivery: d, Endpoint: e, Errors: fe})
	return nil
}

func (h *handler) deliveryPage(w http.ResponseWriter, r *http.Request, req *request) error {
	return h.showDelivery(w, r, req, http.StatusOK, nil)
}

func (h *handler) redeliver(w http.ResponseWriter, r *http.Request, req *request) error {
	d, err := h.webhooks.Redeliver(r.Context(), req.id.Workspace, r.PathValue("id"))
	if err != nil {
		if fe, ok := formErrors(err, nil); ok {
			return h.showDelivery(w, r, req, formStatus(err), fe)
		}
		return err
	}
	http.Redirect(w, r, h.base+"/deliveries/"+url.PathEscape(d.ID)+"?notice=redelivered", http.StatusSeeOther)
	return nil
}

func deliveryID(d *outbound.Delivery) string { return d.ID }
