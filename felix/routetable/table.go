// Package routetable owns Cairn's routes in the main routing table: host
// routes to local endpoints, blackholes for owned blocks and routes learned
// from peers. Callers state the desired routes; Apply writes the difference
// to the kernel and Resync reads the kernel back first. It owns exactly the
// routes tagged with its protocol number and never writes any other.
package routetable

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"

	"github.com/cairn-net/cairn/felix/deltatracker"
	"github.com/cairn-net/cairn/felix/kernel"
	"golang.org/x/sys/unix"
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

// Config configures a Table.
type Config struct {
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
	synced    [numClasses]bool
	// removed holds endpoint prefixes explicitly removed: they may be
	// deleted even before the endpoints are in sync.
	removed map[netip.Prefix]struct{}

	// The kernel as last seen.
	links     map[string]kernel.Link
	linkNames map[int]string
	connected *prefixSet
	foreign   map[key]foreignRoute
	// Being read back.
	nextForeign   map[key]foreignRoute
	nextConnected *prefixSet

	// Status, logged on change only so that a stuck route does not storm.
	waiting    map[netip.Prefix]string
	conflicts  map[netip.Prefix]foreignRoute
	suppressed map[netip.Prefix]HideReason

	needResync bool
	ops        []kernel.RouteOp
}

// New returns a Table that knows nothing yet; call Resync to read the
// kernel before the first Apply.
func New(cfg Config) *Table {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Table{
		k:          cfg.Kernel,
		proto:      cfg.Protocol,
		log:        log,
		tracker:    deltatracker.New[key, kernel.Route](sameRoute),
		endpoints:  map[netip.Prefix]string{},
		ifaces:     map[string][]netip.Prefix{},
		blocks:     newPrefixSet(),
		learned:    map[netip.Prefix][]netip.Addr{},
		removed:    map[netip.Prefix]struct{}{},
		links:      map[string]kernel.Link{},
		linkNames:  map[int]string{},
		connected:  newPrefixSet(),
		foreign:    map[key]foreignRoute{},
		waiting:    map[netip.Prefix]string{},
		conflicts:  map[netip.Prefix]foreignRoute{},
		suppressed: map[netip.Prefix]HideReason{},
		needResync: true,
	}
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
}

// markRemoved lets a removed endpoint's route be deleted before endpoints
// are in sync; only routes actually held need it.
func (t *Table) markRemoved(p netip.Prefix) {
	if _, ok := t.tracker.Actual(keyOf(p, priorityFor(p))); ok {
		t.removed[p] = struct{}{}
	}
}

// Links returns the links as last seen.
func (t *Table) Links() []kernel.Link {
	out := make([]kernel.Link, 0, len(t.links))
	for _, l := range t.links {
		out = append(out, l)
	}
	return out
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
			delete(t.learned, p)
			t.recompute(p)
		}
	}
	for p, hops := range routes {
		p = p.Masked()
		hops = slices.Clone(hops)
		slices.SortFunc(hops, func(a, b netip.Addr) int { return a.Compare(b) })
		hops = slices.Compact(hops)
		if old, ok := t.learned[p]; ok && slices.Equal(old, hops) {
			continue
		}
		t.learned[p] = hops
		t.recompute(p)
	}
}

// MarkSynced declares that the desired routes of class c are complete, so
// routes of that class found in the kernel and not desired may be deleted.
func (t *Table) MarkSynced(c Class) {
	t.synced[c] = true
}

func (t *Table) recomputeAll(ps []netip.Prefix) {
	for _, p := range ps {
		t.recompute(p)
	}
}

func (t *Table) recomputeLearned() {
	for p := range t.learned {
		t.recompute(p)
	}
}

// recompute derives the desired route for p from the inputs and the kernel
// view, and hands it to the tracker.
func (t *Table) recompute(p netip.Prefix) {
	k := keyOf(p, priorityFor(p))
	r, ok := t.want(p)
	if ok {
		if f, held := t.foreign[k]; held {
			t.setConflict(p, f)
			ok = false
		} else if _, was := t.conflicts[p]; was {
			delete(t.conflicts, p)
			t.log.Info("foreign route gone, installing ours", "prefix", p)
		}
	} else {
		delete(t.conflicts, p)
	}
	if ok {
		t.tracker.SetDesired(k, r)
	} else {
		t.tracker.DeleteDesired(k)
	}
}

