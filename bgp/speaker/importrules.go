package speaker

import (
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

// importFilterStatements are the defined sets and statements of every
// peer's import rules, peers in address order, each peer's rules in order.
func importFilterStatements(in policyInput) ([]*api.DefinedSet, []*api.Statement) {
	return peersRuleStatements("import-filter", in.importRules, in.pools, func(a netip.Addr, c *api.Conditions) {
		if slices.Contains(in.clusterPeers, a) {
			c.NextHopInList = hostPrefixes([]netip.Addr{a})
		}
	})
}
