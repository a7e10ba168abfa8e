package speaker

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairn-net/cairn/internal/testenv"
)

// birdFilterConf is a ToR announcing two blocks inside the pool, with no
// filter of its own: what it shows is what we sent.
const birdFilterConf = `
log stderr all;
router id 10.88.0.2;
protocol device { }
protocol static tor_routes {
	ipv4;
	route 10.244.7.0/26 blackhole;
	route 10.244.8.0/26 blackhole;
}
protocol bgp cairn {
	local 10.88.0.2 as 65001;
	neighbor 10.88.0.1 as 65000;
	hold time 9;
	ipv4 {
		import all;
		export where proto = "tor_routes";
	};
}
`

// TestBirdFilters: a peer's BGPFilter rules against a real BIRD. An export
// rule withholds one of our blocks from it, an import rule refuses one of
// its routes (with the rule named in RefusedPaths); changing the rules
// while the session runs swaps both without resetting it (no flap on our
// side, BIRD's session keeps its start time); a new block the export
// rules refuse never reaches BIRD, even for a moment.
func TestBirdFilters(t *testing.T) {
	requirePrivileged(t, testenv.Binary("bird"), testenv.Binary("birdc")) // Debian package bird2
	nsA, nsB := newNetns(t), newNetns(t)
	vethPair(t,
		end{netns: nsA, dev: "eth-node", addrs: []string{"10.88.0.1/30"}},
		end{netns: nsB, dev: "eth-tor", addrs: []string{"10.88.0.2/30"}})
	bird := startBird(t, nsB, birdFilterConf)

	sp := startSpeaker(t, "node", nsA, helperConfig{RouterID: netip.MustParseAddr("10.88.0.1"), ASN: 65000, ListenPort: 179,
		InitialSyncTimeout: 20 * time.Second})
	sp.SetFilter(t, "10.244.0.0/16")
	tor := Peer{Name: "tor", Address: netip.MustParseAddr("10.88.0.2"), ASN: 65001, HoldTime: 9 * time.Second,
		Filters: &Filters{
			Import: []FilterRule{{Source: "BGPFilter tor importV4[0]", Match: MatchIn, CIDR: netip.MustParsePrefix("10.244.8.0/24"), Action: FilterReject}},
			Export: []FilterRule{{Source: "BGPFilter tor exportV4[0]", Match: MatchEqual, CIDR: netip.MustParsePrefix("10.244.1.0/26"), Action: FilterReject}},
		}}
	sp.SetPeers(t, tor)
	sp.SetAds(t, "10.244.0.0/26", "10.244.1.0/26")
	sp.WaitEstablished(t, 60*time.Second)
	atBird := func() string {
		out, _ := bird.show("show", "route", "protocol", "cairn")
		return out
	}

	t.Run("the export filter withholds a block from BIRD", func(t *testing.T) {
		bird.waitFor(t, "10.244.0.0/26 at BIRD", sessionTimeout, func(out string) bool {
			return strings.Contains(out, "10.244.0.0/26")
		}, "show", "route", "protocol", "cairn")
		if out := atBird(); strings.Contains(out, "10.244.1.0/26") {
			t.Errorf("BIRD got the block the export filter rejects:\n%s", out)
		}
	})

	t.Run("the import filter refuses a route from BIRD, and says which rule", func(t *testing.T) {
		sp.WaitLearned(t, "only 10.244.7.0/26 learned", sessionTimeout, exactly("10.244.7.0/26 via 10.88.0.2"))
		st := sp.WaitStates(t, "counters", sessionTimeout, func(st []PeerState) bool { return st[0].Received == 2 })
		if st[0].Accepted != 1 {
			t.Errorf("accepted %d of %d, want 1", st[0].Accepted, st[0].Received)
		}
		refused := sp.Refused(t)
		if len(refused) != 1 || refused[0].Prefix.String() != "10.244.8.0/26" || !strings.Contains(refused[0].Reason, "BGPFilter tor importV4[0]") {
			t.Errorf("refused %+v, want 10.244.8.0/26 by BGPFilter tor importV4[0]", refused)
		}
	})

	since := birdSince(t, bird)
	t.Logf("BIRD: session established since %s", since)
	t.Run("changed rules apply live, without a session reset", func(t *testing.T) {
		tor.Filters = &Filters{
			Import: []FilterRule{{Source: "BGPFilter tor importV4[0]", Match: MatchEqual, CIDR: netip.MustParsePrefix("10.244.7.0/26"), Action: FilterReject}},
			Export: []FilterRule{
				{Source: "BGPFilter tor exportV4[0]", Match: MatchEqual, CIDR: netip.MustParsePrefix("10.244.1.0/26"), Action: FilterAccept},
				{Source: "BGPFilter tor exportV4[1]", Match: MatchAll, Action: FilterReject},
			},
		}
		start := time.Now()
		sp.SetPeers(t, tor)
		sp.WaitLearned(t, "8 learned, 7 refused", sessionTimeout, exactly("10.244.8.0/26 via 10.88.0.2"))
		learned := time.Since(start)
		bird.waitFor(t, "BIRD has 10.244.1.0/26 and no longer 10.244.0.0/26", sessionTimeout, func(out string) bool {
			return strings.Contains(out, "10.244.1.0/26") && !strings.Contains(out, "10.244.0.0/26")
		}, "show", "route", "protocol", "cairn")
		t.Logf("after the change: import applied in %s, export at BIRD in %s", learned.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		if st := sp.States(t); st[0].Flaps != 0 || st[0].State != StateEstablished {
			t.Errorf("the session flapped: %+v", st[0])
		}
		if now := birdSince(t, bird); now != since {
			t.Errorf("BIRD's session restarted: established since %q, was %q", now, since)
		}
	})

	t.Run("a new block the export rules refuse never reaches BIRD", func(t *testing.T) {
		tor.Filters = &Filters{Export: []FilterRule{{Source: "BGPFilter tor exportV4[0]", Match: MatchIn, CIDR: netip.MustParsePrefix("10.244.2.0/24"), Action: FilterReject}}}
		sp.SetPeers(t, tor)
		// 10.244.2.0/26 and 10.244.3.0/26 come in one call: by the time
		// the one allowed is at BIRD, the refused one would be too.
		sp.SetAds(t, "10.244.1.0/26", "10.244.2.0/26", "10.244.3.0/26")
		bird.waitFor(t, "10.244.3.0/26 at BIRD", sessionTimeout, func(out string) bool {
			return strings.Contains(out, "10.244.3.0/26")
		}, "show", "route", "protocol", "cairn")
		if out := atBird(); strings.Contains(out, "10.244.2.0/26") {
			t.Errorf("BIRD got a block the export filter rejects:\n%s", out)
		}
		if st := sp.States(t); st[0].Flaps != 0 {
			t.Errorf("the session flapped: %+v", st[0])
		}
	})
}

var birdSinceRE = regexp.MustCompile(`(?m)^cairn\s+BGP\s+\S+\s+up\s+(\S+(?: \S+)?)\s+Established`)

// birdSince is when BIRD's session to us came up, as `show protocols` says.
func birdSince(t *testing.T, b *birdRouter) string {
	t.Helper()
	out := b.waitFor(t, "BIRD's session Established", sessionTimeout, func(out string) bool {
		return birdSinceRE.MatchString(out)
	}, "show", "protocols", "cairn")
	return birdSinceRE.FindStringSubmatch(out)[1]
}
