package records

import (
	"context"
	"errors"
	"fmt"
	"maps"
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
	// Refs fill reference fields with the id of the record an earlier item
	// of the same batch writes: field name → that item's index. It is how
	// one document's targets point at each other (an order at the customer
	// created just before it). An item whose referenced item fails, fails
	// too, with a field error of code "reference". Refs need an all-or-none
	// batch, where no item is kept unless every one is.
	Refs map[string]int
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
	// Commit, when set, runs inside the transaction that writes the batch's
	// last rows, after them, so that what it writes commits if and only if
	// the batch's writes do (a connector's checkpoint with its page). Its
	// context carries the transaction: package store's methods called with
	// it write in it. It runs once, in the round after which no row is left
	// to retry, in a transaction of its own when no row writes anything, and
	// not at all on a dry run; its error fails the batch.
	Commit func(ctx context.Context) error
}

// BatchResult is the outcome of one row: the record written (for deletes,
// its last state; for a no-op update, the record as it is) or the row's
// error. Created is true when the row inserted a record.
type BatchResult struct {
	Record  *Record
	Created bool
	// Changes are the fields an update changed, with their values before
	// and after; empty, not nil, for an update that changed nothing; nil
	// for creates and deletes.
	Changes map[string]Change
	Err     error
}

// resultChanges answers the Changes of the row's result.
func (r *row) resultChanges() map[string]Change {
	switch r.act {
	case actUpdate:
		return r.changes
	case actNoop:
		return map[string]Change{}
	}
	return nil
}

// errDryRun rolls back a dry run's transaction.
var errDryRun = errors.New("records: dry run")

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
	if !opts.AllOrNone {
		for i := range items {
			if len(items[i].Refs) > 0 {
				return nil, errors.New("records: batch items with Refs need BatchOptions.AllOrNone")
			}
		}
	}
	if len(items) == 0 {
		if opts.Commit != nil && !opts.DryRun {
			return nil, p.st.InTx(ctx, func(ctx context.Context, _ Tx) error { return opts.Commit(ctx) })
		}
		return nil, nil
	}
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
		prepared := make(map[int]*row, len(pending))
		for _, i := range pending {
			w := &items[i].Write
			var err error
			if len(items[i].Refs) > 0 {
				w, err = withRefs(items, i, prepared, results)
			}
			var r *row
			if err == nil {
				r, err = p.prepare(ctx, i, w, items[i].Op, bs)
			}
			if err != nil {
				results[i] = BatchResult{Err: err}
				if firstFailed < 0 {
					firstFailed = i
				}
				continue
			}
			prepared[i] = r
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
				results[r.idx] = BatchResult{Record: r.rec, Created: r.act == actCreate, Changes: r.resultChanges()}
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

// withRefs answers a copy of item i's write with its Refs filled in from
// the rows prepared so far in this round, or, for rows an earlier round
// wrote, from their results.
func withRefs(items []BatchItem, i int, prepared map[int]*row, results []BatchResult) (*Write, error) {
	w := items[i].Write
	w.Fields = maps.Clone(w.Fields)
	if w.Fields == nil {
		w.Fields = Fields{}
	}
	for field, j := range items[i].Refs {
		var id string
		switch {
		case j < 0 || j >= i:
			return nil, &ValidationError{Object: w.Object, Fields: []FieldError{{Field: field, Code: "reference",
				Message: fmt.Sprintf("refers to item %d, which is not an earlier item of the batch", j+1)}}}
		case prepared[j] != nil:
			id = prepared[j].rec.ID
		case results[j].Err == nil && results[j].Record != nil:
			id = results[j].Record.ID
		default:
			return nil, &ValidationError{Object: w.Object, Fields: []FieldError{{Field: field, Code: "reference",
				Message: fmt.Sprintf("refers to the record of item %d, which failed", j+1)}}}
		}
		w.Fields[field] = id
	}
	return &w, nil
}
