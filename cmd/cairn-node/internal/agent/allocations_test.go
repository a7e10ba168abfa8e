package agent

import (
	"context"
	"errors"
	"testing"
	"time"

	"net/netip"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	"github.com/cairn-net/cairn/ipam/allocator"
)

func TestAllocationsWaitOnlyForEarlier(t *testing.T) {
	var a allocations
	if err := a.waitBegunBefore(context.Background()); err != nil {
		t.Fatalf("nothing in progress: %v", err)
	}
	endFirst := a.begin()
	waited := make(chan error, 1)
	go func() { waited <- a.waitBegunBefore(context.Background()) }()
	waitFor(t, context.Background(), "GC to wait", func() bool { return a.gcsWaiting() == 1 })
	endLater := a.begin() // begins while GC waits: not GC's to wait for
	select {
	case err := <-waited:
		t.Fatalf("GC stopped waiting (%v) with an earlier allocation in progress", err)
	default:
	}
	endFirst()
	if err := <-waited; err != nil {
		t.Fatalf("after the earlier allocation ended: %v", err)
	}
	endLater()
	endLater() // a second end is harmless

	end := a.begin()
	defer end()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.waitBegunBefore(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v, want context.Canceled", err)
	}
}

// oneGated holds back only the allocation of container gated.
type oneGated struct {
	*fakeAlloc
	gated         string
	entered, gate chan struct{}
}

func (g oneGated) AutoAssign(ctx context.Context, req allocator.Request) ([]netip.Prefix, error) {
	if req.ContainerID == g.gated {
		close(g.entered)
		<-g.gate
	}
	return g.fakeAlloc.AutoAssign(ctx, req)
}

// A slow ADD, then GC waiting for it, then a new ADD: the new one is
// served at once; GC ends after the slow one and releases nothing valid.
func TestAllocateNotHeldBackByWaitingGC(t *testing.T) {
	s, a, _ := newTestServer(t)
	g := oneGated{fakeAlloc: a, gated: "slow", entered: make(chan struct{}), gate: make(chan struct{})}
	s.alloc = g
	req := func(id string) *agentv1.AllocateRequest {
		return &agentv1.AllocateRequest{ContainerId: id, Ifname: "eth0", PodNamespace: "default", PodName: id, IpFamilies: v4()}
	}
	slow := make(chan error, 1)
	go func() { _, err := s.Allocate(context.Background(), req("slow")); slow <- err }()
	<-g.entered
	collected := make(chan error, 1)
	go func() {
		_, err := s.GC(context.Background(), &agentv1.GCRequest{ValidAttachments: []*agentv1.Attachment{
			{ContainerId: "slow", Ifname: "eth0"}, {ContainerId: "fast", Ifname: "eth0"}}})
		collected <- err
	}()
	waitFor(t, context.Background(), "GC to wait for the slow allocation", func() bool { return s.inflight.gcsWaiting() == 1 })
	fast := make(chan error, 1)
	go func() { _, err := s.Allocate(context.Background(), req("fast")); fast <- err }()
	select {
	case err := <-fast:
		if err != nil {
			t.Fatalf("fast ADD: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("an ADD that began while GC waited was held back behind GC")
	}
	close(g.gate)
	if err := <-slow; err != nil {
		t.Fatalf("slow ADD: %v", err)
	}
	if err := <-collected; err != nil {
		t.Fatalf("GC: %v", err)
	}
	if n := len(s.endpoints.all()); n != 2 {
		t.Errorf("%d records after GC, want both attachments'", n)
	}
}
