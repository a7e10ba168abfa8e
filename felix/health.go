package felix

import (
	"sync"
	"time"
)

// Health is what the Run loop last did. The agent's liveness and
// readiness probes read it: a loop that has not passed again well after
// NextPassDue is wedged; one not InSync has not put the node's state in
// place.
type Health struct {
	// Running: Run is active.
	Running bool
	// LastPass is when the last pass (full or not) ended; zero before the
	// first.
	LastPass time.Time
	// NextPassDue is when the loop's timer asks for the next full pass:
	// after ResyncInterval, or sooner after an error.
	NextPassDue time.Time
	// InSync: a full pass (the kernel read back) has ended since Run
	// started, and the last pass applied everything.
	InSync bool
	// Err is the last pass's error; nil when it applied everything.
	Err error
}

// healthRecord is Health as the Run loop keeps it; Health reads it from
// any goroutine.
type healthRecord struct {
	mu       sync.Mutex
	h        Health
	fullDone bool
}

// start forgets an earlier Run's passes.
func (r *healthRecord) start() {
	r.mu.Lock()
	r.h, r.fullDone = Health{}, false
	r.mu.Unlock()
}

func (r *healthRecord) passed(at time.Time, full bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fullDone = r.fullDone || full
	r.h.LastPass, r.h.Err = at, err
	r.h.InSync = r.fullDone && err == nil
}

func (r *healthRecord) scheduled(due time.Time) {
	r.mu.Lock()
	r.h.NextPassDue = due
	r.mu.Unlock()
}

// Health reports what the Run loop last did.
func (f *Felix) Health() Health {
	f.health.mu.Lock()
	h := f.health.h
	f.health.mu.Unlock()
	h.Running = f.running.Load()
	return h
}
