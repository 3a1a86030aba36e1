package records

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"time"
)

// Op is what a batch item does.
type Op string

// The operations of a batch item. Their values are the names bulk job files
// use.
const (
	OpInsert Op = "insert"
	OpUpdate Op = "update"
	OpUpsert Op = "upsert"
	OpDelete Op = "delete"
)

// BatchItem is one row of a batch.
type BatchItem struct {
	Op    Op
	Write Write
}

// BatchOptions say how a batch fails and whether it is kept.
type BatchOptions struct {
	// AllOrNone writes every row or none: the first failing row fails the
	// batch. Otherwise (partial mode) each row succeeds or fails alone.
	AllOrNone bool
	// DryRun runs every step, rules and plan limits included, in a
	// transaction that is then rolled back; results say what would have
	// happened.
	DryRun bool
}

// BatchResult is the outcome of one row: the record written (for deletes,
// its last state; for a no-op update, the record as it is) or the row's
// error. Created is true when the row inserted a record.
type BatchResult struct {
	Record  *Record
	Created bool
	Err     error
}

// RowWrite is the whole write of one created or updated record: the plan
// reservation, the record, its audit entry and its event.
type RowWrite struct {
	// Record is the state to store. On an update its Version is already the
	// new version, and the stored version must be Version-1.
	Record *Record
	// Create says Record is new; otherwise it updates the stored record.
	Create bool
	// ExternalID and Unique are as for Tx.InsertRecord and Tx.UpdateRecord.
	ExternalID string
	Unique     map[string]string
	// Reserve, on a create, reserves one place of the workspace's plan
	// first, as Tx.ReserveRecords(workspace, 1, Max) does.
	Reserve bool
	Max     int64
	Audit   *AuditEntry
	Event   *Event
}

// RowTx is a Tx that writes a RowWrite in one step: on Postgres one
// statement instead of one round trip for each of the reservation, the
// record, the audit entry and the event. The pipeline uses it for creates
// and updates when the Store's Tx implements it, as the store package's does
// on Postgres.
type RowTx interface {
	Tx
	// WriteRow does what ReserveRecords (when w.Reserve), InsertRecord or
	// UpdateRecord, InsertAudit and InsertEvents do for one row, failing
	// with the same errors, except that it enqueues no fan-out job: the
	// pipeline calls EnqueueFanout once for all the events of a batch.
	WriteRow(ctx context.Context, w *RowWrite) error
	// EnqueueFanout enqueues one FanoutArgs job per event, for events
	// WriteRow stored.
	EnqueueFanout(ctx context.Context, events ...*Event) error
}

// errDryRun rolls back a dry run's transaction.
var errDryRun = errors.New("records: dry run")

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

// Batch runs items through the pipeline in one transaction. Every row takes
// the steps a single write takes (single writes are batches of one), and
// gets its own audit entry and event; the batch's audit entries and events
// are inserted with one call each, or, on a RowTx, with their rows, and
// their fan-out jobs are enqueued with one call.
//
// In all-or-none mode a failing row fails the batch: its result carries its
// error, every other row's error wraps ErrBatchAborted, and the returned
// error names the row. Rows that fail validation are all reported before
// anything is written. In partial mode the returned error is nil unless the
// batch as a whole failed (the transaction could not commit); row errors
// are in the results.
//
// Rows are prepared (read, validated, Before rules) before the transaction
// opens, later rows seeing what earlier rows of the batch will write, so the
// transaction holds its connection only for writing.
func (p *Pipeline) Batch(ctx context.Context, items []BatchItem, opts BatchOptions) ([]BatchResult, error) {
	results := make([]BatchResult, len(items))
	pending := make([]int, len(items))
	for i := range pending {
		pending[i] = i
	}
	for attempt := 1; len(pending) > 0; attempt++ {
		last := attempt >= maxAttempts
		bs := newBatchState(len(pending) > 1)
		rows := make([]*row, 0, len(pending))
		firstFailed := -1
		for _, i := range pending {
			r, err := p.prepare(ctx, i, &items[i].Write, items[i].Op, bs)
			if err != nil {
				results[i] = BatchResult{Err: err}
				if firstFailed < 0 {
					firstFailed = i
				}
				continue
			}
			rows = append(rows, r)
		}
		if opts.AllOrNone && firstFailed >= 0 {
			// Every row was prepared, so the answer names every row that
			// fails validation, not only the first.
			for _, r := range rows {
				results[r.idx] = BatchResult{Err: aborted(firstFailed)}
			}
			return results, fmt.Errorf("records: batch row %d: %w", firstFailed, results[firstFailed].Err)
		}
		retry, failed, err := p.write(ctx, rows, opts, last)
		if err != nil {
			if opts.AllOrNone {
				if failed != nil && !last && p.retryable(failed, err) {
					if err := backoff(ctx, attempt); err != nil {
						return abortAll(results, -1, err)
					}
					continue
				}
				idx := -1
				if failed != nil {
					idx = failed.idx
				}
				return abortAll(results, idx, err)
			}
			for _, r := range rows {
				results[r.idx] = BatchResult{Err: err}
			}
			return results, err
		}
		for _, r := range rows {
			switch {
			case r.retry:
			case r.err != nil:
				results[r.idx] = BatchResult{Err: r.err}
			default:
				results[r.idx] = BatchResult{Record: r.rec, Created: r.act == actCreate}
			}
		}
		pending = retry
		if len(pending) > 0 {
			if err := backoff(ctx, attempt); err != nil {
				for _, i := range pending {
					results[i] = BatchResult{Err: err}
				}
				return results, err
			}
		}
	}
	return results, nil
}

