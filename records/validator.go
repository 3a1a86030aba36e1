package records

import (
	"fmt"
	"slices"
	"sort"

	"github.com/go-playground/validator/v10"
)

// Validator checks and normalises field values against a set of objects,
// compiled once. A Pipeline has one; it is usable alone where no database is
// at hand. It is safe for concurrent use.
type Validator struct {
	v       *validator.Validate
	objects map[string]*schema
	names   []string
}

// NewValidator compiles objects into per-field rules. It fails on an invalid
// schema: an unknown type, a picklist without options, a reference to an
// object not among objects, an external id field that is missing or not a
// string.
func NewValidator(objects []Object) (*Validator, error) {
	known := make(map[string]bool, len(objects))
	for _, o := range objects {
		if known[o.Name] {
			return nil, fmt.Errorf("records: object %s defined twice", o.Name)
		}
		known[o.Name] = true
	}
	c := newCompiler()
	vd := &Validator{v: c.v, objects: make(map[string]*schema, len(objects))}
	for _, o := range objects {
		s, err := c.compile(o, known)
		if err != nil {
			return nil, err
		}
		vd.objects[o.Name] = s
		vd.names = append(vd.names, o.Name)
	}
	sort.Strings(vd.names)
	return vd, nil
}

// Object answers the schema of the named object. The answer is a copy;
// changing it changes nothing in the validator.
func (vd *Validator) Object(name string) (*Object, bool) {
	s, ok := vd.objects[name]
	if !ok {
		return nil, false
	}
	o := s.obj
	o.Fields = slices.Clone(o.Fields)
	return &o, true
}

// Objects answers every object, ordered by name.
func (vd *Validator) Objects() []*Object {
	out := make([]*Object, 0, len(vd.names))
	for _, n := range vd.names {
		o, _ := vd.Object(n)
		out = append(out, o)
	}
	return out
}

// Validate normalises and validates the fields of a new record of object,
// as Create would before running rules, answering the fields as they would
// be stored, or a *ValidationError naming every failing field. An unknown
// object is ErrNotFound.
func (vd *Validator) Validate(object string, fields Fields) (Fields, error) {
	s, ok := vd.objects[object]
	if !ok {
		return nil, unknownObject(object)
	}
	patch, errs := vd.normaliseInput(s, fields, "", nil)
	out := make(Fields, len(patch))
	for k, v := range patch {
		if v != nil {
			out[k] = v
		}
	}
	errs = addRequired(s, errs, out, nil, true)
	if len(errs) > 0 {
		sortFieldErrors(s, errs)
		return nil, &ValidationError{Object: object, Fields: errs}
	}
	return out, nil
}

// normaliseInput checks the caller's fields of one write against the schema
// and answers them normalised (nil for a cleared field). current is the
// stored state on update, nil on create. ext, when not "", is the external
// id the write carries outside Fields.
func (vd *Validator) normaliseInput(s *schema, in Fields, ext string, current Fields) (Fields, []FieldError) {
	out := make(Fields, len(in)+1)
	var errs []FieldError
	put := func(name string, v any) {
		r, ok := s.fields[name]
		if !ok {
			errs = append(errs, FieldError{Field: name, Code: "unknown_field", Message: "is not a field of " + s.obj.Name})
			return
		}
		nv, fe := r.value(vd.v, v)
		if fe != nil {
			errs = append(errs, *fe)
			return
		}
		// Echoing a read-only field's current value is allowed, so a client
		// can send back the record it read.
		if r.ReadOnly && !sameValue(nv, current[name]) {
			errs = append(errs, FieldError{Field: name, Code: "read_only", Message: "is read-only"})
			return
		}
		out[name] = nv
	}
	for k, v := range in {
		if s.ext != nil && k == s.ext.Name && ext != "" {
			continue
		}
		put(k, v)
	}
	if ext != "" {
		if s.ext == nil {
			errs = append(errs, FieldError{Field: "external_id", Code: "unknown_field", Message: s.obj.Name + " has no external id field"})
		} else {
			put(s.ext.Name, ext)
		}
	}
	return out, errs
}

// addRequired adds to the errors of invalid input the required fields that
// are missing, so one answer names every failing field. It leaves out
// fields that already failed, and read-only ones, which a rule might have
// filled had the input been valid.
func addRequired(s *schema, errs []FieldError, after Fields, changes map[string]Change, create bool) []FieldError {
	failed := make(map[string]bool, len(errs))
	for _, fe := range errs {
		failed[fe.Field] = true
	}
	for _, fe := range requiredErrors(s, after, changes, create) {
		if !failed[fe.Field] && !s.fields[fe.Field].ReadOnly {
			errs = append(errs, fe)
		}
	}
	return errs
}
