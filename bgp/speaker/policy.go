package speaker

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/osrg/gobgp/v4/api"
)

// Names of the GoBGP policy objects the speaker owns. They never change, so
// the global assignments keep pointing at them across SetPolicies calls.
const (
	importPolicyName = "cairn-import"
	exportPolicyName = "cairn-export"

	setDefaultV4 = "cairn-default-v4"
	setDefaultV6 = "cairn-default-v6"
	setPoolsV4   = "cairn-pools-v4"
	setPoolsV6   = "cairn-pools-v6"
	setIBGPPeers = "cairn-ibgp-peers"
	// setClusterPeers holds the other route reflectors of our cluster.
	setClusterPeers = "cairn-cluster-peers"
)

// policyInput is everything the routing policy depends on.
type policyInput struct {
	// pools is the normalized import filter.
	pools []netip.Prefix
	// reflectTo lists every iBGP peer; it is used only when reflecting
	// (some peer is a route-reflector client), otherwise it is empty.
	reflectTo []netip.Addr
	// exportRejects are, per peer with export filters, the prefixes of
	// ours they refuse (exportfilter.go).
	exportRejects map[netip.Addr][]netip.Prefix
	// clusterPeers lists the other reflectors of our cluster (Peer
	// SameCluster), sorted.
	clusterPeers []netip.Addr
	// importRules are, per peer with import rules, its rules
	// (importrules.go).
	importRules map[netip.Addr][]FilterRule
	// reflectedExportRules are, per peer of reflectTo with export rules,
	// its rules: they judge the routes reflected to it (exportfilter.go).
	reflectedExportRules map[netip.Addr][]FilterRule
}

// policyInputFor derives the policy input from the desired peers, the
// import filter and our advertisements (ads: desired and still applied).
func policyInputFor(pools []netip.Prefix, peers map[netip.Addr]Peer, localASN uint32, ads []netip.Prefix) policyInput {
	in := policyInput{pools: pools, exportRejects: exportRejects(peers, ads), importRules: importRulesOf(peers)}
	reflecting := false
	var ibgp []netip.Addr
	for addr, p := range peers {
		if p.ASN != localASN {
			continue
		}
		ibgp = append(ibgp, addr)
		reflecting = reflecting || p.RouteReflectorClient
		if p.SameCluster {
			in.clusterPeers = append(in.clusterPeers, addr)
		}
	}
	if reflecting {
		slices.SortFunc(ibgp, netip.Addr.Compare)
		in.reflectTo = ibgp
	}
	in.reflectedExportRules = reflectedExportRules(peers, in.reflectTo)
	slices.SortFunc(in.clusterPeers, netip.Addr.Compare)
	return in
}

func (in policyInput) equal(o policyInput) bool {
	return slices.Equal(in.pools, o.pools) && slices.Equal(in.reflectTo, o.reflectTo) &&
		equalRejects(in.exportRejects, o.exportRejects) && slices.Equal(in.clusterPeers, o.clusterPeers) &&
		maps.EqualFunc(in.importRules, o.importRules, slices.Equal) &&
		maps.EqualFunc(in.reflectedExportRules, o.reflectedExportRules, slices.Equal)
}

// buildPolicy returns the complete GoBGP routing policy for in. Global
// defaults (set once at start, see globalAssignments) reject; these
// statements are the only things that accept.
//
// Import: reject default routes; accept our own paths (GoBGP imports local
// paths through the same policy); apply each peer's import rules
// (importrules.go); from another reflector of our cluster accept only its
// own paths; accept prefixes inside the pools.
// Export: reject default routes; reject what a peer's export filters
// refuse of our own paths towards it (exportfilter.go); accept locally
// originated paths (only our Advertisements are ever added locally); when
// reflecting, apply each iBGP peer's export rules to the routes reflected
// to it, then accept iBGP-learned pool prefixes towards iBGP peers. GoBGP applies RFC 4456 on top, so a route
// from a non-client only goes to clients. eBGP peers never get learned routes.
//
// GoBGP has two traps this avoids: a prefix set holds one address family, and
// a neighbor condition on an empty neighbor set matches every neighbor, so a
// statement is only emitted when its sets are non-empty.
func buildPolicy(in policyInput) *api.SetPoliciesRequest {
	var v4, v6 []netip.Prefix
	for _, p := range in.pools {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	sets := []*api.DefinedSet{
		prefixSet(setDefaultV4, []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, 0),
		prefixSet(setDefaultV6, []netip.Prefix{netip.MustParsePrefix("::/0")}, 0),
	}
	imp := []*api.Statement{
		rejectStatement("reject-default-v4", setDefaultV4),
		rejectStatement("reject-default-v6", setDefaultV6),
		// GoBGP runs the global import policy over locally added paths
		// too: without this, an advertisement outside the pools (a service
		// range) would be dropped before it reached the RIB.
		{
			Name:       "import-own",
			Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
		},
	}
	importSets, importStmts := importFilterStatements(in)
	sets = append(sets, importSets...)
	imp = append(imp, importStmts...)
	filterSets, filterStmts := exportFilterStatements(in.exportRejects)
	sets = append(sets, filterSets...)
	exp := []*api.Statement{
		rejectStatement("export-reject-default-v4", setDefaultV4),
		rejectStatement("export-reject-default-v6", setDefaultV6),
	}
	exp = append(exp, filterStmts...)
	exp = append(exp, &api.Statement{
		Name:       "export-own",
		Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
		Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
	})
	reflectedSets, reflectedStmts := reflectedExportStatements(in)
	sets = append(sets, reflectedSets...)
	exp = append(exp, reflectedStmts...)
	if len(in.reflectTo) > 0 {
		sets = append(sets, neighborSet(setIBGPPeers, in.reflectTo))
	}
	pools := []struct {
		set      string
		prefixes []netip.Prefix
		maxLen   int
	}{{setPoolsV4, v4, 32}, {setPoolsV6, v6, 128}}
	if len(in.clusterPeers) > 0 {
		sets = append(sets, neighborSet(setClusterPeers, in.clusterPeers))
		for _, a := range in.clusterPeers {
			sets = append(sets, neighborSet(clusterPeerSet(a), []netip.Addr{a}))
			for _, f := range pools {
				if len(f.prefixes) > 0 {
					imp = append(imp, acceptOwnOfClusterPeer(a, f.set))
				}
			}
		}
		imp = append(imp, &api.Statement{
			Name:       "reject-reflected-by-cluster-peers",
			Conditions: &api.Conditions{NeighborSet: matchAny(setClusterPeers)},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT},
		})
	}
	for _, f := range pools {
		if len(f.prefixes) == 0 {
			continue
		}
		sets = append(sets, prefixSet(f.set, f.prefixes, f.maxLen))
		imp = append(imp, &api.Statement{
			Name:       "accept-" + f.set,
			Conditions: &api.Conditions{PrefixSet: matchAny(f.set)},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
		})
		if len(in.reflectTo) > 0 {
			exp = append(exp, &api.Statement{
				Name: "reflect-" + f.set,
				Conditions: &api.Conditions{
					RouteType:   api.Conditions_ROUTE_TYPE_INTERNAL,
					PrefixSet:   matchAny(f.set),
					NeighborSet: matchAny(setIBGPPeers),
				},
				Actions: &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
			})
		}
	}
	return &api.SetPoliciesRequest{
		DefinedSets: sets,
		Policies: []*api.Policy{
			{Name: importPolicyName, Statements: imp},
			{Name: exportPolicyName, Statements: exp},
		},
	}
}

