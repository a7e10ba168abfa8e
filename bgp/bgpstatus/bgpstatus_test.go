package bgpstatus

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
)

func sess(peer, ip, state string, problem v1.SessionProblem, reason string) v1.BGPSessionStatus {
	name := "peer:" + peer
	if peer == "" {
		name = "mesh:" + ip
	}
	typ := "BGPPeer"
	if peer == "" {
		typ = "NodeMesh"
	}
	return v1.BGPSessionStatus{Name: name, BGPPeer: peer, Type: typ, PeerIP: ip, State: state, Problem: problem, Reason: reason}
}

func cond(conds []metav1.Condition, typ string) string {
	c := meta.FindStatusCondition(conds, typ)
	if c == nil {
		return "<none>"
	}
	return string(c.Status) + "/" + c.Reason
}

// TestPeer: a BGPPeer's counts and conditions from the nodes' reports.
func TestPeer(t *testing.T) {
	tor := &v1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "tor", Generation: 3}, Spec: v1.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: 65001}}
	withFilters := tor.DeepCopy()
	withFilters.Spec.Filters = []string{"ok", "gone", "bad"}
	badSel := tor.DeepCopy()
	badSel.Spec.NodeSelector = "rack in (("
	up := sess("tor", "10.0.0.1", "Established", "", "")
	auth := sess("tor", "10.0.0.1", "Active", v1.ProblemAuthFailure, "TCP-MD5 authentication failing: ...")
	other := sess("other", "10.0.0.2", "Active", "", "x")
	for _, tc := range []struct {
		name                   string
		peer                   *v1.BGPPeer
		reports                []Report
		nodes, sessions, estab int32
		lastError              string
		ready, invalid, filt   string
	}{
		{name: "no node reports it", peer: tor, reports: []Report{{Node: "n1", Sessions: []v1.BGPSessionStatus{other}}},
			ready: "False/NoSessions", invalid: "False/Valid", filt: "True/Resolved"},
		{name: "all established", peer: tor, reports: []Report{{"n1", []v1.BGPSessionStatus{up, other}}, {"n2", []v1.BGPSessionStatus{up}}},
			nodes: 2, sessions: 2, estab: 2, ready: "True/Established", invalid: "False/Valid", filt: "True/Resolved"},
		{name: "one down for auth", peer: tor, reports: []Report{{"n1", []v1.BGPSessionStatus{up}}, {"n2", []v1.BGPSessionStatus{auth}}},
			nodes: 2, sessions: 2, estab: 1, lastError: auth.Reason, ready: "False/SessionsDown", invalid: "False/Valid", filt: "True/Resolved"},
		{name: "filters missing and invalid", peer: withFilters, reports: []Report{{"n1", []v1.BGPSessionStatus{up}}},
			nodes: 1, sessions: 1, estab: 1, ready: "True/Established", invalid: "False/Valid", filt: "False/FilterUnusable"},
		{name: "bad selector", peer: badSel, ready: "False/Invalid", invalid: "True/BadSelector", filt: "True/Resolved"},
	} {
		st := Peer(PeerInput{Peer: tc.peer, Reports: tc.reports, Filters: map[string]error{"ok": nil, "bad": errors.New("x")}})
		if st.Nodes != tc.nodes || st.Sessions != tc.sessions || st.Established != tc.estab || st.LastError != tc.lastError {
			t.Errorf("%s: nodes %d sessions %d established %d lastError %q", tc.name, st.Nodes, st.Sessions, st.Established, st.LastError)
		}
		if got := cond(st.Conditions, v1.ConditionReady); got != tc.ready {
			t.Errorf("%s: Ready %s, want %s", tc.name, got, tc.ready)
		}
		if got := cond(st.Conditions, v1.ConditionInvalid); got != tc.invalid {
			t.Errorf("%s: Invalid %s, want %s", tc.name, got, tc.invalid)
		}
		if got := cond(st.Conditions, v1.ConditionFiltersResolved); got != tc.filt {
			t.Errorf("%s: FiltersResolved %s, want %s", tc.name, got, tc.filt)
		}
		if st.ObservedGeneration != 3 {
			t.Errorf("%s: observedGeneration %d", tc.name, st.ObservedGeneration)
		}
	}
	if st := Peer(PeerInput{Peer: withFilters}); !strings.Contains(meta.FindStatusCondition(st.Conditions, v1.ConditionFiltersResolved).Message, "BGPFilter gone does not exist") {
		t.Errorf("FiltersResolved message: %+v", st.Conditions)
	}
}

