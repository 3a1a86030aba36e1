package records

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-playground/validator/v10"
)

// Default length caps of text-like fields whose Field.Max is unset. They keep
// one record's JSON small enough to index and ship in a webhook.
const (
	defaultStringMax = 255
	defaultTextMax   = 32768
	defaultEmailMax  = 254 // RFC 5321's limit on a forward path
	defaultURLMax    = 2048
)

// The date and datetime forms values are stored in.
const (
	DateLayout     = "2006-01-02"
	DateTimeLayout = time.RFC3339Nano
)

// maxSafeInteger is the largest integer a float64 (and so a JSON number in
// most clients) holds exactly.
const maxSafeInteger = 1 << 53

// DefaultObjects answers the CRM's standard objects: opportunity, account,
// contact and lead. Each has an "external_id" string field that upserts match
// on. Callers may append their own objects to the slice.
func DefaultObjects() []Object {
	zero, hundred := 0.0, 100.0
	extID := Field{Name: "external_id", Type: TypeString}
	return []Object{
		{
			Name:       "opportunity",
			ExternalID: "external_id",
			Fields: []Field{
				{Name: "name", Type: TypeString, Required: true},
				{Name: "amount", Type: TypeNumber, Min: &zero},
				{Name: "stage", Type: TypePicklist, Options: []string{
					"Prospecting", "Qualification", "Proposal", "Negotiation", "Closed Won", "Closed Lost"}},
				{Name: "close_date", Type: TypeDate},
				{Name: "closed_at", Type: TypeDateTime, ReadOnly: true},
				{Name: "probability", Type: TypeInteger, Min: &zero, Max: &hundred},
				{Name: "account_id", Type: TypeReference, Reference: "account"},
				extID,
			},
		},
		{
			Name:       "account",
			ExternalID: "external_id",
			Fields: []Field{
				{Name: "name", Type: TypeString, Required: true},
				{Name: "website", Type: TypeURL},
				{Name: "industry", Type: TypeString},
				extID,
			},
		},
		{
			Name:       "contact",
			ExternalID: "external_id",
			Fields: []Field{
				{Name: "first_name", Type: TypeString, Required: true},
				{Name: "last_name", Type: TypeString, Required: true},
				{Name: "email", Type: TypeEmail},
				{Name: "phone", Type: TypeString},
				{Name: "account_id", Type: TypeReference, Reference: "account"},
				extID,
			},
		},
		{
			Name:       "lead",
			ExternalID: "external_id",
			Fields: []Field{
				{Name: "name", Type: TypeString, Required: true},
				{Name: "company", Type: TypeString},
				{Name: "email", Type: TypeEmail},
				{Name: "status", Type: TypePicklist, Options: []string{
					"New", "Contacted", "Qualified", "Unqualified", "Converted"}},
				extID,
			},
		},
	}
}

// schema is an Object compiled once, at NewPipeline, into per-field rules.
type schema struct {
	obj    Object
	fields map[string]*fieldRule
	ext    *fieldRule   // nil when the object has no external id
	unique []*fieldRule // Unique fields other than the external id
}

// fieldRule is one field's compiled checks: the coercion normalise applies
// for its type, then the validator tag for the coerced value.
type fieldRule struct {
	Field
	pos int    // position in the object, to report errors in schema order
	tag string // validator/v10 tag; "" when normalise checks everything
}

// compiler turns Objects into schemas on one validator instance.
type compiler struct {
	v *validator.Validate
	// picklists holds the option sets of picklists whose options oneof cannot
	// spell (an option holding a quote); the "picklist" tag's param indexes it.
	picklists []map[string]struct{}
}

func newCompiler() *compiler {
	c := &compiler{v: validator.New()}
	// Registering cannot fail for a valid, non-empty tag name.
	_ = c.v.RegisterValidation("picklist", func(fl validator.FieldLevel) bool {
		i, err := strconv.Atoi(fl.Param())
		if err != nil || i < 0 || i >= len(c.picklists) {
			return false
		}
		_, ok := c.picklists[i][fl.Field().String()]
		return ok
	})
	return c
}

