// Package kernel is felix's narrow seam to the Linux kernel: only the netlink
// and sysctl calls felix uses, behind one interface with a real netlink
// implementation (Netlink) and a stateful fake (package fake).
//
// The package owns no policy: it does not know which routes are Cairn's. It
// only moves routes, links and sysctls between felix and the kernel.
package kernel

import (
	"context"
	"net/netip"
)

// Route types and scopes, as the kernel numbers them (rtnetlink.h).
const (
	TypeUnicast   = 1 // RTN_UNICAST
	TypeBlackhole = 6 // RTN_BLACKHOLE

	ScopeUniverse = 0   // RT_SCOPE_UNIVERSE
	ScopeLink     = 253 // RT_SCOPE_LINK
	ScopeHost     = 254 // RT_SCOPE_HOST

	ProtoKernel = 2 // RTPROT_KERNEL: routes the kernel made for an address
	ProtoBoot   = 3 // RTPROT_BOOT: `ip route add` without proto

	TableMain = 254 // RT_TABLE_MAIN
)

// Route is one route of the main table, reduced to what felix compares.
type Route struct {
	Dst      netip.Prefix
	Type     uint8
	Scope    uint8
	Protocol uint8
	// Priority is the metric. IPv6 has no metric 0: the kernel stores 1024
	// when none is given, so callers state it explicitly for IPv6.
	Priority uint32
	// LinkIndex is the output interface of a single-path route (0 when none).
	LinkIndex int
	// NextHops are the gateways of the route, one per path; several make an
	// ECMP route. Empty for device and blackhole routes.
	NextHops []NextHop
}

// NextHop is one path of a route.
type NextHop struct {
	Gateway netip.Addr
	// LinkIndex is the interface the kernel resolved the gateway to; felix
	// reads it back but does not set it.
	LinkIndex int
}

// OpKind says what a RouteOp does.
type OpKind uint8

// Route operations.
const (
	// OpAdd creates a route and fails with EEXIST if any route (ours or not)
	// already has the same destination and metric: it can never clobber.
	OpAdd OpKind = iota + 1
	// OpReplace atomically replaces the route with the same destination and
	// metric; used only for routes felix already holds.
	OpReplace
	// OpDelete deletes the route with the same destination and metric and the
	// same protocol: the kernel refuses (ESRCH) to delete a route of another
	// protocol, so a delete can never remove a foreign route.
	OpDelete
)

// String names the operation for logs.
func (k OpKind) String() string {
	switch k {
	case OpAdd:
		return "add"
	case OpReplace:
		return "replace"
	case OpDelete:
		return "delete"
	}
	return "unknown"
}

// RouteOp is one route change of a batch.
type RouteOp struct {
	Kind  OpKind
	Route Route
}

// Link is a network interface.
type Link struct {
	Index int
	Name  string
	// Up is the administrative state (IFF_UP): the kernel refuses device
	// routes through a down interface and removes them when it goes down.
	Up bool
}

// LinkUpdate is a change to one link.
type LinkUpdate struct {
	Link    Link
	Deleted bool
}

// Kernel is every kernel call felix makes, and nothing more: interface
// names are resolved from LinkList and LinkSubscribe, never per route.
// Implementations are safe for use by several goroutines.
type Kernel interface {
	// RouteDump streams the main table of one family (4 or 6) to fn, route
	// by route as the kernel's dump is read, so the caller's work overlaps
	// the kernel's. r is only valid during the call (its NextHops are not
	// reused). Like any netlink dump it may end with ErrDumpInterrupted
	// after fn saw part of the table: the caller starts over, through
	// RetryDump.
	RouteDump(family int, fn func(r *Route)) error
	// RouteApply performs ops in order, batched, and returns one error per
	// op (nil for success). Each op succeeds or fails on its own.
	RouteApply(ops []RouteOp) []error
	// LinkList lists every link; may be interrupted like RouteDump.
	LinkList() ([]Link, error)
	// LinkSubscribe streams link changes until ctx is done or the stream
	// breaks; the channel is closed then and the caller must resubscribe and
	// list links again, since changes may have been lost.
	LinkSubscribe(ctx context.Context) (<-chan LinkUpdate, error)
	// ReadSysctl reads a sysctl by its path under /proc/sys
	// ("net/ipv4/ip_forward").
	ReadSysctl(name string) (string, error)
	// WriteSysctl writes a sysctl by its path under /proc/sys.
	WriteSysctl(name, value string) error
}

// Family returns 4 or 6 for a prefix.
func Family(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 4
	}
	return 6
}
