package agent

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	"github.com/cairn-net/cairn/felix"
	"github.com/cairn-net/cairn/felix/kernel/fake"
	nftfake "github.com/cairn-net/cairn/felix/nftchain/fake"
)

// testCtx is a context for one test step, with a deadline generous enough
// for a loaded machine.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// runFelix runs a real felix on the fake kernel k until stop is called or
// the test ends.
func runFelix(t *testing.T, k *fake.Kernel) (fx *felix.Felix, stop func()) {
	t.Helper()
	fx, err := felix.New(felix.Options{NodeName: "node1", Kernel: k, Nftables: &nftfake.Conn{},
		Logger:         slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		ResyncInterval: time.Hour, RetryInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fx.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("felix Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return fx, stop
}

// realServer is the agent's CNI server of node1 on dp (the real felix, in
// most tests), with its records in dir.
func realServer(t *testing.T, dir string, dp endpointDataplane, alloc addressAllocator) *cniServer {
	t.Helper()
	store, err := openEndpointStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &cniServer{log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})), node: "node1",
		alloc: alloc, dataplane: dp, endpoints: store, ready: func() (bool, string) { return true, "" }}
}

// podUp does what the plugin's ADD asks of the agent: Allocate, then
// EndpointUp on hostIface. It returns the pod's address.
func podUp(t *testing.T, s *cniServer, containerID, hostIface string) netip.Prefix {
	t.Helper()
	resp, err := s.Allocate(testCtx(t), &agentv1.AllocateRequest{ContainerId: containerID, Ifname: "eth0",
		PodNamespace: "default", PodName: "web-0", IpFamilies: v4()})
	if err != nil {
		t.Fatalf("Allocate %s: %v", containerID, err)
	}
	if _, err := s.EndpointUp(testCtx(t), &agentv1.EndpointUpRequest{ContainerId: containerID, Ifname: "eth0",
		HostIface: hostIface, Addresses: resp.Addresses}); err != nil {
		t.Fatalf("EndpointUp %s: %v", containerID, err)
	}
	return netip.MustParsePrefix(resp.Addresses[0])
}

// routedTo reports whether the kernel routes p to the link index.
func routedTo(k *fake.Kernel, p netip.Prefix, index int) bool {
	r, ok := k.Route(p)
	return ok && r.LinkIndex == index
}

// TestStaleAttachmentKeepsTheLivePodRouted: a pod's old and new sandboxes
// share the host veth name (it derives from namespace/pod). Whatever
// releases the old sandbox's attachment after the new one is up (its late
// DEL, a CNI GC, either after an agent restart that restored both records)
// must leave the new sandbox's route in the kernel, with the real CNI
// server and the real felix on a fake kernel.
func TestStaleAttachmentKeepsTheLivePodRouted(t *testing.T) {
	const veth = "crn0123456789a"
	for _, tc := range []struct {
		name    string
		restart bool
		release func(*cniServer) error
	}{
		{name: "late DEL", release: func(s *cniServer) error {
			_, err := s.Release(context.Background(), &agentv1.ReleaseRequest{ContainerId: "old", Ifname: "eth0"})
			return err
		}},
		{name: "GC", release: func(s *cniServer) error {
			_, err := s.GC(context.Background(), &agentv1.GCRequest{ValidAttachments: []*agentv1.Attachment{{ContainerId: "new", Ifname: "eth0"}}})
			return err
		}},
		{name: "late DEL after an agent restart", restart: true, release: func(s *cniServer) error {
			_, err := s.Release(context.Background(), &agentv1.ReleaseRequest{ContainerId: "old", Ifname: "eth0"})
			return err
		}},
		{name: "GC after an agent restart", restart: true, release: func(s *cniServer) error {
			_, err := s.GC(context.Background(), &agentv1.GCRequest{ValidAttachments: []*agentv1.Attachment{{ContainerId: "new", Ifname: "eth0"}}})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := fake.New()
			k.AddLink(veth, true)
			fx, stopFelix := runFelix(t, k)
			dir, alloc := t.TempDir(), &fakeAlloc{handles: map[string][]netip.Prefix{}}
			s := realServer(t, dir, fx, alloc)
			oldAddr := podUp(t, s, "old", veth)
			// The old sandbox's DEL has not come; the plugin replaces the
			// stale veth for the new sandbox.
			k.DelLink(veth)
			idx := k.AddLink(veth, true)
			newAddr := podUp(t, s, "new", veth)
			if !routedTo(k, newAddr, idx) {
				t.Fatalf("new sandbox's %s not routed to %s: %v", newAddr, veth, k.Routes(4))
			}
			if tc.restart {
				// A new agent: a new felix on the same kernel, the records
				// read back from the state directory.
				stopFelix()
				fx2, _ := runFelix(t, k)
				s = realServer(t, dir, fx2, alloc)
				if err := restoreEndpoints(testCtx(t), s.endpoints, fx2, s.log); err != nil {
					t.Fatal(err)
				}
				if err := fx2.Resync(testCtx(t)); err != nil {
					t.Fatal(err)
				}
				if !routedTo(k, newAddr, idx) {
					t.Fatalf("after the restart the new sandbox's %s is not routed to %s: %v", newAddr, veth, k.Routes(4))
				}
				if _, ok := k.Route(oldAddr); ok {
					t.Errorf("after the restart the old sandbox's %s is routed again: %v", oldAddr, k.Routes(4))
				}
			}
			if err := tc.release(s); err != nil {
				t.Fatalf("releasing the old sandbox: %v", err)
			}
			if !routedTo(k, newAddr, idx) {
				t.Errorf("releasing the old sandbox unrouted the new one: %s has no route to %s; kernel %v", newAddr, veth, k.Routes(4))
			}
			if recs := s.endpoints.all(); len(recs) != 1 || recs[0].ContainerID != "new" {
				t.Errorf("records after the release: %+v, want only the new sandbox's", recs)
			}
			if len(alloc.handles) != 1 {
				t.Errorf("handles after the release: %v, want only the new sandbox's", alloc.handles)
			}
		})
	}
}

