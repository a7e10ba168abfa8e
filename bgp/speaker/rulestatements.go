package speaker

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"

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

// rulesChangedFor lists the peers whose rules (of one direction) differ
// between old and new: for import rules, those whose received paths GoBGP
// must judge again; for export rules, those it must re-send to.
func rulesChangedFor(old, new map[netip.Addr][]FilterRule) []netip.Addr {
	var out []netip.Addr
	for a := range union(old, new) {
		if !slices.Equal(old[a], new[a]) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// peersRuleStatements are the defined sets and statements of every peer's
// rules of one direction (rules), peers in address order: peer a's are
// named kind-a-<index>, for the neighbour set cairn-kind-a; normal adds
// the normal decision's other conditions for a to an Accept's statement.
// A peer without a statement gets no neighbour set (an empty one would
// match every neighbour).
func peersRuleStatements(kind string, rules map[netip.Addr][]FilterRule, pools []netip.Prefix, normal func(a netip.Addr, c *api.Conditions)) ([]*api.DefinedSet, []*api.Statement) {
	var sets []*api.DefinedSet
	var stmts []*api.Statement
	for _, a := range slices.SortedFunc(maps.Keys(rules), netip.Addr.Compare) {
		nset := "cairn-" + kind + "-" + a.String()
		peerSets, peerStmts := ruleStatements(kind+"-"+a.String(), nset, rules[a], pools, func(c *api.Conditions) { normal(a, c) })
		if len(peerStmts) > 0 {
			sets = append(sets, peerSets...)
			sets = append(sets, neighborSet(nset, []netip.Addr{a}))
			stmts = append(stmts, peerStmts...)
		}
	}
	return sets, stmts
}

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
