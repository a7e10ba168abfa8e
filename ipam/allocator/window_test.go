package allocator_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/gc"
	"github.com/cairn-net/cairn/ipam/ipamtest"
	"github.com/cairn-net/cairn/ipam/memstore"
)

// barrierStore makes the first handle create and the first block update
// each wait for the other: an assignment that writes them one after the
// other never gets past the first, and fails when the wait runs out.
type barrierStore struct {
	*memstore.Store
	mu      sync.Mutex
	arrived map[string]bool
	open    chan struct{}
}

func (b *barrierStore) arrive(ctx context.Context, what string) error {
	b.mu.Lock()
	b.arrived[what] = true
	if len(b.arrived) == 2 {
		select {
		case <-b.open:
		default:
			close(b.open)
		}
	}
	b.mu.Unlock()
	// The bound only turns a serial order into a failure; an overlapping
	// one opens the barrier at once.
	t := time.NewTimer(20 * time.Second)
	defer t.Stop()
	select {
	case <-b.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("%s waited 20 s for the other write: %w", what, ipam.ErrRejected)
	}
}

func (b *barrierStore) Blocks() ipam.Objects[*v1.IPAMBlock] {
	return barrierBlocks{b.Store.Blocks(), b}
}

func (b *barrierStore) Handles() ipam.Objects[*v1.IPAMHandle] {
	return barrierHandles{b.Store.Handles(), b}
}

type barrierBlocks struct {
	ipam.Objects[*v1.IPAMBlock]
	b *barrierStore
}

func (o barrierBlocks) Update(ctx context.Context, obj *v1.IPAMBlock) (*v1.IPAMBlock, error) {
	if err := o.b.arrive(ctx, "block update"); err != nil {
		return nil, err
	}
	return o.Objects.Update(ctx, obj)
}

type barrierHandles struct {
	ipam.Objects[*v1.IPAMHandle]
	b *barrierStore
}

func (o barrierHandles) Create(ctx context.Context, obj *v1.IPAMHandle) (*v1.IPAMHandle, error) {
	if err := o.b.arrive(ctx, "handle create"); err != nil {
		return nil, err
	}
	return o.Objects.Create(ctx, obj)
}

// TestNewHandleAndBlockWriteOverlap: a pod's first assignment writes its
// handle and its block at the same time, so the ADD waits for one API
// round trip, not two (issue 15).
func TestNewHandleAndBlockWriteOverlap(t *testing.T) {
	s := memstore.New()
	addPool(t, s, "default", "10.244.0.0/24", 28)
	// The node's block exists already: the assignment below is one
	// handle create and one block update.
	assign(t, newAlloc(t, s, "n1"), req("first", 1, 0))
	b := &barrierStore{Store: s, arrived: map[string]bool{}, open: make(chan struct{})}
	a := newAlloc(t, b, "n1")
	got := assign(t, a, req("second", 1, 0))
	if held := allocated(t, s); held[got[0].Addr()] != "second" {
		t.Errorf("store holds %v, want %v for second", held, got)
	}
	mustCheck(t, s)
}

// crashWindow leaves what an agent that died between its two writes
// leaves: the block holds an address for handle id, and the handle was
// never written. It returns that address.
func crashWindow(t *testing.T, s *memstore.Store, node, id string) netip.Addr {
	t.Helper()
	assign(t, newAlloc(t, s, node), req("first", 1, 0))
	before := allocated(t, s)
	// The handle create fails; the block write lands; the rollback's
	// block write fails too, as if the process had died.
	s.Inject(memstore.Fault{Kind: memstore.Handles, Op: memstore.Create, Err: ipam.ErrRejected})
	s.Inject(memstore.Fault{Kind: memstore.Blocks, Op: memstore.Update, Skip: 1, Times: -1, Err: ipam.ErrRejected})
	if _, err := newAlloc(t, s, node).AutoAssign(context.Background(), req(id, 1, 0)); err == nil {
		t.Fatal("assignment with its handle create failing succeeded")
	}
	s.ClearFaults()
	var orphan netip.Addr
	for addr, h := range allocated(t, s) {
		if h == id && before[addr] == "" {
			orphan = addr
		}
	}
	if !orphan.IsValid() {
		t.Fatalf("the faults left no allocation of %s behind (store %v): the test does not reach the window", id, allocated(t, s))
	}
	if _, err := s.Handles().Get(context.Background(), ipam.HandleName(id)); !ipam.IsNotFound(err) {
		t.Fatalf("handle %s: %v, want it never written", id, err)
	}
	return orphan
}

