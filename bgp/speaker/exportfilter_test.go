package speaker

import (
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/osrg/gobgp/v4/api"
)

// TestReflectedExportRules: a peer's export rules judge the routes a
// reflector reflects to it as they judge our own: a Reject keeps a route
// from it, an Accept leaves the route to the reflect decision (iBGP-
// learned, inside the pools), and another peer is untouched. Our own
// paths keep their per-prefix rejects (exportRejects). Routes run through
// the built export policy.
func TestReflectedExportRules(t *testing.T) {
	const a, b = "10.0.0.2", "10.0.0.3"
	const internal, local, external = api.Conditions_ROUTE_TYPE_INTERNAL, api.Conditions_ROUTE_TYPE_LOCAL, api.Conditions_ROUTE_TYPE_EXTERNAL
	rules := []FilterRule{
		rule("BGPFilter b-out exportV4[0]", FilterReject, MatchEqual, "10.244.1.0/26", false, 0, 0),
		rule("BGPFilter b-out exportV4[1]", FilterAccept, MatchIn, "10.0.0.0/8", false, 0, 0),
		rule("BGPFilter b-out exportV4[2]", FilterReject, MatchAll, "", false, 0, 0),
		rule("BGPFilter b-out exportV6[0]", FilterReject, MatchIn, "fd00:0:0:7::/64", true, 0, 0),
	}
	for i, r := range rules {
		var err error
		if rules[i], err = validateRule(r); err != nil {
			t.Fatal(err)
		}
	}
	peers := map[netip.Addr]Peer{
		peerA: {Address: peerA, ASN: 64512, RouteReflectorClient: true},
		peerB: {Address: peerB, ASN: 64512, RouteReflectorClient: true, Filters: &Filters{Export: rules}},
	}
	in := policyInputFor(prefixes("10.244.0.0/16", "172.16.0.0/16", "fd00::/48"), peers, 64512, prefixes("10.244.1.0/26", "10.244.9.0/26"))
	req := buildPolicy(in)
	checkPolicyInvariants(t, req)
	cases := []struct {
		name   string
		to     string
		prefix string
		typ    api.Conditions_RouteType
		want   bool
	}{
		{"a reflected route a Reject names", b, "10.244.1.0/26", internal, false},
		{"the same route to the unfiltered client", a, "10.244.1.0/26", internal, true},
		{"a reflected route an Accept names", b, "10.244.2.0/26", internal, true},
		{"a reflected pool route past the Accept, rejected by the last rule", b, "172.16.1.0/26", internal, false},
		{"the same to the unfiltered client", a, "172.16.1.0/26", internal, true},
		{"an Accept never widens: outside the pools", b, "10.99.0.0/24", internal, false},
		{"an Accept never widens: eBGP-learned", b, "10.244.2.0/26", external, false},
		{"a reflected IPv6 route a Reject names", b, "fd00:0:0:7::/120", internal, false},
		{"a reflected IPv6 route no rule names", b, "fd00:0:0:8::/120", internal, true},
		{"our own route a Reject names: exportRejects, as before", b, "10.244.1.0/26", local, false},
		{"our own route an Accept names", b, "10.244.9.0/26", local, true},
	}
	for _, tc := range cases {
		got, by := evalPolicy(t, req, exportPolicyName, testRoute{neighbor: tc.to, prefix: tc.prefix, nextHop: a, typ: tc.typ})
		if got != tc.want {
			t.Errorf("%s: %s to %s: accepted %v (by %q), want %v", tc.name, tc.prefix, tc.to, got, by, tc.want)
		}
	}
	// Where they sit: after export-own, before the reflect statements.
	var order []string
	for _, n := range names(statements(t, req, exportPolicyName)) {
		if i := slices.Index(order, n); i < 0 && (n == "export-own" || n == "export-reflected-10.0.0.3-0" || n == "reflect-"+setPoolsV4) {
			order = append(order, n)
		}
	}
	if want := []string{"export-own", "export-reflected-10.0.0.3-0", "reflect-" + setPoolsV4}; !slices.Equal(order, want) {
		t.Errorf("export statements in order %v, want %v", order, want)
	}
}

