package speaker

import (
	"net/netip"
	"testing"
	"time"
)

// TestNetnsIPv6OverIPv4 runs two dual-stack speakers with one IPv4 session
// between them that carries both families (MP-BGP, RFC 4760): IPv6 blocks
// arrive with the sender's IPv6 address as next hop, never an IPv4-mapped
// one, and IPv4 blocks as before. eBGP, so the next hop is the one a
// router would install.
func TestNetnsIPv6OverIPv4(t *testing.T) {
	requirePrivileged(t)
	nsA, nsB := newNetns(t), newNetns(t)
	vethPair(t,
		end{netns: nsA, dev: "eth-a", addrs: []string{"10.89.0.1/30", "fd00:89::1/64"}},
		end{netns: nsB, dev: "eth-b", addrs: []string{"10.89.0.2/30", "fd00:89::2/64"}})
	cfg := func(v4, v6 string, asn uint32) helperConfig {
		return helperConfig{RouterID: netip.MustParseAddr(v4), ASN: asn, ListenPort: 179, InitialSyncTimeout: 20 * time.Second,
			NextHop4: netip.MustParseAddr(v4), NextHop6: netip.MustParseAddr(v6)}
	}
	pools := []string{"10.244.0.0/16", "fd00:10:244::/48"}
	a := startSpeaker(t, "A", nsA, cfg("10.89.0.1", "fd00:89::1", 64512))
	b := startSpeaker(t, "B", nsB, cfg("10.89.0.2", "fd00:89::2", 64513))
	a.SetFilter(t, pools...)
	b.SetFilter(t, pools...)
	a.SetPeers(t, Peer{Name: "B", Address: netip.MustParseAddr("10.89.0.2"), ASN: 64513, BothFamilies: true, HoldTime: 9 * time.Second})
	b.SetPeers(t, Peer{Name: "A", Address: netip.MustParseAddr("10.89.0.1"), ASN: 64512, BothFamilies: true, HoldTime: 9 * time.Second})
	a.SetAds(t, "10.244.0.0/26", "fd00:10:244::/122")
	b.SetAds(t, "fd00:10:244::40/122")

	a.WaitEstablished(t, sessionTimeout)
	b.WaitLearned(t, "A's blocks of both families over one IPv4 session", sessionTimeout, exactly(
		"10.244.0.0/26 via 10.89.0.1",
		"fd00:10:244::/122 via fd00:89::1",
	))
	a.WaitLearned(t, "B's IPv6 block over the IPv4 session", sessionTimeout, exactly("fd00:10:244::40/122 via fd00:89::2"))

	a.SetAds(t, "10.244.0.0/26")
	b.WaitLearned(t, "the IPv6 block withdrawn over the IPv4 session", sessionTimeout, exactly("10.244.0.0/26 via 10.89.0.1"))
}
