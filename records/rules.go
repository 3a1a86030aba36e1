package records

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Trigger is the kind of write a rule reacts to.
type Trigger string

// The triggers a rule may listen on.
const (
	TriggerCreated Trigger = "created"
	TriggerUpdated Trigger = "updated"
	TriggerDeleted Trigger = "deleted"
)

// Phase says when in a write a rule runs.
type Phase int

const (
	// Before rules run after validation and before the transaction. They may
	// change RuleContext.Fields; what they set is validated again and becomes
	// part of the same write, audit entry and event. Returning an error
	// rejects the write.
	Before Phase = iota
	// After rules run inside the write's transaction, after the record and
	// its audit entry are written, with RuleContext.Tx set. Returning an
	// error rolls the whole write back. They must not change Fields, and must
	// use Tx, never the Store, for database work: on SQLite the transaction
	// holds the only connection.
	After
)

func (p Phase) String() string {
	switch p {
	case Before:
		return "before"
	case After:
		return "after"
	}
	return fmt.Sprintf("Phase(%d)", int(p))
}

// Rule is a workflow rule: on writes of Object with a trigger in On, when
// When answers true (or When is nil), Do runs in Phase. Rules of one object
// run in the order they were configured.
type Rule struct {
	Name   string
	Object string
	On     []Trigger
	Phase  Phase
	When   func(rc *RuleContext) bool
	Do     func(ctx context.Context, rc *RuleContext) error
}

// RuleContext is what a rule sees of one write.
type RuleContext struct {
	Trigger   Trigger
	Workspace string
	Object    string
	// ID is the record's id, already assigned on create.
	ID string
	// Before is the stored record before the write; nil on create.
	Before *Record
	// Fields is the record's field values after the write. Before rules may
	// change it; a key set to nil clears the field. On delete it is the last
	// state.
	Fields Fields
	// Changes maps each field that differs between Before and Fields to its
	// old and new value. It is recomputed after every Before rule that runs.
	Changes map[string]Change
	Source  Source
	Actor   Actor
	// Now is the pipeline clock's time of the write.
	Now time.Time
	// Tx is the write's transaction, set in the After phase only.
	Tx Tx
	// Record is the record as written, set in the After phase only (for
	// deletes, the last state).
	Record *Record
}

// Changed reports whether field changed in this write.
func (rc *RuleContext) Changed(field string) bool {
	_, ok := rc.Changes[field]
	return ok
}

// FieldChangedTo is an edge condition: field changed in this write, and its
// new value is value. A record that already had the value and is written
// again (with other changes) does not match. value is compared in the
// stored form: strings, float64 for numbers (Go integers are converted),
// bool.
func FieldChangedTo(field string, value any) func(*RuleContext) bool {
	value = storedForm(value)
	return func(rc *RuleContext) bool {
		c, ok := rc.Changes[field]
		return ok && sameValue(c.To, value)
	}
}

// FieldChanged is an edge condition: field changed in this write.
func FieldChanged(field string) func(*RuleContext) bool {
	return func(rc *RuleContext) bool { return rc.Changed(field) }
}

// FieldEquals is a level condition: after the write, field holds value,
// whether or not this write changed it.
func FieldEquals(field string, value any) func(*RuleContext) bool {
	value = storedForm(value)
	return func(rc *RuleContext) bool { return sameValue(rc.Fields[field], value) }
}

// ClosedWonRule is the rule the reference server ships: when an
// opportunity's stage changes to "Closed Won", closed_at is set to the time
// of the write (the pipeline's clock). Editing a won deal later does not move
// closed_at, since the stage did not change in that write; moving the stage
// away from Closed Won leaves closed_at as it was.
func ClosedWonRule() Rule {
	return Rule{
		Name:   "closed_won_sets_closed_at",
		Object: "opportunity",
		On:     []Trigger{TriggerCreated, TriggerUpdated},
		Phase:  Before,
		When:   FieldChangedTo("stage", "Closed Won"),
		Do: func(_ context.Context, rc *RuleContext) error {
			rc.Fields["closed_at"] = rc.Now.UTC().Format(DateTimeLayout)
			return nil
		},
	}
}

// ruleKey indexes rules by what selects them, so a write looks its rules up
// once instead of filtering every rule.
type ruleKey struct {
	object  string
	trigger Trigger
	phase   Phase
}

func indexRules(rules []Rule, objects map[string]*schema) (map[ruleKey][]*Rule, error) {
	idx := make(map[ruleKey][]*Rule)
	for i := range rules {
		r := &rules[i]
		name := r.Name
		if name == "" {
			name = fmt.Sprintf("#%d", i)
		}
		if _, ok := objects[r.Object]; !ok {
			return nil, fmt.Errorf("records: rule %s: unknown object %q", name, r.Object)
		}
		if r.Do == nil {
			return nil, fmt.Errorf("records: rule %s: Do is nil", name)
		}
		if len(r.On) == 0 {
			return nil, fmt.Errorf("records: rule %s: no triggers", name)
		}
		if r.Phase != Before && r.Phase != After {
			return nil, fmt.Errorf("records: rule %s: unknown phase %v", name, r.Phase)
		}
		for _, t := range r.On {
			if t != TriggerCreated && t != TriggerUpdated && t != TriggerDeleted {
				return nil, fmt.Errorf("records: rule %s: unknown trigger %q", name, t)
			}
			k := ruleKey{r.Object, t, r.Phase}
			idx[k] = append(idx[k], r)
		}
	}
	return idx, nil
}

// ruleError names the rule an action's error came from, keeping the error
// itself (and any sentinel it wraps) reachable through errors.Is and As.
func ruleError(r *Rule, err error) error {
	return fmt.Errorf("records: rule %s: %w", r.Name, err)
}

// vetoError is the error of a Before rule that rejected a write. An error
// that wraps none of the sentinels is a business rule saying no, so it is
// also answered as a validation failure (code "rule", no field) that an API
// maps to 422 rather than a server error; the rule's own error stays
// reachable through errors.Is and As.
func vetoError(s *schema, r *Rule, err error) error {
	for _, sentinel := range []error{ErrNotFound, ErrConflict, ErrDuplicate, ErrPlanLimit, ErrValidation} {
		if errors.Is(err, sentinel) {
			return ruleError(r, err)
		}
	}
	msg := "rule " + r.Name + ": " + err.Error()
	return &veto{err: err, ve: &ValidationError{Object: s.obj.Name, Fields: []FieldError{{Code: "rule", Message: msg}}}}
}

type veto struct {
	err error
	ve  *ValidationError
}

func (v *veto) Error() string   { return "records: " + v.ve.Fields[0].Message }
func (v *veto) Unwrap() []error { return []error{v.err, v.ve} }

// storedForm converts a Go number to the float64 records store numbers as,
// so conditions written with integer literals match.
func storedForm(v any) any {
	if _, isString := v.(string); isString {
		return v
	}
	if f, ok := toFloat(v); ok {
		return f
	}
	return v
}
