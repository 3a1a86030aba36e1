package console

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/smartlite/crmkit/ingest"
	"github.com/smartlite/crmkit/mapping"
	"github.com/smartlite/crmkit/records"
)

// Inbound is what the console needs of inbound webhooks; *ingest.Inbound
// satisfies it.
//
// Every call names a workspace (in the queries too) and answers an error
// wrapping records.ErrNotFound for a source or event that is not one of
// that workspace's. Invalid input is a *records.ValidationError; a mapping
// problem's field is "mapping" followed by a JSON Pointer into the mapping,
// its message naming the target and field.
type Inbound interface {
	// CreateSource stores a new source and answers the secret it
	// generated (standard and smartlite sources given none), shown once;
	// "" when the secret was given.
	CreateSource(ctx context.Context, workspace string, in ingest.SourceInput) (*ingest.InboundSource, string, error)
	// Sources answers up to limit sources with an id after the given one
	// ("" for the first), in id order.
	Sources(ctx context.Context, workspace, after string, limit int) ([]*ingest.InboundSource, error)
	Source(ctx context.Context, workspace, id string) (*ingest.InboundSource, error)
	// UpdateSource changes a source, rotating its secret when asked; a
	// secret it generated is answered, shown once.
	UpdateSource(ctx context.Context, workspace, id string, u ingest.SourceUpdate) (*ingest.InboundSource, string, error)
	// DeleteSource removes a source with its events.
	DeleteSource(ctx context.Context, workspace, id string) error
	// Preview answers what a sample document would become with the
	// source's saved mapping, writing nothing. A document the mapping or
	// the pipeline refuses is a preview with an Error, not an error; a
	// saved mapping that no longer compiles is an error wrapping
	// mapping.ErrInvalidMapping.
	Preview(ctx context.Context, workspace, id string, body []byte) (*ingest.InboundPreview, error)
	// PreviewMapping is Preview with a mapping as edited, not yet saved;
	// one that does not compile is a *records.ValidationError naming its
	// problems.
	PreviewMapping(ctx context.Context, workspace, id string, spec json.RawMessage, body []byte) (*ingest.InboundPreview, error)
	// Events answers up to q.Limit events, without headers and body,
	// newest first, older than the event q.Before when it is set.
	Events(ctx context.Context, q ingest.InboundEventQuery) ([]*ingest.InboundEvent, error)
	// Event answers one event with its redacted headers and body.
	Event(ctx context.Context, workspace, id string) (*ingest.InboundEvent, error)
	// Retry processes an event again with its source's current mapping;
	// one still waiting to be processed is ingest.ErrNotRetryable.
	Retry(ctx context.Context, workspace, id string) (*ingest.InboundEvent, error)
	// RetryAll processes again the failed events q selects and answers
	// how many.
	RetryAll(ctx context.Context, q ingest.InboundRequeue) (int, error)
}

func (h *handler) inboundRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /inbound", h.signedIn(h.sourcesPage))
	m.HandleFunc("GET /inbound/sources/new", h.signedIn(h.newSourceForm))
	m.HandleFunc("POST /inbound/sources", h.signedIn(h.createSource))
	m.HandleFunc("GET /inbound/sources/{id}", h.signedIn(h.sourcePage))
	m.HandleFunc("POST /inbound/sources/{id}/settings", h.signedIn(h.saveSource))
	m.HandleFunc("POST /inbound/sources/{id}/preview", h.signedIn(h.previewSource))
	m.HandleFunc("POST /inbound/sources/{id}/enabled", h.signedIn(h.setSourceEnabled))
	m.HandleFunc("POST /inbound/sources/{id}/rotate-secret", h.signedIn(h.rotateSourceSecret))
	m.HandleFunc("GET /inbound/sources/{id}/delete", h.signedIn(h.deleteSourceForm))
	m.HandleFunc("POST /inbound/sources/{id}/delete", h.signedIn(h.deleteSource))
	m.HandleFunc("GET /inbound/events", h.signedIn(h.inboundLog))
	m.HandleFunc("POST /inbound/events/retry", h.signedIn(h.retryFailed))
	m.HandleFunc("GET /inbound/events/{id}", h.signedIn(h.inboundEventPage))
	m.HandleFunc("POST /inbound/events/{id}/retry", h.signedIn(h.retryEvent))
}

