package allocator_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/allocator"
	"github.com/cairn-net/cairn/ipam/memstore"
)

// TestRetryReusesOnlyItsOwnHandle: a retried AutoAssign returns what its
// handle holds, but a handle of the same ID written for another node or
// another container is not the caller's: reusing it would give one
// address to two pods. The caller gets an error, and the owner keeps its
// address.
func TestRetryReusesOnlyItsOwnHandle(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	addPool(t, s, "default", "10.244.0.0/24", 28)
	n1, n2 := newAlloc(t, s, "n1"), newAlloc(t, s, "n2")
	own := allocator.Request{HandleID: "h", ContainerID: "c1", Interface: "eth0", Namespace: "default", Pod: "web-0", IPv4: 1}
	first := assign(t, n1, own)
	if again := assign(t, n1, own); !slices.Equal(again, first) {
		t.Fatalf("retry on the owning node got %v, want %v", again, first)
	}
	for _, tc := range []struct {
		name  string
		alloc *allocator.Allocator
		req   allocator.Request
	}{
		{"same ID from another node", n2, own},
		{"same ID for another container", n1, func() allocator.Request { r := own; r.ContainerID = "c2"; return r }()},
		{"same ID for another interface", n1, func() allocator.Request { r := own; r.Interface = "net1"; return r }()},
	} {
		got, err := tc.alloc.AutoAssign(ctx, tc.req)
		if err == nil {
			t.Errorf("%s: reused the handle and got %v (the owner holds %v), want an error", tc.name, got, first)
			continue
		}
		if !errors.Is(err, ipam.ErrRejected) {
			t.Errorf("%s: error %v, want one wrapping ipam.ErrRejected", tc.name, err)
		}
	}
	if held := allocated(t, s); len(held) != 1 || held[first[0].Addr()] != "h" {
		t.Errorf("after the refused reuses the store holds %v, want only %v for h", held, first)
	}
	mustCheck(t, s)
}
