package console

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/smartlite/crmkit/apikey"
)

func (h *handler) keyRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /keys", h.signedIn(h.keysPage))
	m.HandleFunc("GET /keys/new", h.signedIn(h.newKeyForm))
	m.HandleFunc("POST /keys", h.signedIn(h.createKey))
	m.HandleFunc("GET /keys/{id}/revoke", h.signedIn(h.revokeKeyForm))
	m.HandleFunc("POST /keys/{id}/revoke", h.signedIn(h.revokeKey))
	m.HandleFunc("GET /keys/{id}/rotate", h.signedIn(h.rotateKeyForm))
	m.HandleFunc("POST /keys/{id}/rotate", h.signedIn(h.rotateKey))
}

// pageSize is how many rows a list page shows.
const pageSize = 50

// keyActive reports whether k may be used at now. A rotated key works
// until its grace period ends.
func keyActive(k apikey.Key, now time.Time) bool {
	return (k.RevokedAt == nil || now.Before(*k.RevokedAt)) && (k.ExpiresAt == nil || now.Before(*k.ExpiresAt))
}

type keyRow struct {
	apikey.Key
	// Status is "active", "rotating" (a rotated key in its grace period),
	// "revoked" or "expired".
	Status string
	// Self marks the key the current session signed in with.
	Self bool
}

func (h *handler) keyRow(k apikey.Key, req *request) keyRow {
	now := h.clock()
	row := keyRow{Key: k, Status: "active", Self: req.session != nil && k.ID == req.id.Actor}
	switch {
	case k.RevokedAt != nil && !now.Before(*k.RevokedAt):
		row.Status = "revoked"
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		row.Status = "expired"
	case k.RevokedAt != nil:
		row.Status = "rotating"
	}
	return row
}

type keysData struct {
	Keys   []keyRow
	Cursor string
	Next   string
}

func (h *handler) keysPage(w http.ResponseWriter, r *http.Request, req *request) error {
	cursor := r.URL.Query().Get("cursor")
	keys, err := h.keys.List(r.Context(), req.id.Workspace, cursor, pageSize+1)
	if err != nil {
		return err
	}
	keys, next := paged(keys, pageSize, func(k apikey.Key) string { return k.ID })
	d := keysData{Cursor: cursor, Next: next}
	for _, k := range keys {
		d.Keys = append(d.Keys, h.keyRow(k, req))
	}
	h.render(w, r, http.StatusOK, "keys", req, "API Keys", d)
	return nil
}

type keyForm struct {
	Name    string
	Scopes  map[apikey.Scope]bool
	Expires string
	Errors  fieldErrors
	// Today is the earliest expiry date the form offers.
	Today string
}

// AllScopes is what the scope checkboxes offer, in order.
func (keyForm) AllScopes() []apikey.Scope { return apikey.AllScopes }

func (h *handler) newKeyForm(w http.ResponseWriter, r *http.Request, req *request) error {
	h.render(w, r, http.StatusOK, "keynew", req, "New API key", keyForm{Scopes: map[apikey.Scope]bool{}, Today: h.tomorrow()})
	return nil
}

func (h *handler) tomorrow() string { return h.clock().UTC().AddDate(0, 0, 1).Format(time.DateOnly) }

type keyCreatedData struct {
	Key       keyRow
	Plaintext string
	// Rotated is the key the new one replaces, when it was rotated.
	Rotated *apikey.Key
}

