package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/smartlite/crmkit/connector"
	"github.com/smartlite/crmkit/mapping"
	"github.com/smartlite/crmkit/records"
)

// Connectors is what the console needs of pull connectors;
// *connector.Service satisfies it.
//
// Every call names a workspace and answers an error wrapping
// records.ErrNotFound for a connector or run that is not one of that
// workspace's. Invalid definitions are a *records.ValidationError whose
// fields (url, pagination.kind, mapping/targets/0/fields/name…) the
// console shows next to the form's inputs. A connector's Headers hold
// credentials: the console shows their names, never their values.
type Connectors interface {
	// Create stores a connector from its definition, the JSON document of
	// the REST API's POST /api/v1/connectors.
	Create(ctx context.Context, workspace string, definition []byte) (*connector.Connector, error)
	// Objects answers the objects a connector can write, for the form to
	// suggest; nil when they cannot be listed.
	Objects() []*records.Object
	// Get answers one connector.
	Get(ctx context.Context, workspace, id string) (*connector.Connector, error)
	// List answers up to limit connectors with an id after the given one
	// ("" for the first), in id order.
	List(ctx context.Context, workspace, after string, limit int) ([]*connector.Connector, error)
	// Update changes the members the JSON document gives; a header given
	// as "[redacted]" keeps its stored value, a settings member given as
	// null is removed.
	Update(ctx context.Context, workspace, id string, members []byte) (*connector.Connector, error)
	// Delete removes a connector and its run log; the records stay.
	Delete(ctx context.Context, workspace, id string) error
	// Reset moves the checkpoint back to incremental.start;
	// connector.ErrRunActive while a run is queued or running.
	Reset(ctx context.Context, workspace, id string) (*connector.Connector, error)
	// Run queues a run now; connector.ErrRunActive while one is queued or
	// running, connector.ErrNotStarted when background jobs do not run.
	Run(ctx context.Context, workspace, id string) (*connector.Run, error)
	// GetRun answers one run.
	GetRun(ctx context.Context, workspace, id string) (*connector.Run, error)
	// Runs answers up to limit runs of a connector, newest first, older
	// than the run before when it is set.
	Runs(ctx context.Context, workspace, connectorID, before string, limit int) ([]*connector.Run, error)
	// Preview fetches the first page the next run would fetch and answers
	// what each record would become, writing nothing. A page that could
	// not be fetched is a *connector.RunError.
	Preview(ctx context.Context, workspace, id string) (*connector.Preview, error)
}

func (h *handler) connectorRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /connectors", h.signedIn(h.connectorsPage))
	m.HandleFunc("GET /connectors/new", h.signedIn(h.newConnectorForm))
	m.HandleFunc("POST /connectors", h.signedIn(h.createConnector))
	m.HandleFunc("GET /connectors/{id}", h.signedIn(h.connectorPage))
	m.HandleFunc("GET /connectors/{id}/edit", h.signedIn(h.editConnectorForm))
	m.HandleFunc("POST /connectors/{id}", h.signedIn(h.updateConnector))
	m.HandleFunc("POST /connectors/{id}/preview", h.signedIn(h.previewConnector))
	m.HandleFunc("POST /connectors/{id}/run", h.signedIn(h.runConnector))
	m.HandleFunc("GET /connectors/{id}/reset", h.signedIn(h.resetConnectorForm))
	m.HandleFunc("POST /connectors/{id}/reset", h.signedIn(h.resetConnector))
	m.HandleFunc("GET /connectors/{id}/delete", h.signedIn(h.deleteConnectorForm))
	m.HandleFunc("POST /connectors/{id}/delete", h.signedIn(h.deleteConnector))
	m.HandleFunc("GET /connectors/{id}/runs/{run}", h.signedIn(h.connectorRunPage))
}

