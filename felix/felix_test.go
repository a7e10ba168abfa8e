package felix

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/cairn-net/cairn/felix/antispoof"
	"github.com/cairn-net/cairn/felix/kernel"
	"github.com/cairn-net/cairn/felix/kernel/fake"
	"github.com/cairn-net/cairn/felix/natoutgoing"
	nftfake "github.com/cairn-net/cairn/felix/nftchain/fake"
	"github.com/cairn-net/cairn/felix/routetable"
	"golang.org/x/sys/unix"
)

var pfx = netip.MustParsePrefix
var addr = netip.MustParseAddr

type harness struct {
	t   *testing.T
	k   *fake.Kernel
	nft *nftfake.Conn
	f   *Felix
	// stopFn stops the running felix and waits for Run to return.
	stopFn func()
}

func newHarness(t *testing.T, k *fake.Kernel) *harness {
	t.Helper()
	h := &harness{t: t, k: k, nft: &nftfake.Conn{}}
	h.start()
	return h
}

// start runs a (new) felix on the harness's kernel, as an agent restart.
func (h *harness) start() {
	h.t.Helper()
	f, err := New(Options{
		NodeName: "node-1",
		Logger:   slog.New(slog.NewTextHandler(h.t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		Kernel:   h.k, Nftables: h.nft,
		ResyncInterval: time.Hour, RetryInterval: time.Millisecond,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("Run: %v", err)
		}
	}
	h.t.Cleanup(func() {
		if ctx.Err() == nil {
			stop()
		}
	})
	h.f = f
	h.stopFn = stop
}

func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	h.t.Cleanup(cancel)
	return ctx
}

func (h *harness) resync() {
	h.t.Helper()
	if err := h.f.Resync(h.ctx()); err != nil {
		h.t.Fatalf("resync: %v", err)
	}
}

// eventually waits for cond with a deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling interval, not synchronisation
	}
}

func (h *harness) route(p string) (kernel.Route, bool) { return h.k.Route(pfx(p)) }

func (h *harness) mustRoute(p string) kernel.Route {
	h.t.Helper()
	r, ok := h.route(p)
	if !ok {
		h.t.Fatalf("no route for %s; kernel has %v", p, h.k.Routes(kernel.Family(pfx(p))))
	}
	return r
}

func (h *harness) noRoute(p string) {
	h.t.Helper()
	if r, ok := h.route(p); ok {
		h.t.Fatalf("unexpected route %+v", r)
	}
}

func endpointRoute(p string, index int) kernel.Route {
	r := kernel.Route{Dst: pfx(p), Type: kernel.TypeUnicast, Protocol: DefaultRouteProtocol, LinkIndex: index}
	if r.Dst.Addr().Is4() {
		r.Scope = kernel.ScopeLink
	} else {
		r.Priority = 1024
	}
	return r
}

func sameRoute(a, b kernel.Route) bool {
	return a.Dst == b.Dst && a.Type == b.Type && a.Protocol == b.Protocol && a.Scope == b.Scope &&
		a.LinkIndex == b.LinkIndex && a.Priority == b.Priority && slices.Equal(a.NextHops, b.NextHops)
}

