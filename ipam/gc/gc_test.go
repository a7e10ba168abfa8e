package gc_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/allocator"
	"github.com/cairn-net/cairn/ipam/audit"
	"github.com/cairn-net/cairn/ipam/gc"
	"github.com/cairn-net/cairn/ipam/ipamtest"
	"github.com/cairn-net/cairn/ipam/memstore"
)

// owners is a fake cluster: live pods (namespace/name -> node and UID)
// and nodes.
type owners struct {
	mu      sync.Mutex
	pods    map[string]livePod
	nodes   map[string]bool
	onCheck func(ns, name string) // called on every pod lookup
}

type livePod struct{ node, uid string }

func newOwners(nodes ...string) *owners {
	o := &owners{pods: map[string]livePod{}, nodes: map[string]bool{}}
	for _, n := range nodes {
		o.nodes[n] = true
	}
	return o
}

func (o *owners) PodAlive(_ context.Context, pod gc.Pod) (bool, error) {
	o.mu.Lock()
	hook := o.onCheck
	o.mu.Unlock()
	if hook != nil {
		hook(pod.Namespace, pod.Name)
	}
	o.mu.Lock()
	live, ok := o.pods[pod.Namespace+"/"+pod.Name]
	o.mu.Unlock()
	return ok && (pod.Node == "" || live.node == pod.Node) && (pod.UID == "" || live.uid == pod.UID), nil
}

func (o *owners) NodeExists(_ context.Context, name string) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.nodes[name], nil
}

func (o *owners) setPod(ns, name, node string) { o.setPodUID(ns, name, node, "") }

// setPodUID makes the pod live on node with uid, or deletes it when node
// is empty.
func (o *owners) setPodUID(ns, name, node, uid string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if node == "" {
		delete(o.pods, ns+"/"+name)
	} else {
		o.pods[ns+"/"+name] = livePod{node: node, uid: uid}
	}
}

type env struct {
	t      *testing.T
	s      *memstore.Store
	clock  *ipamtest.Clock
	owners *owners
	gc     *gc.Collector
	allocs map[string]*allocator.Allocator
}

const grace = time.Minute

func newEnv(t *testing.T, nodes ...string) *env {
	e := &env{t: t, s: memstore.New(), clock: ipamtest.NewClock(), owners: newOwners(nodes...), allocs: map[string]*allocator.Allocator{}}
	if _, err := e.s.Pools().Create(context.Background(), &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: v1.IPPoolSpec{CIDR: "10.0.0.0/27", BlockSize: 29}}); err != nil {
		t.Fatal(err)
	}
	var err error
	e.gc, err = gc.New(gc.Options{Store: e.s, Owners: e.owners, Grace: grace, Clock: e.clock, Logger: slog.New(slog.DiscardHandler),
		Backoff: ipam.Backoff{Base: 10 * time.Microsecond, Cap: 100 * time.Microsecond}})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		a, err := allocator.New(e.s, allocator.Options{Node: n, Clock: e.clock, PoolCacheTTL: time.Hour,
			Backoff: ipam.Backoff{Base: 10 * time.Microsecond, Cap: 100 * time.Microsecond}})
		if err != nil {
			t.Fatal(err)
		}
		e.allocs[n] = a
	}
	return e
}

// pod starts a pod on node: it exists and gets an address.
func (e *env) pod(node, name string) netip.Addr {
	e.t.Helper()
	e.owners.setPod("default", name, node)
	got, err := e.allocs[node].AutoAssign(context.Background(), allocator.Request{HandleID: "h-" + name, Namespace: "default", Pod: name, IPv4: 1})
	if err != nil {
		e.t.Fatal(err)
	}
	return got[0].Addr()
}

func (e *env) pass() gc.Result {
	e.t.Helper()
	res, err := e.gc.RunOnce(context.Background())
	if err != nil {
		e.t.Fatalf("gc pass: %v", err)
	}
	return res
}

func (e *env) holder(addr netip.Addr) string {
	snap, err := audit.Read(context.Background(), e.s)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, h := range snap.Find(addr) {
		return h.Handle
	}
	return ""
}

func (e *env) check() {
	e.t.Helper()
	r, err := audit.Check(context.Background(), e.s)
	if err != nil {
		e.t.Fatal(err)
	}
	if r.Problems() != 0 {
		e.t.Errorf("check: %s: %+v", r.Summary(), r)
	}
}

