package routetable

import (
	"maps"
	"net/netip"
	"slices"
)

// A learned route is only as good as its next hops. A next hop that is one
// of this node's pods would deliver the prefix's traffic into that pod; one
// inside an owned block is a local or unallocated pod address; one that no
// device route reaches is refused by the kernel (ENETUNREACH) and would be
// retried forever. Such hops are dropped from the route, said once at
// warning level, and reported by Refused; a route left with no hop is not
// installed.

// Reasons a next hop is refused.
const (
	HopIsEndpoint   HideReason = "next hop is a local pod"
	HopInBlock      HideReason = "next hop inside an owned block"
	HopNotConnected HideReason = "next hop not on a connected subnet"
)

// hopProblem says why next hop h must not be used, or "".
func (t *Table) hopProblem(h netip.Addr) HideReason {
	hp := netip.PrefixFrom(h, h.BitLen())
	if _, ok := t.endpoints[hp]; ok {
		return HopIsEndpoint
	}
	if _, ok := t.blocks.within(hp); ok {
		return HopInBlock
	}
	if t.onLinkKnown {
		if _, ok := t.onLink.within(hp); !ok {
			return HopNotConnected
		}
	}
	return HidesNothing
}

// usableHops filters hops for the learned route p, recording why when
// every hop is refused, and warning once when some are.
func (t *Table) usableHops(p netip.Prefix, hops []netip.Addr) ([]netip.Addr, HideReason) {
	good := make([]netip.Addr, 0, len(hops))
	var why HideReason
	for _, h := range hops {
		if r := t.hopProblem(h); r != HidesNothing {
			why = r
			if !slices.Contains(t.badHops[p], h) {
				t.log.Warn("learned route: next hop refused", "prefix", p, "nextHop", h, "reason", string(r))
			}
			continue
		}
		good = append(good, h)
	}
	if len(good) == len(hops) {
		delete(t.badHops, p)
	} else {
		t.badHops[p] = slices.DeleteFunc(slices.Clone(hops), func(h netip.Addr) bool { return slices.Contains(good, h) })
	}
	return good, why
}

// indexHops keeps byHop, next hop → learned prefixes, for p's hops.
func (t *Table) indexHops(p netip.Prefix, old, next []netip.Addr) {
	for _, h := range old {
		if s := t.byHop[h]; s != nil {
			delete(s, p)
			if len(s) == 0 {
				delete(t.byHop, h)
			}
		}
	}
	for _, h := range next {
		s := t.byHop[h]
		if s == nil {
			s = map[netip.Prefix]struct{}{}
			t.byHop[h] = s
		}
		s[p] = struct{}{}
	}
}

// recomputeVia re-derives the learned routes whose next hops lie in the
// host prefixes ps (endpoints that came or went).
func (t *Table) recomputeVia(ps []netip.Prefix) {
	for _, p := range ps {
		if !p.IsSingleIP() {
			continue
		}
		for _, lp := range slices.Collect(maps.Keys(t.byHop[p.Addr()])) {
			t.recompute(lp)
		}
	}
}

// Refused returns the learned routes that are not installed, and why.
func (t *Table) Refused() map[netip.Prefix]HideReason {
	out := make(map[netip.Prefix]HideReason, len(t.suppressed))
	maps.Copy(out, t.suppressed)
	return out
}