// sourceKinds are the kinds the new source form offers, in order.
var sourceKinds = []sourceKind{
	{Kind: ingest.KindShopify, Label: "Shopify",
		Hint: "Signed with X-Shopify-Hmac-Sha256. Give the app's client secret."},
	{Kind: ingest.KindStandard, Label: "Standard Webhooks",
		Hint: "Signed with webhook-id, webhook-timestamp and webhook-signature. A secret is generated unless you give one (whsec_…)."},
	{Kind: ingest.KindSmartLite, Label: "SmartLite",
		Hint: "Signed with X-SmartLite-Signature, as another SmartLite CRM sends. A secret is generated unless you give one."},
}

type sourceKind struct {
	Kind, Label, Hint string
}

// kindLabel names a kind as the pages do.
func kindLabel(kind string) string {
	for _, k := range sourceKinds {
		if k.Kind == kind {
			return k.Label
		}
	}
	return kind
}

// exampleMapping prefills a new source's mapping: a Shopify order's
// customer becomes an account, the order a won opportunity linked to it.
const exampleMapping = `{
  "targets": [
    {
      "object": "account",
      "external_id": "'shopify-' + string(customer.id)",
      "fields": {
        "name": "customer.first_name + ' ' + customer.last_name"
      }
    },
    {
      "object": "opportunity",
      "external_id": "'shopify-' + string(id)",
      "fields": {
        "name": "'Shopify order ' + name",
        "amount": "float(total_price)",
        "stage": "'Closed Won'",
        "account_id": "ref('account', 'shopify-' + string(customer.id))"
      }
    }
  ]
}`

// sourceRow is a source as the pages show it.
type sourceRow struct {
	*ingest.InboundSource
	// PostURL is the absolute URL senders post deliveries to.
	PostURL string
	// Last is the source's newest event, nil when it has none.
	Last *eventRow
}

// KindLabel names the source's kind.
func (s sourceRow) KindLabel() string { return kindLabel(s.Kind) }

// eventRow is an event as the log shows it.
type eventRow struct {
	*ingest.InboundEvent
	SourceName string
}

// Badge is the class of the event's status badge.
func (e eventRow) Badge() string {
	switch e.Status {
	case ingest.StatusProcessed:
		return "ok"
	case ingest.StatusFailed:
		return "fail"
	}
	return "muted"
}

// StatusLabel names the event's status.
func (e eventRow) StatusLabel() string {
	switch e.Status {
	case ingest.StatusProcessed:
		return "Processed"
	case ingest.StatusFailed:
		return "Failed"
	case ingest.StatusReceived:
		return "Waiting"
	}
	return e.Status
}

// Outcome sums up what the event did, for the log's rows.
func (e eventRow) Outcome() string {
	if e.Error != nil {
		return e.Error.Message
	}
	var parts []string
	for _, w := range e.Written {
		parts = append(parts, w.Object+" "+w.Action)
	}
	return strings.Join(parts, ", ")
}

// ErrorHeadline sums up why the event failed.
func (e eventRow) ErrorHeadline() string { return errorHeadline(e.Error) }

// errorHeadline sums up an event's failure in a sentence. A failure that
// lists its fields is summed up by its code, the fields saying the rest;
// another is its message.
func errorHeadline(f *ingest.InboundError) string {
	if f == nil {
		return ""
	}
	if len(f.Fields) > 0 {
		switch f.Code {
		case "validation_failed":
			return "The record was refused: a field's value is not valid."
		case "mapping_failed":
			return "An expression of the mapping failed on this document."
		case "invalid_mapping":
			return "The source's mapping does not compile any more."
		}
	}
	return f.Message
}

// Retryable reports whether the event may be processed again.
func (e eventRow) Retryable() bool { return e.Status != ingest.StatusReceived }

