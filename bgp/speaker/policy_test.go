package speaker

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/osrg/gobgp/v4/api"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func TestNormalizeImportFilter(t *testing.T) {
	cases := []struct {
		name        string
		in          []netip.Prefix
		kept, dropd []netip.Prefix
	}{
		{name: "empty"},
		{name: "sorted, masked, deduplicated",
			in:   prefixes("fd00:10:244::/48", "10.244.0.0/16", "10.244.3.7/16", "10.0.0.0/8"),
			kept: prefixes("10.0.0.0/8", "10.244.0.0/16", "fd00:10:244::/48")},
		{name: "default routes dropped", in: prefixes("0.0.0.0/0", "::/0", "10.244.0.0/16"),
			kept: prefixes("10.244.0.0/16"), dropd: prefixes("0.0.0.0/0", "::/0")},
		{name: "invalid dropped", in: []netip.Prefix{{}}, dropd: []netip.Prefix{{}}},
		{name: "v4-mapped unmapped", in: prefixes("::ffff:10.244.0.0/112"), kept: prefixes("10.244.0.0/16")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kept, dropd := normalizeImportFilter(tc.in)
			if !slices.Equal(kept, tc.kept) || !slices.Equal(dropd, tc.dropd) {
				t.Errorf("got kept=%v dropped=%v, want %v %v", kept, dropd, tc.kept, tc.dropd)
			}
		})
	}
}

func TestImportable(t *testing.T) {
	pools := prefixes("10.244.0.0/16", "fd00:10:244::/48")
	cases := []struct {
		prefix string
		want   bool
	}{
		{"10.244.1.0/26", true},
		{"10.244.9.7/32", true},
		{"10.244.0.0/16", true},  // the pool itself
		{"10.244.0.0/15", false}, // covers the pool
		{"10.0.0.0/8", false},
		{"192.0.2.0/24", false},
		{"0.0.0.0/0", false},
		{"::/0", false},
		{"fd00:10:244:1::/64", true},
		{"fd00:10:245::/64", false},
		{"::ffff:10.244.1.0/122", false}, // IPv4-mapped is not the IPv4 pool
	}
	for _, tc := range cases {
		if got := importable(netip.MustParsePrefix(tc.prefix), pools); got != tc.want {
			t.Errorf("importable(%s) = %v, want %v", tc.prefix, got, tc.want)
		}
	}
	if importable(netip.MustParsePrefix("0.0.0.0/0"), prefixes("0.0.0.0/0")) {
		t.Error("a default route is importable when a /0 is allowed")
	}
	if importable(netip.MustParsePrefix("10.244.1.0/26"), nil) {
		t.Error("something is importable with an empty filter")
	}
}

// statements indexes a policy's statements by name, keeping order.
func statements(t *testing.T, req *api.SetPoliciesRequest, policy string) []*api.Statement {
	t.Helper()
	for _, p := range req.Policies {
		if p.Name == policy {
			return p.Statements
		}
	}
	t.Fatalf("policy %s missing", policy)
	return nil
}

func names(sts []*api.Statement) []string {
	out := make([]string, len(sts))
	for i, s := range sts {
		out[i] = s.Name
	}
	return out
}

func definedSet(req *api.SetPoliciesRequest, name string) *api.DefinedSet {
	for _, ds := range req.DefinedSets {
		if ds.Name == name {
			return ds
		}
	}
	return nil
}