func TestEndpointConverges(t *testing.T) {
	k := fake.New()
	idx := k.AddLink("crn1", true)
	h := newHarness(t, k)
	err := h.f.SetEndpoint(h.ctx(), Endpoint{HostIface: "crn1", Addrs: []netip.Prefix{pfx("10.65.0.5/32"), pfx("fd00:65::5/128")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"10.65.0.5/32", "fd00:65::5/128"} {
		if got, want := h.mustRoute(p), endpointRoute(p, idx); !sameRoute(got, want) {
			t.Errorf("route %+v, want %+v", got, want)
		}
	}
	for name, want := range map[string]string{
		"net/ipv4/conf/crn1/rp_filter": "1",
		"net/ipv4/conf/crn1/proxy_arp": "0",
		"net/ipv6/conf/crn1/accept_ra": "0",
	} {
		if got, _ := k.ReadSysctl(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if c, _ := h.nft.Comments(antispoof.ChainName); len(c) != 1 {
		t.Errorf("anti-spoofing chain has %v", c)
	}
	if err := h.f.RemoveEndpoint(h.ctx(), "crn1", ""); err != nil {
		t.Fatal(err)
	}
	h.noRoute("10.65.0.5/32")
	h.noRoute("fd00:65::5/128")
	if err := h.f.RemoveEndpoint(h.ctx(), "crn1", ""); err != nil {
		t.Fatalf("second remove: %v", err)
	}
}

func TestEndpointRejected(t *testing.T) {
	h := newHarness(t, fake.New())
	for _, ep := range []Endpoint{
		{HostIface: "eth0", Addrs: []netip.Prefix{pfx("10.65.0.5/32")}},
		{HostIface: "crn0123456789abcd", Addrs: []netip.Prefix{pfx("10.65.0.5/32")}},
		{HostIface: "crn1", Addrs: []netip.Prefix{pfx("10.65.0.0/24")}},
		{HostIface: "crn../x", Addrs: nil},
	} {
		if err := h.f.SetEndpoint(h.ctx(), ep); !errors.Is(err, ErrInvalidEndpoint) {
			t.Errorf("SetEndpoint(%+v) = %v, want ErrInvalidEndpoint", ep, err)
		}
	}
}

func TestEndpointWaitsForItsInterface(t *testing.T) {
	k := fake.New()
	h := newHarness(t, k)
	done := make(chan error, 1)
	go func() {
		done <- h.f.SetEndpoint(h.ctx(), Endpoint{HostIface: "crn2", Addrs: []netip.Prefix{pfx("10.65.0.6/32")}})
	}()
	// Several passes run while the interface is missing: no route op may
	// be attempted (no error storm), and the caller stays blocked.
	h.resync()
	h.resync()
	select {
	case err := <-done:
		t.Fatalf("SetEndpoint returned before its interface existed: %v", err)
	default:
	}
	if n := k.RouteWrites(); n != 0 {
		t.Fatalf("%d route writes while the interface was missing", n)
	}
	idx := k.AddLink("crn2", true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := h.mustRoute("10.65.0.6/32"); got.LinkIndex != idx {
		t.Fatalf("route on index %d, want %d", got.LinkIndex, idx)
	}
	if n := k.RouteWrites(); n != 1 {
		t.Fatalf("%d route writes, want 1", n)
	}
}

func TestEndpointTimesOutWithoutInterface(t *testing.T) {
	h := newHarness(t, fake.New())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := h.f.SetEndpoint(ctx, Endpoint{HostIface: "crn3", Addrs: []netip.Prefix{pfx("10.65.0.7/32")}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want deadline exceeded", err)
	}
}

// Foreign routes: present at start, some on destinations felix wants.
func foreignRoutes(eth int) []kernel.Route {
	return []kernel.Route{
		{Dst: pfx("192.168.10.0/24"), Type: kernel.TypeUnicast, Protocol: kernel.ProtoKernel, Scope: kernel.ScopeLink, LinkIndex: eth},
		{Dst: pfx("0.0.0.0/0"), Type: kernel.TypeUnicast, Protocol: kernel.ProtoBoot, LinkIndex: eth,
			NextHops: []kernel.NextHop{{Gateway: addr("192.168.10.1"), LinkIndex: eth}}},
		// An operator's static route on a destination an endpoint will want.
		{Dst: pfx("10.65.0.9/32"), Type: kernel.TypeUnicast, Protocol: kernel.ProtoBoot, Scope: kernel.ScopeLink, LinkIndex: eth},
		// A foreign route inside the pool that felix has no reason to want.
		{Dst: pfx("10.65.9.0/24"), Type: kernel.TypeUnicast, Protocol: 186, LinkIndex: eth,
			NextHops: []kernel.NextHop{{Gateway: addr("192.168.10.2"), LinkIndex: eth}}},
		{Dst: pfx("fd00:65:9::/64"), Type: kernel.TypeBlackhole, Protocol: kernel.ProtoBoot, Priority: 1024},
	}
}

func TestForeignRoutesUntouched(t *testing.T) {
	k := fake.New()
	eth := k.AddLink("eth0", true)
	k.AddLink("crn1", true)
	k.AddLink("crn9", true)
	foreign := foreignRoutes(eth)
	for _, r := range foreign {
		k.PutRoute(r)
	}
	h := newHarness(t, k)
	h.f.EndpointsInSync()
	h.f.SetOwnedBlocks([]netip.Prefix{pfx("10.65.0.0/26")})
	h.f.SetLearnedRoutes([]LearnedRoute{
		{Prefix: pfx("192.168.10.0/24"), NextHops: []netip.Addr{addr("192.168.10.3")}}, // hides connected
		{Prefix: pfx("10.65.9.0/24"), NextHops: []netip.Addr{addr("192.168.10.3")}},    // held by proto 186
	})
	if err := h.f.SetEndpoint(h.ctx(), Endpoint{HostIface: "crn1", Addrs: []netip.Prefix{pfx("10.65.0.5/32")}}); err != nil {
		t.Fatal(err)
	}
	err := h.f.SetEndpoint(h.ctx(), Endpoint{HostIface: "crn9", Addrs: []netip.Prefix{pfx("10.65.0.9/32")}})
	if !errors.Is(err, routetable.ErrForeignRoute) {
		t.Fatalf("endpoint on a foreign-held address: got %v, want ErrForeignRoute", err)
	}
	h.resync()
	h.f.SetLearnedRoutes(nil)
	h.f.SetOwnedBlocks(nil)
	if err := h.f.RemoveEndpoint(h.ctx(), "crn1", ""); err != nil {
		t.Fatal(err)
	}
	h.resync()
	for _, want := range foreign {
		got, ok := h.route(want.Dst.String())
		if !ok || !sameRoute(got, want) {
			t.Errorf("foreign route %v changed: now %+v (present %v)", want.Dst, got, ok)
		}
	}
	if n := len(k.Routes(4)) + len(k.Routes(6)); n != len(foreign) {
		t.Errorf("kernel has %d routes, want only the %d foreign ones: %v", n, len(foreign), k.Routes(4))
	}
}

// TestRaceWithForeignRoute: a foreign route appears between felix's read
// and its write. The add fails with EEXIST; felix reads back, sees a
// foreign owner and leaves it.
func TestRaceWithForeignRoute(t *testing.T) {
	k := fake.New()
	k.AddLink("crn1", true)
	eth := k.AddLink("eth0", true)
	h := newHarness(t, k)
	h.resync()
	foreign := kernel.Route{Dst: pfx("10.65.0.5/32"), Type: kernel.TypeUnicast, Protocol: kernel.ProtoBoot, Scope: kernel.ScopeLink, LinkIndex: eth}
	k.PutRoute(foreign)
	err := h.f.SetEndpoint(h.ctx(), Endpoint{HostIface: "crn1", Addrs: []netip.Prefix{pfx("10.65.0.5/32")}})
	if !errors.Is(err, routetable.ErrForeignRoute) {
		t.Fatalf("got %v, want ErrForeignRoute", err)
	}
	if got := h.mustRoute("10.65.0.5/32"); !sameRoute(got, foreign) {
		t.Fatalf("foreign route replaced: %+v", got)
	}
}

func TestInjectedFailures(t *testing.T) {
	tests := []struct {
		name string
		call fake.Call
		err  error
	}{
		{"EEXIST on add", fake.RouteAdd, unix.EEXIST},
		{"EINTR on add", fake.RouteAdd, unix.EINTR},
		{"ENODEV on add", fake.RouteAdd, unix.ENODEV},
		{"ENOMEM on add", fake.RouteAdd, unix.ENOMEM},
		{"dump interrupted", fake.RouteDump, kernel.ErrDumpInterrupted},
		{"EINTR on dump", fake.RouteDump, unix.EINTR},
		{"dump fails", fake.RouteDump, unix.ENOBUFS},
		{"link list interrupted", fake.LinkList, kernel.ErrDumpInterrupted},
		{"link list fails", fake.LinkList, unix.EBUSY},
		{"sysctl write fails", fake.WriteSysctl, unix.EPERM},
		{"subscribe fails", fake.LinkSubscribe, unix.ENOBUFS},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := fake.New()
			idx := k.AddLink("crn1", true)
			// Routes to adopt, so that a bad read-back would show as
			// deleted or rewritten routes.
			for i := range 20 {
				k.PutRoute(endpointRoute(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 65, 1, byte(i)}), 32).String(), idx))
			}
			k.FailNext(tc.call, tc.err)
			k.FailNext(tc.call, tc.err)
			h := newHarness(t, k)
			eps := []netip.Prefix{pfx("10.65.0.5/32")}
			for i := range 20 {
				eps = append(eps, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 65, 1, byte(i)}), 32))
			}
			if err := h.f.SetEndpoint(h.ctx(), Endpoint{HostIface: "crn1", Addrs: eps}); err != nil {
				t.Fatal(err)
			}
			h.f.EndpointsInSync()
			h.resync()
			for _, p := range eps {
				if got := h.mustRoute(p.String()); !sameRoute(got, endpointRoute(p.String(), idx)) {
					t.Errorf("route %+v", got)
				}
			}
			if n := len(k.Routes(4)); n != len(eps) {
				t.Errorf("%d routes, want %d", n, len(eps))
			}
			if k.Sysctl("net/ipv4/conf/crn1/rp_filter") != "1" {
				t.Error("rp_filter not set")
			}
		})
	}
}