// origin answers where senders reach the REST API: Config.APIURL when
// set, else the scheme and host the request was made to, which the API
// shares when the host mounts both on one server.
func (h *handler) origin(r *http.Request) string {
	if h.cfg.APIURL != "" {
		return strings.TrimRight(h.cfg.APIURL, "/")
	}
	scheme := "http"
	if r.TLS != nil || h.cfg.SecureCookie {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (h *handler) sourceRow(r *http.Request, s *ingest.InboundSource) sourceRow {
	return sourceRow{InboundSource: s, PostURL: h.origin(r) + s.URL()}
}

type sourcesData struct {
	Sources []sourceRow
	Next    string
}

func (h *handler) sourcesPage(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx, ws := r.Context(), req.id.Workspace
	srcs, err := h.inbound.Sources(ctx, ws, r.URL.Query().Get("cursor"), pageSize+1)
	if err != nil {
		return err
	}
	srcs, next := paged(srcs, pageSize, func(s *ingest.InboundSource) string { return s.ID })
	d := sourcesData{Next: next}
	for _, s := range srcs {
		row := h.sourceRow(r, s)
		last, err := h.inbound.Events(ctx, ingest.InboundEventQuery{Workspace: ws, SourceID: s.ID, Limit: 1})
		if err != nil {
			return err
		}
		if len(last) > 0 {
			row.Last = &eventRow{InboundEvent: last[0], SourceName: s.Name}
		}
		d.Sources = append(d.Sources, row)
	}
	h.render(w, r, http.StatusOK, "inbound", req, "Inbound", d)
	return nil
}

// sourceForm is the new source form, and the name and mapping editor of a
// source's page.
type sourceForm struct {
	Name    string
	Kind    string
	Mapping string
	Errors  fieldErrors
	// Problems lists the mapping's problems one by one.
	Problems []string
}

// Kinds is what the kind radio buttons offer.
func (sourceForm) Kinds() []sourceKind { return sourceKinds }

func (h *handler) newSourceForm(w http.ResponseWriter, r *http.Request, req *request) error {
	h.render(w, r, http.StatusOK, "inboundnew", req, "New inbound source",
		sourceForm{Kind: ingest.KindShopify, Mapping: exampleMapping})
	return nil
}

// sourceFieldLabels start the messages of a source's field errors, which
// the service words after the field's name ("is required").
var sourceFieldLabels = map[string]string{"name": "The name", "kind": "The kind", "secret": "The secret",
	"mapping": "The mapping", "grace_hours": "The grace period"}

// sourceErrors turns a service's refusal of a source into messages beside
// the form's inputs: every problem of the mapping goes beside the mapping,
// listed in problems too. ok is false for errors no form can explain.
func sourceErrors(err error) (fe fieldErrors, problems []string, ok bool) {
	var invalid *records.ValidationError
	if !errors.As(err, &invalid) {
		fe, ok = formErrors(err, nil)
		return fe, nil, ok
	}
	fe = fieldErrors{}
	for _, f := range invalid.Fields {
		name := f.Field
		if name == "mapping" || strings.HasPrefix(name, "mapping/") {
			name = "mapping"
			problems = append(problems, f.Message)
		}
		label, known := sourceFieldLabels[name]
		if !known {
			name, label = "", f.Field
		}
		msg := f.Message
		switch invalidMapping := mapping.ErrInvalidMapping.Error() + ": "; {
		case name == "mapping" && strings.HasPrefix(msg, "target "):
		case name == "mapping" && strings.HasPrefix(msg, invalidMapping):
			msg = "The mapping is not valid: " + strings.TrimPrefix(msg, invalidMapping)
		default:
			msg = label + " " + msg
		}
		if fe[name] != "" {
			fe[name] += "; " + msg
		} else {
			fe[name] = msg
		}
	}
	return fe, problems, true
}

func (h *handler) createSource(w http.ResponseWriter, r *http.Request, req *request) error {
	f := r.PostForm
	form := sourceForm{Name: strings.TrimSpace(f.Get("name")), Kind: f.Get("kind"), Mapping: f.Get("mapping")}
	in := ingest.SourceInput{Name: &form.Name}
	if form.Kind != "" {
		in.Kind = &form.Kind
	}
	if s := strings.TrimSpace(f.Get("secret")); s != "" {
		in.Secret = &s
	}
	if strings.TrimSpace(form.Mapping) != "" {
		in.Mapping = json.RawMessage(form.Mapping)
	}
	src, secret, err := h.inbound.CreateSource(r.Context(), req.id.Workspace, in)
	if err != nil {
		fe, problems, ok := sourceErrors(err)
		if !ok {
			return err
		}
		if in.Secret != nil && fe["secret"] == "" {
			// A secret typed in is not sent back to the browser.
			fe["secret"] = "Paste the secret again: it is not kept when the form is refused."
		}
		form.Errors, form.Problems = fe, problems
		h.render(w, r, formStatus(err), "inboundnew", req, "New inbound source", form)
		return nil
	}
	return h.showSource(w, r, req, http.StatusCreated, sourceExtra{source: src, Secret: secret, Created: true})
}

// sourceExtra is what an action adds to the source page it shows.
type sourceExtra struct {
	source *ingest.InboundSource
	// Secret is a generated secret, shown this once; Created says it came
	// with a new source rather than a rotation.
	Secret  string
	Created bool
	// Edit holds the settings form as posted, when it was refused.
	Edit *sourceForm
	// Sample and Preview are the preview form's sample and its outcome.
	Sample  string
	Preview *previewData
	Errors  fieldErrors
	Grace   string
}

type previewData struct {
	*ingest.InboundPreview
	// Invalid is why the saved mapping could not be applied at all.
	Invalid string
}

// ErrorHeadline sums up why a delivery of the sample would fail.
func (p previewData) ErrorHeadline() string { return errorHeadline(p.Error) }

// RecordFields answers a previewed record's fields in name order.
func (previewData) RecordFields(rec ingest.PreviewRecord) []fieldValue {
	out := make([]fieldValue, 0, len(rec.Fields)+len(rec.Refs))
	for name, v := range rec.Fields {
		if _, ok := rec.Refs[name]; !ok {
			out = append(out, fieldValue{Name: name, Value: formatValue(v)})
		}
	}
	// A reference is shown by what it refers to: the id a dry run gives a
	// record it would create belongs to no record.
	for name, ref := range rec.Refs {
		out = append(out, fieldValue{Name: name, Value: "the " + ref.Object + " with external id " + ref.ExternalID})
	}
	slices.SortFunc(out, func(a, b fieldValue) int { return strings.Compare(a.Name, b.Name) })
	return out
}

type fieldValue struct{ Name, Value string }

type sourceData struct {
	sourceExtra
	Source sourceRow
	Edit   sourceForm
	// Events are the source's latest events.
	Events []eventRow
	// PreviousSecretUntil is when the rotated-out secret stops verifying,
	// while it still does.
	PreviousSecretUntil *time.Time
}

// recentEvents is how many of a source's events its page lists.
const recentEvents = 5

func (h *handler) sourcePage(w http.ResponseWriter, r *http.Request, req *request) error {
	return h.showSource(w, r, req, http.StatusOK, sourceExtra{})
}

func (h *handler) showSource(w http.ResponseWriter, r *http.Request, req *request, status int, x sourceExtra) error {
	ctx, ws := r.Context(), req.id.Workspace
	s := x.source
	if s == nil {
		var err error
		if s, err = h.inbound.Source(ctx, ws, r.PathValue("id")); err != nil {
			return err
		}
	}
	if x.Grace == "" {
		x.Grace = strconv.Itoa(defaultSecretGraceHours)
	}
	d := sourceData{sourceExtra: x, Source: h.sourceRow(r, s)}
	if x.Edit != nil {
		d.Edit = *x.Edit
	} else {
		d.Edit = sourceForm{Name: s.Name, Mapping: formatMapping(s.Mapping)}
	}
	if s.PreviousSecret != "" && s.PreviousSecretExpiresAt != nil && h.clock().Before(*s.PreviousSecretExpiresAt) {
		d.PreviousSecretUntil = s.PreviousSecretExpiresAt
	}
	evs, err := h.inbound.Events(ctx, ingest.InboundEventQuery{Workspace: ws, SourceID: s.ID, Limit: recentEvents})
	if err != nil {
		return err
	}
	for _, e := range evs {
		d.Events = append(d.Events, eventRow{InboundEvent: e, SourceName: s.Name})
	}
	h.render(w, r, status, "inboundsource", req, s.Name, d)
	return nil
}

// formatMapping answers a saved mapping as the editor shows it.
func formatMapping(spec mapping.Spec) string {
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return ""
	}
	return string(b)
}

func (h *handler) sourceURL(id, notice string) string {
	return h.itemURL("/inbound/sources/", id, notice)
}

func (h *handler) saveSource(w http.ResponseWriter, r *http.Request, req *request) error {
	f := r.PostForm
	form := sourceForm{Name: strings.TrimSpace(f.Get("name")), Mapping: f.Get("mapping")}
	u := ingest.SourceUpdate{SourceInput: ingest.SourceInput{Name: &form.Name, Mapping: json.RawMessage(form.Mapping)}}
	if strings.TrimSpace(form.Mapping) == "" {
		form.Errors, form.Problems = fieldErrors{"mapping": "The mapping is required."}, nil
		return h.showSource(w, r, req, http.StatusUnprocessableEntity, sourceExtra{Edit: &form, Sample: f.Get("sample")})
	}
	s, _, err := h.inbound.UpdateSource(r.Context(), req.id.Workspace, r.PathValue("id"), u)
	if err != nil {
		fe, problems, ok := sourceErrors(err)
		if !ok {
			return err
		}
		form.Errors, form.Problems = fe, problems
		return h.showSource(w, r, req, formStatus(err), sourceExtra{Edit: &form, Sample: f.Get("sample")})
	}
	http.Redirect(w, r, h.sourceURL(s.ID, "inbound_saved"), http.StatusSeeOther)
	return nil
}

// previewSource previews the pasted sample with the mapping as the
// editor holds it, saved or not; the page keeps what was typed in both.
func (h *handler) previewSource(w http.ResponseWriter, r *http.Request, req *request) error {
	f := r.PostForm
	x := sourceExtra{Sample: f.Get("sample")}
	form := sourceForm{Name: strings.TrimSpace(f.Get("name")), Mapping: f.Get("mapping")}
	if f.Has("mapping") {
		x.Edit = &form
	}
	if strings.TrimSpace(x.Sample) == "" {
		x.Errors = fieldErrors{"sample": "Paste a sample payload: a JSON document as the sender posts it."}
		return h.showSource(w, r, req, http.StatusUnprocessableEntity, x)
	}
	var p *ingest.InboundPreview
	var err error
	if f.Has("mapping") {
		p, err = h.inbound.PreviewMapping(r.Context(), req.id.Workspace, r.PathValue("id"), json.RawMessage(form.Mapping), []byte(x.Sample))
	} else {
		p, err = h.inbound.Preview(r.Context(), req.id.Workspace, r.PathValue("id"), []byte(x.Sample))
	}
	var invalid *records.ValidationError
	switch {
	case errors.As(err, &invalid):
		form.Errors, form.Problems, _ = sourceErrors(err)
	case errors.Is(err, mapping.ErrInvalidMapping):
		x.Preview = &previewData{Invalid: err.Error()}
	case err != nil:
		return err
	case p.Error != nil && p.Error.Code == "invalid_document":
		x.Errors = fieldErrors{"sample": "The sample is not a JSON object: " + p.Error.Message}
	default:
		x.Preview = &previewData{InboundPreview: p}
	}
	// A preview is shown with 200 whatever it found, so that htmx swaps it
	// in: the page answered the question asked.
	return h.showSource(w, r, req, http.StatusOK, x)
}

func (h *handler) setSourceEnabled(w http.ResponseWriter, r *http.Request, req *request) error {
	on := r.PostForm.Get("enabled") == "true"
	s, _, err := h.inbound.UpdateSource(r.Context(), req.id.Workspace, r.PathValue("id"),
		ingest.SourceUpdate{SourceInput: ingest.SourceInput{Enabled: &on}})
	if err != nil {
		if fe, ok := formErrors(err, nil); ok {
			return h.showSource(w, r, req, formStatus(err), sourceExtra{Errors: fe})
		}
		return err
	}
	notice := "inbound_disabled"
	if s.Enabled {
		notice = "inbound_enabled"
	}
	http.Redirect(w, r, h.sourceURL(s.ID, notice), http.StatusSeeOther)
	return nil
}

func (h *handler) rotateSourceSecret(w http.ResponseWriter, r *http.Request, req *request) error {
	x := sourceExtra{Grace: r.PostForm.Get("grace_hours")}
	grace, ok := parseGrace(x.Grace)
	if !ok {
		x.Errors = fieldErrors{"grace_hours": graceMessage}
		return h.showSource(w, r, req, http.StatusUnprocessableEntity, x)
	}
	u := ingest.SourceUpdate{RotateSecret: true, Grace: grace}
	if s := strings.TrimSpace(r.PostForm.Get("new_secret")); s != "" {
		u.Secret = &s
	}
	s, secret, err := h.inbound.UpdateSource(r.Context(), req.id.Workspace, r.PathValue("id"), u)
	if err != nil {
		fe, _, ok := sourceErrors(err)
		if !ok {
			return err
		}
		if msg, ok := fe["secret"]; ok {
			// The rotate form's secret input is new_secret.
			delete(fe, "secret")
			fe["new_secret"] = msg
		}
		x.Errors = fe
		return h.showSource(w, r, req, formStatus(err), x)
	}
	if secret == "" {
		// A secret given (a shopify app's new client secret) is the
		// sender's already, and is not shown.
		http.Redirect(w, r, h.sourceURL(s.ID, "inbound_secret_replaced"), http.StatusSeeOther)
		return nil
	}
	x.source, x.Secret = s, secret
	return h.showSource(w, r, req, http.StatusOK, x)
}

type deleteSourceData struct {
	Source sourceRow
}

func (h *handler) deleteSourceForm(w http.ResponseWriter, r *http.Request, req *request) error {
	s, err := h.inbound.Source(r.Context(), req.id.Workspace, r.PathValue("id"))
	if err != nil {
		return err
	}
	h.render(w, r, http.StatusOK, "inbounddelete", req, "Delete inbound source", deleteSourceData{Source: h.sourceRow(r, s)})
	return nil
}

func (h *handler) deleteSource(w http.ResponseWriter, r *http.Request, req *request) error {
	if err := h.inbound.DeleteSource(r.Context(), req.id.Workspace, r.PathValue("id")); err != nil {
		return err
	}
	http.Redirect(w, r, h.base+"/inbound?notice=inbound_deleted", http.StatusSeeOther)
	return nil
}

// eventStatuses are the log's status filter's options.
var eventStatuses = []statusOption{
	{ingest.StatusReceived, "Waiting"},
	{ingest.StatusProcessed, "Processed"},
	{ingest.StatusFailed, "Failed"},
	{ingest.StatusDuplicate, "Delivered more than once"},
}

type statusOption struct{ Value, Label string }

type logFilter struct {
	Source string
	Status string
	Before string
}

type inboundLogData struct {
	Filter   logFilter
	Statuses []statusOption
	// Sources are the workspace's sources, for the source filter and the
	// retry form.
	Sources []*ingest.InboundSource
	Events  []eventRow
	// Next is the URL of the next page, "" on the last.
	Next string
	// Since is the retry form's value; Errors its errors.
	Since  string
	Errors fieldErrors
}

// filterSources is how many sources the log's source filter lists; a
// workspace with more filters by the others from a source's page.
const filterSources = 200

func (h *handler) inboundLog(w http.ResponseWriter, r *http.Request, req *request) error {
	return h.showLog(w, r, req, http.StatusOK, inboundLogData{})
}

func (h *handler) showLog(w http.ResponseWriter, r *http.Request, req *request, status int, d inboundLogData) error {
	ctx, ws := r.Context(), req.id.Workspace
	q := r.URL.Query()
	if r.Method == http.MethodGet {
		d.Filter = logFilter{Source: q.Get("source"), Status: q.Get("status"), Before: q.Get("before")}
	}
	if !slices.ContainsFunc(eventStatuses, func(s statusOption) bool { return s.Value == d.Filter.Status }) {
		d.Filter.Status = ""
	}
	d.Statuses = eventStatuses
	if d.Since == "" {
		d.Since = h.clock().UTC().Add(-24 * time.Hour).Format(sinceFormat)
	}
	srcs, err := h.inbound.Sources(ctx, ws, "", filterSources)
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, s := range srcs {
		names[s.ID] = s.Name
	}
	if d.Filter.Source != "" && names[d.Filter.Source] == "" {
		// A source past the filter's list, or another workspace's (which
		// answers not found).
		s, err := h.inbound.Source(ctx, ws, d.Filter.Source)
		if err != nil {
			return err
		}
		srcs, names[s.ID] = append(srcs, s), s.Name
	}
	d.Sources = srcs
	evs, err := h.inbound.Events(ctx, ingest.InboundEventQuery{Workspace: ws, SourceID: d.Filter.Source,
		Status: d.Filter.Status, Before: d.Filter.Before, Limit: pageSize + 1})
	if err != nil {
		return err
	}
	evs, next := paged(evs, pageSize, func(e *ingest.InboundEvent) string { return e.ID })
	for _, e := range evs {
		name, ok := names[e.SourceID]
		if !ok {
			if s, err := h.inbound.Source(ctx, ws, e.SourceID); err == nil {
				name = s.Name
			}
			names[e.SourceID] = name
		}
		d.Events = append(d.Events, eventRow{InboundEvent: e, SourceName: name})
	}
	if next != "" {
		nq := url.Values{}
		if d.Filter.Source != "" {
			nq.Set("source", d.Filter.Source)
		}
		if d.Filter.Status != "" {
			nq.Set("status", d.Filter.Status)
		}
		nq.Set("before", next)
		d.Next = h.base + "/inbound/events?" + nq.Encode()
	}
	h.render(w, r, status, "inboundlog", req, "Inbound log", d)
	return nil
}

func (h *handler) retryFailed(w http.ResponseWriter, r *http.Request, req *request) error {
	f := r.PostForm
	d := inboundLogData{Since: f.Get("since"), Filter: logFilter{Source: f.Get("source")}}
	since, ok := parseSince(d.Since)
	if !ok {
		d.Errors = fieldErrors{"since": "Give a time as YYYY-MM-DDTHH:MM (UTC)."}
		return h.showLog(w, r, req, http.StatusUnprocessableEntity, d)
	}
	n, err := h.inbound.RetryAll(r.Context(), ingest.InboundRequeue{Workspace: req.id.Workspace,
		SourceID: d.Filter.Source, Since: since})
	if err != nil {
		fe, ok := formErrors(err, map[string]string{"since": "since", "source_id": "source"})
		if !ok {
			return err
		}
		d.Errors = fe
		return h.showLog(w, r, req, formStatus(err), d)
	}
	notice := "inbound_retried_all"
	if n == 0 {
		notice = "inbound_nothing"
	}
	q := url.Values{"notice": {notice}}
	if d.Filter.Source != "" {
		q.Set("source", d.Filter.Source)
	}
	http.Redirect(w, r, h.base+"/inbound/events?"+q.Encode(), http.StatusSeeOther)
	return nil
}

type inboundEventData struct {
	Event  eventRow
	Source sourceRow
	// Body is the raw body as text; Binary says it is not UTF-8 and is
	// shown in base64.
	Body   string
	Binary bool
	Errors fieldErrors
}

// Headers answers the event's headers, signatures and credentials already
// redacted by the service, one per line.
func (d inboundEventData) Headers() string { return formatHeaders(d.Event.InboundEvent.Headers) }

func (h *handler) showEvent(w http.ResponseWriter, r *http.Request, req *request, status int, fe fieldErrors) error {
	ctx, ws := r.Context(), req.id.Workspace
	e, err := h.inbound.Event(ctx, ws, r.PathValue("id"))
	if err != nil {
		return err
	}
	s, err := h.inbound.Source(ctx, ws, e.SourceID)
	if err != nil {
		return err
	}
	d := inboundEventData{Event: eventRow{InboundEvent: e, SourceName: s.Name}, Source: h.sourceRow(r, s), Errors: fe}
	if utf8.Valid(e.Body) {
		d.Body = indentJSON(e.Body)
	} else {
		d.Body, d.Binary = base64.StdEncoding.EncodeToString(e.Body), true
	}
	h.render(w, r, status, "inboundevent", req, "Inbound event", d)
	return nil
}

// indentJSON answers a JSON document indented for reading, or the text as
// it is when it is not JSON.
func indentJSON(b []byte) string {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return string(b)
	}
	return out.String()
}

func (h *handler) inboundEventPage(w http.ResponseWriter, r *http.Request, req *request) error {
	return h.showEvent(w, r, req, http.StatusOK, nil)
}

func (h *handler) retryEvent(w http.ResponseWriter, r *http.Request, req *request) error {
	e, err := h.inbound.Retry(r.Context(), req.id.Workspace, r.PathValue("id"))
	if errors.Is(err, ingest.ErrNotRetryable) {
		return h.showEvent(w, r, req, http.StatusConflict,
			fieldErrors{"": "This event is still waiting to be processed; retry it once it is processed or failed."})
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, h.base+"/inbound/events/"+url.PathEscape(e.ID)+"?notice=inbound_retried", http.StatusSeeOther)
	return nil
}
