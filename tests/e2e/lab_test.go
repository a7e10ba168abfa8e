package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cairnv1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/internal/lab"
)

// The default lab: one rack, a BIRD top-of-rack router, two nodes in an
// iBGP mesh with eBGP to the ToR, two pods per node.
func TestOneRackBIRD(t *testing.T) {
	l := upLab(t, lab.Options{Racks: 1, NodesPerRack: 2, Router: lab.RouterBIRD, PodsPerNode: 2})
	runChecks(t, l)
}

// Two racks, each its own AS with the ToR reflecting routes for its nodes,
// joined by a spine: pod traffic crosses ToR, spine, ToR.
func TestTwoRacksBIRD(t *testing.T) {
	l := upLab(t, lab.Options{Racks: 2, NodesPerRack: 2, Router: lab.RouterBIRD, PodsPerNode: 1})
	runChecks(t, l)
}

// The same one-rack design with FRR, which enforces RFC 8212 on eBGP.
func TestOneRackFRR(t *testing.T) {
	l := upLab(t, lab.Options{Racks: 1, NodesPerRack: 2, Router: lab.RouterFRR, PodsPerNode: 1})
	runChecks(t, l)
}

func runChecks(t *testing.T, l *lab.Lab) {
	t.Run("pods reach pods without NAT over routed hops", func(t *testing.T) { checkPodToPod(t, l) })
	t.Run("no tunnel or overlay on any node", func(t *testing.T) { checkNoEncapsulation(t, l) })
	t.Run("routers hold every node's blocks", func(t *testing.T) { checkRouterTables(t, l) })
	t.Run("no route leads out of the lab", func(t *testing.T) { checkNoRouteOut(t, l) })
	t.Run("kubectl reaches the API server", func(t *testing.T) { checkKubectl(t, l) })
	t.Run("deleting a pod removes its route and frees its address", func(t *testing.T) { checkPodDelete(t, l) })
	if l.Plan().Router == lab.RouterBIRD && len(l.Plan().Racks) == 1 {
		t.Run("cnitool conformance on two nodes", func(t *testing.T) { checkCNITool(t, l) })
		t.Run("plugin killed mid-ADD 50 times, then GC leaves nothing", func(t *testing.T) { checkPluginKilledMidAdd(t, l) })
		t.Run("API server frozen for a minute", func(t *testing.T) { checkAPIServerOutage(t, l) })
	}
}

