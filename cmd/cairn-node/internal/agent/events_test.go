package agent

import (
	"log/slog"
	"testing"

	"k8s.io/client-go/tools/cache"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
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

// TestBlockEventsEnqueueOnlyConcernedNodes: a block event wakes the
// controller only when the block concerns its node, before or after the
// change, also for a delete seen late (a tombstone).
func TestBlockEventsEnqueueOnlyConcernedNodes(t *testing.T) {
	mine, theirs := block("10.244.0.0/26", "node1", nil), block("10.244.1.0/26", "node2", map[int32]string{1: "node2"})
	borrowedNow := block("10.244.1.0/26", "node2", map[int32]string{1: "node2", 2: "node1"})
	for _, tc := range []struct {
		name  string
		event func(h cache.ResourceEventHandler)
		want  bool
	}{
		{"add of another node's block", func(h cache.ResourceEventHandler) { h.OnAdd(theirs, false) }, false},
		{"add of this node's block", func(h cache.ResourceEventHandler) { h.OnAdd(mine, false) }, true},
		{"update of another node's block", func(h cache.ResourceEventHandler) { h.OnUpdate(theirs, theirs) }, false},
		{"this node borrows", func(h cache.ResourceEventHandler) { h.OnUpdate(theirs, borrowedNow) }, true},
		{"this node releases what it borrowed", func(h cache.ResourceEventHandler) { h.OnUpdate(borrowedNow, theirs) }, true},
		{"delete of another node's block", func(h cache.ResourceEventHandler) { h.OnDelete(theirs) }, false},
		{"late delete of this node's block", func(h cache.ResourceEventHandler) {
			h.OnDelete(cache.DeletedFinalStateUnknown{Key: mine.Name, Obj: mine})
		}, true},
	} {
		c := &controller{log: slog.New(slog.DiscardHandler), nodeName: "node1", queue: newQueue()}
		tc.event(c.handler(c.concernsBlock))
		if got := c.queue.Len() > 0; got != tc.want {
			t.Errorf("%s: enqueued = %v, want %v", tc.name, got, tc.want)
		}
		c.queue.ShutDown()
	}
}
