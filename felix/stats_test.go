package felix

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/cairn-net/cairn/felix/kernel"
	"github.com/cairn-net/cairn/felix/kernel/fake"
	nftfake "github.com/cairn-net/cairn/felix/nftchain/fake"
	"golang.org/x/sys/unix"
)

// TestStatsCountWhatTheKernelHolds: Stats' route counts are felix's own
// routes in the kernel by class (a foreign route is not one), and OnPass
// sees every pass that Stats counts, failed ones included.
func TestStatsCountWhatTheKernelHolds(t *testing.T) {
	k := fake.New()
	eth := k.AddLink("eth0", true)
	k.AddLink("crn1", true)
	k.PutRoute(kernel.Route{Dst: pfx("192.168.10.0/24"), Type: kernel.TypeUnicast, Protocol: kernel.ProtoKernel, Scope: kernel.ScopeLink, LinkIndex: eth})
	k.PutRoute(kernel.Route{Dst: pfx("10.99.0.0/24"), Type: kernel.TypeUnicast, Protocol: 4, Scope: kernel.ScopeLink, LinkIndex: eth}) // foreign
	var mu sync.Mutex
	var passes []Pass
	f, err := New(Options{Kernel: k, Nftables: &nftfake.Conn{}, ResyncInterval: time.Hour, RetryInterval: time.Millisecond,
		OnPass: func(p Pass) { mu.Lock(); passes = append(passes, p); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Run(runCtx) }()
	defer func() { stop(); <-done }()

	if err := f.SetEndpoint(ctx, Endpoint{HostIface: "crn1", Addrs: []netip.Prefix{pfx("10.65.0.5/32"), pfx("10.65.0.6/32")}}); err != nil {
		t.Fatal(err)
	}
	f.SetOwnedBlocks([]netip.Prefix{pfx("10.65.0.0/26")})
	f.SetLearnedRoutes([]LearnedRoute{
		{Prefix: pfx("10.65.1.0/26"), NextHops: []netip.Addr{addr("192.168.10.2")}},
		{Prefix: pfx("10.65.0.0/26"), NextHops: []netip.Addr{addr("192.168.10.2")}}, // our block: refused
	})
	if err := f.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	got := f.Stats()
	if got.EndpointRoutes != 2 || got.BlackholeRoutes != 1 || got.LearnedRoutes != 1 {
		t.Errorf("routes by class %d/%d/%d, want 2/1/1", got.EndpointRoutes, got.BlackholeRoutes, got.LearnedRoutes)
	}
	own := 0
	for _, r := range k.Routes(4) {
		if r.Protocol == DefaultRouteProtocol {
			own++
		}
	}
	if sum := got.EndpointRoutes + got.BlackholeRoutes + got.LearnedRoutes; sum != own {
		t.Errorf("classes add up to %d, the kernel holds %d routes of protocol %d", sum, own, DefaultRouteProtocol)
	}
	if got.Resyncs < 1 || got.Passes < got.Resyncs || got.Errors != 0 {
		t.Errorf("counters %+v: want at least one resync, no error", got)
	}

	// A failed write is a failed pass, followed by a resync that repairs it.
	k.FailNext(fake.RouteAdd, unix.ENOMEM)
	if err := f.SetEndpoint(ctx, Endpoint{HostIface: "crn1", Addrs: []netip.Prefix{pfx("10.65.0.5/32"), pfx("10.65.0.6/32"), pfx("10.65.0.7/32")}}); err != nil {
		t.Fatal(err)
	}
	after := f.Stats()
	if after.Errors < 1 || after.Resyncs <= got.Resyncs || after.EndpointRoutes != 3 {
		t.Errorf("after a failed write: %+v, want an error, another resync and 3 endpoint routes", after)
	}
	mu.Lock()
	defer mu.Unlock()
	var resyncs, failed uint64
	for _, p := range passes {
		if p.Resync {
			resyncs++
		}
		if p.Err != nil {
			failed++
		}
		if p.Took < 0 {
			t.Errorf("pass took %v", p.Took)
		}
	}
	if uint64(len(passes)) != after.Passes || resyncs != after.Resyncs || failed != after.Errors {
		t.Errorf("OnPass saw %d passes, %d resyncs, %d failed; Stats says %+v", len(passes), resyncs, failed, after)
	}
}
