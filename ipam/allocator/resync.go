package allocator

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
)

// ensureLoaded reads the node's claims once, before the first assignment.
func (a *Allocator) ensureLoaded(ctx context.Context) error {
	a.loadMu.Lock()
	defer a.loadMu.Unlock()
	if a.loaded {
		return nil
	}
	if err := a.resyncLocked(ctx); err != nil {
		return err
	}
	a.loaded = true
	return nil
}

// Resync re-reads the node's claims from the store: it finishes claims
// and releases that a crash interrupted (a pending claim whose block is the
// node's is confirmed, one whose block is not is dropped; a pending release
// of an empty block is completed, of a non-empty one undone) and refreshes
// which blocks the node owns.
func (a *Allocator) Resync(ctx context.Context) error {
	a.loadMu.Lock()
	defer a.loadMu.Unlock()
	if err := a.resyncLocked(ctx); err != nil {
		return err
	}
	a.loaded = true
	return nil
}

func (a *Allocator) resyncLocked(ctx context.Context) error {
	gens := a.generations()
	affs, err := a.store.Affinities().List(ctx)
	if err != nil {
		return fmt.Errorf("resync node %s: list affinities: %w", a.opts.Node, err)
	}
	owned := map[netip.Prefix]*v1.IPAMBlock{}
	var errs []error
	for _, aff := range affs {
		if aff.Spec.Node != a.opts.Node {
			continue
		}
		block, b, err := a.settleAffinity(ctx, aff)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if b != nil {
			owned[block] = b
		}
	}
	changed := false
	a.mu.Lock()
	for p, e := range a.entries {
		if e.own && owned[p] == nil && !a.inClaim[p] && !e.releasing {
			e.own, changed = false, true
		}
	}
	for p, b := range owned {
		e := a.entryLocked(p)
		if !e.own {
			e.own, changed = true, true
		}
		a.installLocked(e, b, gens)
	}
	for p, e := range a.entries {
		// Forget idle views of other nodes' blocks: they are re-read when
		// needed, and would otherwise pile up.
		if !e.own && !e.running && !e.releasing && e.reserved == 0 && !a.inClaim[p] {
			delete(a.entries, p)
		}
	}
	a.mu.Unlock()
	if changed {
		a.notify()
	}
	return errors.Join(errs...)
}

// settleAffinity brings one of the node's claims to a final state. It
// returns the block when the node owns it.
func (a *Allocator) settleAffinity(ctx context.Context, aff *v1.BlockAffinity) (netip.Prefix, *v1.IPAMBlock, error) {
	block, err := netip.ParsePrefix(aff.Spec.CIDR)
	if err != nil {
		return block, nil, fmt.Errorf("affinity %s: parse cidr: %w", aff.Name, err)
	}
	block = block.Masked()
	a.mu.Lock()
	busy := a.inClaim[block] || (a.entries[block] != nil && a.entries[block].releasing)
	a.mu.Unlock()
	if busy {
		return block, nil, nil
	}
	b, err := a.store.Blocks().Get(ctx, ipam.BlockName(block))
	if ipam.IsNotFound(err) {
		b, err = nil, nil
	}
	if err != nil {
		return block, nil, fmt.Errorf("affinity %s: read block: %w", aff.Name, err)
	}
	ours := b != nil && ipam.AffinityNode(b.Spec.Affinity) == a.opts.Node && !b.Spec.Deleted
	log := a.log.With("block", block.String(), "affinity", aff.Name, "state", aff.Spec.State)
	switch {
	case !ours:
		// The block is gone or another node's: the claim is void.
		log.Info("dropping claim on a block the node does not own")
		err := a.store.Affinities().Delete(ctx, aff.Name, aff.ResourceVersion)
		if err != nil && !ipam.IsNotFound(err) && !ipam.IsConflict(err) {
			return block, nil, fmt.Errorf("drop affinity %s: %w", aff.Name, err)
		}
		return block, nil, nil
	case aff.Spec.State == v1.AffinityPendingDeletion && len(b.Spec.Allocations) == 0:
		log.Info("finishing interrupted release of an empty block")
		return block, nil, a.deleteClaim(ctx, aff, b)
	case aff.Spec.State != v1.AffinityConfirmed:
		log.Info("confirming claim on the node's block")
		if _, err := a.setAffinityState(ctx, aff, v1.AffinityConfirmed); err != nil {
			return block, nil, err
		}
	}
	return block, b, nil
}

// deleteClaim deletes an empty block (only if unchanged) and then the
// node's affinity for it.
func (a *Allocator) deleteClaim(ctx context.Context, aff *v1.BlockAffinity, b *v1.IPAMBlock) error {
	if err := a.store.Blocks().Delete(ctx, b.Name, b.ResourceVersion); err != nil && !ipam.IsNotFound(err) {
		return fmt.Errorf("delete empty block %s: %w", b.Spec.CIDR, err)
	}
	if err := a.store.Affinities().Delete(ctx, aff.Name, aff.ResourceVersion); err != nil && !ipam.IsNotFound(err) {
		return fmt.Errorf("delete affinity %s: %w", aff.Name, err)
	}
	return nil
}

