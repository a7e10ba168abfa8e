package speaker

import (
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/osrg/gobgp/v4/api"
	gobgp "github.com/osrg/gobgp/v4/pkg/server"
)

// rule builds a FilterRule from a compact form: action, operator, cidr
// ("" for none), the family from the cidr or v6.
func rule(src string, action FilterAction, match MatchOperator, cidr string, v6 bool, minLen, maxLen int) FilterRule {
	r := FilterRule{Source: src, Action: action, Match: match, IPv6: v6, MinLen: minLen, MaxLen: maxLen}
	if cidr != "" {
		r.CIDR = netip.MustParsePrefix(cidr)
	}
	return r
}

// TestFilterRuleMatches is each operator and length bound on its own.
func TestFilterRuleMatches(t *testing.T) {
	cases := []struct {
		name   string
		rule   FilterRule
		prefix string
		want   bool
	}{
		{"all of its family", rule("", FilterReject, MatchAll, "", false, 0, 0), "192.0.2.0/24", true},
		{"all never matches the other family", rule("", FilterReject, MatchAll, "", false, 0, 0), "2001:db8::/32", false},
		{"all v6", rule("", FilterReject, MatchAll, "", true, 0, 0), "2001:db8::/32", true},
		{"equal: the cidr", rule("", FilterReject, MatchEqual, "10.244.0.0/16", false, 0, 0), "10.244.0.0/16", true},
		{"equal: a more-specific is not", rule("", FilterReject, MatchEqual, "10.244.0.0/16", false, 0, 0), "10.244.1.0/26", false},
		{"not equal: a more-specific", rule("", FilterReject, MatchNotEqual, "10.244.0.0/16", false, 0, 0), "10.244.1.0/26", true},
		{"not equal: the cidr is not", rule("", FilterReject, MatchNotEqual, "10.244.0.0/16", false, 0, 0), "10.244.0.0/16", false},
		{"in: the cidr itself", rule("", FilterReject, MatchIn, "10.244.0.0/16", false, 0, 0), "10.244.0.0/16", true},
		{"in: a more-specific", rule("", FilterReject, MatchIn, "10.244.0.0/16", false, 0, 0), "10.244.9.7/32", true},
		{"in: a cover is not inside", rule("", FilterReject, MatchIn, "10.244.0.0/16", false, 0, 0), "10.0.0.0/8", false},
		{"in: disjoint", rule("", FilterReject, MatchIn, "10.244.0.0/16", false, 0, 0), "10.245.0.0/24", false},
		{"not in: disjoint", rule("", FilterReject, MatchNotIn, "10.244.0.0/16", false, 0, 0), "10.245.0.0/24", true},
		{"not in: a cover", rule("", FilterReject, MatchNotIn, "10.244.0.0/16", false, 0, 0), "0.0.0.0/0", true},
		{"not in: inside is not", rule("", FilterReject, MatchNotIn, "10.244.0.0/16", false, 0, 0), "10.244.3.0/24", false},
		{"not in: other family never", rule("", FilterReject, MatchNotIn, "10.244.0.0/16", false, 0, 0), "fd00::/64", false},
		{"length: inside the range", rule("", FilterReject, MatchIn, "10.244.0.0/16", false, 26, 28), "10.244.1.0/26", true},
		{"length: above max", rule("", FilterReject, MatchIn, "10.244.0.0/16", false, 26, 28), "10.244.1.1/32", false},
		{"length: below min", rule("", FilterReject, MatchIn, "10.244.0.0/16", false, 26, 28), "10.244.1.0/24", false},
		{"length only, no cidr", rule("", FilterReject, MatchAll, "", false, 25, 0), "192.0.2.1/32", true},
		{"length only, too short", rule("", FilterReject, MatchAll, "", false, 25, 0), "192.0.2.0/24", false},
		{"not in with a length bound", rule("", FilterReject, MatchNotIn, "10.244.0.0/16", false, 32, 32), "192.0.2.1/32", true},
		{"not in with a length bound, too short", rule("", FilterReject, MatchNotIn, "10.244.0.0/16", false, 32, 32), "192.0.2.0/24", false},
		{"v6 in", rule("", FilterReject, MatchIn, "fd00:244::/48", true, 0, 0), "fd00:244::40/122", true},
		{"v6 max 0 means 128", rule("", FilterReject, MatchIn, "fd00:244::/48", true, 0, 0), "fd00:244::1/128", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := validateRule(tc.rule)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.matches(netip.MustParsePrefix(tc.prefix)); got != tc.want {
				t.Errorf("%+v matches %s = %v, want %v", tc.rule, tc.prefix, got, tc.want)
			}
		})
	}
}

