package ipam

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/cairn-net/cairn/ipam/allocator"
	"github.com/cairn-net/cairn/ipam/audit"
	"github.com/cairn-net/cairn/ipam/gc"
	"github.com/cairn-net/cairn/ipam/ipamtest"
)

// stormSize picks the storm's size. A test flag is package state by
// necessity: the testing package parses the binary's flags once.
var stormSize = flag.String("ipam.storm", "short",
	`size of the IPAM storm subtest: "short" (the CI run) or "long" (the full twice-the-stress run; give go test -timeout 60m)`)

// stormScale is how big a storm is. The stress subtest is the unit it is
// measured against: 3 nodes x 8 goroutines x 400 operations (9,600) in
// 12 blocks of 8 addresses, each goroutine holding at most 6.
type stormScale struct {
	name                            string
	nodes, goroutines, ops, maxLive int
	// killEvery: each agent dies at its k-th write, k drawn uniformly
	// from [1, killEvery].
	killEvery int
	// wedged bounds a run that stopped making progress; it is not a
	// performance target.
	wedged time.Duration
}

func (sc stormScale) totalOps() int { return sc.nodes * sc.goroutines * sc.ops }

// stormScaleFor returns the scale named by -ipam.storm. Both are twice
// the stress in nodes (so in allocators and in concurrent callers) and in
// pool size (24 blocks, so the same pressure: claims, borrowing, refusals);
// "long" is also twice its operations (19,200), "short" half of them
// (4,800) so that CI stays within minutes on a loaded 2-core machine.
func stormScaleFor(name string) (stormScale, error) {
	sc := stormScale{name: name, nodes: 6, goroutines: 8, maxLive: 6, killEvery: 200}
	switch name {
	case "short":
		sc.ops, sc.wedged = 100, 15*time.Minute
	case "long":
		sc.ops, sc.wedged = 400, 60*time.Minute
	default:
		return sc, fmt.Errorf("-ipam.storm=%q: want short or long", name)
	}
	return sc, nil
}

const stormNS = "storm"

// stormPools are the storm's pools, 24 blocks of 8 in 10.40.0.0/24;
// requests name them, so no other subtest's pool is used.
func stormPools() (names []string, cidrs []string, all netip.Prefix) {
	return []string{"storm", "storm-2"}, []string{"10.40.0.0/25", "10.40.0.128/26"}, netip.MustParsePrefix("10.40.0.0/24")
}

// storm is the model of the storm test: which pods exist, which handle
// holds which address as agents that lived to answer told their callers,
// and the figures. Each handle is its own pod, named as the handle.
type storm struct {
	t     *testing.T
	sc    stormScale
	pools []string

	mu     sync.Mutex
	pods   map[string]bool       // pods that exist: from before their ADD until given up or released
	holder map[netip.Addr]string // address -> live handle
	live   map[string]stormHold  // live handle -> what it holds
	f      stormFigures
	allocs []*allocator.Allocator // every agent that ran, killed ones included
}

// stormHold is what a live handle holds, and where.
type stormHold struct {
	addr netip.Addr
	node string
}

// stormFigures are what a storm reports.
type stormFigures struct {
	kills int
	// interrupted: calls whose agent died before answering; their outcome
	// is unknown to the caller. abandoned: of those, the ones no agent
	// ever heard of again (the pod was deleted while the agent was down),
	// left to the garbage collector.
	interrupted, abandoned int
	// retriedAdds and retriedDels: calls repeated on a restarted agent.
	retriedAdds, retriedDels int
	refused, failed          int
	duplicates               int
	// longest is the longest call a live agent answered, and its handle:
	// under load it grows, the price of contention, not a failure.
	longest       time.Duration
	longestHandle string
	// gcDuring: what the collector running during the storm did.
	gcDuring stormGC
}

// stormGC sums what garbage-collection passes did.
type stormGC struct {
	passes, failedPasses, released, handles, repairs int
}

func (g *stormGC) add(res gc.Result, err error) {
	g.passes++
	if err != nil {
		g.failedPasses++
	}
	g.released += len(res.Released)
	g.handles += len(res.DeletedHandles)
	g.repairs += len(res.DeletedBlocks) + len(res.DeletedAffinities) + len(res.Repaired)
}

// stormNode is one node: its current agent, replaced when killed.
type stormNode struct {
	name string
	mu   sync.Mutex
	cur  *stormAgent
	next chan struct{} // closed when cur is replaced
}

// stormAgent is one life of a node's agent: an allocator whose store
// dies at a random write.
type stormAgent struct {
	a      *allocator.Allocator
	ks     *killable
	ctx    context.Context
	cancel context.CancelFunc
}

