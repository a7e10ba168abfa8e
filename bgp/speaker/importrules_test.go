package speaker

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/osrg/gobgp/v4/api"
)

// stmtString is a statement in one line: name, action, neighbour set,
// prefix set entries, next hops.
func stmtString(req *api.SetPoliciesRequest, st *api.Statement) string {
	action := "accept"
	if st.Actions.RouteAction == api.RouteAction_ROUTE_ACTION_REJECT {
		action = "reject"
	}
	s := st.Name + " " + action
	if ns := st.Conditions.NeighborSet; ns != nil {
		s += " from " + strings.Join(definedSet(req, ns.Name).List, ",")
	}
	if ps := st.Conditions.PrefixSet; ps != nil {
		var es []string
		for _, p := range definedSet(req, ps.Name).Prefixes {
			es = append(es, fmt.Sprintf("%s %d..%d", p.IpPrefix, p.MaskLengthMin, p.MaskLengthMax))
		}
		s += " [" + strings.Join(es, ", ") + "]"
	}
	if len(st.Conditions.NextHopInList) > 0 {
		s += " next hop " + strings.Join(st.Conditions.NextHopInList, ",")
	}
	return s
}

// TestImportFilterStatements: each peer's import rules as GoBGP import
// statements for that neighbour alone, in order; an Accept accepts only
// what the normal decision would (the pools, and from a reflector of our
// cluster only its own routes) and rejects the rest of its set.
func TestImportFilterStatements(t *testing.T) {
	tor, tor6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	pools := prefixes("10.244.0.0/16", "fd00:244::/48")
	cases := []struct {
		name string
		in   policyInput
		want []string
	}{
		{name: "no rules, no statements", in: policyInput{pools: pools}},
		{name: "a reject: the rule's set from that peer",
			in: policyInput{pools: pools, importRules: map[netip.Addr][]FilterRule{tor: {
				rule("", FilterReject, MatchIn, "10.244.7.0/24", false, 0, 0)}}},
			want: []string{"import-filter-192.0.2.1-0 reject from 192.0.2.1/32 [10.244.7.0/24 24..32]"}},
		{name: "an accept of everything: the pools accepted, the rest rejected, not left to later statements",
			in: policyInput{pools: pools, importRules: map[netip.Addr][]FilterRule{tor: {
				rule("", FilterAccept, MatchAll, "", false, 0, 0)}}},
			want: []string{
				"import-filter-192.0.2.1-0-accept accept from 192.0.2.1/32 [10.244.0.0/16 16..32]",
				"import-filter-192.0.2.1-0 reject from 192.0.2.1/32 [0.0.0.0/0 0..32]"}},
		{name: "an accept of a range beside the pools: nothing accepted",
			in: policyInput{pools: pools, importRules: map[netip.Addr][]FilterRule{tor: {
				rule("", FilterAccept, MatchIn, "192.168.0.0/16", false, 0, 0)}}},
			want: []string{"import-filter-192.0.2.1-0 reject from 192.0.2.1/32 [192.168.0.0/16 16..32]"}},
		{name: "an accept from a reflector of our cluster: only its own routes, its own address as next hop",
			in: policyInput{pools: pools, clusterPeers: []netip.Addr{peerA, peerB}, importRules: map[netip.Addr][]FilterRule{peerA: {
				rule("", FilterAccept, MatchIn, "10.244.0.0/16", false, 26, 26)}}},
			want: []string{
				"import-filter-10.0.0.2-0-accept accept from 10.0.0.2/32 [10.244.0.0/16 26..26] next hop 10.0.0.2/32",
				"import-filter-10.0.0.2-0 reject from 10.0.0.2/32 [10.244.0.0/16 26..26]"}},
		{name: "rules in order, a rule matching nothing left out, each family its own set",
			in: policyInput{pools: pools, importRules: map[netip.Addr][]FilterRule{tor6: {
				rule("", FilterReject, MatchEqual, "fd00:244::/64", true, 65, 0),
				rule("", FilterAccept, MatchEqual, "fd00:244::/64", true, 0, 0),
				rule("", FilterReject, MatchNotEqual, "fd00:244::/1", true, 1, 3),
			}}},
			want: []string{
				"import-filter-2001:db8::1-1-accept accept from 2001:db8::1/128 [fd00:244::/64 64..64]",
				"import-filter-2001:db8::1-1 reject from 2001:db8::1/128 [fd00:244::/64 64..64]",
				"import-filter-2001:db8::1-2 reject from 2001:db8::1/128 [::/0 2..3, ::/1 1..1]"}},
		{name: "a peer whose rules match nothing: no statement, no neighbour set",
			in: policyInput{pools: pools, importRules: map[netip.Addr][]FilterRule{tor: {
				rule("", FilterReject, MatchNotIn, "0.0.0.0/0", false, 0, 0)}}}},
		{name: "peers in address order",
			in: policyInput{pools: pools, importRules: map[netip.Addr][]FilterRule{
				tor:   {rule("", FilterReject, MatchEqual, "10.244.1.0/26", false, 0, 0)},
				peerA: {rule("", FilterReject, MatchEqual, "10.244.2.0/26", false, 0, 0)},
			}},
			want: []string{
				"import-filter-10.0.0.2-0 reject from 10.0.0.2/32 [10.244.2.0/26 26..26]",
				"import-filter-192.0.2.1-0 reject from 192.0.2.1/32 [10.244.1.0/26 26..26]"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for a, rules := range tc.in.importRules {
				f, err := validateFilters(&Filters{Import: rules})
				if err != nil {
					t.Fatal(err)
				}
				tc.in.importRules[a] = f.Import
			}
			req := buildPolicy(tc.in)
			var got []string
			for _, st := range statements(t, req, importPolicyName) {
				if strings.HasPrefix(st.Name, "import-filter-") {
					got = append(got, stmtString(req, st))
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("statements:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			for _, ds := range req.DefinedSets {
				if len(ds.Prefixes) == 0 && len(ds.List) == 0 {
					t.Errorf("empty defined set %s (an empty neighbor set matches everyone)", ds.Name)
				}
			}
			checkPolicyInvariants(t, req)
		})
	}
}

// TestImportFiltersBeforeTheNormalDecision: the rules' statements come
// after the default-route rejects and our own paths, before the cluster
// peers' and the pools' statements, which would otherwise decide first.
func TestImportFiltersBeforeTheNormalDecision(t *testing.T) {
	req := buildPolicy(policyInput{pools: prefixes("10.244.0.0/16"), clusterPeers: []netip.Addr{peerA},
		importRules: map[netip.Addr][]FilterRule{peerA: {rule("", FilterReject, MatchIn, "10.244.7.0/24", false, 0, 0)}}})
	want := []string{"reject-default-v4", "reject-default-v6", "import-own", "import-filter-10.0.0.2-0",
		"accept-own-of-cluster-peer-10.0.0.2-" + setPoolsV4, "reject-reflected-by-cluster-peers", "accept-" + setPoolsV4}
	if got := names(statements(t, req, importPolicyName)); !slices.Equal(got, want) {
		t.Errorf("import statements %v, want %v", got, want)
	}
}

// TestRulesChangedFor: the peers whose received routes GoBGP must
// judge again after a change, and only those.
func TestRulesChangedFor(t *testing.T) {
	tor := netip.MustParseAddr("192.0.2.1")
	r1 := []FilterRule{rule("a", FilterReject, MatchIn, "10.244.7.0/24", false, 0, 0)}
	r2 := []FilterRule{rule("a", FilterReject, MatchIn, "10.244.8.0/24", false, 0, 0)}
	for _, tc := range []struct {
		name     string
		old, new map[netip.Addr][]FilterRule
		want     []netip.Addr
	}{
		{"unchanged", map[netip.Addr][]FilterRule{tor: r1, peerA: r1}, map[netip.Addr][]FilterRule{tor: r1, peerA: r1}, nil},
		{"one peer's rules changed", map[netip.Addr][]FilterRule{tor: r1, peerA: r1}, map[netip.Addr][]FilterRule{tor: r2, peerA: r1}, []netip.Addr{tor}},
		{"rules added and removed", map[netip.Addr][]FilterRule{tor: r1}, map[netip.Addr][]FilterRule{peerA: r1}, []netip.Addr{peerA, tor}},
	} {
		if got := rulesChangedFor(tc.old, tc.new); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	peers := map[netip.Addr]Peer{tor: {Address: tor, Filters: &Filters{Import: r1, Export: r2}}, peerA: {Address: peerA, Filters: &Filters{Export: r1}}}
	in := policyInputFor(nil, peers, 64512, nil)
	if len(in.importRules) != 1 || !slices.Equal(in.importRules[tor], r1) {
		t.Errorf("import rules %v, want only tor's", in.importRules)
	}
	changed := policyInputFor(nil, map[netip.Addr]Peer{tor: {Address: tor, Filters: &Filters{Import: r2}}, peerA: peers[peerA]}, 64512, nil)
	if in.equal(changed) {
		t.Error("a changed import rule leaves the policy input equal: the policy would not be replaced")
	}
}
