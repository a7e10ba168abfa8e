package allocator_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/allocator"
	"github.com/cairn-net/cairn/ipam/memstore"
)

func TestAssignClaimsBlockAndRecordsHandle(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	addPool(t, s, "p4", "10.0.0.0/24", 28)
	a := newAlloc(t, s, "node-1")

	got := assign(t, a, req("c1", 1, 0))
	if len(got) != 1 || got[0].Bits() != 32 || !netip.MustParsePrefix("10.0.0.0/24").Contains(got[0].Addr()) {
		t.Fatalf("got %v, want one /32 in 10.0.0.0/24", got)
	}
	owned, err := a.OwnedBlocks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(owned) != 1 || !owned[0].Contains(got[0].Addr()) || owned[0].Bits() != 28 {
		t.Fatalf("owned %v, want the /28 holding %v", owned, got)
	}
	aff, err := s.Affinities().Get(ctx, ipam.AffinityName("node-1", owned[0]))
	if err != nil || aff.Spec.State != v1.AffinityConfirmed {
		t.Fatalf("affinity %+v, %v: want confirmed", aff, err)
	}
	h, err := s.Handles().Get(ctx, ipam.HandleName("c1"))
	if err != nil {
		t.Fatal(err)
	}
	if h.Spec.Blocks[owned[0].String()] != 1 || h.Spec.Pod != "pod-c1" || h.Spec.Node != "node-1" {
		t.Errorf("handle spec %+v", h.Spec)
	}
	mustCheck(t, s)

	if err := a.ReleaseByHandle(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := a.ReleaseByHandle(ctx, "c1"); err != nil {
		t.Fatalf("second release must succeed: %v", err)
	}
	if n := len(allocated(t, s)); n != 0 {
		t.Errorf("%d addresses still allocated", n)
	}
	mustCheck(t, s)
}

func TestDualStackReturnsOneOfEach(t *testing.T) {
	s := memstore.New()
	addPool(t, s, "p4", "10.1.0.0/16", 0)
	addPool(t, s, "p6", "fd00:1::/64", 0)
	a := newAlloc(t, s, "n1")
	got := assign(t, a, req("c1", 1, 1))
	if len(got) != 2 || !got[0].Addr().Is4() || got[0].Bits() != 32 || !got[1].Addr().Is6() || got[1].Bits() != 128 {
		t.Fatalf("got %v, want a /32 then a /128", got)
	}
	owned, _ := a.OwnedBlocks(context.Background())
	var bits []int
	for _, p := range owned {
		bits = append(bits, p.Bits())
	}
	slices.Sort(bits)
	if !slices.Equal(bits, []int{26, 122}) {
		t.Errorf("owned %v: blockSize 0 must mean /26 and /122", owned)
	}
	mustCheck(t, s)
}

func TestRetriedAssignReturnsSameAddresses(t *testing.T) {
	s := memstore.New()
	addPool(t, s, "p4", "10.0.0.0/24", 28)
	addPool(t, s, "p6", "fd00::/120", 124)
	a := newAlloc(t, s, "n1")
	first := assign(t, a, req("c1", 1, 0))
	// Same handle again, now dual-stack: the IPv4 address is kept and an
	// IPv6 one is added.
	second := assign(t, a, req("c1", 1, 1))
	if len(second) != 2 || second[0] != first[0] {
		t.Fatalf("second call %v, want %v plus an IPv6 address", second, first)
	}
	third := assign(t, a, req("c1", 1, 1))
	if !slices.Equal(second, third) {
		t.Fatalf("third call %v, want %v", third, second)
	}
	if n := len(allocated(t, s)); n != 2 {
		t.Errorf("%d allocations, want 2", n)
	}
	mustCheck(t, s)
}

func TestGroupCommitCombinesConcurrentAssignments(t *testing.T) {
	s := memstore.New()
	s.SetLatency(time.Millisecond) // let calls overlap as on a network
	addPool(t, s, "p4", "10.0.0.0/16", 0)
	a := newAlloc(t, s, "n1")
	const n = 100
	var wg sync.WaitGroup
	results := make([][]netip.Prefix, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { results[i], errs[i] = a.AutoAssign(context.Background(), req(hid(i), 1, 0)) })
	}
	wg.Wait()
	seen := map[netip.Prefix]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("assign %d: %v", i, errs[i])
		}
		if seen[results[i][0]] {
			t.Fatalf("%v handed out twice", results[i][0])
		}
		seen[results[i][0]] = true
	}
	blockUpdates := s.Calls(memstore.Blocks, memstore.Update)
	st := a.Stats()
	t.Logf("100 assignments: %d block updates, %d block creates, %d handle creates, %d writes in all; stats %+v",
		blockUpdates, s.Calls(memstore.Blocks, memstore.Create), s.Calls(memstore.Handles, memstore.Create), s.Writes(), st)
	if blockUpdates > 20 {
		t.Errorf("%d block updates for %d concurrent assignments: group commit is not combining them", blockUpdates, n)
	}
	if st.Claims != 2 {
		t.Errorf("claimed %d blocks for 100 addresses in /26 blocks, want 2", st.Claims)
	}
	mustCheck(t, s)
}