func TestDumpRetryIsBounded(t *testing.T) {
	k := fake.New()
	h := newHarness(t, k)
	h.resync()
	before := k.Calls(fake.RouteDump)
	for range kernel.DefaultDumpAttempts {
		k.FailNext(fake.RouteDump, kernel.ErrDumpInterrupted)
	}
	err := h.f.Resync(h.ctx())
	if !errors.Is(err, kernel.ErrDumpInterrupted) {
		t.Fatalf("got %v, want an interrupted-dump error", err)
	}
	if n := k.Calls(fake.RouteDump) - before; n != kernel.DefaultDumpAttempts {
		t.Fatalf("%d dump attempts, want %d", n, kernel.DefaultDumpAttempts)
	}
	// And felix recovers by itself once the kernel behaves.
	h.resync()
}

func TestRestartAdoptsWithoutWrites(t *testing.T) {
	k := fake.New()
	idx := k.AddLink("crn1", true)
	eth := k.AddLink("eth0", true)
	k.PutRoute(kernel.Route{Dst: pfx("192.168.10.0/24"), Type: kernel.TypeUnicast, Protocol: kernel.ProtoKernel, Scope: kernel.ScopeLink, LinkIndex: eth})
	k.PutRoute(kernel.Route{Dst: pfx("2001:db8:ffff::/64"), Type: kernel.TypeUnicast, Protocol: kernel.ProtoKernel, LinkIndex: eth})
	h := newHarness(t, k)
	ep := Endpoint{HostIface: "crn1", Addrs: []netip.Prefix{pfx("10.65.0.5/32"), pfx("fd00:65::5/128")}}
	learned := []LearnedRoute{{Prefix: pfx("10.65.1.0/26"), NextHops: []netip.Addr{addr("192.168.10.3"), addr("192.168.10.2")}}}
	state := func(f *Felix) {
		if err := f.SetEndpoint(h.ctx(), ep); err != nil {
			t.Fatal(err)
		}
		f.SetOwnedBlocks([]netip.Prefix{pfx("10.65.0.0/26")})
		f.SetLearnedRoutes(learned)
		f.EndpointsInSync()
	}
	state(h.f)
	h.resync()
	if r := h.mustRoute("10.65.1.0/26"); len(r.NextHops) != 2 || r.NextHops[0].Gateway != addr("192.168.10.2") {
		t.Fatalf("ECMP route %+v", r)
	}
	h.mustRoute("10.65.0.0/26")
	before, writes := k.Routes(4), k.RouteWrites()

	// Restart: the old felix stops, a new one starts on the same kernel.
	h.stopFn()
	h.start()
	// Before the new felix has been told anything, it must keep everything.
	h.resync()
	if got := k.Routes(4); !slices.EqualFunc(got, before, sameRoute) {
		t.Fatalf("routes changed before desired state was stated:\n got %v\nwant %v", got, before)
	}
	state(h.f)
	h.resync()
	if got := k.Routes(4); !slices.EqualFunc(got, before, sameRoute) {
		t.Fatalf("routes changed across restart:\n got %v\nwant %v", got, before)
	}
	if n := k.RouteWrites() - writes; n != 0 {
		t.Fatalf("restart made %d route writes, want 0", n)
	}
	_ = idx
}