// acceptOwnOfClusterPeer accepts, inside the pools of poolSet, the paths
// another reflector of our cluster, peer, originates: those whose next hop
// is its own address. Not the address of any reflector of the cluster:
// what peer sends with another one's next hop, it reflects. The statement
// after these rejects the rest from them (what they reflect: RFC 4456
// section 8).
func acceptOwnOfClusterPeer(peer netip.Addr, poolSet string) *api.Statement {
	return &api.Statement{
		Name: "accept-own-of-cluster-peer-" + peer.String() + "-" + poolSet,
		Conditions: &api.Conditions{
			NeighborSet:   matchAny(clusterPeerSet(peer)),
			NextHopInList: hostPrefixes([]netip.Addr{peer}),
			PrefixSet:     matchAny(poolSet),
		},
		Actions: &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
	}
}

// clusterPeerSet names the neighbour set of one reflector of our cluster.
func clusterPeerSet(peer netip.Addr) string {
	return "cairn-cluster-peer-" + peer.String()
}

// globalAssignments binds the two policies to the global RIB with an
// explicit reject default in both directions (GoBGP's default is accept).
func globalAssignments() []*api.PolicyAssignment {
	return []*api.PolicyAssignment{
		{
			Name:          "global",
			Direction:     api.PolicyDirection_POLICY_DIRECTION_IMPORT,
			Policies:      []*api.Policy{{Name: importPolicyName}},
			DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT,
		},
		{
			Name:          "global",
			Direction:     api.PolicyDirection_POLICY_DIRECTION_EXPORT,
			Policies:      []*api.Policy{{Name: exportPolicyName}},
			DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT,
		},
	}
}

// prefixSet matches each prefix and, up to maxLen, everything inside it; the
// minimum length is the prefix's own, so a pool never matches its covers.
func prefixSet(name string, prefixes []netip.Prefix, maxLen int) *api.DefinedSet {
	ds := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: name}
	for _, p := range prefixes {
		hi := max(maxLen, p.Bits())
		ds.Prefixes = append(ds.Prefixes, &api.Prefix{
			IpPrefix:      p.String(),
			MaskLengthMin: uint32(p.Bits()),
			MaskLengthMax: uint32(hi),
		})
	}
	return ds
}

func neighborSet(name string, addrs []netip.Addr) *api.DefinedSet {
	return &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: name, List: hostPrefixes(addrs)}
}

// hostPrefixes are the addresses as host prefixes (/32, /128), the form
// of GoBGP's neighbour sets and next-hop lists.
func hostPrefixes(addrs []netip.Addr) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = netip.PrefixFrom(a, a.BitLen()).String()
	}
	return out
}

func rejectStatement(name, set string) *api.Statement {
	return &api.Statement{
		Name:       name,
		Conditions: &api.Conditions{PrefixSet: matchAny(set)},
		Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT},
	}
}

func matchAny(set string) *api.MatchSet {
	return &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: set}
}

// describePolicy summarises a policy input for logs.
func describePolicy(in policyInput) []any {
	pools := make([]string, len(in.pools))
	for i, p := range in.pools {
		pools[i] = p.String()
	}
	return []any{"pools", pools, "reflectToPeers", len(in.reflectTo), "peersWithExportRejects", len(in.exportRejects), "clusterPeers", len(in.clusterPeers), "peersWithImportRules", len(in.importRules), "reflectToPeersWithExportRules", len(in.reflectedExportRules)}
}
