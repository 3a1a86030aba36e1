package mapping

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/smartlite/crmkit/records"
)

// Output is the record one target makes of one document.
type Output struct {
	// Target is the index of the target in Spec.Targets.
	Target int
	Object string
	// ExternalID is the value of the target's external id expression,
	// trimmed; "" when the target has none or it read a null or missing
	// path.
	ExternalID string
	// Fields holds the values of the fields that have one, as
	// encoding/json types: string, float64, bool. A field whose expression
	// read a null or missing path, or answered null, is not in it.
	Fields records.Fields
	// Refs holds the fields whose value is a ref(): record ids known only
	// when the document is written. They are not in Fields; Resolve puts
	// them there.
	Refs map[string]Ref
}

// Resolve returns o's fields with every ref in Refs replaced by the record
// id id answers for it, for the write. A caller writing a document's
// outputs in order answers a ref with Target >= 0 with the id of the record
// it wrote for that output, and any other by looking the external id up.
// An error of id is returned wrapped, naming the target and field.
func (o Output) Resolve(id func(Ref) (string, error)) (records.Fields, error) {
	out := make(records.Fields, len(o.Fields)+len(o.Refs))
	for k, v := range o.Fields {
		out[k] = v
	}
	for name, ref := range o.Refs {
		v, err := id(ref)
		if err != nil {
			return nil, fmt.Errorf("mapping: target %d (%s) %s: ref(%q, %q): %w", o.Target, o.Object, name, ref.Object, ref.ExternalID, err)
		}
		out[name] = v
	}
	return out, nil
}

// Decode reads one JSON document as Apply does: numbers keep their exact
// value (see the package documentation), objects are map[string]any and
// lists []any. Connectors use it to read a page before handing its records
// to ApplyValue.
func Decode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidDocument, err)
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("%w: data after the document", ErrInvalidDocument)
	}
	return normalise(v), nil
}

// normalise copies a decoded value, turning each json.Number into the Go
// number expr computes with: int for a whole number that fits, float64 for
// any other, and json.Number itself for a whole number too large for an
// int (or a number too large for a float64), so its digits survive.
func normalise(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x)+1)
		for k, e := range x {
			out[k] = normalise(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalise(e)
		}
		return out
	case json.Number:
		return number(x)
	}
	return v
}

func number(n json.Number) any {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, strconv.IntSize); err == nil {
			return int(i)
		}
		return n
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return n
	}
	return f
}

// Apply maps one JSON document, which must be an object, into one Output
// per target, in target order. It fails with ErrInvalidDocument when doc is
// not a JSON object, and with an *ApplyError (wrapping ErrEvaluation)
// naming the target and field of every expression that failed; the outputs
// are then still returned, without the failed fields, for previews.
func (m *Mapping) Apply(doc []byte) ([]Output, error) {
	v, err := Decode(doc)
	if err != nil {
		return nil, err
	}
	return m.apply(v)
}

// ApplyValue maps a document already decoded by Decode (or by
// encoding/json, at the cost of exact big numbers). It does not change doc.
func (m *Mapping) ApplyValue(doc any) ([]Output, error) {
	return m.apply(normalise(doc))
}

