package gc

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/pools"
)

// poolStatus writes each pool's Overlapping, Invalid and Ready conditions
// and its block and address counts, when they changed.
func (p *pass) poolStatus(ctx context.Context) {
	parsed := map[string]pools.Pool{}
	for _, pl := range pools.Analyze(p.snap.Pools) {
		parsed[pl.Name] = pl
	}
	for _, ip := range p.snap.Pools {
		pl := parsed[ip.Name]
		next := ip.DeepCopy()
		next.Status.ObservedGeneration = ip.Generation
		next.Status.Blocks, next.Status.Allocated = 0, 0
		for _, b := range p.snap.Blocks {
			if bp, err := ipam.BlockPrefix(b); err == nil && pl.CIDR.IsValid() && pl.CIDR.Contains(bp.Addr()) && bp.Bits() >= pl.CIDR.Bits() {
				next.Status.Blocks++
				next.Status.Allocated += int64(len(b.Spec.Allocations))
			}
		}
		setConditions(next, pl)
		if equalStatus(ip.Status, next.Status) {
			continue
		}
		if _, err := p.c.opts.Store.UpdatePoolStatus(ctx, next); err != nil {
			if !ipam.IsConflict(err) {
				p.errs = append(p.errs, fmt.Errorf("update status of pool %s: %w", ip.Name, err))
			}
			continue
		}
		if len(pl.YieldsTo) > 0 {
			p.c.log.Warn("pool overlaps older pools and is not used", "pool", ip.Name, "overlaps", strings.Join(pl.YieldsTo, ","))
		}
	}
}

func setConditions(ip *v1.IPPool, pl pools.Pool) {
	gen := ip.Generation
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
	ready := metav1.Condition{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "InUse", ObservedGeneration: gen}
	switch {
	case pl.Invalid != nil:
		ready.Status, ready.Reason = metav1.ConditionFalse, "Invalid"
	case len(pl.YieldsTo) > 0:
		ready.Status, ready.Reason = metav1.ConditionFalse, "Overlapping"
	case pl.Disabled:
		ready.Status, ready.Reason = metav1.ConditionFalse, "Disabled"
	}
	for _, c := range []metav1.Condition{overlap, invalid, ready} {
		meta.SetStatusCondition(&ip.Status.Conditions, c)
	}
}

func equalStatus(a, b v1.IPPoolStatus) bool {
	if a.ObservedGeneration != b.ObservedGeneration || a.Blocks != b.Blocks || a.Allocated != b.Allocated || len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for _, c := range b.Conditions {
		o := meta.FindStatusCondition(a.Conditions, c.Type)
		if o == nil || o.Status != c.Status || o.Reason != c.Reason || o.Message != c.Message || o.ObservedGeneration != c.ObservedGeneration {
			return false
		}
	}
	return true
}