func TestBuildPolicy(t *testing.T) {
	rr := []netip.Addr{peerA, peerB}
	cases := []struct {
		name       string
		in         policyInput
		wantImport []string
		wantExport []string
		wantSets   []string
	}{
		{
			name:       "nothing allowed: only rejects and own routes",
			wantImport: []string{"reject-default-v4", "reject-default-v6", "import-own"},
			wantExport: []string{"export-reject-default-v4", "export-reject-default-v6", "export-own"},
			wantSets:   []string{setDefaultV4, setDefaultV6},
		},
		{
			name:       "v4 pool only: no empty v6 set",
			in:         policyInput{pools: prefixes("10.244.0.0/16")},
			wantImport: []string{"reject-default-v4", "reject-default-v6", "import-own", "accept-" + setPoolsV4},
			wantExport: []string{"export-reject-default-v4", "export-reject-default-v6", "export-own"},
			wantSets:   []string{setDefaultV4, setDefaultV6, setPoolsV4},
		},
		{
			name:       "dual stack with route reflection",
			in:         policyInput{pools: prefixes("10.244.0.0/16", "fd00::/48"), reflectTo: rr},
			wantImport: []string{"reject-default-v4", "reject-default-v6", "import-own", "accept-" + setPoolsV4, "accept-" + setPoolsV6},
			wantExport: []string{"export-reject-default-v4", "export-reject-default-v6", "export-own", "reflect-" + setPoolsV4, "reflect-" + setPoolsV6},
			wantSets:   []string{setDefaultV4, setDefaultV6, setIBGPPeers, setPoolsV4, setPoolsV6},
		},
		{
			name: "a reflector of our cluster: only its own routes, before the pools accept anything",
			in:   policyInput{pools: prefixes("10.244.0.0/16", "fd00::/48"), reflectTo: rr, clusterPeers: []netip.Addr{peerA}},
			wantImport: []string{"reject-default-v4", "reject-default-v6", "import-own",
				"accept-own-of-cluster-peer-10.0.0.2-" + setPoolsV4, "accept-own-of-cluster-peer-10.0.0.2-" + setPoolsV6, "reject-reflected-by-cluster-peers",
				"accept-" + setPoolsV4, "accept-" + setPoolsV6},
			wantExport: []string{"export-reject-default-v4", "export-reject-default-v6", "export-own", "reflect-" + setPoolsV4, "reflect-" + setPoolsV6},
			wantSets:   []string{setDefaultV4, setDefaultV6, setIBGPPeers, setClusterPeers, "cairn-cluster-peer-10.0.0.2", setPoolsV4, setPoolsV6},
		},
		{
			name:       "reflection without pools reflects nothing",
			in:         policyInput{reflectTo: rr},
			wantImport: []string{"reject-default-v4", "reject-default-v6", "import-own"},
			wantExport: []string{"export-reject-default-v4", "export-reject-default-v6", "export-own"},
			wantSets:   []string{setDefaultV4, setDefaultV6, setIBGPPeers},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := buildPolicy(tc.in)
			if got := names(statements(t, req, importPolicyName)); !slices.Equal(got, tc.wantImport) {
				t.Errorf("import statements %v, want %v", got, tc.wantImport)
			}
			if got := names(statements(t, req, exportPolicyName)); !slices.Equal(got, tc.wantExport) {
				t.Errorf("export statements %v, want %v", got, tc.wantExport)
			}
			var sets []string
			for _, ds := range req.DefinedSets {
				sets = append(sets, ds.Name)
				if len(ds.Prefixes) == 0 && len(ds.List) == 0 {
					t.Errorf("empty defined set %s (an empty neighbor set matches everyone)", ds.Name)
				}
			}
			if !slices.Equal(sets, tc.wantSets) {
				t.Errorf("sets %v, want %v", sets, tc.wantSets)
			}
			checkPolicyInvariants(t, req)
		})
	}
}

// checkPolicyInvariants holds for every policy the speaker may install.
func checkPolicyInvariants(t *testing.T, req *api.SetPoliciesRequest) {
	t.Helper()
	for _, pol := range []string{importPolicyName, exportPolicyName} {
		sts := statements(t, req, pol)
		// Default routes are rejected before anything can accept them.
		for i, s := range sts[:2] {
			if s.Actions.RouteAction != api.RouteAction_ROUTE_ACTION_REJECT || s.Conditions.PrefixSet == nil {
				t.Errorf("%s statement %d is %s, want a default-route reject", pol, i, s.Name)
			}
		}
		for _, s := range sts {
			if s.Conditions.NeighborSet != nil && definedSet(req, s.Conditions.NeighborSet.Name) == nil {
				t.Errorf("%s statement %s uses undefined neighbor set", pol, s.Name)
			}
			if pol == importPolicyName && s.Actions.RouteAction == api.RouteAction_ROUTE_ACTION_ACCEPT &&
				s.Conditions.PrefixSet == nil && s.Conditions.RouteType != api.Conditions_ROUTE_TYPE_LOCAL {
				t.Errorf("import statement %s accepts learned routes without a prefix condition", s.Name)
			}
			if pol == exportPolicyName && s.Actions.RouteAction == api.RouteAction_ROUTE_ACTION_ACCEPT &&
				s.Conditions.RouteType == api.Conditions_ROUTE_TYPE_INTERNAL && s.Conditions.NeighborSet == nil {
				t.Errorf("export statement %s redistributes learned routes to every peer", s.Name)
			}
			if pol == exportPolicyName && s.Conditions.RouteType == api.Conditions_ROUTE_TYPE_EXTERNAL {
				t.Errorf("export statement %s touches eBGP-learned routes", s.Name)
			}
		}
	}
	for _, ds := range req.DefinedSets {
		var fam4, fam6 bool
		for _, p := range ds.Prefixes {
			pfx := netip.MustParsePrefix(p.IpPrefix)
			fam4, fam6 = fam4 || pfx.Addr().Is4(), fam6 || pfx.Addr().Is6()
			// GoBGP never matches a route shorter than an entry's
			// prefix: a lower minimum would only mislead a reader.
			if int(p.MaskLengthMin) < pfx.Bits() || p.MaskLengthMin > p.MaskLengthMax || pfx != pfx.Masked() {
				t.Errorf("set %s: %s lengths %d..%d, want from at least its own length", ds.Name, p.IpPrefix, p.MaskLengthMin, p.MaskLengthMax)
			}
		}
		if fam4 && fam6 {
			t.Errorf("set %s mixes families (GoBGP rejects it)", ds.Name)
		}
	}
}

