package apikey

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/smartlite/crmkit/internal/problem"
)

// Verifier turns a presented plaintext key into a principal. Errors wrapping
// ErrInvalidKey mean the key is refused; any other error is a failure to
// decide (a store outage). *Service implements it.
type Verifier interface {
	Verify(ctx context.Context, plaintext string) (*Principal, error)
}

// VerifierFunc adapts a function to Verifier.
type VerifierFunc func(ctx context.Context, plaintext string) (*Principal, error)

// Verify calls f.
func (f VerifierFunc) Verify(ctx context.Context, plaintext string) (*Principal, error) {
	return f(ctx, plaintext)
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal Authenticate put in ctx.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}

// Authenticate requires `Authorization: Bearer slk_…` on every request and
// puts the verified principal in the request context. A missing, malformed,
// mistyped, unknown, revoked or expired key gets the very same 401 answer,
// so the response tells a caller nothing about which it was. The key is
// never logged.
func Authenticate(v Verifier) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, ok := bearer(authorization(r.Header))
			if !ok {
				unauthorized(w)
				return
			}
			p, err := v.Verify(r.Context(), token)
			switch {
			case errors.Is(err, ErrInvalidKey):
				unauthorized(w)
				return
			case err != nil:
				slog.ErrorContext(r.Context(), "apikey: verifying a key failed", "error", err)
				problem.Write(w, problem.Details{Status: http.StatusServiceUnavailable, Code: "auth_unavailable", Detail: "keys cannot be checked right now; retry shortly"})
				return
			case p == nil:
				unauthorized(w)
				return
			}
			next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
		})
	}
}

// authorization is h.Get("Authorization") without canonicalising a name
// that is already canonical, on every request.
func authorization(h http.Header) string {
	if v := h["Authorization"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// bearer extracts the token of a Bearer authorization (scheme case-insensitive).
func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", "Bearer")
	problem.Write(w, problem.Details{
		Status: http.StatusUnauthorized,
		Code:   "unauthorized",
		Detail: "a valid API key is required: Authorization: Bearer slk_…",
	})
}

// RequireScope lets through only requests whose principal holds s (or
// ADMIN). Others get 403 with code missing_scope and the scope named; a
// request without a principal gets Authenticate's 401.
func RequireScope(s Scope) func(http.Handler) http.Handler {
	detail := "this API key lacks the " + string(s) + " scope"
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := PrincipalFrom(r.Context())
			if !ok {
				unauthorized(w)
				return
			}
			if !p.Has(s) {
				problem.Write(w, problem.Details{Status: http.StatusForbidden, Code: "missing_scope", Scope: string(s), Detail: detail})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
