package speaker

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/osrg/gobgp/v4/api"
)

// Export filters. GoBGP has one export policy for every neighbour (a
// per-neighbour one only for route-server clients), and its statements
// cannot say "stop evaluating the filter, go on with the rest", which a
// filter's Accept needs. So the speaker decides in Go, for each of its own
// advertisements and each peer with export rules, whether the peer's
// filters refuse it, and the policy gets one statement per such peer and
// family rejecting exactly those prefixes towards it. A new advertisement
// is judged before it is added (the policy is applied first); a changed
// filter re-sends to its peer only (soft reset out), no session resets.

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
