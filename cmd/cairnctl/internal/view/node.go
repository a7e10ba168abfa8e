// Package view is what cairnctl shows: a node's state, from its agent's
// socket or from its CairnNodeStatus, and the explanation of one route
// on a node. Pure data and pure functions; cmd/cairnctl/internal/cli
// reads the sources and prints.
package view

import (
	"net/netip"
	"time"
)

// Source says where a node's state was read.
const (
	// SourceAgent: the node's agent socket, live and complete.
	SourceAgent = "agent"
	// SourceAPI: the node's CairnNodeStatus, as of its last update, with
	// learned routes capped.
	SourceAPI = "api"
)

// Node is one node's state.
type Node struct {
	Node         string `json:"node"`
	Source       string `json:"source"`
	AgentVersion string `json:"agentVersion,omitempty"`
	Address      string `json:"address,omitempty"`
	AS           uint32 `json:"as,omitempty"`
	Ready        bool   `json:"ready"`
	// NotReady says why the node is not ready.
	NotReady string `json:"notReady,omitempty"`
	// Updated is when the status object was last written (SourceAPI).
	Updated   *time.Time `json:"updated,omitempty"`
	Sessions  []Session  `json:"sessions"`
	Blocks    []string   `json:"blocks"`
	Borrowed  []string   `json:"borrowed,omitempty"`
	Announced []string   `json:"announced,omitempty"`
	Routes    Routes     `json:"routes"`
	Learned   []Learned  `json:"learned,omitempty"`
	// LearnedComplete is false when Learned is a capped excerpt.
	LearnedComplete bool       `json:"learnedComplete"`
	Endpoints       []Endpoint `json:"endpoints,omitempty"`
	// ImportFilter is what the node accepts from peers (SourceAgent).
	ImportFilter []string `json:"importFilter,omitempty"`
	LastError    string   `json:"lastError,omitempty"`
}

// Session is one BGP session.
type Session struct {
	Peer    string `json:"peer"`
	Address string `json:"address"`
	AS      uint32 `json:"as,omitempty"`
	State   string `json:"state"`
	// UptimeSeconds is how long it has been Established.
	UptimeSeconds int64  `json:"uptimeSeconds"`
	PrefixesIn    uint64 `json:"prefixesIn"`
	Accepted      uint64 `json:"accepted"`
	PrefixesOut   uint64 `json:"prefixesOut"`
	Flaps         uint64 `json:"flaps,omitempty"`
	LastError     string `json:"lastError,omitempty"`
}

// Established reports whether the session is up.
func (s Session) Established() bool { return s.State == "Established" }

// Routes counts the node's routes; -1 is unknown from this source.
type Routes struct {
	Endpoint  int `json:"endpoint"`
	Blackhole int `json:"blackhole"`
	Learned   int `json:"learned"`
	Refused   int `json:"refused"`
}

// Learned is one learned route as the node uses it.
type Learned struct {
	Prefix    string   `json:"prefix"`
	NextHops  []string `json:"nextHops"`
	Peers     []string `json:"peers,omitempty"`
	Installed bool     `json:"installed"`
	Reason    string   `json:"reason,omitempty"`
}

// Endpoint is a local pod attachment.
type Endpoint struct {
	Pod       string   `json:"pod,omitempty"` // namespace/name
	Container string   `json:"container"`
	HostIface string   `json:"hostIface"`
	Addresses []string `json:"addresses"`
}

// Healthy reports whether the node is ready with every session
// Established: what "node status" exits 0 for.
func (n Node) Healthy() bool {
	if !n.Ready {
		return false
	}
	for _, s := range n.Sessions {
		if !s.Established() {
			return false
		}
	}
	return true
}

// prefixes parses what it can of ss.
func prefixes(ss []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		} else if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}
