package speaker

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/osrg/gobgp/v4/api"
)

// Import filters in GoBGP's import policy. A peer's import rules decide
// what enters this node's BGP table from that peer (Calico's semantics),
// so a route they refuse is neither used here nor reflected to route-
// reflector clients. learned.go checks the same rules again in Go: that
// also holds for held paths and before a soft reset has re-run the policy.
//
// GoBGP ends the whole evaluation at the first statement with an accept or
// reject action and has no "leave the filters, go on" action, which an
// Accept rule needs. An Accept rule's outcome is known, though: the
// normal decision after it. So each rule of a peer becomes, in order,
// statements for that neighbour alone, placed before the normal ones:
//   - Reject: reject the rule's set;
//   - Accept: accept the part of the rule's set the normal decision
//     accepts (inside the pools; from another reflector of our cluster only
//     with a next hop of one of them, as acceptOwnOfClusterPeers), then
//     reject the rest of the rule's set.
//
// A rule's set is given as prefix ranges (prefixrange.go).

// importRulesOf lists, per peer with import rules, its rules.
func importRulesOf(peers map[netip.Addr]Peer) map[netip.Addr][]FilterRule {
	out := map[netip.Addr][]FilterRule{}
	for a, p := range peers {
		if rules := p.importRules(); len(rules) > 0 {
			out[a] = rules
		}
	}
	return out
}

// importRulesChangedFor lists the peers whose import rules differ between
// old and new: those whose received paths GoBGP must judge again.
func importRulesChangedFor(old, new map[netip.Addr][]FilterRule) []netip.Addr {
	var out []netip.Addr
	for a := range union(old, new) {
		if !slices.Equal(old[a], new[a]) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// importFilterStatements are the defined sets and statements of every
// peer's import rules, peers in address order, each peer's rules in order.
// A rule that matches nothing makes nothing, and a peer without a
// statement no neighbour set (an empty one would match every neighbour).
func importFilterStatements(in policyInput) ([]*api.DefinedSet, []*api.Statement) {
	var sets []*api.DefinedSet
	var stmts []*api.Statement
	for _, a := range slices.SortedFunc(maps.Keys(in.importRules), netip.Addr.Compare) {
		nset := "cairn-import-filter-" + a.String()
		var peerStmts []*api.Statement
		for i, r := range in.importRules[a] {
			matched := ruleRanges(r)
			if len(matched) == 0 {
				continue
			}
			name := fmt.Sprintf("import-filter-%s-%d", a, i)
			pset := "cairn-" + name
			if r.Action == FilterAccept {
				if ok := intersectAll(matched, poolRanges(in.pools, r.IPv6)); len(ok) > 0 {
					sets = append(sets, rangeSet(pset+"-accept", ok))
					st := &api.Statement{
						Name:       name + "-accept",
						Conditions: &api.Conditions{NeighborSet: matchAny(nset), PrefixSet: matchAny(pset + "-accept")},
						Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
					}
					if slices.Contains(in.clusterPeers, a) {
						st.Conditions.NextHopInList = hostPrefixes(in.clusterPeers)
					}
					peerStmts = append(peerStmts, st)
				}
			}
			sets = append(sets, rangeSet(pset, matched))
			peerStmts = append(peerStmts, &api.Statement{
				Name:       name,
				Conditions: &api.Conditions{NeighborSet: matchAny(nset), PrefixSet: matchAny(pset)},
				Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT},
			})
		}
		if len(peerStmts) > 0 {
			sets = append(sets, neighborSet(nset, []netip.Addr{a}))
			stmts = append(stmts, peerStmts...)
		}
	}
	return sets, stmts
}
