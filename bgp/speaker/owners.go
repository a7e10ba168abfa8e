package speaker

import (
	"fmt"
	"net/netip"
	"slices"
)

// Owner-only imports. A route inside an IPAM block is a route to pods, and
// only the node whose pods they are may announce it: a path relayed by
// anyone else (an eBGP router, a route reflector) is taken only while it
// still carries that node's address as next hop. A path whose next hop is
// itself a pod address never is. What lies in no block is left to the
// import filter (the pools) as before.

// holdings indexes the holdings for the per-path checks: borrowed
// addresses by host prefix, blocks by prefix under each length in use.
type holdings struct {
	hosts  map[netip.Prefix]Holding
	blocks map[netip.Prefix]Holding
	// lens are the block lengths in use, per family (true: IPv4), longest
	// first.
	lens map[bool][]int
}

// indexHoldings builds the index; a later entry for a prefix wins.
func indexHoldings(hs []Holding) holdings {
	out := holdings{hosts: map[netip.Prefix]Holding{}, blocks: map[netip.Prefix]Holding{}, lens: map[bool][]int{}}
	for _, h := range hs {
		if !h.Prefix.IsValid() || h.Prefix.Bits() == 0 {
			continue
		}
		h.Prefix = netip.PrefixFrom(h.Prefix.Addr().Unmap(), h.Prefix.Bits()-unmapBits(h.Prefix.Addr())).Masked()
		if h.Borrowed {
			out.hosts[h.Prefix] = h
			continue
		}
		out.blocks[h.Prefix] = h
		v4 := h.Prefix.Addr().Is4()
		if !slices.Contains(out.lens[v4], h.Prefix.Bits()) {
			out.lens[v4] = append(out.lens[v4], h.Prefix.Bits())
		}
	}
	for _, l := range out.lens {
		slices.SortFunc(l, func(a, b int) int { return b - a })
	}
	return out
}

func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

// block is the block containing p, if any.
func (h holdings) block(p netip.Prefix) (Holding, bool) {
	for _, bits := range h.lens[p.Addr().Is4()] {
		if bits > p.Bits() {
			continue
		}
		if b, ok := h.blocks[netip.PrefixFrom(p.Addr(), bits).Masked()]; ok {
			return b, true
		}
	}
	return Holding{}, false
}

// inAnyBlock reports whether a is a pod address: inside a block.
func (h holdings) inAnyBlock(a netip.Addr) bool {
	_, ok := h.block(netip.PrefixFrom(a, a.BitLen()))
	return ok
}

// ownerRefusal says why a path for p with next hop nh must not be used
// under the owner-only rule, or "" when the rule allows it. pods are the
// import filter's prefixes: a next hop inside them is a pod address.
func (h holdings) ownerRefusal(p netip.Prefix, nh netip.Addr, pods []netip.Prefix) string {
	if h.inAnyBlock(nh) || importable(netip.PrefixFrom(nh, nh.BitLen()), pods) {
		return fmt.Sprintf("next hop %s is a pod address", nh)
	}
	if b, ok := h.hosts[p]; ok {
		switch {
		case b.Local:
			return fmt.Sprintf("%s is an address this node borrowed and announces", p.Addr())
		case !slices.Contains(b.NextHops, nh):
			return fmt.Sprintf("address %s is borrowed by the node at %s, not announced by next hop %s", p.Addr(), addrList(b.NextHops), nh)
		}
		return ""
	}
	b, ok := h.block(p)
	switch {
	case !ok:
		return ""
	case b.Local:
		return fmt.Sprintf("inside this node's block %s: only a node that borrowed one of its addresses may announce it, and none holds %s", b.Prefix, p)
	case len(b.NextHops) == 0:
		return fmt.Sprintf("inside block %s, which no node with a known address owns", b.Prefix)
	case !slices.Contains(b.NextHops, nh):
		return fmt.Sprintf("inside block %s of the node at %s: next hop %s is not its owner", b.Prefix, addrList(b.NextHops), nh)
	}
	return ""
}

func addrList(as []netip.Addr) string {
	s := ""
	for i, a := range as {
		if i > 0 {
			s += ", "
		}
		s += a.String()
	}
	return s
}