// TestCNIServerGCComparesIDsExactly: GC keeps every attachment the runtime
// lists, exactly as the runtime names it, upper case included.
func TestCNIServerGCComparesIDsExactly(t *testing.T) {
	ctx := context.Background()
	s, a, d := newTestServer(t)
	atts := []*agentv1.Attachment{{ContainerId: "ABCdef0123", Ifname: "eth0"}, {ContainerId: "c2", Ifname: "Net1"}, {ContainerId: "c3", Ifname: "eth0"}}
	for i, at := range atts {
		resp, err := s.Allocate(ctx, &agentv1.AllocateRequest{ContainerId: at.ContainerId, Ifname: at.Ifname, IpFamilies: v4()})
		if err != nil {
			t.Fatal(err)
		}
		iface := "crnpod" + string(rune('a'+i))
		if _, err := s.EndpointUp(ctx, &agentv1.EndpointUpRequest{ContainerId: at.ContainerId, Ifname: at.Ifname, HostIface: iface, Addresses: resp.Addresses}); err != nil {
			t.Fatal(err)
		}
	}
	// c3 is gone; the other two are valid.
	if _, err := s.GC(ctx, &agentv1.GCRequest{ValidAttachments: atts[:2]}); err != nil {
		t.Fatal(err)
	}
	if len(d.endpoints) != 2 || len(a.handles) != 2 || len(s.endpoints.all()) != 2 {
		t.Errorf("after GC: endpoints %v, handles %v, records %+v; want the two valid attachments kept", d.endpoints, a.handles, s.endpoints.all())
	}
	if _, ok := d.endpoints["crnpodc"]; ok {
		t.Error("GC kept the attachment the runtime no longer has")
	}
}

// TestLongContainerIDs: the CNI spec allows long container IDs; the agent
// takes up to 255 characters. ADD, an agent restart and DEL work for them
// with records in a real directory.
func TestLongContainerIDs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	alloc := &fakeAlloc{handles: map[string][]netip.Prefix{}}
	d := &fakeDataplane{endpoints: map[string][]netip.Prefix{}}
	s := realServer(t, dir, d, alloc)
	ids := []string{strings.Repeat("a", 241), strings.Repeat("b", 255), strings.Repeat("c", 200) + "." + strings.Repeat("d", 54)}
	for i, id := range ids {
		resp, err := s.Allocate(ctx, &agentv1.AllocateRequest{ContainerId: id, Ifname: "eth0", IpFamilies: v4()})
		if err != nil {
			t.Fatalf("Allocate for a %d-character container ID: %v", len(id), err)
		}
		if _, err := s.EndpointUp(ctx, &agentv1.EndpointUpRequest{ContainerId: id, Ifname: "eth0", HostIface: "crnlong" + string(rune('a'+i)), Addresses: resp.Addresses}); err != nil {
			t.Fatalf("EndpointUp for a %d-character container ID: %v", len(id), err)
		}
	}
	again := realServer(t, dir, d, alloc)
	if got := again.endpoints.all(); len(got) != len(ids) {
		t.Fatalf("after a restart %d records, want %d: %+v", len(got), len(ids), got)
	}
	for _, id := range ids {
		if _, err := again.Release(ctx, &agentv1.ReleaseRequest{ContainerId: id, Ifname: "eth0"}); err != nil {
			t.Fatalf("Release for a %d-character container ID: %v", len(id), err)
		}
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 || len(alloc.handles) != 0 {
		t.Errorf("after every release: files %v, handles %v", files, alloc.handles)
	}
}

// TestCNIServerGCOnlyItsNetwork: two CNI networks on the node use
// cairn-cni; a GC of one never releases the other's attachments.
func TestCNIServerGCOnlyItsNetwork(t *testing.T) {
	ctx := context.Background()
	s, a, d := newTestServer(t)
	for i, net := range []string{"cairn", "cairn-storage"} {
		id := "c-" + net
		resp, err := s.Allocate(ctx, &agentv1.AllocateRequest{ContainerId: id, Ifname: "eth0", Network: net, IpFamilies: v4()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.EndpointUp(ctx, &agentv1.EndpointUpRequest{ContainerId: id, Ifname: "eth0", HostIface: "crnnet" + string(rune('a'+i)), Addresses: resp.Addresses}); err != nil {
			t.Fatal(err)
		}
	}
	// The runtime's GC of "cairn" lists none of its attachments as valid.
	if _, err := s.GC(ctx, &agentv1.GCRequest{Network: "cairn"}); err != nil {
		t.Fatal(err)
	}
	recs := s.endpoints.all()
	if len(recs) != 1 || recs[0].Network != "cairn-storage" || len(a.handles) != 1 {
		t.Errorf("after GC of network cairn: records %+v, handles %v; want only cairn-storage's attachment", recs, a.handles)
	}
	if _, ok := d.endpoints["crnnetb"]; !ok || len(d.endpoints) != 1 {
		t.Errorf("after GC of network cairn: endpoints %v, want only cairn-storage's crnnetb", d.endpoints)
	}
}
