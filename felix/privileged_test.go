package felix_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-net/cairn/felix"
	"github.com/cairn-net/cairn/felix/internal/netnstest"
	"github.com/cairn-net/cairn/felix/kernel"
	"github.com/cairn-net/cairn/felix/routetable"
	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"
)

var pfx = netip.MustParsePrefix

func logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// runFelix starts felix working in n; the returned stop ends it (also
// called at cleanup).
func runFelix(t *testing.T, n *netnstest.NS) (*felix.Felix, func()) {
	t.Helper()
	f, err := felix.New(felix.Options{NodeName: "node-" + n.Name[len(n.Name)-4:], Logger: logger(t), NetNSPath: n.Path()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			f.Close()
		})
	}
	t.Cleanup(stop)
	return f, stop
}

func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func ourRoutes(t *testing.T, n *netnstest.NS) []string {
	out := n.IP(t, "route", "show", "proto", "77")
	out += n.IP(t, "-6", "route", "show", "proto", "77")
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

func TestPrivilegedThousandEndpointsConverge(t *testing.T) {
	node := netnstest.New(t)
	const count = 1000
	var batch []string
	for i := range count {
		batch = append(batch, fmt.Sprintf("link add crn%d type veth peer name pod%d", i, i),
			fmt.Sprintf("link set crn%d up", i), fmt.Sprintf("link set pod%d up", i))
	}
	node.IPBatch(t, batch)
	f, _ := runFelix(t, node)
	ctx := timeout(t, 60*time.Second)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, count)
	work := make(chan int)
	for range 16 { // as concurrent CNI ADDs
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				ep := felix.Endpoint{HostIface: fmt.Sprintf("crn%d", i), Addrs: []netip.Prefix{
					netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, byte(64 + i/256), byte(i)}), 32),
					netip.PrefixFrom(netip.MustParseAddr(fmt.Sprintf("fd00:99::%x", i+1)), 128),
				}}
				if err := f.SetEndpoint(ctx, ep); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range count {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("%d endpoints (%d routes) converged in %v (%.0f endpoints/s)", count, 2*count, took, count/took.Seconds())
	routes := ourRoutes(t, node)
	if len(routes) != 2*count {
		t.Fatalf("%d routes with proto 77, want %d", len(routes), 2*count)
	}
	want := "10.99.67.231 dev crn999 scope link"
	if !strings.Contains(strings.Join(routes, "\n"), want) {
		t.Errorf("no %q among routes", want)
	}
	// One at a time, as CNI ADDs arriving alone: the latency each sees.
	var batch2 []string
	for i := count; i < count+50; i++ {
		batch2 = append(batch2, fmt.Sprintf("link add crn%d type veth peer name pod%d", i, i), fmt.Sprintf("link set crn%d up", i))
	}
	node.IPBatch(t, batch2)
	var lat []time.Duration
	for i := count; i < count+50; i++ {
		start := time.Now()
		err := f.SetEndpoint(ctx, felix.Endpoint{HostIface: fmt.Sprintf("crn%d", i), Addrs: []netip.Prefix{
			netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, 80, byte(i)}), 32)}})
		if err != nil {
			t.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("SetEndpoint alone with %d endpoints present: p50 %v, max %v", count, lat[len(lat)/2], lat[len(lat)-1])
	for _, sysctl := range []string{"/proc/sys/net/ipv4/conf/crn999/rp_filter", "/proc/sys/net/ipv6/conf/crn999/accept_ra", "/proc/sys/net/ipv4/conf/crn0/proxy_arp"} {
		out, err := node.Exec(ctx, "cat", sysctl)
		want := "0"
		if strings.Contains(sysctl, "rp_filter") {
			want = "1"
		}
		if err != nil || strings.TrimSpace(out) != want {
			t.Errorf("%s = %q (%v), want %s", sysctl, out, err, want)
		}
	}
}

// monitor runs `ip monitor route` in n. Marks (route changes of its own,
// protocol 99, never felix's) show where in its output a moment falls, and
// tell when it is listening.
type monitor struct {
	p      *netnstest.Process
	n      *netnstest.NS
	marker int
}

func startMonitor(t *testing.T, n *netnstest.NS) *monitor {
	return &monitor{p: n.Start(t, "ip", "monitor", "route"), n: n}
}

// mark adds marker routes until the monitor prints one (the first ones may
// come before it listens) and returns the output length just past it.
func (m *monitor) mark(t *testing.T) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		m.marker++
		dst := fmt.Sprintf("10.99.255.%d ", m.marker)
		m.n.IP(t, "route", "add", strings.TrimSpace(dst), "dev", "lo", "proto", "99")
		for tries := time.Now().Add(300 * time.Millisecond); time.Now().Before(tries); {
			out := m.p.Output()
			if i := strings.Index(out, dst); i >= 0 {
				return i + strings.Index(out[i:], "\n") + 1
			}
			time.Sleep(2 * time.Millisecond) // polling interval
		}
	}
	t.Fatalf("ip monitor never showed a marker; output:\n%s", m.p.Output())
	return 0
}