func (ag *stormAgent) dead() bool {
	select {
	case <-ag.ks.killed:
		return true
	default:
		return false
	}
}

func (n *stormNode) set(ag *stormAgent) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cur = ag
	if n.next != nil {
		close(n.next)
	}
	n.next = make(chan struct{})
}

// agent returns the node's agent, waiting for the restart of a dead one.
func (n *stormNode) agent(ctx context.Context) (*stormAgent, error) {
	for {
		n.mu.Lock()
		ag, next := n.cur, n.next
		n.mu.Unlock()
		if !ag.dead() {
			return ag, nil
		}
		select {
		case <-next:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the agent of node %s to restart: %w", n.name, ctx.Err())
		}
	}
}

// testStorm is issue 10's storm: twice the stress subtest (see
// stormScaleFor) while every node's agent is killed at a random write,
// over and over. A killed agent's last write reaches the API server or
// not (either, at random), nothing of it runs on, and a new agent for
// the node takes over at once while the storm goes on. A call the dead
// agent did not answer is, at random, retried on the new agent (the
// kubelet retrying ADD or DEL), answered with a DEL (a failed ADD torn
// down), or abandoned (the pod deleted while the agent was down). The
// garbage collector runs all along with a minute's grace, its owners
// answered from the test's model of which pods exist. At the end every
// node's agent restarts one last time and the collector runs past its
// grace period until it has nothing left to do.
//
// It fails on any address handed to a live handle while another live
// handle holds it, and after GC on any leak: an address held by other
// than a live handle at the address it was given, a storm handle not
// live, a claim without its block or the reverse, anything "cairnctl
// ipam check" finds. Releasing every live handle must then leave the
// pools empty.
//
// CI runs the short storm; -ipam.storm=long runs the full one:
//
//	go test -count=1 -timeout 60m -v -run 'TestIPAMOnAPIServer/storm' ./tests/ipam/ -ipam.storm=long
func testStorm(t *testing.T, c *cluster) {
	sc, err := stormScaleFor(*stormSize)
	if err != nil {
		t.Fatal(err)
	}
	names, cidrs, all := stormPools()
	for i := range names {
		c.createPool(t, names[i], cidrs[i], 29)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sc.wedged)
	defer cancel()
	s := &storm{t: t, sc: sc, pools: names, holder: map[netip.Addr]string{}, live: map[string]stormHold{}, pods: map[string]bool{}}
	seed := uint64(time.Now().UnixNano())
	began, writes0 := time.Now(), c.writes.Load()
	if err := s.run(ctx, c, seed); err != nil {
		t.Fatal(err)
	}
	stormTook, writes := time.Since(began), c.writes.Load()-writes0
	st := sumStats(s.allocs)

	final := s.restartAgents(ctx, c)
	before, err := audit.Check(ctx, c.store)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the storm, before GC: %s", before.Summary())
	s.collect(ctx, c)
	leaks, lost := s.verify(ctx, c, all)
	checkClean(t, c)
	left := s.releaseAll(ctx, c, final, all)

	f := s.f
	t.Logf("STORM %s (seed %d): %d ops on %d nodes x %d goroutines in %v (%d API writes); %d assigned, %d released, %d refused (pool full)",
		sc.name, seed, sc.totalOps(), sc.nodes, sc.goroutines, stormTook.Round(time.Millisecond), writes, st.Assigned, st.Released, f.refused)
	t.Logf("KILLS: %d agents killed; %d calls interrupted, of which %d abandoned to GC; %d ADDs and %d DELs retried on a restarted agent",
		f.kills, f.interrupted, f.abandoned, f.retriedAdds, f.retriedDels)
	t.Logf("blocks claimed %d, addresses borrowed %d, block writes %d, conflicts %d; GC during the storm: %d passes (%d with errors), released %d addresses, deleted %d handles, %d other repairs",
		st.Claims, st.Borrows, st.BlockWrites, st.Conflicts, f.gcDuring.passes, f.gcDuring.failedPasses, f.gcDuring.released, f.gcDuring.handles, f.gcDuring.repairs)
	t.Logf("MAX RETRY COUNT: %d, LONGEST ALLOCATION: %v (%s), DUPLICATES: %d, LEAKS: %d after GC (%d left once every live handle was released), LOST: %d, FAILED: %d; %v with GC",
		st.MaxRetries, f.longest.Round(time.Millisecond), f.longestHandle, f.duplicates, leaks, left, lost, f.failed, time.Since(began).Round(time.Millisecond))
	if f.failed > 0 {
		t.Errorf("%d calls failed on agents that were alive, other than for lack of addresses", f.failed)
	}
	if f.kills < sc.nodes || f.interrupted == 0 {
		t.Errorf("%d kills, %d interrupted calls: the storm is not killing agents mid-operation", f.kills, f.interrupted)
	}
	if st.Borrows == 0 || st.Claims < 24 {
		t.Errorf("the pools did not force claiming every block and borrowing (borrows %d, claims %d)", st.Borrows, st.Claims)
	}
}