// TestFilterRefusal is the order of evaluation: first match decides,
// Accept stops the evaluation without refusing, no match refuses nothing.
func TestFilterRefusal(t *testing.T) {
	// Two BGPFilters in the order a BGPPeer names them.
	rules := []FilterRule{
		rule("BGPFilter a importV4[0]", FilterAccept, MatchEqual, "10.244.0.0/16", false, 0, 0),
		rule("BGPFilter a importV4[1]", FilterReject, MatchIn, "10.244.0.0/16", false, 27, 0),
		rule("BGPFilter a importV6[0]", FilterReject, MatchAll, "", true, 0, 0),
		rule("BGPFilter b importV4[0]", FilterReject, MatchNotIn, "10.0.0.0/8", false, 0, 0),
		rule("BGPFilter b importV4[1]", FilterReject, MatchIn, "10.244.1.0/26", false, 0, 0),
	}
	cases := []struct {
		prefix string
		want   string // the refusing rule; "" not refused
	}{
		{"10.244.0.0/16", ""},                         // accepted by a[0] before b[0] or a[1] could refuse
		{"10.244.1.0/26", "BGPFilter b importV4[1]"},  // a's rules do not match, b[1] does
		{"10.244.1.7/32", "BGPFilter a importV4[1]"},  // first match in the first filter
		{"10.244.2.0/26", ""},                         // matches nothing: left to the normal decision
		{"192.0.2.0/24", "BGPFilter b importV4[0]"},   // the second filter
		{"fd00:244::/122", "BGPFilter a importV6[0]"}, // IPv4 rules never see it
		{"10.244.1.0/255.255.255.192", ""},            // not a prefix: nothing matches
	}
	for _, tc := range cases {
		p, err := netip.ParsePrefix(tc.prefix)
		if err != nil {
			if tc.want != "" {
				t.Fatal(err)
			}
			continue
		}
		got := filterRefusal(rules, p)
		if (tc.want == "") != (got == "") || !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: refusal %q, want by %q", tc.prefix, got, tc.want)
		}
	}
	if got := filterRefusal(nil, netip.MustParsePrefix("0.0.0.0/0")); got != "" {
		t.Errorf("no rules refuse %q", got)
	}
}

func TestValidateFilters(t *testing.T) {
	cases := []struct {
		name string
		rule FilterRule
		err  string
	}{
		{"ok", rule("x", FilterReject, MatchIn, "10.244.1.7/16", false, 0, 0), ""},
		{"cidr of the other family", rule("x", FilterReject, MatchIn, "fd00::/48", false, 0, 0), "family"},
		{"operator without cidr", rule("x", FilterReject, MatchIn, "", false, 0, 0), "needs a CIDR"},
		{"min above max", rule("x", FilterReject, MatchAll, "", false, 28, 24), "not a range"},
		{"max beyond the family", rule("x", FilterReject, MatchAll, "", false, 0, 33), "not a range"},
		{"negative", rule("x", FilterReject, MatchAll, "", false, -1, 0), "not a range"},
		{"unknown action", FilterRule{Action: 7}, "unknown action"},
		{"unknown operator", FilterRule{Match: 9}, "unknown match"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := validateFilters(&Filters{Export: []FilterRule{tc.rule}})
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if out.Export[0].CIDR != out.Export[0].CIDR.Masked() {
					t.Errorf("cidr not masked: %s", out.Export[0].CIDR)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("err %v, want one saying %q", err, tc.err)
			}
		})
	}
}

// TestFiltersDoNotResetSessions: a peer whose filters alone changed is
// not re-created; any session setting still is.
func TestFiltersDoNotResetSessions(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.1")
	old := Peer{Address: a, ASN: 65001, Filters: &Filters{Import: []FilterRule{rule("x", FilterReject, MatchAll, "", false, 0, 0)}}}
	filtersOnly := old
	filtersOnly.Filters = &Filters{Export: []FilterRule{rule("y", FilterReject, MatchAll, "", true, 0, 0)}}
	if pl := diffPeers(map[netip.Addr]Peer{a: filtersOnly}, map[netip.Addr]Peer{a: old}); !pl.empty() {
		t.Errorf("filters changed: plan %+v, want nothing", pl)
	}
	timers := filtersOnly
	timers.HoldTime = 9e9
	if pl := diffPeers(map[netip.Addr]Peer{a: timers}, map[netip.Addr]Peer{a: old}); len(pl.Replace) != 1 {
		t.Errorf("hold time changed: plan %+v, want a replace", pl)
	}
}

