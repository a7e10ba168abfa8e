package lab

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestNewPlanRejectsBadOptions(t *testing.T) {
	cases := []struct {
		name string
		o    PlanOptions
		want string
	}{
		{"no racks", PlanOptions{Racks: 0, NodesPerRack: 2, Router: RouterBIRD}, "racks must be"},
		{"too many racks", PlanOptions{Racks: 64, NodesPerRack: 2, Router: RouterBIRD}, "racks must be"},
		{"no nodes", PlanOptions{Racks: 1, NodesPerRack: 0, Router: RouterBIRD}, "nodes per rack"},
		{"too many nodes", PlanOptions{Racks: 1, NodesPerRack: 201, Router: RouterBIRD}, "nodes per rack"},
		{"unknown router", PlanOptions{Racks: 1, NodesPerRack: 2, Router: "quagga"}, "router must be"},
		{"instance with a dash", PlanOptions{Racks: 1, NodesPerRack: 2, Router: RouterBIRD, Instance: "a-b"}, "instance name"},
		{"instance too long", PlanOptions{Racks: 1, NodesPerRack: 2, Router: RouterBIRD, Instance: "abcdefghi"}, "instance name"},
		{"block larger than /20", PlanOptions{Racks: 1, NodesPerRack: 2, Router: RouterBIRD, BlockSize: 19}, "block size"},
		{"block longer than /32", PlanOptions{Racks: 1, NodesPerRack: 2, Router: RouterBIRD, BlockSize: 33}, "block size"},
		{"gobgpd with BFD", PlanOptions{Racks: 1, NodesPerRack: 2, Router: RouterGoBGPD, BFD: true}, "gobgpd has no BFD"},
		{"gobgpd with racks", PlanOptions{Racks: 2, NodesPerRack: 2, Router: RouterGoBGPD}, "one rack"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewPlan(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewPlan(%+v) = %v, want an error with %q", tc.o, err, tc.want)
			}
		})
	}
}

func TestNewPlanShapes(t *testing.T) {
	cases := []struct {
		name                  string
		o                     PlanOptions
		namespaces, links     int
		mesh                  bool
		routers               []string
		nodeAS                map[string]int64
		torPeers              map[string][]string
		annotated, rrClientOf []string
		outsideBehind         string
	}{
		{
			name: "default: one rack, two nodes", o: PlanOptions{Racks: 1, NodesPerRack: 2, Router: RouterBIRD},
			namespaces: 5, links: 4, mesh: true, routers: []string{"tor1"},
			nodeAS:        map[string]int64{"node1": ClusterAS, "node2": ClusterAS},
			torPeers:      map[string][]string{"tor1": {"node1", "node2"}},
			outsideBehind: "tor1",
		},
		{
			name: "two racks: rack ASes, spine, no mesh", o: PlanOptions{Racks: 2, NodesPerRack: 2, Router: RouterFRR},
			namespaces: 9, links: 8, mesh: false, routers: []string{"tor1", "tor2", "spine"},
			nodeAS:        map[string]int64{"node1": 65001, "node2": 65001, "node3": 65002, "node4": 65002},
			torPeers:      map[string][]string{"tor1": {"node1", "node2", "spine"}, "tor2": {"node3", "node4", "spine"}, "spine": {"tor1", "tor2"}},
			annotated:     []string{"node1", "node2", "node3", "node4"},
			rrClientOf:    []string{"node1", "node2", "node3", "node4"},
			outsideBehind: "spine",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPlan(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(p.Namespaces()); got != tc.namespaces {
				t.Errorf("namespaces = %d %v, want %d", got, p.Namespaces(), tc.namespaces)
			}
			if got := len(p.Links); got != tc.links {
				t.Errorf("links = %d, want %d", got, tc.links)
			}
			if p.BGP.MeshEnabled != tc.mesh {
				t.Errorf("mesh = %v, want %v", p.BGP.MeshEnabled, tc.mesh)
			}
			var routers []string
			for _, r := range p.Routers() {
				routers = append(routers, r.Name)
				var peers []string
				for _, peer := range r.Peers {
					peers = append(peers, peer.Name)
					wantRR := contains(tc.rrClientOf, peer.Name)
					if peer.RRClient != wantRR {
						t.Errorf("%s peer %s: rr client = %v, want %v", r.Name, peer.Name, peer.RRClient, wantRR)
					}
				}
				if strings.Join(peers, ",") != strings.Join(tc.torPeers[r.Name], ",") {
					t.Errorf("%s peers = %v, want %v", r.Name, peers, tc.torPeers[r.Name])
				}
			}
			if strings.Join(routers, ",") != strings.Join(tc.routers, ",") {
				t.Errorf("routers = %v, want %v", routers, tc.routers)
			}
			checkOutside(t, p, tc.outsideBehind)
			for _, n := range p.Nodes() {
				if n.AS != tc.nodeAS[n.Name] {
					t.Errorf("%s AS = %d, want %d", n.Name, n.AS, tc.nodeAS[n.Name])
				}
				if n.ASAnnotation != contains(tc.annotated, n.Name) {
					t.Errorf("%s AS annotation = %v", n.Name, n.ASAnnotation)
				}
				rack, _ := p.Rack(n.Rack)
				if n.Gateway != rack.ToR.RouterID || !rack.Subnet.Contains(n.Addr) {
					t.Errorf("%s: address %s gateway %s, not on rack %s (%s, ToR %s)", n.Name, n.Addr, n.Gateway, rack.Name, rack.Subnet, rack.ToR.RouterID)
				}
			}
		})
	}
}

