// Package gc is the cluster-wide garbage collector of IPAM state. One
// leader (see RunLeaderElected) periodically releases addresses whose
// owner pod is gone, deletes handles that hold nothing, releases the blocks
// and claims of deleted nodes, and settles claims a crash left half done.
// (Pools' status is the status controller's: ipam/usage.PoolStatus.) Nothing is removed the first
// time it looks wrong: a suspect must stay one for a grace period, and is
// checked again right before it is released, with a write conditional on
// the version that was checked.
package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/audit"
)

// Owners says whether the owners of IPAM state still exist.
type Owners interface {
	// PodAlive reports whether the pod exists, is not finished, and
	// matches what IPAM recorded of its owner (see Pod).
	PodAlive(ctx context.Context, pod Pod) (bool, error)
	// NodeExists reports whether the node exists.
	NodeExists(ctx context.Context, name string) (bool, error)
}

// Pod is what IPAM recorded of an owning pod. A pod of the same namespace
// and name that differs in a recorded Node or UID is a new pod, not the
// owner; empty fields are not compared.
type Pod struct {
	Namespace, Name string
	// Node the owner ran on: a pod of the same name on another node was
	// rescheduled (a StatefulSet's web-0) and the old sandbox is gone.
	Node string
	// UID of the owner, from the handle's podUID: a pod of the same name
	// and node with another UID means the owner's sandbox was lost
	// without a CNI DEL.
	UID string
}

// DefaultGrace is the grace period when Options leave it zero.
const DefaultGrace = 5 * time.Minute

// Options configure a Collector.
type Options struct {
	// Store holds the IPAM state.
	Store ipam.Store
	// Owners answers whether pods and nodes exist.
	Owners Owners
	// Grace is how long something must keep looking like garbage before
	// it is removed; default DefaultGrace. It must exceed the longest an
	// assignment can take (one of its handle and block written, the other
	// not yet).
	Grace time.Duration
	// Backoff bounds compare-and-swap retries.
	Backoff ipam.Backoff
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Clock tells the time; nil is the wall clock.
	Clock ipam.Clock
}

// Collector finds and removes IPAM garbage. Use one per leader; it
// remembers since when each suspect has been one.
type Collector struct {
	opts     Options
	log      *slog.Logger
	suspects map[string]time.Time
}

// New returns a collector.
func New(opts Options) (*Collector, error) {
	if opts.Store == nil || opts.Owners == nil {
		return nil, errors.New("new IPAM garbage collector: Store and Owners are required")
	}
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	opts.Backoff = opts.Backoff.WithDefaults()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = ipam.RealClock{}
	}
	return &Collector{opts: opts, log: opts.Logger.With("component", "ipam-gc"), suspects: map[string]time.Time{}}, nil
}

// Result says what one pass did.
type Result struct {
	// Released addresses whose owner was gone.
	Released []netip.Addr
	// DeletedHandles that held nothing.
	DeletedHandles []string
	// DeletedBlocks: empty blocks of deleted nodes, or unclaimed.
	DeletedBlocks []string
	// DeletedAffinities: claims of deleted nodes, or void claims.
	DeletedAffinities []string
	// Repaired describes other fixes (confirmed claims, recreated
	// handles).
	Repaired []string
	// Waiting is the number of suspects still within their grace period.
	Waiting int
}

