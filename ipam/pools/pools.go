// Package pools decides which IP pools an allocation may use: it parses
// pools, applies defaults, finds overlapping pools (the newer of two never
// used), and matches node selectors and requested pool names; pod
// allocation only ever sees Workload pools, LoadBalancer pools only
// LoadBalancer addresses. Everything here is a pure function of the pools
// and the node's labels.
package pools

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
)

// Pool is an IPPool as the allocator uses it.
type Pool struct {
	// Name of the IPPool.
	Name string
	// CIDR of the pool, masked.
	CIDR netip.Prefix
	// BlockBits is the prefix length of the pool's blocks.
	BlockBits int
	// Disabled pools keep their allocations but give no new ones.
	Disabled bool
	// Manual pools only serve requests that name them.
	Manual bool
	// Workload pools give pods their addresses, in node blocks.
	Workload bool
	// LoadBalancer pools give Services of type LoadBalancer theirs, one
	// address at a time; they are never cut into blocks.
	LoadBalancer bool
	// Selector chooses the nodes that may use the pool.
	Selector labels.Selector
	// Overlaps names the other pools whose cidr overlaps this one.
	Overlaps []string
	// YieldsTo names the overlapping pools created before this one: a
	// pool that yields is never used, so the pool that was there first
	// keeps allocating while the newer one is reported.
	YieldsTo []string
	// Created is when the IPPool was created; it decides who yields.
	Created time.Time
	// Invalid says why the pool cannot be used at all (bad cidr or
	// selector); nil when it can.
	Invalid error
}

// Usable reports whether new addresses may come from the pool.
func (p Pool) Usable() bool { return p.Invalid == nil && !p.Disabled && len(p.YieldsTo) == 0 }

// Is4 reports whether the pool is an IPv4 pool.
func (p Pool) Is4() bool { return p.CIDR.Addr().Is4() }

// Parse turns an IPPool into a Pool, recording problems in Invalid.
func Parse(ip *v1.IPPool) Pool {
	p := Pool{Name: ip.Name, Disabled: ip.Spec.Disabled, Manual: ip.Spec.AssignmentMode == "Manual", Created: ip.CreationTimestamp.Time}
	if p.Workload, p.LoadBalancer, p.Invalid = uses(ip); p.Invalid != nil {
		return p
	}
	cidr, err := netip.ParsePrefix(ip.Spec.CIDR)
	if err != nil {
		p.Invalid = fmt.Errorf("pool %s: parse cidr: %w", ip.Name, err)
		return p
	}
	p.CIDR = cidr.Masked()
	p.BlockBits = ipam.BlockBits(p.CIDR, ip.Spec.BlockSize)
	if p.LoadBalancer {
		// Handed out one address at a time: blockSize does not apply
		// (one may still be set, by hand or by an older defaulting policy).
		p.BlockBits = p.CIDR.Addr().BitLen()
	}
	if p.BlockBits < p.CIDR.Bits() || p.BlockBits > p.CIDR.Addr().BitLen() {
		p.Invalid = fmt.Errorf("pool %s: block size /%d does not fit cidr %s", ip.Name, p.BlockBits, p.CIDR)
		return p
	}
	if p.Selector, err = labels.Parse(ip.Spec.NodeSelector); err != nil {
		p.Invalid = fmt.Errorf("pool %s: parse nodeSelector %q: %w", ip.Name, ip.Spec.NodeSelector, err)
	}
	return p
}

// uses reads allowedUses: none means Workload (the API's default, for
// objects that did not pass through it), and a pool may not be both,
// whatever admission let through, since pods and Services would then be
// handed the same addresses. Unknown uses (a newer API) are ignored.
func uses(ip *v1.IPPool) (workload, lb bool, err error) {
	if len(ip.Spec.AllowedUses) == 0 {
		return true, false, nil
	}
	workload = slices.Contains(ip.Spec.AllowedUses, v1.IPPoolUseWorkload)
	lb = slices.Contains(ip.Spec.AllowedUses, v1.IPPoolUseLoadBalancer)
	if workload && lb {
		return false, false, fmt.Errorf("pool %s: allowedUses has both Workload and LoadBalancer", ip.Name)
	}
	return workload, lb, nil
}

