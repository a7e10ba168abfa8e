package speaker

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

func TestSelectLearned(t *testing.T) {
	const local = 64512
	block := netip.MustParsePrefix("10.244.1.0/26")
	ownBlock := netip.MustParsePrefix("10.244.0.0/26")
	nh1, nh2, nh3 := netip.MustParseAddr("10.88.0.1"), netip.MustParseAddr("10.88.0.2"), netip.MustParseAddr("10.88.0.3")
	rr1, rr2 := netip.MustParseAddr("10.88.1.1"), netip.MustParseAddr("10.88.1.2")
	// c builds an iBGP candidate learned from peer with next hop nh.
	c := func(prefix netip.Prefix, nh, peer netip.Addr, mod ...func(*candidate)) candidate {
		out := candidate{Prefix: prefix, NextHop: nh, Peer: peer, PeerASN: local, LocalPref: 100}
		for _, m := range mod {
			m(&out)
		}
		return out
	}
	restartedWithoutGR := netip.MustParseAddr("10.88.0.9")
	filter := learnedFilter{localASN: local, pools: prefixes("10.244.0.0/16", "fd00::/48"),
		own: map[netip.Prefix]adAttrs{ownBlock: {}}, staleDead: map[netip.Addr]bool{restartedWithoutGR: true}}
	p := func(prefix netip.Prefix, nh, peer netip.Addr) Path {
		return Path{Prefix: prefix, NextHop: nh, Peer: peer}
	}

	cases := []struct {
		name  string
		cands []candidate
		want  []Path
	}{
		{name: "nothing", want: nil},
		{name: "one path", cands: []candidate{c(block, nh1, nh1)}, want: []Path{p(block, nh1, nh1)}},
		{name: "prefixes in numeric order, not string order",
			cands: []candidate{c(netip.MustParsePrefix("10.244.10.0/26"), nh1, nh1), c(netip.MustParsePrefix("10.244.2.0/26"), nh1, nh1)},
			want:  []Path{p(netip.MustParsePrefix("10.244.2.0/26"), nh1, nh1), p(netip.MustParsePrefix("10.244.10.0/26"), nh1, nh1)}},
		{name: "ECMP: equal paths from two nodes, sorted by next hop",
			cands: []candidate{c(block, nh2, nh2), c(block, nh1, nh1)},
			want:  []Path{p(block, nh1, nh1), p(block, nh2, nh2)}},
		{name: "higher local-pref wins",
			cands: []candidate{c(block, nh1, nh1), c(block, nh2, nh2, func(c *candidate) { c.LocalPref = 200 })},
			want:  []Path{p(block, nh2, nh2)}},
		{name: "shorter AS path wins",
			cands: []candidate{c(block, nh1, nh1, func(c *candidate) { c.ASPathLen = 2 }), c(block, nh2, nh2, func(c *candidate) { c.ASPathLen = 1 })},
			want:  []Path{p(block, nh2, nh2)}},
		{name: "lower origin wins",
			cands: []candidate{c(block, nh1, nh1, func(c *candidate) { c.Origin = 2 }), c(block, nh2, nh2)},
			want:  []Path{p(block, nh2, nh2)}},
		{name: "lower MED wins",
			cands: []candidate{c(block, nh1, nh1, func(c *candidate) { c.MED = 10 }), c(block, nh2, nh2, func(c *candidate) { c.MED = 5 })},
			want:  []Path{p(block, nh2, nh2)}},
		{name: "eBGP over iBGP",
			cands: []candidate{c(block, nh1, nh1), c(block, nh2, nh2, func(c *candidate) { c.PeerASN = 65001 })},
			want:  []Path{p(block, nh2, nh2)}},
		{name: "local-pref beats eBGP",
			cands: []candidate{c(block, nh1, nh1, func(c *candidate) { c.LocalPref = 200 }), c(block, nh2, nh2, func(c *candidate) { c.PeerASN = 65001 })},
			want:  []Path{p(block, nh1, nh1)}},
		{name: "same next hop via two reflectors counts once, lowest peer",
			cands: []candidate{c(block, nh3, rr2), c(block, nh3, rr1), c(block, nh1, nh1)},
			want:  []Path{p(block, nh1, nh1), p(block, nh3, rr1)}},
		{name: "outside the pools is dropped",
			cands: []candidate{c(netip.MustParsePrefix("192.0.2.0/24"), nh1, nh1)}},
		{name: "default route is dropped",
			cands: []candidate{c(netip.MustParsePrefix("0.0.0.0/0"), nh1, nh1), c(netip.MustParsePrefix("::/0"), nh1, nh1)}},
		{name: "pool cover is dropped",
			cands: []candidate{c(netip.MustParsePrefix("10.0.0.0/8"), nh1, nh1)}},
		{name: "our own block is never learned",
			cands: []candidate{c(ownBlock, nh1, nh1)}},
		{name: "a borrowed /32 inside our block is learned",
			cands: []candidate{c(netip.MustParsePrefix("10.244.0.7/32"), nh2, nh2)},
			want:  []Path{p(netip.MustParsePrefix("10.244.0.7/32"), nh2, nh2)}},
		{name: "our locally originated paths are skipped",
			cands: []candidate{c(block, netip.IPv4Unspecified(), netip.Addr{})}},
		{name: "withdrawn and unreachable are skipped, the rest kept",
			cands: []candidate{c(block, nh1, nh1, func(c *candidate) { c.Unusable = true }), c(block, nh2, nh2)},
			want:  []Path{p(block, nh2, nh2)}},
		{name: "stale paths are used while their peer restarts",
			cands: []candidate{c(block, nh1, nh1, func(c *candidate) { c.Stale = true })},
			want:  []Path{p(block, nh1, nh1)}},
		{name: "stale paths go once their peer is back without graceful restart",
			cands: []candidate{c(block, restartedWithoutGR, restartedWithoutGR, func(c *candidate) { c.Stale = true }), c(block, nh2, nh2)},
			want:  []Path{p(block, nh2, nh2)}},
		{name: "no next hop is skipped",
			cands: []candidate{c(block, netip.Addr{}, nh1)}},
		{name: "IPv6 and IPv4 together, sorted",
			cands: []candidate{
				c(netip.MustParsePrefix("fd00::40/122"), netip.MustParseAddr("fd00:88::2"), netip.MustParseAddr("fd00:88::2")),
				c(netip.MustParsePrefix("10.244.2.0/26"), nh1, nh1),
				c(block, nh1, nh1),
			},
			want: []Path{
				p(block, nh1, nh1),
				p(netip.MustParsePrefix("10.244.2.0/26"), nh1, nh1),
				p(netip.MustParsePrefix("fd00::40/122"), netip.MustParseAddr("fd00:88::2"), netip.MustParseAddr("fd00:88::2")),
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := selectLearned(tc.cands, filter)
			if !slices.EqualFunc(got, tc.want, equalPath) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
			// The result must not depend on the order GoBGP lists paths in.
			rev := slices.Clone(tc.cands)
			slices.Reverse(rev)
			if again := selectLearned(rev, filter); !slices.EqualFunc(again, got, equalPath) {
				t.Errorf("order-dependent: %v vs %v", again, got)
			}
		})
	}
}

