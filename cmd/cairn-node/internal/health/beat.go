package health

import (
	"sync"
	"time"
)

// Beat is a loop's heartbeat: the loop marks it after every round, and a
// round is due within every of the last mark. Its zero value has never
// been marked; a nil *Beat ignores marks, so a loop built without one (in
// tests) runs unchanged.
type Beat struct {
	every time.Duration

	mu   sync.Mutex
	last time.Time
}

// NewBeat returns a Beat for a loop that goes round at least every every.
func NewBeat(every time.Duration) *Beat { return &Beat{every: every} }

// Mark records a round at now.
func (b *Beat) Mark(now time.Time) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.last = now
	b.mu.Unlock()
}

// Last is when the loop last marked; zero if never.
func (b *Beat) Last() time.Time {
	if b == nil {
		return time.Time{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// Due is when the next round is expected; zero if never marked.
func (b *Beat) Due() time.Time {
	last := b.Last()
	if last.IsZero() {
		return last
	}
	return last.Add(b.every)
}