// backoff waits a random time that grows with attempt before a write that
// lost a race is tried again, so racing writers spread out instead of
// colliding again.
func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func aborted(row int) error {
	return fmt.Errorf("records: not written, row %d failed: %w", row, ErrBatchAborted)
}

// abortAll ends an all-or-none batch that failed in its transaction: row
// idx (or, when idx < 0, the batch as a whole) failed with err.
func abortAll(results []BatchResult, idx int, err error) ([]BatchResult, error) {
	for j := range results {
		switch {
		case j == idx:
			results[j] = BatchResult{Err: err}
		case idx < 0:
			results[j] = BatchResult{Err: err}
		default:
			results[j] = BatchResult{Err: aborted(idx)}
		}
	}
	if idx < 0 {
		return results, err
	}
	return results, fmt.Errorf("records: batch row %d: %w", idx, err)
}

// write runs the prepared rows in one transaction. It answers the rows to
// try again (partial mode), and on failure of the transaction the error and,
// in all-or-none mode, the row that caused it.
//
// A partial batch first runs without savepoints, since on Postgres each
// savepoint costs two round trips and many of them slow the whole
// transaction down. When a row fails, that pass is rolled back and the batch
// runs again: the rows before the failing one as before, the failing row
// settled with the error it had, and the rows after it each in a savepoint.
func (p *Pipeline) write(ctx context.Context, rows []*row, opts BatchOptions, last bool) (retry []int, failed *row, err error) {
	writes := 0
	for _, r := range rows {
		if r.act != actNoop {
			writes++
		}
	}
	if writes == 0 {
		return nil, nil, nil
	}
	run := &txRun{p: p, rows: rows, opts: opts, last: last, savepointFrom: len(rows)}
	for {
		err = p.st.InTx(ctx, run.do)
		var rf *rowFailure
		if errors.As(err, &rf) {
			r := rows[rf.pos]
			if !last && p.retryable(r, rf.err) {
				r.retry = true
			} else {
				r.err = rf.err
			}
			run.savepointFrom = rf.pos + 1
			continue
		}
		break
	}
	if errors.Is(err, errDryRun) {
		err = nil
	}
	return run.retry, run.failed, err
}

// rowFailure ends a partial batch's pass without savepoints at the row at
// pos, which failed with err.
type rowFailure struct {
	pos int
	err error
}

func (f *rowFailure) Error() string { return "records: row failed: " + f.err.Error() }
func (f *rowFailure) Unwrap() error { return f.err }

// txRun is one batch round's transaction, possibly run more than once (see
// write).
type txRun struct {
	p    *Pipeline
	rows []*row
	opts BatchOptions
	last bool
	// savepointFrom is the position of the first row that runs in a
	// savepoint (partial mode only); len(rows) when none does.
	savepointFrom int

	retry  []int
	failed *row
}

