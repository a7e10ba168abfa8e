package audit

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cairn-net/cairn/ipam"
)

// Outcome is what a release or repair did.
type Outcome struct {
	// Released lists the addresses freed.
	Released []netip.Addr `json:"released"`
	// Fixed describes the other repairs made.
	Fixed []string `json:"fixed"`
	// Skipped describes findings left alone, and why.
	Skipped []string `json:"skipped"`
}

// ReleaseAddresses frees addrs whoever holds them and refreshes their
// handles. Addresses not allocated are skipped.
func ReleaseAddresses(ctx context.Context, store ipam.Store, backoff ipam.Backoff, addrs []netip.Addr) (*Outcome, error) {
	refs := make([]ipam.AllocationRef, len(addrs))
	for i, a := range addrs {
		refs[i] = ipam.AllocationRef{Addr: a}
	}
	return releaseRefs(ctx, store, backoff, refs)
}

func releaseRefs(ctx context.Context, store ipam.Store, backoff ipam.Backoff, refs []ipam.AllocationRef) (*Outcome, error) {
	blocks, err := store.Blocks().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("release addresses: %w", err)
	}
	out := &Outcome{}
	released, err := ipam.ReleaseRefs(ctx, store, backoff, blocks, refs)
	for _, r := range released {
		out.Released = append(out.Released, r.Addr)
	}
	if err != nil {
		return out, fmt.Errorf("release addresses: %w", err)
	}
	return out, nil
}

// Repair fixes what a check found, each fix conditional on the state the
// check saw:
//   - an allocation without handle is released (only if the same
//     allocation, by handle and sequence, is still there); one whose handle
//     does not name its block gets its handle fixed instead;
//   - a handle without allocations is deleted (if it still holds none);
//   - an empty block without affinity is deleted (if unchanged); a
//     non-empty one is skipped: its addresses are in use;
//   - a stale affinity is deleted (if unchanged);
//   - duplicates are skipped: which holder is right needs a person.
func Repair(ctx context.Context, store ipam.Store, backoff ipam.Backoff, r *Report) (*Outcome, error) {
	out := &Outcome{}
	var errs []error
	var refs []ipam.AllocationRef
	fixHandles := map[string]bool{}
	for _, o := range r.AllocationsWithoutHandle {
		if o.Reason == "no handle" {
			refs = append(refs, ipam.AllocationRef{Addr: o.Addr, Handle: o.Handle, Sequence: o.Sequence})
			continue
		}
		fixHandles[o.Handle] = true
		if err := nameBlockInHandle(ctx, store, backoff, o.Handle, o.Block); err != nil {
			errs = append(errs, err)
		} else {
			out.Fixed = append(out.Fixed, fmt.Sprintf("handle %s names block %s again", o.Handle, o.Block))
		}
	}
	if len(refs) > 0 {
		rel, err := releaseRefs(ctx, store, backoff, refs)
		if rel != nil {
			out.Released = append(out.Released, rel.Released...)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, h := range r.HandlesWithoutAllocations {
		if fixHandles[h.HandleID] {
			continue
		}
		// RefreshHandle deletes it only if it still holds nothing.
		deleted, err := ipam.RefreshHandle(ctx, store, backoff, h.HandleID)
		switch {
		case err != nil:
			errs = append(errs, err)
		case deleted:
			out.Fixed = append(out.Fixed, "deleted handle "+h.Name+" without allocations")
		default:
			out.Skipped = append(out.Skipped, "handle "+h.Name+" holds addresses again")
		}
	}
	for _, b := range r.BlocksWithoutAffinity {
		if b.Allocations > 0 {
			out.Skipped = append(out.Skipped, fmt.Sprintf("block %s has %d allocations and no affinity", b.CIDR, b.Allocations))
			continue
		}
		if err := store.Blocks().Delete(ctx, b.Name, b.ResourceVersion); err != nil && !ipam.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete unclaimed block %s: %w", b.CIDR, err))
		} else {
			out.Fixed = append(out.Fixed, "deleted empty unclaimed block "+b.CIDR)
		}
	}
	for _, a := range r.AffinitiesWithoutBlock {
		if err := store.Affinities().Delete(ctx, a.Name, a.ResourceVersion); err != nil && !ipam.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete stale affinity %s: %w", a.Name, err))
		} else {
			out.Fixed = append(out.Fixed, "deleted stale affinity "+a.Name)
		}
	}
	for _, d := range r.DuplicateAddresses {
		out.Skipped = append(out.Skipped, fmt.Sprintf("%s is held %d times: release the wrong holder by address after checking the pods", d.Addr, len(d.Holders)))
	}
	return out, errors.Join(errs...)
}

// nameBlockInHandle adds block to the handle's blocks map and refreshes
// the counts.
func nameBlockInHandle(ctx context.Context, store ipam.Store, backoff ipam.Backoff, id, block string) error {
	name := ipam.HandleName(id)
	_, err := backoff.Retry(ctx, "fix handle", func() error {
		h, err := store.Handles().Get(ctx, name)
		if err != nil {
			return err
		}
		if h.Spec.Blocks[block] > 0 {
			return nil
		}
		next := h.DeepCopy()
		if next.Spec.Blocks == nil {
			next.Spec.Blocks = map[string]int32{}
		}
		next.Spec.Blocks[block] = 1
		_, err = store.Handles().Update(ctx, next)
		return err
	})
	if err != nil {
		return fmt.Errorf("name block %s in handle %s: %w", block, id, err)
	}
	_, err = ipam.RefreshHandle(ctx, store, backoff, id)
	return err
}
