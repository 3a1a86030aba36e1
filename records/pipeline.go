package records

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/go-playground/validator/v10"
)

// Config configures a Pipeline. Only Store is required.
type Config struct {
	Store Store
	// Objects are the schemas records are validated against; nil means
	// DefaultObjects().
	Objects []Object
	// Rules are the workflow rules, run in this order within each phase.
	Rules []Rule
	// Plans answers each workspace's plan and so its record cap; nil means
	// NewPlans(Store, DefaultPlans(), 0). Share one Plans with the rate
	// limiter so that a plan change reaches both at once.
	Plans *Plans
	// Clock answers the time of a write; nil means time.Now.
	Clock func() time.Time
}

// Write is one record write as callers describe it.
type Write struct {
	Workspace string
	Object    string
	// ID names the record for Update and Delete; Create assigns a new one.
	ID string
	// ExternalID is the value of the object's external id field: the key
	// Upsert matches on. On Create and Update a non-empty ExternalID sets the
	// field, taking precedence over Fields.
	ExternalID string
	// Fields are the values to write. On Update (and an Upsert that finds a
	// record) only the fields given change; a nil value clears a field.
	Fields Fields
	// ExpectedVersion, when not 0, makes Update, Upsert and Delete fail with
	// ErrConflict unless the record is at this version. With 0 a write that
	// races another is retried on the newer state.
	ExpectedVersion int64
	// Source defaults to SourceAPI.
	Source Source
	Actor  Actor
}

// Pipeline is the default record pipeline: every write runs through the
// same normalise, validate, rules, plan limit, transaction steps, whether it
// comes alone or in a batch. It is safe for concurrent use.
type Pipeline struct {
	st      Store
	vd      *Validator
	v       *validator.Validate // vd's, for the hot path
	objects map[string]*schema  // vd's, for the hot path
	rules   map[ruleKey][]*Rule
	plans   *Plans
	clock   func() time.Time
}

// maxAttempts bounds how often a write that lost a race (a version conflict
// with no ExpectedVersion, a concurrent upsert of the same external id) is
// tried again on fresh state. A caller that gave no ExpectedVersion did not
// ask for a version check, so a hot record written by many clients at once
// must still take its write: with random backoff growing to 64 ms, thirty
// tries outlast contention that ten did not (under 16 writers sharing a few
// records, about one unversioned update in 3,000 still answered a conflict).
const maxAttempts = 30

// NewPipeline compiles the objects' validation rules and indexes the
// workflow rules. It fails on an invalid schema or rule, so that a bad
// configuration never reaches a write.
func NewPipeline(cfg Config) (*Pipeline, error) {
	if cfg.Store == nil {
		return nil, errors.New("records: Config.Store is nil")
	}
	objs := cfg.Objects
	if objs == nil {
		objs = DefaultObjects()
	}
	p := &Pipeline{
		st:      cfg.Store,
		objects: make(map[string]*schema, len(objs)),
		plans:   cfg.Plans,
		clock:   cfg.Clock,
	}
	if p.clock == nil {
		p.clock = time.Now
	}
	if p.plans == nil {
		var err error
		if p.plans, err = NewPlans(cfg.Store, nil, 0); err != nil {
			return nil, err
		}
	}
	vd, err := NewValidator(objs)
	if err != nil {
		return nil, err
	}
	p.vd, p.v, p.objects = vd, vd.v, vd.objects
	if p.rules, err = indexRules(slices.Clone(cfg.Rules), p.objects); err != nil {
		return nil, err
	}
	return p, nil
}

// Object answers the schema of the named object. The answer is a copy;
// changing it changes nothing in the pipeline.
func (p *Pipeline) Object(name string) (*Object, bool) { return p.vd.Object(name) }

// Objects answers every configured object, ordered by name.
func (p *Pipeline) Objects() []*Object { return p.vd.Objects() }

// Create validates and stores a new record.
func (p *Pipeline) Create(ctx context.Context, w Write) (*Record, error) {
	r, _, err := p.one(ctx, OpInsert, w)
	return r, err
}

// Update changes the fields w names of the record w.ID. An update that
// changes nothing writes nothing, emits no event, and answers the record as
// it is.
func (p *Pipeline) Update(ctx context.Context, w Write) (*Record, error) {
	r, _, err := p.one(ctx, OpUpdate, w)
	return r, err
}

// Upsert updates the record whose external id is w.ExternalID, or creates it
// when there is none; created says which.
func (p *Pipeline) Upsert(ctx context.Context, w Write) (rec *Record, created bool, err error) {
	return p.one(ctx, OpUpsert, w)
}

// Delete removes the record w.ID and answers its last state.
func (p *Pipeline) Delete(ctx context.Context, w Write) (*Record, error) {
	r, _, err := p.one(ctx, OpDelete, w)
	return r, err
}

