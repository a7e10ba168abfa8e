package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/allocator"
	"github.com/cairn-net/cairn/ipam/audit"
	"github.com/cairn-net/cairn/ipam/gc"
)

var errKilled = errors.New("agent killed")

// errGone is what a final killable's calls fail with once it is dead:
// it wraps context.Canceled, which no retry loop retries
// (ipam.Retryable), so the dead agent's goroutines stop at once, as a
// killed process's would, instead of retrying against a store that no
// longer answers. What reached the store is the same either way.
var errGone = fmt.Errorf("%w: %w", errKilled, context.Canceled)

// killable is a store through which an agent dies: from the killAt-th
// write on, no call reaches the API server (the write that triggers it
// does, when applyLast is set, so the server has work the agent never
// saw answered). A final killable fails calls with errGone instead of
// errKilled.
type killable struct {
	ipam.Store
	mu        sync.Mutex
	writes    int
	killAt    int
	applyLast bool
	final     bool // set before use
	dead      bool
	killed    chan struct{}
}

func newKillable(s ipam.Store, killAt int, applyLast bool) *killable {
	return &killable{Store: s, killAt: killAt, applyLast: applyLast, killed: make(chan struct{})}
}

// enter is called before each call; after it returns false the call does
// not happen. done is called after a write that went through.
func (k *killable) enter(write bool) (ok bool, after func() error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.dead {
		return false, nil
	}
	if !write {
		return true, func() error { return nil }
	}
	k.writes++
	if k.writes < k.killAt {
		return true, func() error { return nil }
	}
	k.dead = true
	close(k.killed)
	return k.applyLast, func() error { return k.deadErr() }
}

func (k *killable) deadErr() error {
	if k.final {
		return errGone
	}
	return errKilled
}

func (k *killable) Blocks() ipam.Objects[*v1.IPAMBlock] {
	return killObjects[*v1.IPAMBlock]{k.Store.Blocks(), k}
}
func (k *killable) Affinities() ipam.Objects[*v1.BlockAffinity] {
	return killObjects[*v1.BlockAffinity]{k.Store.Affinities(), k}
}
func (k *killable) Handles() ipam.Objects[*v1.IPAMHandle] {
	return killObjects[*v1.IPAMHandle]{k.Store.Handles(), k}
}
func (k *killable) Pools() ipam.Objects[*v1.IPPool] {
	return killObjects[*v1.IPPool]{k.Store.Pools(), k}
}

type killObjects[T any] struct {
	ipam.Objects[T]
	k *killable
}

func call[R any](k *killable, write bool, fn func() (R, error)) (R, error) {
	var zero R
	ok, after := k.enter(write)
	if !ok && after == nil {
		return zero, k.deadErr()
	}
	if !ok {
		return zero, after()
	}
	r, err := fn()
	if err != nil {
		return r, err
	}
	if aerr := after(); aerr != nil {
		return zero, aerr // applied, but the agent died before hearing so
	}
	return r, nil
}

