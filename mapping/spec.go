package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Spec is a mapping as it is written and stored: what each target object
// gets from one document. Its JSON form is the one the API takes:
//
//	{"targets": [{"object": "account", "external_id": "…", "fields": {"name": "…"}}]}
type Spec struct {
	Targets []Target `json:"targets"`
}

// Target is one record a document becomes.
type Target struct {
	// Object names the record's object.
	Object string `json:"object"`
	// ExternalID is the expression of the record's external id, the key it
	// is upserted on. Empty means the target has none: its record is
	// inserted.
	ExternalID string `json:"external_id,omitempty"`
	// Fields maps each field of the object to the expression of its value.
	Fields map[string]string `json:"fields"`
}

// ParseSpec reads a Spec from its JSON form. Unknown keys (a misspelt
// "feilds") and trailing data are refused rather than ignored, so a mapping
// is never saved as something other than what its author wrote.
func ParseSpec(data []byte) (Spec, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s Spec
	if err := dec.Decode(&s); err != nil {
		return Spec{}, fmt.Errorf("%w: %v", ErrInvalidMapping, err)
	}
	if dec.More() {
		return Spec{}, fmt.Errorf("%w: data after the mapping", ErrInvalidMapping)
	}
	return s, nil
}

// ErrInvalidMapping is what Compile and ParseSpec fail with: the mapping
// does not parse, does not compile, or names an object or field the schema
// does not have. Compile's error is a *CompileError that lists every problem.
var ErrInvalidMapping = errors.New("mapping: invalid mapping")

// ErrInvalidDocument: the document given to Apply is not a JSON object.
var ErrInvalidDocument = errors.New("mapping: invalid document")

// ErrEvaluation: an expression failed on a document. Apply's error is an
// *ApplyError that lists every failing expression.
var ErrEvaluation = errors.New("mapping: evaluation failed")

// Problem is one expression, object or field that is wrong, for a saved
// mapping (Code names what is wrong) or for one document (Code
// "evaluation").
type Problem struct {
	// Target is the index of the target in Spec.Targets, Object its object.
	Target int    `json:"target"`
	Object string `json:"object"`
	// Field is the field whose expression failed; "external_id" for the
	// target's external id expression; "" for a problem of the whole target
	// (an unknown object).
	Field string `json:"field,omitempty"`
	// Path points into the mapping's JSON form, as a JSON Pointer:
	// "/targets/1/fields/amount", "/targets/0/external_id",
	// "/targets/2/object". Unlike Field it is never ambiguous.
	Path string `json:"path"`
	// Code is a machine code: "no_targets", "unknown_object",
	// "unknown_field", "read_only", "no_external_id", "external_id_field",
	// "empty", "too_long", "compile", "unknown_function", "ref" (a ref() whose object is not a
	// known one or not the one the field refers to) or "evaluation".
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	where := fmt.Sprintf("target %d (%s)", p.Target, p.Object)
	if p.Field != "" {
		where += " " + p.Field
	}
	return where + ": " + p.Message
}

// CompileError lists every problem of a mapping that Compile refused. It
// wraps ErrInvalidMapping.
type CompileError struct {
	Problems []Problem `json:"problems"`
}

func (e *CompileError) Error() string { return joinProblems(ErrInvalidMapping, e.Problems) }

// Unwrap lets errors.Is(err, ErrInvalidMapping) hold.
func (e *CompileError) Unwrap() error { return ErrInvalidMapping }

// ApplyError lists every expression that failed on one document. It wraps
// ErrEvaluation.
type ApplyError struct {
	Problems []Problem `json:"problems"`
}

func (e *ApplyError) Error() string { return joinProblems(ErrEvaluation, e.Problems) }

// Unwrap lets errors.Is(err, ErrEvaluation) hold.
func (e *ApplyError) Unwrap() error { return ErrEvaluation }

func joinProblems(sentinel error, ps []Problem) string {
	var b bytes.Buffer
	b.WriteString(sentinel.Error())
	for i, p := range ps {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}