// checkPodToPod probes every ordered pair of pods with a UDP datagram read
// by a listener inside the receiving pod: it must arrive, carry the
// sender's pod IP as source (no NAT), and have lost exactly one TTL per
// routed hop the topology puts between them.
func checkPodToPod(t *testing.T, l *lab.Lab) {
	pods := l.Pods()
	if len(pods) < 2 {
		t.Fatalf("need at least two pods, have %d", len(pods))
	}
	plan := l.Plan()
	crossNode := 0
	for _, from := range pods {
		for _, to := range pods {
			if from.Name == to.Name {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			res, err := lab.Probe(ctx, from, to)
			cancel()
			if err != nil {
				t.Errorf("%s -> %s: %v", from.Name, to.Name, err)
				continue
			}
			a, _ := plan.Node(from.Node)
			b, _ := plan.Node(to.Node)
			if res.Source != from.IP {
				t.Errorf("%s (%s) -> %s: receiver saw source %s: the address was translated", from.Name, from.IP, to.Name, res.Source)
			}
			if want := plan.RoutedHops(a, b); res.Hops() != want {
				t.Errorf("%s -> %s: TTL %d on arrival = %d hops, want %d (%s to %s)", from.Name, to.Name, res.TTL, res.Hops(), want, a.Name, b.Name)
			}
			if a.Name != b.Name {
				crossNode++
			}
		}
	}
	if crossNode == 0 {
		t.Fatal("no pair of pods on different nodes was probed")
	}
	// ping too: ICMP takes the same routes, and it is what a person tries.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first, last := pods[0], pods[len(pods)-1]
	if err := lab.Ping(ctx, first, last.IP); err != nil {
		t.Error(err)
	}
}

// tunnelKinds are the link kinds that would mean encapsulation.
var tunnelKinds = map[string]bool{
	"vxlan": true, "ipip": true, "gre": true, "gretap": true, "ip6gre": true, "ip6gretap": true,
	"erspan": true, "ip6erspan": true, "ip6tnl": true, "sit": true, "vti": true, "vti6": true,
	"wireguard": true, "geneve": true, "bareudp": true, "gtp": true,
}

// kernelFallbackTunnels are created by the kernel in every namespace once
// their module is loaded; they are down and carry nothing.
var kernelFallbackTunnels = map[string]bool{
	"tunl0": true, "gre0": true, "gretap0": true, "erspan0": true, "ip_vti0": true,
	"ip6_vti0": true, "sit0": true, "ip6tnl0": true, "ip6gre0": true,
}

type link struct {
	IfName   string   `json:"ifname"`
	Flags    []string `json:"flags"`
	LinkInfo struct {
		InfoKind string `json:"info_kind"`
	} `json:"linkinfo"`
}

// checkNoEncapsulation lists every interface of every node: no tunnel
// device (other than the kernel's own idle fallback devices), and every
// pool route goes to the rack interface, a pod veth, or is a blackhole.
func checkNoEncapsulation(t *testing.T, l *lab.Lab) {
	ctx := context.Background()
	pool := netip.MustParsePrefix(lab.PoolCIDR)
	for _, n := range l.Plan().Nodes() {
		out, err := l.Output(ctx, n.Name, "ip", "-d", "-j", "link", "show")
		if err != nil {
			t.Fatal(err)
		}
		var links []link
		if err := json.Unmarshal(out, &links); err != nil {
			t.Fatalf("decode links of %s: %v", n.Name, err)
		}
		for _, lk := range links {
			if !tunnelKinds[lk.LinkInfo.InfoKind] {
				continue
			}
			if kernelFallbackTunnels[lk.IfName] && !hasFlag(lk.Flags, "UP") {
				continue
			}
			t.Errorf("%s has a %s device %s (flags %v): pod traffic must not be encapsulated", n.Name, lk.LinkInfo.InfoKind, lk.IfName, lk.Flags)
		}
		routes, err := lab.KernelRoutes(ctx, n.NS)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			dst, err := parseDst(r.Dst)
			if err != nil || !pool.Overlaps(dst) {
				continue
			}
			if r.Type != "blackhole" && r.Dev != "eth0" && !strings.HasPrefix(r.Dev, "crn") {
				t.Errorf("%s routes pool destination %s through %q, neither the rack link nor a pod veth", n.Name, r, r.Dev)
			}
		}
	}
}

// checkNoRouteOut checks every node, router, outside host and the control
// plane: each route goes to the lab's links, the pod pool or the service
// ranges, none is a default route. (Pods have a default route, to their
// node, which has none.)
func checkNoRouteOut(t *testing.T, l *lab.Lab) {
	ctx := context.Background()
	plan := l.Plan()
	hosts := []string{plan.ControlPlane.NS}
	for _, n := range plan.Nodes() {
		hosts = append(hosts, n.NS)
	}
	for _, r := range plan.Routers() {
		hosts = append(hosts, r.NS)
	}
	for _, h := range plan.Outside {
		hosts = append(hosts, h.NS)
	}
	for _, ns := range hosts {
		routes, err := lab.KernelRoutes(ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			dst, err := parseDst(r.Dst)
			if err != nil || !insideLab(dst) {
				t.Errorf("%s has a route outside the lab: %s", ns, r)
			}
		}
	}
}

