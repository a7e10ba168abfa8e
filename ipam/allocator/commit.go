package allocator

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
)

// errMoved means an assignment cannot be made in this block any more (it
// filled up, was deleted, or changed owner); the caller picks another.
var errMoved = errors.New("block no longer usable for this assignment")

// entry is the allocator's view of one block it uses: its own blocks, and
// blocks it borrowed from or released into. Guarded by Allocator.mu.
type entry struct {
	prefix netip.Prefix
	name   string
	// own: a confirmed claim of this node; only own blocks serve ordinary
	// assignments.
	own bool
	// releasing: the claim is being released; take no reservations.
	releasing bool
	// block is the last version seen; nil when unknown.
	block *v1.IPAMBlock
	// reserved counts addresses promised to assignments not yet written.
	reserved int
	// emptySince is when the block was last seen becoming empty.
	emptySince time.Time
	// gen counts changes of block, so a reader that fetched a version
	// before a commit finished does not install it over a newer one.
	gen uint64

	pending []*op
	running bool
}

// free is the number of addresses that can still be reserved.
func (e *entry) free() int {
	if e.block == nil {
		return 0
	}
	return ipam.Free(e.block, e.prefix) - e.reserved
}

// opKind says what an op does to a block.
type opKind int

const (
	opAssign opKind = iota
	opRelease
)

// op is one caller's change to one block, waiting to be written together
// with every other op pending on that block.
type op struct {
	ctx  context.Context
	kind opKind

	// assign
	n      int
	owner  ipam.Owner
	borrow bool

	// release: allocations for which match is true, or exactly refs.
	match func(v1.BlockAllocation) bool
	refs  []ipam.AllocationRef

	// results, valid once done is closed
	assigned []v1.BlockAllocation
	released []v1.BlockAllocation
	err      error
	done     chan struct{}
}

// entryLocked returns the entry for block, creating it. Called with a.mu.
func (a *Allocator) entryLocked(block netip.Prefix) *entry {
	e := a.entries[block]
	if e == nil {
		e = &entry{prefix: block, name: ipam.BlockName(block)}
		a.entries[block] = e
	}
	return e
}

// submit queues o on e and starts e's committer if it is idle.
func (a *Allocator) submit(e *entry, o *op) {
	o.done = make(chan struct{})
	a.mu.Lock()
	e.pending = append(e.pending, o)
	start := !e.running
	e.running = true
	a.mu.Unlock()
	if start {
		go a.runCommitter(e)
	}
}