func TestReleasesAddressOfGonePodAfterGrace(t *testing.T) {
	e := newEnv(t, "n1")
	live := e.pod("n1", "live")
	gone := e.pod("n1", "gone")
	e.owners.setPod("default", "gone", "")
	if res := e.pass(); len(res.Released) != 0 || res.Waiting == 0 {
		t.Fatalf("first sighting released %v (waiting %d): must wait the grace period", res.Released, res.Waiting)
	}
	e.clock.Step(grace - time.Second)
	if res := e.pass(); len(res.Released) != 0 {
		t.Fatalf("released %v before the grace period ended", res.Released)
	}
	e.clock.Step(time.Second)
	res := e.pass()
	if len(res.Released) != 1 || res.Released[0] != gone {
		t.Fatalf("released %v, want [%s]", res.Released, gone)
	}
	if e.holder(gone) != "" || e.holder(live) != "h-live" {
		t.Errorf("gone %s held by %q, live %s by %q", gone, e.holder(gone), live, e.holder(live))
	}
	if _, err := e.s.Handles().Get(context.Background(), ipam.HandleName("h-gone")); !ipam.IsNotFound(err) {
		t.Errorf("handle of the gone pod: %v, want deleted with its address", err)
	}
	e.check()
}

func TestPodBackBeforeGraceEndsIsKept(t *testing.T) {
	e := newEnv(t, "n1")
	addr := e.pod("n1", "flaky")
	e.owners.setPod("default", "flaky", "")
	e.pass()
	e.owners.setPod("default", "flaky", "n1") // the cache was late
	e.pass()
	e.owners.setPod("default", "flaky", "")
	e.clock.Step(grace)
	if res := e.pass(); len(res.Released) != 0 {
		t.Fatalf("released %v: the grace period must restart when the owner reappears", res.Released)
	}
	if e.holder(addr) != "h-flaky" {
		t.Fatal("address lost")
	}
}

func TestRecheckRightBeforeRelease(t *testing.T) {
	e := newEnv(t, "n1")
	addr := e.pod("n1", "p")
	e.owners.setPod("default", "p", "")
	e.pass()
	e.clock.Step(grace)
	calls := 0
	e.owners.onCheck = func(string, string) {
		if calls++; calls == 2 { // the scan said gone; before the release it is back
			e.owners.setPod("default", "p", "n1")
		}
	}
	if res := e.pass(); len(res.Released) != 0 {
		t.Fatalf("released %v although the re-check found the pod", res.Released)
	}
	if e.holder(addr) != "h-p" {
		t.Fatal("address lost")
	}
}

func TestReleaseIsConditionalOnTheAllocationChecked(t *testing.T) {
	e := newEnv(t, "n1")
	addr := e.pod("n1", "old")
	e.owners.setPod("default", "old", "")
	e.pass()
	e.clock.Step(grace)
	// Between the re-check and the release, the address is released by
	// the pod's own DEL and handed to a new pod.
	e.owners.onCheck = func(_, name string) {
		if name != "old" {
			return
		}
		e.owners.onCheck = nil
		a := e.allocs["n1"]
		if err := a.ReleaseByHandle(context.Background(), "h-old"); err != nil {
			t.Error(err)
		}
		for i := 0; e.holder(addr) == ""; i++ { // fill until the address is reused
			e.pod("n1", fmt.Sprintf("new-%d", i))
		}
	}
	e.pass()
	newHolder := e.holder(addr)
	if newHolder == "" || newHolder == "h-old" {
		t.Fatalf("address %s held by %q after GC: the new pod's allocation was released", addr, newHolder)
	}
	e.check()
}

func TestPodOfSameNameOnAnotherNodeIsNotTheOwner(t *testing.T) {
	e := newEnv(t, "n1", "n2")
	addr := e.pod("n1", "web-0")
	e.owners.setPod("default", "web-0", "n2") // rescheduled; DEL never ran on n1
	e.pass()
	e.clock.Step(grace)
	if res := e.pass(); len(res.Released) != 1 || res.Released[0] != addr {
		t.Fatalf("released %v, want %s", res.Released, addr)
	}
}

