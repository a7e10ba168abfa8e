package view

import (
	"bytes"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
)

func statusObject(updated time.Time, ready metav1.ConditionStatus) *v1.CairnNodeStatus {
	since := metav1.NewTime(updated.Add(-time.Hour))
	up := metav1.NewTime(updated)
	st := &v1.CairnNodeStatus{Spec: v1.CairnNodeStatusSpec{Node: "node1"}}
	st.Status = v1.CairnNodeStatusStatus{AgentVersion: "v1", LastUpdated: &up, Blocks: []string{"10.244.0.0/26"},
		BGP: v1.NodeBGPStatus{Peers: []v1.BGPSessionStatus{
			{PeerIP: "172.30.1.3", Type: "NodeMesh", State: "Established", Since: &since, PrefixesReceived: 1, PrefixesAccepted: 1, PrefixesAdvertised: 2},
			{PeerIP: "172.30.1.1", Type: "BGPPeer", State: "Active", Reason: "connection refused"},
			{PeerIP: "172.30.9.9", Type: "BGPPeer", State: "Idle"},
		}},
		Routes: v1.NodeRouteStatus{LearnedCount: 3, RefusedCount: 1, Learned: []v1.LearnedRouteStatus{
			{Prefix: "10.244.3.0/26", NextHops: []string{"172.16.0.1"}, State: v1.LearnedRouteRefused, Reason: "next hop not on a connected subnet"},
			{Prefix: "10.244.1.0/26", NextHops: []string{"172.30.1.3"}, State: v1.LearnedRouteInstalled},
		}}}
	st.Status.Conditions = []metav1.Condition{{Type: v1.ConditionReady, Status: ready, Reason: "SyncError", Message: "boom"}}
	return st
}

func TestFromStatus(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	peers := Peers{Nodes: map[string]NamedAS{"172.30.1.3": {"node2", 64512}}, BGPPeers: map[string]NamedAS{"172.30.1.1": {"tor-rack1", 65001}}}
	tests := []struct {
		name     string
		st       *v1.CairnNodeStatus
		ready    bool
		notReady string
	}{
		{"fresh and ready", statusObject(now.Add(-5*time.Second), metav1.ConditionTrue), true, ""},
		{"stale", statusObject(now.Add(-2*time.Minute), metav1.ConditionTrue), false, "stale"},
		{"a sync error", statusObject(now, metav1.ConditionFalse), false, "SyncError: boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := FromStatus(tc.st, peers, now)
			if n.Ready != tc.ready || !strings.Contains(n.NotReady, tc.notReady) {
				t.Errorf("ready %v %q, want %v %q", n.Ready, n.NotReady, tc.ready, tc.notReady)
			}
			s := n.Sessions
			if len(s) != 3 || s[0].Peer != "mesh:node2" || s[0].AS != 64512 || s[1].Peer != "peer:tor-rack1" || s[1].AS != 65001 ||
				s[2].Peer != "172.30.9.9" || s[1].LastError != "connection refused" {
				t.Errorf("sessions %+v", s)
			}
			if s[0].UptimeSeconds != int64(now.Sub(tc.st.Status.BGP.Peers[0].Since.Time).Seconds()) || s[1].UptimeSeconds != 0 {
				t.Errorf("uptimes %d %d", s[0].UptimeSeconds, s[1].UptimeSeconds)
			}
			if n.Routes != (Routes{Endpoint: -1, Blackhole: -1, Learned: 2, Refused: 1}) || n.LearnedComplete {
				t.Errorf("routes %+v complete %v", n.Routes, n.LearnedComplete)
			}
			if n.Healthy() {
				t.Error("a node with a session down is healthy")
			}
		})
	}
}

func TestFromAgentAndPrint(t *testing.T) {
	n := FromAgent(&agentv1.NodeStatusResponse{Node: "node1", Ready: true, ReadyReason: "ignored when ready", NodeAddress: "172.30.1.2", Asn: 64512,
		Sessions:  []*agentv1.BGPSession{{Name: "mesh:node2", Address: "172.30.1.3", Asn: 64512, State: "Established", UptimeSeconds: 90, Received: 1, Accepted: 1, Advertised: 2}},
		Blocks:    []string{"10.244.0.0/26"},
		Learned:   []*agentv1.LearnedRoute{{Prefix: "10.244.3.0/26", NextHops: []string{"172.16.0.1"}, RefusedReason: "next hop not on a connected subnet"}},
		Endpoints: []*agentv1.Endpoint{{ContainerId: "c1", HostIface: "crn1", Addresses: []string{"10.244.0.5/32"}, PodNamespace: "default", PodName: "web-1"}},
		Routes:    &agentv1.RouteCounts{Endpoint: 1, Blackhole: 1, Learned: 0, Refused: 1}})
	if !n.Healthy() || n.NotReady != "" || n.Endpoints[0].Pod != "default/web-1" || n.Learned[0].Installed {
		t.Errorf("FromAgent = %+v", n)
	}
	var b bytes.Buffer
	if err := PrintNode(&b, n); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Ready:", "yes", "1 endpoint, 1 blackhole, 0 learned installed, 1 learned refused",
		"mesh:node2", "1m30s", "1/1/2", "10.244.3.0/26", "next hop not on a connected subnet"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// TestFromStatusNamedSessions: a session whose status carries its name
// and AS shows them, whatever the cluster's objects say.
func TestFromStatusNamedSessions(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	st := statusObject(now, metav1.ConditionTrue)
	st.Status.BGP.Peers[2].Name, st.Status.BGP.Peers[2].ASNumber = "peer:rr:node9", 64513
	n := FromStatus(st, Peers{}, now)
	if s := n.Sessions[2]; s.Peer != "peer:rr:node9" || s.AS != 64513 {
		t.Errorf("session %+v", s)
	}
	if s := n.Sessions[1]; s.Peer != "172.30.1.1" {
		t.Errorf("an unnamed session of an unknown peer: %+v", s)
	}
}
