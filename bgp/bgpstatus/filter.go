package bgpstatus

import (
	"fmt"
	"slices"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/bgp/peering"
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

// ValidateFilter reports the rules of f that cannot be used (see
// peering.FilterRules, which the agents apply).
func ValidateFilter(f *v1.BGPFilter) error {
	_, err := peering.FilterRules(f)
	return err
}
