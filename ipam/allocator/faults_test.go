package allocator_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/allocator"
	"github.com/cairn-net/cairn/ipam/ipamtest"
	"github.com/cairn-net/cairn/ipam/memstore"
)

// world is a store with two nodes' allocators and a model of what every
// handle should hold.
type world struct {
	t     *testing.T
	s     *memstore.Store
	clock *ipamtest.Clock
	nodes map[string]*allocator.Allocator
	held  map[string][]netip.Prefix // handle -> addresses
}

func newWorld(t *testing.T) *world {
	w := &world{t: t, s: memstore.New(), clock: newClock(), nodes: map[string]*allocator.Allocator{}, held: map[string][]netip.Prefix{}}
	addPool(t, w.s, "v4", "10.0.0.0/28", 30) // 4 blocks of 4
	addPool(t, w.s, "v6", "fd00::/124", 126) // 4 blocks of 4
	for _, n := range []string{"a", "b"} {
		w.nodes[n] = newAlloc(t, w.s, n, func(o *allocator.Options) {
			o.Clock = w.clock
			o.EmptyBlockGrace = time.Minute
			o.Backoff = ipam.Backoff{Attempts: 4, Base: 10 * time.Microsecond, Cap: 100 * time.Microsecond}
		})
	}
	return w
}

// step is one operation of the scenario; it updates the model only when
// it succeeds.
type step struct {
	name string
	run  func(ctx context.Context, w *world) error
}

func assignStep(node, handle string, v4, v6 int) step {
	return step{fmt.Sprintf("%s assigns %s", node, handle), func(ctx context.Context, w *world) error {
		got, err := w.nodes[node].AutoAssign(ctx, req(handle, v4, v6))
		if err == nil {
			w.held[handle] = got
		}
		return err
	}}
}

func releaseStep(node, handle string) step {
	return step{fmt.Sprintf("%s releases %s", node, handle), func(ctx context.Context, w *world) error {
		err := w.nodes[node].ReleaseByHandle(ctx, handle)
		if err == nil {
			delete(w.held, handle)
		}
		return err
	}}
}

func releaseAddrStep(node, handle string) step {
	return step{fmt.Sprintf("%s releases the address of %s", node, handle), func(ctx context.Context, w *world) error {
		addrs := w.held[handle]
		if len(addrs) == 0 {
			return nil
		}
		err := w.nodes[node].ReleaseAddresses(ctx, addrs[0].Addr())
		if err == nil {
			w.held[handle] = addrs[1:]
			if len(w.held[handle]) == 0 {
				delete(w.held, handle)
			}
		}
		return err
	}}
}

func releaseEmptyStep(node string) step {
	return step{node + " releases empty blocks", func(ctx context.Context, w *world) error {
		// As Run does: re-read (another node may have emptied a block by
		// releasing what it borrowed), then release what stayed empty.
		if err := w.nodes[node].Resync(ctx); err != nil {
			return err
		}
		w.clock.Step(time.Hour)
		_, err := w.nodes[node].ReleaseEmptyBlocks(ctx)
		return err
	}}
}

// scenario claims blocks on two nodes, fills the pool so that b borrows,
// releases by handle and by address, and finally releases everything.
func scenario() []step {
	steps := []step{assignStep("a", "h1", 1, 1)}
	for i := 2; i <= 9; i++ {
		steps = append(steps, assignStep("a", fmt.Sprintf("h%d", i), 1, 0))
	}
	for i := 10; i <= 14; i++ { // b claims the last block and borrows once
		steps = append(steps, assignStep("b", fmt.Sprintf("h%d", i), 1, 0))
	}
	steps = append(steps,
		releaseStep("a", "h2"),
		releaseAddrStep("b", "h11"),
		assignStep("b", "h15", 1, 1),
		releaseStep("a", "h1"),
		releaseStep("a", "h1"),
	)
	for i := 3; i <= 15; i++ {
		node := "a"
		if i >= 10 {
			node = "b"
		}
		steps = append(steps, releaseStep(node, fmt.Sprintf("h%d", i)))
	}
	return append(steps, releaseEmptyStep("a"), releaseEmptyStep("b"))
}

