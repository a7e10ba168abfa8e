package routetable

import (
	"net/netip"

	"github.com/cairn-net/cairn/felix/kernel"
)

// Class is what a route is for. Read back from the kernel, a route's class
// is told by its shape, so adopted routes are classed like written ones.
type Class uint8

// Route classes.
const (
	// Endpoint is "dst dev <host veth> scope link".
	Endpoint Class = iota
	// Block is "blackhole block".
	Block
	// Learned is "prefix via next hop(s)".
	Learned
	numClasses
)

// String names the class for logs.
func (c Class) String() string {
	return [...]string{"endpoint", "block", "learned"}[c]
}

func classOf(r *kernel.Route) Class {
	switch {
	case r.Type == kernel.TypeBlackhole:
		return Block
	case len(r.NextHops) > 0:
		return Learned
	}
	return Endpoint
}

// Priorities felix gives its routes. IPv6 has no metric 0 (the kernel
// stores 1024), so it is explicit to make desired and read-back routes
// compare equal.
const (
	PriorityV4 = 0
	PriorityV6 = 1024
)

func priorityFor(p netip.Prefix) uint32 {
	if p.Addr().Is4() {
		return PriorityV4
	}
	return PriorityV6
}

// key identifies a route in the main table. It is 24 bytes without
// pointers or padding, so the map hashes it as plain memory (a struct with
// padding gets a slower field-by-field hash).
type key struct {
	addr     [16]byte
	priority uint32
	// meta is the prefix length, plus keyV6 for IPv6.
	meta uint32
}

const keyV6 = 1 << 8

func keyOf(p netip.Prefix, priority uint32) key {
	a := p.Addr()
	meta := uint32(p.Bits())
	if !a.Is4() {
		meta |= keyV6
	}
	return key{addr: a.As16(), priority: priority, meta: meta}
}

// sameRoute decides whether the kernel route a satisfies d. Fields the
// kernel fills in on its own (the interface a gateway resolves to) are not
// compared.
func sameRoute(d, a kernel.Route) bool {
	if d.Type != a.Type || d.Protocol != a.Protocol {
		return false
	}
	if d.Type == kernel.TypeBlackhole {
		return true
	}
	if len(d.NextHops) != len(a.NextHops) {
		return false
	}
	if len(d.NextHops) > 0 {
		for i := range d.NextHops {
			if d.NextHops[i].Gateway != a.NextHops[i].Gateway {
				return false
			}
		}
		return true
	}
	return d.LinkIndex == a.LinkIndex && d.Scope == a.Scope
}
