package speaker

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-net/cairn/internal/testenv"
)

// birdConf makes BIRD a top-of-rack router at 10.88.0.2 (AS 65001) that
// announces what a real one might: a pod block inside our pool, a prefix
// outside it and a default route. MD5 and TTL security are on.
const birdConf = `
log stderr all;
router id 10.88.0.2;
protocol device { }
protocol static tor_routes {
	ipv4;
	route 10.244.7.0/26 blackhole;
	route 192.0.2.0/24 blackhole;
	route 0.0.0.0/0 blackhole;
}
protocol bgp cairn {
	local 10.88.0.2 as 65001;
	neighbor 10.88.0.1 as 65000;
	password "%s";
	ttl security on;
	hold time 9;
	graceful restart on;
	ipv4 {
		import all;
		export where proto = "tor_routes";
	};
}
`

// birdRouter is a BIRD 2 process in a namespace, queried with birdc.
type birdRouter struct {
	sock string
	logs *lockedBuffer
}

// startBird runs `bird -f` inside netns; it is killed when the test ends.
func startBird(t *testing.T, netns, conf string) *birdRouter {
	t.Helper()
	dir := t.TempDir()
	confPath := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &birdRouter{sock: filepath.Join(dir, "bird.ctl")}
	b.logs = startDaemon(t, "bird", netns, "bird", "-f", "-c", confPath, "-s", b.sock, "-P", filepath.Join(dir, "bird.pid"))
	b.waitFor(t, "BIRD control socket up", 10*time.Second, func(out string) bool {
		return strings.Contains(out, "Daemon is up and running")
	}, "show", "status")
	return b
}

// show runs one birdc command.
func (b *birdRouter) show(args ...string) (string, error) {
	out, err := exec.Command("birdc", append([]string{"-s", b.sock}, args...)...).CombinedOutput()
	return string(out), err
}

// waitFor polls a birdc command until cond holds on its output.
func (b *birdRouter) waitFor(t *testing.T, what string, timeout time.Duration, cond func(string) bool, args ...string) string {
	t.Helper()
	return pollCLI(t, "birdc", b.show, what, timeout, cond, args...)
}

// TestBirdInterop peers a speaker (AS 65000, namespace A) with a real BIRD 2
// (AS 65001, namespace B) over eBGP with TCP-MD5 and TTL security.
func TestBirdInterop(t *testing.T) {
	requirePrivileged(t, testenv.Binary("bird"), testenv.Binary("birdc")) // Debian package bird2
	const password = "bird-MD5-Secret-9"
	nsA, nsB := newNetns(t), newNetns(t)
	vethPair(t,
		end{netns: nsA, dev: "eth-node", addrs: []string{"10.88.0.1/30"}},
		end{netns: nsB, dev: "eth-tor", addrs: []string{"10.88.0.2/30"}})
	bird := startBird(t, nsB, fmt.Sprintf(birdConf, password))

	sp := startSpeaker(t, "node", nsA, helperConfig{RouterID: netip.MustParseAddr("10.88.0.1"), ASN: 65000, ListenPort: 179,
		GracefulRestart: &GROptions{Enabled: true}, InitialSyncTimeout: 20 * time.Second})
	sp.SetFilter(t, "10.244.0.0/16")
	sp.SetPeers(t, Peer{Name: "tor", Address: netip.MustParseAddr("10.88.0.2"), ASN: 65001, Password: password,
		TTLSecurity: 1, HoldTime: 9 * time.Second, MaxPrefixes: 100})
	sp.SetAds(t, "10.244.0.0/26")

	t.Run("session establishes with MD5 and GTSM", func(t *testing.T) {
		sp.WaitEstablished(t, 60*time.Second)
		bird.waitFor(t, "BIRD sees the session Established", sessionTimeout,
			func(out string) bool { return strings.Contains(out, "Established") }, "show", "protocols", "cairn")
	})

	t.Run("our block arrives at BIRD with our next hop, and nothing else does", func(t *testing.T) {
		out := bird.waitFor(t, "10.244.0.0/26 at BIRD", sessionTimeout, func(out string) bool {
			return strings.Contains(out, "10.244.0.0/26") && strings.Contains(out, "BGP.next_hop: 10.88.0.1")
		}, "show", "route", "protocol", "cairn", "all")
		if !strings.Contains(out, "BGP.as_path: 65000") {
			t.Errorf("AS path at BIRD is not just our AS:\n%s", out)
		}
		count := bird.waitFor(t, "route count", 5*time.Second, func(string) bool { return true }, "show", "route", "protocol", "cairn", "count")
		// "<from cairn> of <all> routes ...": exactly one route came from us.
		if !strings.Contains(count, "\n1 of ") {
			t.Errorf("BIRD got more than our one route:\n%s", count)
		}
	})

	t.Run("BIRD's pool route arrives; its default route and out-of-pool prefix do not", func(t *testing.T) {
		sp.WaitLearned(t, "learned from BIRD", sessionTimeout, exactly("10.244.7.0/26 via 10.88.0.2"))
		st := sp.WaitStates(t, "counters", sessionTimeout, func(st []PeerState) bool { return st[0].Received == 3 })
		if st[0].Accepted != 1 || st[0].Advertised != 1 {
			t.Errorf("counters: %+v", st[0])
		}
	})

	t.Run("a wrong MD5 key keeps the session down; the right one brings it back", func(t *testing.T) {
		tor := Peer{Name: "tor", Address: netip.MustParseAddr("10.88.0.2"), ASN: 65001, Password: "not-" + password,
			TTLSecurity: 1, HoldTime: 9 * time.Second, MaxPrefixes: 100}
		sp.SetPeers(t, tor)
		sp.WaitStates(t, "session re-created", sessionTimeout, func(st []PeerState) bool { return st[0].State != StateEstablished })
		// Segments with a bad signature are dropped by the kernel, so there
		// is no event to wait for: watch a window of two connect retries.
		window := time.NewTimer(6 * time.Second)
		defer window.Stop()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for watching := true; watching; {
			if st := sp.States(t); st[0].State == StateEstablished {
				t.Fatalf("established with the wrong MD5 key: %+v", st[0])
			}
			select {
			case <-window.C:
				watching = false
			case <-tick.C:
			}
		}
		tor.Password = password
		sp.SetPeers(t, tor)
		sp.WaitEstablished(t, 60*time.Second)
		sp.WaitLearned(t, "relearned from BIRD", sessionTimeout, exactly("10.244.7.0/26 via 10.88.0.2"))
	})

	t.Run("withdrawal reaches BIRD", func(t *testing.T) {
		sp.SetAds(t)
		bird.waitFor(t, "10.244.0.0/26 gone from BIRD", sessionTimeout, func(out string) bool {
			return !strings.Contains(out, "10.244.0.0/26")
		}, "show", "route", "protocol", "cairn")
	})

	t.Run("password is nowhere in our logs", func(t *testing.T) {
		mustNotContain(t, password, map[string]string{"speaker logs": sp.logs.String()})
		mustNotContain(t, "not-"+password, map[string]string{"speaker logs": sp.logs.String()})
	})
}
