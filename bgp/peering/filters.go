package peering

import (
	"errors"
	"fmt"
	"net/netip"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/bgp/speaker"
)

// matchOperators maps a BGPFilterRule's matchOperator to the speaker's.
var matchOperators = map[string]speaker.MatchOperator{
	"Equal": speaker.MatchEqual, "NotEqual": speaker.MatchNotEqual, "In": speaker.MatchIn, "NotIn": speaker.MatchNotIn,
}

// FilterRules are a BGPFilter's rules as the speaker applies them, each
// direction in order (the IPv4 list, then the IPv6 one: a rule only ever
// matches prefixes of its own list's family). The error names every rule
// that cannot be used (a cidr that does not parse or is of the other
// family than its list, an operator without a cidr, an empty or too long
// prefix length range, an unknown action); such a filter is not used at
// all (see Peers). A cidr without a matchOperator means In.
func FilterRules(f *v1.BGPFilter) (speaker.Filters, error) {
	var out speaker.Filters
	var errs []error
	for _, list := range []struct {
		name  string
		v6    bool
		rules []v1.BGPFilterRule
		to    *[]speaker.FilterRule
	}{
		{"importV4", false, f.Spec.ImportV4, &out.Import}, {"importV6", true, f.Spec.ImportV6, &out.Import},
		{"exportV4", false, f.Spec.ExportV4, &out.Export}, {"exportV6", true, f.Spec.ExportV6, &out.Export},
	} {
		for i, r := range list.rules {
			src := fmt.Sprintf("BGPFilter %s %s[%d]", f.Name, list.name, i)
			sr, err := filterRule(r, list.v6, src)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s[%d]: %w", list.name, i, err))
				continue
			}
			*list.to = append(*list.to, sr)
		}
	}
	return out, errors.Join(errs...)
}

// filterRule converts one rule of a list of family v6.
func filterRule(r v1.BGPFilterRule, v6 bool, src string) (speaker.FilterRule, error) {
	out := speaker.FilterRule{Source: src, IPv6: v6}
	switch r.Action {
	case "Accept":
		out.Action = speaker.FilterAccept
	case "Reject":
		out.Action = speaker.FilterReject
	default:
		return out, fmt.Errorf("action %q: want Accept or Reject", r.Action)
	}
	bits := int32(32)
	if v6 {
		bits = 128
	}
	switch {
	case r.CIDR == "" && r.MatchOperator != "":
		return out, fmt.Errorf("matchOperator %s needs a cidr", r.MatchOperator)
	case r.CIDR != "":
		p, err := netip.ParsePrefix(r.CIDR)
		if err != nil {
			return out, fmt.Errorf("cidr %q: %w", r.CIDR, err)
		}
		if p.Addr().Is6() != v6 || p.Addr().Is4In6() {
			return out, fmt.Errorf("cidr %s is of the other address family than its list", r.CIDR)
		}
		op, ok := matchOperators[r.MatchOperator]
		if r.MatchOperator == "" {
			op, ok = speaker.MatchIn, true
		}
		if !ok {
			return out, fmt.Errorf("matchOperator %q: want Equal, NotEqual, In or NotIn", r.MatchOperator)
		}
		out.Match, out.CIDR = op, p.Masked()
	}
	if pl := r.PrefixLength; pl != nil {
		lo, hi := int32(0), bits
		if pl.Min != nil {
			lo = *pl.Min
		}
		if pl.Max != nil {
			hi = *pl.Max
		}
		switch {
		case lo < 0:
			return out, fmt.Errorf("prefixLength min %d is negative", lo)
		case lo > hi:
			return out, fmt.Errorf("prefixLength min %d is above max %d", lo, hi)
		case hi > bits:
			return out, fmt.Errorf("prefixLength max %d is longer than the family's %d bits", hi, bits)
		}
		out.MinLen, out.MaxLen = int(lo), int(hi)
	}
	return out, nil
}

// peerFilters are the rules of the BGPFilters p names, in the order it
// names them. A name with no BGPFilter, or with one whose rules cannot be
// used, fails closed: the peer's sessions then refuse every prefix, both
// ways, until it is fixed (a filter exists to keep something out, and a
// typo must not let it in), and the error says why.
func peerFilters(p *v1.BGPPeer, filters map[string]*v1.BGPFilter) (*speaker.Filters, error) {
	if len(p.Spec.Filters) == 0 {
		return nil, nil
	}
	out := &speaker.Filters{}
	for _, name := range p.Spec.Filters {
		f, ok := filters[name]
		if !ok {
			return refuseAll(fmt.Sprintf("BGPPeer %s: BGPFilter %s does not exist", p.Name, name)),
				fmt.Errorf("BGPPeer %s names BGPFilter %s, which does not exist: its sessions refuse every prefix both ways until it does", p.Name, name)
		}
		rules, err := FilterRules(f)
		if err != nil {
			return refuseAll(fmt.Sprintf("BGPPeer %s: BGPFilter %s is invalid", p.Name, name)),
				fmt.Errorf("BGPPeer %s names BGPFilter %s, which is invalid (its sessions refuse every prefix both ways until it is fixed): %w", p.Name, name, err)
		}
		out.Import = append(out.Import, rules.Import...)
		out.Export = append(out.Export, rules.Export...)
	}
	return out, nil
}

// refuseAll are rules that refuse every prefix of both families both ways.
func refuseAll(why string) *speaker.Filters {
	all := []speaker.FilterRule{
		{Source: why, Action: speaker.FilterReject},
		{Source: why, Action: speaker.FilterReject, IPv6: true},
	}
	return &speaker.Filters{Import: all, Export: all}
}