// between returns the changes printed between two marks, markers excluded.
func (m *monitor) between(from, to int) []string {
	var out []string
	for _, l := range strings.Split(m.p.Output()[from:to], "\n") {
		if l != "" && !strings.HasPrefix(l, "10.99.255.") {
			out = append(out, l)
		}
	}
	return out
}

func TestPrivilegedRestartMakesNoRouteChanges(t *testing.T) {
	node := netnstest.New(t)
	// No IPv6 link-local addresses: their kernel routes would appear in
	// the monitor while the veths come up, and they are not felix's doing.
	if out, err := node.Exec(context.Background(), "sysctl", "-w", "net.ipv6.conf.default.addr_gen_mode=1"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	node.Veth(t, "eth0")
	node.IP(t, "addr", "add", "10.99.0.1/24", "dev", "eth0")
	const count = 200
	var batch []string
	for i := range count {
		batch = append(batch, fmt.Sprintf("link add crn%d type veth peer name pod%d", i, i),
			fmt.Sprintf("link set crn%d up", i), fmt.Sprintf("link set pod%d up", i))
	}
	node.IPBatch(t, batch)
	eps := make([]felix.Endpoint, count)
	for i := range eps {
		eps[i] = felix.Endpoint{HostIface: fmt.Sprintf("crn%d", i), Addrs: []netip.Prefix{
			netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, 64, byte(i)}), 32),
			netip.PrefixFrom(netip.MustParseAddr(fmt.Sprintf("fd00:99::%x", i+1)), 128),
		}}
	}
	state := func(f *felix.Felix) {
		ctx := timeout(t, 30*time.Second)
		for _, ep := range eps {
			if err := f.SetEndpoint(ctx, ep); err != nil {
				t.Fatal(err)
			}
		}
		f.EndpointsInSync()
		f.SetOwnedBlocks([]netip.Prefix{pfx("10.99.64.0/24"), pfx("fd00:99::/120")})
		f.SetLearnedRoutes([]felix.LearnedRoute{
			{Prefix: pfx("10.99.65.0/24"), NextHops: []netip.Addr{netip.MustParseAddr("10.99.0.2"), netip.MustParseAddr("10.99.0.3")}},
			{Prefix: pfx("10.99.66.0/24"), NextHops: []netip.Addr{netip.MustParseAddr("10.99.0.4")}},
		})
		f.SetPools([]felix.Pool{{CIDR: pfx("10.99.64.0/18"), NATOutgoing: true}})
		if err := f.Resync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	f1, stop1 := runFelix(t, node)
	state(f1)
	before := ourRoutes(t, node)
	// 2 per endpoint, 2 blackholes, 2 learned (the ECMP one on 3 lines).
	if len(before) != 2*count+6 {
		t.Fatalf("%d route lines before restart, want %d:\n%s", len(before), 2*count+6, strings.Join(before, "\n"))
	}
	mon := startMonitor(t, node)
	from := mon.mark(t)
	stop1()
	f2, _ := runFelix(t, node)
	// The new felix reads the kernel before it is told anything...
	if err := f2.Resync(timeout(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	// ...then is told the same state, as the agent does on start.
	state(f2)
	to := mon.mark(t)
	if changes := mon.between(from, to); len(changes) != 0 {
		t.Fatalf("%d route changes during restart:\n%s", len(changes), strings.Join(changes, "\n"))
	}
	t.Logf("ip monitor route: 0 changes while felix restarted with %d routes", len(before))
	if after := ourRoutes(t, node); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("routes differ after restart:\nbefore:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
}

func TestPrivilegedForeignRoutesUntouched(t *testing.T) {
	node := netnstest.New(t)
	node.Veth(t, "eth0")
	node.Veth(t, "crn1")
	node.Veth(t, "crn2")
	node.IP(t, "addr", "add", "10.99.0.1/24", "dev", "eth0")
	node.IP(t, "-6", "addr", "add", "fd00:99:0::1/64", "dev", "eth0", "nodad")
	foreign := [][]string{
		{"route", "add", "default", "via", "10.99.0.254"},
		{"route", "add", "10.99.64.7/32", "dev", "eth0", "proto", "static"}, // an address felix will be asked for
		{"route", "add", "10.99.70.0/24", "via", "10.99.0.9", "proto", "12"},
		{"route", "add", "blackhole", "10.99.71.0/24"},
		{"route", "add", "10.99.72.0/24", "via", "10.99.0.9", "metric", "50", "proto", "186"},
		{"-6", "route", "add", "fd00:99:70::/64", "via", "fd00:99::9"},
	}
	for _, args := range foreign {
		node.IP(t, args...)
	}
	snapshot := func() string {
		return node.IP(t, "route", "show", "table", "main") + node.IP(t, "-6", "route", "show", "table", "main")
	}
	foreignOnly := func(s string) string {
		var keep []string
		for _, l := range strings.Split(s, "\n") {
			if l != "" && !strings.Contains(l, "proto 77") {
				keep = append(keep, l)
			}
		}
		sort.Strings(keep)
		return strings.Join(keep, "\n")
	}
	before := foreignOnly(snapshot())

	f, stop := runFelix(t, node)
	ctx := timeout(t, 20*time.Second)
	if err := f.SetEndpoint(ctx, felix.Endpoint{HostIface: "crn1", Addrs: []netip.Prefix{pfx("10.99.64.5/32")}}); err != nil {
		t.Fatal(err)
	}
	err := f.SetEndpoint(ctx, felix.Endpoint{HostIface: "crn2", Addrs: []netip.Prefix{pfx("10.99.64.7/32")}})
	if !errors.Is(err, routetable.ErrForeignRoute) {
		t.Fatalf("endpoint on a foreign route's address: %v", err)
	}
	f.EndpointsInSync()
	f.SetOwnedBlocks([]netip.Prefix{pfx("10.99.64.0/26")})
	f.SetLearnedRoutes([]felix.LearnedRoute{
		{Prefix: pfx("10.99.70.0/24"), NextHops: []netip.Addr{netip.MustParseAddr("10.99.0.3")}}, // held by proto 12
		{Prefix: pfx("10.99.72.0/24"), NextHops: []netip.Addr{netip.MustParseAddr("10.99.0.3")}}, // coexists at metric 0
		{Prefix: pfx("10.99.0.0/25"), NextHops: []netip.Addr{netip.MustParseAddr("10.99.0.3")}},  // would hide the connected subnet
	})
	if err := f.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	all := snapshot()
	for _, want := range []string{"10.99.64.5 dev crn1 proto 77 scope link", "blackhole 10.99.64.0/26 proto 77", "10.99.72.0/24 via 10.99.0.3 dev eth0 proto 77"} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in\n%s", want, all)
		}
	}
	if strings.Contains(all, "10.99.0.0/25") || strings.Contains(all, "10.99.70.0/24 via 10.99.0.3") {
		t.Errorf("a learned route that must not be installed was:\n%s", all)
	}
	// Everything of felix's goes; nothing else does.
	f.SetOwnedBlocks(nil)
	f.SetLearnedRoutes(nil)
	if err := f.RemoveEndpoint(ctx, "crn1", ""); err != nil {
		t.Fatal(err)
	}
	if err := f.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	stop()
	after := snapshot()
	if foreignOnly(after) != before {
		t.Fatalf("foreign routes changed:\nbefore:\n%s\nafter:\n%s", before, foreignOnly(after))
	}
	if strings.Contains(after, "proto 77") {
		t.Fatalf("felix left routes:\n%s", after)
	}
}

// pod is a namespace wired as the CNI plugin wires a pod: a veth whose host
// side is in the node namespace, the pod address as /32, a link route to
// the gateway 169.254.1.1 and a default route through it, and a permanent
// neighbour entry for the gateway.
type pod struct {
	ns        *netnstest.NS
	hostIface string
	addr      netip.Addr
}

func newPod(t *testing.T, node *netnstest.NS, hostIface, addr string) *pod {
	p := &pod{ns: netnstest.New(t), hostIface: hostIface, addr: netip.MustParseAddr(addr)}
	node.IP(t, "link", "add", hostIface, "type", "veth", "peer", "name", "eth0", "netns", p.ns.Name)
	node.IP(t, "link", "set", hostIface, "up")
	mac := strings.Fields(node.IP(t, "-br", "link", "show", hostIface))[2]
	p.ns.IP(t, "link", "set", "eth0", "up")
	p.ns.IP(t, "addr", "add", addr+"/32", "dev", "eth0")
	p.ns.IP(t, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
	p.ns.IP(t, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
	p.ns.IP(t, "neigh", "add", "169.254.1.1", "lladdr", mac, "dev", "eth0", "nud", "permanent")
	return p
}

// listenUDP opens a UDP socket inside n.
func listenUDP(t *testing.T, n *netnstest.NS, addr string) *net.UDPConn {
	var c *net.UDPConn
	err := n.Do(func(ns.NetNS) error {
		var err error
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// sendUDP sends one datagram from inside n, from the given source address
// (which need not be local, so a test can forge it).
func sendUDP(t *testing.T, n *netnstest.NS, from, to, payload string) {
	err := n.Do(func(ns.NetNS) error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		// IP_TRANSPARENT (not just FREEBIND) lets the route lookup accept
		// a source address the pod does not have.
		if err := unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_TRANSPARENT, 1); err != nil {
			return err
		}
		src, dst := netip.MustParseAddrPort(from), netip.MustParseAddrPort(to)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: src.Addr().As4(), Port: int(src.Port())}); err != nil {
			return err
		}
		return unix.Sendto(fd, []byte(payload), 0, &unix.SockaddrInet4{Addr: dst.Addr().As4(), Port: int(dst.Port())})
	})
	if err != nil {
		t.Fatalf("send %s -> %s: %v", from, to, err)
	}
}

// receive returns the sources of datagrams until want arrives.
func receive(t *testing.T, c *net.UDPConn, want string) map[string]netip.Addr {
	t.Helper()
	got := map[string]netip.Addr{}
	buf := make([]byte, 1500)
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("waiting for %q (got %v): %v", want, got, err)
		}
		got[string(buf[:n])] = from.Addr()
		if string(buf[:n]) == want {
			return got
		}
	}
}

