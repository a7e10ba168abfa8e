package speaker

import (
	"net/netip"
	"time"
)

// Peer.MaxRestartTime bounds how long a peer's paths are used, stale,
// after its session went down with graceful restart negotiated. GoBGP
// keeps them for the restart time the peer announced, which the peer
// chooses; the runner stops using them at the shorter of the two, as
// BIRD's and FRR's per-neighbour restart time does on the helper side.

// noteStale starts the stale time of the peer at a, whose session just
// left Established with graceful restart negotiated.
func (r *runner) noteStale(a netip.Addr, st *peerStatus, now time.Time) {
	p, ok := r.peers[a]
	if !ok || !st.grNegotiated || p.MaxRestartTime <= 0 {
		return
	}
	st.staleUntil = now.Add(p.MaxRestartTime)
	r.armStale()
}

// staleExpired lists the peers whose stale paths are past their
// MaxRestartTime; they join the peers whose stale paths are not used.
func (r *runner) staleExpired(now time.Time, into map[netip.Addr]bool) {
	for a, st := range r.status {
		if !st.staleUntil.IsZero() && !now.Before(st.staleUntil) && st.state != StateEstablished {
			into[a] = true
		}
	}
}

// armStale sets the timer to the earliest stale time still to end.
func (r *runner) armStale() {
	if r.staleTimer != nil {
		r.staleTimer.Stop()
		r.staleTimer = nil
	}
	now := time.Now()
	var next time.Time
	for _, st := range r.status {
		if !st.staleUntil.IsZero() && st.staleUntil.After(now) && (next.IsZero() || st.staleUntil.Before(next)) {
			next = st.staleUntil
		}
	}
	if !next.IsZero() {
		r.staleTimer = time.NewTimer(time.Until(next))
	}
}

func (r *runner) staleC() <-chan time.Time {
	if r.staleTimer == nil {
		return nil
	}
	return r.staleTimer.C
}