// A pod recreated under the same name on the same node (new UID) while
// the old sandbox was lost without a DEL does not own the old address;
// handles written without a podUID keep today's name-and-node check.
func TestPodOfSameNameWithAnotherUIDIsNotTheOwner(t *testing.T) {
	cases := []struct {
		name      string
		handleUID string // recorded at allocation
		podUID    string // of the pod now running under that name
		released  bool
	}{
		{"same pod", "uid-1", "uid-1", false},
		{"recreated pod", "uid-1", "uid-2", true},
		{"handle without podUID", "", "uid-2", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, "n1")
			got, err := e.allocs["n1"].AutoAssign(ctx, allocator.Request{HandleID: "h-web-0", Namespace: "default", Pod: "web-0", PodUID: tc.handleUID, IPv4: 1})
			if err != nil {
				t.Fatal(err)
			}
			h, err := e.s.Handles().Get(ctx, ipam.HandleName("h-web-0"))
			if err != nil {
				t.Fatal(err)
			}
			if h.Spec.PodUID != tc.handleUID {
				t.Fatalf("handle podUID = %q, want %q", h.Spec.PodUID, tc.handleUID)
			}
			e.owners.setPodUID("default", "web-0", "n1", tc.podUID)
			if res := e.pass(); len(res.Released) != 0 {
				t.Fatalf("released %v before the grace period", res.Released)
			}
			e.clock.Step(grace)
			res := e.pass()
			if released := len(res.Released) == 1 && res.Released[0] == got[0].Addr(); released != tc.released {
				t.Fatalf("released %v, want %s released: %v", res.Released, got[0].Addr(), tc.released)
			}
			e.check()
		})
	}
}

func TestDeletesHandleWithoutAllocations(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "n1")
	h := &v1.IPAMHandle{ObjectMeta: metav1.ObjectMeta{Name: "crashed"}, Spec: v1.IPAMHandleSpec{HandleID: "crashed", Blocks: map[string]int32{"10.0.0.0/29": 1}}}
	if _, err := e.s.Handles().Create(ctx, h); err != nil {
		t.Fatal(err)
	}
	e.pass()
	e.clock.Step(grace)
	res := e.pass()
	if len(res.DeletedHandles) != 1 {
		t.Fatalf("deleted %v, want the empty handle", res.DeletedHandles)
	}
	e.check()
}

func TestHandleThatChangesRestartsItsGrace(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "n1")
	h, err := e.s.Handles().Create(ctx, &v1.IPAMHandle{ObjectMeta: metav1.ObjectMeta{Name: "slow"}, Spec: v1.IPAMHandleSpec{HandleID: "slow"}})
	if err != nil {
		t.Fatal(err)
	}
	e.pass()
	e.clock.Step(grace)
	h.Spec.Pod = "p" // written again (a retried ADD updating it)
	if _, err := e.s.Handles().Update(ctx, h); err != nil {
		t.Fatal(err)
	}
	if res := e.pass(); len(res.DeletedHandles) != 0 {
		t.Fatalf("deleted %v right after it changed", res.DeletedHandles)
	}
}

func TestReleasesBlocksOfDeletedNode(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "dead", "alive")
	e.pod("dead", "p1")
	for i := range 3 {
		e.pod("alive", fmt.Sprintf("a%d", i))
	}
	// The dead node's pods are gone with it.
	e.owners.mu.Lock()
	delete(e.owners.nodes, "dead")
	delete(e.owners.pods, "default/p1")
	e.owners.mu.Unlock()
	e.pass()
	e.clock.Step(grace)
	res := e.pass() // releases p1's address; the block is now empty
	if len(res.Released) != 1 {
		t.Fatalf("released %v, want the dead node's pod's address", res.Released)
	}
	e.pass()
	e.clock.Step(grace)
	res = e.pass()
	if len(res.DeletedBlocks) != 1 || len(res.DeletedAffinities) != 1 {
		t.Fatalf("deleted blocks %v affinities %v, want the dead node's one of each", res.DeletedBlocks, res.DeletedAffinities)
	}
	affs, _ := e.s.Affinities().List(ctx)
	for _, a := range affs {
		if a.Spec.Node == "dead" {
			t.Errorf("affinity %s of the deleted node left", a.Name)
		}
	}
	e.check()
}

