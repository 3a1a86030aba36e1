package ingest

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/smartlite/crmkit/records"
)

// Undo queues a job that reverses the completed job id through the
// pipeline: the records it created are deleted and the records it updated
// get back the values their changed fields had before, each only if the
// record is still at the version the job left it at. A record changed
// since is left alone, its result failed with CodeChangedSince. A record
// the job deleted cannot be brought back under its id: its result fails
// with CodeNotUndoable. The undo job's results are numbered by the rows of
// the job it reverses (the first row that wrote each record).
func (b *Bulk) Undo(ctx context.Context, workspace, id string, actor records.Actor) (*Job, error) {
	orig, err := b.st.GetBulkJob(ctx, workspace, id)
	if err != nil {
		return nil, err
	}
	switch {
	case orig.Operation == OpUndo:
		return nil, fmt.Errorf("ingest: job %s is an undo; run the original job again instead: %w", id, ErrJobState)
	case orig.ValidateOnly:
		return nil, fmt.Errorf("ingest: job %s was validate_only and wrote nothing: %w", id, ErrJobState)
	case orig.State != StateCompleted:
		return nil, fmt.Errorf("ingest: job %s is %s; only a completed job can be undone: %w", id, orig.State, ErrJobState)
	}
	now := b.now()
	j := &Job{
		ID: records.NewID("job"), Workspace: workspace, Object: orig.Object, Operation: OpUndo,
		Mode: ModePartial, Format: orig.Format, State: StateQueued, UndoOf: orig.ID, Actor: actor,
		CreatedAt: now, HeartbeatAt: &now,
	}
	if err := b.st.CreateBulkJob(ctx, j); err != nil {
		return nil, err
	}
	return j, nil
}

// undoTarget is one record an undo reverses.
type undoTarget struct {
	row     int64
	id      string
	created bool
	deleted bool
	version int64
	before  records.Fields
}

// undoTargets reads the job's succeeded results and answers, in the order
// of the row that first wrote each record, what to do to it: a record
// written by several rows is reversed once, to its state before the first.
func (b *Bulk) undoTargets(ctx context.Context, jobID string) ([]*undoTarget, error) {
	var order []*undoTarget
	byID := map[string]*undoTarget{}
	var after int64
	for {
		page, err := b.st.ListBulkResults(ctx, jobID, RowSucceeded, after, 1000)
		if err != nil {
			return nil, err
		}
		for _, r := range page {
			after = r.Row
			if r.RecordID == "" || r.Action == RowUnchanged {
				continue
			}
			t := byID[r.RecordID]
			if t == nil {
				t = &undoTarget{row: r.Row, id: r.RecordID, before: records.Fields{}}
				byID[r.RecordID] = t
				order = append(order, t)
				t.created = r.Action == RowCreated
			}
			t.version = r.Version
			switch r.Action {
			case RowDeleted:
				t.deleted = true
			case RowUpdated:
				for f, v := range r.Before {
					if _, seen := t.before[f]; !seen {
						t.before[f] = v
					}
				}
			}
		}
		if len(page) < 1000 {
			break
		}
	}
	out := order[:0]
	for _, t := range order {
		if t.created && t.deleted {
			continue // created and deleted by the job: nothing is left to undo
		}
		out = append(out, t)
	}
	return out, nil
}

func (b *Bulk) runUndo(ctx context.Context, j *Job) error {
	targets, err := b.undoTargets(ctx, j.UndoOf)
	if err != nil {
		return err
	}
	if j.Rows != int64(len(targets)) {
		if j, err = b.st.UpdateBulkJob(ctx, "", j.ID, func(j *Job) (bool, error) {
			j.Rows = int64(len(targets))
			return false, nil
		}); err != nil {
			return err
		}
	}
	readOnly := map[string]bool{}
	if on, ok := b.p.(objectNamer); ok {
		if o, ok := on.Object(j.Object); ok {
			for _, f := range o.Fields {
				readOnly[f.Name] = f.ReadOnly
			}
		}
	}
	at := j.Processed
	for at < int64(len(targets)) {
		batch := targets[at:min(int64(len(targets)), at+int64(b.cfg.BatchSize))]
		var res []RowResult
		err := b.st.InTx(ctx, func(ctx context.Context, _ records.Tx) error {
			var err error
			if res, err = b.undoBatch(ctx, j, batch, readOnly); err != nil {
				return err
			}
			if err := b.st.PutBulkResults(ctx, j.ID, res); err != nil {
				return err
			}
			ok, err := b.st.AdvanceBulkJob(ctx, j.ID, at, count(res), b.now())
			if err == nil && !ok {
				err = errMovedOn
			}
			return err
		})
		if err != nil {
			return err
		}
		at += int64(len(batch))
		b.report(res)
	}
	return b.finish(ctx, j.ID, StateCompleted, "", nil)
}

func (b *Bulk) undoBatch(ctx context.Context, j *Job, batch []*undoTarget, readOnly map[string]bool) ([]RowResult, error) {
	res := make([]RowResult, len(batch))
	var items []records.BatchItem
	var pos []int
	for i, t := range batch {
		res[i] = RowResult{Row: t.row, RecordID: t.id}
		w := records.Write{Workspace: j.Workspace, Object: j.Object, ID: t.id, ExpectedVersion: t.version,
			Source: records.SourceBulk, Actor: j.Actor}
		var op records.Op
		switch {
		case t.deleted:
			res[i].Status = RowFailed
			res[i].Error = &ResultError{Code: CodeNotUndoable, Message: "the job deleted this record; a delete cannot be undone"}
			continue
		case t.created:
			op = records.OpDelete
		default:
			op = records.OpUpdate
			w.Fields = maps.Clone(t.before)
			for f := range w.Fields {
				if readOnly[f] {
					delete(w.Fields, f) // rules own read-only fields
				}
			}
		}
		items = append(items, records.BatchItem{Op: op, Write: w})
		pos = append(pos, i)
	}
	if len(items) == 0 {
		return res, nil
	}
	out, err := b.p.Batch(ctx, items, records.BatchOptions{})
	if err != nil {
		return nil, err
	}
	for k, o := range out {
		r := &res[pos[k]]
		switch {
		case errors.Is(o.Err, records.ErrConflict):
			r.Status = RowFailed
			r.Error = &ResultError{Code: CodeChangedSince, Message: "the record changed after the job wrote it; it was left as it is"}
		case o.Err != nil:
			r.Status, r.Error = RowFailed, resultError(o.Err)
		default:
			r.Status, r.Action = RowSucceeded, RowUpdated
			if items[k].Op == records.OpDelete {
				r.Action = RowDeleted
			} else if o.Changes != nil && len(o.Changes) == 0 {
				r.Action = RowUnchanged
			}
			if o.Record != nil {
				r.Version = o.Record.Version
			}
		}
	}
	return res, nil
}
