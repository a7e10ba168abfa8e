package agent

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/labels"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
)

// cachedStore is the ipam.Store of the allocator and the garbage collector
// inside the agent: reading or writing one object goes to the API server
// (every write a compare-and-swap on the version read), but listing blocks,
// claims and pools reads the informers' caches. The API server stays the
// authority, so a cache a moment behind costs a conflict or a lost claim
// race, never a duplicate address; and no pod start lists every block.
type cachedStore struct {
	ipam.Store
	inf *informers
}

// Blocks implements ipam.Store.
func (s cachedStore) Blocks() ipam.Objects[*v1.IPAMBlock] {
	return cachedList[*v1.IPAMBlock]{Objects: s.Store.Blocks(), kind: "IPAMBlocks", list: s.inf.blockLister.List}
}

// Affinities implements ipam.Store.
func (s cachedStore) Affinities() ipam.Objects[*v1.BlockAffinity] {
	return cachedList[*v1.BlockAffinity]{Objects: s.Store.Affinities(), kind: "BlockAffinities", list: s.inf.affinityLister.List}
}

// Pools implements ipam.Store.
func (s cachedStore) Pools() ipam.Objects[*v1.IPPool] {
	return cachedList[*v1.IPPool]{Objects: s.Store.Pools(), kind: "IPPools", list: s.inf.poolLister.List}
}

// cachedList serves List from a lister and everything else from Objects.
type cachedList[T interface{ DeepCopy() T }] struct {
	ipam.Objects[T]
	kind string
	list func(labels.Selector) ([]T, error)
}

// List implements ipam.Objects. Callers may modify what they get, so it
// returns copies, never the cache's objects.
func (c cachedList[T]) List(context.Context) ([]T, error) {
	objs, err := c.list(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("list %s from cache: %w", c.kind, err)
	}
	out := make([]T, len(objs))
	for i, o := range objs {
		out[i] = o.DeepCopy()
	}
	return out, nil
}
