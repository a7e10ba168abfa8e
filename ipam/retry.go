package ipam

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Clock tells the time; tests pass a fake one to step grace periods.
type Clock interface {
	Now() time.Time
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// Backoff spaces out compare-and-swap retries. Waits are drawn uniformly
// from [0, min(Cap, Base*2^attempt)) ("full jitter"), so nodes that
// collided once do not collide again in lock-step.
//
// Contention costs time, not correctness: a retry loop goes on for as long
// as its context allows (the CNI ADD that asked for an address has a
// deadline of many seconds). Attempts is only a safety net against a loop
// with no deadline at all, set high enough (as Calico's 100 block-write
// retries) that a busy API server never reaches it before a caller's
// deadline does.
type Backoff struct {
	// Attempts is the maximum number of tries, the first included.
	Attempts int
	// Base is the upper bound of the first wait.
	Base time.Duration
	// Cap bounds every wait.
	Cap time.Duration
}

// Defaults for zero Backoff fields: suited to compare-and-swap against an
// API server on a local network. With these, 100 attempts wait about 12 s
// in all (the mean of the capped, jittered waits) besides the round trips.
const (
	DefaultAttempts    = 100
	DefaultBackoffBase = 2 * time.Millisecond
	DefaultBackoffCap  = 250 * time.Millisecond
)

// WithDefaults fills zero fields with the defaults.
func (b Backoff) WithDefaults() Backoff {
	if b.Attempts <= 0 {
		b.Attempts = DefaultAttempts
	}
	if b.Base <= 0 {
		b.Base = DefaultBackoffBase
	}
	if b.Cap <= 0 {
		b.Cap = DefaultBackoffCap
	}
	return b
}

// Wait blocks for the jittered delay before retry number attempt (1 for
// the first retry), or until ctx ends.
func (b Backoff) Wait(ctx context.Context, attempt int) error {
	limit := b.Base << min(attempt, 20)
	if limit > b.Cap || limit <= 0 {
		limit = b.Cap
	}
	d := time.Duration(rand.Int64N(int64(limit) + 1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Retry runs fn until it succeeds, returns an error that Retryable says
// is final, or Attempts are used up. It returns the number of retries
// made and fn's last error, wrapped with what when retries ran out.
func (b Backoff) Retry(ctx context.Context, what string, fn func() error) (int, error) {
	b = b.WithDefaults()
	var err error
	for attempt := 0; attempt < b.Attempts; attempt++ {
		if attempt > 0 {
			if werr := b.Wait(ctx, attempt); werr != nil {
				return attempt, fmt.Errorf("%s: %w (last error: %w)", what, werr, err)
			}
		}
		if err = fn(); err == nil || !Retryable(err) {
			return attempt, err
		}
	}
	return b.Attempts - 1, fmt.Errorf("%s: gave up after %d attempts: %w", what, b.Attempts, err)
}
