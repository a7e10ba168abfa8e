package speaker

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-net/cairn/internal/testenv"
)

// gobgpdTorConf makes Debian's gobgpd (GoBGP 3.10) a ToR in AS 65001 with
// an IPv4 and an IPv6 session, each MD5-signed and carrying its own
// family, to each of two nodes on links of their own. It accepts and
// sends everything: a test router, which the speakers' own filters face.
const gobgpdTorConf = `
[global.config]
  as = 65001
  router-id = "10.87.1.2"
`

const gobgpdNeighborConf = `
[[neighbors]]
  [neighbors.config]
    neighbor-address = %q
    peer-as = 64512
    auth-password = %q
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 9
    keepalive-interval = 3
  [neighbors.transport.config]
    local-address = %q
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = %q
`

// gobgpdRouter is a gobgpd process in a namespace, queried with the gobgp
// CLI there (its API listens on that namespace's loopback only).
type gobgpdRouter struct {
	netns string
	logs  *lockedBuffer
}

func startGoBGPD(t *testing.T, netns, conf string) *gobgpdRouter {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gobgpd.toml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &gobgpdRouter{netns: netns, logs: &lockedBuffer{}}
	cmd := exec.Command("ip", "netns", "exec", netns, "gobgpd", "-f", path, "-t", "toml", "-p",
		"--api-hosts", "127.0.0.1:50051", "--pprof-disable")
	cmd.Stdout, cmd.Stderr = g.logs, g.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start gobgpd: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("gobgpd (pid %d) did not die", cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("=== gobgpd logs ===\n%s", g.logs.String())
		}
	})
	g.waitFor(t, "gobgpd's API up", 20*time.Second, func(string) bool { return true }, "global")
	return g
}

func (g *gobgpdRouter) gobgp(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", g.netns, "gobgp", "-u", "127.0.0.1"}, args...)...).CombinedOutput()
	return string(out), err
}

