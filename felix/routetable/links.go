package routetable

import (
	"fmt"

	"github.com/cairn-net/cairn/felix/kernel"
)

// Links returns the links as last seen.
func (t *Table) Links() []kernel.Link {
	out := make([]kernel.Link, 0, len(t.links))
	for _, l := range t.links {
		out = append(out, l)
	}
	return out
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