func TestCandidateFromAPI(t *testing.T) {
	v4 := netip.MustParsePrefix("10.244.1.0/26")
	nlri4, _ := bgp.NewIPAddrPrefix(v4)
	nh4, _ := bgp.NewPathAttributeNextHop(netip.MustParseAddr("10.88.0.2"))
	v6 := netip.MustParsePrefix("fd00::40/122")
	nlri6, _ := bgp.NewIPAddrPrefix(v6)
	mp, _ := bgp.NewPathAttributeMpReachNLRI(bgp.RF_IPv6_UC, []bgp.PathNLRI{{NLRI: nlri6}}, netip.MustParseAddr("fd00:88::2"))
	peer := netip.MustParseAddr("10.88.0.2")

	got, ok := candidateFromAPI(&apiutil.Path{
		Family: bgp.RF_IPv4_UC, Nlri: nlri4, PeerAddress: peer, PeerASN: 65001,
		Attrs: []bgp.PathAttributeInterface{
			bgp.NewPathAttributeOrigin(1), nh4,
			bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, []uint32{65001, 65002})}),
			bgp.NewPathAttributeMultiExitDisc(7), bgp.NewPathAttributeLocalPref(300),
			bgp.NewPathAttributeCommunities([]uint32{1, 2}),
		},
	})
	want := candidate{Prefix: v4, NextHop: peer, Peer: peer, PeerASN: 65001, LocalPref: 300, ASPathLen: 2, Origin: 1, MED: 7, Communities: []uint32{1, 2}}
	if !ok || got.Prefix != want.Prefix || got.NextHop != want.NextHop || got.LocalPref != 300 || got.ASPathLen != 2 ||
		got.Origin != 1 || got.MED != 7 || !slices.Equal(got.Communities, want.Communities) || got.Unusable {
		t.Errorf("IPv4: got %+v, want %+v", got, want)
	}

	got, ok = candidateFromAPI(&apiutil.Path{Family: bgp.RF_IPv6_UC, Nlri: nlri6, PeerAddress: peer, Attrs: []bgp.PathAttributeInterface{mp}})
	if !ok || got.Prefix != v6 || got.NextHop != netip.MustParseAddr("fd00:88::2") || got.LocalPref != defaultLocalPref {
		t.Errorf("IPv6: got %+v", got)
	}

	got, _ = candidateFromAPI(&apiutil.Path{Family: bgp.RF_IPv4_UC, Nlri: nlri4, Withdrawal: true})
	if !got.Unusable {
		t.Error("withdrawal is usable")
	}
	if _, ok := candidateFromAPI(&apiutil.Path{Family: bgp.RF_IPv4_UC}); ok {
		t.Error("path without NLRI accepted")
	}
}

