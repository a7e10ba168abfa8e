package ipam

import (
	"net/netip"
	"slices"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
)

// Holding is a prefix of pod addresses and the node that holds it: an
// IPAM block and its owner, or a borrowed address (a host prefix) and the
// node whose pod uses it.
type Holding struct {
	Prefix netip.Prefix
	// Node holds it; "" for a block no node's confirmed claim names.
	Node string
	// Borrowed marks an address of a block owned by another node (or by
	// none): its holder announces it as a host route.
	Borrowed bool
}

// Holdings lists every block with its owner (the node whose confirmed
// claim, or claim pending release, names it, as the block's affinity
// does) and every address held by a node other than its block's owner.
// It is what NodeRoutes reads for one node, and what tells a node which
// peer may announce a route inside a block. Sorted by prefix.
func Holdings(blocks []*v1.IPAMBlock, affinities []*v1.BlockAffinity) []Holding {
	type claim struct {
		block netip.Prefix
		node  string
	}
	claimed := map[claim]bool{}
	for _, a := range affinities {
		if a.Spec.State != v1.AffinityConfirmed && a.Spec.State != v1.AffinityPendingDeletion {
			continue
		}
		if p, err := netip.ParsePrefix(a.Spec.CIDR); err == nil {
			claimed[claim{p.Masked(), a.Spec.Node}] = true
		}
	}
	var out []Holding
	for _, b := range blocks {
		p, err := BlockPrefix(b)
		if err != nil {
			continue
		}
		owner := AffinityNode(b.Spec.Affinity)
		if !claimed[claim{p, owner}] {
			owner = ""
		}
		out = append(out, Holding{Prefix: p, Node: owner})
		for _, a := range b.Spec.Allocations {
			if a.Node != "" && a.Node != owner {
				out = append(out, Holding{Prefix: HostPrefix(AddrAt(p, int(a.Ordinal))), Node: a.Node, Borrowed: true})
			}
		}
	}
	slices.SortFunc(out, func(a, b Holding) int { return a.Prefix.Compare(b.Prefix) })
	return out
}

// NodeRoutes says what node announces over BGP: the blocks it owns (its
// confirmed claims whose block names it, also while a release is pending,
// so routes stay until the block is gone) and the addresses it borrowed from
// other nodes' blocks, which it announces as host routes. The agent can feed
// it from informer listers; the allocator feeds it from the store.
func NodeRoutes(node string, blocks []*v1.IPAMBlock, affinities []*v1.BlockAffinity) (owned []netip.Prefix, borrowed []netip.Prefix) {
	for _, h := range Holdings(blocks, affinities) {
		switch {
		case h.Node != node:
		case h.Borrowed:
			borrowed = append(borrowed, h.Prefix)
		default:
			owned = append(owned, h.Prefix)
		}
	}
	return owned, borrowed
}