// compile checks obj and builds its schema. known holds the names of every
// configured object, for reference fields.
func (c *compiler) compile(obj Object, known map[string]bool) (*schema, error) {
	if obj.Name == "" {
		return nil, fmt.Errorf("records: object with no name")
	}
	s := &schema{obj: obj, fields: make(map[string]*fieldRule, len(obj.Fields))}
	s.obj.Fields = slices.Clone(obj.Fields)
	for i, f := range s.obj.Fields {
		if f.Name == "" {
			return nil, fmt.Errorf("records: object %s: field %d has no name", obj.Name, i)
		}
		if _, dup := s.fields[f.Name]; dup {
			return nil, fmt.Errorf("records: object %s: field %s defined twice", obj.Name, f.Name)
		}
		f.Options = slices.Clone(f.Options)
		s.obj.Fields[i] = f
		tag, err := c.tagFor(f, known)
		if err != nil {
			return nil, fmt.Errorf("records: object %s: field %s: %w", obj.Name, f.Name, err)
		}
		r := &fieldRule{Field: f, pos: i, tag: tag}
		if err := c.checkTag(r); err != nil {
			return nil, fmt.Errorf("records: object %s: field %s: %w", obj.Name, f.Name, err)
		}
		s.fields[f.Name] = r
		if f.Unique && f.Name != obj.ExternalID {
			s.unique = append(s.unique, r)
		}
	}
	if obj.ExternalID != "" {
		r, ok := s.fields[obj.ExternalID]
		if !ok {
			return nil, fmt.Errorf("records: object %s: external id field %s is not defined", obj.Name, obj.ExternalID)
		}
		if r.Type != TypeString {
			return nil, fmt.Errorf("records: object %s: external id field %s must be a string", obj.Name, obj.ExternalID)
		}
		if r.ReadOnly {
			return nil, fmt.Errorf("records: object %s: external id field %s cannot be read-only", obj.Name, obj.ExternalID)
		}
		s.ext = r
	}
	return s, nil
}

// tagFor builds the validator tag of one field.
func (c *compiler) tagFor(f Field, known map[string]bool) (string, error) {
	num := func(p *float64) string { return strconv.FormatFloat(*p, 'f', -1, 64) }
	length := func(p *float64, def int) (string, error) {
		if p == nil {
			return strconv.Itoa(def), nil
		}
		if *p < 0 || *p != math.Trunc(*p) {
			return "", fmt.Errorf("length bound %v is not a whole number of characters", *p)
		}
		return num(p), nil
	}
	if f.Min != nil && f.Max != nil && *f.Min > *f.Max {
		return "", fmt.Errorf("min %v is greater than max %v", *f.Min, *f.Max)
	}
	var tags []string
	lengths := func(def int) error {
		if f.Min != nil {
			m, err := length(f.Min, 0)
			if err != nil {
				return err
			}
			tags = append(tags, "min="+m)
		}
		m, err := length(f.Max, def)
		if err != nil {
			return err
		}
		tags = append(tags, "max="+m)
		return nil
	}
	switch f.Type {
	case TypeString:
		if err := lengths(defaultStringMax); err != nil {
			return "", err
		}
	case TypeText:
		if err := lengths(defaultTextMax); err != nil {
			return "", err
		}
	case TypeEmail:
		tags = append(tags, "email")
		if err := lengths(defaultEmailMax); err != nil {
			return "", err
		}
	case TypeURL:
		// http_url rather than url: a CRM shows these as links, and url would
		// let javascript: and data: through.
		tags = append(tags, "http_url")
		if err := lengths(defaultURLMax); err != nil {
			return "", err
		}
	case TypeNumber, TypeInteger:
		if f.Min != nil {
			tags = append(tags, "min="+num(f.Min))
		}
		if f.Max != nil {
			tags = append(tags, "max="+num(f.Max))
		}
	case TypePicklist:
		if len(f.Options) == 0 {
			return "", fmt.Errorf("picklist has no options")
		}
		tags = append(tags, c.picklistTag(f.Options))
	case TypeReference:
		if f.Reference != "" && !known[f.Reference] {
			return "", fmt.Errorf("references unknown object %q", f.Reference)
		}
	case TypeBoolean, TypeDate, TypeDateTime:
	default:
		return "", fmt.Errorf("unknown type %q", f.Type)
	}
	return strings.Join(tags, ","), nil
}

