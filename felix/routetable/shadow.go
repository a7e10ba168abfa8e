package routetable

import "net/netip"

// prefixSet is a set of prefixes that answers "is p inside one of them" with
// one map lookup per distinct prefix length, not one per prefix.
type prefixSet struct {
	m    map[netip.Prefix]struct{}
	lens [2][129]int // per family (0: v4, 1: v6), per length: how many
}

func newPrefixSet() *prefixSet { return &prefixSet{m: map[netip.Prefix]struct{}{}} }

func famIdx(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 0
	}
	return 1
}

func (s *prefixSet) add(p netip.Prefix) {
	p = p.Masked()
	if _, ok := s.m[p]; ok {
		return
	}
	s.m[p] = struct{}{}
	s.lens[famIdx(p)][p.Bits()]++
}

func (s *prefixSet) has(p netip.Prefix) bool {
	_, ok := s.m[p.Masked()]
	return ok
}

// within returns the member that equals or contains p, if any.
func (s *prefixSet) within(p netip.Prefix) (netip.Prefix, bool) {
	lens := &s.lens[famIdx(p)]
	for l := p.Bits(); l >= 0; l-- {
		if lens[l] == 0 {
			continue
		}
		c := netip.PrefixFrom(p.Addr(), l).Masked()
		if _, ok := s.m[c]; ok {
			return c, true
		}
	}
	return netip.Prefix{}, false
}

func (s *prefixSet) equal(o *prefixSet) bool {
	if len(s.m) != len(o.m) {
		return false
	}
	for p := range s.m {
		if _, ok := o.m[p]; !ok {
			return false
		}
	}
	return true
}

// HideReason says why a learned route must not be installed; empty when it
// may be.
type HideReason string

// Reasons a learned route is refused.
const (
	HidesNothing   HideReason = ""
	HidesEndpoint  HideReason = "same prefix as a local endpoint"
	HidesBlock     HideReason = "same prefix as an owned block"
	HidesBlockPart HideReason = "inside an owned block and not a host route"
	HidesConnected HideReason = "equal to or inside a connected route"
)

// Shadowing is what a learned route must never hide: the node's connected
// routes, its owned blocks and its local endpoints.
type Shadowing struct {
	Connected *prefixSet
	Blocks    *prefixSet
	Endpoints map[netip.Prefix]string
}

// LearnedHides decides whether installing a learned route for p would hide
// local state. Longest-prefix match means only an equal or more specific
// route can hide another; a covering route (a pool aggregate) never does.
// Inside an owned block, host routes are allowed: they are addresses that
// another node borrowed from this node's block, and must route there rather
// than into the block's blackhole.
func LearnedHides(p netip.Prefix, s Shadowing) HideReason {
	if _, ok := s.Endpoints[p]; ok {
		return HidesEndpoint
	}
	if s.Blocks != nil {
		if b, ok := s.Blocks.within(p); ok {
			if b == p {
				return HidesBlock
			}
			if !p.IsSingleIP() {
				return HidesBlockPart
			}
		}
	}
	if s.Connected != nil {
		if _, ok := s.Connected.within(p); ok {
			return HidesConnected
		}
	}
	return HidesNothing
}
