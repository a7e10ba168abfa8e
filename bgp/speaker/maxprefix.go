package speaker

import (
	"context"
	"net/netip"
	"time"

	"github.com/osrg/gobgp/v4/api"
)

// A session GoBGP shut down for exceeding Peer.MaxPrefixes stays
// administratively down (ADMIN_STATE_PFX_CT) until someone enables it. A
// misbehaving peer that recovers must not need an operator, so the runner
// enables it again after Options.MaxPrefixRestart, as FRR's "maximum-prefix
// N restart" and BIRD's "receive limit ... action restart" do; a peer that
// floods again is shut again.

// scheduleReenable notes a session shut for exceeding its prefix limit.
func (r *runner) scheduleReenable(a netip.Addr) {
	if _, ok := r.reenableAt[a]; ok {
		return
	}
	at := time.Now().Add(r.s.opts.MaxPrefixRestart)
	r.reenableAt[a] = at
	r.log.Warn("BGP session shut down for exceeding its maximum prefixes; it will be tried again",
		"peer", r.peerName(a), "address", a.String(), "after", r.s.opts.MaxPrefixRestart)
	r.armReenable()
}

// reenableDue enables the sessions whose idle time is over.
func (r *runner) reenableDue() {
	now := time.Now()
	for a, at := range r.reenableAt {
		if at.After(now) {
			continue
		}
		delete(r.reenableAt, a)
		if _, ok := r.peers[a]; !ok || r.srv == nil {
			continue
		}
		if err := r.srv.EnablePeer(context.Background(), &api.EnablePeerRequest{Address: a.String()}); err != nil {
			r.log.Warn("could not re-enable a session shut for exceeding its maximum prefixes", "peer", r.peerName(a), "err", err)
			continue
		}
		r.log.Info("re-enabled a session shut for exceeding its maximum prefixes", "peer", r.peerName(a), "address", a.String())
	}
	r.armReenable()
}

// armReenable sets the timer to the earliest pending re-enable.
func (r *runner) armReenable() {
	if r.reenable != nil {
		r.reenable.Stop()
		r.reenable = nil
	}
	var next time.Time
	for _, at := range r.reenableAt {
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
	return a.String()
}
