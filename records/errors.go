package records

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors callers branch on. Errors from this package and from stores
// wrap them; test with errors.Is.
var (
	// ErrNotFound: no such object, record or workspace (another workspace's
	// record does not exist, as far as a caller can tell).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the record changed since the version the caller read.
	ErrConflict = errors.New("version conflict")
	// ErrDuplicate: another record already holds this external id or unique value.
	ErrDuplicate = errors.New("duplicate value")
	// ErrPlanLimit: the workspace's plan does not allow another record.
	ErrPlanLimit = errors.New("plan limit exceeded")
	// ErrValidation: the input failed validation; the error is a *ValidationError.
	ErrValidation = errors.New("validation failed")
	// ErrBusy: a store refused an expensive read (a record list with
	// filters) because as many as it runs at once were running; retry
	// shortly.
	ErrBusy = errors.New("too many expensive reads at once")
	// ErrQueryTimeout: a store stopped a read that ran past its statement
	// timeout.
	ErrQueryTimeout = errors.New("read ran past the statement timeout")
)

// FieldError is one field that failed validation.
type FieldError struct {
	Field   string `json:"field"`
	Code    string `json:"code"` // machine code: "required", "unknown_field", "invalid_type", "min", "max", "email", "url", "one_of", "date", "datetime", "read_only", "reference"; "rule" (Field "") when a workflow rule rejected the write
	Message string `json:"message"`
}

// ValidationError lists every field that failed. It wraps ErrValidation.
type ValidationError struct {
	Object string       `json:"object"`
	Fields []FieldError `json:"errors"`
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return fmt.Sprintf("%s: %s", ErrValidation, strings.Join(parts, "; "))
}

// Unwrap lets errors.Is(err, ErrValidation) hold.
func (e *ValidationError) Unwrap() error { return ErrValidation }

// ErrBatchAborted is the error of every row of an all-or-none batch that was
// not written because another row failed.
var ErrBatchAborted = errors.New("batch aborted")