// connectorView is what the pages show of a connector: its definition
// with the names of its headers, never their values.
type connectorView struct {
	ID, Name, Kind string
	Schedule       string
	Mode, Deletes  string
	MaxDeleteRatio float64
	Enabled        bool
	HeaderNames    []string
	Objects        []string
	Mapping        mapping.Spec
	CreatedAt      time.Time
	UpdatedAt      time.Time
	ActiveRunID    string
	Checkpoint     connector.Checkpoint
	HTTP           httpSettings
	IsHTTP         bool
}

// httpSettings are the members of a KindHTTP connector's settings the
// console knows.
type httpSettings struct {
	URL         string                 `json:"url"`
	RecordsPath string                 `json:"records_path,omitempty"`
	Pagination  connector.Pagination   `json:"pagination"`
	Incremental *connector.Incremental `json:"incremental,omitempty"`
}

// httpMembers are the settings members httpSettings holds.
var httpMembers = []string{"url", "records_path", "pagination", "incremental"}

func isHTTP(kind string) bool { return kind == "" || kind == connector.KindHTTP }

func viewConnector(c *connector.Connector) connectorView {
	v := connectorView{ID: c.ID, Name: c.Name, Kind: c.Kind, Schedule: c.Schedule, Mode: c.Mode, Deletes: c.Deletes,
		MaxDeleteRatio: c.MaxDeleteRatio, Enabled: c.Enabled, Mapping: c.Mapping, CreatedAt: c.CreatedAt,
		UpdatedAt: c.UpdatedAt, ActiveRunID: c.ActiveRunID, IsHTTP: isHTTP(c.Kind)}
	for name := range c.Headers {
		v.HeaderNames = append(v.HeaderNames, name)
	}
	slices.Sort(v.HeaderNames)
	for _, t := range c.Mapping.Targets {
		if !slices.Contains(v.Objects, t.Object) {
			v.Objects = append(v.Objects, t.Object)
		}
	}
	if v.IsHTTP && len(c.Settings) > 0 {
		_ = json.Unmarshal(c.Settings, &v.HTTP)
	}
	if sy, err := connector.ParseSync(c.State); err == nil {
		v.Checkpoint = sy.From
	}
	return v
}

// Pagination sums up how the pages follow each other.
func (v connectorView) Pagination() string {
	p := v.HTTP.Pagination
	var s string
	switch p.Kind {
	case "", connector.PaginateNone:
		return "one page"
	case connector.PaginateCursor:
		s = fmt.Sprintf("cursor: ?%s= from %s", p.CursorParam, p.NextPath)
	case connector.PaginatePage:
		s = fmt.Sprintf("page number: ?%s=", p.PageParam)
	case connector.PaginateOffset:
		s = fmt.Sprintf("offset: ?%s=", p.OffsetParam)
	case connector.PaginateLink:
		s = "Link header (rel=next)"
	default:
		s = p.Kind
	}
	if p.SizeParam != "" {
		s += fmt.Sprintf(", %d a page (?%s=)", p.PageSize, p.SizeParam)
	}
	return s
}

// runRow is a run as the log shows it.
type runRow struct {
	*connector.Run
}

// Active says the run is queued or running.
func (r runRow) Active() bool {
	return r.Status == connector.RunQueued || r.Status == connector.RunRunning
}

// CursorBeforeValue and CursorAfterValue answer the checkpoints' values.
func (r runRow) CursorBeforeValue() string { return checkpointValue(r.CursorBefore) }
func (r runRow) CursorAfterValue() string  { return checkpointValue(r.CursorAfter) }

// failureRow is a record a run could not write.
type failureRow struct {
	connector.Failure
}

// Number is the record's place on its page, counted from 1.
func (f failureRow) Number() int { return f.Index + 1 }

// FailureRows answers the records the run could not write.
func (r runRow) FailureRows() []failureRow {
	rows := make([]failureRow, len(r.Failures))
	for i, f := range r.Failures {
		rows[i] = failureRow{f}
	}
	return rows
}

