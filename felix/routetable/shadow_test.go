package routetable

import (
	"net/netip"
	"testing"
)

func set(ps ...string) *prefixSet {
	s := newPrefixSet()
	for _, p := range ps {
		s.add(netip.MustParsePrefix(p))
	}
	return s
}

func TestLearnedHides(t *testing.T) {
	sh := Shadowing{
		Connected: set("192.168.10.0/24", "2001:db8:1::/64"),
		Blocks:    set("10.65.1.0/26", "fd00:65:1::/122"),
		Endpoints: map[netip.Prefix]string{netip.MustParsePrefix("10.65.1.5/32"): "crn1"},
	}
	tests := []struct {
		prefix string
		want   HideReason
	}{
		{"10.65.2.0/26", HidesNothing},      // another node's block
		{"10.65.0.0/16", HidesNothing},      // pool aggregate covers, does not hide
		{"10.65.1.0/26", HidesBlock},        // our own block
		{"10.65.1.32/27", HidesBlockPart},   // carves our block
		{"10.65.1.9/32", HidesNothing},      // borrowed from our block by another node
		{"10.65.1.5/32", HidesEndpoint},     // our pod
		{"192.168.10.0/24", HidesConnected}, // the node subnet
		{"192.168.10.7/32", HidesConnected}, // a neighbour on the node subnet
		{"192.168.0.0/16", HidesNothing},    // covers the connected subnet
		{"fd00:65:1::40/128", HidesNothing}, // v6 borrowed
		{"fd00:65:1::/122", HidesBlock},     // v6 block
		{"2001:db8:1::/80", HidesConnected}, // inside v6 connected
		{"fd00:65:2::/122", HidesNothing},   // v6 other node
		{"0.0.0.0/0", HidesNothing},         // default route hides nothing (import policy is bgp's job)
		{"10.65.1.0/25", HidesNothing},      // covering our block
	}
	for _, tc := range tests {
		if got := LearnedHides(netip.MustParsePrefix(tc.prefix), sh); got != tc.want {
			t.Errorf("LearnedHides(%s) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
}