func (t *txRun) do(ctx context.Context, tx Tx) error {
	t.retry, t.failed = nil, nil
	for _, r := range t.rows[t.savepointFrom:] {
		r.err, r.retry = nil, false
	}
	ahead, err := t.reserveAhead(ctx, tx)
	if err != nil {
		return err
	}
	audits := make([]*AuditEntry, 0, len(t.rows))
	events := make([]*Event, 0, len(t.rows))
	var fanout []*Event
	for pos, r := range t.rows {
		if r.act == actNoop || r.err != nil {
			continue
		}
		if r.retry {
			t.retry = append(t.retry, r.idx)
			continue
		}
		a := ahead[r.rec.Workspace]
		r.reserved = a != nil
		var err error
		if t.opts.AllOrNone || pos < t.savepointFrom {
			err = t.p.apply(ctx, tx, r)
		} else {
			err = tx.Savepoint(ctx, func(ctx context.Context) error { return t.p.apply(ctx, tx, r) })
		}
		if err != nil {
			switch {
			case t.opts.AllOrNone:
				t.failed = r
				return err
			case pos < t.savepointFrom:
				return &rowFailure{pos: pos, err: err}
			case !t.last && t.p.retryable(r, err):
				r.retry = true
				t.retry = append(t.retry, r.idx)
			default:
				r.err = err
			}
			continue
		}
		if r.reserved {
			switch r.act {
			case actCreate:
				a.unused--
			case actDelete:
				a.deleted++
			}
		}
		if r.stored {
			fanout = append(fanout, r.event)
		} else {
			audits = append(audits, r.audit)
			events = append(events, r.event)
		}
	}
	if err := t.settle(ctx, tx, ahead); err != nil {
		return err
	}
	if t.opts.DryRun {
		return errDryRun
	}
	if len(fanout) > 0 {
		if err := tx.(RowTx).EnqueueFanout(ctx, fanout...); err != nil {
			return err
		}
	}
	if len(audits) == 0 {
		return nil
	}
	if err := tx.InsertAudit(ctx, audits...); err != nil {
		return err
	}
	return tx.InsertEvents(ctx, events...)
}

// reservation is the plan count a batch moved ahead for one workspace: the
// places reserved for its creates and not (yet) used, and the records its
// deletes removed.
type reservation struct {
	unused  int64
	deleted int64
}

// reserveAhead reserves, per workspace, the places all the batch's creates
// need with one ReserveRecords, instead of one per row. Where that would
// pass the plan's cap, the workspace is left out, and its rows reserve one
// by one in row order, so exactly the rows past the cap fail. So is a
// workspace with a single create (every single create): one reservation
// either way, and the row's own is the same statement as its record on a
// RowTx.
func (t *txRun) reserveAhead(ctx context.Context, tx Tx) (map[string]*reservation, error) {
	need := make(map[string]int64, 1)
	caps := make(map[string]int64, 1)
	var order []string
	for _, r := range t.rows {
		if r.act == actNoop || r.err != nil || r.retry {
			continue
		}
		ws := r.rec.Workspace
		if _, seen := need[ws]; !seen {
			order = append(order, ws)
			need[ws] = 0
		}
		if r.act == actCreate {
			need[ws]++
			caps[ws] = r.max
		}
	}
	ahead := make(map[string]*reservation, len(order))
	for _, ws := range order {
		n := need[ws]
		if n == 1 {
			continue
		}
		if n > 0 {
			err := tx.ReserveRecords(ctx, ws, n, caps[ws])
			if errors.Is(err, ErrPlanLimit) {
				continue
			}
			if err != nil {
				return nil, err
			}
		}
		ahead[ws] = &reservation{unused: n}
	}
	return ahead, nil
}

