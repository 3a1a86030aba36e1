package outbound

import (
	"fmt"
	"unicode/utf8"

	"github.com/smartlite/crmkit/records"
)

// Bounds of what an endpoint stores. Each value over its bound is refused
// with a *records.ValidationError naming the field, code "max" (or
// "type" for a condition value that is not a scalar): an endpoint is read
// on every event of its workspace, so none may be large.
const (
	// MaxURLLength is the longest URL, in bytes: browsers and proxies
	// commonly stop at 2,048.
	MaxURLLength = 2048
	// MaxEvents is the most event patterns; there are five distinct ones
	// (record.created, record.updated, record.deleted, record.*, *).
	MaxEvents = 10
	// MaxObjects is the most objects an endpoint names.
	MaxObjects = 100
	// MaxNameLength bounds an object name and condition.field, in
	// characters.
	MaxNameLength = 100
	// MaxDescriptionLength bounds the description, in characters.
	MaxDescriptionLength = 1000
	// MaxConditionValueLength bounds a string condition.changed_to, in
	// characters. The value is a scalar, as record fields are: a string,
	// a number, true or false, or null (the field was cleared).
	MaxConditionValueLength = 1000
)

// quoted shows a caller's value in an error message, cut to 64 characters
// so that a refused value does not make the answer larger than the request.
func quoted(s string) string {
	const max = 64
	if utf8.RuneCountInString(s) <= max {
		return fmt.Sprintf("%q", s)
	}
	r := []rune(s)
	return fmt.Sprintf("%q…", string(r[:max]))
}

// conditionValueError answers why v cannot be condition.changed_to, or "".
func conditionValueError(v any) (code, msg string) {
	switch x := v.(type) {
	case nil, bool, float64, float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return "", ""
	case string:
		if utf8.RuneCountInString(x) > MaxConditionValueLength {
			return "max", fmt.Sprintf("at most %d characters", MaxConditionValueLength)
		}
		return "", ""
	default:
		return "type", "must be a string, a number, true, false or null, as record fields are"
	}
}

// boundErrors checks the bounds of in and answers an error per value over
// its bound. The checks after it skip a list over its bound, so a list of
// 100,000 bad entries is one error, not 100,000.
func boundErrors(in *EndpointInput) []records.FieldError {
	var fe []records.FieldError
	add := func(field, code, msg string) {
		fe = append(fe, records.FieldError{Field: field, Code: code, Message: msg})
	}
	if len(in.URL) > MaxURLLength {
		add("url", "max", fmt.Sprintf("at most %d bytes", MaxURLLength))
	}
	if len(in.Events) > MaxEvents {
		add("events", "max", fmt.Sprintf("at most %d event types", MaxEvents))
	}
	if len(in.Objects) > MaxObjects {
		add("objects", "max", fmt.Sprintf("at most %d objects", MaxObjects))
	} else {
		for _, o := range in.Objects {
			if utf8.RuneCountInString(o) > MaxNameLength {
				add("objects", "max", fmt.Sprintf("object names are at most %d characters", MaxNameLength))
				break
			}
		}
	}
	if utf8.RuneCountInString(in.Description) > MaxDescriptionLength {
		add("description", "max", fmt.Sprintf("at most %d characters", MaxDescriptionLength))
	}
	if c := in.Condition; c != nil {
		if utf8.RuneCountInString(c.Field) > MaxNameLength {
			add("condition.field", "max", fmt.Sprintf("at most %d characters", MaxNameLength))
		}
		if code, msg := conditionValueError(c.ChangedTo); code != "" {
			add("condition.changed_to", code, msg)
		}
	}
	return fe
}