func TestStaleRoutesGoOnlyOnceInSync(t *testing.T) {
	k := fake.New()
	idx := k.AddLink("crn1", true)
	stale := endpointRoute("10.65.0.99/32", idx)
	staleBlock := kernel.Route{Dst: pfx("10.65.3.0/26"), Type: kernel.TypeBlackhole, Protocol: DefaultRouteProtocol}
	staleLearned := kernel.Route{Dst: pfx("10.65.4.0/26"), Type: kernel.TypeUnicast, Protocol: DefaultRouteProtocol,
		NextHops: []kernel.NextHop{{Gateway: addr("192.168.10.7")}}}
	for _, r := range []kernel.Route{stale, staleBlock, staleLearned} {
		k.PutRoute(r)
	}
	h := newHarness(t, k)
	if err := h.f.SetEndpoint(h.ctx(), Endpoint{HostIface: "crn1", Addrs: []netip.Prefix{pfx("10.65.0.5/32")}}); err != nil {
		t.Fatal(err)
	}
	h.resync()
	for _, r := range []kernel.Route{stale, staleBlock, staleLearned} {
		h.mustRoute(r.Dst.String())
	}
	h.f.EndpointsInSync()
	h.resync()
	h.noRoute(stale.Dst.String())
	h.mustRoute(staleBlock.Dst.String())
	h.f.SetOwnedBlocks(nil)
	h.resync()
	h.noRoute(staleBlock.Dst.String())
	h.mustRoute(staleLearned.Dst.String())
	h.f.SetLearnedRoutes(nil)
	h.resync()
	h.noRoute(staleLearned.Dst.String())
}

