package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
)

// Store-level operations shared by the garbage collector and cairnctl. The
// allocator has its own batched path for the hot cases; these are for
// occasional repairs and go straight to the store.

// MutateBlock reads the block called name, lets mutate change it and
// writes it back with compare-and-swap, reading again and repeating on
// conflict. mutate returns false to write nothing. It returns the block as
// stored afterwards; a missing block gives an error wrapping ErrNotFound.
func MutateBlock(ctx context.Context, store Store, backoff Backoff, name string, mutate func(*v1.IPAMBlock) (bool, error)) (*v1.IPAMBlock, error) {
	var out *v1.IPAMBlock
	_, err := backoff.Retry(ctx, "update block "+name, func() error {
		cur, err := store.Blocks().Get(ctx, name)
		if err != nil {
			return err
		}
		next := cur.DeepCopy()
		changed, err := mutate(next)
		if err != nil || !changed {
			out = cur
			return err
		}
		out, err = store.Blocks().Update(ctx, next)
		return err
	})
	return out, err
}

// HandleAllocations reads the blocks a handle names and returns the
// allocations the handle holds there.
func HandleAllocations(ctx context.Context, store Store, h *v1.IPAMHandle) ([]Allocation, error) {
	var out []Allocation
	for cidr := range h.Spec.Blocks {
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			continue
		}
		b, err := store.Blocks().Get(ctx, BlockName(p.Masked()))
		if IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read block %s of handle %s: %w", cidr, h.Name, err)
		}
		all, err := Allocations(b)
		if err != nil {
			return nil, err
		}
		for _, al := range all {
			if al.Handle == h.Spec.HandleID {
				out = append(out, al)
			}
		}
	}
	return out, nil
}

// RefreshHandle makes the handle's blocks map match the allocations it
// still holds in the blocks it names, and deletes it when it holds none;
// it reports whether it deleted it. The delete is conditional on the
// version read, so a handle that gained a block meanwhile survives.
func RefreshHandle(ctx context.Context, store Store, backoff Backoff, id string) (bool, error) {
	name := HandleName(id)
	deleted := false
	_, err := backoff.Retry(ctx, "refresh handle", func() error {
		h, err := store.Handles().Get(ctx, name)
		if IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Spec.HandleID != id {
			return nil
		}
		held, err := HandleAllocations(ctx, store, h)
		if err != nil {
			return err
		}
		if len(held) == 0 {
			err = store.Handles().Delete(ctx, name, h.ResourceVersion)
			deleted = err == nil
			if IsNotFound(err) {
				return nil
			}
			return err
		}
		counts := map[string]int32{}
		for _, al := range held {
			counts[al.Block.String()]++
		}
		if equalCounts(counts, h.Spec.Blocks) {
			return nil
		}
		next := h.DeepCopy()
		next.Spec.Blocks = counts
		_, err = store.Handles().Update(ctx, next)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("refresh handle %s: %w", id, err)
	}
	return deleted, nil
}

func equalCounts(a, b map[string]int32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// ReleaseRefs releases the allocations refs name, each only if it still
// matches (see AllocationRef), then refreshes the handles that held them.
// blocks is the current list of blocks, used to find each address's
// block. It returns what was released; mismatches are reported with
// errors wrapping ErrStale, addresses not allocated are skipped.
func ReleaseRefs(ctx context.Context, store Store, backoff Backoff, blocks []*v1.IPAMBlock, refs []AllocationRef) ([]Allocation, error) {
	byBlock := map[string][]AllocationRef{}
	prefixes := map[string]netip.Prefix{}
	for _, r := range refs {
		for _, b := range blocks {
			if p, err := BlockPrefix(b); err == nil && p.Contains(r.Addr) {
				byBlock[b.Name] = append(byBlock[b.Name], r)
				prefixes[b.Name] = p
			}
		}
	}
	var out []Allocation
	var errs []error
	handles := map[string]bool{}
	for name, rs := range byBlock {
		p := prefixes[name]
		var released []Allocation
		var stale []error
		_, err := MutateBlock(ctx, store, backoff, name, func(b *v1.IPAMBlock) (bool, error) {
			released, stale = nil, nil
			for _, r := range rs {
				got, err := RemoveRef(b, p, r)
				if err != nil {
					stale = append(stale, err)
				} else if got != nil {
					released = append(released, Allocation{BlockAllocation: *got, Addr: r.Addr, Block: p})
				}
			}
			return len(released) > 0, nil
		})
		if IsNotFound(err) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("release in block %s: %w", p, err))
			continue
		}
		errs = append(errs, stale...)
		for _, al := range released {
			handles[al.Handle] = true
		}
		out = append(out, released...)
	}
	for h := range handles {
		if _, err := RefreshHandle(ctx, store, backoff, h); err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}
