package speaker

import (
	"net/netip"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// TestMaxRestartTimeBoundsStalePaths: a raw peer that negotiated graceful
// restart with a restart time of 120 s announces a block and closes its
// connection (a restart). With the peer's MaxRestartTime at 2 s the block
// leaves Learned() about 2 s later, not 120 s; it was kept, stale, until
// then. Loopback, no root.
func TestMaxRestartTimeBoundsStalePaths(t *testing.T) {
	if testing.Short() {
		t.Skip("real BGP sessions over loopback (tens of seconds); skipped with -short")
	}
	const maxRestart = 2 * time.Second
	port := freeLoopbackPort(t)
	a := startSpeaker(t, "A", "", helperConfig{RouterID: netip.MustParseAddr("10.0.0.1"), ASN: 64512, ListenPort: port,
		ListenAddresses: []string{"127.0.0.1"}, GracefulRestart: &GROptions{Enabled: true}, InitialSyncTimeout: 5 * time.Second})
	a.SetFilter(t, "10.244.0.0/16")
	tor := netip.MustParseAddr("127.0.0.9")
	a.SetPeers(t, Peer{Name: "tor", Address: tor, ASN: 65001, Passive: true, MaxRestartTime: maxRestart})
	a.SetAds(t, "10.244.1.0/26")
	block := "10.244.9.0/26 via " + tor.String()

	p := dialRawOpen(t, tor, port, rawOpen{asn: 65001, holdTime: 90, grRestartTime: 120})
	stop := p.keepalives(time.Second)
	t.Cleanup(stop)
	pfx, _ := bgp.NewIPAddrPrefix(netip.MustParsePrefix("10.244.9.0/26"))
	p.send(p.encode(bgp.NewBGPUpdateMessage(nil, rawAttrs(tor), []bgp.PathNLRI{{NLRI: pfx}})))
	p.send(p.encode(bgp.NewBGPUpdateMessage(nil, nil, nil))) // End-of-RIB
	a.WaitLearned(t, "the peer's block", sessionTimeout, exactly(block))

	stop()
	p.conn.Close()
	closed := time.Now()
	a.WaitStates(t, "session down", sessionTimeout, func(st []PeerState) bool { return st[0].State != StateEstablished })
	a.HoldsLearned(t, "the restarting peer's block kept, stale", maxRestart/2, exactly(block))
	a.WaitLearned(t, "the stale block dropped at the peer's maxRestartTime", sessionTimeout, exactly())
	gone := time.Since(closed)
	t.Logf("stale block dropped %v after the peer closed its connection (maxRestartTime %v; the peer announced 120 s)", gone.Round(10*time.Millisecond), maxRestart)
	if gone < maxRestart {
		t.Errorf("dropped after %v, before maxRestartTime %v", gone, maxRestart)
	}
}
