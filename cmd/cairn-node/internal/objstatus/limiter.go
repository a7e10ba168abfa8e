package objstatus

import (
	"sync"
	"time"
)

// limiter lets one Event per key through every interval and counts the
// ones it holds back. A key is an object and a reason. Keys whose interval
// is over are forgotten, so the map holds only recent ones.
type limiter struct {
	interval time.Duration
	now      func() time.Time

	mu   sync.Mutex
	last map[string]*limited
}

type limited struct {
	at         time.Time
	suppressed int
}

func newLimiter(interval time.Duration, now func() time.Time) *limiter {
	return &limiter{interval: interval, now: now, last: map[string]*limited{}}
}

// allow reports whether an Event for key may go now and, when it may, how
// many were held back since the last one that went.
func (l *limiter) allow(key string) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for k, e := range l.last {
		if now.Sub(e.at) >= l.interval && e.suppressed == 0 {
			delete(l.last, k)
		}
	}
	e := l.last[key]
	if e == nil {
		l.last[key] = &limited{at: now}
		return true, 0
	}
	if now.Sub(e.at) < l.interval {
		e.suppressed++
		return false, 0
	}
	n := e.suppressed
	e.at, e.suppressed = now, 0
	return true, n
}
