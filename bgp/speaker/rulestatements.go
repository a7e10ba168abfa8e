package speaker

import (
	"fmt"
	"net/netip"

	"github.com/osrg/gobgp/v4/api"
)

// GoBGP ends a policy's evaluation at the first statement with an accept
// or reject action and has no "leave the filters, go on" action, which a
// filter's Accept needs. An Accept rule's outcome is known, though: the
// normal decision after it. So one peer's rules of one direction become,
// in order, statements for that neighbour alone, placed before the normal
// decision's statements:
//   - Reject: reject the rule's set;
//   - Accept: accept the part of the rule's set the normal decision
//     accepts (inside the pools, on that decision's other conditions),
//     then reject the rest of the rule's set.
//
// A rule's set is given as prefix ranges (prefixrange.go).

// ruleStatements are the defined sets and statements of one peer's rules
// of one direction, named name-<index>. nset is the peer's neighbour set
// (defined by the caller, only when a statement uses it); normal adds
// the normal decision's conditions besides the pools to an Accept's
// statement. A rule that matches nothing makes nothing.
func ruleStatements(name, nset string, rules []FilterRule, pools []netip.Prefix, normal func(*api.Conditions)) ([]*api.DefinedSet, []*api.Statement) {
	var sets []*api.DefinedSet
	var stmts []*api.Statement
	for i, r := range rules {
		matched := ruleRanges(r)
		if len(matched) == 0 {
			continue
		}
		stName := fmt.Sprintf("%s-%d", name, i)
		pset := "cairn-" + stName
		if r.Action == FilterAccept {
			if ok := intersectAll(matched, poolRanges(pools, r.IPv6)); len(ok) > 0 {
				sets = append(sets, rangeSet(pset+"-accept", ok))
				st := &api.Statement{
					Name:       stName + "-accept",
					Conditions: &api.Conditions{NeighborSet: matchAny(nset), PrefixSet: matchAny(pset + "-accept")},
					Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
				}
				normal(st.Conditions)
				stmts = append(stmts, st)
			}
		}
		sets = append(sets, rangeSet(pset, matched))
		stmts = append(stmts, &api.Statement{
			Name:       stName,
			Conditions: &api.Conditions{NeighborSet: matchAny(nset), PrefixSet: matchAny(pset)},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT},
		})
	}
	return sets, stmts
}
