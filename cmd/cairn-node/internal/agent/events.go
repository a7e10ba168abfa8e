package agent

import (
	"fmt"

	"k8s.io/client-go/tools/cache"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
)

// watchEvents enqueues a sync on the events that can change this node's
// state. Any Node, pool, BGPConfiguration or BGPPeer can (mesh peers,
// selectors, pools); an IPAM block or claim only when it concerns this
// node, so a burst of allocations on one node leaves the others idle; an
// EndpointSlice only when it has an endpoint on this node.
func (c *controller) watchEvents(inf *informers) error {
	always := c.handler(func(any) bool { return true })
	for _, h := range []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{
		{inf.nodes, always}, {inf.pools, always}, {inf.configs, always}, {inf.peers, always},
		{inf.blocks, c.handler(c.concernsBlock)},
		{inf.affinities, c.handler(c.concernsAffinity)},
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

func (c *controller) concernsBlock(obj any) bool {
	b, ok := obj.(*v1.IPAMBlock)
	return ok && blockConcerns(b, c.nodeName)
}

func (c *controller) concernsAffinity(obj any) bool {
	a, ok := obj.(*v1.BlockAffinity)
	return ok && a.Spec.Node == c.nodeName
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
