package usage

import (
	"math"
	"net/netip"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam/pools"
)

func ippool(name, cidr string, created int64, uses ...v1.IPPoolUse) *v1.IPPool {
	return &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 4, CreationTimestamp: metav1.Unix(created, 0)},
		Spec: v1.IPPoolSpec{CIDR: cidr, AllowedUses: uses}}
}

func condOf(st v1.IPPoolStatus, typ string) string {
	c := meta.FindStatusCondition(st.Conditions, typ)
	if c == nil {
		return "<none>"
	}
	return string(c.Status) + "/" + c.Reason
}

// TestPoolStatus: counts, capacity and conditions of Workload and
// LoadBalancer pools, overlapping and full ones.
func TestPoolStatus(t *testing.T) {
	ips := []*v1.IPPool{
		ippool("p", "10.0.0.0/27", 100),
		ippool("q", "10.0.0.16/28", 200), // overlaps p, newer: yields
		ippool("ok", "10.9.0.0/24", 100),
		ippool("lb", "10.98.0.0/30", 100, v1.IPPoolUseLoadBalancer),
		ippool("v6", "fd00::/64", 100),
	}
	ips[0].Spec.BlockSize, ips[1].Spec.BlockSize = 29, 29
	parsed := map[string]pools.Pool{}
	for _, p := range pools.Analyze(ips) {
		parsed[p.Name] = p
	}
	used := map[string]Pool{"p": {Blocks: 4, Allocated: 32}, "ok": {Blocks: 1, Allocated: 3}, "lb": {Blocks: 7, Allocated: 9}}
	lb := map[string]int64{"lb": 2}
	for _, tc := range []struct {
		pool                      string
		blocks                    int32
		allocated, capacity       int64
		overlap, exhausted, ready string
	}{
		{"p", 4, 32, 32, "True/OverlappedByNewer", "True/AllAllocated", "True/InUse"},
		{"q", 0, 0, 16, "True/CIDROverlap", "False/AddressesFree", "False/Overlapping"},
		{"ok", 1, 3, 256, "False/NoOverlap", "False/AddressesFree", "True/InUse"},
		// a LoadBalancer pool counts Services' addresses, not blocks; a
		// /30 gives two (not its network and broadcast addresses)
		{"lb", 0, 2, 2, "False/NoOverlap", "True/AllAllocated", "True/InUse"},
		{"v6", 0, 0, math.MaxInt64, "False/NoOverlap", "False/AddressesFree", "True/InUse"},
	} {
		var ip *v1.IPPool
		for _, p := range ips {
			if p.Name == tc.pool {
				ip = p
			}
		}
		st := PoolStatus(ip, parsed[tc.pool], used[tc.pool], lb[tc.pool])
		if st.Blocks != tc.blocks || st.Allocated != tc.allocated || st.Capacity != tc.capacity || st.ObservedGeneration != 4 {
			t.Errorf("%s: blocks %d allocated %d capacity %d generation %d", tc.pool, st.Blocks, st.Allocated, st.Capacity, st.ObservedGeneration)
		}
		for typ, want := range map[string]string{v1.ConditionOverlapping: tc.overlap, v1.ConditionExhausted: tc.exhausted, v1.ConditionReady: tc.ready, v1.ConditionInvalid: "False/Valid"} {
			if got := condOf(st, typ); got != want {
				t.Errorf("%s: %s %s, want %s", tc.pool, typ, got, want)
			}
		}
	}
}

// TestPoolStatusUnchanged: recomputing an unchanged pool's status gives
// an equal status, transition times kept, so nothing is written.
func TestPoolStatusUnchanged(t *testing.T) {
	ip := ippool("ok", "10.9.0.0/24", 100)
	pl := pools.Parse(ip)
	first := PoolStatus(ip, pl, Pool{Blocks: 1, Allocated: 3}, 0)
	then := metav1.NewTime(time.Unix(1000, 0))
	for i := range first.Conditions {
		first.Conditions[i].LastTransitionTime = then
	}
	ip.Status = first
	again := PoolStatus(ip, pl, Pool{Blocks: 1, Allocated: 3}, 0)
	for _, c := range again.Conditions {
		if !c.LastTransitionTime.Equal(&then) {
			t.Errorf("%s: transition time changed to %v", c.Type, c.LastTransitionTime)
		}
	}
	if len(again.Conditions) != len(first.Conditions) {
		t.Errorf("conditions %d, want %d", len(again.Conditions), len(first.Conditions))
	}
}

func TestLoadBalancerAllocated(t *testing.T) {
	all := pools.Analyze([]*v1.IPPool{
		ippool("lb4", "10.98.0.0/24", 1, v1.IPPoolUseLoadBalancer),
		ippool("lb6", "fd00:98::/120", 1, v1.IPPoolUseLoadBalancer),
		ippool("pods", "10.244.0.0/16", 1),
	})
	addrs := []netip.Addr{netip.MustParseAddr("10.98.0.1"), netip.MustParseAddr("10.98.0.1"), netip.MustParseAddr("10.98.0.7"),
		netip.MustParseAddr("fd00:98::5"), netip.MustParseAddr("10.244.0.9"), netip.MustParseAddr("192.0.2.1")}
	got := LoadBalancerAllocated(all, addrs)
	if len(got) != 2 || got["lb4"] != 2 || got["lb6"] != 1 {
		t.Errorf("got %v, want lb4 2 (one address held twice counts once), lb6 1, no Workload pool", got)
	}
}
