package speaker

import (
	"net/netip"
	"testing"

	"github.com/osrg/gobgp/v4/api"
)

// A session's BFD state in PeerState: GoBGP's, when the peer runs BFD.
func TestPeerStateBFD(t *testing.T) {
	r := idleRunner(t)
	addr := netip.MustParseAddr("10.0.0.2")
	withBFD := Peer{Address: addr, ASN: 65001, BFD: BFD{Enabled: true}}
	gobgp := func(s api.BfdSessionState) *api.Peer {
		return &api.Peer{State: &api.PeerState{BfdState: &api.BfdPeerState{SessionState: s}}}
	}
	for _, tc := range []struct {
		name string
		peer Peer
		ap   *api.Peer
		want BFDState
	}{
		{"no BFD", Peer{Address: addr, ASN: 65001}, gobgp(api.BfdSessionState_BFD_SESSION_STATE_UP), ""},
		{"up", withBFD, gobgp(api.BfdSessionState_BFD_SESSION_STATE_UP), BFDUp},
		{"init", withBFD, gobgp(api.BfdSessionState_BFD_SESSION_STATE_INIT), BFDInit},
		{"down", withBFD, gobgp(api.BfdSessionState_BFD_SESSION_STATE_DOWN), BFDDown},
		{"admin down", withBFD, gobgp(api.BfdSessionState_BFD_SESSION_STATE_ADMIN_DOWN), BFDAdminDown},
		{"unspecified", withBFD, gobgp(api.BfdSessionState_BFD_SESSION_STATE_UNSPECIFIED), BFDDown},
		{"no state from GoBGP", withBFD, &api.Peer{State: &api.PeerState{}}, BFDDown},
		{"not in GoBGP (held down, or not added yet)", withBFD, nil, BFDDown},
	} {
		if got := r.peerState(addr, tc.peer, tc.ap, true).BFD; got != tc.want {
			t.Errorf("%s: BFD %q, want %q", tc.name, got, tc.want)
		}
	}
}
