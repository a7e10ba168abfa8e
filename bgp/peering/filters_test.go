package peering

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/bgp/speaker"
)

func bgpFilter(name string, spec v1.BGPFilterSpec) v1.BGPFilter {
	return v1.BGPFilter{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

// TestFilterRules: every field of a BGPFilterRule reaches the speaker's
// rule, and what cannot be used is named.
func TestFilterRules(t *testing.T) {
	cases := []struct {
		name string
		rule v1.BGPFilterRule
		v6   bool
		want speaker.FilterRule
		err  string
	}{
		{name: "reject everything", rule: v1.BGPFilterRule{Action: "Reject"},
			want: speaker.FilterRule{Action: speaker.FilterReject}},
		{name: "every operator and the lengths", rule: v1.BGPFilterRule{CIDR: "10.244.1.7/16", MatchOperator: "NotIn", PrefixLength: &v1.PrefixLengthRange{Min: int32p(24), Max: int32p(28)}, Action: "Accept"},
			want: speaker.FilterRule{Match: speaker.MatchNotIn, CIDR: netip.MustParsePrefix("10.244.0.0/16"), MinLen: 24, MaxLen: 28}},
		{name: "equal", rule: v1.BGPFilterRule{CIDR: "10.0.0.0/8", MatchOperator: "Equal", Action: "Reject"},
			want: speaker.FilterRule{Match: speaker.MatchEqual, CIDR: netip.MustParsePrefix("10.0.0.0/8"), Action: speaker.FilterReject}},
		{name: "not equal v6", v6: true, rule: v1.BGPFilterRule{CIDR: "fd00::/48", MatchOperator: "NotEqual", Action: "Reject"},
			want: speaker.FilterRule{IPv6: true, Match: speaker.MatchNotEqual, CIDR: netip.MustParsePrefix("fd00::/48"), Action: speaker.FilterReject}},
		{name: "a cidr alone means In", rule: v1.BGPFilterRule{CIDR: "10.0.0.0/8", Action: "Reject"},
			want: speaker.FilterRule{Match: speaker.MatchIn, CIDR: netip.MustParsePrefix("10.0.0.0/8"), Action: speaker.FilterReject}},
		{name: "only a max length", v6: true, rule: v1.BGPFilterRule{PrefixLength: &v1.PrefixLengthRange{Max: int32p(64)}, Action: "Reject"},
			want: speaker.FilterRule{IPv6: true, MaxLen: 64, Action: speaker.FilterReject}},
		{name: "only a min length", rule: v1.BGPFilterRule{PrefixLength: &v1.PrefixLengthRange{Min: int32p(25)}, Action: "Reject"},
			want: speaker.FilterRule{MinLen: 25, MaxLen: 32, Action: speaker.FilterReject}},
		{name: "other family", rule: v1.BGPFilterRule{CIDR: "fd00::/8", Action: "Reject"}, err: "other address family"},
		{name: "operator without cidr", rule: v1.BGPFilterRule{MatchOperator: "In", Action: "Reject"}, err: "needs a cidr"},
		{name: "bad cidr", rule: v1.BGPFilterRule{CIDR: "10.0.0.0/33", MatchOperator: "In", Action: "Reject"}, err: "cidr"},
		{name: "bad operator", rule: v1.BGPFilterRule{CIDR: "10.0.0.0/8", MatchOperator: "Within", Action: "Reject"}, err: "Within"},
		{name: "bad action", rule: v1.BGPFilterRule{Action: "Drop"}, err: "Drop"},
		{name: "empty range", rule: v1.BGPFilterRule{PrefixLength: &v1.PrefixLengthRange{Min: int32p(28), Max: int32p(24)}, Action: "Reject"}, err: "above max"},
		{name: "too long", rule: v1.BGPFilterRule{PrefixLength: &v1.PrefixLengthRange{Max: int32p(33)}, Action: "Reject"}, err: "longer than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := v1.BGPFilterSpec{ExportV4: []v1.BGPFilterRule{tc.rule}}
			list := "exportV4"
			if tc.v6 {
				spec, list = v1.BGPFilterSpec{ExportV6: []v1.BGPFilterRule{tc.rule}}, "exportV6"
			}
			f := bgpFilter("f", spec)
			got, err := FilterRules(&f)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), list+"[0]") {
					t.Fatalf("err %v, want one naming %s[0] and %q", err, list, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Source = "BGPFilter f " + list + "[0]"
			if len(got.Import) != 0 || len(got.Export) != 1 || got.Export[0] != tc.want {
				t.Errorf("got %+v, want export %+v", got, tc.want)
			}
		})
	}
}

// TestPeerFilters: the rules of the filters a BGPPeer names, in its
// order, on every session it makes; a missing or invalid one makes those
// sessions refuse everything, and says so.
func TestPeerFilters(t *testing.T) {
	a := bgpFilter("a", v1.BGPFilterSpec{
		ImportV4: []v1.BGPFilterRule{{CIDR: "10.244.0.0/16", MatchOperator: "NotIn", Action: "Reject"}},
		ExportV6: []v1.BGPFilterRule{{Action: "Reject"}},
	})
	b := bgpFilter("b", v1.BGPFilterSpec{
		ImportV6: []v1.BGPFilterRule{{Action: "Accept"}},
		ImportV4: []v1.BGPFilterRule{{Action: "Reject"}},
	})
	bad := bgpFilter("bad", v1.BGPFilterSpec{ImportV4: []v1.BGPFilterRule{{CIDR: "fd00::/8", Action: "Reject"}}})
	filters := []v1.BGPFilter{a, b, bad}
	tor := func(names ...string) v1.BGPPeer {
		return bgpPeer("tor", v1.BGPPeerSpec{PeerIP: "172.30.1.1", ASNumber: 65001, Filters: names})
	}
	sources := func(rs []speaker.FilterRule) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Source)
		}
		return out
	}
	for _, tc := range []struct {
		name           string
		peer           v1.BGPPeer
		import_, expor []string
		err            string
	}{
		{name: "none", peer: tor()},
		{name: "in the peer's order", peer: tor("b", "a"),
			import_: []string{"BGPFilter b importV4[0]", "BGPFilter b importV6[0]", "BGPFilter a importV4[0]"},
			expor:   []string{"BGPFilter a exportV6[0]"}},
		{name: "missing", peer: tor("a", "gone"),
			import_: []string{"BGPPeer tor: BGPFilter gone does not exist", "BGPPeer tor: BGPFilter gone does not exist"},
			expor:   []string{"BGPPeer tor: BGPFilter gone does not exist", "BGPPeer tor: BGPFilter gone does not exist"},
			err:     "BGPFilter gone, which does not exist"},
		{name: "invalid", peer: tor("bad"),
			import_: []string{"BGPPeer tor: BGPFilter bad is invalid", "BGPPeer tor: BGPFilter bad is invalid"},
			expor:   []string{"BGPPeer tor: BGPFilter bad is invalid", "BGPPeer tor: BGPFilter bad is invalid"},
			err:     "importV4[0]: cidr fd00::/8 is of the other address family"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peers, errs := Peers(PeersInput{Self: n1, Config: cfg(false), Peers: []v1.BGPPeer{tc.peer}, Filters: filters}, nil)
			if len(peers) != 1 {
				t.Fatalf("peers %+v", peers)
			}
			if tc.err == "" && len(errs) > 0 || tc.err != "" && (len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.err)) {
				t.Fatalf("errs %v, want %q", errs, tc.err)
			}
			f := peers[0].Filters
			if tc.import_ == nil && tc.expor == nil {
				if f != nil {
					t.Fatalf("filters %+v, want none", f)
				}
				return
			}
			if !slices.Equal(sources(f.Import), tc.import_) || !slices.Equal(sources(f.Export), tc.expor) {
				t.Errorf("import %v export %v, want %v %v", sources(f.Import), sources(f.Export), tc.import_, tc.expor)
			}
		})
	}
}