func (g *gobgpdRouter) mustGoBGP(t *testing.T, args ...string) {
	t.Helper()
	if out, err := g.gobgp(args...); err != nil {
		t.Fatalf("gobgp %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// waitFor polls a gobgp command until cond holds on its output.
func (g *gobgpdRouter) waitFor(t *testing.T, what string, timeout time.Duration, cond func(string) bool, args ...string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		out, err := g.gobgp(args...)
		if err == nil && cond(out) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("gobgpd: %s: not within %s; gobgp %s: %v\n%s", what, timeout, strings.Join(args, " "), err, out)
		}
		<-tick.C
	}
}

// ribHas reports whether `gobgp global rib -j` output holds prefix with
// next hop nh, learned from neighbor nh.
func ribHas(out, prefix, nh string) bool {
	var rib map[string][]struct {
		Neighbor string `json:"neighbor-ip"`
		Attrs    []struct {
			Type    int    `json:"type"`
			NextHop string `json:"nexthop"`
		} `json:"attrs"`
	}
	if json.Unmarshal([]byte(out), &rib) != nil {
		return false
	}
	for _, p := range rib[prefix] {
		for _, a := range p.Attrs {
			if (a.Type == 3 || a.Type == 14) && a.NextHop == nh && p.Neighbor == nh {
				return true
			}
		}
	}
	return false
}

// establishedNeighbors counts gobgpd's sessions in state Established.
func establishedNeighbors(out string) int {
	var ns []struct {
		State struct {
			SessionState int `json:"session_state"`
		} `json:"state"`
	}
	if json.Unmarshal([]byte(out), &ns) != nil {
		return -1
	}
	n := 0
	for _, s := range ns {
		if s.State.SessionState == 6 {
			n++
		}
	}
	return n
}

// TestGoBGPDInterop peers two dual-stack speakers (AS 64512, one
// namespace each) with Debian's gobgpd (AS 65001) over eBGP, one IPv4 and
// one IPv6 session per node, all four TCP-MD5 signed: each node's blocks
// of both families reach gobgpd with the node as next hop, gobgpd's pool
// routes of both families reach both nodes with gobgpd's address of the
// family, a wrong key keeps a session down, and withdrawals travel.
func TestGoBGPDInterop(t *testing.T) {
	requirePrivileged(t, testenv.Binary("gobgpd"), testenv.Binary("gobgp")) // Debian package gobgpd
	const password = "gobgpd-MD5-Secret-5"
	nsTor := newNetns(t)
	type node struct {
		name, v4, v6, tor4, tor6, block4, block6 string
		ns                                       string
		sp                                       *speakerProc
	}
	nodes := []*node{
		{name: "node1", v4: "10.87.1.1", v6: "fd00:87:1::1", tor4: "10.87.1.2", tor6: "fd00:87:1::2", block4: "10.244.1.0/26", block6: "fd00:10:244:1::/122"},
		{name: "node2", v4: "10.87.2.1", v6: "fd00:87:2::1", tor4: "10.87.2.2", tor6: "fd00:87:2::2", block4: "10.244.2.0/26", block6: "fd00:10:244:2::/122"},
	}
	conf := gobgpdTorConf
	for i, n := range nodes {
		n.ns = newNetns(t)
		vethPair(t,
			end{netns: n.ns, dev: "eth-tor", addrs: []string{n.v4 + "/30", n.v6 + "/64"}},
			end{netns: nsTor, dev: fmt.Sprintf("eth-n%d", i+1), addrs: []string{n.tor4 + "/30", n.tor6 + "/64"}})
		conf += fmt.Sprintf(gobgpdNeighborConf, n.v4, password, n.tor4, "ipv4-unicast")
		conf += fmt.Sprintf(gobgpdNeighborConf, n.v6, password, n.tor6, "ipv6-unicast")
	}
	tor := startGoBGPD(t, nsTor, conf)
	tor.mustGoBGP(t, "global", "rib", "add", "10.244.7.0/26", "-a", "ipv4")
	tor.mustGoBGP(t, "global", "rib", "add", "fd00:10:244:7::/122", "-a", "ipv6")

	peers := func(n *node, key string) []Peer {
		return []Peer{
			{Name: "tor-v4", Address: netip.MustParseAddr(n.tor4), ASN: 65001, Password: key, HoldTime: 9 * time.Second},
			{Name: "tor-v6", Address: netip.MustParseAddr(n.tor6), ASN: 65001, Password: key, HoldTime: 9 * time.Second},
		}
	}
	for _, n := range nodes {
		n.sp = startSpeaker(t, n.name, n.ns, helperConfig{RouterID: netip.MustParseAddr(n.v4), ASN: 64512, ListenPort: 179,
			InitialSyncTimeout: 20 * time.Second, NextHop4: netip.MustParseAddr(n.v4), NextHop6: netip.MustParseAddr(n.v6)})
		n.sp.SetFilter(t, "10.244.0.0/16", "fd00:10:244::/48")
		n.sp.SetPeers(t, peers(n, password)...)
		n.sp.SetAds(t, n.block4, n.block6)
	}
	begin := time.Now()

	t.Run("four MD5 sessions, two per family, establish", func(t *testing.T) {
		for _, n := range nodes {
			n.sp.WaitEstablished(t, 60*time.Second)
		}
		tor.waitFor(t, "four sessions Established at gobgpd", sessionTimeout,
			func(out string) bool { return establishedNeighbors(out) == 4 }, "neighbor", "-j")
		t.Logf("all four sessions Established %v after the speakers were configured", time.Since(begin).Round(time.Millisecond))
	})

	t.Run("each node's blocks of both families at gobgpd, the node as next hop", func(t *testing.T) {
		for _, n := range nodes {
			tor.waitFor(t, n.name+"'s IPv4 block via "+n.v4, sessionTimeout,
				func(out string) bool { return ribHas(out, n.block4, n.v4) }, "global", "rib", "-a", "ipv4", "-j")
			tor.waitFor(t, n.name+"'s IPv6 block via "+n.v6, sessionTimeout,
				func(out string) bool { return ribHas(out, n.block6, n.v6) }, "global", "rib", "-a", "ipv6", "-j")
		}
		t.Logf("every block at gobgpd %v after the speakers were configured", time.Since(begin).Round(time.Millisecond))
	})

	t.Run("gobgpd's pool routes of both families reach every node via gobgpd", func(t *testing.T) {
		// The other node's blocks come back with AS path 65001 64512:
		// our own AS, so they are dropped as a loop.
		for _, n := range nodes {
			n.sp.WaitLearned(t, "gobgpd's routes at "+n.name, sessionTimeout, exactly(
				"10.244.7.0/26 via "+n.tor4,
				"fd00:10:244:7::/122 via "+n.tor6,
			))
		}
	})

	t.Run("a wrong MD5 key keeps both sessions down; the right one brings them back", func(t *testing.T) {
		n := nodes[0]
		n.sp.SetPeers(t, peers(n, "not-"+password)...)
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
		n.sp.SetPeers(t, peers(n, password)...)
		n.sp.WaitEstablished(t, 60*time.Second)
		n.sp.WaitLearned(t, "relearned from gobgpd", sessionTimeout, exactly(
			"10.244.7.0/26 via "+n.tor4,
			"fd00:10:244:7::/122 via "+n.tor6,
		))
	})

	t.Run("withdrawals travel both ways", func(t *testing.T) {
		tor.mustGoBGP(t, "global", "rib", "del", "10.244.7.0/26", "-a", "ipv4")
		for _, n := range nodes {
			n.sp.WaitLearned(t, "gobgpd's IPv4 route withdrawn at "+n.name, sessionTimeout, exactly("fd00:10:244:7::/122 via "+n.tor6))
		}
		n := nodes[1]
		n.sp.SetAds(t, n.block4)
		tor.waitFor(t, n.name+"'s IPv6 block gone from gobgpd", sessionTimeout,
			func(out string) bool { return !strings.Contains(out, n.block6) }, "global", "rib", "-a", "ipv6", "-j")
	})

	t.Run("the password is nowhere in our logs", func(t *testing.T) {
		for _, n := range nodes {
			mustNotContain(t, password, map[string]string{n.name + " speaker logs": n.sp.logs.String()})
		}
	})
}
