package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	"github.com/cairn-net/cairn/bgp/speaker"
	"github.com/cairn-net/cairn/felix"
	"github.com/cairn-net/cairn/ipam/allocator"
)

type fakeAlloc struct {
	mu      sync.Mutex
	next    int
	handles map[string][]netip.Prefix
	fail    error
	first   allocator.Request // the first request served
}

func (a *fakeAlloc) AutoAssign(_ context.Context, req allocator.Request) ([]netip.Prefix, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail != nil {
		return nil, a.fail
	}
	if have, ok := a.handles[req.HandleID]; ok {
		return have, nil
	}
	if a.next == 0 {
		a.first = req
	}
	a.next++
	p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, 0, byte(a.next)}), 32)
	a.handles[req.HandleID] = []netip.Prefix{p}
	return []netip.Prefix{p}, nil
}

func (a *fakeAlloc) ReleaseByHandle(_ context.Context, h string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.handles, h)
	return nil
}

type fakeDataplane struct {
	mu        sync.Mutex
	endpoints map[string][]netip.Prefix
	failSet   error
}

func (d *fakeDataplane) SetEndpoint(_ context.Context, ep felix.Endpoint) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failSet != nil {
		return d.failSet
	}
	d.endpoints[ep.HostIface] = ep.Addrs
	return nil
}

// RemoveEndpoint ignores the owner: tests of ownership use the real felix.
func (d *fakeDataplane) RemoveEndpoint(_ context.Context, iface, _ string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.endpoints, iface)
	return nil
}
func (d *fakeDataplane) EndpointsInSync()                       {}
func (d *fakeDataplane) RefusedRoutes() map[netip.Prefix]string { return nil }

func newTestServer(t *testing.T) (*cniServer, *fakeAlloc, *fakeDataplane) {
	store, err := openEndpointStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := &fakeAlloc{handles: map[string][]netip.Prefix{}}
	d := &fakeDataplane{endpoints: map[string][]netip.Prefix{}}
	s := &cniServer{log: slog.New(slog.DiscardHandler), node: "node1", alloc: a, dataplane: d, endpoints: store,
		ready: func() (bool, string) { return true, "" }}
	return s, a, d
}

func v4() []agentv1.IPFamily { return []agentv1.IPFamily{agentv1.IPFamily_IP_FAMILY_V4} }

func TestCNIServerLifecycle(t *testing.T) {
	ctx := context.Background()
	s, a, d := newTestServer(t)
	resp, err := s.Allocate(ctx, &agentv1.AllocateRequest{ContainerId: "c1", Ifname: "eth0", PodNamespace: "default", PodName: "p", PodUid: "u-1", IpFamilies: v4()})
	if err != nil {
		t.Fatal(err)
	}
	if r := a.first; r.Namespace != "default" || r.Pod != "p" || r.PodUID != "u-1" {
		t.Errorf("allocator asked for %+v, want the pod default/p with UID u-1", r)
	}
	again, err := s.Allocate(ctx, &agentv1.AllocateRequest{ContainerId: "c1", Ifname: "eth0", IpFamilies: v4()})
	if err != nil || !reflect.DeepEqual(again.Addresses, resp.Addresses) {
		t.Fatalf("a retried Allocate must return the same addresses: %v %v vs %v", err, again.GetAddresses(), resp.Addresses)
	}
	if _, err := s.EndpointUp(ctx, &agentv1.EndpointUpRequest{ContainerId: "c1", Ifname: "eth0", HostIface: "crnabc", Addresses: []string{"10.244.0.99/32"}}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("EndpointUp with an address not allocated to the attachment: %v, want FailedPrecondition", err)
	}
	if _, err := s.EndpointUp(ctx, &agentv1.EndpointUpRequest{ContainerId: "c1", Ifname: "eth0", HostIface: "eth1", Addresses: resp.Addresses}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("EndpointUp on a non-Cairn interface: %v, want InvalidArgument", err)
	}
	if _, err := s.EndpointUp(ctx, &agentv1.EndpointUpRequest{ContainerId: "c1", Ifname: "eth0", HostIface: "crnabc", Addresses: resp.Addresses}); err != nil {
		t.Fatal(err)
	}
	if len(d.endpoints["crnabc"]) != 1 {
		t.Errorf("dataplane endpoints = %v", d.endpoints)
	}
	chk, err := s.Check(ctx, &agentv1.CheckRequest{ContainerId: "c1", Ifname: "eth0", HostIface: "crnabc", Addresses: resp.Addresses})
	if err != nil || len(chk.Problems) != 0 {
		t.Errorf("Check of a healthy attachment: %v %v", err, chk.GetProblems())
	}
	chk, _ = s.Check(ctx, &agentv1.CheckRequest{ContainerId: "c1", Ifname: "eth0", HostIface: "crnother", Addresses: resp.Addresses})
	if len(chk.GetProblems()) == 0 {
		t.Error("Check must report a different host interface")
	}
	for i := 0; i < 2; i++ { // Release is idempotent
		if _, err := s.Release(ctx, &agentv1.ReleaseRequest{ContainerId: "c1", Ifname: "eth0"}); err != nil {
			t.Fatalf("release %d: %v", i, err)
		}
	}
	if len(d.endpoints) != 0 || len(a.handles) != 0 || len(s.endpoints.all()) != 0 {
		t.Errorf("after release: endpoints %v handles %v records %v", d.endpoints, a.handles, s.endpoints.all())
	}
}