func checkpointValue(s string) string {
	c, err := connector.ParseCheckpoint(s)
	if err != nil {
		return s
	}
	return c.Value
}

type connectorRow struct {
	connectorView
	LastRun *runRow
}

type connectorsData struct {
	Connectors []connectorRow
	Next       string
}

func (h *handler) connectorsPage(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx, ws := r.Context(), req.id.Workspace
	cs, err := h.conns.List(ctx, ws, r.URL.Query().Get("cursor"), pageSize+1)
	if err != nil {
		return err
	}
	cs, next := paged(cs, pageSize, func(c *connector.Connector) string { return c.ID })
	d := connectorsData{Next: next}
	for _, c := range cs {
		row := connectorRow{connectorView: viewConnector(c)}
		runs, err := h.conns.Runs(ctx, ws, c.ID, "", 1)
		if err != nil && !isNotFound(err) {
			return err
		}
		if len(runs) > 0 {
			row.LastRun = &runRow{runs[0]}
		}
		d.Connectors = append(d.Connectors, row)
	}
	h.render(w, r, http.StatusOK, "connectors", req, "Connectors", d)
	return nil
}

// connectorForm is the New Connector and edit form. The header's value is
// never put back into the form: on edit, an empty value keeps the stored
// one.
type connectorForm struct {
	// ID is the connector edited, "" for a new one.
	ID          string
	Name        string
	URL         string
	RecordsPath string
	HeaderName  string
	// HeaderStored says the connector has a value for HeaderName.
	HeaderStored   bool
	PaginationKind string
	CursorParam    string
	NextPath       string
	PageParam      string
	OffsetParam    string
	SizeParam      string
	PageSize       string
	IncField       string
	IncParam       string
	IncStart       string
	Schedule       string
	Mode           string
	Deletes        string
	Enabled        bool
	Object         string
	// ObjectNames are the objects the datalist of the object input
	// suggests; none when the service cannot list them.
	ObjectNames []string
	ExternalID  string
	Fields      string
	Advanced    string
	Errors      fieldErrors
	// mappingInAdvanced says the advanced JSON gave the mapping, so that
	// its errors are shown there.
	mappingInAdvanced bool
}

// PaginationKinds, Modes and DeleteChoices are what the selects offer.
func (connectorForm) PaginationKinds() []string {
	return []string{connector.PaginateCursor, connector.PaginatePage, connector.PaginateOffset, connector.PaginateLink, connector.PaginateNone}
}
func (connectorForm) Modes() []string { return []string{connector.ModeIncremental, connector.ModeFull} }
func (connectorForm) DeleteChoices() []string {
	return []string{connector.DeletesOff, connector.DeletesDelete, connector.DeletesFlag}
}

// Action is where the form posts, under the base path.
func (f connectorForm) Action() string {
	if f.ID == "" {
		return "/connectors"
	}
	return "/connectors/" + url.PathEscape(f.ID)
}

// newConnectorDefaults is a New Connector form that works as it is against
// an API such as examples/sampleapi once a name and URL are filled in.
func newConnectorDefaults() connectorForm {
	return connectorForm{RecordsPath: "data", HeaderName: "Authorization",
		PaginationKind: connector.PaginateCursor, CursorParam: "cursor", NextPath: "meta.next_cursor",
		SizeParam: "limit", PageSize: "100",
		IncField: "updated_at", IncParam: "updated_since", IncStart: "2020-01-01T00:00:00Z",
		Mode: connector.ModeIncremental, Deletes: connector.DeletesOff, Enabled: true,
		Object: "account", ExternalID: "'billing-' + string(id)", Fields: "name = name\nindustry = industry"}
}

func (h *handler) newConnectorForm(w http.ResponseWriter, r *http.Request, req *request) error {
	h.renderConnectorForm(w, r, req, http.StatusOK, "New connector", newConnectorDefaults())
	return nil
}

