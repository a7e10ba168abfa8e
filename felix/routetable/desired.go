package routetable

import (
	"net/netip"

	"github.com/cairn-net/cairn/felix/kernel"
)

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
		delete(t.badHops, p)
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
	hops, why := t.usableHops(p, hops)
	if len(hops) == 0 {
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
