package lab

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/cairn-net/cairn/internal/testenv"
)

// A ToR with injected routes sends them to its nodes, with their next
// hops, in both families, and BIRD's parser takes the configuration.
func TestBirdInjectedRoutes(t *testing.T) {
	p, err := NewPlan(PlanOptions{Racks: 1, NodesPerRack: 2, Router: RouterBIRD, DualStack: true})
	if err != nil {
		t.Fatal(err)
	}
	tor := p.Racks[0].ToR
	if c := birdConfig(tor); strings.Contains(c, "inject_") || strings.Contains(c, "to_nodes") {
		t.Fatalf("a ToR with nothing injected renders injection:\n%s", c)
	}
	tor.Injected = map[string][]InjectedRoute{
		"hostile": {
			{Prefix: netip.MustParsePrefix("0.0.0.0/0")},
			{Prefix: netip.MustParsePrefix("10.244.200.0/24"), NextHop: netip.MustParseAddr("10.244.0.2")},
			{Prefix: netip.MustParsePrefix("::/0")},
			{Prefix: netip.MustParsePrefix("fd00:10:244:ff::/64"), NextHop: netip.MustParseAddr("fd00:10:244::2")},
		},
		"flood": {{Prefix: netip.MustParsePrefix("100.64.0.0/24")}},
	}
	c := birdConfig(tor)
	for _, want := range []string{
		"protocol static inject_flood {\n  ipv4;\n  route 100.64.0.0/24 blackhole;\n}",
		"protocol static inject_hostile6 {\n  ipv6;\n  route ::/0 blackhole;",
		"if net = 10.244.200.0/24 then bgp_next_hop = 10.244.0.2;",
		"if net = fd00:10:244:ff::/64 then bgp_next_hop = fd00:10:244::2;",
		"ipv4 { import filter from_nodes; export filter to_nodes; };",
		"ipv6 { import filter from_nodes6; export filter to_nodes6; };",
	} {
		if !strings.Contains(c, want) {
			t.Errorf("config lacks %q:\n%s", want, c)
		}
	}
	if strings.Contains(c, "inject_flood6") {
		t.Errorf("an IPv4-only set got an IPv6 protocol:\n%s", c)
	}
	testenv.Require(t, testenv.Binary("bird"))
	checkBirdParses(t, c)
}

func TestValidSetName(t *testing.T) {
	for name, want := range map[string]bool{"flood": true, "good1": true, "": false, "Flood": false, "a-b": false, strings.Repeat("a", 21): false} {
		if got := validSetName(name); got != want {
			t.Errorf("validSetName(%q) = %v, want %v", name, got, want)
		}
	}
}
