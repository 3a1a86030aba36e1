package mapping

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm/runtime"

	"github.com/smartlite/crmkit/records"
)

// Limits of one evaluation. Every document value is bounded by the size of
// the document; these bound what an expression can build from it.
const (
	// maxNodes bounds an expression's syntax tree; a mapping's expressions
	// are one-liners, so a thousand nodes is generous.
	maxNodes = 1000
	// memoryBudget is expr's allowance of list, map and range elements and
	// predicate iterations in one evaluation.
	memoryBudget = 100_000
	// maxString bounds one string built by +, join or replace.
	maxString = 1 << 20
	// maxBuilt bounds the bytes of all strings + builds in one evaluation,
	// so a loop cannot concatenate its way through the heap.
	maxBuilt = 8 << 20
	// maxExpression bounds an expression's source text.
	maxExpression = 4096
)

// The internal functions the compiler's rewrite calls. Their names start
// with a NUL byte, which no expression can spell, so users cannot call them.
const (
	fnGet    = "\x00get"
	fnAdd    = "\x00add"
	stateKey = "\x00state"
)

// state is what one evaluation of one expression knows besides its
// document: whether it read a null or missing path, and how many bytes its
// string concatenations built.
type state struct {
	missing bool
	built   int
}

// Ref is the value of ref(object, external_id): the record of object whose
// external id is ExternalID. Its id is not known when a document is mapped,
// only when it is written; see Output.Refs and Output.Resolve.
type Ref struct {
	Object     string `json:"object"`
	ExternalID string `json:"external_id"`
	// ExternalID is trimmed of spaces, as Output.ExternalID is.
	//
	// Target is the index of the earlier output of the same document with
	// this object and external id, whose record the ref means; -1 when no
	// earlier target has it, and the ref means a record that already exists.
	Target int `json:"target"`
}

// errNotFunc says a helper got the wrong number of arguments.
func arity(name string, args []any, min, max int) error {
	if len(args) < min || len(args) > max {
		if min == max {
			return fmt.Errorf("%s() takes %d argument(s), not %d", name, min, len(args))
		}
		return fmt.Errorf("%s() takes %d to %d arguments, not %d", name, min, max, len(args))
	}
	return nil
}

// quote shows a document value in an error message, shortened: values come
// from external systems and an error should name them, not reproduce them.
func quote(s string) string {
	const max = 40
	if len(s) > max {
		return strconv.Quote(s[:max]) + "…"
	}
	return strconv.Quote(s)
}

// get reads a path: base (a document variable, a predicate element, any
// value) then each key in turn. A null or missing step answers nil and marks
// the evaluation as having read a missing path, where expr would fail on nil.
func get(args ...any) (any, error) {
	st := args[0].(*state)
	v := args[1]
	for _, k := range args[2:] {
		if v == nil {
			break
		}
		switch c := v.(type) {
		case map[string]any:
			key, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("an object's member must be named by a string, not %s", typeName(k))
			}
			v = c[key]
		case []any:
			i, ok := toInt64(k)
			if !ok {
				return nil, fmt.Errorf("a list's element must be chosen by an integer, not %s", typeName(k))
			}
			if i < 0 {
				i += int64(len(c))
			}
			if i < 0 || i >= int64(len(c)) {
				v = nil
			} else {
				v = c[i]
			}
		default:
			if _, ok := k.(string); ok && !isContainer(v) {
				return nil, fmt.Errorf("cannot read .%s of %s", k, typeName(v))
			}
			v = runtime.Fetch(v, k)
		}
	}
	if v == nil {
		st.missing = true
	}
	return v, nil
}

func isContainer(v any) bool {
	switch reflect.ValueOf(v).Kind() {
	case reflect.Map, reflect.Slice, reflect.Array, reflect.Struct, reflect.Pointer:
		return true
	}
	return false
}

// add is the + operator, with a bound on the strings it builds.
func add(args ...any) (any, error) {
	st := args[0].(*state)
	a, b := args[1], args[2]
	as, aok := a.(string)
	bs, bok := b.(string)
	if !aok || !bok {
		// Numbers, times and durations, or an error naming the types.
		return runtime.Add(a, b), nil
	}
	n := len(as) + len(bs)
	if n > maxString {
		return nil, fmt.Errorf("string longer than %d bytes", maxString)
	}
	st.built += n
	if st.built > maxBuilt {
		return nil, fmt.Errorf("expression builds more than %d bytes of strings", maxBuilt)
	}
	return as + bs, nil
}

// typeName names a value's type as a mapping's author knows it.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case time.Time:
		return "a time"
	case time.Duration:
		return "a duration"
	case Ref:
		return "a ref()"
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Func:
		return "a function"
	}
	return fmt.Sprintf("%T", v)
}

