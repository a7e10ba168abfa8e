// Package routetable owns Cairn's routes in the main routing table: host
// routes to local endpoints, blackholes for owned blocks and routes learned
// from peers. Callers state the desired routes; Apply writes the difference
// to the kernel and Resync reads the kernel back first. It owns exactly the
// routes tagged with its protocol number and never writes any other.
package routetable

import (
	"log/slog"
	"net/netip"
	"slices"

	"github.com/cairn-net/cairn/felix/deltatracker"
	"github.com/cairn-net/cairn/felix/kernel"
)

// Options configure a Table.
type Options struct {
	// Kernel should be wrapped with kernel.WithDumpRetry (route dumps are
	// retried by the Table itself, through kernel.RetryDump).
	Kernel kernel.Kernel
	// Protocol tags every route felix writes; routes with another protocol
	// are never changed.
	Protocol uint8
	Logger   *slog.Logger
}

type foreignRoute struct {
	dst   netip.Prefix
	proto uint8
}

// Table reconciles Cairn's routes. It is not safe for concurrent use: one
// goroutine owns it.
type Table struct {
	k       kernel.Kernel
	proto   uint8
	log     *slog.Logger
	tracker *deltatracker.Tracker[key, kernel.Route]

	// Desired state, as given.
	endpoints map[netip.Prefix]string
	ifaces    map[string][]netip.Prefix
	blocks    *prefixSet
	learned   map[netip.Prefix][]netip.Addr
	// byHop indexes learned routes by next hop, so an endpoint that comes
	// or goes re-derives only the routes through its address.
	byHop  map[netip.Addr]map[netip.Prefix]struct{}
	synced [numClasses]bool
	// removed holds endpoint prefixes explicitly removed: they may be
	// deleted even before the endpoints are in sync.
	removed map[netip.Prefix]struct{}

	// The kernel as last seen.
	links     map[string]kernel.Link
	linkNames map[int]string
	connected *prefixSet
	// onLink: every device route of another protocol, which is what makes
	// a next hop reachable; known once the kernel was read.
	onLink      *prefixSet
	onLinkKnown bool
	foreign     map[key]foreignRoute
	// Being read back.
	nextForeign   map[key]foreignRoute
	nextConnected *prefixSet
	nextOnLink    *prefixSet

	// Status, logged on change only so that a stuck route does not storm.
	waiting    map[netip.Prefix]string
	conflicts  map[netip.Prefix]foreignRoute
	suppressed map[netip.Prefix]HideReason
	badHops    map[netip.Prefix][]netip.Addr

	needResync bool
	ops        []kernel.RouteOp
}

// New returns a Table that knows nothing yet; call Resync to read the
// kernel before the first Apply.
func New(opts Options) *Table {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Table{
		k:          opts.Kernel,
		proto:      opts.Protocol,
		log:        log,
		tracker:    deltatracker.New[key, kernel.Route](sameRoute),
		endpoints:  map[netip.Prefix]string{},
		ifaces:     map[string][]netip.Prefix{},
		blocks:     newPrefixSet(),
		learned:    map[netip.Prefix][]netip.Addr{},
		byHop:      map[netip.Addr]map[netip.Prefix]struct{}{},
		removed:    map[netip.Prefix]struct{}{},
		links:      map[string]kernel.Link{},
		linkNames:  map[int]string{},
		connected:  newPrefixSet(),
		onLink:     newPrefixSet(),
		foreign:    map[key]foreignRoute{},
		waiting:    map[netip.Prefix]string{},
		conflicts:  map[netip.Prefix]foreignRoute{},
		suppressed: map[netip.Prefix]HideReason{},
		badHops:    map[netip.Prefix][]netip.Addr{},
		needResync: true,
	}
	t.tracker.CountActualBy(int(numClasses), func(r kernel.Route) int { return int(classOf(&r)) })
	return t
}

// SetEndpoint makes prefixes the host routes of iface, replacing any it
// had.
func (t *Table) SetEndpoint(iface string, prefixes []netip.Prefix) {
	old := t.ifaces[iface]
	next := make([]netip.Prefix, 0, len(prefixes))
	for _, p := range prefixes {
		p = p.Masked()
		next = append(next, p)
		t.endpoints[p] = iface
		delete(t.removed, p)
	}
	t.ifaces[iface] = next
	for _, p := range old {
		if !slices.Contains(next, p) && t.endpoints[p] == iface {
			delete(t.endpoints, p)
			t.markRemoved(p)
		}
	}
	t.recomputeAll(old)
	t.recomputeAll(next)
	t.recomputeVia(old)
	t.recomputeVia(next)
}

// RemoveEndpoint removes the host routes of iface.
func (t *Table) RemoveEndpoint(iface string) {
	old := t.ifaces[iface]
	delete(t.ifaces, iface)
	for _, p := range old {
		if t.endpoints[p] == iface {
			delete(t.endpoints, p)
			t.markRemoved(p)
		}
	}
	t.recomputeAll(old)
	t.recomputeVia(old)
}

// markRemoved lets a removed endpoint's route be deleted before endpoints
// are in sync; only routes actually held need it.
func (t *Table) markRemoved(p netip.Prefix) {
	if _, ok := t.tracker.Actual(keyOf(p, priorityFor(p))); ok {
		t.removed[p] = struct{}{}
	}
}

// SetBlocks sets the owned blocks; each gets a blackhole route. The first
// call marks blocks in sync.
func (t *Table) SetBlocks(blocks []netip.Prefix) {
	next := newPrefixSet()
	for _, b := range blocks {
		next.add(b)
	}
	t.synced[Block] = true
	if next.equal(t.blocks) {
		return
	}
	old := t.blocks
	t.blocks = next
	for p := range old.m {
		t.recompute(p)
	}
	for p := range next.m {
		t.recompute(p)
	}
	// Which learned routes hide a block depends on the blocks.
	t.recomputeLearned()
}

// SetLearned sets the learned routes, prefix to next hops. The first call
// marks learned routes in sync: until then, learned routes found in the
// kernel (kept across a restart, as graceful restart expects) stay.
func (t *Table) SetLearned(routes map[netip.Prefix][]netip.Addr) {
	t.synced[Learned] = true
	for p := range t.learned {
		if _, ok := routes[p.Masked()]; !ok {
			t.indexHops(p, t.learned[p], nil)
			delete(t.learned, p)
			delete(t.badHops, p)
			t.recompute(p)
		}
	}
	for p, hops := range routes {
		p = p.Masked()
		hops = slices.Clone(hops)
		slices.SortFunc(hops, func(a, b netip.Addr) int { return a.Compare(b) })
		hops = slices.Compact(hops)
		old, ok := t.learned[p]
		if ok && slices.Equal(old, hops) {
			continue
		}
		t.indexHops(p, old, hops)
		t.learned[p] = hops
		t.recompute(p)
	}
}

// MarkSynced declares that the desired routes of class c are complete, so
// routes of that class found in the kernel and not desired may be deleted.
func (t *Table) MarkSynced(c Class) {
	t.synced[c] = true
}
