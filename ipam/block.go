package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
)

// Errors of block operations.
var (
	// ErrBlockFull: the block has fewer free addresses than asked for.
	ErrBlockFull = errors.New("block full")
	// ErrStale: a release named an allocation (handle or sequence) that
	// is no longer the one at that address; nothing was released.
	ErrStale = errors.New("stale release")
)

// Owner says who an address is handed out to.
type Owner struct {
	Handle    string
	Node      string
	Namespace string
	Pod       string
}

// Allocation is one address in use, with the block that holds it.
type Allocation struct {
	v1.BlockAllocation
	Addr  netip.Addr
	Block netip.Prefix
}

// AllocationRef names one allocation to release. Handle and Sequence,
// when set, must match the allocation at Addr, which protects against
// freeing an address that was released and handed out again since the
// caller looked.
type AllocationRef struct {
	Addr     netip.Addr
	Handle   string
	Sequence int64
}

// String describes the allocation for logs and errors.
func (r AllocationRef) String() string {
	return fmt.Sprintf("%s(handle=%q,seq=%d)", r.Addr, r.Handle, r.Sequence)
}

// BlockPrefix parses a block's cidr.
func BlockPrefix(b *v1.IPAMBlock) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(b.Spec.CIDR)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("block %s: parse cidr: %w", b.Name, err)
	}
	return p.Masked(), nil
}

// Allocations lists a block's allocations with their addresses.
func Allocations(b *v1.IPAMBlock) ([]Allocation, error) {
	p, err := BlockPrefix(b)
	if err != nil {
		return nil, err
	}
	out := make([]Allocation, 0, len(b.Spec.Allocations))
	for _, a := range b.Spec.Allocations {
		out = append(out, Allocation{BlockAllocation: a, Addr: AddrAt(p, int(a.Ordinal)), Block: p})
	}
	return out, nil
}

// Free is the number of unallocated addresses in a block.
func Free(b *v1.IPAMBlock, block netip.Prefix) int {
	return BlockCapacity(block) - len(b.Spec.Allocations)
}

// Assign hands out n free addresses of b to owner and records them in b.
// It searches next-fit from the block's sequence, so a released address is
// not handed out again until the others have been, and stamps each with a
// new sequence number. It fails with ErrBlockFull, changing nothing, when
// fewer than n are free.
func Assign(b *v1.IPAMBlock, block netip.Prefix, n int, owner Owner) ([]v1.BlockAllocation, error) {
	size := BlockCapacity(block)
	// Count what is really taken: a block edited by hand may repeat an
	// ordinal or hold one outside the block.
	used := make([]bool, size)
	free := size
	for _, a := range b.Spec.Allocations {
		if a.Ordinal >= 0 && int(a.Ordinal) < size && !used[a.Ordinal] {
			used[a.Ordinal] = true
			free--
		}
	}
	if free < n {
		return nil, fmt.Errorf("assign %d addresses in block %s: %d free: %w", n, block, free, ErrBlockFull)
	}
	out := make([]v1.BlockAllocation, 0, n)
	// Unsigned: a negative sequence (written by hand) must not become a
	// negative index.
	start := int(uint64(b.Spec.Sequence) % uint64(size))
	for i := 0; i < size && len(out) < n; i++ {
		ord := (start + i) % size
		if used[ord] {
			continue
		}
		b.Spec.Sequence++
		out = append(out, v1.BlockAllocation{
			Ordinal: int32(ord), Handle: owner.Handle, Sequence: b.Spec.Sequence,
			Node: owner.Node, Namespace: owner.Namespace, Pod: owner.Pod,
		})
	}
	b.Spec.Allocations = append(b.Spec.Allocations, out...)
	sortAllocations(b)
	return out, nil
}

// Remove deletes from b the allocations match accepts and returns them.
func Remove(b *v1.IPAMBlock, match func(v1.BlockAllocation) bool) []v1.BlockAllocation {
	var removed []v1.BlockAllocation
	kept := b.Spec.Allocations[:0:0]
	for _, a := range b.Spec.Allocations {
		if match(a) {
			removed = append(removed, a)
			continue
		}
		kept = append(kept, a)
	}
	b.Spec.Allocations = kept
	return removed
}

// RemoveRef deletes the allocation ref names from b. It returns the removed
// allocation, nothing when the address is not allocated (releasing twice is
// not an error), or ErrStale when another allocation holds the address.
func RemoveRef(b *v1.IPAMBlock, block netip.Prefix, ref AllocationRef) (*v1.BlockAllocation, error) {
	ord, err := Ordinal(block, ref.Addr)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(b.Spec.Allocations, func(a v1.BlockAllocation) bool { return int(a.Ordinal) == ord })
	if i < 0 {
		return nil, nil
	}
	a := b.Spec.Allocations[i]
	if (ref.Handle != "" && a.Handle != ref.Handle) || (ref.Sequence != 0 && a.Sequence != ref.Sequence) {
		return nil, fmt.Errorf("release %s: address now held by handle %q at sequence %d: %w", ref, a.Handle, a.Sequence, ErrStale)
	}
	b.Spec.Allocations = slices.Delete(b.Spec.Allocations, i, i+1)
	return &a, nil
}

// HasAllocations reports whether b holds every allocation in want, each at
// the same ordinal, handle and sequence. After an ambiguous write error it
// tells whether the write was applied: sequences are never reused in a
// block, so nobody else can have written the same triple.
func HasAllocations(b *v1.IPAMBlock, want []v1.BlockAllocation) bool {
	have := make(map[int32]v1.BlockAllocation, len(b.Spec.Allocations))
	for _, a := range b.Spec.Allocations {
		have[a.Ordinal] = a
	}
	for _, w := range want {
		h, ok := have[w.Ordinal]
		if !ok || h.Handle != w.Handle || h.Sequence != w.Sequence {
			return false
		}
	}
	return true
}

func sortAllocations(b *v1.IPAMBlock) {
	slices.SortFunc(b.Spec.Allocations, func(x, y v1.BlockAllocation) int { return int(x.Ordinal - y.Ordinal) })
}
