package records

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"
)

// Preparing a row: every step of a write that comes before the transaction
// (read the current record, normalise, validate, Before rules, plan lookup).

type action int

const (
	actCreate action = iota + 1
	actUpdate
	actDelete
	actNoop
)

// row is one batch item prepared for its transaction: everything up to and
// including the Before rules is done, the record to write is built.
type row struct {
	idx    int
	w      *Write
	s      *schema
	act    action
	now    time.Time
	before *Record // stored state; nil on create
	rec    *Record // state to write; on delete the last state
	// changes of the write; nil on delete, whose audit entry derives them.
	changes map[string]Change
	max     int64 // the plan's record cap, for creates
	ext     string
	unique  map[string]string
	afters  []*Rule
	rc      *RuleContext
	// upsertCreate marks an upsert that found no record: a duplicate on
	// insert means a concurrent writer created it, and the row is retried
	// as an update.
	upsertCreate bool
	// fromBatch marks a row prepared on the state an earlier row of the same
	// batch was to write; if that row failed, this one is retried.
	fromBatch bool
	// reserved says the transaction reserved the plan count for this row
	// with the batch's other rows (see reserveAhead).
	reserved bool
	// audit and event are the row's entries, made when the row is applied;
	// stored says the Tx wrote them with the record (RowTx), so that only
	// the event's fan-out job is left to enqueue.
	audit  *AuditEntry
	event  *Event
	stored bool
	// err and retry are the outcome of the row in partial mode.
	err   error
	retry bool
}

