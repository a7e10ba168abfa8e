package ipam

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/allocator"
	"github.com/cairn-net/cairn/ipam/audit"
	"github.com/cairn-net/cairn/ipam/ctl"
	"github.com/cairn-net/cairn/ipam/storetest"
)

// One control plane serves every subtest: starting one costs seconds.
// The subtests use disjoint pools and names and run in order.
func TestIPAMOnAPIServer(t *testing.T) {
	c := startCluster(t)
	t.Run("store contract", func(t *testing.T) { storetest.Run(t, c.store) })
	t.Run("three nodes allocate and release concurrently", func(t *testing.T) { testStress(t, c) })
	t.Run("allocators killed mid-burst, then GC", func(t *testing.T) { testKilledMidBurst(t, c) })
	t.Run("leader election", func(t *testing.T) { testLeaderElection(t, c) })
}

// checkClean runs "cairnctl ipam check" and fails on problems.
func checkClean(t *testing.T, c *cluster) {
	t.Helper()
	var out, errw bytes.Buffer
	if code := ctl.Run(context.Background(), c.store, []string{"check"}, &out, &errw); code != ctl.ExitOK {
		t.Errorf("cairnctl ipam check exited %d:\n%s%s", code, out.String(), errw.String())
	}
}

// testStress: 3 nodes x 8 goroutines x 400 interleaved assignments and
// releases in a pool of 16 blocks of 8, so nodes claim, release and
// re-claim blocks, and borrow when every block is taken.
func testStress(t *testing.T, c *cluster) {
	const (
		goroutines = 8
		ops        = 400
		maxLive    = 6
	)
	c.createPool(t, "stress", "10.20.0.0/25", 29)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	var mu sync.Mutex
	holder := map[netip.Addr]string{} // address -> live handle
	live := map[string]bool{}
	var noAddr, failures int
	var allocs []*allocator.Allocator
	var wg sync.WaitGroup
	maintCtx, stopMaint := context.WithCancel(ctx)
	var maint sync.WaitGroup
	start := time.Now()
	writes0 := c.writes.Load()
	for _, node := range []string{"stress-a", "stress-b", "stress-c"} {
		a, err := allocator.New(c.store, allocator.Options{Node: node, EmptyBlockGrace: 500 * time.Millisecond, Logger: logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		allocs = append(allocs, a)
		maint.Go(func() { a.Run(maintCtx, 250*time.Millisecond) })
		for g := range goroutines {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), uint64(len(node))))
				var mine []string
				for i := range ops {
					if len(mine) > 0 && (len(mine) >= maxLive || rng.IntN(100) < 45) {
						k := rng.IntN(len(mine))
						h := mine[k]
						mine = append(mine[:k], mine[k+1:]...)
						// Forget the address before releasing it: once the
						// release is written it may be handed out again.
						mu.Lock()
						for a, hh := range holder {
							if hh == h {
								delete(holder, a)
							}
						}
						delete(live, h)
						mu.Unlock()
						if err := a.ReleaseByHandle(ctx, h); err != nil {
							t.Errorf("release %s: %v", h, err)
						}
						continue
					}
					h := fmt.Sprintf("%s-%d-%d", node, g, i)
					got, err := a.AutoAssign(ctx, allocator.Request{HandleID: h, Namespace: "stress", Pod: h, IPv4: 1})
					mu.Lock()
					switch {
					case errors.Is(err, allocator.ErrNoAddresses):
						noAddr++
					case err != nil:
						failures++
						t.Errorf("assign %s: %v", h, err)
					default:
						for _, p := range got {
							if prev, dup := holder[p.Addr()]; dup {
								t.Errorf("DUPLICATE: %s handed to %s while %s holds it", p.Addr(), h, prev)
							}
							holder[p.Addr()] = h
						}
						live[h] = true
						mine = append(mine, h)
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopMaint()
	maint.Wait()

	snap, err := audit.Read(context.Background(), c.store)
	if err != nil {
		t.Fatal(err)
	}
	r := snap.Check()
	var inPool []audit.Holder
	stressPool := netip.MustParsePrefix("10.20.0.0/25")
	for _, h := range snap.Addresses() {
		if stressPool.Contains(h.Addr) {
			inPool = append(inPool, h)
		}
	}
	handles := 0
	for _, h := range snap.Handles {
		if h.Spec.Namespace == "stress" {
			handles++
		}
	}
	var st allocator.Stats
	for _, a := range allocs {
		s := a.Stats()
		st.Assigned += s.Assigned
		st.Released += s.Released
		st.BlockWrites += s.BlockWrites
		st.Conflicts += s.Conflicts
		st.Claims += s.Claims
		st.Borrows += s.Borrows
		st.MaxRetries = max(st.MaxRetries, s.MaxRetries)
	}
	t.Logf("%d operations in %v: %d assigned, %d released, %d refused (pool full), %d live at the end",
		3*goroutines*ops, elapsed.Round(time.Millisecond), st.Assigned, st.Released, noAddr, len(live))
	t.Logf("blocks claimed %d, addresses borrowed %d, block writes %d, conflicts %d, API writes %d",
		st.Claims, st.Borrows, st.BlockWrites, st.Conflicts, c.writes.Load()-writes0)
	t.Logf("MAX RETRY COUNT: %d", st.MaxRetries)
	t.Logf("check: %s", r.Summary())

	if n := len(r.DuplicateAddresses); n != 0 {
		t.Errorf("%d duplicate addresses", n)
	}
	if len(inPool) != len(live) || handles != len(live) {
		t.Errorf("LEAK: %d allocations, %d handles, %d live handles in the model", len(inPool), handles, len(live))
	}
	for _, h := range inPool {
		if !live[h.Handle] {
			t.Errorf("LEAK: %s held by released handle %s", h.Addr, h.Handle)
		}
	}
	if r.Problems() != 0 {
		t.Errorf("check found problems: %+v", r)
	}
	if st.Borrows == 0 || st.Claims <= 16 {
		t.Errorf("the pool did not force borrowing and re-claiming (borrows %d, claims %d)", st.Borrows, st.Claims)
	}
	if failures > 0 {
		t.Errorf("%d assignments failed other than for lack of addresses", failures)
	}
	checkClean(t, c)

	// Tear down: release everything so later subtests start clean.
	for h := range live {
		node := allocs[0]
		if err := node.ReleaseByHandle(context.Background(), h); err != nil {
			t.Errorf("release %s: %v", h, err)
		}
	}
	if st.MaxRetries >= int64(ipam.DefaultAttempts) {
		t.Errorf("a write used all its retries (%d)", st.MaxRetries)
	}
}
