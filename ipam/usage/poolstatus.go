package usage

import (
	"fmt"
	"math"
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam/pools"
)

// PoolStatus is an IPPool's status: how many blocks and addresses it
// has given (u, from Compute; for a LoadBalancer pool lbAllocated, the
// Services' addresses in it, from LoadBalancerAllocated), how many it
// can give, and its Overlapping, Invalid, Exhausted and Ready conditions
// (pl, from pools.Analyze). Conditions keep their transition times from
// the pool's current status.
func PoolStatus(ip *v1.IPPool, pl pools.Pool, u Pool, lbAllocated int64) v1.IPPoolStatus {
	var st v1.IPPoolStatus
	st.ObservedGeneration = ip.Generation
	if len(ip.Status.Conditions) > 0 {
		st.Conditions = append([]metav1.Condition(nil), ip.Status.Conditions...)
	}
	if pl.LoadBalancer {
		st.Allocated = lbAllocated
	} else {
		st.Blocks, st.Allocated = int32(u.Blocks), int64(u.Allocated)
	}
	st.Capacity = Capacity(pl)
	for _, c := range poolConditions(ip.Generation, pl, st) {
		meta.SetStatusCondition(&st.Conditions, c)
	}
	return st
}

// Capacity is how many addresses pl can give, at most math.MaxInt64: all
// of a Workload pool's cidr (blocks use every address); a LoadBalancer
// pool's without the network address and, in IPv4, broadcast, which
// lbipam never hands out on its own (pools of one or two addresses give
// them all).
func Capacity(pl pools.Pool) int64 {
	if !pl.CIDR.IsValid() {
		return 0
	}
	hostBits := pl.CIDR.Addr().BitLen() - pl.CIDR.Bits()
	if hostBits >= 63 {
		return math.MaxInt64
	}
	n := int64(1) << hostBits
	if pl.LoadBalancer && hostBits > 1 {
		n--
		if pl.Is4() {
			n--
		}
	}
	return n
}

func poolConditions(gen int64, pl pools.Pool, st v1.IPPoolStatus) []metav1.Condition {
	overlap := metav1.Condition{Type: v1.ConditionOverlapping, Status: metav1.ConditionFalse, Reason: "NoOverlap", ObservedGeneration: gen}
	switch {
	case len(pl.YieldsTo) > 0:
		overlap.Status, overlap.Reason = metav1.ConditionTrue, "CIDROverlap"
		overlap.Message = "cidr overlaps the older pool(s) " + strings.Join(pl.YieldsTo, ", ") + "; no addresses are given from this pool"
	case len(pl.Overlaps) > 0:
		overlap.Status, overlap.Reason = metav1.ConditionTrue, "OverlappedByNewer"
		overlap.Message = "the newer pool(s) " + strings.Join(pl.Overlaps, ", ") + " overlap this cidr and are not used; this pool still gives addresses"
	}
	invalid := metav1.Condition{Type: v1.ConditionInvalid, Status: metav1.ConditionFalse, Reason: "Valid", ObservedGeneration: gen}
	if pl.Invalid != nil {
		invalid.Status, invalid.Reason, invalid.Message = metav1.ConditionTrue, "Unusable", pl.Invalid.Error()
	}
	exhausted := metav1.Condition{Type: v1.ConditionExhausted, Status: metav1.ConditionFalse, Reason: "AddressesFree", ObservedGeneration: gen,
		Message: fmt.Sprintf("%d of %d addresses allocated", st.Allocated, st.Capacity)}
	if st.Capacity > 0 && st.Allocated >= st.Capacity {
		exhausted.Status, exhausted.Reason = metav1.ConditionTrue, "AllAllocated"
		exhausted.Message = fmt.Sprintf("all %d addresses are allocated: new pods or Services get none from this pool", st.Capacity)
	}
	ready := metav1.Condition{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "InUse", ObservedGeneration: gen}
	switch {
	case pl.Invalid != nil:
		ready.Status, ready.Reason = metav1.ConditionFalse, "Invalid"
	case len(pl.YieldsTo) > 0:
		ready.Status, ready.Reason = metav1.ConditionFalse, "Overlapping"
	case pl.Disabled:
		ready.Status, ready.Reason = metav1.ConditionFalse, "Disabled"
	}
	return []metav1.Condition{overlap, invalid, exhausted, ready}
}

// LoadBalancerAllocated counts, per LoadBalancer pool, the distinct
// addresses of addrs (Services' LoadBalancer ingress addresses) inside
// it. Every LoadBalancer pool has an entry.
func LoadBalancerAllocated(all []pools.Pool, addrs []netip.Addr) map[string]int64 {
	out := map[string]int64{}
	var lb []pools.Pool
	for _, p := range all {
		if p.LoadBalancer && p.CIDR.IsValid() {
			out[p.Name] = 0
			lb = append(lb, p)
		}
	}
	seen := map[netip.Addr]bool{}
	for _, a := range addrs {
		a = a.Unmap()
		if seen[a] {
			continue
		}
		seen[a] = true
		for _, p := range lb {
			if p.CIDR.Contains(a) {
				out[p.Name]++
				break
			}
		}
	}
	return out
}
