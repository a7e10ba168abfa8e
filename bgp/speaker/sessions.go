package speaker

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// peerStatus is what the owner tracks per applied peer from GoBGP events.
type peerStatus struct {
	state        SessionState
	lastError    string
	grNegotiated bool
	// staleUntil is when the paths of a session that went down with
	// graceful restart stop being used (Peer.MaxRestartTime); zero when
	// not bounded or the session is up.
	staleUntil time.Time
	eor        map[bgp.Family]bool
	// flaps counts the times the session left Established.
	flaps uint64
	// holdExpired: the session was ended for its expired hold timer
	// (gone.go); GoBGP's report of it going down, which calls it a
	// graceful restart, must not replace that reason.
	holdExpired bool
}

// applyPeers removes, re-creates and adds neighbours. A failed delete is not
// retried: GoBGP only fails it for a peer it does not have.
func (r *runner) applyPeers(d desired) []error {
	pl := diffPeers(r.withoutHeldDown(d.peers), r.peers)
	for _, a := range pl.Remove {
		delete(r.held, a)
		r.removePeer(a)
	}
	for _, a := range pl.Replace {
		r.holdPaths(a)
		r.carryFlaps(a)
		r.removePeer(a)
	}
	local := r.peerLocal()
	var errs []error
	for _, a := range slices.Concat(pl.Add, pl.Replace) {
		if err := r.addPeer(a, d.peers[a], local); err != nil {
			errs = append(errs, err)
		}
	}
	if r.synced {
		// The initial sync timed out before the first SetAdvertisements:
		// the peers just added were the restart's, later ones are not.
		r.endRestart()
	}
	return errs
}

// peerLocal is what a neighbour added now needs of the speaker's settings.
func (r *runner) peerLocal() peerLocal {
	gr := r.global.GracefulRestart
	return peerLocal{asn: r.global.ASN, routerID: r.s.opts.RouterID, gr: &gr,
		restarting: r.restarting, deferral: time.Until(r.syncDeadline)}
}

// endRestartIfPeersAdded ends the restart when the initial sync is over,
// unless the restart's peers are still to be added (no SetAdvertisements
// yet, so no session was opened): applyPeers ends it then.
func (r *runner) endRestartIfPeersAdded() {
	if r.last.adsSet {
		r.endRestart()
	}
}

// endRestart makes peers added from now on ordinary new sessions. The
// restart's sessions keep claiming forwarding state until GoBGP ends their
// deferral: End-of-RIB from every peer, or the deferral time, which ends
// with the initial sync's deadline.
func (r *runner) endRestart() {
	if !r.restarting {
		return
	}
	r.restarting = false
	r.log.Info("restart over: peers added from now on claim no forwarding state")
}

// removePeer deletes the neighbour at a from GoBGP and forgets it.
func (r *runner) removePeer(a netip.Addr) {
	ctx := context.Background()
	old := r.peers[a]
	if err := r.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: a.String()}); err != nil {
		r.log.Warn("GoBGP did not have the peer being removed", "peer", old.displayName(), "address", a.String(), "err", err)
	}
	delete(r.peers, a)
	delete(r.status, a)
	delete(r.heldDown, a) // a re-created peer starts enabled
	r.log.Info("removed BGP peer", "peer", old.displayName(), "address", a.String())
}