// TestImportFilterRefusal: the peer's import rules refuse its paths
// beside the pool filter and the owner-only rule, and only its own.
func TestImportFilterRefusal(t *testing.T) {
	tor, other := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	f := learnedFilter{localASN: 64512, pools: prefixes("10.244.0.0/16"), holdings: indexHoldings(nil),
		peers: map[netip.Addr]Peer{
			tor: {Address: tor, Filters: &Filters{Import: []FilterRule{
				rule("BGPFilter tor importV4[0]", FilterReject, MatchIn, "10.244.7.0/24", false, 0, 0),
				rule("BGPFilter tor importV4[1]", FilterAccept, MatchAll, "", false, 0, 0),
			}}},
			other: {Address: other},
		}}
	cases := []struct {
		peer   netip.Addr
		prefix string
		want   string
	}{
		{tor, "10.244.7.0/26", "import filter: BGPFilter tor importV4[0] rejects it"},
		{other, "10.244.7.0/26", ""},                                   // another peer's filters do not apply
		{tor, "10.244.8.0/26", ""},                                     // accepted by the filter, inside the pool
		{tor, "192.0.2.0/24", "outside every IP pool (import filter)"}, // Accept does not widen the import
	}
	for _, tc := range cases {
		c := candidate{Prefix: netip.MustParsePrefix(tc.prefix), NextHop: tc.peer, Peer: tc.peer}
		if got := f.refusal(c); got != tc.want {
			t.Errorf("%s from %s: refusal %q, want %q", tc.prefix, tc.peer, got, tc.want)
		}
		if f.usable(c) != (tc.want == "") {
			t.Errorf("%s from %s: usable %v", tc.prefix, tc.peer, f.usable(c))
		}
	}
	// The refused path twice: from the RIB and, kept out by GoBGP's
	// policy, from the peer's Adj-RIB-In. It is one refused path.
	accepted, refused, total := judgeImports([]candidate{
		{Prefix: netip.MustParsePrefix("10.244.7.0/26"), NextHop: tor, Peer: tor},
		{Prefix: netip.MustParsePrefix("10.244.8.0/26"), NextHop: tor, Peer: tor},
		{Prefix: netip.MustParsePrefix("10.244.7.0/26"), NextHop: tor, Peer: tor},
	}, f, 10)
	if accepted[tor] != 1 || total != 1 || len(refused) != 1 || !strings.Contains(refused[0].Reason, "BGPFilter tor") {
		t.Errorf("judged accepted=%v refused=%v total=%d", accepted, refused, total)
	}
}