// formOf fills the edit form from a connector. What the form's fields
// cannot hold (more targets, other headers, other settings) goes into the
// advanced JSON, header values as "[redacted]", which keeps them.
func formOf(c *connector.Connector) connectorForm {
	v := viewConnector(c)
	f := connectorForm{ID: c.ID, Name: c.Name, Schedule: c.Schedule, Mode: c.Mode, Deletes: c.Deletes, Enabled: c.Enabled}
	adv := map[string]any{}
	if !isHTTP(c.Kind) {
		adv["kind"] = c.Kind
	}
	settings := map[string]json.RawMessage{}
	_ = json.Unmarshal(c.Settings, &settings)
	for k, raw := range settings {
		if !v.IsHTTP || !slices.Contains(httpMembers, k) {
			adv[k] = raw
		}
	}
	if v.IsHTTP {
		s := v.HTTP
		f.URL, f.RecordsPath = s.URL, s.RecordsPath
		p := s.Pagination
		f.PaginationKind, f.CursorParam, f.NextPath, f.PageParam, f.OffsetParam, f.SizeParam =
			p.Kind, p.CursorParam, p.NextPath, p.PageParam, p.OffsetParam, p.SizeParam
		if f.PaginationKind == "" {
			f.PaginationKind = connector.PaginateNone
		}
		if p.PageSize != 0 {
			f.PageSize = strconv.Itoa(p.PageSize)
		}
		if inc := s.Incremental; inc != nil {
			f.IncField, f.IncParam, f.IncStart = inc.Field, inc.Param, inc.Start
		}
	}
	// The form's header is Authorization when there is one, else the first
	// by name; the others are kept through the advanced JSON.
	if len(v.HeaderNames) > 0 {
		f.HeaderName = v.HeaderNames[0]
		for _, n := range v.HeaderNames {
			if strings.EqualFold(n, "Authorization") {
				f.HeaderName = n
			}
		}
		f.HeaderStored = true
		others := map[string]string{}
		for _, n := range v.HeaderNames {
			if n != f.HeaderName {
				others[n] = "[redacted]"
			}
		}
		if len(others) > 0 {
			adv["headers"] = others
		}
	} else {
		f.HeaderName = "Authorization"
	}
	if c.MaxDeleteRatio != connector.DefaultMaxDeleteRatio && c.MaxDeleteRatio != 0 {
		adv["max_delete_ratio"] = c.MaxDeleteRatio
	}
	ts := c.Mapping.Targets
	if len(ts) == 1 {
		f.Object, f.ExternalID, f.Fields = ts[0].Object, ts[0].ExternalID, formatFieldLines(ts[0].Fields)
	} else if len(ts) > 1 {
		adv["mapping"] = c.Mapping
	}
	if len(adv) > 0 {
		b, _ := json.MarshalIndent(adv, "", "  ")
		f.Advanced = string(b)
	}
	return f
}

// formatFieldLines writes a target's fields one "field = expression" a
// line, in name order.
func formatFieldLines(fields map[string]string) string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(n + " = " + fields[n])
	}
	return b.String()
}