// addPeer adds p (at a) to GoBGP with a fresh status; a failure is kept in
// the status, redacted, for PeerStates.
func (r *runner) addPeer(a netip.Addr, p Peer, local peerLocal) error {
	ctx := context.Background()
	st := &peerStatus{state: StateIdle, eor: map[bgp.Family]bool{}, flaps: r.carriedFlaps[a]}
	delete(r.carriedFlaps, a)
	if old := r.status[a]; old != nil {
		st.flaps, st.lastError = old.flaps, old.lastError // back from a hold-down
	}
	r.status[a] = st
	if err := r.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: toAPIPeer(p, local)}); err != nil {
		err = fmt.Errorf("add peer %s (%s): %w", p.displayName(), a, err)
		st.lastError = r.s.secrets.redact(err.Error())
		return err
	}
	r.peers[a] = p
	r.log.Info("added BGP peer", "peer", p.displayName(), "address", a.String(), "peerASN", p.ASN,
		"md5", p.Password != "", "ttlSecurity", p.TTLSecurity, "ebgpMultihop", p.EBGPMultihop,
		"holdTime", p.HoldTime, "bfdDetection", p.BFD.DetectionTime(), "maxPrefixes", p.MaxPrefixes, "rrClient", p.RouteReflectorClient,
		"passive", p.Passive, "claimsForwardingState", local.restarting && grEnabled(local.gr))
	return nil
}

// handleEvents applies what GoBGP reported since the last look.
func (r *runner) handleEvents() {
	b := r.s.inbox.take()
	for _, ev := range b.events {
		switch {
		case ev.peer != nil:
			r.onPeerEvent(*ev.peer)
		case ev.holdExpired != nil:
			r.onHoldExpired(*ev.holdExpired)
		case ev.eor != nil:
			if st := r.status[ev.eor.Addr]; st != nil {
				st.eor[ev.eor.Family] = true
				r.log.Debug("End-of-RIB received", "address", ev.eor.Addr.String(), "family", ev.eor.Family.String())
			}
		}
	}
	if b.ribChanged || len(r.held) > 0 {
		r.learnedDirty = true
	}
	r.checkSync()
}

func (r *runner) onPeerEvent(ev peerEvent) {
	st := r.status[ev.Addr]
	if st == nil {
		return // a peer we have since removed
	}
	if _, held := r.heldDown[ev.Addr]; held {
		return // its removal's events: the status says max-prefix
	}
	prev := st.state
	st.state = ev.State
	if prev == StateEstablished && ev.State != StateEstablished {
		st.flaps++
		r.noteStale(ev.Addr, st, ev.At)
	}
	if ev.State == StateEstablished {
		st.grNegotiated = ev.GRNegotiated
		st.eor = map[bgp.Family]bool{}
		st.holdExpired = false
	} else if ev.State == StateIdle && ev.Reason != "" && !st.holdExpired {
		// GoBGP drops every failed or torn-down session to Idle.
		st.lastError = r.s.secrets.redact(ev.Reason)
		if ev.Reason == maxPrefixReason {
			r.holdDown(ev.Addr)
		}
	}
	if prev == ev.State {
		return
	}
	name := ev.Addr.String()
	if p, ok := r.peers[ev.Addr]; ok {
		name = p.displayName()
	}
	attrs := []any{"peer", name, "address", ev.Addr.String(), "from", string(prev), "to", string(ev.State)}
	if ev.Reason != "" {
		attrs = append(attrs, "reason", ev.Reason)
	}
	if ev.State == StateEstablished || prev == StateEstablished {
		r.log.Info("BGP session state changed", attrs...)
	} else {
		r.log.Debug("BGP session state changed", attrs...)
	}
}

// checkSync ends the initial sync once SetPeers and SetAdvertisements have
// been called, every desired peer is configured and Established, and every
// peer that negotiated graceful restart has sent End-of-RIB.
func (r *runner) checkSync() {
	if r.synced || !r.last.peersSet || !r.last.adsSet || len(r.peers) != len(r.withoutHeldDown(r.last.peers)) {
		return
	}
	for a := range r.peers {
		st := r.status[a]
		if st == nil || st.state != StateEstablished {
			return
		}
		for _, f := range sessionFamilies(r.peers[a]) {
			if st.grNegotiated && !st.eor[f] {
				return
			}
		}
	}
	r.synced, r.learnedDirty = true, true
	r.syncTimer.Stop()
	r.log.Info("initial sync done", "peers", len(r.peers))
	r.endRestartIfPeersAdded()
}
