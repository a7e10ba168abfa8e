package routetable

import (
	"fmt"

	"github.com/cairn-net/cairn/felix/kernel"
)

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

func isConnected(r *kernel.Route) bool {
	return r.Protocol == kernel.ProtoKernel && isDeviceRoute(r)
}

// isDeviceRoute reports a route that makes its addresses directly
// reachable on a link, whoever wrote it: what the kernel needs to accept
// one of them as a gateway.
func isDeviceRoute(r *kernel.Route) bool {
	return r.Type == kernel.TypeUnicast && len(r.NextHops) == 0 && r.LinkIndex != 0
}

// beginAbsorb starts (or, after an interrupted dump, restarts) reading
// the routes back.
func (t *Table) beginAbsorb() {
	t.nextForeign = make(map[key]foreignRoute, len(t.foreign))
	t.nextConnected = newPrefixSet()
	t.nextOnLink = newPrefixSet()
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
	if isDeviceRoute(r) {
		t.nextOnLink.add(r.Dst)
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
	// Which learned routes hide a connected route, and which next hops
	// are reachable, depend on the device routes.
	if !t.nextConnected.equal(t.connected) || !t.nextOnLink.equal(t.onLink) || !t.onLinkKnown {
		t.connected, t.onLink, t.onLinkKnown = t.nextConnected, t.nextOnLink, true
		t.recomputeLearned()
	}
	t.nextConnected, t.nextOnLink = nil, nil
}
