package speaker

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-net/cairn/internal/testenv"
)

// The interop tests peer two dual-stack speakers (AS 64512, a namespace
// each) with a real router of another implementation (AS 65001) as their
// top-of-rack: one IPv4 and one IPv6 session per node, all four TCP-MD5
// signed. Each router announces a pool route of each family
// (interopPool4, interopPool6) and accepts everything: a test router,
// which the speakers' own filters face.

const (
	interopPassword = "Interop-MD5-Secret-5"
	interopPool4    = "10.244.7.0/26"
	interopPool6    = "fd00:10:244:7::/122"
	interopTorAS    = 65001
	interopNodeAS   = 64512
	interopRouterID = "10.87.1.2"
)

// interopNode is one speaker and its link to the router: its own
// addresses, the router's on that link, and the blocks it announces.
type interopNode struct {
	name, v4, v6, tor4, tor6, block4, block6 string
	ns                                       string
	sp                                       *speakerProc
}

// interopRouter is a running router under test.
type interopRouter interface {
	// established counts its sessions in state Established.
	established() (int, error)
	// routeVia reports whether it holds prefix with next hop nh.
	routeVia(family, prefix, nh string) (bool, error)
	// withdrawPool4 stops announcing interopPool4.
	withdrawPool4(t *testing.T)
}

// interopImpl starts one implementation in a namespace, peered with nodes.
type interopImpl struct {
	name     string
	requires []testenv.Requirement
	start    func(t *testing.T, netns string, nodes []*interopNode) interopRouter
}

// interopImpls are the routers network teams run as ToRs, as Debian
// ships them: BIRD 2, FRR and gobgpd.
var interopImpls = []interopImpl{
	{"bird", []testenv.Requirement{testenv.Binary("bird"), testenv.Binary("birdc")}, startInteropBird},
	{"frr", []testenv.Requirement{testenv.Binary("/usr/lib/frr/bgpd"), testenv.Binary("/usr/lib/frr/zebra"), testenv.Binary("vtysh")}, startInteropFRR},
	{"gobgpd", []testenv.Requirement{testenv.Binary("gobgpd"), testenv.Binary("gobgp")}, startInteropGoBGPD},
}

// TestRouterInterop, against each of BIRD, FRR and gobgpd: four MD5
// sessions (two per family) establish; each node's blocks of both
// families reach the router with the node as next hop; the router's pool
// routes of both families reach both nodes with the router's address of
// the family; a wrong key keeps a node's sessions down and the right one
// brings them back; withdrawals travel both ways; the password is in no
// log of ours.
func TestRouterInterop(t *testing.T) {
	for _, impl := range interopImpls {
		t.Run(impl.name, func(t *testing.T) { testRouterInterop(t, impl) })
	}
}

