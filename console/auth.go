package console

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/smartlite/crmkit/apikey"
)

type signInData struct {
	Next   string
	Errors fieldErrors
}

func (h *handler) signInForm(w http.ResponseWriter, r *http.Request) {
	if req, err := h.identify(w, r); err == nil && req != nil {
		http.Redirect(w, r, h.next(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	h.renderSignIn(w, r, http.StatusOK, signInData{Next: r.URL.Query().Get("next")})
}

// renderSignIn shows the sign-in form with a fresh CSRF token, which the
// form and a cookie both carry: there is no session yet to keep it in.
func (h *handler) renderSignIn(w http.ResponseWriter, r *http.Request, status int, d signInData) {
	token := randomToken()
	http.SetCookie(w, h.cookie(r, signInCookie, token, 3600))
	if d.Next != "" && h.next(d.Next) != d.Next {
		d.Next = ""
	}
	h.render(w, r, status, "signin", &request{csrf: token}, "Sign in", d)
}

func (h *handler) signIn(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		h.renderError(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	form := r.PostForm
	c, err := r.Cookie(signInCookie)
	if err != nil || !sameToken(form.Get("csrf"), c.Value) {
		h.renderSignIn(w, r, http.StatusForbidden, signInData{Next: form.Get("next"),
			Errors: fieldErrors{"": "The sign-in form had expired. Please paste the key again."}})
		return
	}
	ctx := r.Context()
	p, err := h.keys.Verify(ctx, strings.TrimSpace(form.Get("key")))
	switch {
	case errors.Is(err, apikey.ErrInvalidKey):
		h.log.LogAttrs(ctx, slog.LevelWarn, "console: sign-in refused", slog.String("reason", err.Error()))
		h.renderSignIn(w, r, http.StatusUnauthorized, signInData{Next: form.Get("next"),
			Errors: fieldErrors{"key": "This key is not valid: it may be mistyped, revoked or expired."}})
		return
	case err != nil:
		h.renderFailure(w, r, err)
		return
	case !p.Has(apikey.ScopeAdmin):
		h.log.LogAttrs(ctx, slog.LevelWarn, "console: sign-in refused", slog.String("reason", "key lacks ADMIN"),
			slog.String("workspace", p.Workspace), slog.String("key_id", p.KeyID))
		h.renderSignIn(w, r, http.StatusForbidden, signInData{Next: form.Get("next"),
			Errors: fieldErrors{"key": "This key does not have the ADMIN scope, which the console needs."}})
		return
	}
	if old, err := r.Cookie(sessionCookie); err == nil {
		_ = h.sessions.Delete(ctx, sessionID(old.Value))
	}
	token, now := randomToken(), h.clock()
	s := Session{
		ID:        sessionID(token),
		Identity:  Identity{Workspace: p.Workspace, Actor: p.KeyID, Name: p.Name},
		CSRF:      randomToken(),
		CreatedAt: now,
		ExpiresAt: now.Add(min(h.idle, h.maxAge)),
	}
	if err := h.sessions.Save(ctx, s); err != nil {
		h.renderFailure(w, r, err)
		return
	}
	h.log.LogAttrs(ctx, slog.LevelInfo, "console: signed in",
		slog.String("workspace", p.Workspace), slog.String("key_id", p.KeyID))
	http.SetCookie(w, h.cookie(r, sessionCookie, token, int(h.maxAge.Seconds())))
	http.SetCookie(w, h.cookie(r, signInCookie, "", -1))
	http.Redirect(w, r, h.next(form.Get("next")), http.StatusSeeOther)
}

func (h *handler) signOut(w http.ResponseWriter, r *http.Request, req *request) error {
	if err := h.sessions.Delete(r.Context(), req.session.ID); err != nil {
		return err
	}
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "console: signed out",
		slog.String("workspace", req.id.Workspace), slog.String("key_id", req.id.Actor))
	http.SetCookie(w, h.cookie(r, sessionCookie, "", -1))
	http.Redirect(w, r, h.base+"/sign-in?notice=signed_out", http.StatusSeeOther)
	return nil
}

// next answers where to go after signing in: the page asked for when it is
// one of the console's own, else the first page.
func (h *handler) next(target string) string {
	u, err := url.Parse(target)
	if err != nil || target == "" || u.Scheme != "" || u.Host != "" || u.User != nil ||
		!strings.HasPrefix(u.Path, h.base+"/") || strings.HasPrefix(u.Path, "//") ||
		strings.ContainsAny(target, `\`) || strings.HasPrefix(u.Path, h.base+"/sign-") {
		return h.base + "/keys"
	}
	return u.RequestURI()
}
