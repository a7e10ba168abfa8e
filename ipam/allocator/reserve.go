package allocator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/pools"
)

// maxReserveRounds bounds how often one reservation claims blocks or waits
// for another caller's claim before giving up.
const maxReserveRounds = 16

// reservation promises n addresses of e's block to one assignment; the
// committer turns it into allocations (or errMoved).
type reservation struct {
	e      *entry
	n      int
	borrow bool
}

func total(rs []reservation) int {
	n := 0
	for _, r := range rs {
		n += r.n
	}
	return n
}

// unreserve gives back reservations that were never submitted.
func (a *Allocator) unreserve(rs []reservation) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range rs {
		r.e.reserved -= r.n
	}
}

// reserve promises n addresses from cands: from the node's own blocks,
// claiming new blocks as needed, and borrowing only when the pools have no
// free block left and affinity is not strict.
func (a *Allocator) reserve(ctx context.Context, fam pools.Family, cands []pools.Pool, n int) ([]reservation, error) {
	if len(cands) == 0 {
		return nil, fmt.Errorf("no usable %s pool selects node %s: %w", fam, a.opts.Node, ErrNoAddresses)
	}
	var out []reservation
	for round := 0; ; round++ {
		a.mu.Lock()
		out = a.reserveOwnLocked(cands, n-total(out), out)
		if total(out) == n {
			a.mu.Unlock()
			return out, nil
		}
		if round >= maxReserveRounds {
			a.mu.Unlock()
			a.unreserve(out)
			return nil, fmt.Errorf("reserve %d %s addresses: blocks kept filling up: %w", n, fam, ErrNoAddresses)
		}
		call, leader := a.claiming[fam], false
		if call == nil {
			call, leader = &claimCall{done: make(chan struct{})}, true
			a.claiming[fam] = call
		}
		a.mu.Unlock()

		if leader {
			a.leadClaim(ctx, fam, cands, call)
		} else {
			select {
			case <-call.done:
			case <-ctx.Done():
				a.unreserve(out)
				return nil, fmt.Errorf("wait for a block claim: %w", ctx.Err())
			}
		}
		switch {
		case call.err == nil:
			continue
		case errors.Is(call.err, errNoFreeBlock) && !a.opts.StrictAffinity:
			more, err := a.borrow(ctx, cands, n-total(out))
			if err != nil {
				a.unreserve(out)
				return nil, err
			}
			return append(out, more...), nil
		case errors.Is(call.err, errNoFreeBlock), errors.Is(call.err, errMaxBlocks):
			a.unreserve(out)
			return nil, fmt.Errorf("reserve %d %s addresses: %w: %w", n, fam, ErrNoAddresses, call.err)
		case !leader:
			// The claimer's own failure (its context ended, say): try
			// again, claiming ourselves if needed.
			continue
		default:
			a.unreserve(out)
			return nil, call.err
		}
	}
}

// leadClaim claims a block on behalf of every assignment waiting for one.
// It runs detached from the caller's context: the claim serves others too,
// and abandoning it halfway would leave a pending claim behind.
func (a *Allocator) leadClaim(ctx context.Context, fam pools.Family, cands []pools.Pool, call *claimCall) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.opts.WriteTimeout)
	defer cancel()
	call.err = a.claimBlock(cctx, cands)
	a.mu.Lock()
	delete(a.claiming, fam)
	a.mu.Unlock()
	close(call.done)
}

// reserveOwnLocked adds reservations for up to need addresses from own
// blocks in cands, fullest block first so that concurrent assignments
// share a block (one write) and emptier blocks can drain and be released.
// Called with a.mu held.
func (a *Allocator) reserveOwnLocked(cands []pools.Pool, need int, out []reservation) []reservation {
	if need <= 0 {
		return out
	}
	var usable []*entry
	for _, e := range a.entries {
		if e.own && !e.releasing && e.free() > 0 && inPools(cands, e.prefix) {
			usable = append(usable, e)
		}
	}
	slices.SortFunc(usable, func(x, y *entry) int {
		if d := x.free() - y.free(); d != 0 {
			return d
		}
		return x.prefix.Addr().Compare(y.prefix.Addr())
	})
	for _, e := range usable {
		if need == 0 {
			break
		}
		take := min(need, e.free())
		e.reserved += take
		need -= take
		out = addReservation(out, reservation{e: e, n: take})
	}
	return out
}

func addReservation(out []reservation, r reservation) []reservation {
	for i := range out {
		if out[i].e == r.e && out[i].borrow == r.borrow {
			out[i].n += r.n
			return out
		}
	}
	return append(out, r)
}

func inPools(cands []pools.Pool, block netip.Prefix) bool {
	for _, p := range cands {
		if p.BlockBits == block.Bits() && p.CIDR.Contains(block.Addr()) {
			return true
		}
	}
	return false
}

// borrow reserves n addresses in other nodes' blocks of cands. It is used
// only once the pools have no free block: the borrowed addresses are
// announced as host routes, which costs every router a route each.
func (a *Allocator) borrow(ctx context.Context, cands []pools.Pool, n int) ([]reservation, error) {
	gens := a.generations()
	blocks, err := a.store.Blocks().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("borrow %d addresses: list blocks: %w", n, err)
	}
	// Borrowers (and the owner) contend for the few blocks with room
	// left: try them in random order, so they spread out rather than all
	// converging on the first.
	rand.Shuffle(len(blocks), func(i, j int) { blocks[i], blocks[j] = blocks[j], blocks[i] })
	var out []reservation
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, b := range blocks {
		if total(out) == n {
			break
		}
		p, err := ipam.BlockPrefix(b)
		if err != nil || b.Spec.Deleted || ipam.AffinityNode(b.Spec.Affinity) == a.opts.Node || !inPools(cands, p) {
			continue
		}
		e := a.entryLocked(p)
		if e.own {
			continue
		}
		a.installLocked(e, b, gens)
		take := min(n-total(out), e.free())
		if take <= 0 {
			continue
		}
		e.reserved += take
		out = addReservation(out, reservation{e: e, n: take, borrow: true})
	}
	if total(out) < n {
		for _, r := range out {
			r.e.reserved -= r.n
		}
		return nil, fmt.Errorf("borrow %d addresses: pools are full: %w", n, ErrNoAddresses)
	}
	a.borrows.Add(int64(n))
	return out, nil
}

// generations snapshots every entry's generation before a read, for
// installLocked.
func (a *Allocator) generations() map[*entry]uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[*entry]uint64, len(a.entries))
	for _, e := range a.entries {
		out[e] = e.gen
	}
	return out
}

// installLocked makes b, read after gens was taken, e's cached version,
// unless e changed since (then e's version is at least as new) or a
// write is running. An entry created after gens was taken counts from
// generation 0. Called with a.mu held.
func (a *Allocator) installLocked(e *entry, b *v1.IPAMBlock, gens map[*entry]uint64) {
	if e.running || e.gen != gens[e] {
		return
	}
	e.block = b
	e.gen++
	a.noteEmptyLocked(e)
}
