package speaker

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-net/cairn/internal/testenv"
)

// Namespaces made by these tests are called cbgp-<test pid>-<n>, so a run
// killed before its cleanup can be recognised and swept by the next one.
const netnsPrefix = "cbgp-"

var (
	netnsCounter atomic.Int32
	sweepOnce    sync.Once
)

// requirePrivileged runs t only where it can make namespaces, veth pairs
// and listen on port 179 (root), plus whatever else it names; testenv
// decides whether a test that cannot run skips or fails.
func requirePrivileged(t *testing.T, also ...testenv.Requirement) {
	t.Helper()
	testenv.Require(t, append([]testenv.Requirement{testenv.Root, testenv.NetNS, testenv.Binary("ip")}, also...)...)
	sweepOnce.Do(func() { sweepStaleNetns(t) })
}

// sweepStaleNetns deletes namespaces left by earlier runs whose process is
// gone (killed before cleanup). Namespaces of live runs are left alone.
func sweepStaleNetns(t *testing.T) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), netnsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			if out, err := exec.Command("ip", "netns", "del", e.Name()).CombinedOutput(); err != nil {
				t.Logf("sweep stale namespace %s: %v: %s", e.Name(), err, out)
			}
		}
	}
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newNetns creates a network namespace with loopback up; it is deleted when
// the test ends, after the processes started later (cleanups run LIFO).
func newNetns(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("%s%d-%d", netnsPrefix, os.Getpid(), netnsCounter.Add(1))
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("delete namespace %s: %v: %s", name, err, out)
		}
	})
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// end is one side of a veth pair.
type end struct {
	netns, dev string
	addrs      []string // with prefix length
}

// vethPair joins two namespaces. The pair is created directly inside them,
// so nothing ever appears in the root namespace; it disappears with them.
func vethPair(t *testing.T, a, b end) {
	t.Helper()
	run(t, "ip", "link", "add", a.dev, "netns", a.netns, "type", "veth", "peer", "name", b.dev, "netns", b.netns)
	for _, e := range []end{a, b} {
		for _, addr := range e.addrs {
			args := []string{"ip", "-n", e.netns, "addr", "add", addr, "dev", e.dev}
			if netip.MustParsePrefix(addr).Addr().Is6() {
				args = append(args, "nodad") // usable at once, not after DAD
			}
			run(t, args...)
		}
		run(t, "ip", "-n", e.netns, "link", "set", e.dev, "up")
	}
}

