package agent

import (
	"fmt"
	"slices"

	"k8s.io/client-go/tools/cache"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
)

// watchEvents enqueues a sync on the events that can change this node's
// state. Any Node, pool, BGPConfiguration, BGPPeer or BGPFilter can (mesh
// peers, selectors, pools, a peer's filters); so can any block claim and any IPAM block created,
// deleted, given another owner or a changed set of borrowed addresses,
// because the owner-only import rule needs every node to know who holds
// each block; other IPAM block changes (allocations on a node's own
// block) only when they concern this node, so a burst of allocations on
// one node leaves the others idle; an EndpointSlice only when it has an
// endpoint on this node.
func (c *controller) watchEvents(inf *informers) error {
	always := c.handler(func(any) bool { return true })
	for _, h := range []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{
		{inf.nodes, always}, {inf.pools, always}, {inf.configs, always}, {inf.peers, always}, {inf.filters, always},
		{inf.blocks, c.blockHandler()},
		{inf.affinities, always},
		{inf.services, always}, {inf.slices, c.handler(c.concernsSlice)},
	} {
		if _, err := h.inf.AddEventHandler(h.h); err != nil {
			return fmt.Errorf("add event handler: %w", err)
		}
	}
	return nil
}

// handler enqueues a sync when an event's object, before or after the
// change, concerns this node.
func (c *controller) handler(concerns func(obj any) bool) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if concerns(obj) {
				c.enqueue()
			}
		},
		UpdateFunc: func(old, obj any) {
			if concerns(old) || concerns(obj) {
				c.enqueue()
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if concerns(obj) {
				c.enqueue()
			}
		},
	}
}

// blockHandler wakes this node on every block created or deleted, and on
// an update that blockUpdateConcerns says matters here.
func (c *controller) blockHandler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.enqueue() },
		DeleteFunc: func(any) { c.enqueue() },
		UpdateFunc: func(old, obj any) {
			o, ok1 := old.(*v1.IPAMBlock)
			n, ok2 := obj.(*v1.IPAMBlock)
			if !ok1 || !ok2 || blockUpdateConcerns(o, n, c.nodeName) {
				c.enqueue()
			}
		},
	}
}

// blockUpdateConcerns reports whether an update of a block from o to n can
// change node's routes: node owns or holds an address in either, or the
// block's holdings (owner, borrowed addresses) changed, which every node's
// owner-only import rule reads (ipam.Holdings).
func blockUpdateConcerns(o, n *v1.IPAMBlock, node string) bool {
	if blockConcerns(o, node) || blockConcerns(n, node) || o.Spec.CIDR != n.Spec.CIDR {
		return true
	}
	return ipam.AffinityNode(o.Spec.Affinity) != ipam.AffinityNode(n.Spec.Affinity) ||
		!slices.Equal(borrowedBy(o), borrowedBy(n))
}

// borrowedBy lists a block's addresses held by a node other than its
// owner, as "ordinal/node", in order.
func borrowedBy(b *v1.IPAMBlock) []string {
	owner := ipam.AffinityNode(b.Spec.Affinity)
	var out []string
	for _, a := range b.Spec.Allocations {
		if a.Node != "" && a.Node != owner {
			out = append(out, fmt.Sprintf("%d/%s", a.Ordinal, a.Node))
		}
	}
	slices.Sort(out)
	return out
}

// blockConcerns reports whether node's routes may depend on block b (see
// ipam.NodeRoutes): node owns it, or holds an address in it.
func blockConcerns(b *v1.IPAMBlock, node string) bool {
	if ipam.AffinityNode(b.Spec.Affinity) == node {
		return true
	}
	for _, a := range b.Spec.Allocations {
		if a.Node == node {
			return true
		}
	}
	return false
}