// settle gives back the places reserved ahead that failed rows did not use,
// and counts the deletes, one ReserveRecords per workspace.
func (t *txRun) settle(ctx context.Context, tx Tx, ahead map[string]*reservation) error {
	for ws, a := range ahead {
		if d := -(a.unused + a.deleted); d != 0 {
			if err := tx.ReserveRecords(ctx, ws, d, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

// retryable reports whether err means r lost a race it may win on fresh
// state.
func (p *Pipeline) retryable(r *row, err error) bool {
	switch {
	case errors.Is(err, ErrConflict):
		return r.w.ExpectedVersion == 0 || r.fromBatch
	case errors.Is(err, ErrDuplicate):
		return r.upsertCreate
	case errors.Is(err, ErrNotFound):
		return r.fromBatch
	}
	return false
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

// apply is the transactional part of one row: the plan's record count, the
// record itself, then the After rules. A create or update on a RowTx also
// writes the row's audit entry and event, with the record.
func (p *Pipeline) apply(ctx context.Context, tx Tx, r *row) error {
	rec := r.rec
	r.audit, r.event = r.entries()
	r.stored = false
	rt, rowTx := tx.(RowTx)
	switch {
	case rowTx && (r.act == actCreate || r.act == actUpdate):
		w := &RowWrite{
			Record: rec, Create: r.act == actCreate, ExternalID: r.ext, Unique: r.unique,
			Reserve: r.act == actCreate && !r.reserved, Max: r.max,
			Audit: r.audit, Event: r.event,
		}
		if err := rt.WriteRow(ctx, w); err != nil {
			return err
		}
		r.stored = true
	case r.act == actCreate:
		if !r.reserved {
			if err := tx.ReserveRecords(ctx, rec.Workspace, 1, r.max); err != nil {
				return err
			}
		}
		if err := tx.InsertRecord(ctx, rec, r.ext, r.unique); err != nil {
			return err
		}
	case r.act == actUpdate:
		if err := tx.UpdateRecord(ctx, rec, r.ext, r.unique); err != nil {
			return err
		}
	case r.act == actDelete:
		if err := tx.DeleteRecord(ctx, rec.Workspace, rec.Object, rec.ID, rec.Version); err != nil {
			return err
		}
		if !r.reserved {
			if err := tx.ReserveRecords(ctx, rec.Workspace, -1, 0); err != nil {
				return err
			}
		}
	}
	if len(r.afters) == 0 {
		return nil
	}
	rc := r.rc
	rc.Tx, rc.Record = tx, rec
	defer func() { rc.Tx = nil }()
	for _, rule := range r.afters {
		if rule.When != nil && !rule.When(rc) {
			continue
		}
		if err := rule.Do(ctx, rc); err != nil {
			return ruleError(rule, err)
		}
	}
	return nil
}

// entries builds the audit entry and the event of a written row.
func (r *row) entries() (*AuditEntry, *Event) {
	rec := r.rec
	a := &AuditEntry{
		ID: NewID("aud"), Workspace: rec.Workspace, Object: rec.Object, RecordID: rec.ID,
		Source: source(r.w.Source), Actor: r.w.Actor, Changes: r.changes, CreatedAt: r.now,
	}
	e := &Event{
		ID: NewID("evt"), CreatedAt: r.now, Workspace: rec.Workspace, Object: rec.Object, RecordID: rec.ID,
		Record: rec, Changes: r.changes, Source: a.Source, Actor: a.Actor,
	}
	switch r.act {
	case actCreate:
		a.Action, e.Type = "create", EventCreated
	case actUpdate:
		a.Action, e.Type = "update", EventUpdated
	case actDelete:
		a.Action, e.Type = "delete", EventDeleted
		a.Changes = make(map[string]Change, len(rec.Fields))
		for k, v := range rec.Fields {
			a.Changes[k] = Change{From: v}
		}
	}
	return a, e
}

func source(s Source) Source {
	if s == "" {
		return SourceAPI
	}
	return s
}

// batchState is what one round of a batch knows beyond the store: the
// records earlier rows will write (nil for deleted) and the external ids
// they hold, and the plans of the workspaces seen.
type batchState struct {
	recs  map[string]*Record
	ext   map[string]string
	plans map[string]int64
}

func newBatchState(multi bool) *batchState {
	if !multi {
		return &batchState{}
	}
	return &batchState{recs: map[string]*Record{}, ext: map[string]string{}}
}

func recKey(ws, obj, id string) string { return ws + "\x00" + obj + "\x00" + id }

func (bs *batchState) get(ws, obj, id string) (*Record, bool, error) {
	rec, ok := bs.recs[recKey(ws, obj, id)]
	if !ok {
		return nil, false, nil
	}
	if rec == nil {
		return nil, true, fmt.Errorf("records: %s was deleted earlier in the batch: %w", id, ErrNotFound)
	}
	return rec, true, nil
}

func (bs *batchState) byExt(ws, obj, ext string) (string, bool) {
	id, ok := bs.ext[recKey(ws, obj, ext)]
	return id, ok
}

// wrote remembers what a prepared row will write, for the rows after it.
func (bs *batchState) wrote(r *row) {
	if bs.recs == nil {
		return
	}
	rec := r.rec
	k := recKey(rec.Workspace, rec.Object, rec.ID)
	var old string
	if r.before != nil {
		old = r.before.ExternalID(&r.s.obj)
	}
	if r.act == actDelete {
		bs.recs[k] = nil
		if old != "" {
			bs.ext[recKey(rec.Workspace, rec.Object, old)] = ""
		}
		return
	}
	bs.recs[k] = rec
	if old != "" && old != r.ext {
		bs.ext[recKey(rec.Workspace, rec.Object, old)] = ""
	}
	if r.ext != "" {
		bs.ext[recKey(rec.Workspace, rec.Object, r.ext)] = rec.ID
	}
}

func (bs *batchState) planMax(ctx context.Context, p *Pipeline, ws string) (int64, error) {
	if m, ok := bs.plans[ws]; ok {
		return m, nil
	}
	m, err := p.planMax(ctx, ws)
	if err != nil {
		return 0, err
	}
	if bs.plans == nil {
		bs.plans = make(map[string]int64, 1)
	}
	bs.plans[ws] = m
	return m, nil
}
