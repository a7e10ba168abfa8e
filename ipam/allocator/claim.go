package allocator

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/pools"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var (
	// errNoFreeBlock: every block of the candidate pools exists.
	errNoFreeBlock = errors.New("no free block in the pools")
	// errMaxBlocks: the node owns MaxBlocksPerNode blocks.
	errMaxBlocks = errors.New("node has reached its maximum number of blocks")
)

// maxClaimRaces bounds how many blocks one claim tries after losing races
// to other nodes.
const maxClaimRaces = 32

// claimCall is a block claim in progress, which concurrent assignments of
// the same family wait for instead of claiming blocks of their own.
type claimCall struct {
	done chan struct{}
	err  error
}

// claimBlock claims one new block for the node from the first candidate
// pool that has a free one.
func (a *Allocator) claimBlock(ctx context.Context, cands []pools.Pool) error {
	blocks, err := a.store.Blocks().List(ctx)
	if err != nil {
		return fmt.Errorf("claim a block for node %s: list blocks: %w", a.opts.Node, err)
	}
	existing := make(map[netip.Prefix]bool, len(blocks))
	for _, b := range blocks {
		if p, err := ipam.BlockPrefix(b); err == nil {
			existing[p] = true
		}
	}
	a.mu.Lock()
	for p, e := range a.entries {
		if e.releasing {
			existing[p] = true // not while this node is still letting it go
		}
	}
	a.mu.Unlock()
	if max := a.opts.MaxBlocksPerNode; max > 0 && a.ownCount() >= max {
		// At its limit the node may still borrow, but only from pools
		// that have no free block left, as any other node.
		for _, p := range cands {
			for range a.candidates(p, existing) {
				return fmt.Errorf("claim a block for node %s: %w (%d)", a.opts.Node, errMaxBlocks, max)
			}
		}
		return fmt.Errorf("claim a block for node %s: %w", a.opts.Node, errNoFreeBlock)
	}
	races := 0
	for _, p := range cands {
		for cand := range a.candidates(p, existing) {
			ok, err := a.claim(ctx, p, cand)
			if err != nil {
				return fmt.Errorf("claim block %s of pool %s for node %s: %w", cand, p.Name, a.opts.Node, err)
			}
			if ok {
				a.claims.Add(1)
				a.log.Info("claimed block", "block", cand.String(), "pool", p.Name)
				a.notify()
				return nil
			}
			existing[cand] = true
			if races++; races >= maxClaimRaces {
				return fmt.Errorf("claim a block for node %s: lost %d races to other nodes", a.opts.Node, races)
			}
		}
	}
	return fmt.Errorf("claim a block for node %s: %w", a.opts.Node, errNoFreeBlock)
}

func (a *Allocator) ownCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, e := range a.entries {
		if e.own {
			n++
		}
	}
	return n + len(a.inClaim)
}

// candidates yields the blocks of p that do not exist, starting at an
// offset derived from the node's name so that nodes claiming at the same
// time usually try different blocks.
func (a *Allocator) candidates(p pools.Pool, existing map[netip.Prefix]bool) func(func(netip.Prefix) bool) {
	return func(yield func(netip.Prefix) bool) {
		n := ipam.NumBlocks(p.CIDR, p.BlockBits)
		if n == 0 {
			return
		}
		h := fnv.New64a()
		h.Write([]byte(a.opts.Node))
		start := h.Sum64() % n
		for i := uint64(0); i < n; i++ {
			b := ipam.BlockAt(p.CIDR, p.BlockBits, (start+i)%n)
			if existing[b] {
				continue
			}
			if !yield(b) {
				return
			}
		}
	}
}