// TestHandleNeverWrittenIsReleasedByDEL: an agent that died after a new
// handle's block write landed and before the handle's did leaves an
// address whose handle does not exist. The runtime's DEL of that
// attachment, served by the restarted agent, releases it.
func TestHandleNeverWrittenIsReleasedByDEL(t *testing.T) {
	s := memstore.New()
	addPool(t, s, "default", "10.244.0.0/24", 28)
	orphan := crashWindow(t, s, "n1", "crashed")
	restarted := newAlloc(t, s, "n1")
	if err := restarted.ReleaseByHandle(context.Background(), "crashed"); err != nil {
		t.Fatal(err)
	}
	if h := allocated(t, s)[orphan]; h != "" {
		t.Errorf("after the DEL %s is still held by %q: leaked", orphan, h)
	}
	mustCheck(t, s)
	// A DEL of a handle that never held anything costs no API write.
	writes := restarted.Stats().BlockWrites
	if err := restarted.ReleaseByHandle(context.Background(), "never"); err != nil {
		t.Fatal(err)
	}
	if n := restarted.Stats().BlockWrites - writes; n != 0 {
		t.Errorf("DEL of an unknown handle wrote %d blocks", n)
	}
}

// goneOwners: every pod is gone, every node exists.
type goneOwners struct{}

func (goneOwners) PodAlive(context.Context, gc.Pod) (bool, error)   { return false, nil }
func (goneOwners) NodeExists(context.Context, string) (bool, error) { return true, nil }

// TestHandleNeverWrittenIsCollected: when no DEL comes, the garbage
// collector releases the address once its pod is gone, after the grace
// period, as it does any allocation whose owner is gone.
func TestHandleNeverWrittenIsCollected(t *testing.T) {
	s := memstore.New()
	addPool(t, s, "default", "10.244.0.0/24", 28)
	orphan := crashWindow(t, s, "n1", "crashed")
	clock := ipamtest.NewClock()
	c, err := gc.New(gc.Options{Store: s, Owners: goneOwners{}, Grace: time.Minute, Clock: clock, Logger: slog.New(slog.DiscardHandler), Backoff: fastBackoff})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		clock.Step(2 * time.Minute)
	}
	if h := allocated(t, s)[orphan]; h != "" {
		t.Errorf("after two collections past the grace %s is still held by %q: leaked", orphan, h)
	}
	mustCheck(t, s)
}

// TestRetryAfterWindowDoesNotKeepTwo: a retried ADD that finds its handle
// created by the first attempt gives back what it assigned meanwhile, so
// the handle holds one address, not two.
func TestRetryAfterWindowDoesNotKeepTwo(t *testing.T) {
	s := memstore.New()
	addPool(t, s, "default", "10.244.0.0/24", 28)
	a := newAlloc(t, s, "n1")
	first := assign(t, a, req("h", 1, 0))
	again := assign(t, newAlloc(t, s, "n1"), req("h", 1, 0))
	if len(again) != 1 || again[0] != first[0] {
		t.Errorf("retry got %v, want %v", again, first)
	}
	n := 0
	for _, h := range allocated(t, s) {
		if h == "h" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("handle h holds %d addresses, want 1", n)
	}
	mustCheck(t, s)
}