// picklistTag spells options as validator's oneof where its syntax allows:
// values are split on spaces unless single-quoted, and commas and pipes
// separate tags unless written as 0x2C and 0x7C.
func (c *compiler) picklistTag(options []string) string {
	quoted := make([]string, len(options))
	for i, o := range options {
		if strings.Contains(o, "'") || strings.Contains(o, "0x2C") || strings.Contains(o, "0x7C") || o == "" {
			set := make(map[string]struct{}, len(options))
			for _, o := range options {
				set[o] = struct{}{}
			}
			c.picklists = append(c.picklists, set)
			return "picklist=" + strconv.Itoa(len(c.picklists)-1)
		}
		o = strings.NewReplacer(",", "0x2C", "|", "0x7C").Replace(o)
		quoted[i] = "'" + o + "'"
	}
	return "oneof=" + strings.Join(quoted, " ")
}

// checkTag runs the field's tag once on a value of its stored kind, so that a
// tag validator cannot parse fails NewPipeline instead of a write.
func (c *compiler) checkTag(r *fieldRule) (err error) {
	if r.tag == "" {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("bad validation rule %q: %v", r.tag, p)
		}
	}()
	var probe any = ""
	if r.Type == TypeNumber || r.Type == TypeInteger {
		probe = 0.0
	}
	_ = c.v.Var(probe, r.tag)
	return nil
}

// normalise coerces one input value to the stored form of the field's type:
// strings trimmed, numbers as float64, dates as "2006-01-02", datetimes as
// RFC 3339 in UTC. nil and the empty string both mean "no value" and answer
// nil. It answers a FieldError when v cannot be coerced.
func (r *fieldRule) normalise(v any) (any, *FieldError) {
	if s, ok := v.(string); ok {
		v = strings.TrimSpace(s)
		if v == "" {
			return nil, nil
		}
		// Postgres cannot store NUL in jsonb text, and no field needs it.
		if strings.IndexByte(s, 0) >= 0 {
			return nil, r.fail("invalid_type", "must not contain NUL characters")
		}
	}
	if v == nil {
		return nil, nil
	}
	switch r.Type {
	case TypeString, TypeText, TypeEmail, TypeURL, TypePicklist:
		if s, ok := v.(string); ok {
			return s, nil
		}
		return nil, r.fail("invalid_type", "must be a string")
	case TypeNumber, TypeInteger:
		f, ok := toFloat(v)
		if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, r.fail("invalid_type", "must be a number")
		}
		if r.Type == TypeInteger && (f != math.Trunc(f) || math.Abs(f) > maxSafeInteger) {
			return nil, r.fail("invalid_type", "must be a whole number")
		}
		if f == 0 {
			f = 0 // store -0 as 0
		}
		return f, nil
	case TypeBoolean:
		switch b := v.(type) {
		case bool:
			return b, nil
		case string:
			if p, err := strconv.ParseBool(b); err == nil {
				return p, nil
			}
		}
		return nil, r.fail("invalid_type", "must be true or false")
	case TypeDate:
		switch d := v.(type) {
		case time.Time:
			return d.Format(DateLayout), nil
		case string:
			if t, err := time.Parse(DateLayout, d); err == nil {
				return t.Format(DateLayout), nil
			}
		}
		return nil, r.fail("date", "must be a date like 2006-01-02")
	case TypeDateTime:
		switch d := v.(type) {
		case time.Time:
			return d.UTC().Format(DateTimeLayout), nil
		case string:
			if t, err := time.Parse(time.RFC3339Nano, d); err == nil {
				return t.UTC().Format(DateTimeLayout), nil
			}
		}
		return nil, r.fail("datetime", "must be an RFC 3339 date and time like 2006-01-02T15:04:05Z")
	case TypeReference:
		if s, ok := v.(string); ok && isRecordID(s) {
			return s, nil
		}
		return nil, r.fail("reference", "must be a record id (rec_…)")
	}
	return nil, r.fail("invalid_type", "has an unknown type")
}

