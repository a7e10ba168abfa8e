package agent

import (
	"context"
	"sync"
)

// allocations tracks the allocations in progress so that CNI GC can wait
// for those that began before it, and only those: GC knows attachments by
// their records, so it must not read them while an earlier allocation is
// still writing its own, and an ADD that begins while GC waits has no
// reason to wait for GC. (A read-write lock gets the first half and not
// the second: a writer waiting for a slow allocation, up to
// allocateTimeout, holds back every reader that comes after it.)
type allocations struct {
	mu      sync.Mutex
	next    uint64              // the number the next allocation gets
	running map[uint64]struct{} // the numbers of those in progress
	ended   chan struct{}       // closed, and replaced, when one ends
	waiting int                 // GCs waiting, for tests
}

// begin records an allocation in progress; end, called once, records its
// end.
func (a *allocations) begin() (end func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running == nil {
		a.running = map[uint64]struct{}{}
		a.ended = make(chan struct{})
	}
	n := a.next
	a.next++
	a.running[n] = struct{}{}
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			delete(a.running, n)
			close(a.ended)
			a.ended = make(chan struct{})
		})
	}
}

// waitBegunBefore waits until every allocation that began before the call
// has ended, or ctx is done.
func (a *allocations) waitBegunBefore(ctx context.Context) error {
	a.mu.Lock()
	mark := a.next
	a.waiting++
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.waiting--
		a.mu.Unlock()
	}()
	for {
		a.mu.Lock()
		earlier := false
		for n := range a.running {
			if n < mark {
				earlier = true
				break
			}
		}
		ended := a.ended
		a.mu.Unlock()
		if !earlier {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ended:
		}
	}
}

// gcsWaiting says how many GCs wait for allocations.
func (a *allocations) gcsWaiting() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.waiting
}
