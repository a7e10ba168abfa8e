package agent

import (
	"log/slog"
	"testing"

	"k8s.io/client-go/tools/cache"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
)

func TestBlockConcerns(t *testing.T) {
	for _, tc := range []struct {
		name  string
		block *v1.IPAMBlock
		want  bool
	}{
		{name: "owned", block: block("10.244.0.0/26", "node1", nil), want: true},
		{name: "another node's", block: block("10.244.0.0/26", "node2", map[int32]string{1: "node2"}), want: false},
		{name: "borrowed from", block: block("10.244.0.0/26", "node2", map[int32]string{1: "node2", 2: "node1"}), want: true},
		{name: "nobody's, borrowed from", block: &v1.IPAMBlock{Spec: v1.IPAMBlockSpec{CIDR: "10.244.0.0/26",
			Allocations: []v1.BlockAllocation{{Ordinal: 3, Node: "node1"}}}}, want: true},
		{name: "nobody's", block: &v1.IPAMBlock{Spec: v1.IPAMBlockSpec{CIDR: "10.244.0.0/26"}}, want: false},
	} {
		if got := blockConcerns(tc.block, "node1"); got != tc.want {
			t.Errorf("%s: blockConcerns = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestBlockEventsEnqueueOnlyConcernedNodes: a block created or deleted
// wakes every node (its holdings feed the owner-only import rule); an
// update only when the block concerns this node, before or after the
// change, or its holdings changed; also for a delete seen late (a
// tombstone).
func TestBlockEventsEnqueueOnlyConcernedNodes(t *testing.T) {
	mine, theirs := block("10.244.0.0/26", "node1", nil), block("10.244.1.0/26", "node2", map[int32]string{1: "node2"})
	borrowedNow := block("10.244.1.0/26", "node2", map[int32]string{1: "node2", 2: "node1"})
	for _, tc := range []struct {
		name  string
		event func(h cache.ResourceEventHandler)
		want  bool
	}{
		{"add of another node's block", func(h cache.ResourceEventHandler) { h.OnAdd(theirs, false) }, true},
		{"add of this node's block", func(h cache.ResourceEventHandler) { h.OnAdd(mine, false) }, true},
		{"update of another node's block", func(h cache.ResourceEventHandler) { h.OnUpdate(theirs, theirs) }, false},
		{"this node borrows", func(h cache.ResourceEventHandler) { h.OnUpdate(theirs, borrowedNow) }, true},
		{"this node releases what it borrowed", func(h cache.ResourceEventHandler) { h.OnUpdate(borrowedNow, theirs) }, true},
		{"delete of another node's block", func(h cache.ResourceEventHandler) { h.OnDelete(theirs) }, true},
		{"late delete of this node's block", func(h cache.ResourceEventHandler) {
			h.OnDelete(cache.DeletedFinalStateUnknown{Key: mine.Name, Obj: mine})
		}, true},
	} {
		c := &controller{log: slog.New(slog.DiscardHandler), nodeName: "node1", queue: newQueue()}
		tc.event(c.blockHandler())
		if got := c.queue.Len() > 0; got != tc.want {
			t.Errorf("%s: enqueued = %v, want %v", tc.name, got, tc.want)
		}
		c.queue.ShutDown()
	}
}

// Owner-only imports need every node to know who holds each block: a
// block of another node that gets an owner or lends an address must wake
// this node, or it keeps using (or refusing) routes on stale holdings —
// seen in a two-rack lab, where nodes kept the other rack's blocks via
// their ToR until an agent restart. Allocations on another node's own
// block still leave this node idle.
func TestBlockUpdatesThatChangeHoldingsWakeEveryNode(t *testing.T) {
	blk := func(owner string, allocs ...v1.BlockAllocation) *v1.IPAMBlock {
		return &v1.IPAMBlock{Spec: v1.IPAMBlockSpec{CIDR: "10.244.1.0/26", Affinity: ipam.AffinityValue(owner), Allocations: allocs}}
	}
	own := v1.BlockAllocation{Ordinal: 1, Handle: "h1", Node: "node3"}
	lent := v1.BlockAllocation{Ordinal: 2, Handle: "h2", Node: "node4"}
	for _, tc := range []struct {
		name   string
		o, n   *v1.IPAMBlock
		wantUs bool
	}{
		{"another node allocates on its own block", blk("node3"), blk("node3", own), false},
		{"a block gets its owner", blk(""), blk("node3"), true},
		{"a block changes owner", blk("node3"), blk("node4"), true},
		{"another node borrows an address", blk("node3", own), blk("node3", own, lent), true},
		{"this node allocates", blk("node3"), blk("node3", v1.BlockAllocation{Ordinal: 3, Node: "node1"}), true},
	} {
		if got := blockUpdateConcerns(tc.o, tc.n, "node1"); got != tc.wantUs {
			t.Errorf("%s: wakes node1 = %v, want %v", tc.name, got, tc.wantUs)
		}
	}
}
