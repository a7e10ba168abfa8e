package speaker

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/osrg/gobgp/v4/api"
)

// peerStates answers PeerStates from GoBGP's view plus tracked errors.
func (r *runner) peerStates() []PeerState {
	d := r.s.snapshot()
	got := r.goBGPPeers()
	out := make([]PeerState, 0, len(d.peers))
	for _, addr := range slices.SortedFunc(maps.Keys(d.peers), netip.Addr.Compare) {
		out = append(out, r.peerState(addr, d.peers[addr], got[addr], d.adsSet))
	}
	return out
}

// goBGPPeers is GoBGP's view of its neighbours, by address; empty (and
// logged) when GoBGP cannot list them.
func (r *runner) goBGPPeers() map[netip.Addr]*api.Peer {
	got := map[netip.Addr]*api.Peer{}
	if r.srv == nil {
		return got // a restart failed; the retry starts a server
	}
	err := r.srv.ListPeer(context.Background(), &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		if p.Conf == nil {
			return
		}
		if a, err := netip.ParseAddr(p.Conf.NeighborAddress); err == nil {
			got[a.Unmap()] = p
		}
	})
	if err != nil {
		r.log.Warn("could not list GoBGP peers", "err", err)
	}
	return got
}

// peerState combines a desired peer, GoBGP's view of it (ap, nil when
// GoBGP does not have it) and the error tracked for it.
func (r *runner) peerState(addr netip.Addr, p Peer, ap *api.Peer, adsSet bool) PeerState {
	ps := PeerState{Name: p.displayName(), Address: addr, ASN: p.ASN, State: StateIdle}
	if ap != nil {
		fillFromGoBGP(&ps, ap)
	}
	if st := r.status[addr]; st != nil {
		ps.LastError = st.lastError
		ps.Flaps = st.flaps
	}
	ps.BFD = bfdState(p, ap)
	if ap != nil && ap.State != nil && ap.State.AdminState == api.PeerState_ADMIN_STATE_PFX_CT {
		ps.LastError = maxPrefixReason
	}
	ps.Accepted = r.accepted[addr]
	if !adsSet {
		ps.LastError = "session not opened yet: waiting for the first SetAdvertisements"
	}
	ps.LastError = r.s.secrets.redact(ps.LastError)
	return ps
}

// bfdState is the state of a peer's BFD from GoBGP's view of it: empty
// without BFD, Down while GoBGP has no session for it (a peer removed, or
// not added yet).
func bfdState(p Peer, ap *api.Peer) BFDState {
	if !p.BFD.Enabled {
		return ""
	}
	if ap == nil || ap.State == nil || ap.State.BfdState == nil {
		return BFDDown
	}
	switch ap.State.BfdState.SessionState {
	case api.BfdSessionState_BFD_SESSION_STATE_UP:
		return BFDUp
	case api.BfdSessionState_BFD_SESSION_STATE_INIT:
		return BFDInit
	case api.BfdSessionState_BFD_SESSION_STATE_ADMIN_DOWN:
		return BFDAdminDown
	}
	return BFDDown
}

// fillFromGoBGP copies GoBGP's session state, uptime and prefix counters.
func fillFromGoBGP(ps *PeerState, ap *api.Peer) {
	if ap.State != nil {
		ps.State = stateFromAPI(ap.State.SessionState)
	}
	if ps.State == StateEstablished && ap.Timers != nil && ap.Timers.State != nil && ap.Timers.State.Uptime != nil {
		ps.Uptime = time.Since(ap.Timers.State.Uptime.AsTime()).Truncate(time.Second)
	}
	for _, af := range ap.AfiSafis {
		if af.State != nil {
			ps.Received += af.State.Received
			ps.Advertised += af.State.Advertised
		}
	}
}
