package integration

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/internal/problem"
	"github.com/smartlite/crmkit/records"
)

// requestError is an error the API layer itself raises about a request (as
// opposed to one the pipeline or the store returns); it carries the problem
// it answers with.
type requestError struct {
	status int
	code   string
	detail string
	scope  string // for 403 missing_scope: the scope that was needed
}

func (e *requestError) Error() string { return e.detail }

// Request errors the handlers raise. Their codes are part of the API contract.
func errBadRequest(code, detail string) error {
	return &requestError{status: http.StatusBadRequest, code: code, detail: detail}
}

func errInvalid(fields ...records.FieldError) error {
	return &records.ValidationError{Fields: fields}
}

// writeError is the one place an error becomes an HTTP response. Everything
// a handler returns goes through it, so a status and a code mean the same
// thing on every route. Errors it does not recognise are logged and answered
// 500 without their text, which may hold internals.
func (s *Service) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		reqErr  *requestError
		tooBig  *http.MaxBytesError
		invalid *records.ValidationError
		capped  *records.PlanLimitError
	)
	switch {
	case errors.As(err, &reqErr):
		problem.Write(w, problem.Details{Status: reqErr.status, Code: reqErr.code, Detail: reqErr.detail, Scope: reqErr.scope})
	case errors.As(err, &tooBig):
		problem.Write(w, problem.Details{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
			Detail: "the request body is larger than the limit of " + formatBytes(tooBig.Limit)})
	case errors.As(err, &invalid):
		fields, omitted := capFieldErrors(invalid.Fields)
		problem.Write(w, problem.Details{Status: http.StatusUnprocessableEntity, Code: "validation_failed",
			Detail: "one or more fields are invalid", Errors: fields, ErrorsOmitted: omitted})
	case errors.Is(err, records.ErrValidation):
		problem.Write(w, problem.Details{Status: http.StatusUnprocessableEntity, Code: "validation_failed",
			Detail: err.Error(), Errors: []records.FieldError{}})
	case errors.Is(err, records.ErrNotFound):
		problem.Write(w, problem.Details{Status: http.StatusNotFound, Code: "not_found",
			Detail: "no such object or record"})
	case errors.Is(err, apikey.ErrInactive):
		problem.Write(w, problem.Details{Status: http.StatusConflict, Code: "key_inactive",
			Detail: "the key is revoked, already rotated, or expired"})
	case errors.Is(err, records.ErrConflict):
		problem.Write(w, problem.Details{Status: http.StatusConflict, Code: "version_conflict",
			Detail: "the record changed since the version given; read it again and retry"})
	case errors.Is(err, records.ErrDuplicate):
		problem.Write(w, problem.Details{Status: http.StatusConflict, Code: "duplicate",
			Detail: "another record already holds this external id or unique value"})
	case errors.As(err, &capped):
		problem.Write(w, problem.Details{Status: http.StatusForbidden, Code: "plan_limit_exceeded", Limit: capped.What,
			Detail: "the workspace's " + capped.Plan + " plan allows " + strconv.Itoa(capped.Limit) + " " + strings.ReplaceAll(capped.What, "_", " ")})
	case errors.Is(err, records.ErrPlanLimit):
		problem.Write(w, problem.Details{Status: http.StatusForbidden, Code: "plan_limit_exceeded",
			Detail: "the workspace's plan does not allow more records"})
	case errors.Is(err, records.ErrBusy):
		w.Header().Set("Retry-After", "1")
		problem.Write(w, problem.Details{Status: http.StatusServiceUnavailable, Code: "busy",
			Detail: "as many filtered lists as the server runs at once are running; retry after the time in Retry-After"})
	case errors.Is(err, records.ErrQueryTimeout):
		w.Header().Set("Retry-After", "1")
		problem.Write(w, problem.Details{Status: http.StatusServiceUnavailable, Code: "query_timeout",
			Detail: "the list ran past the server's time limit; narrow it with more filters or updated_since"})
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads the answer, and it is no server fault.
		w.WriteHeader(499)
	default:
		s.log.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("method", r.Method), slog.String("route", r.Pattern), slog.String("error", err.Error()))
		problem.Write(w, problem.Details{Status: http.StatusInternalServerError, Code: "internal",
			Detail: "the server could not complete the request"})
	}
}

// maxProblemErrors is the most field errors a 422 lists; errors_omitted
// counts the rest, so a request with a million bad values gets a short
// answer, not a longer one.
const maxProblemErrors = 100

// capFieldErrors answers the first maxProblemErrors of fields (never nil)
// and how many it left out.
func capFieldErrors(fields []records.FieldError) ([]records.FieldError, int) {
	if fields == nil {
		return []records.FieldError{}, 0
	}
	if len(fields) <= maxProblemErrors {
		return fields, 0
	}
	return fields[:maxProblemErrors], len(fields) - maxProblemErrors
}

func formatBytes(n int64) string {
	const mib = 1 << 20
	const kib = 1 << 10
	switch {
	case n >= mib && n%mib == 0:
		return strconv.FormatInt(n/mib, 10) + " MiB"
	case n >= kib && n%kib == 0:
		return strconv.FormatInt(n/kib, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
