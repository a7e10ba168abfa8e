package speaker

import (
	"net/netip"
	"testing"
	"time"
)

// TestReflectorsWithdrawADepartedClient: two route reflectors of one
// cluster (one cluster ID, as a rack's pair usually is), a client that
// announces a block and a client that learns it. The announcing client
// leaves the cluster (its sessions close with a Cease, both reflectors
// drop its paths at once): the other client must lose the block within
// seconds. Without SameCluster each reflector also held the block as
// reflected by the other (CLUSTER_LIST with their cluster ID): GoBGP
// neither ignores that copy on receipt (RFC 4456 section 8) nor, once the
// copy is its best path, withdraws from its clients what it sent them
// before, so the block stayed at the client for good (seen in 2 or 3 runs
// of 3; TestRouteReflectorsAtScale's 20-node lab kept a departed node's
// block at every node of its rack). Loopback, no root.
func TestReflectorsWithdrawADepartedClient(t *testing.T) {
	if testing.Short() {
		t.Skip("real BGP sessions over loopback; skipped with -short")
	}
	port := freeLoopbackPort(t)
	const asn, cluster = 64512, "10.255.0.1"
	addr := func(i byte) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, 20 + i}) }
	r1, r2, c, d := addr(1), addr(2), addr(3), addr(4)
	start := func(name string, a netip.Addr) *speakerProc {
		return startPoolSpeaker(t, name, a, helperConfig{ASN: asn, ListenPort: port, GracefulRestart: &GROptions{Enabled: true}})
	}
	// Each speaker's sessions start from its own loopback address.
	reflector := func(a netip.Addr) bool { return a == r1 || a == r2 }
	peer := func(from netip.Addr, name string, a netip.Addr, client bool) Peer {
		p := Peer{Name: name, Address: a, ASN: asn, Port: uint16(port), SourceAddress: from}
		if client {
			p.RouteReflectorClient, p.RouteReflectorClusterID = true, cluster
		}
		// As peering.Peers makes them: each reflector takes only the
		// other's own routes.
		p.SameCluster = reflector(from) && reflector(a)
		return p
	}
	spR1, spR2, spC, spD := start("R1", r1), start("R2", r2), start("C", c), start("D", d)
	spR1.SetPeers(t, peer(r1, "r2", r2, false), peer(r1, "c", c, true), peer(r1, "d", d, true))
	spR2.SetPeers(t, peer(r2, "r1", r1, false), peer(r2, "c", c, true), peer(r2, "d", d, true))
	spC.SetPeers(t, peer(c, "r1", r1, false), peer(c, "r2", r2, false))
	spD.SetPeers(t, peer(d, "r1", r1, false), peer(d, "r2", r2, false))
	for _, sp := range []*speakerProc{spR1, spR2, spD} {
		sp.SetAds(t)
	}
	spC.SetAds(t, "10.244.3.0/26")
	block := "10.244.3.0/26 via " + c.String()
	spD.WaitLearned(t, "C's block, through both reflectors", sessionTimeout, exactly(block))
	for _, sp := range []*speakerProc{spR1, spR2} {
		sp.WaitEstablished(t, sessionTimeout)
	}

	left := time.Now()
	spC.call(t, helperCmd{Op: "leave"})
	spC.Stop(t)
	spD.WaitLearned(t, "C's block withdrawn", sessionTimeout, exactly())
	t.Logf("C's block left D %v after the reflectors dropped C", time.Since(left).Round(time.Millisecond))
}

// startPoolSpeaker starts a speaker of hc on loopback address a (its
// router ID and only listen address) importing the pool 10.244.0.0/16,
// with a 5 s initial sync.
func startPoolSpeaker(t *testing.T, name string, a netip.Addr, hc helperConfig) *speakerProc {
	hc.RouterID, hc.ListenAddresses, hc.InitialSyncTimeout = a, []string{a.String()}, 5*time.Second
	sp := startSpeaker(t, name, "", hc)
	sp.SetFilter(t, "10.244.0.0/16")
	return sp
}
