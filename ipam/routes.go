package ipam

import (
	"net/netip"
	"slices"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
)

// NodeRoutes says what node announces over BGP: the blocks it owns (its
// confirmed claims whose block names it, also while a release is pending,
// so routes stay until the block is gone) and the addresses it borrowed from
// other nodes' blocks, which it announces as host routes. The agent can feed
// it from informer listers; the allocator feeds it from the store.
func NodeRoutes(node string, blocks []*v1.IPAMBlock, affinities []*v1.BlockAffinity) (owned []netip.Prefix, borrowed []netip.Prefix) {
	claimed := map[netip.Prefix]bool{}
	for _, a := range affinities {
		if a.Spec.Node != node || (a.Spec.State != v1.AffinityConfirmed && a.Spec.State != v1.AffinityPendingDeletion) {
			continue
		}
		if p, err := netip.ParsePrefix(a.Spec.CIDR); err == nil {
			claimed[p.Masked()] = true
		}
	}
	for _, b := range blocks {
		p, err := BlockPrefix(b)
		if err != nil {
			continue
		}
		if AffinityNode(b.Spec.Affinity) == node && claimed[p] {
			owned = append(owned, p)
			continue
		}
		for _, a := range b.Spec.Allocations {
			if a.Node == node {
				borrowed = append(borrowed, HostPrefix(AddrAt(p, int(a.Ordinal))))
			}
		}
	}
	slices.SortFunc(owned, netip.Prefix.Compare)
	slices.SortFunc(borrowed, netip.Prefix.Compare)
	return owned, borrowed
}
