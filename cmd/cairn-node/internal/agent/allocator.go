package agent

import (
	"context"
	"fmt"
	"log/slog"

	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/allocator"
)

// newAllocator returns the node's address allocator, working on store and
// matching pools' node selectors against the Node in the cache.
func newAllocator(store ipam.Store, nodes corelisters.NodeLister, node string, log *slog.Logger) (*allocator.Allocator, error) {
	a, err := allocator.New(store, allocator.Options{
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
