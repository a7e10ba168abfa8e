package allocator

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/memstore"
)

// holdingStore holds block updates, while hold is set, until release is
// closed; entered receives each held update.
type holdingStore struct {
	ipam.Store
	hold    atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (s *holdingStore) Blocks() ipam.Objects[*v1.IPAMBlock] {
	return holdingBlocks{s.Store.Blocks(), s}
}

type holdingBlocks struct {
	ipam.Objects[*v1.IPAMBlock]
	s *holdingStore
}

func (b holdingBlocks) Update(ctx context.Context, obj *v1.IPAMBlock) (*v1.IPAMBlock, error) {
	if b.s.hold.Load() {
		b.s.entered <- struct{}{}
		<-b.s.release
	}
	return b.Objects.Update(ctx, obj)
}

// A caller that stops waiting while its release is being written cannot
// know what was released: the committer still owns the op's results (it
// filled them in before the write, and may yet reset them). Reading them
// anyway was a data race (found by the storm in tests/ipam under -race)
// and reported an allocation released whose write had not happened.
func TestReleaseAbandonedMidWriteReportsNothing(t *testing.T) {
	ms := memstore.New()
	pool := &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: v1.IPPoolSpec{CIDR: "10.0.0.0/24", BlockSize: 29}}
	if _, err := ms.Pools().Create(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	s := &holdingStore{Store: ms, entered: make(chan struct{}), release: make(chan struct{})}
	a, err := New(s, Options{Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.AutoAssign(context.Background(), Request{HandleID: "h1", IPv4: 1})
	if err != nil {
		t.Fatal(err)
	}
	block := netip.PrefixFrom(got[0].Addr(), 29).Masked()

	s.hold.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		released []ipam.Allocation
		err      error
	}
	done := make(chan result)
	go func() {
		released, err := a.releaseInBlocks(ctx, map[netip.Prefix]bool{block: true}, matchHandle("h1"))
		done <- result{released, err}
	}()
	<-s.entered // the write is on its way
	cancel()
	r := <-done
	if r.err == nil || len(r.released) != 0 {
		t.Errorf("release abandoned mid-write returned %v, %v; want nothing released and an error", r.released, r.err)
	}

	// Whether the held write lands or not, releasing the handle again
	// (queued behind it) leaves nothing.
	s.hold.Store(false)
	close(s.release)
	if err := a.ReleaseByHandle(context.Background(), "h1"); err != nil {
		t.Fatal(err)
	}
	b, err := ms.Blocks().Get(context.Background(), ipam.BlockName(block))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(b.Spec.Allocations); n != 0 {
		t.Errorf("block %s still holds %d allocations", block, n)
	}
}