// fieldLine is one line of the field mapping: a field's name, "=" (or
// ":"), and the expression of its value.
var fieldLine = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_]*)\s*[=:]\s*(.*?)\s*$`)

// parseFieldLines reads what formatFieldLines wrote; blank lines are
// skipped.
func parseFieldLines(s string) (map[string]string, error) {
	fields := map[string]string{}
	for i, line := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		m := fieldLine.FindStringSubmatch(line)
		if m == nil || m[2] == "" {
			return nil, fmt.Errorf("line %d: write a field's name, =, and the expression of its value, such as name = customer.name", i+1)
		}
		if _, dup := fields[m[1]]; dup {
			return nil, fmt.Errorf("line %d: %s is mapped twice", i+1, m[1])
		}
		fields[m[1]] = m[2]
	}
	return fields, nil
}

// readConnectorForm reads the posted form.
func readConnectorForm(f url.Values) connectorForm {
	get := func(name string) string { return strings.TrimSpace(f.Get(name)) }
	return connectorForm{Name: get("name"), URL: get("url"), RecordsPath: get("records_path"),
		HeaderName:     get("header_name"),
		PaginationKind: get("pagination_kind"), CursorParam: get("cursor_param"), NextPath: get("next_path"),
		PageParam: get("page_param"), OffsetParam: get("offset_param"), SizeParam: get("size_param"), PageSize: get("page_size"),
		IncField: get("inc_field"), IncParam: get("inc_param"), IncStart: get("inc_start"),
		Schedule: get("schedule"), Mode: get("mode"), Deletes: get("deletes"), Enabled: f.Get("enabled") == "true",
		Object: get("object"), ExternalID: get("external_id"), Fields: f.Get("fields"), Advanced: strings.TrimSpace(f.Get("advanced")),
		Errors: fieldErrors{}}
}

// definition builds the JSON document the service reads from the form and
// the header's value (empty: keep the stored one, on edit). Mistakes the
// form can tell without the service are in f.Errors.
func (f *connectorForm) definition(headerValue string, old *connector.Connector) []byte {
	def := map[string]any{"name": f.Name, "schedule": f.Schedule, "mode": f.Mode, "deletes": f.Deletes, "enabled": f.Enabled}
	var adv map[string]json.RawMessage
	if f.Advanced != "" {
		dec := json.NewDecoder(strings.NewReader(f.Advanced))
		dec.UseNumber()
		if err := dec.Decode(&adv); err != nil || adv == nil {
			f.Errors["advanced"] = "Give a JSON object, such as {\"max_delete_ratio\": 0.2}."
		}
	}
	kind := connector.KindHTTP
	if old != nil {
		kind = old.Kind
	}
	if raw, ok := adv["kind"]; ok {
		_ = json.Unmarshal(raw, &kind)
	}
	if isHTTP(kind) {
		def["url"], def["records_path"] = f.URL, f.RecordsPath
		pg := map[string]any{"kind": f.PaginationKind}
		for name, v := range map[string]string{"cursor_param": f.CursorParam, "next_path": f.NextPath,
			"page_param": f.PageParam, "offset_param": f.OffsetParam, "size_param": f.SizeParam} {
			if v != "" {
				pg[name] = v
			}
		}
		if f.PageSize != "" {
			n, err := strconv.Atoi(f.PageSize)
			if err != nil || n < 1 {
				f.Errors["page_size"] = "Give a whole number of records, 1 or more."
			}
			pg["page_size"] = n
		}
		def["pagination"] = pg
		if f.IncField != "" || f.IncParam != "" || f.IncStart != "" {
			inc := map[string]string{"field": f.IncField}
			if f.IncParam != "" {
				inc["param"] = f.IncParam
			}
			if f.IncStart != "" {
				inc["start"] = f.IncStart
			}
			def["incremental"] = inc
		} else if old != nil {
			def["incremental"] = nil
		}
	}
	headers := map[string]string{}
	if f.HeaderName != "" {
		switch {
		case headerValue != "":
			headers[f.HeaderName] = headerValue
		case old != nil && old.Headers[f.HeaderName] != "":
			headers[f.HeaderName] = "[redacted]"
		default:
			f.Errors["header_value"] = "Give the header's value, or leave the header's name empty."
		}
	}
	if raw, ok := adv["headers"]; ok {
		var more map[string]string
		if err := json.Unmarshal(raw, &more); err != nil {
			f.Errors["advanced"] = "headers must be an object of header names and values."
		}
		for k, v := range more {
			headers[k] = v
		}
		delete(adv, "headers")
	}
	def["headers"] = headers
	if _, f.mappingInAdvanced = adv["mapping"]; !f.mappingInAdvanced {
		fields, err := parseFieldLines(f.Fields)
		if err != nil {
			f.Errors["fields"] = err.Error()
		}
		def["mapping"] = mapping.Spec{Targets: []mapping.Target{{Object: f.Object, ExternalID: f.ExternalID, Fields: fields}}}
	}
	for k, v := range adv {
		def[k] = v
	}
	b, _ := json.Marshal(def)
	return b
}

// connectorFieldInput answers the form input a service's field error
// concerns; mappingInAdvanced says the mapping came from the advanced JSON.
func connectorFieldInput(field string, mappingInAdvanced bool) string {
	switch {
	case strings.HasPrefix(field, "mapping"):
		switch {
		case mappingInAdvanced:
			return "advanced"
		case field == "mapping/targets/0/object":
			return "object"
		case field == "mapping/targets/0/external_id":
			return "external_id"
		}
		return "fields"
	case strings.HasPrefix(field, "pagination."):
		f := strings.TrimPrefix(field, "pagination.")
		if f == "kind" {
			return "pagination_kind"
		}
		return f
	case strings.HasPrefix(field, "incremental."):
		return "inc_" + strings.TrimPrefix(field, "incremental.")
	case field == "headers":
		return "header_name"
	}
	switch field {
	case "name", "url", "records_path", "schedule", "mode", "deletes":
		return field
	}
	return "advanced"
}

// connectorErrors shows err beside the form's fields, ok false for errors
// no form explains.
func (f *connectorForm) connectorErrors(err error) bool {
	var invalid *records.ValidationError
	fields := map[string]string{}
	if errors.As(err, &invalid) {
		for _, fe := range invalid.Fields {
			fields[fe.Field] = connectorFieldInput(fe.Field, f.mappingInAdvanced)
		}
	}
	fe, ok := formErrors(err, fields)
	if !ok {
		return false
	}
	f.Errors = fe
	return true
}

func (h *handler) createConnector(w http.ResponseWriter, r *http.Request, req *request) error {
	form := readConnectorForm(r.PostForm)
	def := form.definition(r.PostForm.Get("header_value"), nil)
	if len(form.Errors) == 0 {
		c, err := h.conns.Create(r.Context(), req.id.Workspace, def)
		if err == nil {
			http.Redirect(w, r, h.connectorURL(c.ID, "connector_created"), http.StatusSeeOther)
			return nil
		}
		if !form.connectorErrors(err) {
			return err
		}
		h.renderConnectorForm(w, r, req, formStatus(err), "New connector", form)
		return nil
	}
	h.renderConnectorForm(w, r, req, http.StatusUnprocessableEntity, "New connector", form)
	return nil
}

func (h *handler) editConnectorForm(w http.ResponseWriter, r *http.Request, req *request) error {
	c, err := h.conns.Get(r.Context(), req.id.Workspace, r.PathValue("id"))
	if err != nil {
		return err
	}
	h.renderConnectorForm(w, r, req, http.StatusOK, "Edit connector", formOf(c))
	return nil
}

func (h *handler) updateConnector(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx, ws := r.Context(), req.id.Workspace
	old, err := h.conns.Get(ctx, ws, r.PathValue("id"))
	if err != nil {
		return err
	}
	form := readConnectorForm(r.PostForm)
	form.ID = old.ID
	_, form.HeaderStored = old.Headers[form.HeaderName]
	members := form.definition(r.PostForm.Get("header_value"), old)
	status := http.StatusUnprocessableEntity
	if len(form.Errors) == 0 {
		if _, err = h.conns.Update(ctx, ws, old.ID, members); err == nil {
			http.Redirect(w, r, h.connectorURL(old.ID, "connector_saved"), http.StatusSeeOther)
			return nil
		}
		if !form.connectorErrors(err) {
			return err
		}
		status = formStatus(err)
	}
	h.renderConnectorForm(w, r, req, status, "Edit connector", form)
	return nil
}

func (h *handler) connectorURL(id, notice string) string {
	return h.itemURL("/connectors/", id, notice)
}

// connectorExtra is what an action adds to the connector page it shows.
type connectorExtra struct {
	Preview *previewView
	// PreviewError is why the first page could not be fetched.
	PreviewError *connector.RunError
	// Errors are keyed by the action they concern: "run", "preview".
	Errors fieldErrors
}

type connectorData struct {
	connectorExtra
	Connector connectorView
	Runs      []runRow
	// Active says a run is queued or running: the log refreshes itself.
	Active bool
	// Next is the URL of the next page of the log, "" on the last.
	Next string
	// Self is the URL of this page of the log.
	Self string
}

func (h *handler) connectorPage(w http.ResponseWriter, r *http.Request, req *request) error {
	return h.showConnector(w, r, req, http.StatusOK, connectorExtra{})
}

func (h *handler) showConnector(w http.ResponseWriter, r *http.Request, req *request, status int, x connectorExtra) error {
	ctx, ws := r.Context(), req.id.Workspace
	c, err := h.conns.Get(ctx, ws, r.PathValue("id"))
	if err != nil {
		return err
	}
	before := ""
	if r.Method == http.MethodGet {
		before = r.URL.Query().Get("before")
	}
	runs, err := h.conns.Runs(ctx, ws, c.ID, before, pageSize+1)
	if err != nil {
		return err
	}
	runs, next := paged(runs, pageSize, func(r *connector.Run) string { return r.ID })
	d := connectorData{connectorExtra: x, Connector: viewConnector(c), Active: c.ActiveRunID != ""}
	for _, run := range runs {
		d.Runs = append(d.Runs, runRow{run})
	}
	path := h.base + "/connectors/" + url.PathEscape(c.ID)
	d.Self = path
	if before != "" {
		d.Self += "?before=" + url.QueryEscape(before)
	}
	if next != "" {
		d.Next = path + "?before=" + url.QueryEscape(next)
	}
	h.render(w, r, status, "connector", req, c.Name, d)
	return nil
}

// Messages of the actions refused while a run is active.
const (
	runActiveMessage   = "A run of this connector is already queued or running. Wait for it to finish (the run log below shows it), then try again."
	resetActiveMessage = "A run of this connector is queued or running: the checkpoint can be reset once it has finished."
	notStartedMessage  = "Background jobs are not running on this server, so the connector cannot run now."
)

func (h *handler) runConnector(w http.ResponseWriter, r *http.Request, req *request) error {
	run, err := h.conns.Run(r.Context(), req.id.Workspace, r.PathValue("id"))
	switch {
	case errors.Is(err, connector.ErrRunActive):
		return h.showConnector(w, r, req, http.StatusConflict, connectorExtra{Errors: fieldErrors{"run": runActiveMessage}})
	case errors.Is(err, connector.ErrNotStarted):
		return h.showConnector(w, r, req, http.StatusServiceUnavailable, connectorExtra{Errors: fieldErrors{"run": notStartedMessage}})
	case err != nil:
		return err
	}
	// The log is where the run shows.
	http.Redirect(w, r, h.connectorURL(run.ConnectorID, "run_queued")+"#runs-title", http.StatusSeeOther)
	return nil
}

func (h *handler) previewConnector(w http.ResponseWriter, r *http.Request, req *request) error {
	p, err := h.conns.Preview(r.Context(), req.id.Workspace, r.PathValue("id"))
	var re *connector.RunError
	switch {
	case errors.As(err, &re):
		return h.showConnector(w, r, req, http.StatusBadGateway, connectorExtra{PreviewError: re})
	case err != nil:
		if fe, ok := formErrors(err, nil); ok {
			return h.showConnector(w, r, req, formStatus(err), connectorExtra{Errors: fieldErrors{"preview": fe[""]}})
		}
		return err
	}
	return h.showConnector(w, r, req, http.StatusOK, connectorExtra{Preview: viewPreview(p)})
}

type connectorActionData struct {
	Connector connectorView
	Errors    fieldErrors
}

func (h *handler) connectorAction(w http.ResponseWriter, r *http.Request, req *request, page, title string, status int, fe fieldErrors) error {
	c, err := h.conns.Get(r.Context(), req.id.Workspace, r.PathValue("id"))
	if err != nil {
		return err
	}
	h.render(w, r, status, page, req, title, connectorActionData{Connector: viewConnector(c), Errors: fe})
	return nil
}

func (h *handler) resetConnectorForm(w http.ResponseWriter, r *http.Request, req *request) error {
	return h.connectorAction(w, r, req, "connectorreset", "Reset checkpoint", http.StatusOK, nil)
}

func (h *handler) resetConnector(w http.ResponseWriter, r *http.Request, req *request) error {
	c, err := h.conns.Reset(r.Context(), req.id.Workspace, r.PathValue("id"))
	if errors.Is(err, connector.ErrRunActive) {
		return h.connectorAction(w, r, req, "connectorreset", "Reset checkpoint", http.StatusConflict, fieldErrors{"reset": resetActiveMessage})
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, h.connectorURL(c.ID, "connector_reset"), http.StatusSeeOther)
	return nil
}

func (h *handler) deleteConnectorForm(w http.ResponseWriter, r *http.Request, req *request) error {
	return h.connectorAction(w, r, req, "connectordelete", "Delete connector", http.StatusOK, nil)
}

func (h *handler) deleteConnector(w http.ResponseWriter, r *http.Request, req *request) error {
	if err := h.conns.Delete(r.Context(), req.id.Workspace, r.PathValue("id")); err != nil {
		return err
	}
	http.Redirect(w, r, h.base+"/connectors?notice=connector_deleted", http.StatusSeeOther)
	return nil
}

type connectorRunData struct {
	Connector connectorView
	Run       runRow
}

func (h *handler) connectorRunPage(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx, ws := r.Context(), req.id.Workspace
	run, err := h.conns.GetRun(ctx, ws, r.PathValue("run"))
	if err != nil {
		return err
	}
	if run.ConnectorID != r.PathValue("id") {
		return fmt.Errorf("console: run %s is not of connector %s: %w", run.ID, r.PathValue("id"), records.ErrNotFound)
	}
	c, err := h.conns.Get(ctx, ws, run.ConnectorID)
	if err != nil {
		return err
	}
	h.render(w, r, http.StatusOK, "connectorrun", req, "Connector run", connectorRunData{Connector: viewConnector(c), Run: runRow{run}})
	return nil
}

// previewView is a preview as the connector page shows it.
type previewView struct {
	*connector.Preview
	Records []previewRecord
}

type previewRecord struct {
	connector.PreviewRecord
}

// Number is the record's place on the page, counted from 1.
func (p previewRecord) Number() int { return p.Index + 1 }

// RawJSON answers the upstream record indented for reading.
func (p previewRecord) RawJSON() string { return indentJSON(p.Raw) }

// FieldNames answers a target's fields in name order.
func (connectorExtra) FieldNames(fields records.Fields) []string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func viewPreview(p *connector.Preview) *previewView {
	v := &previewView{Preview: p}
	for _, r := range p.Records {
		v.Records = append(v.Records, previewRecord{r})
	}
	return v
}

// renderConnectorForm shows the connector form, its object input
// suggesting the objects the service knows.
func (h *handler) renderConnectorForm(w http.ResponseWriter, r *http.Request, req *request, status int, title string, form connectorForm) {
	form.ObjectNames = nil
	for _, o := range h.conns.Objects() {
		form.ObjectNames = append(form.ObjectNames, o.Name)
	}
	h.render(w, r, status, "connectornew", req, title, form)
}
