package speaker

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"time"

	"github.com/osrg/gobgp/v4/api"
)

// A session GoBGP shuts for exceeding Peer.MaxPrefixes would stay
// administratively down (ADMIN_STATE_PFX_CT) until someone enables it, and
// GoBGP takes the connection it closed for a failure: with graceful
// restart, the peer's paths would stay, stale and installed, for the
// restart time. Neither is right for a misbehaving peer. The runner
// removes the peer from GoBGP at once, which drops its paths (the effect
// of an RFC 8538 Hard Reset), and adds it again after
// Options.MaxPrefixRestart, as FRR's "maximum-prefix N restart" and BIRD's
// "receive limit ... action restart" do; a peer that floods again is shut
// again. The idle time is Global.MaxPrefixRestart (SetGlobal, live), else
// Options.MaxPrefixRestart.

// holdDown removes a peer GoBGP shut for exceeding its prefix limit and
// notes when to add it back. Its status (the reason, the flaps) is kept.
func (r *runner) holdDown(a netip.Addr) {
	if _, ok := r.heldDown[a]; ok {
		return
	}
	if r.srv == nil {
		return // no server: nothing to shut
	}
	p := r.peers[a]
	delete(r.held, a) // nor any path it had before a re-creation
	if err := r.srv.DeletePeer(context.Background(), &api.DeletePeerRequest{Address: a.String()}); err != nil {
		r.log.Warn("could not remove a peer shut for exceeding its maximum prefixes", "peer", p.displayName(), "err", err)
	}
	delete(r.peers, a)
	idle := r.maxPrefixRestart()
	at := time.Now().Add(idle)
	if st := r.status[a]; st != nil {
		st.state, st.lastError = StateIdle, maxPrefixDetail(p.MaxPrefixes, at, idle)
	}
	r.heldDown[a] = at
	r.learnedDirty = true
	r.log.Warn("BGP session shut down for exceeding its maximum prefixes; its routes are dropped and it will be tried again",
		"peer", p.displayName(), "address", a.String(), "maxPrefixes", p.MaxPrefixes, "after", idle)
	r.armReenable()
}

// maxPrefixDetail is the LastError of a session held down: the limit it
// went over and when it is tried again, for the operator reading the
// status.
func maxPrefixDetail(limit uint32, retry time.Time, idle time.Duration) string {
	over := ""
	if limit > 0 {
		over = fmt.Sprintf(" (more than %d prefixes of one address family)", limit)
	}
	return fmt.Sprintf("%s%s: session shut down (Cease), tried again at %s (idle time %s)",
		ReasonMaxPrefixes, over, retry.UTC().Format("15:04:05 UTC"), idle)
}

// reenableDue ends the hold-down of the peers whose idle time is over;
// the reconcile that follows adds them again.
func (r *runner) reenableDue() {
	now := time.Now()
	for a, at := range r.heldDown {
		if at.After(now) {
			continue
		}
		delete(r.heldDown, a)
		r.log.Info("trying again a session shut for exceeding its maximum prefixes", "peer", r.peerName(a), "address", a.String())
	}
	r.armReenable()
	r.reconcile()
}

// withoutHeldDown is the desired peers less those held down.
func (r *runner) withoutHeldDown(peers map[netip.Addr]Peer) map[netip.Addr]Peer {
	if len(r.heldDown) == 0 {
		return peers
	}
	out := maps.Clone(peers)
	for a := range r.heldDown {
		delete(out, a)
	}
	return out
}

// armReenable sets the timer to the earliest pending hold-down end.
func (r *runner) armReenable() {
	if r.reenable != nil {
		r.reenable.Stop()
		r.reenable = nil
	}
	var next time.Time
	for _, at := range r.heldDown {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	if !next.IsZero() {
		r.reenable = time.NewTimer(time.Until(next))
	}
}

func (r *runner) reenableC() <-chan time.Time {
	if r.reenable == nil {
		return nil
	}
	return r.reenable.C
}

func (r *runner) peerName(a netip.Addr) string {
	if p, ok := r.peers[a]; ok {
		return p.displayName()
	}
	if p, ok := r.last.peers[a]; ok {
		return p.displayName()
	}
	return a.String()
}
