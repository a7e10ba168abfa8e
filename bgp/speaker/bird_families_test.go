package speaker

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cairn-net/cairn/internal/testenv"
)

// birdBothFamiliesConf makes BIRD a router at 10.89.0.2 / fd00:89::2
// (AS 65001) with one IPv4 session, MD5-signed, carrying IPv4 and IPv6
// unicast. It announces a pool block of each family.
const birdBothFamiliesConf = `
log stderr all;
router id 10.89.0.2;
protocol device { }
protocol static tor4 { ipv4; route 10.244.7.0/26 blackhole; }
protocol static tor6 { ipv6; route fd00:10:244:7::/122 blackhole; }
protocol bgp cairn {
	local 10.89.0.2 as 65001;
	neighbor 10.89.0.1 as 65000;
	password "%s";
	hold time 9;
	ipv4 { import all; export where proto = "tor4"; };
	ipv6 { import all; export where proto = "tor6"; next hop address fd00:89::2; };
}
`

// TestBirdIPv6OverIPv4 peers a dual-stack speaker with BIRD over a single
// IPv4 session (MD5) that carries both families (Peer.BothFamilies): our
// IPv6 block reaches BIRD with our IPv6 address as next hop, BIRD's IPv6
// block reaches us with its IPv6 address, and a withdrawal travels too.
func TestBirdIPv6OverIPv4(t *testing.T) {
	requirePrivileged(t, testenv.Binary("bird"), testenv.Binary("birdc"))
	const password = "bird-MP-BGP-Secret-3"
	nsA, nsB := newNetns(t), newNetns(t)
	vethPair(t,
		end{netns: nsA, dev: "eth-node", addrs: []string{"10.89.0.1/30", "fd00:89::1/64"}},
		end{netns: nsB, dev: "eth-tor", addrs: []string{"10.89.0.2/30", "fd00:89::2/64"}})
	bird := startBird(t, nsB, fmt.Sprintf(birdBothFamiliesConf, password))
	sp := startSpeaker(t, "node", nsA, helperConfig{RouterID: netip.MustParseAddr("10.89.0.1"), ASN: 65000, ListenPort: 179,
		InitialSyncTimeout: 20 * time.Second, NextHop4: netip.MustParseAddr("10.89.0.1"), NextHop6: netip.MustParseAddr("fd00:89::1")})
	sp.SetFilter(t, "10.244.0.0/16", "fd00:10:244::/48")
	sp.SetPeers(t, Peer{Name: "tor", Address: netip.MustParseAddr("10.89.0.2"), ASN: 65001, Password: password,
		HoldTime: 9 * time.Second, BothFamilies: true})
	sp.SetAds(t, "10.244.0.0/26", "fd00:10:244::/122")

	sp.WaitEstablished(t, 60*time.Second)
	out := bird.waitFor(t, "our IPv6 block at BIRD, via our IPv6 address", sessionTimeout, func(out string) bool {
		return strings.Contains(out, "fd00:10:244::/122") && strings.Contains(out, "BGP.next_hop: fd00:89::1")
	}, "show", "route", "protocol", "cairn", "all")
	if strings.Contains(out, "::ffff:") {
		t.Errorf("an IPv4-mapped next hop reached BIRD:\n%s", out)
	}
	bird.waitFor(t, "our IPv4 block at BIRD", sessionTimeout, func(out string) bool {
		return strings.Contains(out, "10.244.0.0/26") && strings.Contains(out, "BGP.next_hop: 10.89.0.1")
	}, "show", "route", "protocol", "cairn", "all")
	sp.WaitLearned(t, "BIRD's blocks of both families", sessionTimeout, exactly(
		"10.244.7.0/26 via 10.89.0.2",
		"fd00:10:244:7::/122 via fd00:89::2",
	))

	sp.SetAds(t, "10.244.0.0/26")
	bird.waitFor(t, "our IPv6 block withdrawn at BIRD", sessionTimeout, func(out string) bool {
		return !strings.Contains(out, "fd00:10:244::/122") && strings.Contains(out, "10.244.0.0/26")
	}, "show", "route", "protocol", "cairn")
	mustNotContain(t, password, map[string]string{"speaker logs": sp.logs.String()})
}