// run runs the storm: per node a supervisor that restarts the agent each
// time it is killed, and the node's goroutines, until every goroutine has
// made its operations.
func (s *storm) run(ctx context.Context, c *cluster, seed uint64) error {
	stormCtx, stop := context.WithCancel(ctx)
	defer stop()
	var workers, supervisors, maint, collector sync.WaitGroup
	// The cluster's collector runs all along, as its leader does: without
	// it the addresses of abandoned pods would pile up until the pools
	// were full (the long storm abandons more than they hold).
	collector.Go(func() { s.collectDuring(stormCtx, c) })
	var err error
	for i := range s.sc.nodes {
		n := &stormNode{name: fmt.Sprintf("storm-%d", i)}
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		var ag *stormAgent
		if ag, err = s.startAgent(stormCtx, c, n.name, rng, &maint); err != nil {
			stop()
			break
		}
		n.set(ag)
		supervisors.Go(func() { s.supervise(stormCtx, stop, c, n, rng, &maint) })
		for g := range s.sc.goroutines {
			wrng := rand.New(rand.NewPCG(seed, uint64(1000+100*i+g)))
			workers.Go(func() { s.worker(stormCtx, n, g, wrng) })
		}
	}
	workers.Wait()
	stop()
	supervisors.Wait()
	maint.Wait()
	collector.Wait()
	return err
}