// Everything the lab addresses is inside the lab's range: no route or
// address may lead out of the lab.
func TestPlanStaysInsideTheLab(t *testing.T) {
	lab := netip.MustParsePrefix(LabCIDR)
	for _, racks := range []int{1, 2, 5} {
		p, err := NewPlan(PlanOptions{Racks: racks, NodesPerRack: 3, Router: RouterBIRD})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range p.Links {
			for _, e := range []End{l.A, l.B} {
				if e.Addr.IsValid() && !lab.Contains(e.Addr.Addr()) {
					t.Errorf("racks=%d: %s/%s has %s outside %s", racks, e.NS, e.Name, e.Addr, lab)
				}
				if !strings.HasPrefix(e.NS, NSPrefix) {
					t.Errorf("racks=%d: link end in %s, not a lab namespace", racks, e.NS)
				}
			}
		}
		for _, r := range p.Routes {
			if r.Dst.Bits() == 0 || !slices.Contains(InsideCIDRs(), r.Dst) || !lab.Contains(r.Via) {
				t.Errorf("racks=%d: static route %s via %s in %s leaves the lab", racks, r.Dst, r.Via, r.NS)
			}
		}
		for _, ns := range p.Namespaces() {
			if !strings.HasPrefix(ns, NSPrefix) {
				t.Errorf("racks=%d: namespace %s lacks the %s prefix", racks, ns, NSPrefix)
			}
		}
	}
}

