package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/cairn-net/cairn/apis/client/clientset/versioned"
	"github.com/cairn-net/cairn/ipam/allocator"
	"github.com/cairn-net/cairn/ipam/kubestore"
)

// ipamAllocator adapts the block allocator to the agent's Allocator port.
type ipamAllocator struct{ a *allocator.Allocator }

func newAllocator(cairn versioned.Interface, nodes corelisters.NodeLister, node string, log *slog.Logger) (*allocator.Allocator, error) {
	a, err := allocator.New(kubestore.New(cairn), allocator.Options{
		Node:   node,
		Logger: log.With("component", "ipam"),
		NodeLabels: func(context.Context) (map[string]string, error) {
			n, err := nodes.Get(node)
			if err != nil {
				return nil, fmt.Errorf("read labels of node %s: %w", node, err)
			}
			return n.Labels, nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("create IPAM allocator: %w", err)
	}
	return a, nil
}

func (p ipamAllocator) AutoAssign(ctx context.Context, req AllocationRequest) ([]netip.Prefix, error) {
	r := allocator.Request{
		HandleID: req.HandleID, ContainerID: req.ContainerID, Interface: req.IfName,
		Namespace: req.Namespace, Pod: req.Pod, PodUID: req.PodUID, IPv4: req.IPv4, IPv6: req.IPv6,
	}
	if req.Pool != "" {
		r.Pools = []string{req.Pool}
	}
	out, err := p.a.AutoAssign(ctx, r)
	if errors.Is(err, allocator.ErrNoAddresses) {
		return nil, fmt.Errorf("%w: %w", ErrPoolExhausted, err)
	}
	return out, err
}

func (p ipamAllocator) ReleaseByHandle(ctx context.Context, handleID string) error {
	return p.a.ReleaseByHandle(ctx, handleID)
}

func (p ipamAllocator) OwnedBlocks(ctx context.Context) ([]netip.Prefix, error) {
	return p.a.OwnedBlocks(ctx)
}

func (p ipamAllocator) Borrowed(ctx context.Context) ([]netip.Addr, error) {
	ps, err := p.a.BorrowedAddresses(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, len(ps))
	for i, x := range ps {
		out[i] = x.Addr()
	}
	return out, nil
}
