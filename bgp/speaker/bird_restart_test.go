package speaker

import (
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-net/cairn/internal/testenv"
)

// birdGRConf makes BIRD a top-of-rack router that helps us restart (RFC
// 4724). It logs every route change of its sessions with us, so a stale
// route flushed and re-announced between two polls still shows. Protocol
// "late" is a second session, on a second address, that the restarted
// speaker only adds after its initial sync.
const birdGRConf = `
log stderr all;
router id 10.88.0.2;
protocol device { }
protocol static tor_routes {
	ipv4;
	route 10.244.7.0/26 blackhole;
}
protocol bgp cairn {
	local 10.88.0.2 as 65001;
	neighbor 10.88.0.1 as 65000;
	hold time 9;
	graceful restart on;
	debug { states, routes, events };
	ipv4 {
		import all;
		export where proto = "tor_routes";
	};
}
protocol bgp late {
	local 10.88.1.2 as 65001;
	neighbor 10.88.1.1 as 65000;
	hold time 9;
	graceful restart on;
	ipv4 {
		import all;
		export none;
	};
}
`

// grCaps is what BIRD says it received in a neighbour's graceful-restart
// capability (`show protocols all`, "Neighbor capabilities").
type grCaps struct {
	present   bool // the capability itself
	restarted bool // R bit: "Restart recovery"
	preserved bool // F bit for IPv4: "AF preserved: ipv4"
}

// neighborGRCaps parses the neighbour's graceful-restart capability out of
// `birdc show protocols all <name>`.
func neighborGRCaps(out string) grCaps {
	_, caps, ok := strings.Cut(out, "Neighbor capabilities")
	if !ok {
		return grCaps{}
	}
	// The neighbour's capabilities end where the session details start.
	caps, _, _ = strings.Cut(caps, "Session:")
	_, gr, ok := strings.Cut(caps, "Graceful restart")
	if !ok {
		return grCaps{}
	}
	return grCaps{
		present:   true,
		restarted: strings.Contains(gr, "Restart recovery"),
		preserved: regexp.MustCompile(`AF preserved:[^\n]*\bipv4\b`).MatchString(gr),
	}
}

// routePoller runs `birdc show route` every interval and counts the polls
// where BIRD had no route for prefix.
type routePoller struct {
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	mu                     sync.Mutex
	polls, missing, failed int
	firstMissing           string
}

