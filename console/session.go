package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// ErrNoSession is what a SessionStore answers for an id it does not hold.
var ErrNoSession = errors.New("console: no such session")

// Session is one signed-in person's stay in the console.
type Session struct {
	// ID is the SHA-256 (hex) of the random token in the cookie: a store
	// never holds what a browser presents.
	ID       string
	Identity Identity
	// CSRF is the token every form of the session carries.
	CSRF      string
	CreatedAt time.Time
	// ExpiresAt is when the session ends unless used before: the idle
	// timeout from its last use, capped by the maximum age.
	ExpiresAt time.Time
}

// SessionStore keeps sessions. Implementations must be safe for concurrent
// use; they may forget a session once its ExpiresAt has passed.
type SessionStore interface {
	// Save stores s, replacing a session with the same ID.
	Save(ctx context.Context, s Session) error
	// Load answers the session with the id, or ErrNoSession.
	Load(ctx context.Context, id string) (Session, error)
	// Delete forgets a session; deleting an absent one is not an error.
	Delete(ctx context.Context, id string) error
}

// MemorySessions is a SessionStore in this process's memory.
type MemorySessions struct {
	mu    sync.Mutex
	byID  map[string]Session
	clock func() time.Time
	swept time.Time
}

var _ SessionStore = (*MemorySessions)(nil)

// NewMemorySessions returns an empty MemorySessions.
func NewMemorySessions() *MemorySessions {
	return &MemorySessions{byID: map[string]Session{}, clock: time.Now}
}

// Save stores s, and now and then forgets expired sessions.
func (m *MemorySessions) Save(_ context.Context, s Session) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock()
	if now.Sub(m.swept) > time.Minute {
		for id, old := range m.byID {
			if now.After(old.ExpiresAt) {
				delete(m.byID, id)
			}
		}
		m.swept = now
	}
	m.byID[s.ID] = s
	return nil
}

// Load answers the session with the id, or ErrNoSession.
func (m *MemorySessions) Load(_ context.Context, id string) (Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.byID[id]
	if !ok {
		return Session{}, ErrNoSession
	}
	return s, nil
}

// Delete forgets a session.
func (m *MemorySessions) Delete(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.byID, id)
	return nil
}

// Cookie names. The sign-in cookie carries the CSRF token of the sign-in
// form, before there is a session to hold one.
const (
	sessionCookie = "crmkit_console"
	signInCookie  = "crmkit_console_signin"
)

// randomToken answers 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	// crypto/rand.Read never fails (it crashes the program instead).
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func sessionID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func (h *handler) cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	path := h.base
	if path == "" {
		path = "/"
	}
	return &http.Cookie{
		Name: name, Value: value, Path: path, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil || h.cfg.SecureCookie,
	}
}

// request is what a signed-in handler knows about its request.
type request struct {
	id   Identity
	csrf string
	// session is set for the console's own sessions, nil under an
	// Authenticator.
	session *Session
}

// signedInFunc is a handler that runs for a signed-in identity. An error
// it returns is rendered by renderFailure.
type signedInFunc func(w http.ResponseWriter, r *http.Request, req *request) error

// signedIn runs fn for signed-in requests, checking the CSRF token of every
// one that is not a GET or HEAD; others are sent to sign in.
func (h *handler) signedIn(fn signedInFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := h.identify(w, r)
		if err != nil {
			h.renderFailure(w, r, err)
			return
		}
		if req == nil {
			h.notSignedIn(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := r.ParseForm(); err != nil {
				h.renderError(w, r, http.StatusBadRequest, "The form could not be read.")
				return
			}
			if !sameToken(r.PostForm.Get("csrf"), req.csrf) {
				h.log.LogAttrs(r.Context(), slog.LevelWarn, "console: CSRF token missing or wrong",
					slog.String("path", r.URL.Path), slog.String("workspace", req.id.Workspace))
				h.renderError(w, r, http.StatusForbidden, "This form has expired. Go back, reload the page and try again.")
				return
			}
		}
		if err := fn(w, r, req); err != nil {
			h.renderFailure(w, r, err)
		}
	}
}

// identify answers the signed-in identity of r, nil when there is none.
func (h *handler) identify(w http.ResponseWriter, r *http.Request) (*request, error) {
	if h.auth != nil {
		id, ok, err := h.auth.Authenticate(r)
		if err != nil || !ok {
			return nil, err
		}
		return &request{id: id, csrf: h.boundToken(id)}, nil
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	ctx := r.Context()
	s, err := h.sessions.Load(ctx, sessionID(c.Value))
	if errors.Is(err, ErrNoSession) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	now := h.clock()
	if !now.Before(s.ExpiresAt) {
		_ = h.sessions.Delete(ctx, s.ID)
		return nil, nil
	}
	// The key signed in with may have been revoked or have expired since:
	// that ends its sessions too.
	k, err := h.keys.Get(ctx, s.Identity.Workspace, s.Identity.Actor)
	if err == nil && !keyActive(k, now) {
		err = ErrNoSession
	}
	if err != nil {
		if isNotFound(err) || errors.Is(err, ErrNoSession) {
			_ = h.sessions.Delete(ctx, s.ID)
			return nil, nil
		}
		return nil, err
	}
	// Moving the idle deadline is a write; once a minute is plenty.
	next := now.Add(h.idle)
	if limit := s.CreatedAt.Add(h.maxAge); next.After(limit) {
		next = limit
	}
	if next.Sub(s.ExpiresAt) > time.Minute {
		s.ExpiresAt = next
		if err := h.sessions.Save(ctx, s); err != nil {
			return nil, err
		}
	}
	return &request{id: s.Identity, csrf: s.CSRF, session: &s}, nil
}

// boundToken is the CSRF token of a host-authenticated identity: a MAC of
// who it is, so it needs no storage and changes with the host's session.
func (h *handler) boundToken(id Identity) string {
	m := hmac.New(sha256.New, h.csrfKey)
	for _, s := range []string{id.Workspace, id.Actor, id.Session} {
		m.Write([]byte(s))
		m.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (h *handler) notSignedIn(w http.ResponseWriter, r *http.Request) {
	if h.auth != nil {
		if h.cfg.SignInURL != "" && r.Method == http.MethodGet {
			http.Redirect(w, r, h.cfg.SignInURL, http.StatusSeeOther)
			return
		}
		h.renderError(w, r, http.StatusUnauthorized, "You are not signed in.")
		return
	}
	if r.Method == http.MethodGet {
		target := h.base + "/sign-in"
		if next := r.URL.Path; next != "/" && next != "" {
			target += "?next=" + url.QueryEscape(h.base+next)
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
		return
	}
	h.renderError(w, r, http.StatusUnauthorized, "Your session has ended. Sign in again, then repeat what you were doing.")
}