// insideLab reports whether p lies inside one of the lab's ranges.
func insideLab(p netip.Prefix) bool {
	for _, r := range lab.InsideCIDRs() {
		if r.Contains(p.Addr()) && p.Bits() >= r.Bits() {
			return true
		}
	}
	return false
}

// checkRouterTables reads each node's blocks from the API server
// (IPAMBlock affinity) and checks every router's BGP table (birdc show
// route, or vtysh) for them: the node's own ToR with the node as next hop,
// other routers towards the node's rack.
func checkRouterTables(t *testing.T, l *lab.Lab) {
	ctx := context.Background()
	blocks := nodeBlocks(t, l)
	plan := l.Plan()
	for _, n := range plan.Nodes() {
		if len(blocks[n.Name]) == 0 {
			t.Errorf("%s owns no block (IPAMBlock with affinity node:%s)", n.Name, n.Name)
		}
	}
	for _, r := range plan.Routers() {
		routes, err := l.RouterRoutes(ctx, r.Name)
		if err != nil {
			t.Fatal(err)
		}
		for node, cidrs := range blocks {
			n, ok := plan.Node(node)
			if !ok {
				t.Errorf("block owned by unknown node %q", node)
				continue
			}
			want := expectedRouterNextHop(plan, r, n)
			for _, cidr := range cidrs {
				if !hasRoute(routes, cidr, want) {
					t.Errorf("%s's table lacks %s via %s (%s's block); it has:\n%s", r.Name, cidr, want, node, formatRoutes(routes))
				}
			}
		}
	}
	// Every pod's address comes from a block of its own node.
	for _, p := range l.Pods() {
		owner := ""
		for node, cidrs := range blocks {
			for _, c := range cidrs {
				if c.Contains(p.IP) {
					owner = node
				}
			}
		}
		if owner != p.Node {
			t.Errorf("pod %s (%s) on %s has an address from a block of %q", p.Name, p.IP, p.Node, owner)
		}
	}
}

func expectedRouterNextHop(p lab.Plan, r lab.RouterPlan, n lab.Node) netip.Addr {
	rack, _ := p.Rack(n.Rack)
	if r.Name == rack.ToR.Name {
		return n.Addr
	}
	for _, peer := range r.Peers {
		if peer.Name == "spine" || peer.Name == rack.ToR.Name {
			return peer.Addr
		}
	}
	return netip.Addr{}
}

func nodeBlocks(t *testing.T, l *lab.Lab) map[string][]netip.Prefix {
	t.Helper()
	blocks, err := l.NodeBlocks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return blocks
}

func hasRoute(routes []lab.RouterRoute, p netip.Prefix, via netip.Addr) bool {
	for _, r := range routes {
		if r.Prefix == p && r.NextHop == via {
			return true
		}
	}
	return false
}

func formatRoutes(routes []lab.RouterRoute) string {
	var b strings.Builder
	for _, r := range routes {
		fmt.Fprintf(&b, "  %s via %s from %s best=%v\n", r.Prefix, r.NextHop, r.From, r.Best)
	}
	return b.String()
}

func checkKubectl(t *testing.T, l *lab.Lab) {
	var out, errOut bytes.Buffer
	code, err := l.Kubectl(context.Background(), []string{"get", "nodes", "-o", "name"}, lab.Stdio{Out: &out, Err: &errOut})
	if err != nil || code != 0 {
		t.Fatalf("kubectl get nodes: exit %d, %v: %s", code, err, errOut.String())
	}
	for _, n := range l.Plan().Nodes() {
		if !strings.Contains(out.String(), "node/"+n.Name) {
			t.Errorf("kubectl get nodes lacks %s:\n%s", n.Name, out.String())
		}
	}
}