func pollRoute(b *birdRouter, prefix string, interval time.Duration) *routePoller {
	p := &routePoller{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			out, err := b.show("show", "route", prefix, "all")
			p.mu.Lock()
			switch {
			case err != nil:
				p.failed++ // birdc itself failed: no evidence either way
			case !strings.Contains(out, prefix) || strings.Contains(out, "Network not found"):
				p.missing++
				if p.firstMissing == "" {
					p.firstMissing = time.Now().Format("15:04:05.000") + "\n" + out
				}
			}
			p.polls++
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// finish stops polling and returns its counts; it may be called again.
func (p *routePoller) finish() (polls, missing, failed int, firstMissing string) {
	p.stopOnce.Do(func() { close(p.stop) })
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.polls, p.missing, p.failed, p.firstMissing
}

// TestBirdGracefulRestartKeepsForwarding crashes a speaker peered with BIRD
// and brings it back: with ForwardingStateKept its OPEN carries the restart
// and forwarding-state bits, and BIRD keeps our block through the whole
// restart instead of flushing it when the session comes back (RFC 4724 4.2).
// A speaker without ForwardingStateKept, and a peer added after the initial
// sync, claim neither bit. A peer that never answers holds our updates back
// only until the initial sync times out, not for GoBGP's 360 s default.
func TestBirdGracefulRestartKeepsForwarding(t *testing.T) {
	requirePrivileged(t, testenv.Binary("bird"), testenv.Binary("birdc")) // Debian package bird2
	nsA, nsB := newNetns(t), newNetns(t)
	vethPair(t,
		end{netns: nsA, dev: "eth-node", addrs: []string{"10.88.0.1/30", "10.88.1.1/30", "10.88.2.1/30"}},
		end{netns: nsB, dev: "eth-tor", addrs: []string{"10.88.0.2/30", "10.88.1.2/30"}})
	bird := startBird(t, nsB, birdGRConf)

	tor := Peer{Name: "tor", Address: netip.MustParseAddr("10.88.0.2"), ASN: 65001, HoldTime: 9 * time.Second}
	late := Peer{Name: "late", Address: netip.MustParseAddr("10.88.1.2"), ASN: 65001, HoldTime: 9 * time.Second}
	// Nothing answers at 10.88.2.2: a peer whose node is down.
	silent := Peer{Name: "silent", Address: netip.MustParseAddr("10.88.2.2"), ASN: 65001, HoldTime: 9 * time.Second}
	cfg := helperConfig{RouterID: netip.MustParseAddr("10.88.0.1"), ASN: 65000, ListenPort: 179,
		GracefulRestart: &GROptions{Enabled: true, RestartTime: 120 * time.Second}, InitialSyncTimeout: 20 * time.Second}
	kept := cfg
	kept.ForwardingStateKept = true
	r := &grRestarts{parent: t, netns: nsA, bird: bird}

	first := startSpeaker(t, "first", nsA, cfg)
	r.configure(t, first, []Peer{tor}, grBlock)

	t.Run("a first start claims no forwarding state", func(t *testing.T) {
		first.WaitEstablished(t, 60*time.Second)
		bird.waitFor(t, grBlock+" at BIRD", sessionTimeout, func(out string) bool {
			return strings.Contains(out, grBlock)
		}, "show", "route", "protocol", "cairn")
		out := bird.waitFor(t, "session Established at BIRD", sessionTimeout, birdEstablished, "show", "protocols", "all", "cairn")
		if c := neighborGRCaps(out); !c.present || c.restarted || c.preserved {
			t.Errorf("BIRD saw %+v from a speaker without ForwardingStateKept; want the capability without R or F bits:\n%s", c, out)
		}
	})
	if t.Failed() {
		return
	}

	var restarted *speakerProc
	t.Run("BIRD keeps our block through a crash and restart with forwarding state kept", func(t *testing.T) {
		restarted = r.crashAndRestart(t, first, "restarted", kept, []Peer{tor}, "10.244.0.64/26")
	})
	if t.Failed() || restarted == nil {
		return
	}

	t.Run("a peer added after the initial sync claims no forwarding state", func(t *testing.T) {
		restarted.WaitLearned(t, "initial sync done", sessionTimeout, exactly("10.244.7.0/26 via 10.88.0.2"))
		restarted.SetPeers(t, tor, late)
		restarted.WaitEstablished(t, 60*time.Second)
		out := bird.waitFor(t, "late session Established at BIRD", sessionTimeout, birdEstablished, "show", "protocols", "all", "late")
		if c := neighborGRCaps(out); !c.present || c.restarted || c.preserved {
			t.Errorf("BIRD saw %+v on a session added after the restart; want neither R nor F bit:\n%s", c, out)
		}
		// The restart's own session is untouched.
		bird.waitFor(t, grBlock+" still at BIRD", 5*time.Second, func(out string) bool {
			return strings.Contains(out, grBlock)
		}, "show", "route", "protocol", "cairn")
	})
	if t.Failed() {
		return
	}

	t.Run("a peer that never answers defers our updates only until the initial sync times out", func(t *testing.T) {
		// Without End-of-RIB from the silent peer, GoBGP holds our updates
		// for the deferral time; 60 s tells ours (the 5 s left of the
		// initial sync) from GoBGP's default (360 s) on any machine.
		short := kept
		short.InitialSyncTimeout = 5 * time.Second
		r.crashAndRestart(t, restarted, "restarted-again", short, []Peer{tor, silent}, "10.244.0.128/26")
	})
}

// grBlock is the block every speaker of TestBirdGracefulRestartKeepsForwarding
// announces; BIRD must never lose it.
const grBlock = "10.244.0.0/26"

func birdEstablished(out string) bool { return strings.Contains(out, "Established") }

// grRestarts crashes and restarts speakers in one namespace, peered with
// one BIRD.
type grRestarts struct {
	parent *testing.T // speakers started in a subtest must outlive it
	netns  string
	bird   *birdRouter
}

func (r *grRestarts) configure(t *testing.T, sp *speakerProc, peers []Peer, ads ...string) {
	t.Helper()
	sp.SetFilter(t, "10.244.0.0/16")
	sp.SetPeers(t, peers...)
	sp.SetAds(t, ads...)
}

// crashAndRestart kills prev (SIGKILL: no NOTIFICATION, so BIRD starts
// helping it restart), starts a speaker with cfg announcing grBlock and
// newBlock, and checks that BIRD had grBlock at every poll and in its log
// throughout, and saw the restart and forwarding-state bits.
func (r *grRestarts) crashAndRestart(t *testing.T, prev *speakerProc, name string, cfg helperConfig, peers []Peer, newBlock string) *speakerProc {
	t.Helper()
	logStart := len(r.bird.logs.String())
	poll := pollRoute(r.bird, grBlock, 50*time.Millisecond)
	defer poll.finish()
	prev.kill()
	r.bird.waitFor(t, "BIRD sees the session down", sessionTimeout, func(out string) bool {
		return !birdEstablished(out)
	}, "show", "protocols", "cairn")

	sp := startSpeaker(r.parent, name, r.netns, cfg)
	r.configure(t, sp, peers, grBlock, newBlock)
	out := r.bird.waitFor(t, "session back at BIRD", 60*time.Second, birdEstablished, "show", "protocols", "all", "cairn")
	up := time.Now()
	// Our End-of-RIB follows our routes: once the new block is at BIRD,
	// BIRD has had all it needs to end the restart and to flush what it
	// meant to flush.
	r.bird.waitFor(t, "the restarted speaker's new block at BIRD", 60*time.Second, func(out string) bool {
		return strings.Contains(out, newBlock)
	}, "show", "route", "protocol", "cairn")
	t.Logf("our routes reached BIRD %s after the session came back", time.Since(up).Round(time.Millisecond))
	time.Sleep(2 * time.Second) // BIRD prunes stale routes asynchronously

	polls, missing, failed, firstMissing := poll.finish()
	t.Logf("polled BIRD %d times (%d birdc failures)", polls, failed)
	if missing > 0 {
		t.Errorf("%s was missing at BIRD in %d of %d polls during the restart; first:\n%s", grBlock, missing, polls, firstMissing)
	}
	if polls-failed < 10 {
		t.Errorf("only %d successful polls: the restart was not watched", polls-failed)
	}
	// A flush and re-announcement can fall between two polls; BIRD's
	// route log cannot miss it.
	if removed := birdRemoved(r.bird.logs.String()[logStart:], grBlock); removed != "" {
		t.Errorf("BIRD removed %s during the restart:\n%s", grBlock, removed)
	}
	if c := neighborGRCaps(out); !c.restarted || !c.preserved {
		t.Errorf("BIRD saw %+v from the restarted speaker; want R and F (ipv4) bits:\n%s", c, out)
	}
	return sp
}

// birdRemoved returns BIRD's log lines (debug routes) that remove prefix
// from what it imported from us, or "".
func birdRemoved(logs, prefix string) string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "cairn") && strings.Contains(l, prefix) && strings.Contains(l, "removed") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
