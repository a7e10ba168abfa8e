package speaker

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// defaultLocalPref applies when a path carries no LOCAL_PREF (eBGP paths:
// GoBGP strips it on ingress).
const defaultLocalPref = 100

// candidate is one path from GoBGP's RIB, reduced to what selection needs.
type candidate struct {
	Prefix      netip.Prefix
	NextHop     netip.Addr
	Peer        netip.Addr // the neighbour it came from; invalid for our own
	PeerASN     uint32
	LocalPref   uint32
	ASPathLen   int
	Origin      uint8
	MED         uint32
	Communities []uint32
	// Unusable marks withdrawals and paths GoBGP considers unreachable.
	Unusable bool
	// Stale marks a path kept from a session that went down while graceful
	// restart was negotiated.
	Stale bool
}

// candidateFromAPI reads a GoBGP path. ok is false for anything that is not
// an IPv4/IPv6 unicast prefix.
func candidateFromAPI(p *apiutil.Path) (c candidate, ok bool) {
	n, isPrefix := p.Nlri.(*bgp.IPAddrPrefix)
	if !isPrefix || n == nil {
		return c, false
	}
	c = candidate{
		Prefix:    n.Prefix,
		Peer:      p.PeerAddress,
		PeerASN:   p.PeerASN,
		LocalPref: defaultLocalPref,
		Unusable:  p.Withdrawal || p.IsNexthopInvalid,
		Stale:     p.Stale,
	}
	for _, a := range p.Attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeNextHop:
			c.NextHop = a.Value
		case *bgp.PathAttributeMpReachNLRI:
			c.NextHop = a.Nexthop
		case *bgp.PathAttributeLocalPref:
			c.LocalPref = a.Value
		case *bgp.PathAttributeMultiExitDisc:
			c.MED = a.Value
		case *bgp.PathAttributeOrigin:
			c.Origin = a.Value
		case *bgp.PathAttributeAsPath:
			for _, seg := range a.Value {
				c.ASPathLen += seg.ASLen()
			}
		case *bgp.PathAttributeCommunities:
			c.Communities = append([]uint32(nil), a.Value...)
		}
	}
	return c, true
}

// learnedFilter is what decides which candidates may become learned paths.
type learnedFilter struct {
	localASN uint32
	// pools is the normalized import filter.
	pools []netip.Prefix
	// holdings says which node may announce what inside IPAM blocks.
	holdings holdings
	// peers are the desired peers, whose import rules (Peer.Filters)
	// apply to their paths.
	peers map[netip.Addr]Peer
	// own holds the prefixes we advertise: a learned path for exactly one of
	// them would hide our own block, so it is never handed to the dataplane.
	own map[netip.Prefix]adAttrs
	// staleDead lists peers whose stale paths must go: the session is back
	// without graceful restart, and RFC 4724 section 4.2 says to remove the
	// stale routes at once. GoBGP keeps them until its restart timer ends.
	staleDead map[netip.Addr]bool
}

// usable reports whether a candidate may be used at all.
func (f learnedFilter) usable(c candidate) bool {
	if c.Unusable || !c.Peer.IsValid() || c.Peer.IsUnspecified() {
		return false // withdrawn, or locally originated (ours)
	}
	if c.Stale && f.staleDead[c.Peer] {
		return false
	}
	if !c.NextHop.IsValid() || c.NextHop.IsUnspecified() {
		return false
	}
	if _, mine := f.own[c.Prefix.Masked()]; mine {
		return false
	}
	return f.refusal(c) == ""
}

// refusal says why the import rules refuse a path that is otherwise
// usable, or "" when they accept it: rejected by the peer's filters,
// outside the import filter, or inside a block that the path's next hop
// does not hold. The peer's filters come first: they only narrow, so
// what they refuse is refused whatever the other rules say.
func (f learnedFilter) refusal(c candidate) string {
	if why := filterRefusal(f.peers[c.Peer.Unmap()].importRules(), c.Prefix); why != "" {
		return "import filter: " + why
	}
	if !importable(c.Prefix, f.pools) {
		return "outside every IP pool (import filter)"
	}
	if why := f.holdings.ownerRefusal(c.Prefix.Masked(), c.NextHop, f.pools); why != "" {
		return "owner-only import: " + why
	}
	return ""
}

