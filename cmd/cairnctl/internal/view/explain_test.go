package view

import (
	"net/netip"
	"strings"
	"testing"
)

const maxPrefixError = "maximum prefixes exceeded: session shut down (Cease), tried again after the idle time"

// node1 is the node whose view is explained: one pod, one block, a mesh
// peer and a ToR.
func node1() Node {
	return Node{
		Node: "node1", Source: SourceAgent, Ready: true, LearnedComplete: true,
		Blocks:       []string{"10.244.0.0/26"},
		Announced:    []string{"10.244.0.0/26", "10.96.0.0/12"},
		ImportFilter: []string{"10.244.0.0/16"},
		Endpoints:    []Endpoint{{Pod: "default/web-1", HostIface: "crn1234", Addresses: []string{"10.244.0.5/32"}}},
		Sessions: []Session{
			{Peer: "mesh:node2", Address: "172.30.1.3", State: "Established", PrefixesIn: 2, Accepted: 2},
			{Peer: "peer:tor-rack1", Address: "172.30.1.1", State: "Established", PrefixesIn: 5, Accepted: 2},
		},
		Learned: []Learned{
			{Prefix: "10.244.1.0/26", NextHops: []string{"172.30.1.3"}, Peers: []string{"172.30.1.3"}, Installed: true},
			{Prefix: "10.244.0.9/32", NextHops: []string{"172.30.1.3"}, Peers: []string{"172.30.1.3"}, Installed: true},
			{Prefix: "10.244.3.0/26", NextHops: []string{"172.16.0.1"}, Peers: []string{"172.30.1.1"}, Reason: "next hop not on a connected subnet"},
		},
	}
}

func cluster() Cluster {
	return Cluster{Known: true,
		Pools: []Pool{{Name: "default", CIDR: netip.MustParsePrefix("10.244.0.0/16")}},
		Blocks: []Block{
			{CIDR: netip.MustParsePrefix("10.244.0.0/26"), Node: "node1", Allocations: []Allocation{
				{Addr: netip.MustParseAddr("10.244.0.5"), Node: "node1", Pod: "default/web-1"},
				{Addr: netip.MustParseAddr("10.244.0.9"), Node: "node2", Pod: "default/db-1"},
				{Addr: netip.MustParseAddr("10.244.0.10"), Node: "node3", Pod: "default/db-2"},
			}},
			{CIDR: netip.MustParsePrefix("10.244.1.0/26"), Node: "node2", Allocations: []Allocation{
				{Addr: netip.MustParseAddr("10.244.1.7"), Node: "node2", Pod: "default/api-1"},
			}},
			{CIDR: netip.MustParsePrefix("10.244.2.0/26"), Node: "node3"},
		},
	}
}

// staleFromMesh: the mesh session that brought node2's block is down.
func staleFromMesh() Node {
	n := node1()
	n.Sessions[0].State, n.Sessions[0].LastError = "Idle", maxPrefixError
	return n
}

// hijacked: the ToR sent node3's block, an address of this node's block
// and node2's block; the import rules refused them (listed by the agent
// after the learned routes, as RefusedPaths).
func hijacked() Node {
	n := node1()
	tor := []string{"172.30.1.1"}
	n.Learned = append(n.Learned,
		Learned{Prefix: "10.244.0.33/32", NextHops: tor, Peers: tor, Reason: "owner-only import: inside this node's block 10.244.0.0/26: only a node that borrowed one of its addresses may announce it, and none holds 10.244.0.33/32"},
		Learned{Prefix: "10.244.1.0/26", NextHops: tor, Peers: tor, Reason: "owner-only import: inside block 10.244.1.0/26 of the node at 172.30.1.3: next hop 172.30.1.1 is not its owner"},
		Learned{Prefix: "10.244.2.0/26", NextHops: tor, Peers: tor, Reason: "owner-only import: inside block 10.244.2.0/26 of the node at 172.30.1.4: next hop 172.30.1.1 is not its owner"},
	)
	return n
}

// aggregated: hijacked, and the ToR also sends the whole pool.
func aggregated() Node {
	n := hijacked()
	n.Learned = append(n.Learned, Learned{Prefix: "10.244.0.0/16", NextHops: []string{"172.30.1.1"}, Peers: []string{"172.30.1.1"}, Installed: true})
	return n
}