// TestPeerCapsLists: on a thousand nodes the status names at most
// MaxListedInStatus nodes and sessions, the counts stay exact, and every
// problem keeps a listed session.
func TestPeerCapsLists(t *testing.T) {
	tor := &v1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "tor"}}
	var reports []Report
	for i := range 1000 {
		s := sess("tor", "10.0.0.1", "Active", "", "connect: timeout")
		if i == 999 {
			s.Problem = v1.ProblemMaxPrefixes
		}
		reports = append(reports, Report{Node: fmt.Sprintf("node%04d", i), Sessions: []v1.BGPSessionStatus{s}})
	}
	st := Peer(PeerInput{Peer: tor, Reports: reports})
	if st.Nodes != 1000 || st.Sessions != 1000 || len(st.NodeNames) != v1.MaxListedInStatus || len(st.SessionsDown) != v1.MaxListedInStatus {
		t.Fatalf("nodes %d sessions %d names %d down %d", st.Nodes, st.Sessions, len(st.NodeNames), len(st.SessionsDown))
	}
	if st.SessionsDown[0].Problem != v1.ProblemMaxPrefixes || st.SessionsDown[0].Node != "node0999" {
		t.Errorf("the one problem session is not listed first: %+v", st.SessionsDown[0])
	}
	if st.LastError != "connect: timeout" {
		t.Errorf("lastError %q", st.LastError)
	}
}

// TestConditionTimesKept: recomputing an unchanged status gives an equal
// one (so nothing is written), transition times included.
func TestConditionTimesKept(t *testing.T) {
	tor := &v1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "tor"}}
	in := PeerInput{Peer: tor, Reports: []Report{{"n1", []v1.BGPSessionStatus{sess("tor", "10.0.0.1", "Established", "", "")}}}}
	first := Peer(in)
	for i := range first.Conditions {
		first.Conditions[i].LastTransitionTime = metav1.Unix(1000, 0)
	}
	tor.Status = first
	again := Peer(in)
	for _, c := range again.Conditions {
		if !c.LastTransitionTime.Equal(&metav1.Time{Time: metav1.Unix(1000, 0).Time}) {
			t.Errorf("%s: transition time %v changed", c.Type, c.LastTransitionTime)
		}
	}
}

func TestConfig(t *testing.T) {
	off := false
	def := &v1.BGPConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "default", Generation: 2}}
	meshOff := def.DeepCopy()
	meshOff.Spec.NodeToNodeMeshEnabled = &off
	badCommunity := def.DeepCopy()
	badCommunity.Spec.PrefixAdvertisements = []v1.PrefixAdvertisement{{CIDR: "10.244.0.0/16", Communities: []string{"no-such"}}}
	perNode := &v1.BGPConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "node.n1"}}
	perGone := &v1.BGPConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "node.gone"}}
	other := &v1.BGPConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "rack1"}}
	reports := []Report{
		{"n1", []v1.BGPSessionStatus{sess("", "10.0.0.2", "Established", "", ""), sess("tor", "10.0.0.1", "Active", "", "")}},
		{"n2", []v1.BGPSessionStatus{sess("", "10.0.0.1", "Active", v1.ProblemAuthFailure, "md5")}},
	}
	for _, tc := range []struct {
		name             string
		cfg              *v1.BGPConfiguration
		sessions, estab  int32
		accepted, ready  string
		lastError        string
		wantSessionsDown int
	}{
		{name: "mesh with one session down", cfg: def, sessions: 2, estab: 1, accepted: "True/Valid", ready: "False/MeshSessionsDown", lastError: "md5", wantSessionsDown: 1},
		{name: "mesh off", cfg: meshOff, accepted: "True/Valid", ready: "True/MeshDisabled"},
		{name: "unknown community", cfg: badCommunity, sessions: 2, estab: 1, accepted: "False/BadCommunity", ready: "False/MeshSessionsDown", lastError: "md5", wantSessionsDown: 1},
		{name: "a node's", cfg: perNode, accepted: "True/Valid", ready: "<none>"},
		{name: "a node's that does not exist", cfg: perGone, accepted: "False/NodeNotFound", ready: "<none>"},
		{name: "not read", cfg: other, accepted: "False/NotRead", ready: "<none>"},
	} {
		st := Config(tc.cfg, reports, func(n string) bool { return n == "n1" || n == "n2" })
		if st.MeshSessions != tc.sessions || st.MeshEstablished != tc.estab || st.LastError != tc.lastError || len(st.SessionsDown) != tc.wantSessionsDown {
			t.Errorf("%s: %+v", tc.name, st)
		}
		if got := cond(st.Conditions, v1.ConditionAccepted); got != tc.accepted {
			t.Errorf("%s: Accepted %s, want %s", tc.name, got, tc.accepted)
		}
		if got := cond(st.Conditions, v1.ConditionReady); got != tc.ready {
			t.Errorf("%s: Ready %s, want %s", tc.name, got, tc.ready)
		}
		if st.ObservedGeneration != tc.cfg.Generation {
			t.Errorf("%s: observedGeneration %d", tc.name, st.ObservedGeneration)
		}
	}
}

