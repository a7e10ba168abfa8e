package e2e

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-net/cairn/internal/lab"
)

// Dual-stack labs (`cairn-lab up --dual-stack`): IPv6 on every link, an
// IPv6 pool beside the IPv4 one, every pod an address of each family, BGP
// sessions of both families between nodes and to the routers. Each test
// has its own instance, so they can run side by side.

func TestDualStackBIRD(t *testing.T) {
	t.Parallel()
	checkDualStack(t, upDualStack(t, lab.Options{Racks: 1, NodesPerRack: 2, Router: lab.RouterBIRD, PodsPerNode: 2, Instance: "e2eds"}))
}

func TestDualStackFRR(t *testing.T) {
	t.Parallel()
	checkDualStack(t, upDualStack(t, lab.Options{Racks: 1, NodesPerRack: 2, Router: lab.RouterFRR, PodsPerNode: 2, Instance: "ds2"}))
}

// Two racks: IPv6 routes cross ToR (a route reflector), spine and ToR.
func TestDualStackTwoRacksBIRD(t *testing.T) {
	t.Parallel()
	checkDualStack(t, upDualStack(t, lab.Options{Racks: 2, NodesPerRack: 2, Router: lab.RouterBIRD, PodsPerNode: 1, Instance: "ds3"}))
}

// upDualStack brings the lab up in dual-stack mode and checks, once it is
// down again, that the host's IPv6 forwarding and its IPv6 addresses and
// routes are as before: forwarding is switched on only inside the lab.
func upDualStack(t *testing.T, o lab.Options) *lab.Lab {
	t.Helper()
	o.DualStack = true
	before := hostIPv6Forwarding(t)
	t.Cleanup(func() {
		// Registered before upLab's teardown, so it runs after it.
		if after := hostIPv6Forwarding(t); after != before {
			t.Errorf("the host's net.ipv6.conf.all.forwarding went from %s to %s", before, after)
		}
		checkRootNamespaceClean6(t)
	})
	return upLab(t, o)
}

func checkDualStack(t *testing.T, l *lab.Lab) {
	t.Run("every pod has an address of each family, listed by cairn-lab pods -o json", func(t *testing.T) { checkPodIPsJSON(t, l) })
	t.Run("sessions of both families are Established", func(t *testing.T) { checkSessionsBothFamilies(t, l) })
	t.Run("pods reach pods over IPv4 and IPv6 from their own addresses", func(t *testing.T) { checkPodToPodBothFamilies(t, l) })
	t.Run("routers hold every node's IPv6 blocks via the node's IPv6 address", func(t *testing.T) { checkRouterTables6(t, l) })
	t.Run("nodes route each other's IPv6 blocks: from the owner in the rack, through the ToR's pool route across racks", func(t *testing.T) { checkNodeRoutes6(t, l) })
	t.Run("outside1 reaches every pod over IPv6", func(t *testing.T) { checkOutside6(t, l) })
}

// checkPodIPsJSON runs the lab's own cairn-lab binary as a user would and
// reads its JSON: "ips" holds an IPv4 and an IPv6 address from the lab's
// pools, "ip" the IPv4 one.
func checkPodIPsJSON(t *testing.T, l *lab.Lab) {
	out, err := exec.Command(filepath.Join(l.BinDir(), "cairn-lab"), "--state-dir", l.StateDir(), "pods", "-o", "json").Output()
	if err != nil {
		t.Fatalf("cairn-lab pods -o json: %v", err)
	}
	var pods []struct {
		Name string   `json:"name"`
		IP   string   `json:"ip"`
		IPs  []string `json:"ips"`
	}
	if err := json.Unmarshal(out, &pods); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	if len(pods) != len(l.Pods()) {
		t.Fatalf("cairn-lab pods lists %d pods, the lab has %d", len(pods), len(l.Pods()))
	}
	pool4, pool6 := netip.MustParsePrefix(lab.PoolCIDR), netip.MustParsePrefix(lab.PoolCIDR6)
	for _, p := range pods {
		if len(p.IPs) != 2 {
			t.Errorf("%s: ips %v, want one IPv4 and one IPv6 address", p.Name, p.IPs)
			continue
		}
		a4, err4 := netip.ParseAddr(p.IPs[0])
		a6, err6 := netip.ParseAddr(p.IPs[1])
		if err4 != nil || err6 != nil || !pool4.Contains(a4) || !pool6.Contains(a6) {
			t.Errorf("%s: ips %v, want an address of %s then one of %s", p.Name, p.IPs, pool4, pool6)
		}
		if p.IP != p.IPs[0] {
			t.Errorf("%s: ip %q, want the first of ips %v", p.Name, p.IP, p.IPs)
		}
	}
}