func TestCNIServerErrors(t *testing.T) {
	ctx := context.Background()
	s, a, _ := newTestServer(t)
	if _, err := s.Allocate(ctx, &agentv1.AllocateRequest{ContainerId: "../x", Ifname: "eth0", IpFamilies: v4()}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad container ID: %v", err)
	}
	if _, err := s.Allocate(ctx, &agentv1.AllocateRequest{ContainerId: "c", Ifname: "eth0"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("no family: %v", err)
	}
	a.fail = fmt.Errorf("assign: %w", allocator.ErrNoAddresses)
	if _, err := s.Allocate(ctx, &agentv1.AllocateRequest{ContainerId: "c", Ifname: "eth0", IpFamilies: v4()}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("exhausted pool: %v, want ResourceExhausted", err)
	}
	a.fail = errors.New("boom")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Allocate(cctx, &agentv1.AllocateRequest{ContainerId: "c", Ifname: "eth0", IpFamilies: v4()}); status.Code(err) != codes.Unavailable {
		t.Errorf("cancelled request: %v, want Unavailable (try again)", err)
	}
	s.ready = func() (bool, string) { return false, "caches syncing" }
	st, _ := s.Status(ctx, &agentv1.StatusRequest{})
	if st.Ready || st.Reason != "caches syncing" {
		t.Errorf("status = %+v", st)
	}
}

func TestCNIServerGC(t *testing.T) {
	ctx := context.Background()
	s, a, d := newTestServer(t)
	for _, id := range []string{"keep", "drop"} {
		resp, err := s.Allocate(ctx, &agentv1.AllocateRequest{ContainerId: id, Ifname: "eth0", IpFamilies: v4()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.EndpointUp(ctx, &agentv1.EndpointUpRequest{ContainerId: id, Ifname: "eth0", HostIface: "crn" + id, Addresses: resp.Addresses}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.GC(ctx, &agentv1.GCRequest{ValidAttachments: []*agentv1.Attachment{{ContainerId: "keep", Ifname: "eth0"}}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.endpoints["crnkeep"]; !ok || len(d.endpoints) != 1 || len(a.handles) != 1 {
		t.Errorf("after GC: endpoints %v handles %v", d.endpoints, a.handles)
	}
}

// TestLearnedRoutes: the speaker's paths come normalised (sorted by
// prefix, then next hop, one per pair); the agent only groups them.
func TestLearnedRoutes(t *testing.T) {
	p1, p2 := netip.MustParsePrefix("10.244.2.0/26"), netip.MustParsePrefix("10.244.10.0/26")
	h1, h2 := netip.MustParseAddr("172.30.1.12"), netip.MustParseAddr("172.30.1.13")
	for _, tc := range []struct {
		name  string
		paths []speaker.Path
		want  []felix.LearnedRoute
	}{
		{name: "none", paths: nil, want: nil},
		{name: "ECMP: next hops of one prefix make one route",
			paths: []speaker.Path{{Prefix: p1, NextHop: h1}, {Prefix: p1, NextHop: h2}},
			want:  []felix.LearnedRoute{{Prefix: p1, NextHops: []netip.Addr{h1, h2}}}},
		{name: "prefixes keep the speaker's order",
			paths: []speaker.Path{{Prefix: p1, NextHop: h2}, {Prefix: p2, NextHop: h1}, {Prefix: p2, NextHop: h2}},
			want:  []felix.LearnedRoute{{Prefix: p1, NextHops: []netip.Addr{h2}}, {Prefix: p2, NextHops: []netip.Addr{h1, h2}}}},
	} {
		if got := learnedRoutes(tc.paths); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: learnedRoutes = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// gatedAlloc commits an assignment only when let through, then answers
// as the real allocator does when its caller gave up during a write: the
// write happened, the error says the context ended.
type gatedAlloc struct {
	*fakeAlloc
	entered, gate chan struct{}
}

func (g gatedAlloc) AutoAssign(ctx context.Context, req allocator.Request) ([]netip.Prefix, error) {
	close(g.entered)
	<-g.gate
	out, err := g.fakeAlloc.AutoAssign(ctx, req)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return out, err
}

// A plugin killed during Allocate, then CNI GC with no valid attachment
// (the runtime removed the dead sandbox): nothing may stay allocated,
// even when GC arrives while the allocation is still being written.
func TestGCAfterPluginKilledMidAllocate(t *testing.T) {
	s, a, _ := newTestServer(t)
	g := gatedAlloc{fakeAlloc: a, entered: make(chan struct{}), gate: make(chan struct{})}
	s.alloc = g
	pluginCtx, kill := context.WithCancel(context.Background())
	allocated := make(chan error, 1)
	go func() {
		_, err := s.Allocate(pluginCtx, &agentv1.AllocateRequest{ContainerId: "c1", Ifname: "eth0", PodNamespace: "default", PodName: "p", IpFamilies: v4()})
		allocated <- err
	}()
	<-g.entered
	kill()
	collected := make(chan error, 1)
	go func() {
		_, err := s.GC(context.Background(), &agentv1.GCRequest{})
		collected <- err
	}()
	close(g.gate)
	if err := <-allocated; status.Code(err) != codes.Canceled {
		t.Errorf("Allocate for a plugin that stopped waiting: %v, want Canceled", err)
	}
	if err := <-collected; err != nil {
		t.Fatalf("GC: %v", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.handles) != 0 || len(s.endpoints.all()) != 0 {
		t.Errorf("after GC: handles %v, records %v; want none", a.handles, s.endpoints.all())
	}
}
