package allocator_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/allocator"
	"github.com/cairn-net/cairn/ipam/audit"
	"github.com/cairn-net/cairn/ipam/ipamtest"
	"github.com/cairn-net/cairn/ipam/memstore"
)

func newClock() *ipamtest.Clock { return ipamtest.NewClock() }

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("IPAM_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func addPool(t testing.TB, s *memstore.Store, name, cidr string, blockSize int32, mod ...func(*v1.IPPoolSpec)) {
	t.Helper()
	p := &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.IPPoolSpec{CIDR: cidr, BlockSize: blockSize}}
	for _, m := range mod {
		m(&p.Spec)
	}
	if _, err := s.Pools().Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

// fastBackoff keeps retries quick in tests.
var fastBackoff = ipam.Backoff{Attempts: 12, Base: 50 * time.Microsecond, Cap: time.Millisecond}

func newAlloc(t testing.TB, s ipam.Store, node string, mod ...func(*allocator.Options)) *allocator.Allocator {
	t.Helper()
	opts := allocator.Options{Node: node, Logger: testLogger(t), Backoff: fastBackoff, PoolCacheTTL: time.Hour}
	for _, m := range mod {
		m(&opts)
	}
	a, err := allocator.New(s, opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func req(id string, v4, v6 int) allocator.Request {
	return allocator.Request{HandleID: id, ContainerID: id, Interface: "eth0", Namespace: "default", Pod: "pod-" + id, IPv4: v4, IPv6: v6}
}

// mustCheck fails the test when the store is inconsistent.
func mustCheck(t testing.TB, s ipam.Store) *audit.Report {
	t.Helper()
	r, err := audit.Check(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if r.Problems() != 0 {
		t.Errorf("check: %s\n%+v", r.Summary(), r)
	}
	return r
}

// allocated returns address -> handle for every allocation in the store.
func allocated(t testing.TB, s ipam.Store) map[netip.Addr]string {
	t.Helper()
	snap, err := audit.Read(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	out := map[netip.Addr]string{}
	for _, h := range snap.Addresses() {
		if prev, dup := out[h.Addr]; dup {
			t.Errorf("address %s held by %s and %s", h.Addr, prev, h.Handle)
		}
		out[h.Addr] = h.Handle
	}
	return out
}

func assign(t testing.TB, a *allocator.Allocator, r allocator.Request) []netip.Prefix {
	t.Helper()
	got, err := a.AutoAssign(context.Background(), r)
	if err != nil {
		t.Fatalf("AutoAssign(%s): %v", r.HandleID, err)
	}
	return got
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func hid(i int) string { return fmt.Sprintf("h%03d", i) }
