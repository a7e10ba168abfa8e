package bgpstatus

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
)

// Filter is the status of f: the BGPPeers that name it, whether its rules
// can be used (Invalid) and Ready (valid and in use). peers are all the
// BGPPeers. Conditions keep their transition times from the current
// status.
func Filter(f *v1.BGPFilter, peers []*v1.BGPPeer) v1.BGPFilterStatus {
	var users []string
	for _, p := range peers {
		if slices.Contains(p.Spec.Filters, f.Name) {
			users = append(users, p.Name)
		}
	}
	slices.Sort(users)
	st := v1.BGPFilterStatus{UsedBy: capNames(users), UsedByCount: int32(len(users))}
	st.ObservedGeneration = f.Generation
	st.Conditions = copyConditions(f.Status.Conditions)
	gen := f.Generation
	err := ValidateFilter(f)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	setCondition(&st.Conditions, gen, v1.ConditionInvalid, err != nil, pick(err != nil, "BadRule", "Valid"), msg)
	switch {
	case err != nil:
		setCondition(&st.Conditions, gen, v1.ConditionReady, false, "Invalid", "the filter's rules cannot be used")
	case len(users) == 0:
		setCondition(&st.Conditions, gen, v1.ConditionReady, false, "Unused", "no BGPPeer names this filter")
	default:
		setCondition(&st.Conditions, gen, v1.ConditionReady, true, "InUse", fmt.Sprintf("named by %d BGPPeer(s)", len(users)))
	}
	return st
}

// ValidateFilter reports the rules of f that cannot be used: a cidr that
// does not parse or is of the other family than its list, a prefix length
// range that is empty or longer than the family's addresses.
func ValidateFilter(f *v1.BGPFilter) error {
	var errs []error
	for _, list := range []struct {
		name  string
		v6    bool
		rules []v1.BGPFilterRule
	}{{"exportV4", false, f.Spec.ExportV4}, {"importV4", false, f.Spec.ImportV4}, {"exportV6", true, f.Spec.ExportV6}, {"importV6", true, f.Spec.ImportV6}} {
		for i, r := range list.rules {
			if err := validateRule(r, list.v6); err != nil {
				errs = append(errs, fmt.Errorf("%s[%d]: %w", list.name, i, err))
			}
		}
	}
	return errors.Join(errs...)
}

func validateRule(r v1.BGPFilterRule, v6 bool) error {
	bits := int32(32)
	if v6 {
		bits = 128
	}
	if r.CIDR != "" {
		p, err := netip.ParsePrefix(r.CIDR)
		if err != nil {
			return fmt.Errorf("cidr %q: %w", r.CIDR, err)
		}
		if p.Addr().Is6() != v6 {
			return fmt.Errorf("cidr %s is of the other address family than its list", r.CIDR)
		}
	}
	if r.MatchOperator != "" && r.CIDR == "" {
		return fmt.Errorf("matchOperator %s needs a cidr", r.MatchOperator)
	}
	if pl := r.PrefixLength; pl != nil {
		lo, hi := int32(0), bits
		if pl.Min != nil {
			lo = *pl.Min
		}
		if pl.Max != nil {
			hi = *pl.Max
		}
		if lo > hi {
			return fmt.Errorf("prefixLength min %d is above max %d", lo, hi)
		}
		if hi > bits {
			return fmt.Errorf("prefixLength max %d is longer than the family's %d bits", hi, bits)
		}
	}
	return nil
}