// filterText answers a filter value as the text a stored value of the field
// has in the database's JSON (what ->> gives), and as the value itself (for
// ListQuery.FilterValues): the value normalised as a write would be, so
// amount=48000.0 finds 48000 and a value the field could never hold is an
// error rather than an empty answer.
func (r *fieldRule) filterText(v string) (string, any, *FieldError) {
	nv, fe := r.normalise(v)
	if fe != nil {
		return "", nil, fe
	}
	switch x := nv.(type) {
	case string:
		return x, x, nil
	case nil:
		return "", nil, r.fail("required", "a filter needs a value")
	}
	b, err := json.Marshal(nv)
	if err != nil {
		return "", nil, r.fail("invalid_type", "cannot be a filter value")
	}
	return string(b), nv, nil
}

// value normalises v and runs the field's validator tag on what is left.
func (r *fieldRule) value(vv *validator.Validate, v any) (any, *FieldError) {
	nv, fe := r.normalise(v)
	if fe == nil && nv != nil {
		fe = r.check(vv, nv)
	}
	return nv, fe
}

// check runs the field's validator tag on a normalised, non-nil value.
func (r *fieldRule) check(v *validator.Validate, val any) *FieldError {
	if r.tag == "" {
		return nil
	}
	err := v.Var(val, r.tag)
	if err == nil {
		return nil
	}
	ves, ok := err.(validator.ValidationErrors)
	if !ok || len(ves) == 0 {
		return r.fail("invalid_type", err.Error())
	}
	return r.explain(ves[0].Tag(), ves[0].Param())
}

// explain turns a failed validator tag into a machine code and a message.
func (r *fieldRule) explain(tag, param string) *FieldError {
	textual := r.Type != TypeNumber && r.Type != TypeInteger
	switch tag {
	case "min":
		if textual {
			return r.fail("min", "must be at least "+param+" characters long")
		}
		return r.fail("min", "must be at least "+param)
	case "max":
		if textual {
			return r.fail("max", "must be at most "+param+" characters long")
		}
		return r.fail("max", "must be at most "+param)
	case "email":
		return r.fail("email", "must be an email address")
	case "http_url":
		return r.fail("url", "must be an http or https URL")
	case "oneof", "picklist":
		return r.fail("one_of", "must be one of: "+strings.Join(r.Options, ", "))
	}
	return r.fail("invalid", "fails the "+tag+" check")
}

func (r *fieldRule) fail(code, msg string) *FieldError {
	return &FieldError{Field: r.Name, Code: code, Message: msg}
}

// toFloat accepts the number forms JSON decoders and Go callers produce, and
// text holding a number, since CSV and Excel cells are text.
func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(n, 64)
		return f, err == nil
	}
	return 0, false
}

// isRecordID reports whether s has the shape NewID("rec") gives.
func isRecordID(s string) bool {
	if len(s) != 4+26 || !strings.HasPrefix(s, "rec_") {
		return false
	}
	for i := 4; i < len(s); i++ {
		if strings.IndexByte(idAlphabet, s[i]) < 0 {
			return false
		}
	}
	return s[4] <= '7' // the first character holds only 3 bits
}

// sameValue compares two field values. Stored values are scalars; rules may
// set anything, which only the slow path sees.
func sameValue(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case string:
		y, ok := b.(string)
		return ok && x == y
	case float64:
		y, ok := b.(float64)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	}
	return reflect.DeepEqual(a, b)
}

// uniqueText is the text a value is compared by in unique constraints.
func uniqueText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprint(v)
}