// checkPodDelete deletes a pod through CNI DEL and checks that its node no
// longer routes its /32, its block no longer holds its address, and the
// other pods still talk; then a new pod on the same node works.
func checkPodDelete(t *testing.T, l *lab.Lab) {
	ctx := context.Background()
	pods := l.Pods()
	victim := pods[0]
	node, _ := l.Plan().Node(victim.Node)
	if !hasHostRoute(t, node, victim.IP) {
		t.Fatalf("before delete, %s has no /32 route to %s (%s): the check below would prove nothing", node.Name, victim.Name, victim.IP)
	}
	if !allocated(t, l, victim.IP) {
		t.Fatalf("before delete, no IPAMBlock allocation holds %s", victim.IP)
	}
	begin := time.Now()
	if err := l.DelPod(ctx, victim.Name); err != nil {
		t.Fatalf("delete pod: %v", err)
	}
	t.Logf("CNI DEL of %s took %v", victim.Name, time.Since(begin).Round(time.Millisecond))
	// The plugin's DEL returns after the agent released the address and
	// removed the route; allow a short grace, and report how long it took.
	deadline := time.Now().Add(5 * time.Second)
	for hasHostRoute(t, node, victim.IP) || allocated(t, l, victim.IP) {
		if time.Now().After(deadline) {
			t.Fatalf("5s after DEL: /32 route present = %v, address allocated = %v", hasHostRoute(t, node, victim.IP), allocated(t, l, victim.IP))
		}
		time.Sleep(50 * time.Millisecond) // observing two external systems: poll with a deadline
	}
	if waited := time.Since(begin); waited > 2*time.Second {
		t.Logf("route and allocation gone %v after DEL started", waited.Round(time.Millisecond))
	}
	if names, _ := lab.Namespaces(ctx); contains(names, victim.NS) {
		t.Errorf("pod namespace %s still exists", victim.NS)
	}
	fresh, err := l.AddPod(ctx, node.Name)
	if err != nil {
		t.Fatalf("add a pod after the delete: %v", err)
	}
	if err := l.WaitConverged(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, other := range l.Pods() {
		if other.Name == fresh.Name {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := lab.Probe(pctx, fresh, other)
		cancel()
		if err != nil {
			t.Errorf("new pod %s -> %s: %v", fresh.Name, other.Name, err)
		} else if res.Source != fresh.IP {
			t.Errorf("new pod %s: receiver saw source %s, want %s", fresh.Name, res.Source, fresh.IP)
		}
	}
}

func hasHostRoute(t *testing.T, n lab.Node, ip netip.Addr) bool {
	t.Helper()
	routes, err := lab.KernelRoutes(context.Background(), n.NS)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst == ip.String() || r.Dst == ip.String()+"/32" {
			return true
		}
	}
	return false
}

// allocated reports whether an IPAMBlock holds an allocation for ip.
func allocated(t *testing.T, l *lab.Lab, ip netip.Addr) bool {
	t.Helper()
	cc, err := l.CairnClient()
	if err != nil {
		t.Fatal(err)
	}
	list, err := cc.CairnV1alpha1().IPAMBlocks().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list IPAMBlocks: %v", err)
	}
	for _, b := range list.Items {
		if ordinal, ok := ordinalIn(b, ip); ok {
			for _, a := range b.Spec.Allocations {
				if a.Ordinal == ordinal {
					return true
				}
			}
		}
	}
	return false
}

func ordinalIn(b cairnv1.IPAMBlock, ip netip.Addr) (int32, bool) {
	p, err := netip.ParsePrefix(b.Spec.CIDR)
	if err != nil || !p.Contains(ip) || !ip.Is4() {
		return 0, false
	}
	base, addr := p.Addr().As4(), ip.As4()
	return int32(uint32(addr[0])<<24|uint32(addr[1])<<16|uint32(addr[2])<<8|uint32(addr[3])) -
		int32(uint32(base[0])<<24|uint32(base[1])<<16|uint32(base[2])<<8|uint32(base[3])), true
}

func parseDst(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func hasFlag(flags []string, f string) bool { return contains(flags, f) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
