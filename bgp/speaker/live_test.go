package speaker

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// meshNode is one speaker of TestLiveChangesOverLoopback and what the
// others need to peer with it.
type meshNode struct {
	name  string
	addr  netip.Addr
	block string
	g     Global
	sp    *speakerProc
}

// sessionMark is one session's flap count and when it came up, as its
// speaker reports them.
type sessionMark struct {
	flaps uint64
	since time.Time
}

// TestLiveChangesOverLoopback changes, one at a time and while the
// speakers run, a speaker's listen port, a speaker's AS number and one
// session's password, on a full mesh of three speakers that each listen on
// their own loopback address and dial the others' ports. After each change
// every session is Established again, only the sessions the change
// concerns were reset, and no block went missing over the others.
func TestLiveChangesOverLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real BGP sessions over loopback (a few seconds); skipped with -short")
	}
	gr := GROptions{Enabled: true, RestartTime: 60 * time.Second}
	nodes := []*meshNode{
		{name: "A", addr: netip.MustParseAddr("127.0.0.1"), block: "10.244.1.0/26"},
		{name: "B", addr: netip.MustParseAddr("127.0.0.2"), block: "10.244.2.0/26"},
		{name: "C", addr: netip.MustParseAddr("127.0.0.3"), block: "10.244.3.0/26"},
	}
	passwords := map[[2]string]string{}
	pw := func(a, b string) string {
		if a > b {
			a, b = b, a
		}
		return passwords[[2]string{a, b}]
	}
	for i, n := range nodes {
		n.g = Global{ASN: 64512, ListenPort: freeLoopbackPort(t), GracefulRestart: gr}
		n.sp = startSpeaker(t, n.name, "", helperConfig{RouterID: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}),
			ASN: n.g.ASN, ListenPort: n.g.ListenPort, ListenAddresses: []string{n.addr.String()}, GracefulRestart: &gr,
			InitialSyncTimeout: 20 * time.Second})
		n.sp.SetFilter(t, "10.244.0.0/16")
	}
	// setPeers gives every speaker the others as they are now.
	setPeers := func() {
		for _, n := range nodes {
			var peers []Peer
			for _, o := range nodes {
				if o != n {
					peers = append(peers, Peer{Name: o.name, Address: o.addr, ASN: o.g.ASN, Port: uint16(o.g.ListenPort),
						SourceAddress: n.addr, Password: pw(n.name, o.name), HoldTime: 9 * time.Second})
				}
			}
			n.sp.SetPeers(t, peers...)
		}
	}
	setPeers()
	for _, n := range nodes {
		n.sp.SetAds(t, n.block)
	}
	// converged waits until every session is up and every speaker has
	// learned every other block, and says how long that took.
	converged := func(start time.Time) time.Duration {
		t.Helper()
		for _, n := range nodes {
			n.sp.WaitEstablished(t, sessionTimeout)
			var want []string
			for _, o := range nodes {
				if o != n {
					want = append(want, o.block+" via "+o.addr.String())
				}
			}
			n.sp.WaitLearned(t, "every other block", sessionTimeout, exactly(want...))
		}
		return time.Since(start)
	}
	converged(time.Now())
	// marks reads every session's flaps and since, keyed "X-Y" from X's side.
	marks := func() map[string]sessionMark {
		out := map[string]sessionMark{}
		for _, n := range nodes {
			now := time.Now()
			for _, st := range n.sp.States(t) {
				out[n.name+"-"+st.Name] = sessionMark{flaps: st.Flaps, since: now.Add(-st.Uptime)}
			}
		}
		return out
	}
	// reset reports whether a session went down between two marks. Uptime
	// comes in whole seconds, so since moves by up to a second on its own.
	reset := func(before, after sessionMark) bool {
		return after.flaps != before.flaps || after.since.Sub(before.since) > 2*time.Second
	}
	historyLen := map[string]int{}
	for _, n := range nodes {
		historyLen[n.name] = len(n.sp.History())
	}
	// change applies one change and checks that exactly the sessions of
	// the speakers in touched were reset.
	change := func(what string, touched func(a, b string) bool, apply func()) {
		t.Run(what, func(t *testing.T) {
			before := marks()
			start := time.Now()
			apply()
			took := converged(start)
			after := marks()
			var resets, kept []string
			for k, b := range before {
				var x, y string
				fmt.Sscanf(k[:1]+" "+k[2:], "%s %s", &x, &y)
				a := after[k]
				switch {
				case reset(b, a) && !touched(x, y):
					t.Errorf("session %s was reset though the change does not concern it (before %+v, after %+v)", k, b, a)
				case !reset(b, a) && touched(x, y):
					t.Errorf("session %s was not re-established though the change needs it (before %+v, after %+v)", k, b, a)
				case reset(b, a):
					resets = append(resets, k)
				default:
					kept = append(kept, k)
				}
			}
			slices.Sort(resets)
			slices.Sort(kept)
			t.Logf("%s: converged again in %s; sessions reset (each seen from both ends): %v; kept: %v", what, took.Round(time.Millisecond), resets, kept)
			// Over sessions the change does not concern, no block was ever
			// missing. Over the others, the side that re-created its
			// session keeps the peer's paths (graceful restart, or held),
			// but the far side flushes ours when it gets the Cease.
			for _, n := range nodes {
				h := n.sp.History()
				for _, set := range h[historyLen[n.name]:] {
					for _, o := range nodes {
						if o == n || hasPrefix(set, o.block) {
							continue
						}
						if touched(n.name, o.name) {
							t.Logf("speaker %s briefly lost %s's block over the re-created session", n.name, o.name)
						} else {
							t.Errorf("speaker %s lost %s's block %s during the change: %v", n.name, o.name, o.block, set)
						}
					}
				}
				historyLen[n.name] = len(h)
			}
		})
	}
	involves := func(who string) func(a, b string) bool {
		return func(a, b string) bool { return a == who || b == who }
	}

	change("listen port of A", involves("A"), func() {
		nodes[0].g.ListenPort = freeLoopbackPort(t)
		nodes[0].sp.SetGlobal(t, nodes[0].g)
		setPeers()
	})
	change("AS number of B", involves("B"), func() {
		nodes[1].g.ASN = 64513
		nodes[1].sp.SetGlobal(t, nodes[1].g)
		setPeers()
	})
	change("password of A-C", func(a, b string) bool { return a+b == "AC" || a+b == "CA" }, func() {
		passwords[[2]string{"A", "C"}] = "live-change-Secret-7"
		setPeers()
	})
	change("hold time of B-C", func(a, b string) bool { return a+b == "BC" || a+b == "CB" }, func() {
		for _, n := range nodes[1:] {
			var peers []Peer
			for _, o := range nodes {
				if o != n {
					hold := 9 * time.Second
					if o != nodes[0] {
						hold = 12 * time.Second
					}
					peers = append(peers, Peer{Name: o.name, Address: o.addr, ASN: o.g.ASN, Port: uint16(o.g.ListenPort),
						SourceAddress: n.addr, Password: pw(n.name, o.name), HoldTime: hold})
				}
			}
			n.sp.SetPeers(t, peers...)
		}
	})
	for _, n := range nodes {
		mustNotContain(t, "live-change-Secret-7", map[string]string{n.name + "'s logs": n.sp.logs.String()})
	}
}
