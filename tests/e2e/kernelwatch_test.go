package e2e

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// cairnRouteProtocol is the route protocol felix tags its routes with.
const cairnRouteProtocol = 77

// watchedRoute is a route of a namespace's kernel as the watch compares
// them: what it forwards and who put it there.
type watchedRoute struct {
	Dst      netip.Prefix
	Gateways []netip.Addr // sorted; several for ECMP
	Dev      int
	Type     int
	Protocol int
	Table    int
}

func (r watchedRoute) key() string {
	return fmt.Sprintf("%s via %v dev %d type %d proto %d table %d", r.Dst, r.Gateways, r.Dev, r.Type, r.Protocol, r.Table)
}

func watchedRouteOf(r netlink.Route) watchedRoute {
	out := watchedRoute{Dev: r.LinkIndex, Type: r.Type, Protocol: int(r.Protocol), Table: r.Table}
	if r.Dst != nil {
		a, _ := netip.AddrFromSlice(r.Dst.IP)
		bits, _ := r.Dst.Mask.Size()
		out.Dst = netip.PrefixFrom(a.Unmap(), bits)
	} else if r.Family == unix.AF_INET6 {
		out.Dst = netip.MustParsePrefix("::/0")
	} else {
		out.Dst = netip.MustParsePrefix("0.0.0.0/0")
	}
	add := func(ip []byte) {
		if a, ok := netip.AddrFromSlice(ip); ok {
			out.Gateways = append(out.Gateways, a.Unmap())
		}
	}
	add(r.Gw)
	for _, nh := range r.MultiPath {
		add(nh.Gw)
	}
	slices.SortFunc(out.Gateways, netip.Addr.Compare)
	return out
}

// kernelWatch follows one namespace's routes of both families through a
// netlink subscription (RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE) from the
// moment it starts, and judges every route added or removed: judge
// returns why the change must not happen, or "". A subscription that
// loses messages (the socket overflowed) cannot prove anything, and says
// so.
type kernelWatch struct {
	name string
	mu   sync.Mutex
	bad  []string
	// events are every change seen, for saw.
	events []watchedEvent
	err    error
	done   chan struct{}
}

// watchedEvent is a route change as the watch read it.
type watchedEvent struct {
	at    time.Time
	added bool
	route watchedRoute
}

// routeJudge says why a route change must not happen ("" when it may);
// added is false for a removal.
type routeJudge func(r watchedRoute, added bool) string

func startKernelWatch(t *testing.T, name, ns string, judge routeJudge) *kernelWatch {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatalf("open namespace %s: %v", ns, err)
	}
	w := &kernelWatch{name: name, done: make(chan struct{})}
	ch := make(chan netlink.RouteUpdate, 4096)
	stop := make(chan struct{})
	err = netlink.RouteSubscribeWithOptions(ch, stop, netlink.RouteSubscribeOptions{
		Namespace: &h, ListExisting: true,
		// A flood that reached the kernel would come fast: a large,
		// forced buffer, and an error if it overflowed anyway.
		ReceiveBufferSize: 32 << 20, ReceiveBufferForceSize: true,
		ErrorCallback: func(err error) {
			w.mu.Lock()
			if w.err == nil {
				w.err = err
			}
			w.mu.Unlock()
		},
	})
	h.Close()
	if err != nil {
		t.Fatalf("subscribe to the routes of %s: %v", name, err)
	}
	go func() {
		defer close(w.done)
		for u := range ch {
			if u.Route.Flags&unix.RTM_F_CLONED != 0 || u.Route.Table == unix.RT_TABLE_LOCAL {
				continue // cache entries and local addresses: no forwarding decision
			}
			r := watchedRouteOf(u.Route)
			added := u.Type == unix.RTM_NEWROUTE
			why := judge(r, added)
			w.mu.Lock()
			w.events = append(w.events, watchedEvent{at: time.Now(), added: added, route: r})
			if why != "" {
				verb := "added"
				if u.Type != unix.RTM_NEWROUTE {
					verb = "removed"
				}
				w.bad = append(w.bad, fmt.Sprintf("%s %s: %s %s", time.Now().UTC().Format("15:04:05.000"), verb, r.key(), why))
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		close(stop)
		select {
		case <-w.done:
		case <-time.After(10 * time.Second):
			t.Errorf("the route watch of %s did not stop", name)
		}
	})
	return w
}

// check fails t with every change judged wrong so far, or with the
// subscription's error; it reports how many changes were seen.
func (w *kernelWatch) check(t *testing.T, when string) int {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		t.Errorf("%s: the route watch of %s broke, so it proves nothing: %v", when, w.name, w.err)
	}
	if len(w.bad) > 0 {
		t.Errorf("%s: %d route changes in %s's kernel that must not happen:\n  %s", when, len(w.bad), w.name, strings.Join(w.bad[:min(len(w.bad), 40)], "\n  "))
	}
	return len(w.events)
}

// saw reports whether the watch read, at or after since, a route to dst
// added (or removed) with gateway gw: that it sees what happens.
func (w *kernelWatch) saw(dst netip.Prefix, gw netip.Addr, added bool, since time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.ContainsFunc(w.events, func(e watchedEvent) bool {
		return e.added == added && !e.at.Before(since) && e.route.Dst == dst && slices.Contains(e.route.Gateways, gw)
	})
}

// watchedRoutes lists a namespace's routes of both families, every table
// but local.
func watchedRoutes(t *testing.T, ns string) []watchedRoute {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatalf("open namespace %s: %v", ns, err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatalf("netlink in %s: %v", ns, err)
	}
	defer nh.Close()
	var out []watchedRoute
	for attempt := 0; ; attempt++ {
		routes, err := nh.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
		if errors.Is(err, netlink.ErrDumpInterrupted) && attempt < 5 {
			continue // a dump interrupted by a change: read it again
		}
		if err != nil {
			t.Fatalf("list the routes of %s: %v", ns, err)
		}
		for _, r := range routes {
			if r.Flags&unix.RTM_F_CLONED == 0 && r.Table != unix.RT_TABLE_LOCAL {
				out = append(out, watchedRouteOf(r))
			}
		}
		return out
	}
}
