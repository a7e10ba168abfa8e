package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/audit"
	"github.com/cairn-net/cairn/ipam/memstore"
)

var backoff = ipam.Backoff{Base: 10 * time.Microsecond, Cap: 100 * time.Microsecond}

func create[T any](t *testing.T, o ipam.Objects[T], objs ...T) {
	t.Helper()
	for _, obj := range objs {
		if _, err := o.Create(context.Background(), obj); err != nil {
			t.Fatal(err)
		}
	}
}

func block(cidr, node string, allocs ...v1.BlockAllocation) *v1.IPAMBlock {
	p := netip.MustParsePrefix(cidr)
	aff := ""
	if node != "" {
		aff = ipam.AffinityValue(node)
	}
	return &v1.IPAMBlock{ObjectMeta: metav1.ObjectMeta{Name: ipam.BlockName(p)}, Spec: v1.IPAMBlockSpec{CIDR: cidr, Affinity: aff, Sequence: 10, Allocations: allocs}}
}

func affinity(node, cidr, state string) *v1.BlockAffinity {
	return &v1.BlockAffinity{ObjectMeta: metav1.ObjectMeta{Name: ipam.AffinityName(node, netip.MustParsePrefix(cidr))}, Spec: v1.BlockAffinitySpec{Node: node, CIDR: cidr, State: state}}
}

func handle(id string, blocks ...string) *v1.IPAMHandle {
	m := map[string]int32{}
	for _, b := range blocks {
		m[b]++
	}
	return &v1.IPAMHandle{ObjectMeta: metav1.ObjectMeta{Name: ipam.HandleName(id)}, Spec: v1.IPAMHandleSpec{HandleID: id, Blocks: m}}
}

// broken builds a store with one of each problem, and healthy state
// around them.
func broken(t *testing.T) *memstore.Store {
	s := memstore.New()
	create(t, s.Pools(), &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: v1.IPPoolSpec{CIDR: "10.0.0.0/24", BlockSize: 28}})
	create(t, s.Blocks(),
		block("10.0.0.0/28", "n1",
			v1.BlockAllocation{Ordinal: 0, Handle: "ok", Sequence: 1},
			v1.BlockAllocation{Ordinal: 1, Handle: "orphan", Sequence: 2},
			v1.BlockAllocation{Ordinal: 2, Handle: "unnamed", Sequence: 3}),
		block("10.0.0.16/28", ""), // unclaimed, empty
		block("10.0.0.32/28", "n2", v1.BlockAllocation{Ordinal: 0, Handle: "ok2", Sequence: 1}), // unclaimed, in use
		block("10.0.0.0/27", "n3", v1.BlockAllocation{Ordinal: 0, Handle: "dup", Sequence: 1}),  // overlaps the first block
	)
	create(t, s.Affinities(),
		affinity("n1", "10.0.0.0/28", v1.AffinityConfirmed),
		affinity("n3", "10.0.0.0/27", v1.AffinityConfirmed),
		affinity("n9", "10.0.0.64/28", v1.AffinityPending), // no block
	)
	create(t, s.Handles(),
		handle("ok", "10.0.0.0/28"), handle("unnamed", "10.0.0.64/28"), handle("ok2", "10.0.0.32/28"),
		handle("dup", "10.0.0.0/27"), handle("empty", "10.0.0.0/28"),
	)
	return s
}

func TestCheckFindsEachProblem(t *testing.T) {
	r, err := audit.Check(context.Background(), broken(t))
	if err != nil {
		t.Fatal(err)
	}
	var orphans []string
	for _, o := range r.AllocationsWithoutHandle {
		orphans = append(orphans, o.Handle+":"+o.Reason)
	}
	if got := strings.Join(orphans, ","); got != "orphan:no handle,unnamed:handle does not name the block" {
		t.Errorf("allocations without handle: %s", got)
	}
	if len(r.HandlesWithoutAllocations) != 1 || r.HandlesWithoutAllocations[0].HandleID != "empty" {
		t.Errorf("handles without allocations: %+v", r.HandlesWithoutAllocations)
	}
	if len(r.DuplicateAddresses) != 1 || r.DuplicateAddresses[0].Addr != netip.MustParseAddr("10.0.0.0") {
		t.Errorf("duplicates: %+v", r.DuplicateAddresses)
	}
	var unclaimed []string
	for _, b := range r.BlocksWithoutAffinity {
		unclaimed = append(unclaimed, b.CIDR)
	}
	if got := strings.Join(unclaimed, ","); got != "10.0.0.16/28,10.0.0.32/28" {
		t.Errorf("blocks without affinity: %s", got)
	}
	if len(r.AffinitiesWithoutBlock) != 1 || r.AffinitiesWithoutBlock[0].Node != "n9" {
		t.Errorf("affinities without block: %+v", r.AffinitiesWithoutBlock)
	}
	if r.Problems() != 7 {
		t.Errorf("%d problems, want 7: %s", r.Problems(), r.Summary())
	}
}

func TestRepairFromAReportThatWentThroughJSON(t *testing.T) {
	ctx := context.Background()
	s := broken(t)
	r, _ := audit.Check(ctx, s)
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back audit.Report
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	out, err := audit.Repair(ctx, s, backoff, &back)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Released) != 1 || out.Released[0] != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("released %v, want the orphan 10.0.0.1", out.Released)
	}
	after, _ := audit.Check(ctx, s)
	// What is left needs a person: the duplicate, the block in use
	// without a claim.
	if len(after.DuplicateAddresses) != 1 || len(after.BlocksWithoutAffinity) != 1 || after.Problems() != 2 {
		t.Errorf("after repair: %s", after.Summary())
	}
	if len(out.Skipped) != 2 {
		t.Errorf("skipped %v, want the two findings left alone", out.Skipped)
	}
}

func TestRepairIsConditionalOnWhatWasChecked(t *testing.T) {
	ctx := context.Background()
	s := broken(t)
	r, _ := audit.Check(ctx, s)
	// After the check, the orphan's address is released and handed out
	// again, the empty handle gets an address, the empty block is used.
	if _, err := ipam.MutateBlock(ctx, s, backoff, "10-0-0-0-28", func(b *v1.IPAMBlock) (bool, error) {
		for i := range b.Spec.Allocations {
			if b.Spec.Allocations[i].Handle == "orphan" {
				b.Spec.Allocations[i] = v1.BlockAllocation{Ordinal: 1, Handle: "empty", Sequence: 99}
			}
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := ipam.MutateBlock(ctx, s, backoff, "10-0-0-16-28", func(b *v1.IPAMBlock) (bool, error) {
		b.Spec.Affinity = "node:n5"
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	out, err := audit.Repair(ctx, s, backoff, r)
	if err == nil {
		t.Fatal("repair of changed state reported no error")
	}
	if len(out.Released) != 0 {
		t.Errorf("released %v: the address was reassigned after the check", out.Released)
	}
	if _, err := s.Handles().Get(ctx, ipam.HandleName("empty")); err != nil {
		t.Errorf("handle that gained an address was deleted: %v", err)
	}
	if _, err := s.Blocks().Get(ctx, "10-0-0-16-28"); err != nil {
		t.Errorf("block that changed after the check was deleted: %v", err)
	}
}

func TestShow(t *testing.T) {
	snap, err := audit.Read(context.Background(), broken(t))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := snap.Show(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"p ", "10.0.0.0/24", "/28", "10.0.0.0/28", "n1", "3/16"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("show output lacks %q:\n%s", want, b.String())
		}
	}
}