// TestNetnsTwoSpeakers runs two speakers in two namespaces joined by a veth
// pair: iBGP over IPv4 and IPv6 with TCP-MD5 and GTSM on both sessions,
// advertisements, withdrawals, the import filter, and graceful restart.
// GTSM is on the IPv4 session only (see validatePeer).
func TestNetnsTwoSpeakers(t *testing.T) {
	requirePrivileged(t)
	parent := t // speakers restarted in a subtest must outlive it
	const (
		asn      = 64512
		password = "netns-MD5-Secret-7"
	)
	nsA, nsB := newNetns(t), newNetns(t)
	vethPair(t,
		end{netns: nsA, dev: "eth-a", addrs: []string{"10.88.0.1/30", "fd00:88::1/64"}},
		end{netns: nsB, dev: "eth-b", addrs: []string{"10.88.0.2/30", "fd00:88::2/64"}})

	gr := &GROptions{Enabled: true, RestartTime: 60 * time.Second}
	cfgA := helperConfig{RouterID: netip.MustParseAddr("10.88.0.1"), ASN: asn, ListenPort: 179, GracefulRestart: gr, InitialSyncTimeout: 20 * time.Second}
	cfgB := helperConfig{RouterID: netip.MustParseAddr("10.88.0.2"), ASN: asn, ListenPort: 179, GracefulRestart: gr, InitialSyncTimeout: 20 * time.Second}
	peers := func(name, v4, v6 string) []Peer {
		return []Peer{
			{Name: name + "-v4", Address: netip.MustParseAddr(v4), ASN: asn, Password: password, TTLSecurity: 1, HoldTime: 9 * time.Second},
			{Name: name + "-v6", Address: netip.MustParseAddr(v6), ASN: asn, Password: password, HoldTime: 9 * time.Second},
		}
	}
	pools := []string{"10.244.0.0/16", "fd00:10:244::/48"}
	configureA := func(a *speakerProc, ads ...string) {
		a.SetFilter(t, pools...)
		a.SetPeers(t, peers("B", "10.88.0.2", "fd00:88::2")...)
		a.SetAds(t, ads...)
	}

	a := startSpeaker(t, "A", nsA, cfgA)
	b := startSpeaker(t, "B", nsB, cfgB)
	configureA(a, "10.244.0.0/26", "10.244.9.9/32", "fd00:10:244::/122", "192.0.2.0/24")
	b.SetFilter(t, pools...)
	b.SetPeers(t, peers("A", "10.88.0.1", "fd00:88::1")...)
	b.SetAds(t, "10.244.0.64/26")

	t.Run("iBGP sessions establish over IPv4 (MD5, GTSM) and IPv6 (MD5)", func(t *testing.T) {
		a.WaitEstablished(t, sessionTimeout)
		b.WaitEstablished(t, sessionTimeout)
	})

	t.Run("advertisements arrive with next hop self; the import filter drops the rest", func(t *testing.T) {
		b.WaitLearned(t, "A's blocks at B", sessionTimeout, exactly(
			"10.244.0.0/26 via 10.88.0.1",
			"10.244.9.9/32 via 10.88.0.1",
			"fd00:10:244::/122 via fd00:88::1",
		))
		a.WaitLearned(t, "B's block at A", sessionTimeout, exactly("10.244.0.64/26 via 10.88.0.2"))
	})

	t.Run("withdraw on SetAdvertisements removal", func(t *testing.T) {
		a.SetAds(t, "10.244.0.0/26", "192.0.2.0/24")
		b.WaitLearned(t, "/32 and IPv6 block withdrawn", sessionTimeout, exactly("10.244.0.0/26 via 10.88.0.1"))
	})

	t.Run("graceful restart: a crashed speaker's routes stay at its peer until it is back", func(t *testing.T) {
		a.kill()
		b.WaitStates(t, "sessions to A down", sessionTimeout, func(st []PeerState) bool {
			return st[0].State != StateEstablished && st[1].State != StateEstablished
		})
		// Without graceful restart B would withdraw at once; give it the
		// time it would need to show that.
		b.HoldsLearned(t, "A's route kept (stale) while A is down", 3*time.Second,
			func(p []Path) bool { return has(p, "10.244.0.0/26", "10.88.0.1") })

		a = startSpeaker(parent, "A-restarted", nsA, cfgA)
		configureA(a, "10.244.0.0/26", "10.244.0.128/26")
		a.WaitEstablished(t, sessionTimeout)
		b.WaitEstablished(t, sessionTimeout)
		b.WaitLearned(t, "A's routes after restart and End-of-RIB", sessionTimeout, exactly(
			"10.244.0.0/26 via 10.88.0.1",
			"10.244.0.128/26 via 10.88.0.1",
		))
		a.WaitLearned(t, "A relearned B's block", sessionTimeout, exactly("10.244.0.64/26 via 10.88.0.2"))
	})

	t.Run("a stop with graceful restart sends no Cease: the peer keeps the routes", func(t *testing.T) {
		a.Stop(t)
		b.WaitStates(t, "sessions to A down", sessionTimeout, func(st []PeerState) bool {
			return st[0].State != StateEstablished
		})
		b.HoldsLearned(t, "A's routes kept after a graceful stop", 3*time.Second,
			func(p []Path) bool { return has(p, "10.244.0.0/26", "10.88.0.1") })
	})

	t.Run("a stop without graceful restart withdraws at once", func(t *testing.T) {
		noGR := cfgA
		noGR.GracefulRestart = nil
		a = startSpeaker(parent, "A-without-GR", nsA, noGR)
		configureA(a, "10.244.0.0/26")
		a.WaitEstablished(t, sessionTimeout)
		// B kept 10.244.0.128/26 as stale from the graceful stop; A is back
		// without the capability, so it must go at once (RFC 4724 4.2).
		b.WaitLearned(t, "A's block only, stale route dropped", 5*time.Second, exactly("10.244.0.0/26 via 10.88.0.1"))
		a.Stop(t)
		b.WaitLearned(t, "A's routes withdrawn", 5*time.Second, exactly())
	})
}