// Analyze parses every pool and marks the ones that overlap, sorted by
// name. Of two overlapping pools the newer one (by creation time, then
// name) yields and is never used; the older keeps serving its pods, so
// adding a mistaken pool never stops allocation in the one already in
// use. Overlap is checked between all pools, disabled ones included: a
// disabled pool's blocks still hold addresses.
func Analyze(ips []*v1.IPPool) []Pool {
	out := make([]Pool, 0, len(ips))
	for _, ip := range ips {
		out = append(out, Parse(ip))
	}
	slices.SortFunc(out, func(a, b Pool) int { return strings.Compare(a.Name, b.Name) })
	for i := range out {
		for j := range out {
			if i == j || !out[i].CIDR.IsValid() || !out[j].CIDR.IsValid() {
				continue
			}
			if out[i].CIDR.Overlaps(out[j].CIDR) {
				out[i].Overlaps = append(out[i].Overlaps, out[j].Name)
				if older(out[j], out[i]) {
					out[i].YieldsTo = append(out[i].YieldsTo, out[j].Name)
				}
			}
		}
	}
	return out
}

// older reports whether a was created before b; the name breaks ties
// (creation times have a one-second resolution), so every node decides
// alike.
func older(a, b Pool) bool {
	if !a.Created.Equal(b.Created) {
		return a.Created.Before(b.Created)
	}
	return a.Name < b.Name
}

// Selects reports whether the pool's nodeSelector matches nodeLabels.
func (p Pool) Selects(nodeLabels map[string]string) bool {
	return p.Selector != nil && p.Selector.Matches(labels.Set(nodeLabels))
}

// Family is an address family.
type Family int

// Address families.
const (
	V4 Family = 4
	V6 Family = 6
)

// String returns "IPv4" or "IPv6".
func (f Family) String() string { return fmt.Sprintf("IPv%d", int(f)) }

// ForRequest returns the pools, in order of preference, that may give a
// new pod address of family to a node with nodeLabels. names, when not
// empty, restricts the choice to those pools, in that order, and may name
// Manual pools; otherwise every Automatic pool is a candidate, by name.
// Only Workload pools are ever returned: naming a LoadBalancer pool does
// not let a pod, or a node block, take its addresses.
func ForRequest(all []Pool, family Family, names []string, nodeLabels map[string]string) []Pool {
	var candidates []Pool
	if len(names) > 0 {
		for _, n := range names {
			if i := slices.IndexFunc(all, func(p Pool) bool { return p.Name == n }); i >= 0 {
				candidates = append(candidates, all[i])
			}
		}
	} else {
		for _, p := range all {
			if !p.Manual {
				candidates = append(candidates, p)
			}
		}
	}
	var out []Pool
	for _, p := range candidates {
		if p.Workload && p.Usable() && p.Is4() == (family == V4) && p.Selects(nodeLabels) {
			out = append(out, p)
		}
	}
	return out
}

// Containing returns the pool whose cidr holds block, if any.
func Containing(all []Pool, block netip.Prefix) (Pool, bool) {
	for _, p := range all {
		if p.CIDR.IsValid() && p.CIDR.Bits() <= block.Bits() && p.CIDR.Contains(block.Addr()) {
			return p, true
		}
	}
	return Pool{}, false
}

// ForLoadBalancer returns the LoadBalancer pools, by name, that may give a
// Service a new address of family without being asked for one: usable
// and Automatic.
func ForLoadBalancer(all []Pool, family Family) []Pool {
	var out []Pool
	for _, p := range all {
		if p.LoadBalancer && !p.Manual && p.Usable() && p.Is4() == (family == V4) {
			out = append(out, p)
		}
	}
	return out
}

// LoadBalancerContaining returns the LoadBalancer pool that holds addr,
// usable or not, if any.
func LoadBalancerContaining(all []Pool, addr netip.Addr) (Pool, bool) {
	for _, p := range all {
		if p.LoadBalancer && p.CIDR.IsValid() && p.CIDR.Contains(addr) {
			return p, true
		}
	}
	return Pool{}, false
}