// toInt64 answers v as an integer when it is a Go integer type.
func toInt64(v any) (int64, bool) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u > math.MaxInt64 {
			return 0, false
		}
		return int64(u), true
	}
	return 0, false
}

// toFloat64 answers v as a float when it is a Go float type.
func toFloat64(v any) (float64, bool) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Float32, reflect.Float64:
		return rv.Float(), true
	}
	return 0, false
}

// formatFloat writes a float without an exponent, as people write amounts
// and ids.
func formatFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// scalarText answers the text of a string, number or boolean, and ok=false
// for anything else.
func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return string(x), true
	case bool:
		return strconv.FormatBool(x), true
	}
	if i, ok := toInt64(v); ok {
		return strconv.FormatInt(i, 10), true
	}
	if f, ok := toFloat64(v); ok {
		return formatFloat(f), true
	}
	if u, ok := v.(uint64); ok {
		return strconv.FormatUint(u, 10), true
	}
	return "", false
}

// fnString is string(x): the text of a string, number (its digits as sent
// for a JSON integer of any size), boolean, time (RFC 3339) or duration.
func fnString(args ...any) (any, error) {
	if err := arity("string", args, 1, 1); err != nil {
		return nil, err
	}
	switch x := args[0].(type) {
	case nil:
		return nil, nil
	case time.Time:
		return x.Format(time.RFC3339Nano), nil
	case time.Duration:
		return x.String(), nil
	}
	if s, ok := scalarText(args[0]); ok {
		return s, nil
	}
	return nil, fmt.Errorf("string() cannot convert %s", typeName(args[0]))
}

// fnFloat is float(x): a number, or text holding one ("199.65").
func fnFloat(args ...any) (any, error) {
	if err := arity("float", args, 1, 1); err != nil {
		return nil, err
	}
	var s string
	switch x := args[0].(type) {
	case nil:
		return nil, nil
	case json.Number:
		s = string(x)
	case string:
		s = strings.TrimSpace(x)
	default:
		if i, ok := toInt64(x); ok {
			return float64(i), nil
		}
		if f, ok := toFloat64(x); ok {
			return f, nil
		}
		if u, ok := x.(uint64); ok {
			return float64(u), nil
		}
		return nil, fmt.Errorf("float() cannot convert %s", typeName(x))
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, fmt.Errorf("float(): %s is not a number", quote(s))
	}
	return f, nil
}

// fnInt is int(x): a whole number, a float truncated toward zero, or text
// holding either.
func fnInt(args ...any) (any, error) {
	if err := arity("int", args, 1, 1); err != nil {
		return nil, err
	}
	var s string
	switch x := args[0].(type) {
	case nil:
		return nil, nil
	case json.Number:
		s = string(x)
	case string:
		s = strings.TrimSpace(x)
	default:
		if i, ok := toInt64(x); ok {
			return int(i), nil
		}
		if f, ok := toFloat64(x); ok {
			return truncate(f, fmt.Sprint(f))
		}
		return nil, fmt.Errorf("int() cannot convert %s", typeName(x))
	}
	if i, err := strconv.ParseInt(s, 10, strconv.IntSize); err == nil {
		return int(i), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, fmt.Errorf("int(): %s is not a number", quote(s))
	}
	return truncate(f, s)
}

func truncate(f float64, text string) (any, error) {
	if math.IsNaN(f) || f >= math.MaxInt64 || f <= math.MinInt64 || (strconv.IntSize == 32 && math.Abs(f) > math.MaxInt32) {
		return nil, fmt.Errorf("int(): %s is out of range", quote(text))
	}
	return int(f), nil
}

// stringArg answers args[i] as a string; nil stays nil (ok=false, err=nil).
func stringArg(name string, args []any, i int) (string, bool, error) {
	switch x := args[i].(type) {
	case nil:
		return "", false, nil
	case string:
		return x, true, nil
	}
	return "", false, fmt.Errorf("%s() takes a string, not %s", name, typeName(args[i]))
}

func stringFunc(name string, f func(string) string) func(args ...any) (any, error) {
	return func(args ...any) (any, error) {
		if err := arity(name, args, 1, 1); err != nil {
			return nil, err
		}
		s, ok, err := stringArg(name, args, 0)
		if !ok {
			return nil, err
		}
		return f(s), nil
	}
}

// fnTrim is trim(s) (spaces) or trim(s, cutset).
func fnTrim(args ...any) (any, error) {
	if err := arity("trim", args, 1, 2); err != nil {
		return nil, err
	}
	s, ok, err := stringArg("trim", args, 0)
	if !ok {
		return nil, err
	}
	if len(args) == 1 {
		return strings.TrimSpace(s), nil
	}
	cut, ok, err := stringArg("trim", args, 1)
	if !ok {
		if err == nil {
			err = errors.New("trim() takes a string of characters to cut, not null")
		}
		return nil, err
	}
	return strings.Trim(s, cut), nil
}

