package agent

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corelisters "k8s.io/client-go/listers/core/v1"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/allocator"
	"github.com/cairn-net/cairn/ipam/audit"
	"github.com/cairn-net/cairn/ipam/gc"
	"github.com/cairn-net/cairn/ipam/ipamtest"
	"github.com/cairn-net/cairn/ipam/memstore"
)

// ipamServer is the CNI server of node1 on the real allocator over an
// in-memory store with one pool.
func ipamServer(t *testing.T, dir string, s *memstore.Store) *cniServer {
	t.Helper()
	if _, err := s.Pools().Get(context.Background(), "p"); err != nil {
		if _, err := s.Pools().Create(context.Background(), &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: v1.IPPoolSpec{CIDR: "10.244.0.0/24", BlockSize: 28}}); err != nil {
			t.Fatal(err)
		}
	}
	a, err := allocator.New(s, allocator.Options{Node: "node1", PoolCacheTTL: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return realServer(t, dir, &fakeDataplane{endpoints: map[string][]netip.Prefix{}}, a)
}

func holders(t *testing.T, s ipam.Store) map[netip.Addr]string {
	t.Helper()
	snap, err := audit.Read(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	out := map[netip.Addr]string{}
	for _, h := range snap.Addresses() {
		out[h.Addr] = h.Handle
	}
	return out
}

// TestPodUIDReachesIPAMGC follows the pod UID from the plugin's Allocate
// through the agent and the allocator to the handle, and checks that the
// IPAM GC (with the agent's cache-backed owners) then tells a recreated pod
// of the same name on the same node from the owner.
func TestPodUIDReachesIPAMGC(t *testing.T) {
	ctx := context.Background()
	store := memstore.New()
	s := ipamServer(t, t.TempDir(), store)
	resp, err := s.Allocate(ctx, &agentv1.AllocateRequest{ContainerId: "Sandbox.1", Ifname: "eth0", PodNamespace: "default", PodName: "web-0", PodUid: "uid-1", IpFamilies: v4()})
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParsePrefix(resp.Addresses[0]).Addr()
	id := ipam.HandleID("node1", "Sandbox.1", "eth0")
	h, err := store.Handles().Get(ctx, ipam.HandleName(id))
	if err != nil {
		t.Fatalf("handle %s: %v", id, err)
	}
	if sp := h.Spec; sp.HandleID != id || sp.PodUID != "uid-1" || sp.Node != "node1" || sp.ContainerID != "Sandbox.1" || sp.Interface != "eth0" || sp.Pod != "web-0" {
		t.Fatalf("handle spec %+v, want ID %s for pod default/web-0 uid-1, container Sandbox.1 eth0 on node1", sp, id)
	}
	pods, nodes := indexer(), indexer(node("node1", "172.30.1.11"))
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-0", UID: types.UID("uid-1")},
		Spec: corev1.PodSpec{NodeName: "node1"}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	if err := pods.Add(pod); err != nil {
		t.Fatal(err)
	}
	clock := ipamtest.NewClock()
	collector, err := gc.New(gc.Options{Store: store, Grace: time.Minute, Clock: clock,
		Owners: gc.ListerOwners{Pods: corelisters.NewPodLister(pods), Nodes: corelisters.NewNodeLister(nodes)}})
	if err != nil {
		t.Fatal(err)
	}
	pass := func() gc.Result {
		t.Helper()
		res, err := collector.RunOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		clock.Step(2 * time.Minute)
		return res
	}
	for i := 0; i < 2; i++ {
		if res := pass(); len(res.Released) != 0 {
			t.Fatalf("pass %d released %v while the owning pod runs", i, res.Released)
		}
	}
	// The sandbox is lost without a DEL; the pod is recreated: same name,
	// same node, another UID.
	recreated := pod.DeepCopy()
	recreated.UID = "uid-2"
	if err := pods.Update(recreated); err != nil {
		t.Fatal(err)
	}
	var released []netip.Addr
	for i := 0; i < 3 && len(released) == 0; i++ {
		released = pass().Released
	}
	if !slices.Equal(released, []netip.Addr{addr}) {
		t.Errorf("GC released %v, want the lost sandbox's %s", released, addr)
	}
}

// TestLegacyHandlesAreReleased: addresses an older agent allocated under
// ipam.LegacyHandleID are found again by a retried ADD (through its
// record) and released by DEL, with or without the record.
func TestLegacyHandlesAreReleased(t *testing.T) {
	ctx := context.Background()
	store := memstore.New()
	dir := t.TempDir()
	s := ipamServer(t, dir, store)
	legacy := func(id string) netip.Prefix {
		t.Helper()
		a, err := allocator.New(store, allocator.Options{Node: "node1", PoolCacheTTL: time.Hour, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		got, err := a.AutoAssign(ctx, allocator.Request{HandleID: ipam.LegacyHandleID(id, "eth0"), ContainerID: id, Interface: "eth0", Namespace: "default", Pod: "web-" + id, IPv4: 1})
		if err != nil {
			t.Fatal(err)
		}
		return got[0]
	}
	// "WithRecord" still has the record the older agent wrote; "NoRecord"
	// lost it.
	withRecord, noRecord := legacy("WithRecord"), legacy("NoRecord")
	if err := s.endpoints.put(endpointRecord{ContainerID: "WithRecord", IfName: "eth0", Addresses: []netip.Prefix{withRecord}}); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Allocate(ctx, &agentv1.AllocateRequest{ContainerId: "WithRecord", Ifname: "eth0", IpFamilies: v4()})
	if err != nil || !slices.Equal(resp.GetAddresses(), []string{withRecord.String()}) {
		t.Fatalf("retried ADD of an older agent's attachment got %v (%v), want its address %s", resp.GetAddresses(), err, withRecord)
	}
	for _, id := range []string{"WithRecord", "NoRecord"} {
		if _, err := s.Release(ctx, &agentv1.ReleaseRequest{ContainerId: id, Ifname: "eth0"}); err != nil {
			t.Fatalf("DEL %s: %v", id, err)
		}
	}
	if left := holders(t, store); len(left) != 0 {
		t.Errorf("after DEL of both, addresses still held: %v (were %s, %s)", left, withRecord, noRecord)
	}
	if hs, _ := store.Handles().List(ctx); len(hs) != 0 {
		t.Errorf("after DEL of both, handles remain: %d", len(hs))
	}
}