func TestStaleReleaseFails(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	addPool(t, s, "p4", "10.0.0.0/30", 30) // one block of four addresses
	a := newAlloc(t, s, "n1")
	first := assign(t, a, req("old", 1, 0))[0].Addr()
	b, _ := s.Blocks().Get(ctx, ipam.BlockName(netip.MustParsePrefix("10.0.0.0/30")))
	oldSeq := b.Spec.Allocations[0].Sequence
	if err := a.ReleaseByHandle(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	// Fill the block so the address is handed out again.
	var reused string
	for i := range 4 {
		got := assign(t, a, req(hid(i), 1, 0))[0].Addr()
		if got == first {
			reused = hid(i)
		}
	}
	if reused == "" {
		t.Fatal("address was not reused")
	}
	err := a.Release(ctx, ipam.AllocationRef{Addr: first, Sequence: oldSeq})
	if !errors.Is(err, ipam.ErrStale) {
		t.Fatalf("stale release: err %v, want ErrStale", err)
	}
	if got := allocated(t, s)[first]; got != reused {
		t.Fatalf("%s now held by %q, want %q: the stale release freed it", first, got, reused)
	}
	if err := a.Release(ctx, ipam.AllocationRef{Addr: first, Handle: "old"}); !errors.Is(err, ipam.ErrStale) {
		t.Fatalf("release naming the old handle: err %v, want ErrStale", err)
	}
	// The current holder's release works, and refreshes its handle away.
	if err := a.ReleaseAddresses(ctx, first); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Handles().Get(ctx, ipam.HandleName(reused)); !ipam.IsNotFound(err) {
		t.Errorf("handle %s should be gone with its only address: %v", reused, err)
	}
	mustCheck(t, s)
}

func TestNodesNeverShareABlock(t *testing.T) {
	s := memstore.New()
	s.SetLatency(200 * time.Microsecond)
	addPool(t, s, "p4", "10.0.0.0/26", 29) // 8 blocks of 8
	nodes := []*allocator.Allocator{newAlloc(t, s, "a"), newAlloc(t, s, "b"), newAlloc(t, s, "c")}
	var wg sync.WaitGroup
	for ni, a := range nodes {
		for g := range 12 {
			wg.Go(func() {
				if _, err := a.AutoAssign(context.Background(), req(hid(ni*100+g), 1, 0)); err != nil {
					t.Errorf("node %s: %v", a.Node(), err)
				}
			})
		}
	}
	wg.Wait()
	ctx := context.Background()
	affs, _ := s.Affinities().List(ctx)
	owner := map[string]string{}
	for _, af := range affs {
		if prev, ok := owner[af.Spec.CIDR]; ok {
			t.Errorf("block %s claimed by %s and %s", af.Spec.CIDR, prev, af.Spec.Node)
		}
		owner[af.Spec.CIDR] = af.Spec.Node
	}
	blocks, _ := s.Blocks().List(ctx)
	for _, b := range blocks {
		if n := ipam.AffinityNode(b.Spec.Affinity); owner[b.Spec.CIDR] != n {
			t.Errorf("block %s names %s, affinity says %s", b.Spec.CIDR, n, owner[b.Spec.CIDR])
		}
		for _, al := range b.Spec.Allocations {
			if al.Node != ipam.AffinityNode(b.Spec.Affinity) {
				t.Errorf("borrowed %d from %s although free blocks remained", al.Ordinal, b.Spec.CIDR)
			}
		}
	}
	if n := len(allocated(t, s)); n != 36 {
		t.Errorf("%d allocations, want 36", n)
	}
	mustCheck(t, s)
}

func TestBorrowOnlyWhenPoolHasNoFreeBlock(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	addPool(t, s, "p4", "10.0.0.0/28", 30) // 4 blocks of 4
	a := newAlloc(t, s, "a")
	b := newAlloc(t, s, "b")
	strict := newAlloc(t, s, "strict", func(o *allocator.Options) { o.StrictAffinity = true })
	for i := range 10 { // a takes 3 blocks, 2 addresses free in its third
		assign(t, a, req(hid(i), 1, 0))
	}
	for i := 10; i < 14; i++ { // b claims the last block and fills it
		assign(t, b, req(hid(i), 1, 0))
	}
	if st := b.Stats(); st.Borrows != 0 || st.Claims != 1 {
		t.Fatalf("b stats %+v: want one claim and no borrowing while a block was free", st)
	}
	if _, err := strict.AutoAssign(ctx, req("s", 1, 0)); !errors.Is(err, allocator.ErrNoAddresses) {
		t.Fatalf("strict affinity node: err %v, want ErrNoAddresses", err)
	}
	got := assign(t, b, req("borrow", 1, 0))
	borrowed, err := b.BorrowedAddresses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(borrowed, got) {
		t.Fatalf("b borrowed %v, announces %v", got, borrowed)
	}
	if ab, _ := a.BorrowedAddresses(ctx); len(ab) != 0 {
		t.Errorf("a borrowed nothing, announces %v", ab)
	}
	ownedA, _ := a.OwnedBlocks(ctx)
	if len(ownedA) != 3 || !slices.ContainsFunc(ownedA, func(p netip.Prefix) bool { return p.Contains(got[0].Addr()) }) {
		t.Errorf("a owns %v; the borrowed %v must be in one of them", ownedA, got)
	}
	select {
	case <-b.Changes():
	default:
		t.Error("borrowing did not signal Changes")
	}
	if err := b.ReleaseByHandle(ctx, "borrow"); err != nil {
		t.Fatal(err)
	}
	if bb, _ := b.BorrowedAddresses(ctx); len(bb) != 0 {
		t.Errorf("after release b still announces %v", bb)
	}
	mustCheck(t, s)
}

func TestMaxBlocksPerNode(t *testing.T) {
	s := memstore.New()
	addPool(t, s, "p4", "10.0.0.0/24", 30)
	a := newAlloc(t, s, "a", func(o *allocator.Options) { o.MaxBlocksPerNode = 1 })
	for i := range 4 {
		assign(t, a, req(hid(i), 1, 0))
	}
	_, err := a.AutoAssign(context.Background(), req("fifth", 1, 0))
	if !errors.Is(err, allocator.ErrNoAddresses) {
		t.Fatalf("err %v, want ErrNoAddresses at the block limit", err)
	}
	mustCheck(t, s)
}

func TestNodeAtBlockLimitBorrowsOnlyFromAFullPool(t *testing.T) {
	s := memstore.New()
	addPool(t, s, "p4", "10.0.0.0/29", 30) // two blocks of four
	a := newAlloc(t, s, "a", func(o *allocator.Options) { o.MaxBlocksPerNode = 1 })
	b := newAlloc(t, s, "b")
	for i := range 4 {
		assign(t, a, req(hid(i), 1, 0))
	}
	if _, err := a.AutoAssign(context.Background(), req("early", 1, 0)); !errors.Is(err, allocator.ErrNoAddresses) {
		t.Fatalf("a block was free: err %v, want ErrNoAddresses rather than borrowing", err)
	}
	assign(t, b, req("b0", 1, 0)) // b claims the last block: the pool is full
	got := assign(t, a, req("late", 1, 0))
	if borrowed, _ := a.BorrowedAddresses(context.Background()); !slices.Equal(borrowed, got) {
		t.Fatalf("a got %v, announces %v borrowed", got, borrowed)
	}
	mustCheck(t, s)
}

func TestPoolSelection(t *testing.T) {
	ctx := context.Background()
	type tc struct {
		name   string
		pools  func(*memstore.Store)
		labels map[string]string
		req    allocator.Request
		want   string // pool cidr the address must be in; "" means ErrNoAddresses
	}
	cases := []tc{
		{"selector matches", func(s *memstore.Store) {
			addPool(t, s, "r1", "10.1.0.0/24", 28, func(p *v1.IPPoolSpec) { p.NodeSelector = "rack=r1" })
			addPool(t, s, "r2", "10.2.0.0/24", 28, func(p *v1.IPPoolSpec) { p.NodeSelector = "rack=r2" })
		}, map[string]string{"rack": "r2"}, req("x", 1, 0), "10.2.0.0/24"},
		{"selector matches none", func(s *memstore.Store) {
			addPool(t, s, "r1", "10.1.0.0/24", 28, func(p *v1.IPPoolSpec) { p.NodeSelector = "rack=r1" })
		}, map[string]string{"rack": "r9"}, req("x", 1, 0), ""},
		{"disabled pool gives nothing", func(s *memstore.Store) {
			addPool(t, s, "off", "10.1.0.0/24", 28, func(p *v1.IPPoolSpec) { p.Disabled = true })
		}, nil, req("x", 1, 0), ""},
		{"disabled pool skipped", func(s *memstore.Store) {
			addPool(t, s, "a-off", "10.1.0.0/24", 28, func(p *v1.IPPoolSpec) { p.Disabled = true })
			addPool(t, s, "b-on", "10.2.0.0/24", 28)
		}, nil, req("x", 1, 0), "10.2.0.0/24"},
		// Of two overlapping pools created in the same second the name
		// decides which came first ("big"): it keeps serving.
		{"the older of two overlapping pools keeps serving", func(s *memstore.Store) {
			addPool(t, s, "big", "10.0.0.0/16", 28)
			addPool(t, s, "small", "10.0.5.0/24", 28)
		}, nil, req("x", 1, 0), "10.0.0.0/16"},
		{"the newer of two overlapping pools is never used", func(s *memstore.Store) {
			addPool(t, s, "big", "10.0.0.0/16", 28)
			addPool(t, s, "small", "10.0.5.0/24", 28)
		}, nil, withPools(req("x", 1, 0), "small"), ""},
		{"overlap does not spoil other pools", func(s *memstore.Store) {
			addPool(t, s, "a-big", "10.0.0.0/16", 28)
			addPool(t, s, "b-small", "10.0.5.0/24", 28)
			addPool(t, s, "c-ok", "10.9.0.0/24", 28)
		}, nil, withPools(req("x", 1, 0), "b-small", "c-ok"), "10.9.0.0/24"},
		{"manual pool only when named", func(s *memstore.Store) {
			addPool(t, s, "manual", "10.1.0.0/24", 28, func(p *v1.IPPoolSpec) { p.AssignmentMode = "Manual" })
		}, nil, req("x", 1, 0), ""},
		{"named manual pool", func(s *memstore.Store) {
			addPool(t, s, "auto", "10.1.0.0/24", 28)
			addPool(t, s, "manual", "10.2.0.0/24", 28, func(p *v1.IPPoolSpec) { p.AssignmentMode = "Manual" })
		}, nil, func() allocator.Request { r := req("x", 1, 0); r.Pools = []string{"manual"}; return r }(), "10.2.0.0/24"},
		{"named pools in order", func(s *memstore.Store) {
			addPool(t, s, "first", "10.1.0.0/24", 28)
			addPool(t, s, "second", "10.2.0.0/24", 28)
		}, nil, func() allocator.Request { r := req("x", 1, 0); r.Pools = []string{"second", "first"}; return r }(), "10.2.0.0/24"},
		// A LoadBalancer pool's addresses belong to Services: never a
		// pod's, never cut into node blocks, even when a pod names it.
		{"LoadBalancer pool gives pods nothing", func(s *memstore.Store) {
			addPool(t, s, "lb", "10.1.0.0/24", 28, lbUse)
		}, nil, req("x", 1, 0), ""},
		{"named LoadBalancer pool gives pods nothing", func(s *memstore.Store) {
			addPool(t, s, "lb", "10.1.0.0/24", 28, lbUse)
			addPool(t, s, "pods", "10.2.0.0/24", 28)
		}, nil, withPools(req("x", 1, 0), "lb"), ""},
		{"LoadBalancer pool skipped", func(s *memstore.Store) {
			addPool(t, s, "a-lb", "10.1.0.0/24", 28, lbUse)
			addPool(t, s, "b-pods", "10.2.0.0/24", 28, func(p *v1.IPPoolSpec) { p.AllowedUses = []v1.IPPoolUse{v1.IPPoolUseWorkload} })
		}, nil, req("x", 1, 0), "10.2.0.0/24"},
		{"v6 only from v6 pools", func(s *memstore.Store) {
			addPool(t, s, "p4", "10.1.0.0/24", 28)
			addPool(t, s, "p6", "fd00::/64", 0)
		}, nil, req("x", 0, 1), "fd00::/64"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := memstore.New()
			c.pools(s)
			a := newAlloc(t, s, "n1", func(o *allocator.Options) {
				o.NodeLabels = func(context.Context) (map[string]string, error) { return c.labels, nil }
			})
			got, err := a.AutoAssign(ctx, c.req)
			if c.want == "" {
				if !errors.Is(err, allocator.ErrNoAddresses) {
					t.Fatalf("got %v, %v; want ErrNoAddresses", got, err)
				}
				if n := s.Calls(memstore.Handles, memstore.Create); n != 0 {
					t.Errorf("%d handles created for a request that cannot be served", n)
				}
				if n := s.Calls(memstore.Blocks, memstore.Create); n != 0 {
					t.Errorf("%d blocks claimed for a request that cannot be served", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !netip.MustParsePrefix(c.want).Contains(got[0].Addr()) {
				t.Errorf("got %v, want an address in %s", got, c.want)
			}
			mustCheck(t, s)
		})
	}
}

func lbUse(p *v1.IPPoolSpec) { p.AllowedUses = []v1.IPPoolUse{v1.IPPoolUseLoadBalancer} }

func TestDisabledPoolKeepsAllocations(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	addPool(t, s, "p", "10.1.0.0/24", 28)
	a := newAlloc(t, s, "n1")
	got := assign(t, a, req("keep", 1, 0))
	p, _ := s.Pools().Get(ctx, "p")
	p.Spec.Disabled = true
	if _, err := s.Pools().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	a.InvalidatePools()
	if _, err := a.AutoAssign(ctx, req("new", 1, 0)); !errors.Is(err, allocator.ErrNoAddresses) {
		t.Fatalf("disabled pool: err %v, want ErrNoAddresses even with room in the node's block", err)
	}
	if h := allocated(t, s)[got[0].Addr()]; h != "keep" {
		t.Fatalf("existing allocation lost: %q", h)
	}
	if err := a.ReleaseByHandle(ctx, "keep"); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s)
}

func TestEmptyBlockReleasedAfterGrace(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	addPool(t, s, "p", "10.1.0.0/24", 28)
	clock := newClock()
	a := newAlloc(t, s, "n1", func(o *allocator.Options) { o.Clock = clock; o.EmptyBlockGrace = time.Minute })
	assign(t, a, req("c1", 1, 0))
	<-a.Changes() // the claim
	if err := a.ReleaseByHandle(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	clock.Step(59 * time.Second)
	if rel, err := a.ReleaseEmptyBlocks(ctx); err != nil || len(rel) != 0 {
		t.Fatalf("before the grace period: released %v, %v", rel, err)
	}
	clock.Step(time.Second)
	rel, err := a.ReleaseEmptyBlocks(ctx)
	if err != nil || len(rel) != 1 {
		t.Fatalf("after the grace period: released %v, %v; want the block", rel, err)
	}
	select {
	case <-a.Changes():
	default:
		t.Error("release did not signal Changes")
	}
	if owned, _ := a.OwnedBlocks(ctx); len(owned) != 0 {
		t.Errorf("still owns %v", owned)
	}
	if affs, _ := s.Affinities().List(ctx); len(affs) != 0 {
		t.Errorf("affinities left: %v", affs)
	}
	if blocks, _ := s.Blocks().List(ctx); len(blocks) != 0 {
		t.Errorf("blocks left: %d", len(blocks))
	}
	// The node claims again on demand.
	assign(t, a, req("c2", 1, 0))
	mustCheck(t, s)
}

func TestEmptyBlockKeptWhenSomeoneBorrowsMeanwhile(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	addPool(t, s, "p", "10.1.0.0/30", 30) // a single block
	clock := newClock()
	a := newAlloc(t, s, "a", func(o *allocator.Options) { o.Clock = clock; o.EmptyBlockGrace = time.Minute })
	b := newAlloc(t, s, "b")
	assign(t, a, req("c1", 1, 0))
	if err := a.ReleaseByHandle(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	clock.Step(time.Hour)
	assign(t, b, req("borrower", 1, 0)) // a's cached view is now stale
	rel, err := a.ReleaseEmptyBlocks(ctx)
	if err != nil || len(rel) != 0 {
		t.Fatalf("released %v, %v: a block with a borrowed address must be kept", rel, err)
	}
	if owned, _ := a.OwnedBlocks(ctx); len(owned) != 1 {
		t.Errorf("a owns %v, want its block back", owned)
	}
	mustCheck(t, s)
}

func TestResyncFinishesInterruptedClaims(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	addPool(t, s, "p", "10.1.0.0/24", 28)
	// Crash after the block was created, before the claim was confirmed.
	s.Inject(memstore.Fault{Kind: memstore.Affinities, Op: memstore.Update, Times: -1, Err: ipam.ErrRejected})
	a := newAlloc(t, s, "n1")
	if _, err := a.AutoAssign(ctx, req("c1", 1, 0)); err == nil {
		t.Fatal("assign succeeded although the claim could not be confirmed")
	}
	s.ClearFaults()
	fresh := newAlloc(t, s, "n1") // the restarted agent
	if err := fresh.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	owned, _ := fresh.OwnedBlocks(ctx)
	if len(owned) != 1 {
		t.Fatalf("owned %v: the interrupted claim must be confirmed", owned)
	}
	assign(t, fresh, req("c2", 1, 0))
	if st := fresh.Stats(); st.Claims != 0 {
		t.Errorf("claimed %d more blocks; the confirmed one had room", st.Claims)
	}
	mustCheck(t, s)
}

func withPools(r allocator.Request, pools ...string) allocator.Request {
	r.Pools = pools
	return r
}