// TestReflectedExportRulesOnlyForReflectionTargets: the rules of a peer
// nothing is reflected to (an eBGP router, any peer of a node that
// reflects nothing) make no reflected-route statements; its own-route
// rejects stay.
func TestReflectedExportRulesOnlyForReflectionTargets(t *testing.T) {
	tor := netip.MustParseAddr("192.0.2.1")
	out := &Filters{Export: []FilterRule{rule("", FilterReject, MatchAll, "", false, 0, 0)}}
	cases := []struct {
		name  string
		peers []Peer
		want  []netip.Addr
	}{
		{"an eBGP router of a reflector", []Peer{{Address: tor, ASN: 65001, Filters: out}, {Address: peerA, ASN: 64512, RouteReflectorClient: true}}, nil},
		{"a mesh peer of a node reflecting nothing", []Peer{{Address: peerA, ASN: 64512, Filters: out}}, nil},
		{"a client of a reflector", []Peer{{Address: peerA, ASN: 64512, RouteReflectorClient: true, Filters: out}}, []netip.Addr{peerA}},
		{"a non-client iBGP peer of a reflector", []Peer{{Address: peerA, ASN: 64512, Filters: out}, {Address: peerB, ASN: 64512, RouteReflectorClient: true}}, []netip.Addr{peerA}},
	}
	for _, tc := range cases {
		m, err := validatePeers(tc.peers, 64512)
		if err != nil {
			t.Fatal(err)
		}
		in := policyInputFor(prefixes("10.244.0.0/16"), m, 64512, prefixes("10.244.1.0/26"))
		if got := slices.SortedFunc(maps.Keys(in.reflectedExportRules), netip.Addr.Compare); !slices.Equal(got, tc.want) {
			t.Errorf("%s: reflected-route rules for %v, want %v", tc.name, got, tc.want)
		}
		if len(in.exportRejects) != 1 {
			t.Errorf("%s: own-route rejects %v, want the filtered peer's", tc.name, in.exportRejects)
		}
	}
}

// TestExportChangedFor: the peers re-sent to (soft reset out) after a
// change: those whose verdict on our own advertised prefixes changed, and
// those whose rules for reflected routes changed; no other.
func TestExportChangedFor(t *testing.T) {
	r1 := []FilterRule{rule("a", FilterReject, MatchIn, "10.244.7.0/24", false, 0, 0)}
	r2 := []FilterRule{rule("a", FilterReject, MatchIn, "10.244.8.0/24", false, 0, 0)}
	block := netip.MustParsePrefix("10.244.1.0/26")
	advertised := map[netip.Prefix]adAttrs{block: {}}
	base := policyInput{reflectedExportRules: map[netip.Addr][]FilterRule{peerA: r1, peerB: r1}}
	cases := []struct {
		name string
		new  policyInput
		want []netip.Addr
	}{
		{"unchanged", base, nil},
		{"one client's rules changed", policyInput{reflectedExportRules: map[netip.Addr][]FilterRule{peerA: r1, peerB: r2}}, []netip.Addr{peerB}},
		{"one client's rules removed", policyInput{reflectedExportRules: map[netip.Addr][]FilterRule{peerA: r1}}, []netip.Addr{peerB}},
		{"own-route verdict and reflected rules of the same peer", policyInput{
			reflectedExportRules: map[netip.Addr][]FilterRule{peerA: r2, peerB: r1},
			exportRejects:        map[netip.Addr][]netip.Prefix{peerA: {block}}}, []netip.Addr{peerA}},
	}
	for _, tc := range cases {
		if got := exportChangedFor(base, tc.new, advertised); !slices.Equal(got, tc.want) {
			t.Errorf("%s: re-send to %v, want %v", tc.name, got, tc.want)
		}
	}
}
