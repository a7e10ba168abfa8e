package ipam

import (
	"encoding/json"
	"net/netip"
	"testing"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
)

// An IPAMBlock's allocations come back from the API server as written by
// any node, the GC or a person with kubectl: whatever they hold (ordinals
// out of range, duplicates, odd sequences), reading, assigning and
// releasing must not panic, and an assignment must never hand out an
// address that is already allocated or lies outside the block.
func FuzzBlockOperations(f *testing.F) {
	f.Add([]byte(`{"cidr":"10.0.0.0/29","sequence":3,"allocations":[{"ordinal":0,"handle":"a","sequence":1},{"ordinal":2,"handle":"b","sequence":2}]}`), uint8(29), uint8(2), false)
	f.Add([]byte(`{"cidr":"fd00::/125","allocations":[{"ordinal":-1},{"ordinal":99},{"ordinal":3},{"ordinal":3}]}`), uint8(125), uint8(1), true)
	f.Add([]byte(`{"cidr":"10.0.0.0/30","sequence":-9223372036854775808,"allocations":[]}`), uint8(30), uint8(4), false)
	f.Fuzz(func(t *testing.T, spec []byte, bits, n uint8, v6 bool) {
		var s v1.IPAMBlockSpec
		if json.Unmarshal(spec, &s) != nil {
			return
		}
		// The allocator's contract: blocks are cut from pools whose
		// blockSize the API server bounds to 20..32 (116..128 for IPv6).
		block := netip.MustParsePrefix("10.0.0.0/32")
		base := 20
		if v6 {
			block, base = netip.MustParsePrefix("fd00::/128"), 116
		}
		block = netip.PrefixFrom(block.Addr(), base+int(bits)%13).Masked()
		b := &v1.IPAMBlock{Spec: s}
		_, _ = Allocations(b)
		before := map[int32]bool{}
		for _, a := range b.Spec.Allocations {
			before[a.Ordinal] = true
		}
		got, err := Assign(b, block, int(n%8), Owner{Handle: "fuzz", Node: "n"})
		if err == nil {
			if len(got) != int(n%8) {
				t.Fatalf("asked for %d addresses, got %d", n%8, len(got))
			}
			seen := map[int32]bool{}
			for _, a := range got {
				if before[a.Ordinal] || seen[a.Ordinal] || a.Ordinal < 0 || int(a.Ordinal) >= BlockCapacity(block) {
					t.Fatalf("assigned ordinal %d in %s: taken, repeated or outside (allocations before: %v)", a.Ordinal, block, s.Allocations)
				}
				seen[a.Ordinal] = true
			}
			if !HasAllocations(b, got) {
				t.Fatalf("the block does not hold what was assigned")
			}
		}
		for _, a := range got {
			if _, err := RemoveRef(b, block, AllocationRef{Addr: AddrAt(block, int(a.Ordinal)), Handle: a.Handle, Sequence: a.Sequence}); err != nil {
				t.Fatalf("release what was just assigned: %v", err)
			}
		}
		_ = Remove(b, func(a v1.BlockAllocation) bool { return a.Handle == "" })
		_ = Free(b, block)
	})
}