func TestSettlesInterruptedClaims(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "n1")
	// A claim that crashed before confirming, with its block created, and
	// one that crashed before creating its block.
	e.s.Inject(memstore.Fault{Kind: memstore.Affinities, Op: memstore.Update, Times: -1, Err: ipam.ErrRejected})
	if _, err := e.allocs["n1"].AutoAssign(ctx, allocator.Request{HandleID: "x", IPv4: 1}); err == nil {
		t.Fatal("assign succeeded without a confirmed claim")
	}
	e.s.ClearFaults()
	void := &v1.BlockAffinity{ObjectMeta: metav1.ObjectMeta{Name: "n1.void"}, Spec: v1.BlockAffinitySpec{Node: "n1", CIDR: "10.0.0.24/29", State: v1.AffinityPending}}
	if _, err := e.s.Affinities().Create(ctx, void); err != nil {
		t.Fatal(err)
	}
	e.pass()
	e.clock.Step(grace)
	res := e.pass()
	if len(res.DeletedAffinities) != 1 || len(res.Repaired) != 1 {
		t.Fatalf("result %+v: want the void claim deleted and the other confirmed", res)
	}
	e.check()
}

// TestCrashedAllocatorsLeaveNothingAfterGC kills allocators mid-burst
// (every write from some point on fails, contexts are cancelled) and
// restarts them, repeatedly; once the garbage collector has run, the
// state is consistent and holds exactly the live pods' addresses.
func TestCrashedAllocatorsLeaveNothingAfterGC(t *testing.T) {
	e := newEnv(t, "n1", "n2")
	e.s.SetLatency(50 * time.Microsecond)
	live := map[string]netip.Addr{}
	var mu sync.Mutex
	problems := 0
	for round := range 8 {
		for _, node := range []string{"n1", "n2"} {
			a, err := allocator.New(e.s, allocator.Options{Node: node, Clock: e.clock, PoolCacheTTL: time.Hour,
				Backoff: ipam.Backoff{Attempts: 3, Base: 10 * time.Microsecond, Cap: 100 * time.Microsecond}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			fault := e.s.Inject(memstore.Fault{Skip: 5 + 3*round, Times: -1, Err: errors.New("agent killed"), Applied: round%2 == 1, AllOps: round%2 == 1})
			var wg sync.WaitGroup
			for i := range 6 {
				name := fmt.Sprintf("r%d-%s-%d", round, node, i)
				e.owners.setPod("default", name, node)
				wg.Go(func() {
					got, err := a.AutoAssign(ctx, allocator.Request{HandleID: "h-" + name, Namespace: "default", Pod: name, IPv4: 1})
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						e.owners.setPod("default", name, "") // the kubelet gives up on the pod
						return
					}
					live[name] = got[0].Addr()
				})
			}
			// The agent dies when the crash point is reached (or the burst
			// ends first).
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-fault.Fired:
			case <-done:
			}
			cancel()
			wg.Wait()
			e.s.ClearFaults()
		}
		// The collector runs meanwhile, as it would in a cluster.
		r, err := audit.Check(context.Background(), e.s)
		if err != nil {
			t.Fatal(err)
		}
		problems += r.Problems()
		e.pass()
		e.clock.Step(grace / 2)
		// Half the live pods are deleted normally (CNI DEL on a healthy
		// agent), so the small pool keeps having room.
		i := 0
		for name := range live {
			if i++; i%2 == 0 {
				continue
			}
			if err := e.allocs["n1"].ReleaseByHandle(context.Background(), "h-"+name); err != nil {
				t.Fatal(err)
			}
			e.owners.setPod("default", name, "")
			delete(live, name)
		}
	}
	// The restarted agents resync; the collector runs past the grace period.
	for _, node := range []string{"n1", "n2"} {
		a, _ := allocator.New(e.s, allocator.Options{Node: node, Clock: e.clock})
		if err := a.Resync(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if problems == 0 {
		t.Error("the crashes left nothing to collect: the test does not exercise the collector")
	}
	e.pass()
	e.clock.Step(grace)
	e.pass()
	e.clock.Step(grace)
	e.pass()
	e.check()
	snap, _ := audit.Read(context.Background(), e.s)
	got := snap.Addresses()
	if len(got) != len(live) {
		t.Errorf("%d allocations after GC, %d live pods", len(got), len(live))
	}
	for name, addr := range live {
		if e.holder(addr) != "h-"+name {
			t.Errorf("live pod %s lost %s (holder %q)", name, addr, e.holder(addr))
		}
	}
	t.Logf("%d live pods after 16 crashes; %d problems seen between crashes", len(live), problems)
}
