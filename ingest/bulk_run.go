package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smartlite/crmkit/records"
)

// Running a job: its rows are read back from the stored data and written
// through the pipeline a batch at a time.
//
// In partial mode each batch commits in one transaction with its results
// and the job's new counts, guarded by the count the batch started from, so
// a worker that takes a job over after a crash resumes after the last
// committed batch, and no row is written twice or lost.
//
// An all-or-none or validate_only job runs every batch in one transaction,
// each row as in partial mode so that every failing row is named. Then
// that transaction commits (all-or-none, no row failed) or rolls back
// (validate_only, or a row failed), and the results are stored: the
// results of a validate_only job are those the real run would have given.

var (
	errSkip     = errors.New("ingest: job is not for this worker")
	errAborted  = errors.New("ingest: job aborted")
	errRollback = errors.New("ingest: roll back")
	errMovedOn  = errors.New("ingest: another worker moved the job on")
)

// Run runs the job id; the River worker calls it. A job in a terminal
// state, or running under another worker's live lease, is left alone.
func (b *Bulk) Run(ctx context.Context, id string) error {
	j, err := b.claim(ctx, id)
	if errors.Is(err, errSkip) {
		return nil
	}
	if err != nil {
		return err
	}
	hbCtx, stopHB := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); b.heartbeat(hbCtx, id) }()
	defer func() { stopHB(); wg.Wait() }()

	switch {
	case j.Operation == OpUndo:
		err = b.runUndo(ctx, j)
	case j.Mode == ModeAllOrNone || j.ValidateOnly:
		err = b.runWhole(ctx, j)
	default:
		err = b.runPartial(ctx, j)
	}
	stopHB()
	wg.Wait()
	switch {
	case errors.Is(err, errAborted), errors.Is(err, errMovedOn):
		return nil
	case err != nil && ctx.Err() == nil && isFatal(err):
		return b.fail(context.WithoutCancel(ctx), j, err)
	case err != nil:
		// River runs the job again: let that run claim it at once, not
		// after this worker's lease has lapsed.
		b.release(context.WithoutCancel(ctx), id)
	}
	return err
}

// release gives up this worker's lease of a running job, so that the next
// run claims it without waiting for the lease to lapse. A failure to
// release leaves the lease to lapse.
func (b *Bulk) release(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Lease/4)
	defer cancel()
	_, _ = b.st.UpdateBulkJob(ctx, "", id, func(j *Job) (bool, error) {
		if j.State != StateRunning {
			return false, errSkip
		}
		j.HeartbeatAt = nil
		return false, nil
	})
}

// isFatal tells errors that running the job again cannot mend.
func isFatal(err error) bool { return errors.Is(err, ErrBadData) }

// claim makes the job running under this worker: a queued job, or a running
// one whose lease lapsed (its worker died).
func (b *Bulk) claim(ctx context.Context, id string) (*Job, error) {
	j, err := b.st.UpdateBulkJob(ctx, "", id, func(j *Job) (bool, error) {
		now := b.now()
		switch {
		case j.State == StateQueued:
			j.State, j.StartedAt = StateRunning, &now
		case j.State == StateRunning && (j.HeartbeatAt == nil || now.Sub(*j.HeartbeatAt) > b.cfg.Lease):
		default:
			return false, errSkip
		}
		j.HeartbeatAt = &now
		return false, nil
	})
	if errors.Is(err, records.ErrNotFound) {
		return nil, errSkip
	}
	return j, err
}

// heartbeat renews the lease of a running job until ctx ends. A failed
// renewal (the database busy with the job's own transaction, on SQLite) is
// not an error: the next one tries again.
func (b *Bulk) heartbeat(ctx context.Context, id string) {
	t := time.NewTicker(b.cfg.Lease / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, b.cfg.Lease/4)
		_, err := b.st.UpdateBulkJob(hctx, "", id, func(j *Job) (bool, error) {
			if j.State != StateRunning {
				return false, errSkip
			}
			now := b.now()
			j.HeartbeatAt = &now
			return false, nil
		})
		cancel()
		if err != nil && !errors.Is(err, errSkip) && ctx.Err() == nil {
			b.log.LogAttrs(ctx, slog.LevelDebug, "bulk job heartbeat", slog.String("job", id), slog.String("error", err.Error()))
		}
	}
}