// verify compares the store with the model and checks consistency.
func (w *world) verify(when string) {
	w.t.Helper()
	got := allocated(w.t, w.s)
	want := map[netip.Addr]string{}
	for h, addrs := range w.held {
		for _, p := range addrs {
			want[p.Addr()] = h
		}
	}
	for a, h := range want {
		if got[a] != h {
			w.t.Errorf("%s: %s should be held by %s, store says %q", when, a, h, got[a])
		}
	}
	for a, h := range got {
		if want[a] == "" {
			w.t.Errorf("%s: %s held by %s in the store, by nobody in the model (leak)", when, a, h)
		}
	}
	mustCheck(w.t, w.s)
}

// run plays the scenario. With retryFailed, a failed step is retried once
// after the faults are cleared and the nodes resynced (the agent restarted
// and the CNI runtime retried); otherwise any failure fails the test.
// verifyFailed checks the state right after a failed assignment.
func (w *world) run(retryFailed, verifyFailed bool) {
	ctx := context.Background()
	for i, st := range scenario() {
		err := st.run(ctx, w)
		if err == nil {
			continue
		}
		if !retryFailed {
			w.t.Fatalf("step %d (%s): %v", i, st.name, err)
		}
		w.s.ClearFaults()
		for _, a := range w.nodes {
			if err := a.Resync(ctx); err != nil {
				w.t.Fatalf("resync after step %d: %v", i, err)
			}
		}
		if verifyFailed && strings.Contains(st.name, "assigns") {
			// A failed assignment whose rollback could write leaves no
			// trace. (A failed release may have half happened: it is
			// retried, as the runtime retries CNI DEL.)
			w.verify(fmt.Sprintf("after failed step %d (%s: %v)", i, st.name, err))
		}
		if err := st.run(ctx, w); err != nil {
			w.t.Fatalf("step %d (%s) retried: %v", i, st.name, err)
		}
	}
	w.verify("at the end")
	ctx = context.Background()
	blocks, _ := w.s.Blocks().List(ctx)
	for _, b := range blocks {
		w.t.Errorf("block %s left after releasing everything: %+v", b.Name, b.Spec)
	}
	affs, _ := w.s.Affinities().List(ctx)
	for _, a := range affs {
		w.t.Errorf("affinity %s left after releasing everything: %+v", a.Name, a.Spec)
	}
	handles, _ := w.s.Handles().List(ctx)
	for _, h := range handles {
		w.t.Errorf("handle %s left after releasing everything: %+v", h.Name, h.Spec)
	}
}

func TestScenarioWithoutFaults(t *testing.T) {
	w := newWorld(t)
	w.run(false, false)
	if st := w.nodes["b"].Stats(); st.Borrows == 0 {
		t.Errorf("scenario did not borrow: %+v", st)
	}
	t.Logf("scenario: %d writes", w.s.Writes())
}

// TestFaultAtEveryWrite fails each write of the scenario in turn, in each
// way a write can fail, and checks that nothing is duplicated, leaked or
// left inconsistent.
func TestFaultAtEveryWrite(t *testing.T) {
	base := newWorld(t)
	setup := base.s.Writes()
	base.run(false, false)
	writes := base.s.Writes() - setup
	faults := []struct {
		name        string
		err         error
		applied     bool
		mayFailStep bool
	}{
		{"conflict", ipam.ErrConflict, false, false},
		{"transient error", errors.New("etcdserver: request timed out"), false, false},
		{"lost response", errors.New("connection reset after the write"), true, false},
		{"rejected", ipam.ErrRejected, false, true},
		{"rejected after applying", ipam.ErrRejected, true, true},
		// An object that existed a moment ago and is gone when read.
		{"already exists, then gone", ipam.ErrAlreadyExists, false, true},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			for n := 1; n <= writes; n++ {
				w := newWorld(t)
				fault := w.s.FailWrite(n, f.err, f.applied)
				w.run(f.mayFailStep, true)
				if w.s.Hits(fault) != 1 {
					t.Errorf("write %d: fault not hit (scenario wrote %d times)", n, w.s.Writes())
				}
				if t.Failed() {
					t.Fatalf("failed with the fault at write %d (%s); writes:\n%s", n, w.s.WriteLog()[setup+n-1], strings.Join(w.s.WriteLog(), "\n"))
				}
			}
		})
	}
}