// fnJoin is join(list[, separator]) with a bound on what it builds.
func fnJoin(args ...any) (any, error) {
	if err := arity("join", args, 1, 2); err != nil {
		return nil, err
	}
	sep := ""
	if len(args) == 2 {
		s, ok, err := stringArg("join", args, 1)
		if !ok && err == nil {
			err = errors.New("join() takes a string separator, not null")
		}
		if err != nil {
			return nil, err
		}
		sep = s
	}
	if args[0] == nil {
		return nil, nil
	}
	rv := reflect.ValueOf(args[0])
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return nil, fmt.Errorf("join() takes a list, not %s", typeName(args[0]))
	}
	parts := make([]string, rv.Len())
	size := 0
	for i := range parts {
		e := rv.Index(i).Interface()
		s, ok := scalarText(e)
		if !ok {
			return nil, fmt.Errorf("join() cannot join %s", typeName(e))
		}
		size += len(s) + len(sep)
		if size > maxString {
			return nil, fmt.Errorf("string longer than %d bytes", maxString)
		}
		parts[i] = s
	}
	return strings.Join(parts, sep), nil
}

// fnReplace is replace(s, old, new) with a bound on what it builds.
func fnReplace(args ...any) (any, error) {
	if err := arity("replace", args, 3, 3); err != nil {
		return nil, err
	}
	s, ok, err := stringArg("replace", args, 0)
	if !ok {
		return nil, err
	}
	var oldNew [2]string
	for i := range oldNew {
		v, ok, err := stringArg("replace", args, i+1)
		if !ok && err == nil {
			err = errors.New("replace() takes strings to find and replace with, not null")
		}
		if err != nil {
			return nil, err
		}
		oldNew[i] = v
	}
	old, repl := oldNew[0], oldNew[1]
	var n int
	if old == "" {
		n = len(s) + 1
	} else {
		n = strings.Count(s, old)
	}
	if len(s)+n*len(repl) > maxString {
		return nil, fmt.Errorf("string longer than %d bytes", maxString)
	}
	return strings.ReplaceAll(s, old, repl), nil
}

// The layouts date() and datetime() try, in order, when given none.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05Z0700",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05",
	records.DateLayout,
}

func parseTime(name string, args []any) (time.Time, bool, error) {
	if err := arity(name, args, 1, 2); err != nil {
		return time.Time{}, false, err
	}
	var s string
	switch x := args[0].(type) {
	case nil:
		return time.Time{}, false, nil
	case time.Time:
		return x, true, nil
	case string:
		s = strings.TrimSpace(x)
		if s == "" {
			// "" is how many APIs write "no date".
			return time.Time{}, false, nil
		}
	default:
		return time.Time{}, false, fmt.Errorf("%s() takes a string, not %s", name, typeName(x))
	}
	if len(args) == 2 {
		layout, ok := args[1].(string)
		if !ok {
			return time.Time{}, false, fmt.Errorf("%s() takes a string layout, not %s", name, typeName(args[1]))
		}
		t, err := time.Parse(layout, s)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("%s(): %s does not match the layout %s", name, quote(s), quote(layout))
		}
		return t, true, nil
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true, nil
		}
	}
	return time.Time{}, false, fmt.Errorf("%s(): %s is not a date and time like 2006-01-02T15:04:05Z", name, quote(s))
}

// fnDate is date(s[, layout]): the calendar date s is on, where s was
// written (the offset in s is kept, not converted to UTC), as 2006-01-02.
func fnDate(args ...any) (any, error) {
	t, ok, err := parseTime("date", args)
	if !ok {
		return nil, err
	}
	return t.Format(records.DateLayout), nil
}

// fnDateTime is datetime(s[, layout]): s as RFC 3339 in UTC. Text without
// an offset is taken as UTC.
func fnDateTime(args ...any) (any, error) {
	t, ok, err := parseTime("datetime", args)
	if !ok {
		return nil, err
	}
	return t.UTC().Format(records.DateTimeLayout), nil
}

// fnRef is ref(object, external_id).
func fnRef(args ...any) (any, error) {
	if err := arity("ref", args, 2, 2); err != nil {
		return nil, err
	}
	obj, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("ref() takes an object name, not %s", typeName(args[0]))
	}
	if args[1] == nil {
		return nil, nil
	}
	ext, ok := scalarText(args[1])
	if !ok {
		return nil, fmt.Errorf("ref() takes an external id, not %s", typeName(args[1]))
	}
	if _, isBool := args[1].(bool); isBool {
		return nil, fmt.Errorf("ref() takes an external id, not %s", typeName(args[1]))
	}
	// Trimmed as external ids are, so a ref matches the target it names.
	ext = strings.TrimSpace(ext)
	if ext == "" {
		return nil, nil
	}
	return Ref{Object: obj, ExternalID: ext, Target: -1}, nil
}
