package lbipam

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/cairn-net/cairn/ipam/pools"
)

// Input is what deciding one Service's addresses reads.
type Input struct {
	Service Service
	// Held is what the table gives the Service now.
	Held []netip.Addr
	// Pools are every pool, analysed (pools.Analyze).
	Pools []pools.Pool
	// Taken reports whether another Service holds an address.
	Taken func(netip.Addr) bool
}

// Decision is what a Service's status.loadBalancer.ingress should be, and
// what to tell its owner.
type Decision struct {
	// Addrs are the Service's addresses, in the order of its families;
	// none for a Service Cairn does not serve.
	Addrs []netip.Addr
	// From names the pool each newly chosen address came from.
	From map[netip.Addr]string
	// Lost are addresses of the Service's status that another Service
	// holds: they are replaced.
	Lost []netip.Addr
	// Problems say why the Service has fewer addresses than it asked for.
	Problems []Problem
}

// Problem is a Warning Event to write on the Service.
type Problem struct {
	Reason, Message string
}

// Decide chooses a Service's addresses. It keeps what the Service has
// (an address is never moved to another pool or renumbered because pools
// changed); a request is met exactly or not at all, and a request that
// cannot be met leaves the Service with what it had; otherwise each of the
// Service's families gets the lowest free address of the first
// LoadBalancer pool, by name, that has one.
func Decide(in Input) Decision {
	if !in.Service.Managed {
		return Decision{}
	}
	var d Decision
	for _, a := range in.Service.Status {
		if !slices.Contains(in.Held, a) && in.Taken(a) {
			d.Lost = append(d.Lost, a)
		}
	}
	switch {
	case in.Service.RequestErr != nil:
		d.Addrs = current(in)
		d.Problems = append(d.Problems, Problem{ReasonUnavailable, in.Service.RequestErr.Error()})
	case len(in.Service.Requested) > 0:
		decideRequested(in, &d)
	default:
		decideAutomatic(in, &d)
	}
	return d
}

// current is what the Service keeps, one address per family: what the
// table gives it, else an address of its status that nobody else holds
// (adopted as it is).
func current(in Input) []netip.Addr {
	var out []netip.Addr
	for _, f := range in.Service.Families {
		if a, ok := currentOf(in, f); ok {
			out = append(out, a)
		}
	}
	return out
}

func currentOf(in Input, f pools.Family) (netip.Addr, bool) {
	for _, a := range in.Held {
		if familyOf(a) == f {
			return a, true
		}
	}
	for _, a := range in.Service.Status {
		if familyOf(a) == f && !in.Taken(a) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func decideRequested(in Input, d *Decision) {
	var why []string
	for _, a := range in.Service.Requested {
		if slices.Contains(in.Held, a) || (slices.Contains(in.Service.Status, a) && !in.Taken(a)) {
			continue // already the Service's
		}
		if msg := unavailable(in, a); msg != "" {
			why = append(why, msg)
			continue
		}
		p, _ := pools.LoadBalancerContaining(in.Pools, a)
		d.from(a, p.Name)
	}
	if len(why) > 0 {
		d.Addrs, d.From = current(in), nil
		d.Problems = append(d.Problems, Problem{ReasonUnavailable, strings.Join(why, "; ")})
		return
	}
	d.Addrs = slices.Clone(in.Service.Requested)
}

// unavailable says why a requested address cannot be given, or "".
// Another Service is not named: it may be in a namespace the reader of
// this one's Events may not see.
func unavailable(in Input, a netip.Addr) string {
	if in.Taken(a) {
		return fmt.Sprintf("requested address %s is in use by another Service", a)
	}
	p, ok := pools.LoadBalancerContaining(in.Pools, a)
	switch {
	case !ok:
		return fmt.Sprintf("requested address %s is not in any LoadBalancer IP pool", a)
	case p.Invalid != nil:
		return fmt.Sprintf("requested address %s is in IP pool %s, which is invalid: %v", a, p.Name, p.Invalid)
	case p.Disabled:
		return fmt.Sprintf("requested address %s is in IP pool %s, which is disabled", a, p.Name)
	case len(p.YieldsTo) > 0:
		return fmt.Sprintf("requested address %s is in IP pool %s, which overlaps %s and is not used", a, p.Name, strings.Join(p.YieldsTo, ","))
	}
	return ""
}

// decideAutomatic gives each family an address. A family without any
// LoadBalancer pool is only a problem when it leaves the Service with
// nothing, or the Service requires both families; full pools always are.
func decideAutomatic(in Input, d *Decision) {
	var why []string
	missingRequired := false
	for _, f := range in.Service.Families {
		if a, ok := currentOf(in, f); ok {
			d.Addrs = append(d.Addrs, a)
			continue
		}
		cands := pools.ForLoadBalancer(in.Pools, f)
		if len(cands) == 0 {
			why = append(why, fmt.Sprintf("no %v LoadBalancer IP pool", f))
			missingRequired = missingRequired || in.Service.RequireAll
			continue
		}
		a, p, ok := firstFree(cands, in.Taken)
		if !ok {
			why = append(why, fmt.Sprintf("every %v LoadBalancer IP pool is full (%s)", f, strings.Join(poolNames(cands), ", ")))
			missingRequired = true
			continue
		}
		d.Addrs = append(d.Addrs, a)
		d.from(a, p)
	}
	if len(why) > 0 && (len(d.Addrs) == 0 || missingRequired) {
		d.Problems = append(d.Problems, Problem{ReasonAllocationFailed, strings.Join(why, "; ")})
	}
}

func (d *Decision) from(a netip.Addr, pool string) {
	if d.From == nil {
		d.From = map[netip.Addr]string{}
	}
	d.From[a] = pool
}

// firstFree returns the lowest free address of the first pool that has
// one. A pool's first address (the IPv4 network address, the IPv6
// subnet-router anycast address) and an IPv4 pool's broadcast address are
// not handed out unasked: some hosts and middleboxes still treat them
// specially. A Service may still ask for them.
func firstFree(cands []pools.Pool, taken func(netip.Addr) bool) (netip.Addr, string, bool) {
	for _, p := range cands {
		first, last := p.CIDR.Addr(), lastAddr(p.CIDR)
		if hostBits := first.BitLen() - p.CIDR.Bits(); hostBits > 1 {
			first = first.Next()
			if first.Is4() {
				last = last.Prev()
			}
		}
		for a := first; a.IsValid() && a.Compare(last) <= 0; a = a.Next() {
			if !taken(a) {
				return a, p.Name, true
			}
		}
	}
	return netip.Addr{}, "", false
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func poolNames(ps []pools.Pool) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}