// TestPersistentFailureThenRecovery makes every write fail from the n-th
// on (the store went away), then heals the store; retried operations must
// converge on a consistent state.
func TestPersistentFailureThenRecovery(t *testing.T) {
	base := newWorld(t)
	setup := base.s.Writes()
	base.run(false, false)
	for n := 1; n <= base.s.Writes()-setup; n += 3 {
		w := newWorld(t)
		w.s.Inject(memstore.Fault{Skip: n - 1, Times: -1, Err: errors.New("apiserver unavailable")})
		w.run(true, false)
		if t.Failed() {
			t.Fatalf("failed with writes failing from write %d on", n)
		}
	}
}

// TestConcurrentNodesUnderFaults runs three nodes' assignments and
// releases concurrently while every 7th write conflicts and every 11th
// is applied but reported failed.
func TestConcurrentNodesUnderFaults(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	s.SetLatency(100 * time.Microsecond)
	addPool(t, s, "v4", "10.0.0.0/25", 29) // 16 blocks of 8: forces claims and borrowing
	s.Inject(memstore.Fault{Every: 7, Times: -1, Err: ipam.ErrConflict})
	s.Inject(memstore.Fault{Every: 11, Times: -1, Err: errors.New("lost response"), Applied: true})
	var mu sync.Mutex
	live := map[string]netip.Prefix{}
	var wg sync.WaitGroup
	for _, node := range []string{"a", "b", "c"} {
		a := newAlloc(t, s, node)
		for g := range 6 {
			wg.Go(func() {
				var mine []string
				for i := range 60 {
					if len(mine) > 0 && (i%3 == 2 || len(mine) > 6) {
						h := mine[0]
						if err := a.ReleaseByHandle(ctx, h); err != nil {
							t.Errorf("release %s: %v", h, err)
							continue
						}
						mine = mine[1:]
						mu.Lock()
						delete(live, h)
						mu.Unlock()
						continue
					}
					h := fmt.Sprintf("%s-%d-%d", node, g, i)
					got, err := a.AutoAssign(ctx, req(h, 1, 0))
					if errors.Is(err, allocator.ErrNoAddresses) {
						continue
					}
					if err != nil {
						t.Errorf("assign %s: %v", h, err)
						continue
					}
					mine = append(mine, h)
					mu.Lock()
					live[h] = got[0]
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	got := allocated(t, s)
	if len(got) != len(live) {
		t.Errorf("%d allocations in the store, %d live handles", len(got), len(live))
	}
	for h, p := range live {
		if got[p.Addr()] != h {
			t.Errorf("%s: store says %q holds %s", h, got[p.Addr()], p)
		}
	}
	s.ClearFaults()
	mustCheck(t, s)
	handles := slices.Collect(func(yield func(string) bool) {
		for h := range live {
			if !yield(h) {
				return
			}
		}
	})
	t.Logf("%d live handles, %d writes", len(handles), s.Writes())
}

// TestClaimRacingItsOwnRelease: the node's pending claim on a block
// collides with the affinity of its own release of that block, which is
// gone by the time it is read; the claim must simply go ahead.
func TestClaimRacingItsOwnRelease(t *testing.T) {
	s := memstore.New()
	addPool(t, s, "p", "10.0.0.0/28", 30)
	s.Inject(memstore.Fault{Kind: memstore.Affinities, Op: memstore.Create, Err: ipam.ErrAlreadyExists})
	a := newAlloc(t, s, "n1")
	assign(t, a, req("c1", 1, 0))
	mustCheck(t, s)
}