func TestFilter(t *testing.T) {
	i32 := func(v int32) *int32 { return &v }
	good := &v1.BGPFilter{ObjectMeta: metav1.ObjectMeta{Name: "f"}, Spec: v1.BGPFilterSpec{
		ImportV4: []v1.BGPFilterRule{{CIDR: "10.0.0.0/8", MatchOperator: "In", PrefixLength: &v1.PrefixLengthRange{Min: i32(16), Max: i32(24)}, Action: "Accept"}}}}
	peers := []*v1.BGPPeer{
		{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: v1.BGPPeerSpec{Filters: []string{"f"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: v1.BGPPeerSpec{Filters: []string{"x", "f"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: v1.BGPPeerSpec{Filters: []string{"x"}}},
	}
	for _, tc := range []struct {
		name           string
		rules          v1.BGPFilterSpec
		peers          []*v1.BGPPeer
		usedBy         string
		invalid, ready string
		msg            string
	}{
		{name: "valid and used", rules: good.Spec, peers: peers, usedBy: "a,b", invalid: "False/Valid", ready: "True/InUse"},
		{name: "valid, unused", rules: good.Spec, peers: peers[2:], invalid: "False/Valid", ready: "False/Unused"},
		{name: "v6 cidr in a v4 list", rules: v1.BGPFilterSpec{ImportV4: []v1.BGPFilterRule{{CIDR: "fd00::/8", Action: "Reject"}}},
			peers: peers, usedBy: "a,b", invalid: "True/BadRule", ready: "False/Invalid", msg: "importV4[0]: cidr fd00::/8 is of the other address family"},
		{name: "empty length range", rules: v1.BGPFilterSpec{ExportV6: []v1.BGPFilterRule{{PrefixLength: &v1.PrefixLengthRange{Min: i32(64), Max: i32(48)}, Action: "Reject"}}},
			peers: peers, usedBy: "a,b", invalid: "True/BadRule", ready: "False/Invalid", msg: "exportV6[0]: prefixLength min 64 is above max 48"},
		{name: "v4 length beyond 32", rules: v1.BGPFilterSpec{ExportV4: []v1.BGPFilterRule{{PrefixLength: &v1.PrefixLengthRange{Max: i32(64)}, Action: "Accept"}}},
			peers: peers, usedBy: "a,b", invalid: "True/BadRule", ready: "False/Invalid", msg: "longer than the family's 32 bits"},
	} {
		f := good.DeepCopy()
		f.Spec = tc.rules
		st := Filter(f, tc.peers)
		if got := strings.Join(st.UsedBy, ","); got != tc.usedBy || int(st.UsedByCount) != len(st.UsedBy) {
			t.Errorf("%s: usedBy %q (%d), want %q", tc.name, got, st.UsedByCount, tc.usedBy)
		}
		if got := cond(st.Conditions, v1.ConditionInvalid); got != tc.invalid {
			t.Errorf("%s: Invalid %s, want %s", tc.name, got, tc.invalid)
		}
		if got := cond(st.Conditions, v1.ConditionReady); got != tc.ready {
			t.Errorf("%s: Ready %s, want %s", tc.name, got, tc.ready)
		}
		if c := meta.FindStatusCondition(st.Conditions, v1.ConditionInvalid); !strings.Contains(c.Message, tc.msg) {
			t.Errorf("%s: message %q, want %q", tc.name, c.Message, tc.msg)
		}
	}
}

// TestSessionEvents: an Event when a problem appears, none while it
// stays or for a session down without a known problem.
func TestSessionEvents(t *testing.T) {
	auth := v1.SessionDown{Node: "n1", PeerIP: "10.0.0.1", State: "Active", Problem: v1.ProblemAuthFailure, Reason: "TCP-MD5 authentication failing: the passwords differ"}
	auth2 := auth
	auth2.Node = "n2"
	maxp := v1.SessionDown{Node: "n3", PeerIP: "10.0.0.1", State: "Idle", Problem: v1.ProblemMaxPrefixes}
	plain := v1.SessionDown{Node: "n4", PeerIP: "10.0.0.1", State: "Active"}
	for _, tc := range []struct {
		name          string
		before, after []v1.SessionDown
		want          []string // reason: message fragment
	}{
		{name: "nothing down", want: nil},
		{name: "down without a known problem", after: []v1.SessionDown{plain}, want: nil},
		{name: "auth failure appears", before: []v1.SessionDown{plain}, after: []v1.SessionDown{auth, auth2, plain},
			want: []string{ReasonAuthFailure + ": TCP-MD5 authentication failing on 2 session(s): n1 to 10.0.0.1, n2 to 10.0.0.1: TCP-MD5 authentication failing: the passwords differ"}},
		{name: "auth failure stays", before: []v1.SessionDown{auth}, after: []v1.SessionDown{auth, auth2}, want: nil},
		{name: "a second problem appears", before: []v1.SessionDown{auth}, after: []v1.SessionDown{auth, maxp},
			want: []string{ReasonMaxPrefixExceeded + ": shut for exceeding maxPrefixes on 1 session(s): n3 to 10.0.0.1"}},
		{name: "cleared", before: []v1.SessionDown{auth}, after: nil, want: nil},
	} {
		var got []string
		for _, e := range SessionEvents(tc.before, tc.after) {
			if e.Type != "Warning" {
				t.Errorf("%s: type %s", tc.name, e.Type)
			}
			got = append(got, e.Reason+": "+e.Message)
		}
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%s:\ngot  %q\nwant %q", tc.name, got, tc.want)
		}
	}
}
