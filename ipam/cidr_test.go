package ipam

import (
	"fmt"
	"net/netip"
	"testing"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"k8s.io/apimachinery/pkg/util/validation"
)

func TestBlockArithmetic(t *testing.T) {
	cases := []struct {
		pool      string
		blockBits int
		index     uint64
		want      string
		num       uint64
	}{
		{"10.244.0.0/16", 26, 0, "10.244.0.0/26", 1024},
		{"10.244.0.0/16", 26, 5, "10.244.1.64/26", 1024},
		{"10.244.0.0/16", 26, 1023, "10.244.255.192/26", 1024},
		{"10.0.0.0/30", 32, 3, "10.0.0.3/32", 4},
		{"fd00::/64", 122, 0, "fd00::/122", 1 << 58},
		{"fd00::/64", 122, 3, "fd00::c0/122", 1 << 58},
		{"fd00::/48", 122, 1 << 58, "fd00:0:0:1::/122", 1 << 62}, // crosses the 64-bit boundary
		{"::/0", 128, 7, "::7/128", 1 << 62},
	}
	for _, c := range cases {
		pool := netip.MustParsePrefix(c.pool)
		if got := BlockAt(pool, c.blockBits, c.index); got.String() != c.want {
			t.Errorf("BlockAt(%s, /%d, %d) = %s, want %s", c.pool, c.blockBits, c.index, got, c.want)
		}
		if got := NumBlocks(pool, c.blockBits); got != c.num {
			t.Errorf("NumBlocks(%s, /%d) = %d, want %d", c.pool, c.blockBits, got, c.num)
		}
	}
}

func TestOrdinals(t *testing.T) {
	for _, c := range []struct {
		block string
		ord   int
		addr  string
	}{
		{"10.0.0.64/26", 0, "10.0.0.64"},
		{"10.0.0.64/26", 63, "10.0.0.127"},
		{"10.0.255.192/26", 63, "10.0.255.255"},
		{"fd00::40/122", 5, "fd00::45"},
	} {
		b := netip.MustParsePrefix(c.block)
		if got := AddrAt(b, c.ord); got.String() != c.addr {
			t.Errorf("AddrAt(%s, %d) = %s, want %s", c.block, c.ord, got, c.addr)
		}
		if got, err := Ordinal(b, netip.MustParseAddr(c.addr)); err != nil || got != c.ord {
			t.Errorf("Ordinal(%s, %s) = %d, %v; want %d", c.block, c.addr, got, err, c.ord)
		}
	}
	if _, err := Ordinal(netip.MustParsePrefix("10.0.0.0/26"), netip.MustParseAddr("10.0.0.64")); err == nil {
		t.Error("Ordinal of an address outside the block must fail")
	}
}

