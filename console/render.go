package console

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/records"
)

//go:embed templates static
var assets embed.FS

// pages holds one template set per page, each the layout with that page's
// content.
type pages struct {
	byName map[string]*template.Template
}

var funcs = template.FuncMap{
	"time":     formatTime,
	"timeOpt":  formatTimeOpt,
	"join":     strings.Join,
	"scopes":   joinScopes,
	"percent":  func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
	"headers":  formatHeaders,
	"statusOK": func(code int) bool { return code >= 200 && code < 300 },
	"dict":     dict,
	"value":    formatValue,
}

// dict makes a map of name, value pairs, for passing several values to a
// template.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, errors.New("dict: odd number of arguments")
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, errors.New("dict: names must be strings")
		}
		m[k] = kv[i+1]
	}
	return m, nil
}

func parsePages() (*pages, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/partials.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	files, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" || name == "partials" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(assets, f)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		p.byName[name] = t
	}
	return p, nil
}

// view is what the layout renders around a page's content.
type view struct {
	Title    string
	Product  string
	Base     string
	Nav      []navItem
	CSRF     string
	Identity Identity
	// SignOut shows the sign-out button (the console's own sessions only).
	SignOut bool
	Notice  string
	Data    any
}

type navItem struct {
	Name    string
	URL     string
	Current bool
}

// render writes the page name with status. req is nil on pages shown to
// nobody signed in.
func (h *handler) render(w http.ResponseWriter, r *http.Request, status int, name string, req *request, title string, data any) {
	t := h.pages.byName[name]
	v := view{Title: title, Product: h.cfg.Title, Base: h.base, Data: data, Notice: notices[r.URL.Query().Get("notice")]}
	if req != nil {
		v.CSRF, v.Identity = req.csrf, req.id
		v.SignOut = req.session != nil
		if req.id.Workspace != "" {
			for _, f := range h.features() {
				v.Nav = append(v.Nav, navItem{Name: f.name, URL: h.base + f.path,
					Current: strings.HasPrefix(r.URL.Path, f.path)})
			}
		}
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		h.log.LogAttrs(r.Context(), slog.LevelError, "console: render failed", slog.String("page", name), slog.String("error", err.Error()))
		http.Error(w, "the page could not be shown", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// notices are the messages a redirect after a change may ask to show.
var notices = map[string]string{
	"signed_out":  "You have signed out.",
	"revoked":     "The key was revoked.",
	"enabled":     "The endpoint was enabled.",
	"disabled":    "The endpoint was disabled.",
	"redelivered": "The delivery was queued to be sent again.",
	"replayed":    "The failed deliveries were queued to be sent again.",
	"nothing":     "There were no failed deliveries to send again.",

	// Imports.
	"import_cancelled": "The upload was discarded.",
	"import_stopped":   "The import was stopped: the rows it had written stay, the rest were not imported.",
	"undo_queued":      "The undo was queued: it deletes what the import created and restores what it updated.",

	"inbound_saved":           "The source was saved.",
	"inbound_enabled":         "The source was enabled: it accepts deliveries again.",
	"inbound_disabled":        "The source was disabled: its deliveries are refused until it is enabled.",
	"inbound_secret_replaced": "The secret was replaced.",
	"inbound_deleted":         "The source was deleted with its log.",
	"inbound_retried":         "The event was queued to be processed again.",
	"inbound_retried_all":     "The failed events were queued to be processed again.",
	"inbound_nothing":         "There were no failed events to process again.",

	// Connectors.
	"connector_created": "The connector was created. Preview its first page, or run it now.",
	"connector_saved":   "The connector was saved.",
	"connector_reset":   "The checkpoint was reset: the next run reads from the start again.",
	"connector_deleted": "The connector and its run log were deleted; the records it wrote stay.",
	"run_queued":        "The run was queued; the run log shows its progress.",
}

// itemURL answers the page of the item id under dir ("/connectors/"),
// showing notice when it is not "".
func (h *handler) itemURL(dir, id, notice string) string {
	u := h.base + dir + url.PathEscape(id)
	if notice != "" {
		u += "?notice=" + notice
	}
	return u
}

type errorData struct {
	Status  int
	Message string
}

// renderError shows a page with only a message, to whoever is signed in.
func (h *handler) renderError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h.render(w, r, status, "error", nil, http.StatusText(status), errorData{Status: status, Message: msg})
}

// renderFailure is the one place an error a service answered becomes a
// page; errors a form can show next to its fields never get here.
func (h *handler) renderFailure(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case isNotFound(err):
		h.renderError(w, r, http.StatusNotFound, "There is no such page, or what it showed no longer exists.")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
	default:
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.renderError(w, r, http.StatusRequestEntityTooLarge, "The form was too large.")
			return
		}
		h.log.LogAttrs(r.Context(), slog.LevelError, "console: request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		h.renderError(w, r, http.StatusInternalServerError, "Something went wrong on the server; the error was logged.")
	}
}

func isNotFound(err error) bool { return errors.Is(err, records.ErrNotFound) }

// fieldErrors maps a form input's name to the message shown beside it; the
// key "" holds a message about the form as a whole.
type fieldErrors map[string]string

// formErrors turns a service's error into messages beside the form's
// inputs (fields maps the service's field names to the inputs' names).
// ok is false for errors no form can explain, which the caller passes to
// renderFailure.
func formErrors(err error, fields map[string]string) (fe fieldErrors, ok bool) {
	var invalid *records.ValidationError
	switch {
	case errors.As(err, &invalid):
		fe = fieldErrors{}
		for _, f := range invalid.Fields {
			name, known := fields[f.Field]
			if !known {
				name = ""
			}
			if fe[name] != "" {
				fe[name] += "; " + f.Message
			} else {
				fe[name] = f.Message
			}
		}
		return fe, true
	case errors.Is(err, apikey.ErrInactive):
		return fieldErrors{"": "This key is revoked, already being rotated, or expired, so it cannot be rotated."}, true
	case errors.Is(err, records.ErrConflict), errors.Is(err, records.ErrDuplicate):
		return fieldErrors{"": "This changed while you were editing it. Reload the page and try again."}, true
	case errors.Is(err, records.ErrPlanLimit):
		var capped *records.PlanLimitError
		if errors.As(err, &capped) {
			what := strings.ReplaceAll(capped.What, "_", " ")
			if capped.What == records.LimitAPIKeys {
				what = "API keys"
			}
			return fieldErrors{"": fmt.Sprintf("The workspace's %s plan allows %d %s, and it has that many. Remove one, or move the workspace to a larger plan.",
				capped.Plan, capped.Limit, what)}, true
		}
		return fieldErrors{"": "The workspace's plan does not allow this."}, true
	}
	return nil, false
}

// formatValue shows a field's value as a change in the audit log has it:
// JSON's values, with no value shown as a dash and numbers written out in
// full.
func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "—"
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

func formatTimeOpt(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return formatTime(*t)
}

func joinScopes(s []apikey.Scope) string {
	out := make([]string, len(s))
	for i, sc := range s {
		out[i] = string(sc)
	}
	return strings.Join(out, ", ")
}

// formatHeaders answers headers one per line, in name order.
func formatHeaders(hd http.Header) string {
	var b strings.Builder
	if err := hd.Write(&b); err != nil {
		return ""
	}
	return strings.TrimSpace(strings.ReplaceAll(b.String(), "\r\n", "\n"))
}
