package speaker

import (
	"fmt"
	"net/netip"
)

// A peer's filters (BGPFilter, named by the BGPPeer) narrow what the
// speaker takes from that peer and sends it; they never widen it. The
// rules are evaluated in order, the first of the prefix's family that
// matches decides: Reject refuses the prefix, Accept ends the evaluation
// and leaves the prefix to the normal decision (for imports: inside an IP
// pool, owner-only, never a default route; for exports: only our own
// advertisements, never a default route). A prefix no rule matches goes to
// the normal decision too. This is Calico's order (rules in order, filters
// in the order the peer lists them, first match wins, default Accept),
// with Accept meaning "not refused by the filters" rather than a way
// around Cairn's safety rules.

// FilterAction is what a matching FilterRule does.
type FilterAction uint8

// The filter actions.
const (
	// FilterAccept stops the evaluation: the prefix is left to the
	// normal decision.
	FilterAccept FilterAction = iota
	// FilterReject refuses the prefix.
	FilterReject
)

// MatchOperator is how a FilterRule compares a prefix with its CIDR.
type MatchOperator uint8

// The match operators (Calico's). "Inside" includes the CIDR itself.
const (
	// MatchAll: the rule has no CIDR; every prefix of its family.
	MatchAll MatchOperator = iota
	// MatchEqual: the prefix is the CIDR.
	MatchEqual
	// MatchNotEqual: the prefix is not the CIDR.
	MatchNotEqual
	// MatchIn: the prefix is inside the CIDR.
	MatchIn
	// MatchNotIn: the prefix is not inside the CIDR (disjoint from it, or
	// covering it).
	MatchNotIn
)

var matchNames = map[MatchOperator]string{MatchAll: "all", MatchEqual: "Equal", MatchNotEqual: "NotEqual", MatchIn: "In", MatchNotIn: "NotIn"}

// FilterRule is one rule of a peer's filters.
type FilterRule struct {
	// Source names the rule for reasons and logs, for example
	// `BGPFilter tor-in importV4[2]`.
	Source string
	// IPv6 says the rule's family: it matches prefixes of that family
	// only (a BGPFilter's *V4 and *V6 lists).
	IPv6 bool
	// Match compares the prefix with CIDR; MatchAll ignores CIDR.
	Match MatchOperator
	CIDR  netip.Prefix
	// MinLen and MaxLen bound the prefix length, inclusive; MaxLen 0
	// means the family's address length (32, 128).
	MinLen, MaxLen int
	// Action is what a match does.
	Action FilterAction
}

// Filters are one peer's rules per direction, in evaluation order: the
// BGPFilters in the order the BGPPeer names them, each one's rules in
// order, both families (a rule only matches its own).
type Filters struct {
	Import, Export []FilterRule
}

// maxLen is the rule's longest matched length.
func (r FilterRule) maxLen() int {
	if r.MaxLen == 0 {
		return familyBits(r.IPv6)
	}
	return r.MaxLen
}

func familyBits(v6 bool) int {
	if v6 {
		return 128
	}
	return 32
}

// matches reports whether the rule applies to p (a valid, masked prefix).
func (r FilterRule) matches(p netip.Prefix) bool {
	if p.Addr().Is6() != r.IPv6 || p.Bits() < r.MinLen || p.Bits() > r.maxLen() {
		return false
	}
	inside := r.CIDR.Bits() <= p.Bits() && r.CIDR.Contains(p.Addr())
	switch r.Match {
	case MatchAll:
		return true
	case MatchEqual:
		return p == r.CIDR
	case MatchNotEqual:
		return p != r.CIDR
	case MatchIn:
		return inside
	case MatchNotIn:
		return !inside
	}
	return false
}

// firstMatch is the rule that decides for p: the first that matches; ok
// is false when none does (the normal decision applies).
func firstMatch(rules []FilterRule, p netip.Prefix) (FilterRule, bool) {
	p = p.Masked()
	for _, r := range rules {
		if r.matches(p) {
			return r, true
		}
	}
	return FilterRule{}, false
}

// filterRefusal says why rules refuse p, or "" when they do not (an
// Accept, or no match).
func filterRefusal(rules []FilterRule, p netip.Prefix) string {
	r, ok := firstMatch(rules, p)
	if !ok || r.Action != FilterReject {
		return ""
	}
	return r.Source + " rejects it"
}

// validateFilters checks and normalises a peer's rules (CIDRs masked).
func validateFilters(f *Filters) (*Filters, error) {
	if f == nil {
		return nil, nil
	}
	out := &Filters{}
	for _, dir := range []struct {
		name string
		in   []FilterRule
		out  *[]FilterRule
	}{{"import", f.Import, &out.Import}, {"export", f.Export, &out.Export}} {
		for i, r := range dir.in {
			r, err := validateRule(r)
			if err != nil {
				return nil, fmt.Errorf("%s rule %d (%s): %w", dir.name, i, r.Source, err)
			}
			*dir.out = append(*dir.out, r)
		}
	}
	return out, nil
}

func validateRule(r FilterRule) (FilterRule, error) {
	bits := familyBits(r.IPv6)
	if _, ok := matchNames[r.Match]; !ok {
		return r, fmt.Errorf("unknown match operator %d", r.Match)
	}
	if r.Action != FilterAccept && r.Action != FilterReject {
		return r, fmt.Errorf("unknown action %d", r.Action)
	}
	if r.Match != MatchAll {
		if !r.CIDR.IsValid() || r.CIDR.Addr().Is6() != r.IPv6 || r.CIDR.Addr().Is4In6() {
			return r, fmt.Errorf("match %s needs a CIDR of the rule's family, got %q", matchNames[r.Match], r.CIDR)
		}
		r.CIDR = r.CIDR.Masked()
	}
	if r.MinLen < 0 || r.MaxLen < 0 || r.maxLen() > bits || r.MinLen > r.maxLen() {
		return r, fmt.Errorf("prefix lengths %d-%d are not a range within %d bits", r.MinLen, r.maxLen(), bits)
	}
	return r, nil
}