// checkSessionsBothFamilies reads the routers' sessions (birdc or vtysh)
// and the agents' (CairnNodeStatus): every planned session of either
// family, from both ends, is Established.
func checkSessionsBothFamilies(t *testing.T, l *lab.Lab) {
	st, err := l.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var v6 int
	for _, r := range st.Routers {
		state := map[netip.Addr]string{}
		for _, s := range r.Sessions {
			state[s.Addr] = s.State
		}
		for _, p := range r.Router.Peers {
			if p.Addr.Is6() {
				v6++
			}
			if state[p.Addr] != "Established" {
				t.Errorf("%s: session to %s (%s) is %q", r.Router.Name, p.Name, p.Addr, state[p.Addr])
			}
		}
	}
	for _, n := range st.Nodes {
		state := map[netip.Addr]string{}
		for _, s := range n.Sessions {
			state[s.Addr] = s.State
		}
		for _, peer := range l.Plan().NodePeers(n.Node) {
			if state[peer] != "Established" {
				t.Errorf("%s reports its session to %s (%s) as %q", n.Node.Name, l.Plan().Name(peer), peer, state[peer])
			}
		}
	}
	if v6 == 0 {
		t.Error("no router has an IPv6 session")
	}
	t.Logf("%d IPv6 router sessions Established beside their IPv4 twins", v6)
}

// checkPodToPodBothFamilies probes every ordered pair of pods on different
// nodes in each family: the datagram arrives, from the sender's own
// address of that family, having crossed the routed hops the plan says.
func checkPodToPodBothFamilies(t *testing.T, l *lab.Lab) {
	plan := l.Plan()
	pods := l.Pods()
	probed := map[bool]int{}
	begin := time.Now()
	for _, from := range pods {
		for _, to := range pods {
			if from.Node == to.Node {
				continue
			}
			a, _ := plan.Node(from.Node)
			b, _ := plan.Node(to.Node)
			for i, dst := range to.Addrs() {
				src := from.Addrs()[i]
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				res, err := lab.ProbeAddr(ctx, from, to, dst)
				cancel()
				if err != nil {
					t.Errorf("%s -> %s (%s): %v", from.Name, to.Name, dst, err)
					continue
				}
				probed[dst.Is6()]++
				if res.Source != src {
					t.Errorf("%s -> %s (%s): receiver saw source %s, want %s", from.Name, to.Name, dst, res.Source, src)
				}
				if want := plan.RoutedHops(a, b); res.Hops() != want {
					t.Errorf("%s -> %s (%s): %d hops, want %d", from.Name, to.Name, dst, res.Hops(), want)
				}
			}
		}
	}
	if t.Failed() {
		t.Logf("%s", l.RoutingReport(context.Background()))
	}
	if probed[false] == 0 || probed[true] == 0 || probed[false] != probed[true] {
		t.Fatalf("probed %d IPv4 and %d IPv6 pairs across nodes, want the same number of each, more than none", probed[false], probed[true])
	}
	t.Logf("%d IPv4 and %d IPv6 pod pairs across nodes probed in %v", probed[false], probed[true], time.Since(begin).Round(time.Millisecond))
}

// checkRouterTables6 reads each node's IPv6 blocks from the API server and
// finds them in every router's BGP table: at the node's own ToR with the
// node's IPv6 address as next hop, elsewhere towards its rack over IPv6.
func checkRouterTables6(t *testing.T, l *lab.Lab) {
	ctx := context.Background()
	plan := l.Plan()
	blocks := nodeBlocks(t, l)
	for _, n := range plan.Nodes() {
		if !slices.ContainsFunc(blocks[n.Name], func(p netip.Prefix) bool { return p.Addr().Is6() }) {
			t.Errorf("%s owns no IPv6 block", n.Name)
		}
	}
	for _, r := range plan.Routers() {
		routes, err := l.RouterRoutes(ctx, r.Name)
		if err != nil {
			t.Fatal(err)
		}
		for node, cidrs := range blocks {
			n, _ := plan.Node(node)
			for _, cidr := range cidrs {
				if !cidr.Addr().Is6() {
					continue
				}
				want := routerNextHop6(plan, r, n)
				if !want.Is6() || !hasRoute(routes, cidr, want) {
					t.Errorf("%s's table lacks %s via %s (%s's IPv6 block); it has:\n%s", r.Name, cidr, want, node, formatRoutes(routes))
				}
			}
		}
	}
}