func (o killObjects[T]) Get(ctx context.Context, name string) (T, error) {
	return call(o.k, false, func() (T, error) { return o.Objects.Get(ctx, name) })
}
func (o killObjects[T]) List(ctx context.Context) ([]T, error) {
	return call(o.k, false, func() ([]T, error) { return o.Objects.List(ctx) })
}
func (o killObjects[T]) Create(ctx context.Context, obj T) (T, error) {
	return call(o.k, true, func() (T, error) { return o.Objects.Create(ctx, obj) })
}
func (o killObjects[T]) Update(ctx context.Context, obj T) (T, error) {
	return call(o.k, true, func() (T, error) { return o.Objects.Update(ctx, obj) })
}
func (o killObjects[T]) Delete(ctx context.Context, name, rv string) error {
	_, err := call(o.k, true, func() (struct{}, error) { return struct{}{}, o.Objects.Delete(ctx, name, rv) })
	return err
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Step(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// testKilledMidBurst kills the agent of one node in the middle of pod
// bursts, repeatedly, while pods come and go (some deleted while the
// agent is down, so their CNI DEL never runs); the agent restarts each
// time. Then the garbage collector runs (with real pods and nodes as
// owners): check must find nothing, and exactly the live pods hold
// addresses.
func testKilledMidBurst(t *testing.T, c *cluster) {
	const (
		ns     = "fault"
		node   = "fault-a"
		rounds = 8
		burst  = 16
	)
	c.createPool(t, "fault", "10.30.0.0/25", 29)
	c.createNamespace(t, ns)
	c.createNode(t, node)
	ctx := context.Background()
	live := map[string]netip.Addr{} // pod -> address
	var mu sync.Mutex
	pod := 0
	crashes := 0
	for round := range rounds {
		ks := newKillable(c.store, 4+5*round, round%2 == 1)
		a, err := allocator.New(ks, allocator.Options{Node: node, Logger: logger(t), RollbackTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		bctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for range burst {
			pod++
			name := fmt.Sprintf("p%d", pod)
			if err := c.createPod(ctx, ns, name, node); err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				got, err := a.AutoAssign(bctx, allocator.Request{HandleID: name + ".eth0", Namespace: ns, Pod: name, IPv4: 1})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					// The pod never got its network; it is deleted.
					if derr := c.deletePod(ctx, ns, name); derr != nil {
						t.Error(derr)
					}
					return
				}
				live[name] = got[0].Addr()
			})
		}
		// Some older pods are deleted meanwhile; their DEL reaches the
		// agent only while it lives.
		mu.Lock()
		var victims []string
		for name := range live {
			if len(victims) < 4 {
				victims = append(victims, name)
			}
		}
		for _, name := range victims {
			delete(live, name)
			if err := c.deletePod(ctx, ns, name); err != nil {
				t.Error(err)
			}
		}
		mu.Unlock()
		for _, name := range victims {
			wg.Go(func() { _ = a.ReleaseByHandle(bctx, name+".eth0") })
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-ks.killed:
			crashes++
			cancel()
		case <-done:
		}
		cancel()
		<-done
	}
	t.Logf("%d of %d agents were killed mid-burst; %d pods live", crashes, rounds, len(live))
	if crashes < rounds/2 {
		t.Errorf("only %d rounds reached their kill point: the test is not killing agents", crashes)
	}

	// The agent restarts and resyncs; the collector runs past its grace
	// period, looking up real pods and nodes.
	restarted, err := allocator.New(c.store, allocator.Options{Node: node, Logger: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := restarted.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	before, err := audit.Check(ctx, c.store)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("before GC: %s", before.Summary())
	clock := &fakeClock{now: time.Now()}
	const grace = time.Minute
	col, err := gc.New(gc.Options{Store: c.store, Owners: gc.ClientOwners{Client: c.core}, Grace: grace, Clock: clock, Logger: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for pass := range 4 {
		res, err := col.RunOnce(ctx)
		if err != nil {
			t.Fatalf("GC pass %d: %v", pass, err)
		}
		t.Logf("GC pass %d: released %d addresses, deleted %d handles, %d blocks, %d affinities; %d waiting",
			pass, len(res.Released), len(res.DeletedHandles), len(res.DeletedBlocks), len(res.DeletedAffinities), res.Waiting)
		clock.Step(grace)
	}
	checkClean(t, c)
	snap, err := audit.Read(ctx, c.store)
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]netip.Addr{}
	for _, h := range snap.Addresses() {
		if h.Namespace == ns {
			held[h.Pod] = h.Addr
		}
	}
	if len(held) != len(live) {
		t.Errorf("%d addresses held in namespace %s, %d live pods", len(held), ns, len(live))
	}
	for name, addr := range live {
		if held[name] != addr {
			t.Errorf("live pod %s: holds %v, was given %s", name, held[name], addr)
		}
	}
}