func (m *Mapping) apply(doc any) ([]Output, error) {
	env, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: a document must be a JSON object, not %s", ErrInvalidDocument, typeName(doc))
	}
	st := &state{}
	env[stateKey] = st
	var machine vm.VM
	machine.MemoryBudget = memoryBudget
	eval := func(p *vm.Program) (any, error) {
		*st = state{}
		v, err := machine.Run(p, env)
		if err != nil {
			if st.missing {
				return nil, nil
			}
			return nil, err
		}
		return v, nil
	}

	outs := make([]Output, len(m.targets))
	var problems []Problem
	for i, t := range m.targets {
		out := Output{Target: i, Object: t.object, Fields: records.Fields{}}
		fail := func(name, path string, err error) {
			problems = append(problems, Problem{Target: i, Object: t.object, Field: name, Path: path, Code: "evaluation", Message: evalMessage(err)})
		}
		base := "/targets/" + strconv.Itoa(i)
		if t.extID != nil {
			v, err := eval(t.extID)
			if err == nil {
				out.ExternalID, err = externalID(v)
			}
			if err != nil {
				fail("external_id", base+"/external_id", err)
			}
		}
		for _, f := range t.fields {
			v, err := eval(f.prog)
			if err == nil {
				if ref, ok := v.(Ref); ok {
					if out.Refs == nil {
						out.Refs = map[string]Ref{}
					}
					ref.Target = earlier(outs[:i], ref)
					out.Refs[f.name] = ref
					continue
				}
				v, err = fieldValue(v, f.typ)
			}
			if err != nil {
				fail(f.name, base+"/fields/"+pointerEscape(f.name), err)
				continue
			}
			if v != nil {
				out.Fields[f.name] = v
			}
		}
		outs[i] = out
	}
	if len(problems) > 0 {
		return outs, &ApplyError{Problems: problems}
	}
	return outs, nil
}

// earlier answers the index of the last output before this one with ref's
// object and external id, or -1.
func earlier(outs []Output, ref Ref) int {
	for j := len(outs) - 1; j >= 0; j-- {
		if outs[j].Object == ref.Object && outs[j].ExternalID != "" && outs[j].ExternalID == ref.ExternalID {
			return j
		}
	}
	return -1
}

// evalMessage is expr's runtime error on one line.
func evalMessage(err error) string {
	msg := exprMessage(err)
	return strings.TrimPrefix(msg, "runtime error: ")
}

// externalID converts an external id expression's value: text, or a number
// written as its digits.
func externalID(v any) (string, error) {
	if v == nil {
		return "", nil
	}
	if _, ok := v.(bool); !ok {
		if s, ok := scalarText(v); ok {
			return strings.TrimSpace(s), nil
		}
	}
	return "", fmt.Errorf("an external id must be text or a number, not %s", typeName(v))
}

// textual reports whether a field type stores text, so that a number
// mapped into it is written as its digits.
func textual(t records.FieldType) bool {
	switch t {
	case records.TypeString, records.TypeText, records.TypeEmail, records.TypeURL, records.TypePicklist:
		return true
	}
	return false
}

// fieldValue converts an expression's value to the encoding/json type the
// field stores: text fields take numbers and booleans as text (a big id as
// its exact digits), other fields take numbers as float64; times become
// dates or RFC 3339 text. Lists and objects are refused.
func fieldValue(v any, t records.FieldType) (any, error) {
	switch x := v.(type) {
	case nil, string:
		return v, nil
	case bool:
		if textual(t) {
			return strconv.FormatBool(x), nil
		}
		return x, nil
	case json.Number:
		if textual(t) {
			return string(x), nil
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return nil, fmt.Errorf("the number %s is out of range", quote(string(x)))
		}
		return f, nil
	case time.Time:
		if t == records.TypeDate {
			return x.Format(records.DateLayout), nil
		}
		return x.UTC().Format(records.DateTimeLayout), nil
	case time.Duration:
		return x.String(), nil
	}
	if i, ok := toInt64(v); ok {
		if textual(t) {
			return strconv.FormatInt(i, 10), nil
		}
		return float64(i), nil
	}
	if u, ok := v.(uint64); ok {
		if textual(t) {
			return strconv.FormatUint(u, 10), nil
		}
		return float64(u), nil
	}
	if f, ok := toFloat64(v); ok {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%s is not a number a record can hold", formatFloat(f))
		}
		if textual(t) {
			return formatFloat(f), nil
		}
		return f, nil
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Map, reflect.Slice, reflect.Array:
		return nil, fmt.Errorf("evaluates to %s; a field holds a single value", typeName(v))
	}
	return nil, fmt.Errorf("evaluates to %s, which a field cannot hold", typeName(v))
}
