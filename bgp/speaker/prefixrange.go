package speaker

import (
	"net/netip"

	"github.com/osrg/gobgp/v4/api"
)

// A filter rule's matching set, in the only form a GoBGP prefix set
// knows: entries of a prefix and a range of lengths. GoBGP matches a
// route against an entry when the entry's prefix covers it (the route is
// at least as long) and its length is within the range (table/policy.go,
// PrefixCondition.Evaluate); a set matches when any entry does. An
// inverted set cannot carry the rule's length range in the same
// statement, so NotIn and NotEqual are decomposed into plain entries
// along the CIDR's path instead.

// prefixRange is one GoBGP prefix-set entry: the prefixes inside Prefix
// whose length is within Min..Max. Min is never below Prefix's own length
// (shorter prefixes are never inside it).
type prefixRange struct {
	Prefix   netip.Prefix
	Min, Max int
}

// newRange is the entry for the prefixes inside p with lengths lo..hi; ok
// is false when there are none.
func newRange(p netip.Prefix, lo, hi int) (prefixRange, bool) {
	lo = max(lo, p.Bits())
	return prefixRange{Prefix: p, Min: lo, Max: hi}, lo <= hi
}

// contains is GoBGP's match of a route against the entry.
func (e prefixRange) contains(p netip.Prefix) bool {
	return e.Prefix.Bits() <= p.Bits() && e.Prefix.Contains(p.Addr()) && e.Min <= p.Bits() && p.Bits() <= e.Max
}

// intersect is the entry matching what both a and b match. Two prefixes
// that both cover a route are nested, so it is the longer prefix with the
// narrower range, or nothing when the prefixes are disjoint.
func intersect(a, b prefixRange) (prefixRange, bool) {
	longer := b.Prefix
	switch {
	case a.Prefix.Bits() <= b.Prefix.Bits() && a.Prefix.Contains(b.Prefix.Addr()):
	case b.Prefix.Bits() <= a.Prefix.Bits() && b.Prefix.Contains(a.Prefix.Addr()):
		longer = a.Prefix
	default:
		return prefixRange{}, false
	}
	return newRange(longer, max(a.Min, b.Min), min(a.Max, b.Max))
}

// intersectAll is every entry matching what an entry of as and one of bs
// both match.
func intersectAll(as, bs []prefixRange) []prefixRange {
	var out []prefixRange
	for _, a := range as {
		for _, b := range bs {
			if e, ok := intersect(a, b); ok {
				out = append(out, e)
			}
		}
	}
	return out
}

// ruleRanges is the set of prefixes r matches, as entries (none when it
// matches nothing). r is validated (CIDR masked, lengths in range).
func ruleRanges(r FilterRule) []prefixRange {
	lo, hi := r.MinLen, r.maxLen()
	all := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	if r.IPv6 {
		all = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	bits := r.CIDR.Bits()
	var out []prefixRange
	add := func(p netip.Prefix, lo, hi int) {
		if e, ok := newRange(p, lo, hi); ok {
			out = append(out, e)
		}
	}
	switch r.Match {
	case MatchAll:
		add(all, lo, hi)
	case MatchIn:
		add(r.CIDR, lo, hi)
	case MatchEqual:
		add(r.CIDR, max(lo, bits), min(hi, bits))
	case MatchNotIn:
		// Disjoint from the CIDR: inside one of its path's siblings.
		for _, s := range siblings(r.CIDR) {
			add(s, lo, hi)
		}
		// Covering it: the CIDR's shorter prefixes, each exactly.
		for l := lo; l <= min(hi, bits-1); l++ {
			c := netip.PrefixFrom(r.CIDR.Addr(), l).Masked()
			add(c, l, l)
		}
	case MatchNotEqual:
		// Every prefix of another length, and of the CIDR's length
		// every one but the CIDR: those lie in the path's siblings.
		add(all, lo, min(hi, bits-1))
		add(all, max(lo, bits+1), hi)
		if lo <= bits && bits <= hi {
			for _, s := range siblings(r.CIDR) {
				add(s, bits, bits)
			}
		}
	}
	return out
}

// siblings are, for each length k from 1 to p's, the prefix of length k
// that shares p's first k-1 bits and differs in bit k: every prefix
// disjoint from p lies inside exactly one of them.
func siblings(p netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, p.Bits())
	for k := 1; k <= p.Bits(); k++ {
		out = append(out, netip.PrefixFrom(flipBit(p.Addr(), k-1), k).Masked())
	}
	return out
}

// flipBit inverts bit i (0 the most significant) of a.
func flipBit(a netip.Addr, i int) netip.Addr {
	if a.Is4() {
		b := a.As4()
		b[i/8] ^= 0x80 >> (i % 8)
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	b[i/8] ^= 0x80 >> (i % 8)
	return netip.AddrFrom16(b)
}

// poolRanges are the entries of the pools of one family: each pool and
// everything inside it.
func poolRanges(pools []netip.Prefix, v6 bool) []prefixRange {
	var out []prefixRange
	for _, p := range pools {
		if p.Addr().Is6() == v6 {
			out = append(out, prefixRange{Prefix: p, Min: p.Bits(), Max: familyBits(v6)})
		}
	}
	return out
}

// rangeSet is the GoBGP prefix set of entries (one family, not empty).
func rangeSet(name string, es []prefixRange) *api.DefinedSet {
	ds := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: name}
	for _, e := range es {
		ds.Prefixes = append(ds.Prefixes, &api.Prefix{IpPrefix: e.Prefix.String(), MaskLengthMin: uint32(e.Min), MaskLengthMax: uint32(e.Max)})
	}
	return ds
}