// wait waits for o, or for ctx. A caller that stops waiting must not
// assume the op was not written.
func wait(ctx context.Context, o *op) error {
	select {
	case <-o.done: // a result that is there wins over a context just ended
		return o.err
	default:
	}
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runCommitter writes e's pending ops, all that queued up during the
// previous write at once, until none is left. The committer is marked idle
// in the same critical section that publishes the last result, so a caller
// that saw its op done never sees a write still running.
func (a *Allocator) runCommitter(e *entry) {
	for {
		a.mu.Lock()
		batch := e.pending
		e.pending = nil
		a.mu.Unlock()
		if !a.commit(e, batch) {
			return
		}
	}
}

// commit applies batch to e's block with one compare-and-swap write,
// re-reading and re-applying on conflict. Ops whose caller gave up before
// the write are dropped. It reports whether more ops are pending.
func (a *Allocator) commit(e *entry, batch []*op) bool {
	var live []*op
	for _, o := range batch {
		if err := o.ctx.Err(); err != nil {
			o.err = err
			continue
		}
		live = append(live, o)
	}
	a.mu.Lock()
	cur := e.block
	if len(live) == 0 {
		a.mu.Unlock()
		return a.finish(e, batch, cur, nil)
	}
	if !e.own {
		// Another node writes this block too: its cached version is
		// likely stale, and a write from it would only buy a conflict.
		cur = nil
	}
	a.mu.Unlock()
	ctx, cancel := whileAnyWaits(live, a.opts.WriteTimeout)
	defer cancel()
	updated, err := a.writeBatch(ctx, e, cur, live)
	return a.finish(e, batch, updated, err)
}

// whileAnyWaits returns a context that lives while at least one of ops'
// callers still waits, and at most timeout: a write serves every caller in
// its batch, so it keeps retrying for the most patient one and stops once
// nobody is left to tell.
func whileAnyWaits(ops []*op, timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	if len(ops) == 0 {
		return ctx, cancel
	}
	var mu sync.Mutex
	waiting := len(ops)
	stops := make([]func() bool, 0, len(ops))
	for _, o := range ops {
		stops = append(stops, context.AfterFunc(o.ctx, func() {
			mu.Lock()
			defer mu.Unlock()
			if waiting--; waiting == 0 {
				cancel()
			}
		}))
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// writeBatch loops read-apply-write until the batch is written, or fails.
// It returns the block as written (nil if it is gone).
func (a *Allocator) writeBatch(ctx context.Context, e *entry, cur *v1.IPAMBlock, live []*op) (*v1.IPAMBlock, error) {
	var err error
	fresh := cur == nil
	if cur == nil {
		if cur, err = a.getBlock(ctx, e); err != nil || cur == nil {
			return nil, err
		}
	}
	for attempt := 0; ; attempt++ {
		next := cur.DeepCopy()
		changed := a.apply(next, e, live)
		if !changed && !fresh && (anyFailed(live) || anyRelease(live)) {
			// Nothing to write is a decision made on the cached version,
			// which may be stale: an assignment may have failed on a block
			// that only looked full, and a release found nothing that the
			// stored block still holds. Without a write no compare-and-swap
			// would catch that, so decide again on the stored version.
			fresh = true
			if cur, err = a.getBlock(ctx, e); err != nil || cur == nil {
				return nil, err
			}
			next = cur.DeepCopy()
			changed = a.apply(next, e, live)
		}
		if !changed || len(live) == 0 {
			return cur, nil
		}
		a.blockWrites.Add(1)
		updated, werr := a.store.Blocks().Update(ctx, next)
		if werr == nil {
			a.noteRetries(attempt)
			return updated, nil
		}
		if ipam.IsNotFound(werr) {
			return nil, nil
		}
		if ipam.IsConflict(werr) {
			a.conflicts.Add(1)
		}
		retry := ipam.Retryable(werr) && attempt+1 < a.opts.Backoff.Attempts
		if retry {
			// Wait before reading again, not after: the version read is
			// then as fresh as it can be when the write goes out, which
			// is what keeps the next attempt from losing the same race.
			if berr := a.opts.Backoff.Wait(ctx, attempt+1); berr != nil {
				a.noteRetries(attempt)
				return cur, fmt.Errorf("write block %s (%d ops, %d attempts): %w (last error: %w)", e.prefix, len(live), attempt+1, berr, werr)
			}
		}
		// Re-read: to retry against the current version, and because an
		// error other than a conflict may hide a write that was applied.
		latest, gerr := a.getBlock(ctx, e)
		if gerr == nil && latest == nil {
			return nil, nil
		}
		if gerr == nil && landed(latest, live) {
			a.noteRetries(attempt)
			return latest, nil
		}
		fresh = true
		if !retry {
			a.noteRetries(attempt)
			return cur, fmt.Errorf("write block %s (%d ops, %d attempts): %w", e.prefix, len(live), attempt+1, werr)
		}
		if gerr == nil {
			cur = latest
		}
	}
}

// getBlock reads e's block; it returns nil, nil when the block is gone.
func (a *Allocator) getBlock(ctx context.Context, e *entry) (*v1.IPAMBlock, error) {
	b, err := a.store.Blocks().Get(ctx, e.name)
	if ipam.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read block %s: %w", e.prefix, err)
	}
	return b, nil
}

// apply resets the ops' results and applies them to next in order. It
// reports whether next changed.
func (a *Allocator) apply(next *v1.IPAMBlock, e *entry, live []*op) bool {
	changed := false
	for _, o := range live {
		o.assigned, o.released, o.err = nil, nil, nil
		switch o.kind {
		case opAssign:
			if reason := a.unusable(next, o); reason != "" {
				o.err = fmt.Errorf("block %s %s: %w", e.prefix, reason, errMoved)
				continue
			}
			got, err := ipam.Assign(next, e.prefix, o.n, o.owner)
			if err != nil {
				o.err = fmt.Errorf("%w: %w", err, errMoved)
				continue
			}
			o.assigned = got
			changed = true
		case opRelease:
			o.released, o.err = release(next, e.prefix, o)
			changed = changed || len(o.released) > 0
		}
	}
	return changed
}

// unusable says why an assignment may not be made in b, or "".
func (a *Allocator) unusable(b *v1.IPAMBlock, o *op) string {
	switch owner := ipam.AffinityNode(b.Spec.Affinity); {
	case b.Spec.Deleted:
		return "is being deleted"
	case !o.borrow && owner != a.opts.Node:
		return fmt.Sprintf("is owned by %q", owner)
	case o.borrow && owner == a.opts.Node:
		return "became this node's own"
	}
	return ""
}

func release(b *v1.IPAMBlock, block netip.Prefix, o *op) ([]v1.BlockAllocation, error) {
	if o.match != nil {
		return ipam.Remove(b, o.match), nil
	}
	var out []v1.BlockAllocation
	var errs []error
	for _, r := range o.refs {
		got, err := ipam.RemoveRef(b, block, r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if got != nil {
			out = append(out, *got)
		}
	}
	return out, errors.Join(errs...)
}

func anyRelease(ops []*op) bool {
	for _, o := range ops {
		if o.kind == opRelease {
			return true
		}
	}
	return false
}

func anyFailed(ops []*op) bool {
	for _, o := range ops {
		if o.err != nil {
			return true
		}
	}
	return false
}

// landed reports whether fresh already holds the batch's outcome: every
// assignment present with its sequence, every released allocation gone.
func landed(fresh *v1.IPAMBlock, live []*op) bool {
	var assigned, released []v1.BlockAllocation
	for _, o := range live {
		assigned = append(assigned, o.assigned...)
		released = append(released, o.released...)
	}
	if !ipam.HasAllocations(fresh, assigned) {
		return false
	}
	for _, r := range released {
		if ipam.HasAllocations(fresh, []v1.BlockAllocation{r}) {
			return false
		}
	}
	return true
}

// finish records the outcome in e and wakes the callers. It reports
// whether more ops are pending; if not, it marks the committer idle.
func (a *Allocator) finish(e *entry, batch []*op, updated *v1.IPAMBlock, err error) bool {
	borrowChange := false
	a.mu.Lock()
	for _, o := range batch {
		if o.kind == opAssign {
			e.reserved -= o.n
		}
		switch {
		case o.err != nil && o.ctx.Err() != nil && o.assigned == nil && o.released == nil:
			// dropped before the write
		case err != nil:
			o.err, o.assigned, o.released = err, nil, nil
		case updated == nil:
			o.err, o.assigned, o.released = fmt.Errorf("block %s is gone: %w", e.prefix, errMoved), nil, nil
			if o.kind == opRelease {
				o.err = nil // nothing left to release
			}
		}
		a.assigned.Add(int64(len(o.assigned)))
		a.released.Add(int64(len(o.released)))
		if !e.own && (len(o.assigned) > 0 || releasedBy(o.released, a.opts.Node)) {
			borrowChange = true
		}
	}
	if updated != nil || err == nil {
		e.block = updated
		e.gen++
		a.noteEmptyLocked(e)
	}
	if updated == nil && err == nil && e.own {
		e.own = false
		borrowChange = true // an owned block vanished: announcements change
	}
	more := len(e.pending) > 0
	e.running = more
	a.mu.Unlock()
	for _, o := range batch {
		close(o.done)
	}
	if borrowChange {
		a.notify()
	}
	return more
}

// noteEmptyLocked tracks since when e's block has been empty.
func (a *Allocator) noteEmptyLocked(e *entry) {
	switch {
	case e.block == nil || len(e.block.Spec.Allocations) > 0:
		e.emptySince = time.Time{}
	case e.emptySince.IsZero():
		e.emptySince = a.opts.Clock.Now()
	}
}

func releasedBy(released []v1.BlockAllocation, node string) bool {
	for _, r := range released {
		if r.Node == node {
			return true
		}
	}
	return false
}
