package speaker

import (
	"net/netip"
	"testing"
)

// idleRunner is a runner with no server: enough to feed it events and
// read its PeerStates.
func idleRunner(t *testing.T) *runner {
	t.Helper()
	sp, err := New(Options{RouterID: netip.MustParseAddr("10.0.0.1"), ASN: 64512})
	if err != nil {
		t.Fatal(err)
	}
	return sp.newRunner(instance{}, sp.snapshot().global)
}

// TestFlapsCountLeavingEstablished: only a transition out of Established
// is a flap; coming up, retrying and repeated events are not.
func TestFlapsCountLeavingEstablished(t *testing.T) {
	r := idleRunner(t)
	peer := netip.MustParseAddr("10.0.0.2")
	r.status[peer] = &peerStatus{state: StateIdle}
	for _, step := range []struct {
		to    SessionState
		flaps uint64
	}{
		{StateActive, 0}, {StateOpenSent, 0}, {StateEstablished, 0}, {StateEstablished, 0},
		{StateIdle, 1}, {StateActive, 1}, {StateEstablished, 1}, {StateOpenSent, 2},
		{StateIdle, 2},
	} {
		r.onPeerEvent(peerEvent{Addr: peer, State: step.to, Reason: "test"})
		if got := r.status[peer].flaps; got != step.flaps {
			t.Fatalf("after %s: %d flaps, want %d", step.to, got, step.flaps)
		}
	}
	if got := r.peerState(peer, Peer{Address: peer}, nil, true).Flaps; got != 2 {
		t.Errorf("PeerState.Flaps = %d, want 2", got)
	}
}
