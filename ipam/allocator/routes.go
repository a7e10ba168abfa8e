package allocator

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/cairn-net/cairn/ipam"
)

// OwnedBlocks returns the blocks this node owns: the agent announces them
// over BGP and installs a blackhole route for each.
func (a *Allocator) OwnedBlocks(ctx context.Context) ([]netip.Prefix, error) {
	owned, _, err := a.Routes(ctx)
	return owned, err
}

// BorrowedAddresses returns, as /32 and /128 prefixes, the addresses this
// node holds in other nodes' blocks; the agent announces each.
func (a *Allocator) BorrowedAddresses(ctx context.Context) ([]netip.Prefix, error) {
	_, borrowed, err := a.Routes(ctx)
	return borrowed, err
}

// Routes returns both OwnedBlocks and BorrowedAddresses from one read of
// the store.
func (a *Allocator) Routes(ctx context.Context) (owned, borrowed []netip.Prefix, err error) {
	affs, err := a.store.Affinities().List(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("routes of node %s: list affinities: %w", a.opts.Node, err)
	}
	blocks, err := a.store.Blocks().List(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("routes of node %s: list blocks: %w", a.opts.Node, err)
	}
	owned, borrowed = ipam.NodeRoutes(a.opts.Node, blocks, affs)
	return owned, borrowed, nil
}