// fail ends the job as failed with err's text.
func (b *Bulk) fail(ctx context.Context, j *Job, cause error) error {
	_, err := b.st.UpdateBulkJob(ctx, "", j.ID, func(j *Job) (bool, error) {
		if j.State != StateRunning {
			return false, errSkip
		}
		now := b.now()
		j.State, j.FinishedAt, j.Error = StateFailed, &now, cause.Error()
		return false, nil
	})
	if errors.Is(err, errSkip) {
		return nil
	}
	return err
}

// finish ends a running job as state with counts c (nil: keep the counts).
func (b *Bulk) finish(ctx context.Context, id string, state JobState, msg string, c *Progress) error {
	_, err := b.st.UpdateBulkJob(ctx, "", id, func(j *Job) (bool, error) {
		if j.State != StateRunning {
			return false, errAborted
		}
		now := b.now()
		j.State, j.FinishedAt, j.Error = state, &now, msg
		if c != nil {
			j.Processed, j.Succeeded, j.Failed = c.Processed, c.Succeeded, c.Failed
		}
		return false, nil
	})
	return err
}

// reader answers the rows of the job's stored data.
func (b *Bulk) reader(ctx context.Context, j *Job) (RowReader, error) {
	if j.Import != nil {
		return b.importRows(ctx, j)
	}
	return NewRowReader(j.Format, b.data(ctx, j), b.cfg.RowOptions)
}

// readBatch reads up to n rows; done says the data ended.
func readBatch(rr RowReader, n int) (rows []Row, done bool, err error) {
	for len(rows) < n {
		r, err := rr.Next()
		if err == io.EOF {
			return rows, true, nil
		}
		if err != nil {
			return rows, true, fmt.Errorf("%w: %w", ErrBadData, err)
		}
		rows = append(rows, r)
	}
	return rows, false, nil
}

