package agent

import (
	"context"
	"net/netip"
)

// AllocationRequest is what the agent asks the allocator for one pod
// attachment.
type AllocationRequest struct {
	HandleID, ContainerID, IfName string
	Namespace, Pod                string
	// PodUID tells the owning pod from a later pod of the same name.
	PodUID     string
	IPv4, IPv6 int
	Pool       string
}

// Allocator is the part of IPAM the agent uses. The allocation is durable
// (written to the API server) when AutoAssign returns.
type Allocator interface {
	// AutoAssign is idempotent per handle: asking again returns what the
	// handle already holds.
	AutoAssign(ctx context.Context, req AllocationRequest) ([]netip.Prefix, error)
	// ReleaseByHandle is idempotent: an unknown handle is not an error.
	ReleaseByHandle(ctx context.Context, handleID string) error
	// OwnedBlocks are the blocks affine to this node.
	OwnedBlocks(ctx context.Context) ([]netip.Prefix, error)
	// Borrowed are addresses this node holds in other nodes' blocks.
	Borrowed(ctx context.Context) ([]netip.Addr, error)
}

// Endpoint is one local pod attachment as the dataplane sees it.
type Endpoint struct {
	HostIface string
	Addrs     []netip.Prefix
}

// Route is a learned prefix and its next hops (several: ECMP).
type Route struct {
	Prefix   netip.Prefix
	NextHops []netip.Addr
}

// Pool is what the dataplane needs of an IP pool.
type Pool struct {
	CIDR        netip.Prefix
	NATOutgoing bool
}

// Dataplane is the part of felix the agent uses.
type Dataplane interface {
	// SetEndpoint returns once the endpoint's routes are in the kernel.
	SetEndpoint(ctx context.Context, ep Endpoint) error
	RemoveEndpoint(ctx context.Context, hostIface string) error
	// EndpointsInSync says every live endpoint has been set since start;
	// before it, the dataplane removes no endpoint route it finds.
	EndpointsInSync()
	SetOwnedBlocks(blocks []netip.Prefix)
	SetLearnedRoutes(routes []Route)
	SetPools(pools []Pool)
}
