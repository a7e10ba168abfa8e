// Package ipamtest holds test support shared by the IPAM packages and
// their users: a clock that tests step by hand, so grace periods pass
// without waiting.
package ipamtest

import (
	"sync"
	"time"
)

// Clock is an ipam.Clock that moves only when Step is called. It starts
// at a fixed date so runs are alike. Safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock at 2026-01-01T00:00:00Z.
func NewClock() *Clock { return &Clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Step moves the clock forward by d.
func (c *Clock) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