func testRouterInterop(t *testing.T, impl interopImpl) {
	requirePrivileged(t, impl.requires...)
	nsTor := newNetns(t)
	nodes := []*interopNode{
		{name: "node1", v4: "10.87.1.1", v6: "fd00:87:1::1", tor4: "10.87.1.2", tor6: "fd00:87:1::2", block4: "10.244.1.0/26", block6: "fd00:10:244:1::/122"},
		{name: "node2", v4: "10.87.2.1", v6: "fd00:87:2::1", tor4: "10.87.2.2", tor6: "fd00:87:2::2", block4: "10.244.2.0/26", block6: "fd00:10:244:2::/122"},
	}
	for i, n := range nodes {
		n.ns = newNetns(t)
		vethPair(t,
			end{netns: n.ns, dev: "eth-tor", addrs: []string{n.v4 + "/30", n.v6 + "/64"}},
			end{netns: nsTor, dev: fmt.Sprintf("eth-n%d", i+1), addrs: []string{n.tor4 + "/30", n.tor6 + "/64"}})
	}
	tor := impl.start(t, nsTor, nodes)
	waitTor := func(t *testing.T, what string, cond func() (bool, error)) {
		t.Helper()
		deadline := time.Now().Add(sessionTimeout)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			ok, err := cond()
			if err == nil && ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s: not within %s (last error: %v)", impl.name, what, sessionTimeout, err)
			}
			<-tick.C
		}
	}

	peers := func(n *interopNode, key string) []Peer {
		return []Peer{
			{Name: "tor-v4", Address: netip.MustParseAddr(n.tor4), ASN: interopTorAS, Password: key, HoldTime: 9 * time.Second},
			{Name: "tor-v6", Address: netip.MustParseAddr(n.tor6), ASN: interopTorAS, Password: key, HoldTime: 9 * time.Second},
		}
	}
	pools := func(n *interopNode) func([]Path) bool {
		return exactly(interopPool4+" via "+n.tor4, interopPool6+" via "+n.tor6)
	}
	for _, n := range nodes {
		n.sp = startSpeaker(t, n.name, n.ns, helperConfig{RouterID: netip.MustParseAddr(n.v4), ASN: interopNodeAS, ListenPort: 179,
			InitialSyncTimeout: 20 * time.Second, NextHop4: netip.MustParseAddr(n.v4), NextHop6: netip.MustParseAddr(n.v6)})
		n.sp.SetFilter(t, "10.244.0.0/16", "fd00:10:244::/48")
		n.sp.SetPeers(t, peers(n, interopPassword)...)
		n.sp.SetAds(t, n.block4, n.block6)
	}
	begin := time.Now()

	t.Run("four MD5 sessions, two per family, establish", func(t *testing.T) {
		for _, n := range nodes {
			n.sp.WaitEstablished(t, 60*time.Second)
		}
		waitTor(t, "four sessions Established", func() (bool, error) {
			n, err := tor.established()
			return n == 4, err
		})
		t.Logf("%s: all four sessions Established %v after the speakers were configured", impl.name, time.Since(begin).Round(time.Millisecond))
	})

	t.Run("each node's blocks of both families at the router, the node as next hop", func(t *testing.T) {
		for _, n := range nodes {
			waitTor(t, n.name+"'s IPv4 block via "+n.v4, func() (bool, error) { return tor.routeVia("ipv4", n.block4, n.v4) })
			waitTor(t, n.name+"'s IPv6 block via "+n.v6, func() (bool, error) { return tor.routeVia("ipv6", n.block6, n.v6) })
		}
		t.Logf("%s: every block at the router %v after the speakers were configured", impl.name, time.Since(begin).Round(time.Millisecond))
	})

	t.Run("the router's pool routes of both families reach every node via the router", func(t *testing.T) {
		// The other node's blocks come back with AS path 65001 64512:
		// our own AS, so they are dropped as a loop.
		for _, n := range nodes {
			n.sp.WaitLearned(t, impl.name+"'s routes at "+n.name, sessionTimeout, pools(n))
		}
	})

	t.Run("a wrong MD5 key keeps both sessions down; the right one brings them back", func(t *testing.T) {
		n := nodes[0]
		n.sp.SetPeers(t, peers(n, "not-"+interopPassword)...)
		n.sp.WaitStates(t, "sessions re-created", sessionTimeout, func(st []PeerState) bool {
			return st[0].State != StateEstablished && st[1].State != StateEstablished
		})
		// Segments with a bad signature are dropped by the kernel, so there
		// is no event to wait for: watch a window of several connect retries.
		window := time.NewTimer(6 * time.Second)
		defer window.Stop()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for watching := true; watching; {
			if st := n.sp.States(t); slices.ContainsFunc(st, func(s PeerState) bool { return s.State == StateEstablished }) {
				t.Fatalf("established with the wrong MD5 key: %+v", st)
			}
			select {
			case <-window.C:
				watching = false
			case <-tick.C:
			}
		}
		n.sp.SetPeers(t, peers(n, interopPassword)...)
		n.sp.WaitEstablished(t, 60*time.Second)
		n.sp.WaitLearned(t, "relearned from "+impl.name, sessionTimeout, pools(n))
	})

	t.Run("withdrawals travel both ways", func(t *testing.T) {
		tor.withdrawPool4(t)
		for _, n := range nodes {
			n.sp.WaitLearned(t, impl.name+"'s IPv4 route withdrawn at "+n.name, sessionTimeout, exactly(interopPool6+" via "+n.tor6))
		}
		n := nodes[1]
		n.sp.SetAds(t, n.block4)
		waitTor(t, n.name+"'s IPv6 block gone", func() (bool, error) {
			held, err := tor.routeVia("ipv6", n.block6, n.v6)
			return !held, err
		})
	})

	t.Run("the password is nowhere in our logs", func(t *testing.T) {
		for _, n := range nodes {
			mustNotContain(t, interopPassword, map[string]string{n.name + " speaker logs": n.sp.logs.String()})
		}
	})
}

// interopSessions lists the router's sessions: each node's address of
// each family with the router's on that link.
func interopSessions(nodes []*interopNode) (out []struct{ family, local, peer string }) {
	for _, n := range nodes {
		out = append(out, struct{ family, local, peer string }{"ipv4", n.tor4, n.v4})
		out = append(out, struct{ family, local, peer string }{"ipv6", n.tor6, n.v6})
	}
	return out
}

// countLines counts the lines of out holding every one of words.
func countLines(out string, words ...string) int {
	n := 0
	for _, line := range strings.Split(out, "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			n++
		}
	}
	return n
}