// collectDuring runs garbage-collection passes on the wall clock until
// ctx ends, with a grace period longer than any assignment takes.
func (s *storm) collectDuring(ctx context.Context, c *cluster) {
	const grace, interval = time.Minute, 5 * time.Second
	col, err := gc.New(gc.Options{Store: c.store, Owners: stormOwners{s}, Grace: grace, Logger: logger(s.t)})
	if err != nil {
		s.t.Error(err)
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		res, err := col.RunOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.t.Logf("GC pass during the storm: %v", err)
		}
		s.mu.Lock()
		s.f.gcDuring.add(res, err)
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// startAgent starts a new life of node's agent: an allocator on a store
// that dies at a random write, with its housekeeping running.
func (s *storm) startAgent(ctx context.Context, c *cluster, node string, rng *rand.Rand, maint *sync.WaitGroup) (*stormAgent, error) {
	ks := newKillable(c.store, 1+rng.IntN(s.sc.killEvery), rng.IntN(2) == 0)
	ks.final = true
	a, err := allocator.New(ks, allocator.Options{Node: node, EmptyBlockGrace: 500 * time.Millisecond, Logger: logger(s.t)})
	if err != nil {
		return nil, fmt.Errorf("start the agent of node %s: %w", node, err)
	}
	actx, cancel := context.WithCancel(ctx)
	maint.Go(func() { a.Run(actx, 250*time.Millisecond) })
	s.mu.Lock()
	s.allocs = append(s.allocs, a)
	s.mu.Unlock()
	return &stormAgent{a: a, ks: ks, ctx: actx, cancel: cancel}, nil
}

// supervise replaces n's agent as soon as it is killed, until ctx ends;
// if it cannot, it stops the storm.
func (s *storm) supervise(ctx context.Context, stop func(), c *cluster, n *stormNode, rng *rand.Rand, maint *sync.WaitGroup) {
	for {
		n.mu.Lock()
		ag := n.cur
		n.mu.Unlock()
		select {
		case <-ag.ks.killed:
			ag.cancel()
			s.count(&s.f.kills)
			next, err := s.startAgent(ctx, c, n.name, rng, maint)
			if err != nil {
				s.t.Error(err)
				stop()
				return
			}
			n.set(next)
		case <-ctx.Done():
			ag.cancel()
			return
		}
	}
}

// worker runs one goroutine's interleaved assignments and releases, as
// the stress subtest's do, through whichever agent of its node is alive.
func (s *storm) worker(ctx context.Context, n *stormNode, g int, rng *rand.Rand) {
	var mine []string
	for i := range s.sc.ops {
		if ctx.Err() != nil {
			return // the storm was stopped
		}
		if len(mine) > 0 && (len(mine) >= s.sc.maxLive || rng.IntN(100) < 45) {
			k := rng.IntN(len(mine))
			h := mine[k]
			mine = append(mine[:k], mine[k+1:]...)
			s.forget(h)
			s.del(ctx, n, h, rng)
			continue
		}
		h := fmt.Sprintf("%s-%d-%d", n.name, g, i)
		if s.add(ctx, n, h, rng) {
			mine = append(mine, h)
		}
	}
}

// add assigns an address to h and reports whether h is live. When the
// agent dies before answering, the kubelet retries the ADD, tears the pod
// down with a DEL, or the pod is deleted with no agent to hear of it.
func (s *storm) add(ctx context.Context, n *stormNode, h string, rng *rand.Rand) bool {
	req := allocator.Request{HandleID: h, Namespace: stormNS, Pod: h, IPv4: 1, Pools: s.pools}
	s.setPod(h, true)
	for {
		ag, err := n.agent(ctx)
		if err != nil {
			s.t.Error(err)
			return false
		}
		began := time.Now()
		got, err := ag.a.AutoAssign(ag.ctx, req)
		if !ag.dead() {
			return s.record(n.name, h, got, err, time.Since(began))
		}
		c := s.interrupted(rng, 3)
		if c == 0 {
			s.count(&s.f.retriedAdds)
			continue
		}
		s.setPod(h, false)
		if c == 1 {
			s.del(ctx, n, h, rng)
		}
		return false
	}
}

// del releases h, retrying on the next agent when one dies before
// answering, unless the pod was deleted meanwhile with no agent to hear
// of it.
func (s *storm) del(ctx context.Context, n *stormNode, h string, rng *rand.Rand) {
	for {
		ag, err := n.agent(ctx)
		if err != nil {
			s.t.Error(err)
			return
		}
		err = ag.a.ReleaseByHandle(ag.ctx, h)
		if !ag.dead() {
			if err != nil {
				s.count(&s.f.failed)
				s.t.Errorf("release %s: %v", h, err)
			}
			return
		}
		if s.interrupted(rng, 2) != 0 {
			return
		}
		s.count(&s.f.retriedDels)
	}
}

// interrupted counts a call a dead agent did not answer and draws what
// the caller does next, from [0, choices); the last choice is to abandon.
func (s *storm) interrupted(rng *rand.Rand, choices int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f.interrupted++
	c := rng.IntN(choices)
	if c == choices-1 {
		s.f.abandoned++
	}
	return c
}

func (s *storm) count(n *int) {
	s.mu.Lock()
	*n++
	s.mu.Unlock()
}

// forget drops a handle and its pod before it is released: once the
// release is written its address may be handed out again.
func (s *storm) forget(h string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.holder, s.live[h].addr)
	delete(s.live, h)
	delete(s.pods, h)
}

func (s *storm) setPod(h string, exists bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if exists {
		s.pods[h] = true
	} else {
		delete(s.pods, h)
	}
}

func (s *storm) podExists(h string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pods[h]
}

// record notes the answer of a live agent and reports whether h is live.
func (s *storm) record(node, h string, got []netip.Prefix, err error, took time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if took > s.f.longest {
		s.f.longest, s.f.longestHandle = took, h
	}
	switch {
	case errors.Is(err, allocator.ErrNoAddresses):
		s.f.refused++
		delete(s.pods, h)
		return false
	case err != nil:
		s.f.failed++
		s.t.Errorf("assign %s: %v", h, err)
		delete(s.pods, h)
		return false
	case len(got) != 1:
		s.f.failed++
		s.t.Errorf("assign %s: got %v, want one address", h, got)
		delete(s.pods, h)
		return false
	}
	addr := got[0].Addr()
	if prev, dup := s.holder[addr]; dup {
		s.f.duplicates++
		s.t.Errorf("DUPLICATE: %s handed to %s while %s holds it", addr, h, prev)
	}
	s.holder[addr] = h
	s.live[h] = stormHold{addr: addr, node: node}
	return true
}

// restartAgents restarts every node's agent one last time, on a store
// that does not die, and lets it settle what its node's claims were left
// in; it returns the agents by node.
func (s *storm) restartAgents(ctx context.Context, c *cluster) map[string]*allocator.Allocator {
	out := map[string]*allocator.Allocator{}
	for i := range s.sc.nodes {
		node := fmt.Sprintf("storm-%d", i)
		a, err := allocator.New(c.store, allocator.Options{Node: node, Logger: logger(s.t)})
		if err != nil {
			s.t.Fatal(err)
		}
		if err := a.Resync(ctx); err != nil {
			s.t.Fatalf("resync %s: %v", node, err)
		}
		out[node] = a
	}
	return out
}

