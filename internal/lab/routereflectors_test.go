package lab

import (
	"net/netip"
	"slices"
	"testing"
)

func TestPlanRouteReflectors(t *testing.T) {
	p, err := NewPlan(PlanOptions{Racks: 2, NodesPerRack: 3, Router: RouterBIRD, RouteReflectors: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.BGP.MeshEnabled || !p.BGP.RouteReflectors {
		t.Errorf("BGP %+v, want mesh off and reflectors", p.BGP)
	}
	nodes := p.Nodes()
	addr := func(i int) netip.Addr { return nodes[i].Addr }
	for i, want := range []struct {
		reflector bool
		peers     []netip.Addr
	}{
		{true, []netip.Addr{addr(1), addr(2), nodes[0].Gateway}},
		{true, []netip.Addr{addr(0), addr(2), nodes[1].Gateway}},
		{false, []netip.Addr{addr(0), addr(1), nodes[2].Gateway}},
		{true, []netip.Addr{addr(4), addr(5), nodes[3].Gateway}},
		{true, []netip.Addr{addr(3), addr(5), nodes[4].Gateway}},
		{false, []netip.Addr{addr(3), addr(4), nodes[5].Gateway}},
	} {
		n := nodes[i]
		if n.Reflector() != want.reflector {
			t.Errorf("%s reflector %v, want %v", n.Name, n.Reflector(), want.reflector)
		}
		if got := p.NodePeers(n); !slices.Equal(got, want.peers) {
			t.Errorf("%s peers %v, want %v", n.Name, got, want.peers)
		}
	}
	if nodes[0].RRClusterID == nodes[3].RRClusterID {
		t.Errorf("both racks' reflectors have cluster ID %s", nodes[0].RRClusterID)
	}
	for _, r := range p.Racks {
		for _, peer := range r.ToR.Peers {
			if peer.RRClient {
				t.Errorf("%s reflects to %s: the nodes reflect in this lab", r.ToR.Name, peer.Name)
			}
		}
	}
	for _, o := range []PlanOptions{{Racks: 1, NodesPerRack: 3}, {Racks: 2, NodesPerRack: 2}} {
		o.Router, o.RouteReflectors = RouterBIRD, true
		if _, err := NewPlan(o); err == nil {
			t.Errorf("%d racks of %d nodes with route reflectors: no error", o.Racks, o.NodesPerRack)
		}
	}
}