func TestLinkDeletedAndRecreated(t *testing.T) {
	k := fake.New()
	k.AddLink("crn1", true)
	h := newHarness(t, k)
	if err := h.f.SetEndpoint(h.ctx(), Endpoint{HostIface: "crn1", Addrs: []netip.Prefix{pfx("10.65.0.5/32")}}); err != nil {
		t.Fatal(err)
	}
	k.DelLink("crn1")
	h.noRoute("10.65.0.5/32") // the kernel dropped it with the link
	idx := k.AddLink("crn1", true)
	eventually(t, "route on the new link", func() bool {
		r, ok := h.route("10.65.0.5/32")
		return ok && r.LinkIndex == idx
	})
	if k.Sysctl("net/ipv4/conf/crn1/rp_filter") != "1" {
		t.Fatal("settings not applied to the new link")
	}
}

func TestLinkDownAndUp(t *testing.T) {
	k := fake.New()
	idx := k.AddLink("crn1", true)
	h := newHarness(t, k)
	if err := h.f.SetEndpoint(h.ctx(), Endpoint{HostIface: "crn1", Addrs: []netip.Prefix{pfx("10.65.0.5/32")}}); err != nil {
		t.Fatal(err)
	}
	k.SetLinkUp("crn1", false)
	h.noRoute("10.65.0.5/32")
	k.SetLinkUp("crn1", true)
	eventually(t, "route back after link up", func() bool {
		r, ok := h.route("10.65.0.5/32")
		return ok && r.LinkIndex == idx
	})
}

func TestLinkRenamed(t *testing.T) {
	k := fake.New()
	old := k.AddLink("crn1", true)
	h := newHarness(t, k)
	h.f.EndpointsInSync()
	if err := h.f.SetEndpoint(h.ctx(), Endpoint{HostIface: "crn1", Addrs: []netip.Prefix{pfx("10.65.0.5/32")}}); err != nil {
		t.Fatal(err)
	}
	// The veth felix routed to now has another name: its route must go,
	// and come back when an interface of the right name appears.
	k.RenameLink("crn1", "crnold")
	eventually(t, "route removed from the renamed link", func() bool {
		_, ok := h.route("10.65.0.5/32")
		return !ok
	})
	idx := k.AddLink("crn1", true)
	eventually(t, "route on the new crn1", func() bool {
		r, ok := h.route("10.65.0.5/32")
		return ok && r.LinkIndex == idx && idx != old
	})
}

