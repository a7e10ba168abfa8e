package view

import agentv1 "github.com/cairn-net/cairn/apis/agent/v1"

// FromAgent is the node's state from its agent's NodeStatus.
func FromAgent(r *agentv1.NodeStatusResponse) Node {
	n := Node{Node: r.Node, Source: SourceAgent, AgentVersion: r.AgentVersion, Address: r.NodeAddress, AS: r.Asn,
		Ready: r.Ready, NotReady: r.ReadyReason, Blocks: nonNil(r.Blocks), Borrowed: r.Borrowed, Announced: r.Announced,
		LearnedComplete: true, ImportFilter: r.ImportFilter, LastError: r.LastError, Sessions: []Session{}}
	if n.Ready {
		n.NotReady = ""
	}
	for _, s := range r.Sessions {
		n.Sessions = append(n.Sessions, Session{Peer: s.Name, Address: s.Address, AS: s.Asn, State: s.State,
			UptimeSeconds: s.UptimeSeconds, PrefixesIn: s.Received, Accepted: s.Accepted, PrefixesOut: s.Advertised,
			Flaps: s.Flaps, LastError: s.LastError})
	}
	for _, l := range r.Learned {
		n.Learned = append(n.Learned, Learned{Prefix: l.Prefix, NextHops: l.NextHops, Peers: l.Peers, Installed: l.Installed, Reason: l.RefusedReason})
	}
	for _, e := range r.Endpoints {
		ep := Endpoint{Container: e.ContainerId, HostIface: e.HostIface, Addresses: e.Addresses}
		if e.PodName != "" {
			ep.Pod = e.PodNamespace + "/" + e.PodName
		}
		n.Endpoints = append(n.Endpoints, ep)
	}
	if rc := r.Routes; rc != nil {
		n.Routes = Routes{Endpoint: int(rc.Endpoint), Blackhole: int(rc.Blackhole), Learned: int(rc.Learned), Refused: int(rc.Refused)}
	}
	return n
}

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}