func TestExplain(t *testing.T) {
	shutTor := node1()
	shutTor.Sessions[1].State, shutTor.Sessions[1].LastError = "Idle", maxPrefixError
	fromAPI := node1()
	fromAPI.Source, fromAPI.Endpoints, fromAPI.ImportFilter = SourceAPI, nil, nil
	tests := []struct {
		name    string
		node    Node
		cluster Cluster
		target  string
		verdict string
		pod     string
		block   string
		// reasons must each appear in some line of the explanation.
		reasons []string
		routed  bool
	}{
		{"a pod on this node", node1(), cluster(), "10.244.0.5/32", VerdictLocalPod, "default/web-1", "10.244.0.0/26",
			[]string{"a pod on this node (default/web-1)", "dev crn1234", "announced by this node as 10.244.0.0/26"}, true},
		{"a pod on another node", node1(), cluster(), "10.244.1.7/32", VerdictInstalled, "default/api-1", "10.244.1.0/26",
			[]string{"learned as 10.244.1.0/26 from mesh:node2 (172.30.1.3)", "installed"}, true},
		{"outside every pool: the import filter", node1(), cluster(), "192.0.2.0/24", VerdictFiltered, "", "",
			[]string{"import filter refuses it", "the import filter refused 3 of the 5 prefixes peer:tor-rack1 sent"}, false},
		{"a peer over its max-prefix", shutTor, cluster(), "10.244.2.0/26", VerdictNotLearned, "", "10.244.2.0/26",
			[]string{"of node node3, which should announce it", "session to peer:tor-rack1 (172.30.1.1) is Idle: maximum prefixes exceeded"}, false},
		{"learned from a peer now shut for its maximum prefixes", staleFromMesh(), cluster(), "10.244.1.7/32", VerdictStale, "default/api-1", "10.244.1.0/26",
			[]string{"from mesh:node2", "is Idle: maximum prefixes exceeded", "kept as stale"}, false},
		{"learned but refused by felix", node1(), cluster(), "10.244.3.0/26", VerdictRefused, "", "",
			[]string{"not installed: next hop not on a connected subnet"}, false},
		{"this node's own block", node1(), cluster(), "10.244.0.0/26", VerdictOwnedBlock, "", "10.244.0.0/26",
			[]string{"blackhole for its unallocated addresses"}, true},
		{"an unallocated address of the own block", node1(), cluster(), "10.244.0.33/32", VerdictBlackholed, "", "10.244.0.0/26",
			[]string{"dropped by the block's blackhole"}, false},
		{"an address of the own block borrowed by another node", node1(), cluster(), "10.244.0.9/32", VerdictInstalled, "default/db-1", "10.244.0.0/26",
			[]string{"borrowed by node2", "learned as 10.244.0.9/32"}, true},
		{"borrowed, and its /32 not learned", node1(), cluster(), "10.244.0.10/32", VerdictNotLearned, "default/db-2", "10.244.0.0/26",
			[]string{"borrowed by node3", "the /32 from node3 is not learned"}, false},
		{"a pod on this node, from the status object", fromAPI, cluster(), "10.244.0.5/32", VerdictLocalPod, "default/web-1", "",
			[]string{"per IPAM"}, true},
		{"another node's block hijacked by the ToR: refused, owner-only", hijacked(), cluster(), "10.244.2.0/26", VerdictRefused, "", "10.244.2.0/26",
			[]string{"from peer:tor-rack1 (172.30.1.1), next hop 172.30.1.1: not installed: owner-only import: inside block 10.244.2.0/26"}, false},
		{"an unallocated address of the own block from the ToR: refused", hijacked(), cluster(), "10.244.0.33/32", VerdictRefused, "", "10.244.0.0/26",
			[]string{"not installed: owner-only import: inside this node's block"}, false},
		{"a block installed from its owner and refused from the ToR", hijacked(), cluster(), "10.244.1.7/32", VerdictInstalled, "default/api-1", "10.244.1.0/26",
			[]string{"from mesh:node2 (172.30.1.3)", "10.244.1.0/26 from peer:tor-rack1 (172.30.1.1), next hop 172.30.1.1: refused: owner-only import"}, true},
		{"another rack's block refused from the ToR, routed by the pool from the ToR", aggregated(), cluster(), "10.244.2.0/26", VerdictInstalled, "", "10.244.2.0/26",
			[]string{"learned as 10.244.0.0/16 from peer:tor-rack1 (172.30.1.1), next hop 172.30.1.1: installed", "10.244.2.0/26 from peer:tor-rack1 (172.30.1.1), next hop 172.30.1.1: refused: owner-only import"}, true},
		{"no API access, outside the filter", node1(), Cluster{}, "192.0.2.1/32", VerdictFiltered, "", "", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := Explain(tc.node, tc.cluster, netip.MustParsePrefix(tc.target), tc.target, "")
			if e.Verdict != tc.verdict || e.Pod != tc.pod || (tc.block != "" && e.Block != tc.block) || e.Routed() != tc.routed {
				t.Errorf("verdict %s pod %q block %q routed %v, want %s %q %q %v\n%s", e.Verdict, e.Pod, e.Block, e.Routed(),
					tc.verdict, tc.pod, tc.block, tc.routed, strings.Join(e.Reasons, "\n"))
			}
			for _, want := range tc.reasons {
				if !strings.Contains(strings.Join(e.Reasons, "\n"), want) {
					t.Errorf("no reason says %q:\n%s", want, strings.Join(e.Reasons, "\n"))
				}
			}
		})
	}
}
