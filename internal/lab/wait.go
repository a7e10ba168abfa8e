package lab

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// until checks cond every interval until it holds or timeout passes. cond
// returns why it does not hold yet; the last reason ends up in the error.
// A reason wrapped by stopWaiting ends the wait at once with that error.
// A reason given after the deadline passed is only the deadline cutting
// cond short (a birdc killed half-way, say): the reason before it is the
// one that explains the timeout, and is kept.
func until(ctx context.Context, timeout, interval time.Duration, what string, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		var stop *stopError
		if errors.As(err, &stop) {
			return stop.err
		}
		if err != nil && (last == nil || ctx.Err() == nil) {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("wait for %s: %w; last: %v", what, ctx.Err(), last)
			}
			return fmt.Errorf("wait for %s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// stopError carries a failure that waiting longer cannot cure.
type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }

// stopWaiting marks err as final for until.
func stopWaiting(err error) error { return &stopError{err: err} }
