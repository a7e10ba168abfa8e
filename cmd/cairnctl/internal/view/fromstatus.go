package view

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
)

// StaleAfter is how old a CairnNodeStatus may be before its node counts
// as not ready: the agent rewrites it at least every 10 s by default.
const StaleAfter = time.Minute

// Peers names the sessions of a CairnNodeStatus written by an agent that
// records only their addresses and types: the nodes (mesh) and BGPPeers
// the cluster has. Newer agents record each session's name and AS.
type Peers struct {
	// Nodes maps a node's BGP address to its name and AS.
	Nodes map[string]NamedAS
	// BGPPeers maps a BGPPeer's peerIP to its name and AS.
	BGPPeers map[string]NamedAS
}

// NamedAS is a name and an AS number.
type NamedAS struct {
	Name string
	AS   uint32
}

// FromStatus is a node's state from its CairnNodeStatus, as of now.
func FromStatus(st *v1.CairnNodeStatus, peers Peers, now time.Time) Node {
	s := st.Status
	n := Node{Node: st.Spec.Node, Source: SourceAPI, AgentVersion: s.AgentVersion, Blocks: nonNil(s.Blocks),
		Announced: s.Routes.Announced, LastError: s.LastError, Sessions: []Session{},
		LearnedComplete: int(s.Routes.LearnedCount) == len(s.Routes.Learned),
		Routes:          Routes{Endpoint: -1, Blackhole: -1, Learned: int(s.Routes.LearnedCount - s.Routes.RefusedCount), Refused: int(s.Routes.RefusedCount)}}
	if n.Node == "" {
		n.Node = st.Name
	}
	if s.LastUpdated != nil {
		t := s.LastUpdated.Time
		n.Updated = &t
	}
	n.Ready, n.NotReady = statusReady(s, now)
	for _, p := range s.BGP.Peers {
		sess := Session{Peer: p.PeerIP, Address: p.PeerIP, State: p.State, PrefixesIn: uint64(p.PrefixesReceived),
			Accepted: uint64(p.PrefixesAccepted), PrefixesOut: uint64(p.PrefixesAdvertised), LastError: p.Reason}
		known := peers.BGPPeers
		prefix := "peer:"
		if p.Type == "NodeMesh" {
			known, prefix = peers.Nodes, "mesh:"
		}
		switch na, ok := known[p.PeerIP]; {
		case p.Name != "": // agents since the session's name and AS are in the status
			sess.Peer, sess.AS = p.Name, uint32(p.ASNumber)
		case ok:
			sess.Peer, sess.AS = prefix+na.Name, na.AS
		}
		if p.Since != nil && sess.Established() {
			sess.UptimeSeconds = int64(now.Sub(p.Since.Time).Seconds())
		}
		n.Sessions = append(n.Sessions, sess)
	}
	for _, l := range s.Routes.Learned {
		n.Learned = append(n.Learned, Learned{Prefix: l.Prefix, NextHops: l.NextHops, Installed: l.State != v1.LearnedRouteRefused, Reason: l.Reason})
	}
	return n
}

// statusReady reads the Ready condition, and takes a status the agent
// stopped updating for not ready.
func statusReady(s v1.CairnNodeStatusStatus, now time.Time) (bool, string) {
	c := meta.FindStatusCondition(s.Conditions, v1.ConditionReady)
	switch {
	case c == nil:
		return false, "the agent reported no readiness yet"
	case c.Status != "True":
		return false, fmt.Sprintf("%s: %s", c.Reason, c.Message)
	case s.LastUpdated == nil || now.Sub(s.LastUpdated.Time) > StaleAfter:
		return false, "the status is stale: the agent stopped updating it"
	}
	return true, ""
}
