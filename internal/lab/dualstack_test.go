package lab

import (
	"net/netip"
	"strings"
	"testing"
)

func TestDualStackPlan(t *testing.T) {
	p, err := NewPlan(PlanOptions{Racks: 2, NodesPerRack: 2, Router: RouterBIRD, DualStack: true})
	if err != nil {
		t.Fatal(err)
	}
	n1, _ := p.Node("node1")
	if n1.Addr6 != netip.MustParseAddr("fd30:0:0:1::b") || n1.Gateway6 != netip.MustParseAddr("fd30:0:0:1::1") {
		t.Errorf("node1 IPv6 %v via %v, want fd30:0:0:1::b via fd30:0:0:1::1", n1.Addr6, n1.Gateway6)
	}
	if got := nodeIPFlag(n1); got != "172.30.1.11,fd30:0:0:1::b" {
		t.Errorf("--node-ip %q", got)
	}
	// Every addressed end has its twin; /24 LANs are /64s, /30 links /126s.
	for _, l := range p.Links {
		for _, e := range []End{l.A, l.B} {
			if !e.Addr.IsValid() {
				continue
			}
			want := 64
			if e.Addr.Bits() == 30 {
				want = 126
			}
			if e.Addr6.Bits() != want || v6Of(e.Addr.Addr()) != e.Addr6.Addr() {
				t.Errorf("%s/%s: %v beside %v", e.NS, e.Name, e.Addr6, e.Addr)
			}
		}
	}
	// Each router session has an IPv6 twin between the same speakers.
	tor1 := p.Racks[0].ToR
	var v4, v6 int
	for _, pe := range tor1.Peers {
		if pe.Addr.Is4() {
			v4++
		} else {
			v6++
		}
	}
	if v4 == 0 || v4 != v6 {
		t.Errorf("tor1 has %d IPv4 and %d named IPv6 sessions: %+v", v4, v6, tor1.Peers)
	}
	if tor1.Addr6() != netip.MustParseAddr("fd30:0:0:1::1") {
		t.Errorf("tor1 IPv6 address %v", tor1.Addr6())
	}
	// Nodes reach the IPv6 lab range through their ToR; outside1 reaches
	// the IPv6 pool.
	if !hasStatic(p, n1.NS, LabCIDR6, n1.Gateway6) {
		t.Errorf("node1 has no route to %s via %s: %+v", LabCIDR6, n1.Gateway6, p.Routes)
	}
	out := p.Outside[0]
	if !hasStatic(p, out.NS, PoolCIDR6, out.Gateway6) {
		t.Errorf("outside1 has no route to %s via %s", PoolCIDR6, out.Gateway6)
	}
	// The agent-side checks want both families of every session.
	peers := p.NodePeers(n1)
	if len(peers) != 2 || peers[0] != n1.Gateway || peers[1] != n1.Gateway6 {
		t.Errorf("node1 peers %v, want its ToR in both families (no mesh with two racks)", peers)
	}
	// An IPv4 lab is unchanged.
	p4, _ := NewPlan(PlanOptions{Racks: 1, NodesPerRack: 2, Router: RouterBIRD})
	if p4.DualStack || len(p4.Racks[0].ToR.Peers) != 2 || p4.Nodes()[0].Addr6.IsValid() {
		t.Errorf("IPv4 lab got IPv6: %+v", p4.Racks[0])
	}
}

func hasStatic(p Plan, ns, dst string, via netip.Addr) bool {
	for _, r := range p.Routes {
		if r.NS == ns && r.Dst.String() == dst && r.Via == via {
			return true
		}
	}
	return false
}