// rank orders candidates best first by the RFC 4271 decision process up to,
// but not including, the tie-breakers that only pick one of several equal
// paths (IGP cost, age, router ID, address): higher LOCAL_PREF, shorter
// AS_PATH, lower ORIGIN, lower MED, eBGP over iBGP. Paths that rank equal
// are equal-cost and all of them are used (ECMP).
func (f learnedFilter) rank(a, b candidate) int {
	return cmp.Or(
		cmp.Compare(b.LocalPref, a.LocalPref),
		cmp.Compare(a.ASPathLen, b.ASPathLen),
		cmp.Compare(a.Origin, b.Origin),
		cmp.Compare(a.MED, b.MED),
		cmp.Compare(f.ibgp(a), f.ibgp(b)),
	)
}

func (f learnedFilter) ibgp(c candidate) int {
	if c.PeerASN == f.localASN {
		return 1
	}
	return 0
}

// selectLearned picks, for every prefix, the set of best equal-cost paths and
// returns them in a deterministic order (prefix, next hop, peer). Several
// peers announcing the same next hop (two route reflectors reflecting one
// node) yield that next hop once, from the lowest peer address.
func selectLearned(cands []candidate, f learnedFilter) []Path {
	byPrefix := make(map[netip.Prefix][]candidate)
	for _, c := range cands {
		if f.usable(c) {
			p := c.Prefix.Masked()
			byPrefix[p] = append(byPrefix[p], c)
		}
	}
	var out []Path
	for prefix, cs := range byPrefix {
		slices.SortFunc(cs, func(a, b candidate) int {
			return cmp.Or(f.rank(a, b), a.NextHop.Compare(b.NextHop), a.Peer.Compare(b.Peer))
		})
		seen := make(map[netip.Addr]bool)
		for _, c := range cs {
			if f.rank(c, cs[0]) != 0 {
				break
			}
			if seen[c.NextHop] {
				continue
			}
			seen[c.NextHop] = true
			out = append(out, Path{Prefix: prefix, NextHop: c.NextHop, Peer: c.Peer, Communities: c.Communities})
		}
	}
	slices.SortFunc(out, comparePath)
	return out
}

func comparePath(a, b Path) int {
	return cmp.Or(a.Prefix.Compare(b.Prefix), a.NextHop.Compare(b.NextHop), a.Peer.Compare(b.Peer))
}

// RefusedPath is a path a peer sent that the import rules refuse.
type RefusedPath struct {
	Path
	// Reason says which rule refused it.
	Reason string
}

// judgeImports counts, per neighbour, the paths in the RIB that the import
// rules admit, whether or not they were chosen, and lists those they
// refuse (at most limit, by prefix), with the total refused. cands are the
// RIB's paths and those the peers' import filters kept out of it.
func judgeImports(cands []candidate, f learnedFilter, limit int) (accepted map[netip.Addr]uint64, refused []RefusedPath, total int) {
	accepted = map[netip.Addr]uint64{}
	for _, c := range cands {
		if c.Unusable || !c.Peer.IsValid() || c.Peer.IsUnspecified() {
			continue
		}
		why := f.refusal(c)
		if why == "" {
			accepted[c.Peer]++
			continue
		}
		refused = append(refused, RefusedPath{Path: Path{Prefix: c.Prefix.Masked(), NextHop: c.NextHop, Peer: c.Peer, Communities: c.Communities}, Reason: why})
	}
	// A path kept out by GoBGP's import policy may still be in the RIB
	// until the policy's soft reset has run: count it once.
	slices.SortFunc(refused, func(a, b RefusedPath) int { return comparePath(a.Path, b.Path) })
	refused = slices.CompactFunc(refused, func(a, b RefusedPath) bool { return comparePath(a.Path, b.Path) == 0 })
	total = len(refused)
	if len(refused) > limit {
		refused = refused[:limit]
	}
	return accepted, refused, total
}
