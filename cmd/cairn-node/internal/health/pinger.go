package health

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Pinger makes a call that a loop answers on its own goroutine (the BGP
// speaker's PeerStates), to tell a wedged loop from a busy one. At most
// one call is in flight: a call that never returns costs one goroutine,
// not one per probe.
type Pinger struct {
	call func()
	now  func() time.Time

	mu      sync.Mutex
	pending chan struct{} // closed when the call in flight returns; nil when none
	since   time.Time     // when the call in flight started
}

// NewPinger returns a Pinger for call; now is the clock.
func NewPinger(call func(), now func() time.Time) *Pinger {
	return &Pinger{call: call, now: now}
}

// Ping starts a call unless one is in flight, and waits for it until
// wait has passed or ctx ends. It fails when the call in flight has gone
// unanswered for longer than limit; a call slower than wait but younger
// than limit passes, as a busy loop.
func (p *Pinger) Ping(ctx context.Context, wait, limit time.Duration) error {
	done, since := p.start()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	case <-t.C:
	}
	if age := p.now().Sub(since); age > limit {
		return fmt.Errorf("a call has gone unanswered for %s", age.Round(time.Second))
	}
	return nil
}

// start returns the call in flight, starting one if there is none.
func (p *Pinger) start() (<-chan struct{}, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending != nil {
		return p.pending, p.since
	}
	done := make(chan struct{})
	p.pending, p.since = done, p.now()
	go func() {
		p.call()
		p.mu.Lock()
		p.pending = nil
		p.mu.Unlock()
		close(done)
	}()
	return done, p.since
}