func TestNamesAreValidObjectNames(t *testing.T) {
	long := "node-x"
	for len(long) < 260 {
		long += "x"
	}
	for _, n := range []string{
		BlockName(netip.MustParsePrefix("10.244.1.64/26")),
		BlockName(netip.MustParsePrefix("::/122")),
		BlockName(netip.MustParsePrefix("fd00:10:244::40/122")),
		AffinityName("ip-10-0-0-1.ec2.internal", netip.MustParsePrefix("fd00::/122")),
		AffinityName(long, netip.MustParsePrefix("10.0.0.0/26")),
		HandleName(HandleID("node-1", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF", "eth0")),
		HandleName(LegacyHandleID("0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF", "eth0")),
		HandleName("UPPER_case and spaces"),
		HandleName(long),
	} {
		if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 {
			t.Errorf("%q is not a valid object name: %v", n, errs)
		}
	}
	if BlockName(netip.MustParsePrefix("10.244.1.64/26")) != "10-244-1-64-26" {
		t.Error("block names must stay stable: they decide between nodes racing for a block")
	}
	if HandleName("a") == HandleName("b") || AffinityName("n1", netip.MustParsePrefix("10.0.0.0/26")) == AffinityName("n1", netip.MustParsePrefix("10.0.0.64/26")) {
		t.Error("names collide")
	}
}

func TestAssignIsNextFitAndStampsSequences(t *testing.T) {
	block := netip.MustParsePrefix("10.0.0.0/30")
	b := &v1.IPAMBlock{Spec: v1.IPAMBlockSpec{CIDR: block.String()}}
	first, err := Assign(b, block, 2, Owner{Handle: "a"})
	if err != nil || first[0].Ordinal != 0 || first[1].Ordinal != 1 || first[0].Sequence != 1 || first[1].Sequence != 2 {
		t.Fatalf("first = %+v, %v", first, err)
	}
	Remove(b, func(a v1.BlockAllocation) bool { return a.Ordinal == 0 })
	// Ordinal 0 is free again but is not reused before 2 and 3.
	next, _ := Assign(b, block, 2, Owner{Handle: "b"})
	if next[0].Ordinal != 2 || next[1].Ordinal != 3 {
		t.Fatalf("next = %+v, want ordinals 2 and 3 before reusing 0", next)
	}
	if _, err := Assign(b, block, 2, Owner{Handle: "c"}); err == nil {
		t.Fatal("assigning 2 with 1 free must fail")
	}
	if len(b.Spec.Allocations) != 3 {
		t.Fatalf("a failed Assign changed the block: %+v", b.Spec.Allocations)
	}
	last, _ := Assign(b, block, 1, Owner{Handle: "d"})
	if last[0].Ordinal != 0 || last[0].Sequence != 5 {
		t.Fatalf("last = %+v, want ordinal 0 at sequence 5", last)
	}
}

func TestRemoveRefChecksHandleAndSequence(t *testing.T) {
	block := netip.MustParsePrefix("10.0.0.0/30")
	b := &v1.IPAMBlock{Spec: v1.IPAMBlockSpec{CIDR: block.String()}}
	got, _ := Assign(b, block, 1, Owner{Handle: "h"})
	addr := AddrAt(block, int(got[0].Ordinal))
	for _, ref := range []AllocationRef{{Addr: addr, Handle: "other"}, {Addr: addr, Sequence: got[0].Sequence + 1}} {
		if _, err := RemoveRef(b, block, ref); err == nil {
			t.Errorf("RemoveRef(%v) removed a different allocation", ref)
		}
	}
	if r, err := RemoveRef(b, block, AllocationRef{Addr: addr, Handle: "h", Sequence: got[0].Sequence}); err != nil || r == nil {
		t.Fatalf("exact release: %v, %v", r, err)
	}
	if r, err := RemoveRef(b, block, AllocationRef{Addr: addr}); err != nil || r != nil {
		t.Fatalf("releasing twice: %v, %v; want nothing, no error", r, err)
	}
}

func TestNodeRoutes(t *testing.T) {
	blocks := []*v1.IPAMBlock{
		{Spec: v1.IPAMBlockSpec{CIDR: "10.0.0.0/26", Affinity: "node:a", Allocations: []v1.BlockAllocation{{Ordinal: 1, Node: "a"}, {Ordinal: 2, Node: "b"}}}},
		{Spec: v1.IPAMBlockSpec{CIDR: "10.0.0.64/26", Affinity: "node:a"}}, // claim still pending
		{Spec: v1.IPAMBlockSpec{CIDR: "10.0.0.128/26", Affinity: "node:b", Allocations: []v1.BlockAllocation{{Ordinal: 0, Node: "a"}}}},
	}
	affs := []*v1.BlockAffinity{
		{Spec: v1.BlockAffinitySpec{Node: "a", CIDR: "10.0.0.0/26", State: v1.AffinityConfirmed}},
		{Spec: v1.BlockAffinitySpec{Node: "a", CIDR: "10.0.0.64/26", State: v1.AffinityPending}},
		{Spec: v1.BlockAffinitySpec{Node: "b", CIDR: "10.0.0.128/26", State: v1.AffinityPendingDeletion}},
	}
	for _, c := range []struct{ node, owned, borrowed string }{
		{"a", "[10.0.0.0/26]", "[10.0.0.128/32]"},
		{"b", "[10.0.0.128/26]", "[10.0.0.2/32]"},
	} {
		owned, borrowed := NodeRoutes(c.node, blocks, affs)
		if got := sprint(owned); got != c.owned {
			t.Errorf("%s owns %s, want %s", c.node, got, c.owned)
		}
		if got := sprint(borrowed); got != c.borrowed {
			t.Errorf("%s borrowed %s, want %s", c.node, got, c.borrowed)
		}
	}
}

func sprint(ps []netip.Prefix) string {
	s := "["
	for i, p := range ps {
		if i > 0 {
			s += " "
		}
		s += p.String()
	}
	return s + "]"
}

// TestHandleIDsAreUnambiguous: two different attachments never share a
// handle ID, whatever dots or case their container IDs and interface names
// hold, and the same container ID on two nodes gives two handles.
func TestHandleIDsAreUnambiguous(t *testing.T) {
	type att struct{ node, id, ifname string }
	for _, pair := range [][2]att{
		{{"n1", "a.b", "c"}, {"n1", "a", "b.c"}},
		{{"n1", "ABC", "eth0"}, {"n1", "abc", "eth0"}},
		{{"n1", "abc", "Eth0"}, {"n1", "abc", "eth0"}},
		{{"n1", "cnitool-0123", "eth0"}, {"n2", "cnitool-0123", "eth0"}},
		{{"n1.a", "b", "eth0"}, {"n1", "a.b", "eth0"}},
	} {
		a, b := pair[0], pair[1]
		if HandleID(a.node, a.id, a.ifname) == HandleID(b.node, b.id, b.ifname) {
			t.Errorf("%+v and %+v share handle ID %q", a, b, HandleID(a.node, a.id, a.ifname))
		}
	}
	// Old handles keep their IDs readable for release, and no new ID can
	// be mistaken for one.
	if got := LegacyHandleID("ABC.d", "Eth0"); got != "abc.d.eth0" {
		t.Errorf("LegacyHandleID = %q, want the old format abc.d.eth0", got)
	}
	if HandleID("n1", "abc", "eth0") == LegacyHandleID("abc", "eth0") {
		t.Error("a new handle ID equals a legacy one")
	}
}

func TestHoldings(t *testing.T) {
	blocks := []*v1.IPAMBlock{
		{Spec: v1.IPAMBlockSpec{CIDR: "10.0.0.0/26", Affinity: "node:a", Allocations: []v1.BlockAllocation{{Ordinal: 1, Node: "a"}, {Ordinal: 2, Node: "b"}}}},
		{Spec: v1.IPAMBlockSpec{CIDR: "10.0.0.64/26", Affinity: "node:a", Allocations: []v1.BlockAllocation{{Ordinal: 3, Node: "a"}}}}, // claim still pending
		{Spec: v1.IPAMBlockSpec{CIDR: "fd00::/122", Affinity: "node:b"}},
	}
	affs := []*v1.BlockAffinity{
		{Spec: v1.BlockAffinitySpec{Node: "a", CIDR: "10.0.0.0/26", State: v1.AffinityConfirmed}},
		{Spec: v1.BlockAffinitySpec{Node: "a", CIDR: "10.0.0.64/26", State: v1.AffinityPending}},
		{Spec: v1.BlockAffinitySpec{Node: "b", CIDR: "fd00::/122", State: v1.AffinityConfirmed}},
	}
	got := fmt.Sprint(Holdings(blocks, affs))
	want := "[{10.0.0.0/26 a false} {10.0.0.2/32 b true} {10.0.0.64/26  false} {10.0.0.67/32 a true} {fd00::/122 b false}]"
	if got != want {
		t.Errorf("Holdings = %s\nwant       %s", got, want)
	}
}