func (b *Bulk) runPartial(ctx context.Context, j *Job) error {
	rr, err := b.reader(ctx, j)
	if err != nil {
		return err
	}
	defer closeRows(rr)
	for skip := j.Processed; skip > 0; skip-- {
		if _, err := rr.Next(); err != nil {
			return fmt.Errorf("%w: resuming after row %d: %w", ErrBadData, j.Processed, err)
		}
	}
	at := j.Processed
	for {
		rows, done, err := readBatch(rr, b.cfg.BatchSize)
		if err != nil {
			return err
		}
		if len(rows) > 0 {
			var res []RowResult
			err := b.st.InTx(ctx, func(ctx context.Context, _ records.Tx) error {
				var err error
				if res, err = b.writeRows(ctx, j, rows, records.BatchOptions{}); err != nil {
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
			at += int64(len(rows))
			b.report(res)
		}
		if done {
			return b.finish(ctx, j.ID, StateCompleted, "", nil)
		}
	}
}

func (b *Bulk) report(res []RowResult) {
	c := count(res)
	b.onRows(RowSucceeded, c.Succeeded)
	b.onRows(RowFailed, c.Failed)
}

func count(res []RowResult) Progress {
	p := Progress{Processed: int64(len(res))}
	for _, r := range res {
		if r.Status == RowSucceeded {
			p.Succeeded++
		} else {
			p.Failed++
		}
	}
	return p
}

// runWhole runs an all-or-none or validate_only job in one transaction.
//
// Everything it reads while the transaction is open (the job's data, its
// state) it reads through the transaction: on SQLite the transaction holds
// the one write lock, and a read on another of the pool's connections can
// wait without end behind the job client's writers, which hold the others
// while they wait for the lock.
func (b *Bulk) runWhole(ctx context.Context, j *Job) error {
	var all []RowResult
	var failed []int64
	keep := j.Mode == ModeAllOrNone && !j.ValidateOnly
	var shown time.Time
	var busy atomic.Bool
	err := b.st.InTx(ctx, func(tctx context.Context, _ records.Tx) error {
		rr, err := b.reader(tctx, j)
		if err != nil {
			return err
		}
		defer closeRows(rr)
		for {
			rows, done, err := readBatch(rr, b.cfg.BatchSize)
			if err != nil {
				return err
			}
			if len(rows) > 0 {
				res, err := b.writeRows(tctx, j, rows, records.BatchOptions{})
				if err != nil {
					return err
				}
				for _, r := range res {
					if r.Status == RowFailed {
						failed = append(failed, r.Row)
					}
				}
				all = append(all, res...)
				if time.Since(shown) >= time.Second {
					shown = time.Now()
					if err := b.progress(ctx, tctx, &busy, j.ID, int64(len(all))); err != nil {
						return err
					}
				}
			}
			if done {
				break
			}
		}
		if !keep || len(failed) > 0 {
			return errRollback
		}
		if err := b.putResults(tctx, j.ID, all); err != nil {
			return err
		}
		c := count(all)
		return b.finish(tctx, j.ID, StateCompleted, "", &c)
	})
	if err == nil {
		b.report(all)
		return nil
	}
	if !errors.Is(err, errRollback) {
		return err
	}
	state, msg := StateCompleted, ""
	if j.Mode == ModeAllOrNone && len(failed) > 0 {
		notWritten := &ResultError{Code: CodeNotWritten, Message: "not written: " + rowList(failed) + " failed"}
		for i := range all {
			if all[i].Status == RowSucceeded {
				all[i] = RowResult{Row: all[i].Row, Status: RowFailed, Error: notWritten}
			}
		}
		if !j.ValidateOnly {
			state = StateFailed
		}
		msg = fmt.Sprintf("%d of %d rows failed (%s); nothing was written", len(failed), len(all), rowList(failed))
	}
	if err := b.putResults(ctx, j.ID, all); err != nil {
		return err
	}
	c := count(all)
	if err := b.finish(ctx, j.ID, state, msg, &c); err != nil {
		if errors.Is(err, errAborted) {
			return nil
		}
		return err
	}
	if !j.ValidateOnly {
		b.report(all)
	}
	return nil
}

// progress shows how far a job in one transaction got, outside that
// transaction, and tells whether it was aborted, read through the
// transaction tctx (Postgres's read committed sees an abort committed
// since; on SQLite none can commit while the job's transaction holds the
// database). The count is written in the background, at most one write at
// a time: on SQLite it waits for the job's transaction to end.
func (b *Bulk) progress(ctx, tctx context.Context, busy *atomic.Bool, id string, processed int64) error {
	j, err := b.st.GetBulkJob(tctx, "", id)
	if err != nil {
		return err
	}
	if j.State != StateRunning {
		return errAborted
	}
	if !busy.CompareAndSwap(false, true) {
		return nil
	}
	go func() {
		defer busy.Store(false)
		_, _ = b.st.UpdateBulkJob(context.WithoutCancel(ctx), "", id, func(j *Job) (bool, error) {
			if j.State != StateRunning || j.Processed >= processed {
				return false, errSkip
			}
			now := b.now()
			j.Processed, j.HeartbeatAt = processed, &now
			return false, nil
		})
	}()
	return nil
}

// putResults stores results a thousand rows at a time.
func (b *Bulk) putResults(ctx context.Context, id string, rs []RowResult) error {
	for len(rs) > 0 {
		n := min(len(rs), 1000)
		if err := b.st.PutBulkResults(ctx, id, rs[:n]); err != nil {
			return err
		}
		rs = rs[n:]
	}
	return nil
}

// rowList names rows for a message, the first ten of them.
func rowList(rows []int64) string {
	s := "row"
	if len(rows) > 1 {
		s = "rows"
	}
	for i, r := range rows {
		if i == 10 {
			return s + fmt.Sprintf(" and %d more", len(rows)-10)
		}
		if i > 0 {
			s += ","
		}
		s += " " + strconv.FormatInt(r, 10)
	}
	return s
}

// writeRows runs rows through the pipeline as one batch and answers their
// results. Rows that are faulty before the pipeline sees them (unreadable,
// an id where none belongs) fail alone.
func (b *Bulk) writeRows(ctx context.Context, j *Job, rows []Row, opts records.BatchOptions) ([]RowResult, error) {
	res := make([]RowResult, len(rows))
	items := make([]records.BatchItem, 0, len(rows))
	pos := make([]int, 0, len(rows))
	ext := b.externalIDField(j.Object)
	for i, r := range rows {
		res[i].Row = int64(r.Num)
		if j.Import != nil {
			res[i].SheetRow = int64(r.SheetRow)
		}
		it, rerr := b.item(j, r, ext)
		if rerr != nil {
			res[i].Status, res[i].Error = RowFailed, rerr
			continue
		}
		items = append(items, it)
		pos = append(pos, i)
	}
	if len(items) == 0 {
		return res, nil
	}
	out, err := b.p.Batch(ctx, items, opts)
	if err != nil && !opts.AllOrNone {
		return nil, err
	}
	for k, o := range out {
		r := &res[pos[k]]
		if o.Err != nil {
			r.Status, r.Error = RowFailed, resultError(o.Err)
			continue
		}
		r.Status = RowSucceeded
		if o.Record != nil {
			r.RecordID, r.Version = o.Record.ID, o.Record.Version
		}
		switch {
		case items[k].Op == records.OpDelete:
			r.Action = RowDeleted
		case o.Created:
			r.Action = RowCreated
		case o.Changes != nil && len(o.Changes) == 0:
			r.Action = RowUnchanged
		default:
			r.Action = RowUpdated
			if len(o.Changes) > 0 {
				r.Before = make(records.Fields, len(o.Changes))
				for f, c := range o.Changes {
					r.Before[f] = c.From
				}
			}
		}
	}
	return res, nil
}

// item turns a row into the pipeline write of the job's operation.
func (b *Bulk) item(j *Job, r Row, ext string) (records.BatchItem, *ResultError) {
	if r.Err != nil {
		return records.BatchItem{}, rowError(r.Err)
	}
	w := records.Write{
		Workspace: j.Workspace, Object: j.Object, ID: r.ID, Fields: r.Fields,
		Source: records.SourceBulk, Actor: j.Actor,
	}
	if j.Import != nil {
		w.Source = records.SourceImport
	}
	if w.Fields == nil {
		w.Fields = records.Fields{}
	}
	fieldErr := func(code, msg string) *ResultError {
		return &ResultError{Code: "validation_failed", Message: "one or more fields are invalid",
			Fields: []records.FieldError{{Field: IDField, Code: code, Message: msg}}}
	}
	switch j.Operation {
	case records.OpInsert:
		if r.ID != "" {
			return records.BatchItem{}, fieldErr("not_allowed", "insert gives new records their ids; use update or upsert for existing ones")
		}
	case records.OpUpdate, records.OpDelete:
		if r.ID == "" {
			return records.BatchItem{}, fieldErr("required", "is required to "+string(j.Operation))
		}
		if j.Operation == records.OpDelete {
			w.Fields = nil
		}
	case records.OpUpsert:
		if ext != "" {
			w.ExternalID = textOf(w.Fields[ext])
		}
	}
	return records.BatchItem{Op: j.Operation, Write: w}, nil
}

// externalIDField answers the object's external id field, "" when the
// pipeline cannot say or the object has none.
func (b *Bulk) externalIDField(object string) string {
	if on, ok := b.p.(objectNamer); ok {
		if o, ok := on.Object(object); ok {
			return o.ExternalID
		}
	}
	return "external_id"
}

// textOf is a field value as the text of an id.
func textOf(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprint(v)
}

// resultError is a row's pipeline error as its result says it.
func resultError(err error) *ResultError {
	var ve *records.ValidationError
	switch {
	case errors.As(err, &ve):
		return &ResultError{Code: "validation_failed", Message: "one or more fields are invalid", Fields: ve.Fields}
	case errors.Is(err, records.ErrBatchAborted):
		return &ResultError{Code: CodeNotWritten, Message: "not written: another row of the batch failed"}
	case errors.Is(err, records.ErrPlanLimit):
		return &ResultError{Code: "plan_limit_exceeded", Message: "the workspace's plan does not allow more records"}
	case errors.Is(err, records.ErrDuplicate):
		return &ResultError{Code: "duplicate", Message: "another record already holds this external id or unique value"}
	case errors.Is(err, records.ErrConflict):
		return &ResultError{Code: "version_conflict", Message: "the record changed while the row was written"}
	case errors.Is(err, records.ErrNotFound):
		return &ResultError{Code: "not_found", Message: "no such record"}
	case errors.Is(err, records.ErrValidation):
		return &ResultError{Code: "validation_failed", Message: err.Error()}
	}
	return &ResultError{Code: "internal", Message: "the row could not be written"}
}
