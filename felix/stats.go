package felix

import (
	"time"

	"github.com/cairn-net/cairn/felix/routetable"
)

// Pass describes one reconciliation pass of Run, for Options.OnPass.
type Pass struct {
	// Resync: the pass read the kernel back in full; otherwise it applied
	// changes incrementally.
	Resync bool
	// Took is the pass's wall time.
	Took time.Duration
	// Err is what went wrong; a failed pass is followed by a resync.
	Err error
}

// Stats are felix's counters since New and its routes as of the last pass.
type Stats struct {
	// EndpointRoutes, BlackholeRoutes and LearnedRoutes count felix's
	// routes in the kernel by what they are for: host routes to local
	// pods, blackholes of owned blocks, routes learned from peers.
	EndpointRoutes, BlackholeRoutes, LearnedRoutes int
	// Passes counts reconciliation passes, Resyncs those that read the
	// kernel back, Errors those that failed.
	Passes, Resyncs, Errors uint64
}

// Stats returns the counters as of the last pass.
func (f *Felix) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// publishStats records a pass for Stats and OnPass; called by the loop,
// which owns the table.
func (f *Felix) publishStats(p Pass) {
	f.mu.Lock()
	s := &f.stats
	s.Passes++
	if p.Resync {
		s.Resyncs++
	}
	if p.Err != nil {
		s.Errors++
	}
	s.EndpointRoutes = f.rt.Installed(routetable.Endpoint)
	s.BlackholeRoutes = f.rt.Installed(routetable.Block)
	s.LearnedRoutes = f.rt.Installed(routetable.Learned)
	f.mu.Unlock()
	if f.opts.OnPass != nil {
		f.opts.OnPass(p)
	}
}