func TestDualStackRouterConfigs(t *testing.T) {
	p, err := NewPlan(PlanOptions{Racks: 2, NodesPerRack: 1, Router: RouterBIRD, DualStack: true})
	if err != nil {
		t.Fatal(err)
	}
	tor := p.Racks[0].ToR
	bird := birdConfig(tor)
	for _, want := range []string{
		"define POOL6 = [ fd00:10:244::/56{56,128} ];",
		"protocol kernel kernel6 {",
		"protocol bgp node1_v6 from lab_peer {",
		"  neighbor fd30:0:0:1::b as 65001;",
		"  ipv6 { import filter from_nodes6; export filter pool_only6; next hop self ebgp; };",
		"  ipv6 { import filter from_routers6; export filter to_routers6; };",
		"  ipv4 { import filter from_nodes; export filter pool_only; next hop self ebgp; };",
	} {
		if !strings.Contains(bird, want) {
			t.Errorf("BIRD config lacks %q:\n%s", want, bird)
		}
	}
	frr := frrBGPConfig(tor)
	v6 := frr[strings.Index(frr, "address-family ipv6 unicast"):]
	v4 := frr[strings.Index(frr, "address-family ipv4 unicast"):strings.Index(frr, "address-family ipv6 unicast")]
	for _, want := range []string{"neighbor fd30:0:0:1::b activate", "neighbor fd30:0:0:1::b route-map FROM-NODES6 in", "neighbor fd30:0:0:ff::2 route-map ROUTERS6 out"} {
		if !strings.Contains(v6, want) {
			t.Errorf("FRR IPv6 family lacks %q:\n%s", want, frr)
		}
	}
	if strings.Contains(v4, "fd30:") {
		t.Errorf("FRR activates an IPv6 session in the IPv4 family:\n%s", v4)
	}
	if !strings.Contains(frr, "ipv6 prefix-list POOL6 seq 10 permit fd00:10:244::/56 le 128") {
		t.Errorf("FRR config lacks the IPv6 pool list:\n%s", frr)
	}
	// With racks a node refuses another rack's blocks from its ToR (owner-
	// only imports) and reaches them through the ToR's pool route, which
	// the IPv6 side needs as much as the IPv4 one; never sent to routers.
	for _, want := range []string{
		"protocol static pool_aggregate6 { ipv6; route fd00:10:244::/56 unreachable; }",
		"filter to_routers6 {\n  if source = RTS_STATIC then reject;",
	} {
		if !strings.Contains(bird, want) {
			t.Errorf("BIRD config lacks %q:\n%s", want, bird)
		}
	}
	if !strings.Contains(v6, "  aggregate-address fd00:10:244::/56\n") || !strings.Contains(frr, "route-map ROUTERS6 deny 5\n match ipv6 address prefix-list POOL6-AGGREGATE\n") {
		t.Errorf("FRR does not send its nodes the IPv6 pool route, or sends it to routers:\n%s", frr)
	}
	one, _ := NewPlan(PlanOptions{Racks: 1, NodesPerRack: 2, Router: RouterBIRD, DualStack: true})
	if c := birdConfig(one.Racks[0].ToR) + frrBGPConfig(one.Racks[0].ToR); strings.Contains(c, "pool_aggregate") || strings.Contains(c, "aggregate-address") {
		t.Errorf("a one-rack ToR announces the pool, which its nodes reach directly:\n%s", c)
	}
	// An IPv4-only router keeps its IPv4-only configuration.
	p4, _ := NewPlan(PlanOptions{Racks: 1, NodesPerRack: 1, Router: RouterBIRD})
	if c := birdConfig(p4.Racks[0].ToR) + frrBGPConfig(p4.Racks[0].ToR); strings.Contains(c, "6") && strings.Contains(c, "POOL6") {
		t.Errorf("IPv4 lab's router configs mention IPv6:\n%s", c)
	}
}

func TestResultIPs(t *testing.T) {
	got, err := resultIPs([]byte(`{"ips":[{"address":"10.244.0.5/32"},{"address":"fd00:10:244::5/128"}]}`))
	if err != nil || len(got) != 2 || got[0].String() != "10.244.0.5" || got[1].String() != "fd00:10:244::5" {
		t.Errorf("resultIPs = %v, %v", got, err)
	}
	if _, err := resultIPs([]byte(`{"ips":[]}`)); err == nil {
		t.Error("a result without addresses was accepted")
	}
}