// prepare takes one write through every step that comes before the
// transaction: normalise, validate, Before rules, plan lookup.
func (p *Pipeline) prepare(ctx context.Context, idx int, w *Write, op Op, bs *batchState) (*row, error) {
	s, ok := p.objects[w.Object]
	if !ok {
		return nil, unknownObject(w.Object)
	}
	if w.Workspace == "" {
		return nil, fmt.Errorf("records: write names no workspace: %w", ErrNotFound)
	}
	r := &row{idx: idx, w: w, s: s, now: p.now()}
	var err error
	switch op {
	case OpInsert:
		err = p.prepareWrite(ctx, r, nil, bs)
	case OpUpdate:
		var cur *Record
		if cur, err = p.current(ctx, r, w.ID, bs); err == nil {
			err = p.prepareWrite(ctx, r, cur, bs)
		}
	case OpUpsert:
		ext := strings.TrimSpace(w.ExternalID)
		switch {
		case s.ext == nil:
			err = &ValidationError{Object: s.obj.Name, Fields: []FieldError{{Field: "external_id", Code: "unknown_field", Message: s.obj.Name + " has no external id field"}}}
		case ext == "":
			err = &ValidationError{Object: s.obj.Name, Fields: []FieldError{{Field: s.ext.Name, Code: "required", Message: "is required to upsert"}}}
		default:
			var cur *Record
			cur, err = p.byExternalID(ctx, r, ext, bs)
			switch {
			case errors.Is(err, ErrNotFound):
				r.upsertCreate = true
				err = p.prepareWrite(ctx, r, nil, bs)
			case err == nil:
				err = p.prepareWrite(ctx, r, cur, bs)
			}
		}
	case OpDelete:
		var cur *Record
		if cur, err = p.current(ctx, r, w.ID, bs); err == nil {
			err = p.prepareDelete(ctx, r, cur, bs)
		}
	default:
		err = &ValidationError{Object: s.obj.Name, Fields: []FieldError{{Field: "op", Code: "one_of", Message: "must be one of: insert, update, upsert, delete"}}}
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// current reads the record a write changes, as the batch so far leaves it,
// and checks the expected version.
func (p *Pipeline) current(ctx context.Context, r *row, id string, bs *batchState) (*Record, error) {
	ws, obj := r.w.Workspace, r.w.Object
	cur, inBatch, err := bs.get(ws, obj, id)
	if !inBatch {
		cur, err = p.st.GetRecord(ctx, ws, obj, id)
	}
	r.fromBatch = inBatch
	if err != nil {
		return nil, err
	}
	if v := r.w.ExpectedVersion; v != 0 && cur.Version != v {
		return nil, fmt.Errorf("records: %s is at version %d, not %d: %w", id, cur.Version, v, ErrConflict)
	}
	return cur, nil
}

// byExternalID finds the record an upsert matches, as the batch so far
// leaves it.
func (p *Pipeline) byExternalID(ctx context.Context, r *row, ext string, bs *batchState) (*Record, error) {
	ws, obj := r.w.Workspace, r.w.Object
	if id, ok := bs.byExt(ws, obj, ext); ok {
		r.fromBatch = true
		if id == "" {
			return nil, fmt.Errorf("records: external id %q: %w", ext, ErrNotFound)
		}
		return p.current(ctx, r, id, bs)
	}
	cur, err := p.st.GetRecordByExternalID(ctx, ws, obj, ext)
	if err != nil {
		return nil, err
	}
	if b, inBatch, _ := bs.get(ws, obj, cur.ID); inBatch {
		// An earlier row deleted the record or moved its external id.
		r.fromBatch = true
		if b == nil || b.ExternalID(&r.s.obj) != ext {
			return nil, fmt.Errorf("records: external id %q: %w", ext, ErrNotFound)
		}
		cur = b
	}
	if v := r.w.ExpectedVersion; v != 0 && cur.Version != v {
		return nil, fmt.Errorf("records: %s is at version %d, not %d: %w", cur.ID, cur.Version, v, ErrConflict)
	}
	return cur, nil
}

// prepareWrite normalises and validates a create (cur nil) or update, runs
// the Before rules, and builds the record to write.
func (p *Pipeline) prepareWrite(ctx context.Context, r *row, cur *Record, bs *batchState) error {
	s, w := r.s, r.w
	var curFields Fields
	if cur != nil {
		curFields = cur.Fields
	}
	patch, errs := p.vd.normaliseInput(s, w.Fields, strings.TrimSpace(w.ExternalID), curFields)
	after := make(Fields, len(curFields)+len(patch))
	maps.Copy(after, curFields)
	for k, v := range patch {
		if v == nil {
			delete(after, k)
		} else {
			after[k] = v
		}
	}
	create := cur == nil
	changes := diff(curFields, after)
	if len(errs) > 0 {
		errs = addRequired(s, errs, after, changes, create)
		sortFieldErrors(s, errs)
		return &ValidationError{Object: s.obj.Name, Fields: errs}
	}

	trigger, id := TriggerUpdated, ""
	if create {
		trigger, id = TriggerCreated, NewID("rec")
	} else {
		id = cur.ID
	}
	rc := &RuleContext{
		Trigger: trigger, Workspace: w.Workspace, Object: s.obj.Name, ID: id,
		Before: cur, Fields: after, Changes: changes,
		Source: source(w.Source), Actor: w.Actor, Now: r.now,
	}
	if befores := p.rules[ruleKey{s.obj.Name, trigger, Before}]; len(befores) > 0 {
		proposed := maps.Clone(after)
		for _, rule := range befores {
			if rule.When != nil && !rule.When(rc) {
				continue
			}
			if err := rule.Do(ctx, rc); err != nil {
				return vetoError(s, rule, err)
			}
			if rc.Fields == nil {
				rc.Fields = Fields{}
			}
			rc.Changes = diff(curFields, rc.Fields)
		}
		after = rc.Fields
		errs = p.recheck(s, proposed, after)
		changes = diff(curFields, after)
		rc.Changes = changes
	}
	errs = append(errs, requiredErrors(s, after, changes, create)...)
	if len(errs) > 0 {
		sortFieldErrors(s, errs)
		return &ValidationError{Object: s.obj.Name, Fields: errs}
	}

	if !create && len(changes) == 0 {
		r.act, r.rec = actNoop, cur
		return nil
	}
	r.before, r.changes = cur, changes
	if create {
		r.act = actCreate
		r.rec = &Record{ID: id, Object: s.obj.Name, Workspace: w.Workspace, Version: 1, CreatedAt: r.now, UpdatedAt: r.now, Fields: after}
		var err error
		if r.max, err = bs.planMax(ctx, p, w.Workspace); err != nil {
			return err
		}
	} else {
		r.act = actUpdate
		r.rec = &Record{ID: id, Object: s.obj.Name, Workspace: w.Workspace, Version: cur.Version + 1, CreatedAt: cur.CreatedAt, UpdatedAt: r.now, Fields: after}
	}
	r.ext = r.rec.ExternalID(&s.obj)
	if len(s.unique) > 0 {
		r.unique = make(map[string]string, len(s.unique))
		for _, u := range s.unique {
			if v, ok := after[u.Name]; ok {
				r.unique[u.Name] = uniqueText(v)
			}
		}
	}
	if afters := p.rules[ruleKey{s.obj.Name, trigger, After}]; len(afters) > 0 {
		r.afters, r.rc = afters, rc
	}
	bs.wrote(r)
	return nil
}

// recheck normalises and validates what Before rules changed, in place.
func (p *Pipeline) recheck(s *schema, proposed, after Fields) []FieldError {
	var errs []FieldError
	for k, v := range after {
		if sameValue(proposed[k], v) {
			continue
		}
		f, ok := s.fields[k]
		if !ok {
			errs = append(errs, FieldError{Field: k, Code: "unknown_field", Message: "was set by a rule but is not a field of " + s.obj.Name})
			continue
		}
		nv, fe := f.value(p.v, v)
		switch {
		case fe != nil:
			fe.Message = "set by a rule: " + fe.Message
			errs = append(errs, *fe)
		case nv == nil:
			delete(after, k)
		default:
			after[k] = nv
		}
	}
	return errs
}

// prepareDelete runs the Before rules of a delete, which may veto it.
func (p *Pipeline) prepareDelete(ctx context.Context, r *row, cur *Record, bs *batchState) error {
	s, w := r.s, r.w
	rc := &RuleContext{
		Trigger: TriggerDeleted, Workspace: w.Workspace, Object: s.obj.Name, ID: cur.ID,
		Before: cur, Fields: maps.Clone(cur.Fields), Source: source(w.Source), Actor: w.Actor, Now: r.now,
	}
	for _, rule := range p.rules[ruleKey{s.obj.Name, TriggerDeleted, Before}] {
		if rule.When != nil && !rule.When(rc) {
			continue
		}
		if err := rule.Do(ctx, rc); err != nil {
			return vetoError(s, rule, err)
		}
	}
	r.act, r.before, r.rec = actDelete, cur, cur
	if afters := p.rules[ruleKey{s.obj.Name, TriggerDeleted, After}]; len(afters) > 0 {
		r.afters, r.rc = afters, rc
	}
	bs.wrote(r)
	return nil
}
