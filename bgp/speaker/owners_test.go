package speaker

import (
	"net/netip"
	"strings"
	"testing"
)

// TestOwnerRefusal is the owner-only import rule as a table. Each family
// has the same rows; this node is "self", node2 owns a block and borrowed
// an address of self's block, node3 borrowed one of node2's, a ToR and a
// route reflector relay.
func TestOwnerRefusal(t *testing.T) {
	type family struct {
		name                                  string
		pool, selfBlock, node2Block, stray    string
		self, node2, node3, tor, pod, inNode2 string // addresses
		borrowedFromSelf, borrowedFromNode2   string // host prefixes
		selfBorrowed, unborrowedInSelf        string
		node2MoreSpecific, outside            string
	}
	fams := []family{{
		name: "IPv4", pool: "10.244.0.0/16", selfBlock: "10.244.1.0/26", node2Block: "10.244.2.0/26", stray: "10.244.9.0/26",
		self: "10.0.0.1", node2: "10.0.0.2", node3: "10.0.0.3", tor: "10.0.0.254", pod: "10.244.1.5", inNode2: "10.244.2.7",
		borrowedFromSelf: "10.244.1.9/32", borrowedFromNode2: "10.244.2.9/32", selfBorrowed: "10.244.2.10/32", unborrowedInSelf: "10.244.1.20/32",
		node2MoreSpecific: "10.244.2.0/28", outside: "10.244.200.0/24",
	}, {
		name: "IPv6", pool: "fd00:244::/48", selfBlock: "fd00:244::/122", node2Block: "fd00:244::40/122", stray: "fd00:244::1000/122",
		self: "fd00::1", node2: "fd00::2", node3: "fd00::3", tor: "fd00::fe", pod: "fd00:244::5", inNode2: "fd00:244::47",
		borrowedFromSelf: "fd00:244::9/128", borrowedFromNode2: "fd00:244::49/128", selfBorrowed: "fd00:244::4a/128", unborrowedInSelf: "fd00:244::14/128",
		node2MoreSpecific: "fd00:244::40/124", outside: "fd00:244:0:1::/64",
	}}
	for _, f := range fams {
		pf, ad := netip.MustParsePrefix, netip.MustParseAddr
		hs := indexHoldings([]Holding{
			{Prefix: pf(f.selfBlock), NextHops: []netip.Addr{ad(f.self)}, Local: true},
			{Prefix: pf(f.node2Block), NextHops: []netip.Addr{ad(f.node2)}},
			{Prefix: pf(f.stray)}, // its owner is gone
			{Prefix: pf(f.borrowedFromSelf), NextHops: []netip.Addr{ad(f.node2)}, Borrowed: true},
			{Prefix: pf(f.borrowedFromNode2), NextHops: []netip.Addr{ad(f.node3)}, Borrowed: true},
			{Prefix: pf(f.selfBorrowed), NextHops: []netip.Addr{ad(f.self)}, Local: true, Borrowed: true},
		})
		pods := []netip.Prefix{pf(f.pool)}
		for _, c := range []struct {
			name, prefix, nextHop string
			refused               string // a word of the reason; "" accepted
		}{
			{"another node's block from its owner", f.node2Block, f.node2, ""},
			{"another node's block relayed with the owner's next hop", f.node2Block, f.node2, ""},
			{"another node's block from the ToR", f.node2Block, f.tor, "not its owner"},
			{"another node's block from a third node", f.node2Block, f.node3, "not its owner"},
			{"a more-specific of another node's block from the ToR", f.node2MoreSpecific, f.tor, "not its owner"},
			{"a more-specific of another node's block from its owner", f.node2MoreSpecific, f.node2, ""},
			{"an address of another node's block from the ToR", f.borrowedFromNode2, f.tor, "borrowed by the node at " + f.node3},
			{"an address borrowed from another node, from its borrower", f.borrowedFromNode2, f.node3, ""},
			{"an address borrowed from another node, from the block's owner", f.borrowedFromNode2, f.node2, "borrowed by"},
			{"an address of this node's block borrowed by node2, from node2", f.borrowedFromSelf, f.node2, ""},
			{"an address of this node's block borrowed by node2, from the ToR", f.borrowedFromSelf, f.tor, "borrowed by"},
			{"an address of this node's block nobody borrowed", f.unborrowedInSelf, f.tor, "this node's block"},
			{"an address of this node's block nobody borrowed, claimed by node2", f.unborrowedInSelf, f.node2, "this node's block"},
			{"this node's block itself", f.selfBlock, f.node2, "this node's block"},
			{"an address this node borrowed", f.selfBorrowed, f.node2, "this node borrowed"},
			{"a block whose owner is gone", f.stray, f.node2, "no node"},
			{"inside the pool, in no block", f.outside, f.tor, ""},
			{"the whole pool from the ToR", f.pool, f.tor, ""},
			{"next hop a pod of another node's block", f.outside, f.inNode2, "pod address"},
			{"next hop a pod of the pool", f.outside, f.pod, "pod address"},
			{"another node's block, next hop a pod", f.node2Block, f.pod, "pod address"},
		} {
			why := hs.ownerRefusal(pf(c.prefix).Masked(), ad(c.nextHop), pods)
			switch {
			case c.refused == "" && why != "":
				t.Errorf("%s: %s via %s refused (%s), want accepted", f.name, c.name, c.nextHop, why)
			case c.refused != "" && !strings.Contains(why, c.refused):
				t.Errorf("%s: %s via %s: refusal %q, want one saying %q", f.name, c.name, c.nextHop, why, c.refused)
			}
		}
	}
}

// TestOwnerOnlyInSelection: a relayed copy of a block never becomes a
// learned path, and never hides the owner's own path.
func TestOwnerOnlyInSelection(t *testing.T) {
	owner, tor := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.254")
	block := netip.MustParsePrefix("10.244.2.0/26")
	f := learnedFilter{localASN: 64512, pools: prefixes("10.244.0.0/16"),
		holdings: indexHoldings([]Holding{{Prefix: block, NextHops: []netip.Addr{owner}}})}
	got := selectLearned([]candidate{
		{Prefix: block, NextHop: tor, Peer: tor, PeerASN: 65000, LocalPref: 100}, // eBGP: preferred by rank
		{Prefix: block, NextHop: owner, Peer: owner, PeerASN: 64512, LocalPref: 100},
		{Prefix: netip.MustParsePrefix("10.244.2.0/27"), NextHop: tor, Peer: tor, PeerASN: 65000, LocalPref: 100},
	}, f)
	if len(got) != 1 || got[0].NextHop != owner {
		t.Fatalf("selected %+v, want only %s via %s", got, block, owner)
	}
}
