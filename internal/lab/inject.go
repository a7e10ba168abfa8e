package lab

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// A misbehaving top-of-rack router, for tests of what nodes refuse: on
// top of what its filters relay, a ToR can be made to originate routes of
// any kind towards its nodes (a default route, another node's block, a
// route leak of thousands of prefixes), each with the next hop it chooses.
// Only BIRD routers can, in a running lab (SetInjectedRoutes).

// InjectedRoute is a route a router sends its nodes whatever its filters
// say.
type InjectedRoute struct {
	Prefix netip.Prefix `json:"prefix"`
	// NextHop, when valid, is the BGP next hop the router announces
	// instead of its own address (a pod, another node).
	NextHop netip.Addr `json:"nextHop,omitzero"`
}

// SetInjectedRoutes makes router originate routes towards its nodes, as
// the set named set, in both families as the prefixes are; an empty list
// removes the set. Sets are kept apart so a test can withdraw one (a
// flood) and keep the others. The router applies it by reconfiguring
// (`birdc configure`), without resetting a session: the nodes get the
// routes as UPDATEs.
func (l *Lab) SetInjectedRoutes(ctx context.Context, router, set string, routes []InjectedRoute) error {
	if !validSetName(set) {
		return fmt.Errorf("inject routes at %s: set name %q: want 1 to 20 lower-case letters and digits", router, set)
	}
	for _, r := range routes {
		if !r.Prefix.IsValid() || (r.NextHop.IsValid() && r.NextHop.Is4() != r.Prefix.Addr().Is4()) {
			return fmt.Errorf("inject routes at %s: route %s via %s: want a prefix and a next hop of its family", router, r.Prefix, r.NextHop)
		}
	}
	return l.mutate(func() error {
		for i := range l.st.Plan.Racks {
			tor := &l.st.Plan.Racks[i].ToR
			if tor.Name != router {
				continue
			}
			if !dualStack(*tor) {
				for _, r := range routes {
					if r.Prefix.Addr().Is6() {
						return fmt.Errorf("inject routes at %s: %s: the router has no IPv6 sessions (a dual-stack lab has)", router, r.Prefix)
					}
				}
			}
			if tor.Injected == nil {
				tor.Injected = map[string][]InjectedRoute{}
			}
			if len(routes) == 0 {
				delete(tor.Injected, set)
			} else {
				tor.Injected[set] = slices.Clone(routes)
			}
			if err := l.reloadRouter(ctx, *tor); err != nil {
				return err
			}
			return l.st.save()
		}
		return fmt.Errorf("inject routes: no top-of-rack router %q", router)
	})
}

func validSetName(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// birdInjected renders a router's injected sets: a static protocol per
// set and family ("inject_<set>", "inject_<set>6") whose routes are
// blackholes at the router (its kernel protocol exports BGP routes only),
// and the export filters of its node sessions, to_nodes and to_nodes6,
// which send them on top of the pools, with their chosen next hops. Empty
// when the router has none: its node sessions keep pool_only.
func birdInjected(rp RouterPlan) string {
	if len(rp.Injected) == 0 {
		return ""
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	fams := injectFamilies[:1]
	if dualStack(rp) {
		fams = injectFamilies[:]
	}
	var nextHops [2][]InjectedRoute // by family, as fams
	for _, set := range slices.Sorted(maps.Keys(rp.Injected)) {
		for fam, f := range fams {
			var routes []InjectedRoute
			for _, r := range rp.Injected[set] {
				if r.Prefix.Addr().Is4() == f.v4 {
					routes = append(routes, r)
				}
			}
			if len(routes) == 0 {
				continue
			}
			w("protocol static inject_%s%s {", set, f.suffix)
			w("  %s;", f.channel)
			for _, r := range routes {
				w("  route %s blackhole;", r.Prefix.Masked())
				if r.NextHop.IsValid() {
					nextHops[fam] = append(nextHops[fam], r)
				}
			}
			w("}")
		}
	}
	for fam, f := range fams {
		suffix := f.suffix
		w("filter to_nodes%s {", suffix)
		w("  if proto ~ \"inject_*\" then {")
		for _, r := range nextHops[fam] {
			// Set in the export filter, BIRD keeps it (it would put its
			// own address there otherwise, on eBGP).
			w("    if net = %s then bgp_next_hop = %s;", r.Prefix.Masked(), r.NextHop)
		}
		w("    accept;")
		w("  }")
		w("  if net ~ POOL%s then accept;", suffix)
		w("  reject;")
		w("}")
	}
	return b.String()
}

// nodeExportFilter is the export filter of a router's sessions to its
// nodes, without the family suffix.
func nodeExportFilter(rp RouterPlan) string {
	if len(rp.Injected) > 0 {
		return "to_nodes"
	}
	return "pool_only"
}

// injectFamilies are the families of injected routes, IPv4 first; a
// router without IPv6 sessions renders the first only.
var injectFamilies = [2]struct {
	v4              bool
	suffix, channel string
}{{true, "", "ipv4"}, {false, "6", "ipv6"}}