// TestExportRejects: which of our prefixes each peer's export rules
// refuse, and which peers need re-sending when that changes.
func TestExportRejects(t *testing.T) {
	tor, mesh := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("10.0.0.2")
	block, other, v6 := netip.MustParsePrefix("10.244.1.0/26"), netip.MustParsePrefix("10.244.2.0/26"), netip.MustParsePrefix("fd00:244::/122")
	peers := map[netip.Addr]Peer{
		tor: {Address: tor, Filters: &Filters{Export: []FilterRule{
			rule("BGPFilter tor exportV4[0]", FilterReject, MatchEqual, "10.244.1.0/26", false, 0, 0),
			rule("BGPFilter tor exportV6[0]", FilterReject, MatchAll, "", true, 0, 0),
		}}},
		mesh: {Address: mesh},
	}
	got := exportRejects(peers, []netip.Prefix{block, other, v6})
	want := map[netip.Addr][]netip.Prefix{tor: {block, v6}}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("rejects %v, want %v", got, want)
	}
	advertised := map[netip.Prefix]adAttrs{block: {}, other: {}}
	for _, tc := range []struct {
		name     string
		old, new map[netip.Addr][]netip.Prefix
		want     []netip.Addr
	}{
		{"unchanged", want, want, nil},
		{"a filter added", nil, want, []netip.Addr{tor}},
		{"a filter removed", want, nil, []netip.Addr{tor}},
		{"only a prefix not advertised differs", want, map[netip.Addr][]netip.Prefix{tor: {block}}, nil},
	} {
		if got := rejectsChangedFor(tc.old, tc.new, advertised); !slices.Equal(got, tc.want) {
			t.Errorf("%s: re-send to %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestExportFilterPolicy: the refusals become reject statements for that
// neighbour alone, ahead of the statement that exports our own paths.
func TestExportFilterPolicy(t *testing.T) {
	tor := netip.MustParseAddr("192.0.2.1")
	req := buildPolicy(policyInput{exportRejects: map[netip.Addr][]netip.Prefix{tor: prefixes("10.244.1.0/26", "fd00:244::/122")}})
	var exp *api.Policy
	for _, p := range req.Policies {
		if p.Name == exportPolicyName {
			exp = p
		}
	}
	var names []string
	for _, s := range exp.Statements {
		names = append(names, s.Name)
	}
	want := []string{"export-reject-default-v4", "export-reject-default-v6",
		"export-filter-192.0.2.1-v4", "export-filter-192.0.2.1-v6", "export-own"}
	if !slices.Equal(names, want) {
		t.Fatalf("export statements %v, want %v", names, want)
	}
	sets := map[string]*api.DefinedSet{}
	for _, s := range req.DefinedSets {
		sets[s.Name] = s
	}
	st := exp.Statements[2]
	ps, ns := sets[st.Conditions.PrefixSet.Name], sets[st.Conditions.NeighborSet.Name]
	if ps == nil || ns == nil || st.Actions.RouteAction != api.RouteAction_ROUTE_ACTION_REJECT {
		t.Fatalf("statement %+v: sets %v %v", st, ps, ns)
	}
	if len(ps.Prefixes) != 1 || ps.Prefixes[0].IpPrefix != "10.244.1.0/26" || ps.Prefixes[0].MaskLengthMin != 26 || ps.Prefixes[0].MaskLengthMax != 26 {
		t.Errorf("prefix set %+v, want exactly 10.244.1.0/26", ps.Prefixes)
	}
	if !slices.Equal(ns.List, []string{"192.0.2.1/32"}) {
		t.Errorf("neighbour set %v", ns.List)
	}
}

// TestFilterPolicyAcceptedByGoBGP: GoBGP takes the policy with export
// filters (own routes and reflected ones) and import rules of both
// families for an IPv4 and an IPv6 neighbour (names with colons, length
// ranges, neighbour, next-hop and route-type conditions), and takes it
// again with them removed (sets replaced).
func TestFilterPolicyAcceptedByGoBGP(t *testing.T) {
	srv := gobgp.NewBgpServer(gobgp.LoggerOption(slog.New(slog.DiscardHandler), nil))
	go srv.Serve()
	defer srv.Stop()
	ctx := context.Background()
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: 64512, RouterId: "10.0.0.1", ListenPort: -1}}); err != nil {
		t.Fatal(err)
	}
	if err := installPolicy(ctx, srv); err != nil {
		t.Fatal(err)
	}
	imp, err := validateFilters(&Filters{Import: []FilterRule{
		rule("", FilterAccept, MatchIn, "10.244.3.0/24", false, 0, 0),
		rule("", FilterReject, MatchNotIn, "10.244.0.0/23", false, 0, 0),
		rule("", FilterAccept, MatchNotEqual, "fd00:244::/64", true, 0, 0),
	}})
	if err != nil {
		t.Fatal(err)
	}
	in := policyInput{pools: prefixes("10.244.0.0/16", "fd00:244::/48"), exportRejects: map[netip.Addr][]netip.Prefix{
		netip.MustParseAddr("192.0.2.1"):   prefixes("10.244.1.0/26", "fd00:244::/122"),
		netip.MustParseAddr("2001:db8::1"): prefixes("fd00:244::/122"),
	}, clusterPeers: []netip.Addr{peerA},
		importRules:          map[netip.Addr][]FilterRule{peerA: imp.Import, netip.MustParseAddr("2001:db8::1"): imp.Import},
		reflectTo:            []netip.Addr{peerA, peerB},
		reflectedExportRules: map[netip.Addr][]FilterRule{peerB: imp.Import}}
	for _, in := range []policyInput{in, {pools: in.pools}, in} {
		if err := srv.SetPolicies(ctx, buildPolicy(in)); err != nil {
			t.Fatalf("set policy %+v: %v", in, err)
		}
	}
}