func TestSubscriptionBreaks(t *testing.T) {
	k := fake.New()
	h := newHarness(t, k)
	h.resync()
	k.BreakSubscriptions()
	done := make(chan error, 1)
	go func() {
		done <- h.f.SetEndpoint(h.ctx(), Endpoint{HostIface: "crn1", Addrs: []netip.Prefix{pfx("10.65.0.5/32")}})
	}()
	h.resync() // the endpoint is recorded; its link is missing
	k.AddLink("crn1", true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestDeleteOfVanishedRoute(t *testing.T) {
	k := fake.New()
	k.AddLink("crn1", true)
	h := newHarness(t, k)
	h.f.SetOwnedBlocks([]netip.Prefix{pfx("10.65.0.0/26")})
	h.resync()
	h.mustRoute("10.65.0.0/26")
	// Someone deletes felix's route behind its back, then felix deletes it
	// too and gets ESRCH: that is success, not an error loop.
	r := h.mustRoute("10.65.0.0/26")
	if errs := k.RouteApply([]kernel.RouteOp{{Kind: kernel.OpDelete, Route: r}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	deletes := k.Calls(fake.RouteDelete)
	h.f.SetOwnedBlocks(nil)
	eventually(t, "felix's delete", func() bool { return k.Calls(fake.RouteDelete) > deletes })
	h.resync()
	h.noRoute("10.65.0.0/26")
	if n := k.Calls(fake.RouteDelete); n != deletes+1 {
		t.Fatalf("%d deletes after the first, want 1", n-deletes)
	}
}

func TestRouteRemovedBehindOurBackIsRestored(t *testing.T) {
	k := fake.New()
	h := newHarness(t, k)
	h.f.SetOwnedBlocks([]netip.Prefix{pfx("10.65.0.0/26"), pfx("fd00:65::/122")})
	h.resync()
	r := h.mustRoute("10.65.0.0/26")
	k.RouteApply([]kernel.RouteOp{{Kind: kernel.OpDelete, Route: r}})
	h.noRoute("10.65.0.0/26")
	h.resync()
	h.mustRoute("10.65.0.0/26")
	h.mustRoute("fd00:65::/122")
}

func TestLearnedRoutes(t *testing.T) {
	k := fake.New()
	eth := k.AddLink("eth0", true)
	k.AddLink("crn1", true)
	k.PutRoute(kernel.Route{Dst: pfx("192.168.10.0/24"), Type: kernel.TypeUnicast, Protocol: kernel.ProtoKernel, Scope: kernel.ScopeLink, LinkIndex: eth})
	k.PutRoute(kernel.Route{Dst: pfx("2001:db8:ffff::/64"), Type: kernel.TypeUnicast, Protocol: kernel.ProtoKernel, LinkIndex: eth})
	h := newHarness(t, k)
	if err := h.f.SetEndpoint(h.ctx(), Endpoint{HostIface: "crn1", Addrs: []netip.Prefix{pfx("10.65.0.5/32")}}); err != nil {
		t.Fatal(err)
	}
	h.f.SetOwnedBlocks([]netip.Prefix{pfx("10.65.0.0/26")})
	gw1, gw2 := addr("192.168.10.2"), addr("192.168.10.3")
	h.f.SetLearnedRoutes([]LearnedRoute{
		{Prefix: pfx("10.65.1.0/26"), NextHops: []netip.Addr{gw2, gw1}}, // ECMP
		{Prefix: pfx("10.65.2.0/26"), NextHops: []netip.Addr{gw1}},
		{Prefix: pfx("10.65.0.9/32"), NextHops: []netip.Addr{gw1}},                       // borrowed from our block
		{Prefix: pfx("10.65.0.5/32"), NextHops: []netip.Addr{gw1}},                       // our own pod
		{Prefix: pfx("10.65.0.0/26"), NextHops: []netip.Addr{gw1}},                       // our own block
		{Prefix: pfx("192.168.10.0/25"), NextHops: []netip.Addr{gw1}},                    // inside the node subnet
		{Prefix: pfx("fd00:66::/122"), NextHops: []netip.Addr{addr("10.0.0.1")}},         // bad family: ignored
		{Prefix: pfx("fd00:67::/122"), NextHops: []netip.Addr{addr("fe80::1")}},          // link-local: ignored
		{Prefix: pfx("fd00:68::/122"), NextHops: []netip.Addr{addr("2001:db8:ffff::1")}}, // fine
		// Next hops: one of our pods, an address of our block, an
		// address no device route reaches, and ECMP with one bad hop.
		{Prefix: pfx("10.65.3.0/26"), NextHops: []netip.Addr{addr("10.65.0.5")}},
		{Prefix: pfx("10.65.4.0/26"), NextHops: []netip.Addr{addr("10.65.0.7")}},
		{Prefix: pfx("10.65.5.0/26"), NextHops: []netip.Addr{addr("172.16.0.1")}},
		{Prefix: pfx("10.65.6.0/26"), NextHops: []netip.Addr{gw1, addr("172.16.0.1")}},
	})
	h.resync()
	h.noRoute("10.65.3.0/26")
	h.noRoute("10.65.4.0/26")
	h.noRoute("10.65.5.0/26")
	if r := h.mustRoute("10.65.6.0/26"); len(r.NextHops) != 1 || r.NextHops[0].Gateway != gw1 {
		t.Errorf("ECMP route with one unreachable hop: %+v", r)
	}
	refused := h.f.RefusedRoutes()
	for p, want := range map[string]string{
		"10.65.3.0/26": "next hop is a local pod", "10.65.4.0/26": "next hop inside an owned block",
		"10.65.5.0/26": "next hop not on a connected subnet", "192.168.10.0/25": "equal to or inside a connected route",
		"fd00:66::/122": "next hop 10.0.0.1 does not match the prefix family",
		"fd00:67::/122": "link-local next hop fe80::1 needs an interface felix is not given",
	} {
		if got := refused[pfx(p)]; got != want {
			t.Errorf("refused[%s] = %q, want %q", p, got, want)
		}
	}
	if _, ok := refused[pfx("10.65.6.0/26")]; ok {
		t.Errorf("10.65.6.0/26 reported refused although one hop is usable")
	}
	if r := h.mustRoute("10.65.1.0/26"); len(r.NextHops) != 2 || r.NextHops[0].Gateway != gw1 || r.NextHops[1].Gateway != gw2 {
		t.Errorf("ECMP route %+v", r)
	}
	h.mustRoute("10.65.2.0/26")
	if r := h.mustRoute("10.65.0.9/32"); len(r.NextHops) != 1 {
		t.Errorf("borrowed address route %+v", r)
	}
	if r := h.mustRoute("10.65.0.5/32"); r.LinkIndex == 0 || len(r.NextHops) != 0 {
		t.Errorf("local endpoint hidden by learned route: %+v", r)
	}
	if r := h.mustRoute("10.65.0.0/26"); r.Type != kernel.TypeBlackhole {
		t.Errorf("own block hidden: %+v", r)
	}
	h.noRoute("192.168.10.0/25")
	h.noRoute("fd00:66::/122")
	h.noRoute("fd00:67::/122")
	h.mustRoute("fd00:68::/122")

	// One path goes: the ECMP route is replaced in place.
	h.f.SetLearnedRoutes([]LearnedRoute{{Prefix: pfx("10.65.1.0/26"), NextHops: []netip.Addr{gw2}}})
	h.resync()
	if r := h.mustRoute("10.65.1.0/26"); len(r.NextHops) != 1 || r.NextHops[0].Gateway != gw2 {
		t.Errorf("after withdrawal %+v", r)
	}
	h.noRoute("10.65.2.0/26")
	// Our pod goes away: the learned /32 for its address may now land.
	h.f.SetLearnedRoutes([]LearnedRoute{{Prefix: pfx("10.65.0.5/32"), NextHops: []netip.Addr{gw2}}})
	if err := h.f.RemoveEndpoint(h.ctx(), "crn1", ""); err != nil {
		t.Fatal(err)
	}
	h.resync()
	if r := h.mustRoute("10.65.0.5/32"); len(r.NextHops) != 1 {
		t.Errorf("moved pod route %+v", r)
	}
}

func TestOutgoingNAT(t *testing.T) {
	k := fake.New()
	h := newHarness(t, k)
	h.f.SetPools([]Pool{{CIDR: pfx("10.65.0.0/16"), NATOutgoing: true}, {CIDR: pfx("10.66.0.0/16")}})
	h.resync()
	got, _ := h.nft.Comments(natoutgoing.ChainName)
	want := []string{
		"cairn: to pool 10.65.0.0/16: no NAT",
		"cairn: to pool 10.66.0.0/16: no NAT",
		"cairn: from NAT pool 10.65.0.0/16 to outside: masquerade",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("chain %q, want %q", got, want)
	}
	flushes := h.nft.Flushes()
	h.resync()
	if h.nft.Flushes() != flushes {
		t.Fatal("a resync with nothing changed rewrote nftables")
	}
	// Drift: someone deletes the chain; the next resync restores it.
	h.nft.DeleteChain(natoutgoing.ChainName)
	h.resync()
	if got, _ := h.nft.Comments(natoutgoing.ChainName); !slices.Equal(got, want) {
		t.Fatalf("after drift %q", got)
	}
	// A failed commit is retried.
	h.nft.FailNextFlush(unix.ENOMEM)
	h.f.SetPools([]Pool{{CIDR: pfx("10.65.0.0/16")}})
	eventually(t, "NAT rules rewritten after a failure", func() bool {
		got, _ := h.nft.Comments(natoutgoing.ChainName)
		return slices.Equal(got, []string{"cairn: to pool 10.65.0.0/16: no NAT"})
	})
}

func TestCheckNodeSettings(t *testing.T) {
	k := fake.New()
	k.SetSysctl("net/ipv4/conf/all/rp_filter", "2")
	rep, err := CheckNodeSettings(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	if k.Sysctl("net/ipv4/ip_forward") != "1" {
		t.Fatal("IPv4 forwarding not enabled")
	}
	if k.Sysctl("net/ipv6/conf/all/forwarding") == "1" {
		t.Fatal("IPv6 forwarding enabled before any IPv6 pool serves the node")
	}
	if len(rep.Warnings) != 1 {
		t.Fatalf("warnings %q, want one about rp_filter", rep.Warnings)
	}
	k2 := fake.New()
	k2.FailNext(fake.WriteSysctl, unix.EROFS)
	if _, err := CheckNodeSettings(k2, nil); !errors.Is(err, ErrNodeUnfit) {
		t.Fatalf("got %v, want ErrNodeUnfit", err)
	}
}

func TestSubscribeFailsAtStart(t *testing.T) {
	k := fake.New()
	k.FailNext(fake.LinkSubscribe, unix.ENOBUFS)
	h := newHarness(t, k)
	done := make(chan error, 1)
	go func() {
		done <- h.f.SetEndpoint(h.ctx(), Endpoint{HostIface: "crn1", Addrs: []netip.Prefix{pfx("10.65.0.5/32")}})
	}()
	// felix retries the subscription with backoff (not only at the 1h
	// periodic resync of this harness), so the new link is seen.
	eventually(t, "a second subscription", func() bool { return k.Calls(fake.LinkSubscribe) >= 2 })
	k.AddLink("crn1", true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// IPv6 forwarding follows the pools: off while none serves the node, on
// once an IPv6 one does (felix's side of the agent's pool sync).
func TestIPv6ForwardingFollowsPools(t *testing.T) {
	k := fake.New()
	k.SetSysctl("net/ipv6/conf/all/forwarding", "0")
	h := newHarness(t, k)
	h.f.SetPools([]Pool{{CIDR: pfx("10.65.0.0/16"), ServesNode: true}, {CIDR: pfx("fd00:65::/48")}})
	if err := h.f.Resync(h.ctx()); err != nil {
		t.Fatal(err)
	}
	if v := k.Sysctl("net/ipv6/conf/all/forwarding"); v != "0" {
		t.Fatalf("IPv6 forwarding %q while no IPv6 pool serves the node", v)
	}
	h.f.SetPools([]Pool{{CIDR: pfx("10.65.0.0/16"), ServesNode: true}, {CIDR: pfx("fd00:65::/48"), ServesNode: true}})
	eventually(t, "IPv6 forwarding on", func() bool { return k.Sysctl("net/ipv6/conf/all/forwarding") == "1" })
}

// TestRemoveEndpointOnlyForItsOwner: a host veth name passes to a later
// owner (a pod's new sandbox); a removal by the earlier owner leaves the
// new owner's routes alone, the new owner's own removal takes them.
func TestRemoveEndpointOnlyForItsOwner(t *testing.T) {
	k := fake.New()
	idx := k.AddLink("crn1", true)
	h := newHarness(t, k)
	if err := h.f.SetEndpoint(h.ctx(), Endpoint{HostIface: "crn1", Addrs: []netip.Prefix{pfx("10.65.0.5/32")}, Owner: "old/eth0"}); err != nil {
		t.Fatal(err)
	}
	if err := h.f.SetEndpoint(h.ctx(), Endpoint{HostIface: "crn1", Addrs: []netip.Prefix{pfx("10.65.0.6/32")}, Owner: "new/eth0"}); err != nil {
		t.Fatal(err)
	}
	if err := h.f.RemoveEndpoint(h.ctx(), "crn1", "old/eth0"); err != nil {
		t.Fatal(err)
	}
	h.resync()
	if got, want := h.mustRoute("10.65.0.6/32"), endpointRoute("10.65.0.6/32", idx); !sameRoute(got, want) {
		t.Errorf("after the earlier owner's removal: route %+v, want %+v", got, want)
	}
	h.noRoute("10.65.0.5/32")
	if err := h.f.RemoveEndpoint(h.ctx(), "crn1", "new/eth0"); err != nil {
		t.Fatal(err)
	}
	h.noRoute("10.65.0.6/32")
}
