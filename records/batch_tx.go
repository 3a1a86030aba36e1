package records

import (
	"context"
	"errors"
)

// The transaction: writing prepared rows, their audit entries and events,
// and the After rules, in one database transaction per batch round.

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
		if opts.Commit != nil && !opts.DryRun {
			return nil, nil, p.st.InTx(ctx, func(ctx context.Context, _ Tx) error { return opts.Commit(ctx) })
		}
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
	if t.opts.Commit != nil && len(t.retry) == 0 {
		if err := t.opts.Commit(ctx); err != nil {
			return err
		}
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
