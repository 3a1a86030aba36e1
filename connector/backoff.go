package connector

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Defaults of Backoff.
const (
	DefaultAttempts      = 5
	DefaultBaseDelay     = time.Second
	DefaultMaxDelay      = time.Minute
	DefaultMaxRetryAfter = 5 * time.Minute
)

// Backoff says how often and how patiently a failed page is asked for again.
// The zero value uses the defaults.
type Backoff struct {
	// Attempts is how many times a page is asked for in all (first try
	// included) before a run gives up; default 5.
	Attempts int
	// BaseDelay is the wait before the second try; each further wait doubles,
	// up to MaxDelay, and has up to half of itself added at random so that
	// connectors do not retry in step. Defaults 1 s and 1 min.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// MaxRetryAfter is the longest Retry-After waited out; a source asking for
	// more fails the run at once (its error still carries the wait, for a
	// scheduler to use). Default 5 min.
	MaxRetryAfter time.Duration
	// Sleep waits d or until ctx is done; tests replace it so that nothing
	// really waits. Nil uses a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand answers a random number in [0, n) for the jitter; nil uses
	// math/rand/v2.
	Rand func(n int64) int64
}

func (b Backoff) withDefaults() Backoff {
	if b.Attempts <= 0 {
		b.Attempts = DefaultAttempts
	}
	if b.BaseDelay <= 0 {
		b.BaseDelay = DefaultBaseDelay
	}
	if b.MaxDelay <= 0 {
		b.MaxDelay = DefaultMaxDelay
	}
	if b.MaxRetryAfter <= 0 {
		b.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if b.Sleep == nil {
		b.Sleep = sleep
	}
	if b.Rand == nil {
		b.Rand = rand.Int64N
	}
	return b
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wait answers how long to wait after the n-th failed try (1-based), and
// false when the source asked for more than MaxRetryAfter.
func (b Backoff) wait(n int, after time.Duration) (time.Duration, bool) {
	if after > 0 {
		return after, after <= b.MaxRetryAfter
	}
	d := b.BaseDelay
	for i := 1; i < n && d < b.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, b.MaxDelay)
	return d + time.Duration(b.Rand(int64(d/2)+1)), true
}

// retry calls f until it succeeds, fails with an error that is not a
// *RetryableError, or has been called b.Attempts times. The error after the
// last try says how many were made and wraps the last failure.
func retry[T any](ctx context.Context, b Backoff, f func(context.Context) (T, error)) (T, error) {
	for n := 1; ; n++ {
		v, err := f(ctx)
		var re *RetryableError
		if err == nil || !errors.As(err, &re) {
			return v, err
		}
		if n >= b.Attempts {
			return v, fmt.Errorf("gave up after %d attempts: %w", n, err)
		}
		d, ok := b.wait(n, re.After)
		if !ok {
			return v, fmt.Errorf("gave up: the source asked to wait %s, more than %s: %w", re.After, b.MaxRetryAfter, err)
		}
		if serr := b.Sleep(ctx, d); serr != nil {
			return v, fmt.Errorf("waiting %s to try again: %w (last failure: %w)", d, serr, err)
		}
	}
}

// Retrying answers a Poller that asks p again, with b's waits, while it fails
// with a *RetryableError. Registry factories of hosts' own kinds can wrap
// their pollers with it; the HTTP JSON poller retries by itself.
func Retrying(p Poller, b Backoff) Poller {
	return retrying{p: p, b: b.withDefaults()}
}

type retrying struct {
	p Poller
	b Backoff
}

func (r retrying) Poll(ctx context.Context, req Request) (Page, error) {
	return retry(ctx, r.b, func(ctx context.Context) (Page, error) { return r.p.Poll(ctx, req) })
}