func TestBuildPolicyPrefixRanges(t *testing.T) {
	req := buildPolicy(policyInput{pools: prefixes("10.244.0.0/16", "fd00::/48")})
	for name, want := range map[string]*api.Prefix{
		setDefaultV4: {IpPrefix: "0.0.0.0/0", MaskLengthMin: 0, MaskLengthMax: 0},
		setDefaultV6: {IpPrefix: "::/0", MaskLengthMin: 0, MaskLengthMax: 0},
		setPoolsV4:   {IpPrefix: "10.244.0.0/16", MaskLengthMin: 16, MaskLengthMax: 32},
		setPoolsV6:   {IpPrefix: "fd00::/48", MaskLengthMin: 48, MaskLengthMax: 128},
	} {
		ds := definedSet(req, name)
		if ds == nil || len(ds.Prefixes) != 1 {
			t.Fatalf("set %s = %v", name, ds)
		}
		got := ds.Prefixes[0]
		if got.IpPrefix != want.IpPrefix || got.MaskLengthMin != want.MaskLengthMin || got.MaskLengthMax != want.MaskLengthMax {
			t.Errorf("set %s = %v, want %v", name, got, want)
		}
	}
}

func TestPolicyInputFor(t *testing.T) {
	ibgp := Peer{Address: peerA, ASN: 64512}
	client := Peer{Address: peerB, ASN: 64512, RouteReflectorClient: true}
	ebgp := Peer{Address: netip.MustParseAddr("10.0.0.9"), ASN: 65001}
	pools := prefixes("10.244.0.0/16")
	cases := []struct {
		name  string
		peers []Peer
		want  []netip.Addr
	}{
		{name: "mesh without clients reflects nowhere", peers: []Peer{ibgp, ebgp}},
		{name: "a client makes every iBGP peer a reflection target, never eBGP", peers: []Peer{ibgp, client, ebgp}, want: []netip.Addr{peerA, peerB}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := validatePeers(tc.peers, 64512)
			if err != nil {
				t.Fatal(err)
			}
			in := policyInputFor(pools, m, 64512, nil)
			if !slices.Equal(in.reflectTo, tc.want) || !slices.Equal(in.pools, pools) {
				t.Errorf("got %+v, want reflectTo %v", in, tc.want)
			}
		})
	}
}

// TestClusterPeersImportOnlyTheirOwn: from another reflector of our
// cluster a path is accepted only inside the pools and with that
// reflector's own address as next hop, not another reflector's of the
// cluster (that one it reflects); anything else from it is rejected before
// the pools could accept it (RFC 4456 section 8, which GoBGP leaves undone
// on receipt). Import rules' Accepts for it keep the same condition.
func TestClusterPeersImportOnlyTheirOwn(t *testing.T) {
	const a, b, client = "10.0.0.2", "10.0.0.3", "10.0.0.9"
	plain := policyInput{pools: prefixes("10.244.0.0/16"), clusterPeers: []netip.Addr{peerA, peerB}}
	withRule := plain
	withRule.importRules = map[netip.Addr][]FilterRule{peerA: {rule("", FilterAccept, MatchIn, "10.244.0.0/16", false, 0, 0)}}
	cases := []struct {
		name          string
		from, nextHop string
		prefix        string
		want          bool
	}{
		{"A's own block", a, a, "10.244.1.0/26", true},
		{"B's own block", b, b, "10.244.2.0/26", true},
		{"from A with B's next hop: reflected", a, b, "10.244.2.0/26", false},
		{"from B with A's next hop: reflected", b, a, "10.244.1.0/26", false},
		{"from A with a client's next hop: reflected", a, client, "10.244.3.0/26", false},
		{"A's own, outside the pools", a, a, "192.168.0.0/24", false},
		{"a client's block from the client", client, client, "10.244.3.0/26", true},
	}
	for _, in := range []struct {
		name string
		in   policyInput
	}{{"cluster peers", plain}, {"an import Accept rule on A", withRule}} {
		for i, r := range in.in.importRules[peerA] {
			in.in.importRules[peerA][i], _ = validateRule(r)
		}
		req := buildPolicy(in.in)
		checkPolicyInvariants(t, req)
		for _, tc := range cases {
			got, by := evalPolicy(t, req, importPolicyName, testRoute{neighbor: tc.from, prefix: tc.prefix, nextHop: tc.nextHop})
			if got != tc.want {
				t.Errorf("%s: %s: accepted %v (by %q), want %v", in.name, tc.name, got, by, tc.want)
			}
		}
	}
}