func TestInstancePrefixesEveryNamespace(t *testing.T) {
	p, err := NewPlan(PlanOptions{Racks: 2, NodesPerRack: 1, Router: RouterBIRD, Instance: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Prefix != "cl-e2e-" {
		t.Errorf("prefix = %q", p.Prefix)
	}
	for _, ns := range p.Namespaces() {
		if !strings.HasPrefix(ns, "cl-e2e-") {
			t.Errorf("namespace %s lacks the instance prefix", ns)
		}
	}
	for _, l := range p.Links {
		if !strings.HasPrefix(l.A.NS, "cl-e2e-") || !strings.HasPrefix(l.B.NS, "cl-e2e-") {
			t.Errorf("link %s/%s-%s/%s leaves the instance", l.A.NS, l.A.Name, l.B.NS, l.B.Name)
		}
	}
}

func TestRoutedHopsAndNextHop(t *testing.T) {
	p, err := NewPlan(PlanOptions{Racks: 2, NodesPerRack: 2, Router: RouterBIRD})
	if err != nil {
		t.Fatal(err)
	}
	n := func(name string) Node { node, _ := p.Node(name); return node }
	cases := []struct {
		from, to string
		hops     int
		nextHop  string
	}{
		{"node1", "node1", 1, "172.30.1.11"},
		{"node1", "node2", 2, "172.30.1.12"},
		{"node1", "node3", 5, "172.30.1.1"},
		{"node4", "node1", 5, "172.30.2.1"},
	}
	for _, tc := range cases {
		if got := p.RoutedHops(n(tc.from), n(tc.to)); got != tc.hops {
			t.Errorf("RoutedHops(%s, %s) = %d, want %d", tc.from, tc.to, got, tc.hops)
		}
		if tc.from == tc.to {
			continue
		}
		if got := p.NextHop(n(tc.from), n(tc.to)); got.String() != tc.nextHop {
			t.Errorf("NextHop(%s, %s) = %s, want %s", tc.from, tc.to, got, tc.nextHop)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestNodePeers(t *testing.T) {
	cases := []struct {
		racks int
		node  string
		want  string
	}{
		{1, "node1", "172.30.1.12 172.30.1.1"},
		{1, "node2", "172.30.1.11 172.30.1.1"},
		{2, "node3", "172.30.2.1"}, // no mesh: only the ToR, which reflects
	}
	for _, tc := range cases {
		p, err := NewPlan(PlanOptions{Racks: tc.racks, NodesPerRack: 2, Router: RouterBIRD})
		if err != nil {
			t.Fatal(err)
		}
		n, _ := p.Node(tc.node)
		var got []string
		for _, a := range p.NodePeers(n) {
			got = append(got, a.String())
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("racks=%d %s peers = %v, want %s", tc.racks, tc.node, got, tc.want)
		}
	}
}

// checkOutside: one outside host, behind the wanted router on a /30 of
// its own, routing every lab range (and nothing else) through it.
func checkOutside(t *testing.T, p Plan, behind string) {
	t.Helper()
	if len(p.Outside) != 1 {
		t.Fatalf("outside hosts = %v, want one", p.Outside)
	}
	h, ok := p.OutsideHost(OutsideName)
	if !ok || h.Router != behind || h.NS != p.Prefix+OutsideName {
		t.Fatalf("outside host = %+v (found %v), want %s behind %s", h, ok, OutsideName, behind)
	}
	if !slices.Contains(p.Namespaces(), h.NS) {
		t.Errorf("namespaces %v lack %s", p.Namespaces(), h.NS)
	}
	if p.Name(h.Addr) != OutsideName {
		t.Errorf("Name(%s) = %s", h.Addr, p.Name(h.Addr))
	}
	var linked bool
	for _, l := range p.Links {
		if l.A.NS == h.NS {
			linked = l.A.Addr.Addr() == h.Addr && l.B.Addr.Addr() == h.Gateway && strings.HasSuffix(l.B.NS, behind)
		}
	}
	if !linked {
		t.Errorf("no link from %s (%s) to %s (%s)", h.NS, h.Addr, behind, h.Gateway)
	}
	var dsts []netip.Prefix
	for _, r := range p.Routes {
		if r.NS != h.NS {
			continue
		}
		dsts = append(dsts, r.Dst)
		if r.Via != h.Gateway {
			t.Errorf("%s routes %s via %s, not its router %s", h.Name, r.Dst, r.Via, h.Gateway)
		}
	}
	if !slices.Equal(dsts, InsideCIDRs()) {
		t.Errorf("%s routes %v, want exactly %v", h.Name, dsts, InsideCIDRs())
	}
}
