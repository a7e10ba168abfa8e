package bench

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestRouteWatchWaitEvent feeds a routeWatch events as its netlink
// reader would and checks that waitEvent finds the first one of the
// asked kind at or after since, waits for one that comes later, and
// says so when none comes.
func TestRouteWatchWaitEvent(t *testing.T) {
	block, other := netip.MustParsePrefix("10.244.1.0/26"), netip.MustParsePrefix("10.244.2.0/26")
	t0 := time.Now()
	w := &routeWatch{seen: map[netip.Prefix]time.Time{}, cond: make(chan struct{})}
	w.add(routeEvent{at: t0, dst: block, deleted: true})                      // before since
	w.add(routeEvent{at: t0.Add(2 * time.Second), dst: other, deleted: true}) // another prefix
	w.add(routeEvent{at: t0.Add(3 * time.Second), dst: block})                // added, not deleted
	w.add(routeEvent{at: t0.Add(4 * time.Second), dst: block, deleted: true})
	w.add(routeEvent{at: t0.Add(5 * time.Second), dst: block, deleted: true})
	ctx := context.Background()
	since := t0.Add(time.Second)
	got, err := w.waitEvent(ctx, block, true, since, time.Second)
	if err != nil || !got.Equal(t0.Add(4*time.Second)) {
		t.Errorf("deleted since +1s = %v, %v; want +4s", got.Sub(t0), err)
	}
	got, err = w.waitEvent(ctx, block, false, since, time.Second)
	if err != nil || !got.Equal(t0.Add(3*time.Second)) {
		t.Errorf("added since +1s = %v, %v; want +3s", got.Sub(t0), err)
	}
	if first, err := w.wait(ctx, block, time.Second); err != nil || !first.Equal(t0.Add(3*time.Second)) {
		t.Errorf("first seen = %v, %v; want +3s (a deletion is not an appearance)", first.Sub(t0), err)
	}

	later := t0.Add(10 * time.Second)
	go w.add(routeEvent{at: later, dst: other})
	if got, err := w.waitEvent(ctx, other, false, since, time.Minute); err != nil || !got.Equal(later) {
		t.Errorf("waiting for a later event = %v, %v; want +10s", got.Sub(t0), err)
	}
	if _, err := w.waitEvent(ctx, other, true, later, 10*time.Millisecond); err == nil || !strings.Contains(err.Error(), "still there") {
		t.Errorf("no deletion after +10s: err %v, want one saying the route is still there", err)
	}
}
