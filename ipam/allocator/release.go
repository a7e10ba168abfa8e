package allocator

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/pools"
)

// ReleaseByHandle releases every address the handle holds and deletes the
// handle. Releasing a handle that does not exist succeeds, so a repeated
// CNI DEL is harmless; addresses the node's blocks still hold for it
// (see releaseUnnamed) are released. Concurrent releases on one block are
// written together.
func (a *Allocator) ReleaseByHandle(ctx context.Context, handleID string) error {
	unlock := a.handles.lock(handleID)
	defer unlock()
	name := ipam.HandleName(handleID)
	missing := false
	err := a.retry(ctx, "release handle", func() error {
		missing = false
		h, err := a.store.Handles().Get(ctx, name)
		if ipam.IsNotFound(err) {
			missing = true
			return nil
		}
		if err != nil {
			return err
		}
		if h.Spec.HandleID != handleID {
			missing = true // the name is another handle's hash: ours does not exist
			return nil
		}
		if _, err := a.releaseInBlocks(ctx, handleBlocks(h), matchHandle(handleID)); err != nil {
			return err
		}
		// Only delete the version whose blocks were emptied: if the
		// handle changed meanwhile, go round again.
		err = a.store.Handles().Delete(ctx, name, h.ResourceVersion)
		if ipam.IsNotFound(err) {
			return nil
		}
		return err
	})
	if err == nil && missing {
		err = a.releaseUnnamed(ctx, handleID)
	}
	if err != nil {
		return fmt.Errorf("release handle %s on node %s: %w", handleID, a.opts.Node, err)
	}
	return nil
}

// releaseUnnamed releases the allocations of a handle that does not
// exist. A new handle and its first block write go out together
// (createAndCommit), so an agent that crashed between the two, or whose
// rollback failed, leaves an allocation whose handle was never written;
// the runtime's DEL of that attachment lands here. It looks in the blocks
// the allocator knows (the node's own, and those it wrote to since it
// started), in its cache, so a DEL of a handle that holds nothing costs no
// API call. An address borrowed from another node's block before a
// restart is not seen here: the garbage collector releases it once its
// pod is gone.
func (a *Allocator) releaseUnnamed(ctx context.Context, handleID string) error {
	if err := a.ensureLoaded(ctx); err != nil {
		return err
	}
	blocks := map[netip.Prefix]bool{}
	a.mu.Lock()
	for p, e := range a.entries {
		if e.block != nil && slices.ContainsFunc(e.block.Spec.Allocations, func(al v1.BlockAllocation) bool { return al.Handle == handleID }) {
			blocks[p] = true
		}
	}
	a.mu.Unlock()
	if len(blocks) == 0 {
		return nil
	}
	released, err := a.releaseInBlocks(ctx, blocks, matchHandle(handleID))
	for _, al := range released {
		a.log.Info("released an address whose handle was never written", "handle", handleID, "addr", al.Addr.String(), "block", al.Block.String())
	}
	return err
}

func matchHandle(id string) func(netip.Prefix) func(v1.BlockAllocation) bool {
	return func(netip.Prefix) func(v1.BlockAllocation) bool {
		return func(al v1.BlockAllocation) bool { return al.Handle == id }
	}
}

func handleBlocks(h *v1.IPAMHandle) map[netip.Prefix]bool {
	out := map[netip.Prefix]bool{}
	for cidr := range h.Spec.Blocks {
		if p, err := netip.ParsePrefix(cidr); err == nil {
			out[p.Masked()] = true
		}
	}
	return out
}

// releaseInBlocks removes, through each block's committer, the
// allocations match accepts, and returns them.
func (a *Allocator) releaseInBlocks(ctx context.Context, blocks map[netip.Prefix]bool, match func(netip.Prefix) func(v1.BlockAllocation) bool) ([]ipam.Allocation, error) {
	var ops []sent
	for p := range blocks {
		a.mu.Lock()
		e := a.entryLocked(p)
		a.mu.Unlock()
		o := &op{ctx: ctx, kind: opRelease, match: match(p)}
		a.submit(e, o)
		ops = append(ops, sent{o, p})
	}
	return a.collect(ctx, ops)
}

// sent is a release op and its block.
type sent struct {
	o *op
	p netip.Prefix
}