func (t *Table) setConflict(p netip.Prefix, f foreignRoute) {
	if _, was := t.conflicts[p]; !was {
		t.log.Warn("a route of another protocol holds this destination; not touching it",
			"prefix", p, "foreignProtocol", f.proto)
	}
	t.conflicts[p] = f
}

func (t *Table) want(p netip.Prefix) (kernel.Route, bool) {
	r := kernel.Route{Dst: p, Protocol: t.proto, Priority: priorityFor(p), Type: kernel.TypeUnicast}
	if iface, ok := t.endpoints[p]; ok {
		delete(t.suppressed, p)
		l, ok := t.links[iface]
		if !ok || !l.Up {
			if t.waiting[p] != iface {
				t.log.Info("route waits for its interface", "prefix", p, "iface", iface)
			}
			t.waiting[p] = iface
			return r, false
		}
		delete(t.waiting, p)
		r.LinkIndex = l.Index
		if p.Addr().Is4() {
			r.Scope = kernel.ScopeLink
		}
		return r, true
	}
	delete(t.waiting, p)
	if t.blocks.has(p) {
		delete(t.suppressed, p)
		r.Type = kernel.TypeBlackhole
		return r, true
	}
	hops, ok := t.learned[p]
	if !ok {
		delete(t.suppressed, p)
		return r, false
	}
	sh := Shadowing{Connected: t.connected, Blocks: t.blocks, Endpoints: t.endpoints}
	if why := LearnedHides(p, sh); why != HidesNothing {
		if t.suppressed[p] != why {
			t.log.Info("learned route not installed", "prefix", p, "reason", string(why))
		}
		t.suppressed[p] = why
		return r, false
	}
	delete(t.suppressed, p)
	r.NextHops = make([]kernel.NextHop, len(hops))
	for i, h := range hops {
		r.NextHops[i].Gateway = h
	}
	return r, true
}

// OnLinkUpdate takes a link change from the subscription.
func (t *Table) OnLinkUpdate(u kernel.LinkUpdate) {
	l := u.Link
	if old, ok := t.linkNames[l.Index]; ok && old != l.Name {
		// Renamed: routes stay on the index, but the old name no longer
		// resolves to it.
		if cur, ok := t.links[old]; ok && cur.Index == l.Index {
			delete(t.links, old)
			t.recomputeAll(t.ifaces[old])
		}
	}
	if u.Deleted || !l.Up {
		// The kernel drops routes through a link that goes away or down.
		t.dropActualVia(l.Index, l.Name)
	}
	if u.Deleted {
		delete(t.linkNames, l.Index)
		if cur, ok := t.links[l.Name]; ok && cur.Index == l.Index {
			delete(t.links, l.Name)
		}
	} else {
		t.linkNames[l.Index] = l.Name
		t.links[l.Name] = l
	}
	t.recomputeAll(t.ifaces[l.Name])
}

// dropActualVia forgets routes the kernel removed with a link. Host veths
// carry only their endpoints' routes, so those are looked at directly;
// any other link may carry learned routes, so all routes are scanned.
func (t *Table) dropActualVia(index int, name string) {
	if ps, ok := t.ifaces[name]; ok {
		for _, p := range ps {
			k := keyOf(p, priorityFor(p))
			if a, ok := t.tracker.Actual(k); ok && via(&a, index) {
				t.tracker.DeleteActual(k)
			}
		}
		return
	}
	var gone []key
	for k, a := range t.tracker.AllActual() {
		if via(&a, index) {
			gone = append(gone, k)
		}
	}
	for _, k := range gone {
		t.tracker.DeleteActual(k)
	}
}

func via(r *kernel.Route, index int) bool {
	if r.LinkIndex == index {
		return true
	}
	for _, h := range r.NextHops {
		if h.LinkIndex == index {
			return true
		}
	}
	return false
}

// NeedsResync reports whether the kernel must be read back before the next
// Apply can be trusted (never read yet, or an error left doubt).
func (t *Table) NeedsResync() bool { return t.needResync }

