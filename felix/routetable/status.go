package routetable

import (
	"errors"
	"fmt"
	"net/netip"
)

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

// Installed is the number of routes of class c in the kernel, as last
// written or read back.
func (t *Table) Installed(c Class) int { return t.tracker.NumActualIn(int(c)) }
