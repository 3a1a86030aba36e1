package records

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Retries: a write that lost a race to another writer is tried again on
// fresh state, after a growing random pause.

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