// TestAdvertisedPathRoundTrip checks what we hand GoBGP reads back as ours.
func TestAdvertisedPathRoundTrip(t *testing.T) {
	for _, s := range []string{"10.244.1.0/26", "fd00::40/122"} {
		pfx := netip.MustParsePrefix(s)
		large := []LargeCommunity{{GlobalAdmin: 4200000000, LocalData1: 1, LocalData2: 2}}
		path, err := advertisedPath(pfx, adAttrs{communities: []uint32{42}, large: large}, netip.Addr{})
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if path.Family != familyOf(pfx.Addr()) {
			t.Errorf("%s: family %s", s, path.Family)
		}
		c, ok := candidateFromAPI(path)
		if !ok || c.Prefix != pfx || !c.NextHop.IsUnspecified() || !slices.Equal(c.Communities, []uint32{42}) {
			t.Errorf("%s: read back %+v", s, c)
		}
		if !slices.ContainsFunc(path.Attrs, func(a bgp.PathAttributeInterface) bool {
			lc, ok := a.(*bgp.PathAttributeLargeCommunities)
			return ok && len(lc.Values) == 1 && *lc.Values[0] == bgp.LargeCommunity{ASN: 4200000000, LocalData1: 1, LocalData2: 2}
		}) {
			t.Errorf("%s: no large community 4200000000:1:2 in %v", s, path.Attrs)
		}
	}
}

func TestJudgeImports(t *testing.T) {
	a, b := netip.MustParseAddr("10.88.0.1"), netip.MustParseAddr("10.88.0.2")
	f := learnedFilter{pools: prefixes("10.244.0.0/16"), holdings: indexHoldings([]Holding{
		{Prefix: netip.MustParsePrefix("10.244.1.0/26"), NextHops: []netip.Addr{a}},
		{Prefix: netip.MustParsePrefix("10.244.2.0/26"), NextHops: []netip.Addr{b}},
	})}
	nh := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	accepted, refused, total := judgeImports([]candidate{
		{Prefix: netip.MustParsePrefix("10.244.1.0/26"), Peer: a, NextHop: a},
		{Prefix: netip.MustParsePrefix("10.244.2.0/26"), Peer: a, NextHop: a},                 // b's block
		{Prefix: netip.MustParsePrefix("10.244.2.0/27"), Peer: a, NextHop: a},                 // b's block
		{Prefix: netip.MustParsePrefix("10.244.5.0/26"), Peer: a, NextHop: a},                 // in no block
		{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Peer: a, NextHop: a},                  // outside the pools
		{Prefix: netip.MustParsePrefix("10.244.3.0/26"), Peer: b, NextHop: b, Unusable: true}, // withdrawn
		{Prefix: netip.MustParsePrefix("10.244.4.0/26"), NextHop: nh("0.0.0.0")},              // ours
	}, f, 2)
	if len(accepted) != 1 || accepted[a] != 2 {
		t.Errorf("accepted %v, want %s: 2", accepted, a)
	}
	if total != 3 || len(refused) != 2 || refused[0].Prefix.String() != "10.244.2.0/26" || refused[1].Prefix.String() != "10.244.2.0/27" {
		t.Errorf("refused %d: %+v; want 3, the first two 10.244.2.0/26 and /27", total, refused)
	}
}
