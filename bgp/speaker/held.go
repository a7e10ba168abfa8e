package speaker

import (
	"net/netip"
	"time"
)

// A session re-created because its own settings changed (password, port,
// peer AS, timers, graceful restart) loses its paths in GoBGP the moment
// the old neighbour is deleted, though the peer still forwards for them.
// With graceful restart the runner keeps using them, as a graceful-restart
// helper keeps a restarting peer's routes: until the new session is
// Established and has sent End-of-RIB (or came back without graceful
// restart), at most for the restart time. The dataplane sees no change.

// heldPaths are a re-created session's paths from before.
type heldPaths struct {
	cands []candidate
	until time.Time
}

// holdPaths keeps the paths the neighbour at a has in the RIB now; call it
// just before the neighbour is deleted to be re-created.
func (r *runner) holdPaths(a netip.Addr) {
	if !r.global.GracefulRestart.Enabled || r.srv == nil {
		return
	}
	cands, err := r.candidates()
	if err != nil {
		r.log.Warn("could not read the RIB: the paths of a re-created session are not kept meanwhile", "address", a.String(), "err", err)
		return
	}
	var kept []candidate
	for _, c := range cands {
		if c.Peer == a && !c.Unusable {
			c.Stale = true
			kept = append(kept, c)
		}
	}
	if len(kept) == 0 {
		return
	}
	r.held[a] = heldPaths{cands: kept, until: time.Now().Add(r.global.GracefulRestart.RestartTime)}
	r.armHeld()
}

// heldCandidates drops what is no longer held (the session is back, or the
// time is over) and returns the rest.
func (r *runner) heldCandidates() []candidate {
	now := time.Now()
	var out []candidate
	for a, h := range r.held {
		st := r.status[a]
		back := st != nil && st.state == StateEstablished && (!st.grNegotiated || st.eor[familyOf(a)])
		if back || !now.Before(h.until) {
			delete(r.held, a)
			continue
		}
		out = append(out, h.cands...)
	}
	r.armHeld()
	return out
}

// armHeld sets the timer to the earliest end of a hold.
func (r *runner) armHeld() {
	if r.heldTimer != nil {
		r.heldTimer.Stop()
		r.heldTimer = nil
	}
	var next time.Time
	for _, h := range r.held {
		if next.IsZero() || h.until.Before(next) {
			next = h.until
		}
	}
	if !next.IsZero() {
		r.heldTimer = time.NewTimer(time.Until(next))
	}
}

func (r *runner) heldC() <-chan time.Time {
	if r.heldTimer == nil {
		return nil
	}
	return r.heldTimer.C
}

// carryFlaps keeps the flap count of the session at a, which is about to be
// taken down, for the neighbour that replaces it.
func (r *runner) carryFlaps(a netip.Addr) {
	st := r.status[a]
	if st == nil {
		return
	}
	n := st.flaps
	if st.state == StateEstablished {
		n++
	}
	r.carriedFlaps[a] = n
}