func (h *handler) createKey(w http.ResponseWriter, r *http.Request, req *request) error {
	f := r.PostForm
	in := keyForm{Name: f.Get("name"), Scopes: map[apikey.Scope]bool{}, Expires: strings.TrimSpace(f.Get("expires")),
		Errors: fieldErrors{}, Today: h.tomorrow()}
	var scopes []apikey.Scope
	for _, s := range f["scopes"] {
		sc := apikey.Scope(s)
		scopes = append(scopes, sc)
		in.Scopes[sc] = true
	}
	var expires *time.Time
	if in.Expires != "" {
		t, err := time.Parse(time.DateOnly, in.Expires)
		if err != nil {
			in.Errors["expires"] = "Give a date as YYYY-MM-DD."
		} else {
			expires = &t
		}
	}
	if len(in.Errors) == 0 {
		k, plain, err := h.keys.Create(r.Context(), req.id.Workspace, in.Name, scopes, expires)
		if err == nil {
			h.render(w, r, http.StatusCreated, "keycreated", req, "API key created", keyCreatedData{Key: h.keyRow(k, req), Plaintext: plain})
			return nil
		}
		fe, ok := formErrors(err, map[string]string{"name": "name", "scopes": "scopes", "expires_at": "expires"})
		if !ok {
			return err
		}
		in.Errors = fe
	}
	h.render(w, r, http.StatusUnprocessableEntity, "keynew", req, "New API key", in)
	return nil
}

type keyActionData struct {
	Key    keyRow
	Grace  string
	Errors fieldErrors
}

func (h *handler) keyAction(w http.ResponseWriter, r *http.Request, req *request, page, title string, status int, d keyActionData) error {
	k, err := h.keys.Get(r.Context(), req.id.Workspace, r.PathValue("id"))
	if err != nil {
		return err
	}
	d.Key = h.keyRow(k, req)
	h.render(w, r, status, page, req, title, d)
	return nil
}

func (h *handler) revokeKeyForm(w http.ResponseWriter, r *http.Request, req *request) error {
	return h.keyAction(w, r, req, "keyrevoke", "Revoke API key", http.StatusOK, keyActionData{})
}

func (h *handler) revokeKey(w http.ResponseWriter, r *http.Request, req *request) error {
	k, err := h.keys.Revoke(r.Context(), req.id.Workspace, r.PathValue("id"))
	if err != nil {
		return err
	}
	if req.session != nil && k.ID == req.id.Actor {
		// Revoking the key this session signed in with ends the session;
		// the next page asks to sign in again.
		_ = h.sessions.Delete(r.Context(), req.session.ID)
	}
	http.Redirect(w, r, h.base+"/keys?notice=revoked", http.StatusSeeOther)
	return nil
}

// Rotation grace periods the form accepts: from none to a week, in hours.
const (
	defaultKeyGraceHours = 24
	maxGraceHours        = 7 * 24
)

func (h *handler) rotateKeyForm(w http.ResponseWriter, r *http.Request, req *request) error {
	return h.keyAction(w, r, req, "keyrotate", "Rotate API key", http.StatusOK, keyActionData{Grace: strconv.Itoa(defaultKeyGraceHours)})
}

// parseGrace reads a grace period in whole hours from 0 to a week.
func parseGrace(s string) (time.Duration, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n > maxGraceHours {
		return 0, false
	}
	return time.Duration(n) * time.Hour, true
}

const graceMessage = "Give a whole number of hours from 0 to 168 (a week)."

func (h *handler) rotateKey(w http.ResponseWriter, r *http.Request, req *request) error {
	d := keyActionData{Grace: r.PostForm.Get("grace_hours")}
	grace, ok := parseGrace(d.Grace)
	if !ok {
		d.Errors = fieldErrors{"grace_hours": graceMessage}
		return h.keyAction(w, r, req, "keyrotate", "Rotate API key", http.StatusUnprocessableEntity, d)
	}
	old, err := h.keys.Get(r.Context(), req.id.Workspace, r.PathValue("id"))
	if err != nil {
		return err
	}
	k, plain, err := h.keys.Rotate(r.Context(), req.id.Workspace, old.ID, grace)
	if err != nil {
		fe, ok := formErrors(err, map[string]string{"grace": "grace_hours"})
		if !ok {
			return err
		}
		d.Errors = fe
		return h.keyAction(w, r, req, "keyrotate", "Rotate API key", http.StatusConflict, d)
	}
	if rotated, err := h.keys.Get(r.Context(), req.id.Workspace, old.ID); err == nil {
		old = rotated
	}
	h.render(w, r, http.StatusCreated, "keycreated", req, "API key rotated", keyCreatedData{Key: h.keyRow(k, req), Plaintext: plain, Rotated: &old})
	return nil
}