// claim claims block in two phases: a pending affinity, then the block
// itself (whose creation decides between racing nodes, since its name is
// derived from its cidr), then the affinity confirmed. It returns false
// when another node won the block.
func (a *Allocator) claim(ctx context.Context, p pools.Pool, block netip.Prefix) (bool, error) {
	a.mu.Lock()
	a.inClaim[block] = true
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.inClaim, block)
		a.mu.Unlock()
	}()

	aff, err := a.createPendingAffinity(ctx, block)
	if err != nil {
		return false, err
	}
	b, err := a.createBlock(ctx, p, block)
	if err != nil {
		// The block may have been created all the same (a lost
		// response): drop the pending claim only if it surely was not.
		if _, gerr := a.store.Blocks().Get(ctx, ipam.BlockName(block)); ipam.IsNotFound(gerr) {
			return false, a.dropAffinity(ctx, aff, err)
		}
		return false, err
	}
	if owner := ipam.AffinityNode(b.Spec.Affinity); owner != a.opts.Node {
		a.log.Debug("lost block claim", "block", block.String(), "owner", owner)
		return false, a.dropAffinity(ctx, aff, nil)
	}
	if _, err := a.setAffinityState(ctx, aff, v1.AffinityConfirmed); err != nil {
		// The block is ours; Resync confirms the claim later.
		return false, fmt.Errorf("confirm claim: %w", err)
	}
	a.mu.Lock()
	e := a.entryLocked(block)
	e.own, e.releasing, e.block = true, false, b
	e.gen++
	a.noteEmptyLocked(e)
	a.mu.Unlock()
	return true, nil
}

func (a *Allocator) createPendingAffinity(ctx context.Context, block netip.Prefix) (*v1.BlockAffinity, error) {
	want := &v1.BlockAffinity{
		ObjectMeta: metav1.ObjectMeta{Name: ipam.AffinityName(a.opts.Node, block)},
		Spec:       v1.BlockAffinitySpec{Node: a.opts.Node, CIDR: block.String(), State: v1.AffinityPending},
	}
	var out *v1.BlockAffinity
	err := a.retry(ctx, "create pending affinity", func() error {
		var err error
		out, err = a.store.Affinities().Create(ctx, want)
		if ipam.IsAlreadyExists(err) {
			// Left by an earlier attempt of this node (or a lost response):
			// it is this node's claim either way.
			out, err = a.store.Affinities().Get(ctx, want.Name)
			if ipam.IsNotFound(err) {
				// A release of the same block just finished: create again.
				err = fmt.Errorf("affinity %s vanished: %w", want.Name, ipam.ErrConflict)
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create pending affinity %s: %w", want.Name, err)
	}
	return out, nil
}

func (a *Allocator) createBlock(ctx context.Context, p pools.Pool, block netip.Prefix) (*v1.IPAMBlock, error) {
	want := &v1.IPAMBlock{
		ObjectMeta: metav1.ObjectMeta{Name: ipam.BlockName(block)},
		// Sequences start from the clock, not 0, so a block deleted and
		// created again never repeats an earlier incarnation's numbers: a
		// release naming an old (address, sequence) stays stale.
		Spec: v1.IPAMBlockSpec{CIDR: block.String(), Pool: p.Name, Affinity: ipam.AffinityValue(a.opts.Node),
			Sequence: a.opts.Clock.Now().UnixMicro()},
	}
	var out *v1.IPAMBlock
	err := a.retry(ctx, "create block", func() error {
		var err error
		out, err = a.store.Blocks().Create(ctx, want)
		if ipam.IsAlreadyExists(err) {
			out, err = a.store.Blocks().Get(ctx, want.Name)
			if ipam.IsNotFound(err) {
				err = fmt.Errorf("block %s vanished while claiming it: %w", block, ipam.ErrConflict)
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create block %s: %w", want.Name, err)
	}
	return out, nil
}

// setAffinityState writes state into aff, re-reading on conflict.
func (a *Allocator) setAffinityState(ctx context.Context, aff *v1.BlockAffinity, state string) (*v1.BlockAffinity, error) {
	cur := aff.DeepCopy()
	err := a.retry(ctx, "set affinity state", func() error {
		if cur.Spec.State == state {
			return nil
		}
		next := cur.DeepCopy()
		next.Spec.State = state
		out, err := a.store.Affinities().Update(ctx, next)
		if err == nil {
			cur = out
			return nil
		}
		if got, gerr := a.store.Affinities().Get(ctx, aff.Name); gerr == nil {
			cur = got
		} else if ipam.IsNotFound(gerr) {
			return gerr
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("set affinity %s to %s: %w", aff.Name, state, err)
	}
	return cur, nil
}

// dropAffinity deletes a pending claim that did not lead to a block, and
// returns cause (joined with any error deleting it).
func (a *Allocator) dropAffinity(ctx context.Context, aff *v1.BlockAffinity, cause error) error {
	err := a.retry(ctx, "delete affinity", func() error {
		err := a.store.Affinities().Delete(ctx, aff.Name, "")
		if ipam.IsNotFound(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return errors.Join(cause, fmt.Errorf("delete affinity %s: %w", aff.Name, err))
	}
	return cause
}