// one is a single write: a batch of one, so that single writes and batches
// cannot drift apart.
func (p *Pipeline) one(ctx context.Context, op Op, w Write) (*Record, bool, error) {
	res, _ := p.Batch(ctx, []BatchItem{{Op: op, Write: w}}, BatchOptions{AllOrNone: true})
	return res[0].Record, res[0].Created, res[0].Err
}

// Get answers one record of the workspace.
func (p *Pipeline) Get(ctx context.Context, workspace, object, id string) (*Record, error) {
	if _, ok := p.objects[object]; !ok {
		return nil, unknownObject(object)
	}
	return p.st.GetRecord(ctx, workspace, object, id)
}

// List answers one page of records, ordered by id. q.Limit defaults to 50
// and is capped at 200; nextCursor is "" on the last page and otherwise goes
// in the next query's After.
func (p *Pipeline) List(ctx context.Context, q ListQuery) (recs []*Record, nextCursor string, err error) {
	s, ok := p.objects[q.Object]
	if !ok {
		return nil, "", unknownObject(q.Object)
	}
	var errs []FieldError
	var filter map[string]string
	var values map[string]any
	for f, val := range q.Filter {
		fr, ok := s.fields[f]
		if !ok {
			errs = append(errs, FieldError{Field: f, Code: "unknown_field", Message: "is not a field of " + q.Object})
			continue
		}
		text, typed, fe := fr.filterText(val)
		if fe != nil {
			errs = append(errs, *fe)
			continue
		}
		if filter == nil {
			filter = make(map[string]string, len(q.Filter))
			values = make(map[string]any, len(q.Filter))
		}
		filter[f], values[f] = text, typed
	}
	q.Filter, q.FilterValues = filter, values
	if len(errs) > 0 {
		sortFieldErrors(s, errs)
		return nil, "", &ValidationError{Object: q.Object, Fields: errs}
	}
	switch {
	case q.Limit <= 0:
		q.Limit = 50
	case q.Limit > 200:
		q.Limit = 200
	}
	limit := q.Limit
	q.Limit++ // one more than the page tells whether another page follows
	recs, err = p.st.ListRecords(ctx, q)
	if err != nil {
		return nil, "", err
	}
	if len(recs) > limit {
		recs = recs[:limit]
		nextCursor = recs[limit-1].ID
	}
	return recs, nextCursor, nil
}

// Events answers the workspace's committed events after the event id after
// ("" for the first), in the order they were written, at most limit.
func (p *Pipeline) Events(ctx context.Context, workspace, after string, limit int) ([]*Event, error) {
	if limit <= 0 {
		limit = 100
	}
	return p.st.ListEvents(ctx, workspace, after, limit)
}

// planMax answers the record cap of the workspace's plan.
func (p *Pipeline) planMax(ctx context.Context, workspace string) (int64, error) {
	pl, err := p.plans.Of(ctx, workspace)
	if err != nil {
		return 0, err
	}
	return pl.MaxRecords, nil
}

// Plans answers the plan lookup the pipeline's record cap reads.
func (p *Pipeline) Plans() *Plans { return p.plans }

// now is the time of a write, cut to what both databases store exactly, so
// the record a write answers equals the record a read answers.
func (p *Pipeline) now() time.Time {
	return p.clock().UTC().Truncate(time.Microsecond)
}

func unknownObject(name string) error {
	return fmt.Errorf("records: unknown object %q: %w", name, ErrNotFound)
}

// requiredErrors names the required fields after lacks. On create every
// required field counts; on update only those the write clears, so that a
// field made required later does not block unrelated edits.
func requiredErrors(s *schema, after Fields, changes map[string]Change, create bool) []FieldError {
	var errs []FieldError
	for _, f := range s.obj.Fields {
		if !f.Required || after[f.Name] != nil {
			continue
		}
		if _, changed := changes[f.Name]; create || changed {
			errs = append(errs, FieldError{Field: f.Name, Code: "required", Message: "is required"})
		}
	}
	return errs
}

// sortFieldErrors orders errors as the schema orders fields, unknown fields
// last by name, so messages are stable.
func sortFieldErrors(s *schema, errs []FieldError) {
	pos := func(name string) int {
		if r, ok := s.fields[name]; ok {
			return r.pos
		}
		return len(s.obj.Fields)
	}
	sort.SliceStable(errs, func(i, j int) bool {
		pi, pj := pos(errs[i].Field), pos(errs[j].Field)
		if pi != pj {
			return pi < pj
		}
		return errs[i].Field < errs[j].Field
	})
}

// diff maps every field whose value differs between before and after.
func diff(before, after Fields) map[string]Change {
	changes := make(map[string]Change)
	for k, v := range after {
		if w := before[k]; !sameValue(w, v) {
			changes[k] = Change{From: w, To: v}
		}
	}
	for k, v := range before {
		if _, ok := after[k]; !ok && v != nil {
			changes[k] = Change{From: v, To: nil}
		}
	}
	return changes
}