// stormOwners answers the collector from the model: a storm pod is alive
// from before its ADD until the test gives it up or releases it. Nodes
// never die in the storm, and whatever is not the storm's counts as
// alive, so the collector leaves the other subtests' state alone.
type stormOwners struct{ s *storm }

func (o stormOwners) PodAlive(_ context.Context, p gc.Pod) (bool, error) {
	return p.Namespace != stormNS || o.s.podExists(p.Name), nil
}

func (stormOwners) NodeExists(context.Context, string) (bool, error) { return true, nil }

// collect runs the garbage collector past its grace period until a pass
// finds nothing to do and nothing waiting.
func (s *storm) collect(ctx context.Context, c *cluster) {
	t := s.t
	const grace, passes = time.Minute, 10
	clock := ipamtest.NewClock()
	col, err := gc.New(gc.Options{Store: c.store, Owners: stormOwners{s}, Grace: grace, Clock: clock, Logger: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for pass := range passes {
		res, err := col.RunOnce(ctx)
		if err != nil {
			t.Fatalf("GC pass %d: %v", pass, err)
		}
		t.Logf("GC pass %d: released %d addresses, deleted %d handles, %d blocks, %d affinities, %d repairs; %d waiting",
			pass, len(res.Released), len(res.DeletedHandles), len(res.DeletedBlocks), len(res.DeletedAffinities), len(res.Repaired), res.Waiting)
		if res.Waiting == 0 && len(res.Released)+len(res.DeletedHandles)+len(res.DeletedBlocks)+len(res.DeletedAffinities)+len(res.Repaired) == 0 {
			return
		}
		clock.Step(grace)
	}
	t.Errorf("the garbage collector had work left after %d passes", passes)
}

// verify compares the store with the model after GC. It returns the
// leaks (addresses in the pools held by other than a live handle at the
// address it was given, storm handles not live, claims without their
// block and blocks without their claim) and the live handles that lost
// their address. Duplicates in the store are counted with the ones
// handed out.
func (s *storm) verify(ctx context.Context, c *cluster, pools netip.Prefix) (leaks, lost int) {
	t := s.t
	snap, err := audit.Read(ctx, c.store)
	if err != nil {
		t.Fatal(err)
	}
	r := snap.Check()
	t.Logf("after GC: %s", r.Summary())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f.duplicates += len(r.DuplicateAddresses)
	leaks = len(r.BlocksWithoutAffinity) + len(r.AffinitiesWithoutBlock)
	held := map[string]netip.Addr{}
	for _, h := range snap.Addresses() {
		if !pools.Contains(h.Addr) {
			continue
		}
		if want, ok := s.live[h.Handle]; !ok || want.addr != h.Addr || held[h.Handle].IsValid() {
			leaks++
			t.Errorf("LEAK: %s held by %s (live: %v, given %v)", h.Addr, h.Handle, ok, want.addr)
			continue
		}
		held[h.Handle] = h.Addr
	}
	for h, hold := range s.live {
		if held[h] != hold.addr {
			lost++
			t.Errorf("LOST: live handle %s was given %s, the store says it holds %v", h, hold.addr, held[h])
		}
	}
	for _, h := range snap.Handles {
		if _, ok := s.live[h.Spec.HandleID]; h.Spec.Namespace == stormNS && !ok {
			leaks++
			t.Errorf("LEAK: handle %s of no live pod", h.Spec.HandleID)
		}
	}
	return leaks, lost
}

// releaseAll releases every live handle through its node's agent: the
// pools must then hold no allocation and no storm handle. It returns how
// many were left.
func (s *storm) releaseAll(ctx context.Context, c *cluster, agents map[string]*allocator.Allocator, pools netip.Prefix) int {
	t := s.t
	for h, hold := range s.live {
		if err := agents[hold.node].ReleaseByHandle(ctx, h); err != nil {
			t.Errorf("release %s: %v", h, err)
		}
	}
	snap, err := audit.Read(ctx, c.store)
	if err != nil {
		t.Fatal(err)
	}
	left := 0
	for _, h := range snap.Addresses() {
		if pools.Contains(h.Addr) {
			left++
		}
	}
	for _, h := range snap.Handles {
		if h.Spec.Namespace == stormNS {
			left++
		}
	}
	if left != 0 {
		t.Errorf("LEAK: %d allocations and storm handles left after releasing every live handle", left)
	}
	return left
}