// Resync reads links and routes back from the kernel, adopts the routes
// already as desired (they are not rewritten), then applies the rest.
func (t *Table) Resync() error {
	if err := t.resyncLinks(); err != nil {
		t.needResync = true
		return err
	}
	err := kernel.RetryDump(kernel.DefaultDumpAttempts, "routes", func() error {
		t.beginAbsorb()
		for _, fam := range []int{4, 6} {
			if err := t.k.RouteDump(fam, t.absorb); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.needResync = true
		return fmt.Errorf("read back routes: %w", err)
	}
	t.endAbsorb()
	t.needResync = false
	return t.Apply()
}

func (t *Table) resyncLinks() error {
	links, err := t.k.LinkList()
	if err != nil {
		return fmt.Errorf("read back links: %w", err)
	}
	old := t.links
	t.links = make(map[string]kernel.Link, len(links))
	clear(t.linkNames)
	for _, l := range links {
		t.links[l.Name] = l
		t.linkNames[l.Index] = l.Name
	}
	for name, l := range t.links {
		if o, ok := old[name]; !ok || o != l {
			t.recomputeAll(t.ifaces[name])
		}
	}
	for name := range old {
		if _, ok := t.links[name]; !ok {
			t.recomputeAll(t.ifaces[name])
		}
	}
	return nil
}

func isConnected(r *kernel.Route) bool {
	return r.Protocol == kernel.ProtoKernel && r.Type == kernel.TypeUnicast && len(r.NextHops) == 0 && r.LinkIndex != 0
}

// beginAbsorb starts (or, after an interrupted dump, restarts) reading
// the routes back.
func (t *Table) beginAbsorb() {
	t.nextForeign = make(map[key]foreignRoute, len(t.foreign))
	t.nextConnected = newPrefixSet()
	t.tracker.BeginResync()
}

// absorb takes one route read back: ours go to the tracker (one map lookup
// each), others are remembered as foreign so that felix never writes over
// them.
func (t *Table) absorb(r *kernel.Route) {
	k := keyOf(r.Dst, r.Priority)
	if r.Protocol == t.proto {
		t.tracker.ObserveActual(k, *r)
		return
	}
	t.nextForeign[k] = foreignRoute{dst: r.Dst, proto: r.Protocol}
	if isConnected(r) {
		t.nextConnected.add(r.Dst)
	}
}

// endAbsorb makes what was read back the actual state and re-derives the
// desired routes that depend on foreign and connected routes.
func (t *Table) endAbsorb() {
	t.tracker.EndResync()
	oldForeign := t.foreign
	t.foreign, t.nextForeign = t.nextForeign, nil
	for k, f := range t.foreign {
		if _, ok := oldForeign[k]; !ok {
			t.recompute(f.dst)
		}
	}
	for k, f := range oldForeign {
		if _, ok := t.foreign[k]; !ok {
			t.recompute(f.dst)
		}
	}
	if !t.nextConnected.equal(t.connected) {
		t.connected = t.nextConnected
		t.recomputeLearned()
	}
	t.nextConnected = nil
}

// mayDelete: a route of ours that is not desired is deleted only once its
// class is in sync, so a restart never removes live routes before the
// desired state has been stated again.
func (t *Table) mayDelete(r *kernel.Route) bool {
	if t.synced[classOf(r)] {
		return true
	}
	_, ok := t.removed[r.Dst]
	return ok
}

// Apply writes the pending differences to the kernel in one batch.
func (t *Table) Apply() error {
	if t.tracker.NumPendingUpdates() == 0 && t.tracker.NumPendingDeletes() == 0 {
		return nil
	}
	ops := t.ops[:0]
	for _, r := range t.tracker.PendingDeletes() {
		if t.mayDelete(&r) {
			// Deleting with our protocol set: the kernel will not match a
			// foreign route even if one took this destination meanwhile.
			ops = append(ops, kernel.RouteOp{Kind: kernel.OpDelete, Route: kernel.Route{
				Dst: r.Dst, Priority: r.Priority, Protocol: t.proto}})
		}
	}
	for _, u := range t.tracker.PendingUpdates() {
		kind := kernel.OpAdd
		if u.InDataplane {
			kind = kernel.OpReplace
		}
		ops = append(ops, kernel.RouteOp{Kind: kind, Route: u.Desired})
	}
	t.ops = ops
	if len(ops) == 0 {
		return nil
	}
	return t.write(ops)
}

// applyChunk is how many ops go to the kernel per RouteApply call in a
// large apply. The kernel's work on one chunk overlaps felix's bookkeeping
// of the previous one (a node has at least two cores).
const applyChunk = 4096

type chunkResult struct {
	start int
	errs  []error
}

// write sends ops to the kernel and records the outcome; large writes are
// pipelined in chunks. Only this goroutine touches the tracker; the
// writer goroutine only reads ops.
func (t *Table) write(ops []kernel.RouteOp) error {
	if len(ops) <= applyChunk {
		return t.record(ops, t.k.RouteApply(ops))
	}
	results := make(chan chunkResult, 2)
	go func() {
		defer close(results)
		for start := 0; start < len(ops); start += applyChunk {
			end := min(start+applyChunk, len(ops))
			results <- chunkResult{start: start, errs: t.k.RouteApply(ops[start:end])}
		}
	}()
	var errs []error
	for r := range results {
		if err := t.record(ops[r.start:r.start+len(r.errs)], r.errs); err != nil && len(errs) < maxReportedErrors {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func linkGone(err error) bool {
	return errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENETDOWN)
}

func unreachable(err error) bool {
	return errors.Is(err, unix.ENETUNREACH) || errors.Is(err, unix.EHOSTUNREACH)
}

// maxReportedErrors bounds the error returned by Apply.
const maxReportedErrors = 5

func (t *Table) record(ops []kernel.RouteOp, errs []error) error {
	var failed []error
	nFailed := 0
	for i := range ops {
		op, err := &ops[i], errs[i]
		k := keyOf(op.Route.Dst, op.Route.Priority)
		switch {
		case err == nil && op.Kind == kernel.OpDelete:
			t.tracker.DeleteActual(k)
			delete(t.removed, op.Route.Dst)
		case err == nil:
			t.tracker.SetActual(k, op.Route)
		case op.Kind == kernel.OpDelete && errors.Is(err, unix.ESRCH):
			t.tracker.DeleteActual(k)
			delete(t.removed, op.Route.Dst)
		case op.Route.LinkIndex != 0 && linkGone(err):
			// The link went away after it was resolved; its change event
			// (or a resync, asked for here in case the event was missed)
			// brings the route back. Not an error.
			t.forgetLink(op.Route.LinkIndex)
			t.needResync = true
		case unreachable(err):
			// A next hop not reachable yet: retried at the next resync,
			// reported quietly.
			t.needResync = true
			t.log.Debug("next hop not reachable yet", "prefix", op.Route.Dst, "err", err)
		default:
			// EEXIST means a foreign route appeared since the last dump:
			// reading back tells whose it is, and it is then left alone.
			t.needResync = true
			nFailed++
			if len(failed) < maxReportedErrors {
				failed = append(failed, err)
			}
		}
	}
	if nFailed == 0 {
		return nil
	}
	if nFailed > len(failed) {
		failed = append(failed, fmt.Errorf("and %d more route errors", nFailed-len(failed)))
	}
	return fmt.Errorf("apply %d route changes: %w", len(ops), errors.Join(failed...))
}

func (t *Table) forgetLink(index int) {
	name, ok := t.linkNames[index]
	if !ok {
		return
	}
	if l, ok := t.links[name]; ok && l.Index == index {
		delete(t.links, name)
	}
	t.recomputeAll(t.ifaces[name])
}

// ErrForeignRoute reports a destination held by a route of another protocol.
var ErrForeignRoute = errors.New("destination held by a route felix does not own")

// EndpointReady reports whether every host route of iface is in the kernel
// as desired. err is set when one of them cannot be installed without
// replacing a foreign route.
func (t *Table) EndpointReady(iface string, prefixes []netip.Prefix) (bool, error) {
	for _, p := range prefixes {
		p = p.Masked()
		if f, ok := t.conflicts[p]; ok && t.endpoints[p] == iface {
			return false, fmt.Errorf("host route %s for %s: %w (protocol %d)", p, iface, ErrForeignRoute, f.proto)
		}
		k := keyOf(p, priorityFor(p))
		if t.endpoints[p] != iface {
			return false, nil
		}
		if _, ok := t.tracker.Desired(k); !ok || !t.tracker.InSync(k) {
			return false, nil
		}
	}
	return true, nil
}

// EndpointGone reports whether none of prefixes is still routed to iface
// by felix.
func (t *Table) EndpointGone(iface string, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		p = p.Masked()
		if t.endpoints[p] == iface || !t.tracker.InSync(keyOf(p, priorityFor(p))) {
			return false
		}
	}
	return true
}

// Stats describes the table for logs and tests.
type Stats struct {
	Desired, Actual, PendingUpdates, PendingDeletes, Waiting, Conflicts, Suppressed int
}

// Stats returns current counts.
func (t *Table) Stats() Stats {
	return Stats{
		Desired:        t.tracker.NumDesired(),
		Actual:         t.tracker.NumActual(),
		PendingUpdates: t.tracker.NumPendingUpdates(),
		PendingDeletes: t.tracker.NumPendingDeletes(),
		Waiting:        len(t.waiting),
		Conflicts:      len(t.conflicts),
		Suppressed:     len(t.suppressed),
	}
}