// collect waits for release ops and gathers what they released. An op
// whose caller stopped waiting (ctx ended) before it was done is left
// unread: its committer still owns its results, filled in before the
// write and reset if the write fails, so what it released is unknown.
func (a *Allocator) collect(ctx context.Context, ops []sent) ([]ipam.Allocation, error) {
	var out []ipam.Allocation
	var errs []error
	for _, s := range ops {
		err := wait(ctx, s.o)
		select {
		case <-s.o.done:
			err = s.o.err
		default:
			errs = append(errs, fmt.Errorf("release in block %s: %w", s.p, err))
			continue
		}
		for _, al := range s.o.released {
			out = append(out, ipam.Allocation{BlockAllocation: al, Addr: ipam.AddrAt(s.p, int(al.Ordinal)), Block: s.p})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("release in block %s: %w", s.p, err))
		}
	}
	return out, errors.Join(errs...)
}

// ReleaseAddresses releases addresses whoever holds them, and brings the
// handles that held them up to date. Addresses not allocated are skipped.
func (a *Allocator) ReleaseAddresses(ctx context.Context, addrs ...netip.Addr) error {
	refs := make([]ipam.AllocationRef, len(addrs))
	for i, ad := range addrs {
		refs[i] = ipam.AllocationRef{Addr: ad}
	}
	return a.Release(ctx, refs...)
}

// Release releases exactly the allocations named: one whose handle or
// sequence no longer matches (the address was released and handed out
// again since the caller looked) is left alone and reported with an error
// wrapping ipam.ErrStale.
func (a *Allocator) Release(ctx context.Context, refs ...ipam.AllocationRef) error {
	byBlock, err := a.blocksOf(ctx, refs)
	if err != nil {
		return err
	}
	var ops []sent
	for p, rs := range byBlock {
		a.mu.Lock()
		e := a.entryLocked(p)
		a.mu.Unlock()
		o := &op{ctx: ctx, kind: opRelease, refs: rs}
		a.submit(e, o)
		ops = append(ops, sent{o, p})
	}
	released, err := a.collect(ctx, ops)
	handles := map[string]bool{}
	for _, al := range released {
		handles[al.Handle] = true
	}
	var errs []error
	for h := range handles {
		if herr := a.refreshHandle(ctx, h); herr != nil {
			errs = append(errs, herr)
		}
	}
	if err = errors.Join(append([]error{err}, errs...)...); err != nil {
		return fmt.Errorf("release %d addresses on node %s: %w", len(refs), a.opts.Node, err)
	}
	return nil
}

// blocksOf groups refs by the block holding each address.
func (a *Allocator) blocksOf(ctx context.Context, refs []ipam.AllocationRef) (map[netip.Prefix][]ipam.AllocationRef, error) {
	all, err := a.allPools(ctx)
	if err != nil {
		return nil, err
	}
	out := map[netip.Prefix][]ipam.AllocationRef{}
	var blocks []*v1.IPAMBlock
	for _, r := range refs {
		if p, ok := pools.Containing(all, ipam.HostPrefix(r.Addr)); ok {
			out[ipam.BlockOf(r.Addr, p.BlockBits)] = append(out[ipam.BlockOf(r.Addr, p.BlockBits)], r)
			continue
		}
		// The pool is gone but its blocks may remain: look them up.
		if blocks == nil {
			if blocks, err = a.store.Blocks().List(ctx); err != nil {
				return nil, fmt.Errorf("find block of %s: %w", r.Addr, err)
			}
		}
		i := slices.IndexFunc(blocks, func(b *v1.IPAMBlock) bool {
			p, err := ipam.BlockPrefix(b)
			return err == nil && p.Contains(r.Addr)
		})
		if i < 0 {
			continue // in no block: not allocated
		}
		p, _ := ipam.BlockPrefix(blocks[i])
		out[p] = append(out[p], r)
	}
	return out, nil
}

// refreshHandle makes a handle's blocks map match what it still holds,
// deleting it when it holds nothing.
func (a *Allocator) refreshHandle(ctx context.Context, id string) error {
	unlock := a.handles.lock(id)
	defer unlock()
	_, err := ipam.RefreshHandle(ctx, a.store, a.opts.Backoff, id)
	return err
}
