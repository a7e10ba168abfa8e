package allocator_test

import (
	"context"
	"sync"
	"testing"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/memstore"
)

// staleStore answers the next read of one block with an old version, as
// a read that started before a write and returned after it does.
type staleStore struct {
	ipam.Store
	mu  sync.Mutex
	old *v1.IPAMBlock
}

func (s *staleStore) Blocks() ipam.Objects[*v1.IPAMBlock] { return staleBlocks{s.Store.Blocks(), s} }

type staleBlocks struct {
	ipam.Objects[*v1.IPAMBlock]
	s *staleStore
}

func (b staleBlocks) Get(ctx context.Context, name string) (*v1.IPAMBlock, error) {
	b.s.mu.Lock()
	old := b.s.old
	if old != nil && old.Name == name {
		b.s.old = nil
		b.s.mu.Unlock()
		return old.DeepCopy(), nil
	}
	b.s.mu.Unlock()
	return b.Objects.Get(ctx, name)
}

// TestReleaseNeverTrustsAStaleCacheForNothingToDo: the allocator's view of
// a block went back to a version without an allocation the store holds; a
// release by handle must still free it, not decide from the stale view
// that there is nothing to write and then delete the handle.
func TestReleaseNeverTrustsAStaleCacheForNothingToDo(t *testing.T) {
	ctx := context.Background()
	mem := memstore.New()
	addPool(t, mem, "p", "10.0.0.0/30", 30)
	s := &staleStore{Store: mem}
	a := newAlloc(t, s, "n1")
	assign(t, a, req("first", 1, 0)) // claims the block
	name := ipam.BlockName(ipam.BlockOf(assign(t, a, req("victim", 1, 0))[0].Addr(), 30))
	if err := a.ReleaseByHandle(ctx, "first"); err != nil {
		t.Fatal(err)
	}
	before, err := mem.Blocks().Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	old := before.DeepCopy()
	old.Spec.Allocations = nil // a version from before "victim" was written
	s.mu.Lock()
	s.old = old
	s.mu.Unlock()
	if err := a.Resync(ctx); err != nil { // installs the stale version
		t.Fatal(err)
	}
	if err := a.ReleaseByHandle(ctx, "victim"); err != nil {
		t.Fatal(err)
	}
	if n := len(allocated(t, mem)); n != 0 {
		t.Errorf("%d allocations left: the release trusted a stale view", n)
	}
	mustCheck(t, mem)
}
