package agent

import (
	"context"
	"net/netip"

	"github.com/cairn-net/cairn/felix"
)

// felixDataplane adapts felix to the agent's Dataplane port.
type felixDataplane struct{ f *felix.Felix }

func (d felixDataplane) SetEndpoint(ctx context.Context, ep Endpoint) error {
	return d.f.SetEndpoint(ctx, felix.Endpoint{HostIface: ep.HostIface, Addrs: ep.Addrs})
}

func (d felixDataplane) RemoveEndpoint(ctx context.Context, hostIface string) error {
	return d.f.RemoveEndpoint(ctx, hostIface)
}

func (d felixDataplane) EndpointsInSync() { d.f.EndpointsInSync() }

func (d felixDataplane) SetOwnedBlocks(blocks []netip.Prefix) { d.f.SetOwnedBlocks(blocks) }

func (d felixDataplane) SetLearnedRoutes(routes []Route) {
	out := make([]felix.LearnedRoute, len(routes))
	for i, r := range routes {
		out[i] = felix.LearnedRoute{Prefix: r.Prefix, NextHops: r.NextHops}
	}
	d.f.SetLearnedRoutes(out)
}

func (d felixDataplane) SetPools(pools []Pool) {
	out := make([]felix.Pool, len(pools))
	for i, p := range pools {
		out[i] = felix.Pool{CIDR: p.CIDR, NATOutgoing: p.NATOutgoing}
	}
	d.f.SetPools(out)
}
