package speaker

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/osrg/gobgp/v4/api"
)

// Export filters: a peer's export rules judge everything sent to it
// (Calico's semantics), our own advertisements and, on a route reflector,
// the routes reflected to it. GoBGP has one export policy for every
// neighbour (a per-neighbour one only for route-server clients).
//
// Our own advertisements: the speaker decides in Go, for each of them and
// each peer with export rules, whether the peer's filters refuse it, and
// the policy gets one statement per such peer and family rejecting
// exactly those prefixes towards it, before export-own accepts the rest.
// A new advertisement is judged before it is added (the policy is applied
// first).
//
// Reflected routes: the routes are not ours to list, so each rule of a
// peer that routes are reflected to becomes statements for that neighbour
// (rulestatements.go), after export-own (our own paths are decided by
// then) and before the reflect statements: an Accept accepts what the
// reflect statements would (iBGP-learned, inside the pools), a Reject and
// the rest of an Accept's set reject.
//
// A changed filter re-sends to its peer only (soft reset out), no session
// resets.

// reflectedExportRules lists, per peer of reflectTo with export rules,
// its rules.
func reflectedExportRules(peers map[netip.Addr]Peer, reflectTo []netip.Addr) map[netip.Addr][]FilterRule {
	out := map[netip.Addr][]FilterRule{}
	for _, a := range reflectTo {
		if rules := peers[a].exportRules(); len(rules) > 0 {
			out[a] = rules
		}
	}
	return out
}

// reflectedExportStatements are the defined sets and statements of the
// export rules of every peer routes are reflected to, peers in address
// order, each peer's rules in order.
func reflectedExportStatements(in policyInput) ([]*api.DefinedSet, []*api.Statement) {
	return peersRuleStatements("export-reflected", in.reflectedExportRules, in.pools, func(_ netip.Addr, c *api.Conditions) {
		c.RouteType = api.Conditions_ROUTE_TYPE_INTERNAL
	})
}

// exportRejects lists, per peer with export rules, the prefixes its
// filters refuse among prefixes (sorted); peers refusing none are left out.
func exportRejects(peers map[netip.Addr]Peer, prefixes []netip.Prefix) map[netip.Addr][]netip.Prefix {
	out := map[netip.Addr][]netip.Prefix{}
	for a, p := range peers {
		rules := p.exportRules()
		if len(rules) == 0 {
			continue
		}
		for _, pfx := range prefixes {
			if filterRefusal(rules, pfx) != "" {
				out[a] = append(out[a], pfx)
			}
		}
		slices.SortFunc(out[a], netip.Prefix.Compare)
	}
	return out
}

// adPrefixes are the prefixes of both sets of advertisements, sorted: the
// desired ones and those still in GoBGP, so a prefix being withdrawn stays
// refused until it is gone.
func adPrefixes(sets ...map[netip.Prefix]adAttrs) []netip.Prefix {
	seen := map[netip.Prefix]bool{}
	for _, s := range sets {
		for p := range s {
			seen[p] = true
		}
	}
	return slices.SortedFunc(maps.Keys(seen), netip.Prefix.Compare)
}

// equalRejects compares two exportRejects results.
func equalRejects(a, b map[netip.Addr][]netip.Prefix) bool {
	return maps.EqualFunc(a, b, slices.Equal)
}

// rejectsChangedFor lists the peers for which what old and new refuse
// differs among the prefixes advertised now: those whose Adj-RIB-Out must
// be re-evaluated. A difference only in prefixes not advertised needs
// nothing: a prefix added later is judged by the new policy.
func rejectsChangedFor(old, new map[netip.Addr][]netip.Prefix, advertised map[netip.Prefix]adAttrs) []netip.Addr {
	var out []netip.Addr
	for _, a := range slices.Collect(maps.Keys(union(old, new))) {
		if !slices.Equal(advertisedOnly(old[a], advertised), advertisedOnly(new[a], advertised)) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// exportChangedFor lists the peers whose Adj-RIB-Out must be re-evaluated
// when the policy input goes from old to new: those whose verdict on what
// we advertise changed (rejectsChangedFor), and those with changed export
// rules for reflected routes.
func exportChangedFor(old, new policyInput, advertised map[netip.Prefix]adAttrs) []netip.Addr {
	out := rejectsChangedFor(old.exportRejects, new.exportRejects, advertised)
	for _, a := range rulesChangedFor(old.reflectedExportRules, new.reflectedExportRules) {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// union is the set of peers that are keys of a or b.
func union[V any](a, b map[netip.Addr]V) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func advertisedOnly(ps []netip.Prefix, advertised map[netip.Prefix]adAttrs) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if _, ok := advertised[p]; ok {
			out = append(out, p)
		}
	}
	return out
}

// exportFilterStatements are the defined sets and reject statements for
// rejects, peers in address order, IPv4 before IPv6.
func exportFilterStatements(rejects map[netip.Addr][]netip.Prefix) ([]*api.DefinedSet, []*api.Statement) {
	var sets []*api.DefinedSet
	var stmts []*api.Statement
	for _, a := range slices.SortedFunc(maps.Keys(rejects), netip.Addr.Compare) {
		nset := "cairn-export-filter-" + a.String()
		sets = append(sets, neighborSet(nset, []netip.Addr{a}))
		for _, fam := range []struct {
			suffix string
			v6     bool
		}{{"-v4", false}, {"-v6", true}} {
			var ps []netip.Prefix
			for _, p := range rejects[a] {
				if p.Addr().Is6() == fam.v6 {
					ps = append(ps, p)
				}
			}
			if len(ps) == 0 {
				continue
			}
			pset := nset + fam.suffix
			sets = append(sets, prefixSet(pset, ps, 0))
			stmts = append(stmts, &api.Statement{
				Name:       fmt.Sprintf("export-filter-%s%s", a, fam.suffix),
				Conditions: &api.Conditions{PrefixSet: matchAny(pset), NeighborSet: matchAny(nset)},
				Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT},
			})
		}
	}
	return sets, stmts
}