// routerNextHop6 is the IPv6 next hop router r should have for n's blocks:
// n itself at its own ToR, else the IPv6 twin of the IPv4 next hop.
func routerNextHop6(p lab.Plan, r lab.RouterPlan, n lab.Node) netip.Addr {
	v4 := expectedRouterNextHop(p, r, n)
	if v4 == n.Addr {
		return n.Addr6
	}
	for _, peer := range r.Peers {
		if peer.Addr.Is6() && slices.ContainsFunc(r.Peers, func(q lab.Peer) bool { return q.Addr == v4 && q.Name == peer.Name }) {
			return peer.Addr
		}
	}
	return netip.Addr{}
}

// checkNodeRoutes6 reads each node's kernel: felix (protocol 77) installs
// every IPv6 block of the node's own rack via its owner's IPv6 address.
// Another rack's block reaches a node only relayed by its ToR, with the
// ToR as next hop, which owner-only imports refuse: it must not be in the
// kernel, and the ToR's IPv6 pool route must be, via the ToR's IPv6
// address, for the node to reach that rack's pods (as the IPv4 side does).
func checkNodeRoutes6(t *testing.T, l *lab.Lab) {
	ctx := context.Background()
	plan := l.Plan()
	blocks := nodeBlocks(t, l)
	pool6 := netip.MustParsePrefix(lab.PoolCIDR6)
	for _, n := range plan.Nodes() {
		routes, err := lab.KernelRoutes6(ctx, n.NS)
		if err != nil {
			t.Fatal(err)
		}
		otherRacks := false
		for owner, cidrs := range blocks {
			if owner == n.Name {
				continue
			}
			o, _ := plan.Node(owner)
			for _, cidr := range cidrs {
				if !cidr.Addr().Is6() {
					continue
				}
				if o.Rack != n.Rack {
					otherRacks = true
					if r, ok := kernelRoute(routes, cidr); ok {
						t.Errorf("%s installed %s's block %s from another rack: %s (only its owner may announce it)", n.Name, owner, cidr, r)
					}
					continue
				}
				if !hasKernelRoute(routes, cidr, o.Addr6) {
					t.Errorf("%s has no route %s via %s (%s's block) from felix", n.Name, cidr, o.Addr6, owner)
				}
			}
		}
		if otherRacks && !hasKernelRoute(routes, pool6, n.Gateway6) {
			t.Errorf("%s has no route %s via its ToR %s from felix, so no way to another rack's IPv6 pods", n.Name, pool6, n.Gateway6)
		}
	}
	if t.Failed() {
		t.Logf("%s", l.RoutingReport(ctx))
	}
}

// kernelRoute is the route to exactly dst, if any.
func kernelRoute(routes []lab.KernelRoute, dst netip.Prefix) (lab.KernelRoute, bool) {
	for _, r := range routes {
		if r.Dst == dst.String() {
			return r, true
		}
	}
	return lab.KernelRoute{}, false
}

func hasKernelRoute(routes []lab.KernelRoute, dst netip.Prefix, via netip.Addr) bool {
	for _, r := range routes {
		if r.Dst != dst.String() || r.Protocol != "77" {
			continue
		}
		if slices.Contains(r.Gateways(), via.String()) {
			return true
		}
	}
	return false
}

// checkOutside6 pings every pod's IPv6 address from outside1, a client of
// the data-centre network that knows only the lab's IPv6 ranges.
func checkOutside6(t *testing.T, l *lab.Lab) {
	for _, p := range l.Pods() {
		addrs := p.Addrs()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := l.Output(ctx, lab.OutsideName, "ping", "-n", "-q", "-c", "1", "-W", "5", addrs[len(addrs)-1].String())
		cancel()
		if err != nil {
			t.Errorf("outside1 -> %s (%s): %v\n%s", p.Name, addrs[len(addrs)-1], err, out)
		}
	}
}

func hostIPv6Forwarding(t *testing.T) string {
	b, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/forwarding")
	if err != nil {
		t.Fatalf("read the host's IPv6 forwarding: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// checkRootNamespaceClean6 is checkRootNamespaceClean for the IPv6 ranges.
func checkRootNamespaceClean6(t *testing.T) {
	t.Helper()
	routes, err := lab.KernelRoutes6(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		p, err := parseDst(r.Dst)
		if err != nil {
			continue
		}
		for _, in := range lab.InsideCIDRs6() {
			if in.Overlaps(p) {
				t.Errorf("root namespace has a route into the lab: %s", r)
			}
		}
	}
	out, err := exec.Command("ip", "-6", "addr", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range lab.InsideCIDRs6() {
		if prefix := strings.TrimSuffix(in.Masked().Addr().String(), "::"); strings.Contains(string(out), " "+prefix+":") {
			t.Errorf("root namespace has an address in %s:\n%s", in, out)
		}
	}
}
