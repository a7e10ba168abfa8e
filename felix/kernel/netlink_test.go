package kernel_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cairn-net/cairn/felix/internal/netnstest"
	"github.com/cairn-net/cairn/felix/kernel"
	"golang.org/x/sys/unix"
)

var pfx = netip.MustParsePrefix
var addr = netip.MustParseAddr

func setup(t *testing.T) (*netnstest.NS, *kernel.Netlink) {
	n := netnstest.New(t)
	n.Veth(t, "crnA")
	n.Veth(t, "eth0")
	n.IP(t, "addr", "add", "192.168.10.1/24", "dev", "eth0")
	n.IP(t, "addr", "add", "2001:db8:10::1/64", "dev", "eth0", "nodad")
	k, err := kernel.NewNetlink(kernel.NetlinkOptions{NetNSPath: n.Path()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return n, k
}

func dump(t *testing.T, k kernel.Kernel, family int) []kernel.Route {
	t.Helper()
	var rs []kernel.Route
	if err := k.RouteDump(family, func(r *kernel.Route) { rs = append(rs, *r) }); err != nil {
		t.Fatal(err)
	}
	return rs
}

func find(rs []kernel.Route, dst string) (kernel.Route, bool) {
	for _, r := range rs {
		if r.Dst == pfx(dst) {
			return r, true
		}
	}
	return kernel.Route{}, false
}

func TestNetlinkRoutes(t *testing.T) {
	n, k := setup(t)
	crnA, err := k.LinkByName("crnA")
	if err != nil || !crnA.Up {
		t.Fatalf("LinkByName: %+v %v", crnA, err)
	}
	if _, err := k.LinkByName("nope"); !errors.Is(err, unix.ENODEV) {
		t.Fatalf("missing link: %v", err)
	}
	gw1, gw2 := kernel.NextHop{Gateway: addr("192.168.10.2")}, kernel.NextHop{Gateway: addr("192.168.10.3")}
	ops := []kernel.RouteOp{
		{Kind: kernel.OpAdd, Route: kernel.Route{Dst: pfx("10.65.0.5/32"), Type: kernel.TypeUnicast, Scope: kernel.ScopeLink, Protocol: 77, LinkIndex: crnA.Index}},
		{Kind: kernel.OpAdd, Route: kernel.Route{Dst: pfx("fd00:65::5/128"), Type: kernel.TypeUnicast, Protocol: 77, Priority: 1024, LinkIndex: crnA.Index}},
		{Kind: kernel.OpAdd, Route: kernel.Route{Dst: pfx("10.65.0.0/26"), Type: kernel.TypeBlackhole, Protocol: 77}},
		{Kind: kernel.OpAdd, Route: kernel.Route{Dst: pfx("fd00:65::/122"), Type: kernel.TypeBlackhole, Protocol: 77, Priority: 1024}},
		{Kind: kernel.OpAdd, Route: kernel.Route{Dst: pfx("10.65.1.0/26"), Type: kernel.TypeUnicast, Protocol: 77, NextHops: []kernel.NextHop{gw1, gw2}}},
		{Kind: kernel.OpAdd, Route: kernel.Route{Dst: pfx("10.65.2.0/26"), Type: kernel.TypeUnicast, Protocol: 77, NextHops: []kernel.NextHop{gw2}}},
		{Kind: kernel.OpAdd, Route: kernel.Route{Dst: pfx("fd00:66::/122"), Type: kernel.TypeUnicast, Protocol: 77, Priority: 1024,
			NextHops: []kernel.NextHop{{Gateway: addr("2001:db8:10::2")}, {Gateway: addr("2001:db8:10::3")}}}},
		// Fails: the destination is taken by the connected route.
		{Kind: kernel.OpAdd, Route: kernel.Route{Dst: pfx("192.168.10.0/24"), Type: kernel.TypeUnicast, Scope: kernel.ScopeLink, Protocol: 77, LinkIndex: crnA.Index}},
		// Fails: no such interface.
		{Kind: kernel.OpAdd, Route: kernel.Route{Dst: pfx("10.65.0.6/32"), Type: kernel.TypeUnicast, Scope: kernel.ScopeLink, Protocol: 77, LinkIndex: 999}},
		// Fails: the connected route is not ours, delete matches protocol.
		{Kind: kernel.OpDelete, Route: kernel.Route{Dst: pfx("192.168.10.0/24"), Protocol: 77}},
	}
	errs := k.RouteApply(ops)
	for i, want := range []error{nil, nil, nil, nil, nil, nil, nil, unix.EEXIST, unix.ENODEV, unix.ESRCH} {
		if (want == nil) != (errs[i] == nil) || (want != nil && !errors.Is(errs[i], want)) {
			t.Errorf("op %d (%s %s): got %v, want %v", i, ops[i].Kind, ops[i].Route.Dst, errs[i], want)
		}
	}
	v4, v6 := dump(t, k, 4), dump(t, k, 6)
	if r, ok := find(v4, "10.65.0.5/32"); !ok || r.LinkIndex != crnA.Index || r.Scope != kernel.ScopeLink || r.Protocol != 77 || r.Type != kernel.TypeUnicast {
		t.Errorf("endpoint route %+v %v", r, ok)
	}
	if r, ok := find(v6, "fd00:65::5/128"); !ok || r.LinkIndex != crnA.Index || r.Priority != 1024 || r.Protocol != 77 {
		t.Errorf("v6 endpoint route %+v %v", r, ok)
	}
	if r, ok := find(v4, "10.65.0.0/26"); !ok || r.Type != kernel.TypeBlackhole {
		t.Errorf("blackhole %+v", r)
	}
	if r, ok := find(v6, "fd00:65::/122"); !ok || r.Type != kernel.TypeBlackhole {
		t.Errorf("v6 blackhole %+v", r)
	}
	if r, ok := find(v4, "10.65.1.0/26"); !ok || len(r.NextHops) != 2 || r.NextHops[0].Gateway != gw1.Gateway || r.NextHops[1].Gateway != gw2.Gateway {
		t.Errorf("ECMP %+v", r)
	}
	if r, ok := find(v4, "10.65.2.0/26"); !ok || len(r.NextHops) != 1 || r.NextHops[0].Gateway != gw2.Gateway || r.NextHops[0].LinkIndex == 0 {
		t.Errorf("single path %+v", r)
	}
	if r, ok := find(v6, "fd00:66::/122"); !ok || len(r.NextHops) != 2 {
		t.Errorf("v6 ECMP %+v", r)
	}
	if r, ok := find(v4, "192.168.10.0/24"); !ok || r.Protocol != kernel.ProtoKernel {
		t.Errorf("connected route %+v", r)
	}
	if _, ok := find(v4, "192.168.10.1/32"); ok {
		t.Error("dump includes the local table")
	}
	out := n.IP(t, "route", "show", "proto", "77")
	for _, want := range []string{"10.65.0.5 dev crnA scope link", "blackhole 10.65.0.0/26", "10.65.1.0/26"} {
		if !strings.Contains(out, want) {
			t.Errorf("ip route lacks %q:\n%s", want, out)
		}
	}

	// Replace changes in place; delete with our protocol removes.
	errs = k.RouteApply([]kernel.RouteOp{
		{Kind: kernel.OpReplace, Route: kernel.Route{Dst: pfx("10.65.1.0/26"), Type: kernel.TypeUnicast, Protocol: 77, NextHops: []kernel.NextHop{gw1}}},
		{Kind: kernel.OpDelete, Route: kernel.Route{Dst: pfx("10.65.0.0/26"), Protocol: 77}},
		{Kind: kernel.OpDelete, Route: kernel.Route{Dst: pfx("fd00:65::/122"), Protocol: 77, Priority: 1024}},
		{Kind: kernel.OpDelete, Route: kernel.Route{Dst: pfx("10.65.9.0/26"), Protocol: 77}},
	})
	if errs[0] != nil || errs[1] != nil || errs[2] != nil || !errors.Is(errs[3], unix.ESRCH) {
		t.Fatalf("second batch: %v", errs)
	}
	v4 = dump(t, k, 4)
	if r, _ := find(v4, "10.65.1.0/26"); len(r.NextHops) != 1 {
		t.Errorf("replaced route %+v", r)
	}
	if _, ok := find(v4, "10.65.0.0/26"); ok {
		t.Error("deleted route still there")
	}
}

// TestNetlinkBigBatch crosses the batch size limit and has failures spread
// through it, to check each error lands on its own op.
func TestNetlinkBigBatch(t *testing.T) {
	_, k := setup(t)
	crnA, _ := k.LinkByName("crnA")
	var ops []kernel.RouteOp
	for i := range 20000 {
		idx := crnA.Index
		if i%1000 == 999 {
			idx = 9999 // fails with ENODEV
		}
		a := netip.AddrFrom4([4]byte{10, 70, byte(i >> 8), byte(i)})
		ops = append(ops, kernel.RouteOp{Kind: kernel.OpAdd, Route: kernel.Route{
			Dst: netip.PrefixFrom(a, 32), Type: kernel.TypeUnicast, Scope: kernel.ScopeLink, Protocol: 77, LinkIndex: idx}})
	}
	errs := k.RouteApply(ops)
	for i, err := range errs {
		if (i%1000 == 999) != errors.Is(err, unix.ENODEV) || (i%1000 != 999 && err != nil) {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	rs := dump(t, k, 4)
	n := 0
	for _, r := range rs {
		if r.Protocol == 77 {
			n++
		}
	}
	if n != 20000-20 {
		t.Fatalf("%d routes in the kernel, want %d", n, 20000-20)
	}
}

func TestNetlinkLinksAndSysctls(t *testing.T) {
	n, k := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := k.LinkSubscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n.Veth(t, "crnB")
	deadline := time.After(5 * time.Second)
	for seen := false; !seen; {
		select {
		case u := <-ch:
			seen = u.Link.Name == "crnB" && !u.Deleted
		case <-deadline:
			t.Fatal("no link update for crnB")
		}
	}
	links, err := k.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, l := range links {
		names[l.Name] = true
	}
	if !names["crnA"] || !names["crnB"] || !names["lo"] {
		t.Fatalf("links %v", names)
	}
	if err := k.WriteSysctl("net/ipv4/conf/crnB/rp_filter", "1"); err != nil {
		t.Fatal(err)
	}
	if v, err := k.ReadSysctl("net/ipv4/conf/crnB/rp_filter"); err != nil || v != "1" {
		t.Fatalf("rp_filter %q %v", v, err)
	}
	if out, _ := n.Exec(ctx, "cat", "/proc/sys/net/ipv4/conf/crnB/rp_filter"); strings.TrimSpace(out) != "1" {
		t.Fatalf("sysctl not written in the namespace: %q", out)
	}
	if err := k.WriteSysctl("net/ipv4/conf/nope/rp_filter", "1"); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("missing interface sysctl: %v", err)
	}
	if err := k.WriteSysctl("../../etc/passwd", "x"); err == nil {
		t.Fatal("non-network sysctl accepted")
	}
	cancel()
	for range ch {
	}
}
