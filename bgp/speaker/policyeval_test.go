package speaker

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/osrg/gobgp/v4/api"
)

// testRoute is a route as a policy statement sees it: the neighbour it
// comes from (import) or goes to (export), its prefix, next hop and type.
type testRoute struct {
	neighbor string
	prefix   string
	nextHop  string
	typ      api.Conditions_RouteType
}

// evalPolicy runs a route through the named policy of req the way GoBGP
// does for the conditions the speaker uses (neighbour set, prefix set,
// next-hop list, route type; all of a statement's conditions must hold):
// the first statement that matches decides; none means the global
// default, reject. It reports whether the route is accepted and by which
// statement it was decided ("" for the default).
func evalPolicy(t *testing.T, req *api.SetPoliciesRequest, policy string, r testRoute) (bool, string) {
	t.Helper()
	pfx := netip.MustParsePrefix(r.prefix)
	inList := func(list []string, a string) bool {
		return slices.ContainsFunc(list, func(s string) bool {
			return netip.MustParsePrefix(s).Contains(netip.MustParseAddr(a))
		})
	}
	for _, st := range statements(t, req, policy) {
		c := st.Conditions
		if ns := c.NeighborSet; ns != nil && !inList(definedSet(req, ns.Name).List, r.neighbor) {
			continue
		}
		if ps := c.PrefixSet; ps != nil && !slices.ContainsFunc(definedSet(req, ps.Name).Prefixes, func(p *api.Prefix) bool {
			e := prefixRange{Prefix: netip.MustParsePrefix(p.IpPrefix), Min: int(p.MaskLengthMin), Max: int(p.MaskLengthMax)}
			return e.contains(pfx)
		}) {
			continue
		}
		if len(c.NextHopInList) > 0 && !inList(c.NextHopInList, r.nextHop) {
			continue
		}
		if c.RouteType != api.Conditions_ROUTE_TYPE_UNSPECIFIED && c.RouteType != r.typ {
			continue
		}
		return st.Actions.RouteAction == api.RouteAction_ROUTE_ACTION_ACCEPT, st.Name
	}
	return false, ""
}