// ReleaseEmptyBlocks releases the claims on the node's blocks that have
// been empty for EmptyBlockGrace, so their addresses go back to the pool.
// Each release marks the affinity pendingDeletion, deletes the block only
// if it is still the empty version (a node that borrowed from it meanwhile
// makes the delete fail, and the claim is kept), then deletes the
// affinity. It returns the blocks released.
func (a *Allocator) ReleaseEmptyBlocks(ctx context.Context) ([]netip.Prefix, error) {
	now := a.opts.Clock.Now()
	var todo []*entry
	a.mu.Lock()
	for _, e := range a.entries {
		// No reservation means no assignment is queued or being written
		// here, and none can start while releasing is set; a release in
		// flight keeps the block empty, and a borrower's write makes the
		// conditional delete fail.
		if e.own && !e.releasing && e.block != nil && len(e.block.Spec.Allocations) == 0 && e.reserved == 0 &&
			!e.emptySince.IsZero() && now.Sub(e.emptySince) >= a.opts.EmptyBlockGrace {
			e.releasing = true
			todo = append(todo, e)
		} else if e.own {
			a.log.Debug("keeping block", "block", e.prefix.String(), "reserved", e.reserved, "releasing", e.releasing,
				"allocations", blockLen(e.block), "emptySince", e.emptySince)
		}
	}
	a.mu.Unlock()
	var released []netip.Prefix
	var errs []error
	for _, e := range todo {
		ok, err := a.releaseBlock(ctx, e)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			released = append(released, e.prefix)
		}
	}
	if len(released) > 0 {
		a.notify()
	}
	return released, errors.Join(errs...)
}

// releaseBlock releases one empty block; see ReleaseEmptyBlocks.
func (a *Allocator) releaseBlock(ctx context.Context, e *entry) (released bool, err error) {
	log := a.log.With("block", e.prefix.String())
	defer func() {
		a.mu.Lock()
		e.releasing = false
		if released {
			e.own, e.block = false, nil
			if a.entries[e.prefix] == e {
				delete(a.entries, e.prefix)
			}
		}
		a.mu.Unlock()
	}()
	aff, err := a.store.Affinities().Get(ctx, ipam.AffinityName(a.opts.Node, e.prefix))
	if err != nil {
		return false, fmt.Errorf("release block %s: read affinity: %w", e.prefix, err)
	}
	if aff, err = a.setAffinityState(ctx, aff, v1.AffinityPendingDeletion); err != nil {
		return false, fmt.Errorf("release block %s: %w", e.prefix, err)
	}
	a.mu.Lock()
	b := e.block
	a.mu.Unlock()
	gone, err := a.deleteIfEmpty(ctx, e, b)
	if err != nil || !gone {
		// Someone allocated from the block since (or it cannot be
		// deleted now): keep the claim; a later pass tries again.
		log.Info("keeping block that is no longer empty or could not be deleted", "err", err)
		if _, cerr := a.setAffinityState(ctx, aff, v1.AffinityConfirmed); cerr != nil {
			return false, errors.Join(err, fmt.Errorf("release block %s: restore claim: %w", e.prefix, cerr))
		}
		return false, err
	}
	err = a.retry(ctx, "delete affinity", func() error {
		err := a.store.Affinities().Delete(ctx, aff.Name, aff.ResourceVersion)
		if ipam.IsNotFound(err) {
			return nil
		}
		return err
	})
	if err != nil {
		// The block is gone; Resync drops the leftover affinity.
		return true, fmt.Errorf("release block %s: delete affinity: %w", e.prefix, err)
	}
	log.Info("released empty block")
	return true, nil
}

// deleteIfEmpty deletes e's block if it is still empty and still this
// node's, retrying on conflict with the version read back. It reports
// whether the block is gone.
func (a *Allocator) deleteIfEmpty(ctx context.Context, e *entry, b *v1.IPAMBlock) (bool, error) {
	gone := false
	err := a.retry(ctx, "delete empty block", func() error {
		if b == nil {
			fresh, err := a.getBlock(ctx, e)
			if err != nil {
				return err
			}
			if fresh == nil {
				gone = true
				return nil
			}
			a.mu.Lock()
			e.block = fresh
			e.gen++
			a.noteEmptyLocked(e)
			a.mu.Unlock()
			if len(fresh.Spec.Allocations) > 0 || ipam.AffinityNode(fresh.Spec.Affinity) != a.opts.Node {
				return nil
			}
			b = fresh
		}
		err := a.store.Blocks().Delete(ctx, e.name, b.ResourceVersion)
		if err == nil || ipam.IsNotFound(err) {
			gone = true
			return nil
		}
		b = nil // read it back before deciding again
		return err
	})
	return gone, err
}

func blockLen(b *v1.IPAMBlock) int {
	if b == nil {
		return -1
	}
	return len(b.Spec.Allocations)
}
