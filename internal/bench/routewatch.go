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
// kernel, from the kernel's own notifications (no polling, so the time is
// when the route was installed, give or take a scheduler tick).
type routeWatch struct {
	mu   sync.Mutex
	seen map[netip.Prefix]time.Time
	cond chan struct{} // closed and replaced on every new route
	err  error
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
			if u.Type != unix.RTM_NEWROUTE || u.Dst == nil {
				continue
			}
			ones, _ := u.Dst.Mask.Size()
			a, ok := netip.AddrFromSlice(u.Dst.IP.To4())
			if !ok {
				continue
			}
			p := netip.PrefixFrom(a, ones)
			w.mu.Lock()
			if _, dup := w.seen[p]; !dup {
				w.seen[p] = now
				close(w.cond)
				w.cond = make(chan struct{})
			}
			w.mu.Unlock()
		}
	}()
	return w, nil
}

// wait returns when p first appeared, waiting for it up to timeout.
func (w *routeWatch) wait(ctx context.Context, p netip.Prefix, timeout time.Duration) (time.Time, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		t, ok := w.seen[p]
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
			return time.Time{}, fmt.Errorf("no route to %s after %v", p, timeout)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}
