package bench

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// routeWatch records when each IPv4 route first appeared in a namespace's
// kernel, and every later addition and removal, from the kernel's own
// notifications (no polling, so the time is when the route was installed
// or removed, give or take a scheduler tick).
type routeWatch struct {
	mu     sync.Mutex
	seen   map[netip.Prefix]time.Time
	events []routeEvent
	cond   chan struct{} // closed and replaced on every event
	err    error
}

// routeEvent is a route added to or removed from the kernel.
type routeEvent struct {
	at      time.Time
	dst     netip.Prefix
	deleted bool
}

// watchRoutes starts watching a namespace (by name) until ctx ends.
func watchRoutes(ctx context.Context, nsName string) (*routeWatch, error) {
	h, err := netns.GetFromName(nsName)
	if err != nil {
		return nil, fmt.Errorf("open namespace %s: %w", nsName, err)
	}
	ch := make(chan netlink.RouteUpdate, 4096)
	w := &routeWatch{seen: map[netip.Prefix]time.Time{}, cond: make(chan struct{})}
	err = netlink.RouteSubscribeWithOptions(ch, ctx.Done(), netlink.RouteSubscribeOptions{
		Namespace: &h, ReceiveBufferSize: 4 << 20,
		ErrorCallback: func(err error) {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
		},
	})
	_ = h.Close()
	if err != nil {
		return nil, fmt.Errorf("watch routes in %s: %w", nsName, err)
	}
	go func() {
		for u := range ch {
			now := time.Now()
			if (u.Type != unix.RTM_NEWROUTE && u.Type != unix.RTM_DELROUTE) || u.Dst == nil {
				continue
			}
			ones, _ := u.Dst.Mask.Size()
			a, ok := netip.AddrFromSlice(u.Dst.IP.To4())
			if !ok {
				continue
			}
			w.add(routeEvent{at: now, dst: netip.PrefixFrom(a, ones), deleted: u.Type == unix.RTM_DELROUTE})
		}
	}()
	return w, nil
}

// add records an event and wakes the waiters.
func (w *routeWatch) add(e routeEvent) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, dup := w.seen[e.dst]; !dup && !e.deleted {
		w.seen[e.dst] = e.at
	}
	w.events = append(w.events, e)
	close(w.cond)
	w.cond = make(chan struct{})
}

// wait returns when p first appeared, waiting for it up to timeout.
func (w *routeWatch) wait(ctx context.Context, p netip.Prefix, timeout time.Duration) (time.Time, error) {
	return w.until(ctx, timeout, func() (time.Time, bool) {
		t, ok := w.seen[p]
		return t, ok
	}, fmt.Sprintf("no route to %s", p))
}

// waitEvent returns when p was first removed (deleted) or added (not
// deleted) at or after since, waiting for it up to timeout.
func (w *routeWatch) waitEvent(ctx context.Context, p netip.Prefix, deleted bool, since time.Time, timeout time.Duration) (time.Time, error) {
	what := fmt.Sprintf("the route to %s still there", p)
	if !deleted {
		what = fmt.Sprintf("no route to %s again", p)
	}
	return w.until(ctx, timeout, func() (time.Time, bool) {
		for _, e := range w.events {
			if e.dst == p && e.deleted == deleted && !e.at.Before(since) {
				return e.at, true
			}
		}
		return time.Time{}, false
	}, what)
}

// until waits up to timeout for found, which runs with w.mu held, to
// find its event; failed says what it is like when none came.
func (w *routeWatch) until(ctx context.Context, timeout time.Duration, found func() (time.Time, bool), failed string) (time.Time, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		t, ok := found()
		cond, err := w.cond, w.err
		w.mu.Unlock()
		switch {
		case ok:
			return t, nil
		case err != nil:
			return time.Time{}, fmt.Errorf("route watch: %w", err)
		}
		select {
		case <-cond:
		case <-deadline.C:
			return time.Time{}, fmt.Errorf("%s after %v", failed, timeout)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}
