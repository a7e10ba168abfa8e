package speaker

import (
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
// Each peer's rules become statements for that neighbour alone
// (rulestatements.go), after the default-route rejects and before the
// cluster peers' and the pools' statements; an Accept accepts what the
// normal decision accepts: inside the pools, and from another reflector
// of our cluster only with its own address as next hop (as
// acceptOwnOfClusterPeer).

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
		normal := func(c *api.Conditions) {
			if slices.Contains(in.clusterPeers, a) {
				c.NextHopInList = hostPrefixes([]netip.Addr{a})
			}
		}
		peerSets, peerStmts := ruleStatements("import-filter-"+a.String(), nset, in.importRules[a], in.pools, normal)
		if len(peerStmts) > 0 {
			sets = append(sets, peerSets...)
			sets = append(sets, neighborSet(nset, []netip.Addr{a}))
			stmts = append(stmts, peerStmts...)
		}
	}
	return sets, stmts
}