func TestPrivilegedOutgoingNATAndAntiSpoofing(t *testing.T) {
	node := netnstest.New(t)
	outside := netnstest.New(t)
	node.IP(t, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", outside.Name)
	node.IP(t, "addr", "add", "10.99.0.1/24", "dev", "eth0")
	node.IP(t, "link", "set", "eth0", "up")
	outside.IP(t, "addr", "add", "10.99.0.2/24", "dev", "eth0")
	outside.IP(t, "link", "set", "eth0", "up")
	// The outside has no route to the pods: only NAT lets it answer.
	pod1 := newPod(t, node, "crnpod1", "10.99.64.1")
	pod2 := newPod(t, node, "crnpod2", "10.99.64.2")

	nk, err := kernel.NewNetlink(kernel.NetlinkOptions{NetNSPath: node.Path()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nk.Close() })
	if _, err := felix.CheckNodeSettings(nk, logger(t)); err != nil {
		t.Fatal(err)
	}
	f, _ := runFelix(t, node)
	ctx := timeout(t, 20*time.Second)
	f.SetPools([]felix.Pool{{CIDR: pfx("10.99.64.0/18"), NATOutgoing: true}})
	for _, p := range []*pod{pod1, pod2} {
		if err := f.SetEndpoint(ctx, felix.Endpoint{HostIface: p.hostIface, Addrs: []netip.Prefix{netip.PrefixFrom(p.addr, 32)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Resync(ctx); err != nil {
		t.Fatal(err)
	}

	outL := listenUDP(t, outside, "10.99.0.2:7000")
	podL := listenUDP(t, pod2.ns, "10.99.64.2:7000")

	// Pod to outside: masqueraded to the node's address.
	sendUDP(t, pod1.ns, "10.99.64.1:0", "10.99.0.2:7000", "out")
	if got := receive(t, outL, "out")["out"]; got != netip.MustParseAddr("10.99.0.1") {
		t.Errorf("outside saw source %v, want the node's 10.99.0.1", got)
	}
	// Pod to pod: never NATed.
	sendUDP(t, pod1.ns, "10.99.64.1:0", "10.99.64.2:7000", "p2p")
	if got := receive(t, podL, "p2p")["p2p"]; got != pod1.addr {
		t.Errorf("pod2 saw source %v, want pod1's %v", got, pod1.addr)
	}
	// Spoofing: pod1 claims pod2's address, then an outside address; both
	// are dropped at the host veth. The honest datagram sent after them
	// on the same path arrives, so the forged ones had their chance.
	sendUDP(t, pod1.ns, "10.99.64.2:0", "10.99.0.2:7000", "spoof-pod")
	sendUDP(t, pod1.ns, "10.99.0.77:0", "10.99.0.2:7000", "spoof-out")
	sendUDP(t, pod1.ns, "10.99.64.1:0", "10.99.0.2:7000", "honest")
	got := receive(t, outL, "honest")
	for _, forged := range []string{"spoof-pod", "spoof-out"} {
		if src, ok := got[forged]; ok {
			t.Errorf("forged datagram %q got through (source seen %v)", forged, src)
		}
	}
	if out, err := node.Exec(ctx, "nft", "list", "table", "inet", "cairn"); err == nil {
		t.Logf("felix's nftables table in the node:\n%s", out)
	}
}