// Run calls RunOnce every interval until ctx ends.
func (c *Collector) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if res, err := c.RunOnce(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("IPAM garbage collection pass failed", "err", err)
		} else if err == nil {
			c.log.Debug("IPAM garbage collection pass", "released", len(res.Released), "handles", len(res.DeletedHandles),
				"blocks", len(res.DeletedBlocks), "affinities", len(res.DeletedAffinities), "waiting", res.Waiting)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pass is one RunOnce: the snapshot, what is still suspect, and results.
type pass struct {
	c    *Collector
	snap *audit.Snapshot
	now  time.Time
	seen map[string]bool
	res  Result
	errs []error
	// memo caches owner answers within the pass; re-checks bypass it.
	pods  map[string]bool
	nodes map[string]bool
}

// RunOnce makes one garbage-collection pass.
func (c *Collector) RunOnce(ctx context.Context) (Result, error) {
	snap, err := audit.Read(ctx, c.opts.Store)
	if err != nil {
		return Result{}, fmt.Errorf("IPAM garbage collection: %w", err)
	}
	p := &pass{c: c, snap: snap, now: c.opts.Clock.Now(), seen: map[string]bool{}, pods: map[string]bool{}, nodes: map[string]bool{}}
	p.allocations(ctx)
	p.handles(ctx)
	p.affinities(ctx)
	p.blocks(ctx)
	for k := range c.suspects {
		if !p.seen[k] {
			delete(c.suspects, k) // no longer suspect: its clock restarts
		}
	}
	return p.res, errors.Join(p.errs...)
}

// due records key as suspect and reports whether it has been one for the
// grace period.
func (p *pass) due(key string) bool {
	p.seen[key] = true
	first, ok := p.c.suspects[key]
	if !ok {
		p.c.suspects[key] = p.now
		first = p.now
	}
	if p.now.Sub(first) >= p.c.opts.Grace {
		return true
	}
	p.res.Waiting++
	return false
}

func (p *pass) podAlive(ctx context.Context, pod Pod, fresh bool) (bool, error) {
	key := pod.Namespace + "/" + pod.Name + "@" + pod.Node + "#" + pod.UID
	if v, ok := p.pods[key]; ok && !fresh {
		return v, nil
	}
	v, err := p.c.opts.Owners.PodAlive(ctx, pod)
	if err != nil {
		return true, fmt.Errorf("look up pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	p.pods[key] = v
	return v, nil
}

func (p *pass) nodeExists(ctx context.Context, name string, fresh bool) (bool, error) {
	if v, ok := p.nodes[name]; ok && !fresh {
		return v, nil
	}
	v, err := p.c.opts.Owners.NodeExists(ctx, name)
	if err != nil {
		return true, fmt.Errorf("look up node %s: %w", name, err)
	}
	p.nodes[name] = v
	return v, nil
}

// ownerGone reports whether an allocation's owner is gone: its handle is
// missing and no pod claims it, or its pod is not alive on its node with
// the UID its handle recorded.
func (p *pass) ownerGone(ctx context.Context, h audit.Holder, handles map[string]*v1.IPAMHandle, fresh bool) (bool, error) {
	if h.Pod == "" {
		return handles[h.Handle] == nil, nil
	}
	if h.Node != "" {
		ok, err := p.nodeExists(ctx, h.Node, fresh)
		if err != nil || !ok {
			return !ok, err
		}
	}
	pod := Pod{Namespace: h.Namespace, Name: h.Pod, Node: h.Node, UID: ownerUID(h, handles[h.Handle])}
	alive, err := p.podAlive(ctx, pod, fresh)
	return !alive, err
}

// ownerUID is the pod UID that the allocation's handle recorded, or ""
// when the handle is missing, predates podUID, or names another pod.
func ownerUID(h audit.Holder, handle *v1.IPAMHandle) string {
	if handle == nil || handle.Spec.Namespace != h.Namespace || handle.Spec.Pod != h.Pod {
		return ""
	}
	return handle.Spec.PodUID
}

// allocations releases allocations whose owner is gone.
func (p *pass) allocations(ctx context.Context) {
	handles := map[string]*v1.IPAMHandle{}
	for _, h := range p.snap.Handles {
		handles[h.Spec.HandleID] = h
	}
	var refs []ipam.AllocationRef
	for _, h := range p.snap.Addresses() {
		gone, err := p.ownerGone(ctx, h, handles, false)
		if err != nil {
			p.errs = append(p.errs, err)
			continue
		}
		if !gone {
			if handles[h.Handle] == nil {
				p.recreateHandle(ctx, h)
			}
			continue
		}
		if !p.due(fmt.Sprintf("alloc/%s/%s/%d", h.Block, h.Addr, h.Sequence)) {
			continue
		}
		// Look again right before releasing: the owner may have come back
		// (or the cache been late).
		if gone, err = p.ownerGone(ctx, h, handles, true); err != nil || !gone {
			continue
		}
		p.c.log.Info("releasing address whose owner is gone", "addr", h.Addr.String(), "handle", h.Handle,
			"pod", h.Namespace+"/"+h.Pod, "node", h.Node)
		refs = append(refs, ipam.AllocationRef{Addr: h.Addr, Handle: h.Handle, Sequence: h.Sequence})
	}
	if len(refs) == 0 {
		return
	}
	released, err := ipam.ReleaseRefs(ctx, p.c.opts.Store, p.c.opts.Backoff, p.snap.Blocks, refs)
	for _, r := range released {
		p.res.Released = append(p.res.Released, r.Addr)
	}
	if err != nil && !errors.Is(err, ipam.ErrStale) {
		p.errs = append(p.errs, err)
	}
}

// recreateHandle gives a live pod's allocation its handle back, so that
// the pod's CNI DEL can release it. (A new handle and its first block
// write go out together, so an agent that died between them leaves an
// allocation whose handle was never written; otherwise only manual edits
// or a bug: handles are deleted after their allocations.)
func (p *pass) recreateHandle(ctx context.Context, h audit.Holder) {
	if !p.due("nohandle/" + h.Handle) {
		return
	}
	obj := &v1.IPAMHandle{Spec: v1.IPAMHandleSpec{HandleID: h.Handle, Blocks: map[string]int32{h.Block: 1}, Node: h.Node, Namespace: h.Namespace, Pod: h.Pod}}
	obj.Name = ipam.HandleName(h.Handle)
	_, err := p.c.opts.Store.Handles().Create(ctx, obj)
	if err != nil && !ipam.IsAlreadyExists(err) {
		p.errs = append(p.errs, fmt.Errorf("recreate handle %s: %w", h.Handle, err))
		return
	}
	if _, err := ipam.RefreshHandle(ctx, p.c.opts.Store, p.c.opts.Backoff, h.Handle); err != nil {
		p.errs = append(p.errs, err)
		return
	}
	p.res.Repaired = append(p.res.Repaired, "recreated handle "+h.Handle)
}

// handles deletes handles that hold no address.
func (p *pass) handles(ctx context.Context) {
	held := map[string]bool{}
	for _, h := range p.snap.Addresses() {
		held[h.Handle] = true
	}
	for _, h := range p.snap.Handles {
		if held[h.Spec.HandleID] || !p.due("handle/"+h.Name+"/"+h.ResourceVersion) {
			continue
		}
		// RefreshHandle re-reads the blocks it names and deletes it only
		// if it still holds nothing, conditional on the version read.
		deleted, err := ipam.RefreshHandle(ctx, p.c.opts.Store, p.c.opts.Backoff, h.Spec.HandleID)
		if err != nil {
			p.errs = append(p.errs, err)
			continue
		}
		if deleted {
			p.c.log.Info("deleted handle holding no address", "handle", h.Spec.HandleID, "pod", h.Spec.Namespace+"/"+h.Spec.Pod)
			p.res.DeletedHandles = append(p.res.DeletedHandles, h.Spec.HandleID)
		}
	}
}
