package speaker

import (
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestReflectorImportFilter: a route reflector R with two clients, A and
// B, and a BGPFilter on R's session to A. The import rules decide what
// enters R's BGP table from A (Calico's semantics), so a route they
// reject is neither used by R nor reflected to B: B receives A's other
// routes only. Removing the filter lets the route through, putting it
// back withdraws it from B again, without resetting any session. Before
// the rules were part of GoBGP's import policy R judged them only for its
// own kernel and reflected the route to B anyway. Loopback, no root.
func TestReflectorImportFilter(t *testing.T) {
	if testing.Short() {
		t.Skip("real BGP sessions over loopback; skipped with -short")
	}
	// Rule 0 accepts A's /24 of 10.244.3.0 (an Accept: the pools still
	// decide), rule 1 rejects everything outside 10.244.0.0/23 (NotIn:
	// GoBGP needs it decomposed into prefix ranges).
	filters := &Filters{Import: []FilterRule{
		{Source: "BGPFilter a-in importV4[0]", Match: MatchIn, CIDR: netip.MustParsePrefix("10.244.3.0/24"), Action: FilterAccept},
		{Source: "BGPFilter a-in importV4[1]", Match: MatchNotIn, CIDR: netip.MustParsePrefix("10.244.0.0/23"), Action: FilterReject},
	}}
	l, learned := startReflectorAndClients(t, [3]string{"127.0.0.31", "127.0.0.32", "127.0.0.33"}, filters, nil)
	spR, spB, a := l.R, l.B, l.a
	via := func(p string) string { return p + " via " + a.String() }

	t.Run("the rejected route never reaches the other client", func(t *testing.T) {
		if want := []string{via("10.244.1.0/26"), via("10.244.3.0/26")}; !exactly(want...)(learned) {
			t.Errorf("B learned %v, want only %v", learned, want)
		}
		st := spB.WaitStates(t, "B received A's two blocks from R", sessionTimeout, func(st []PeerState) bool { return st[0].Received >= 2 })
		if st[0].Received != 2 {
			t.Errorf("B received %d prefixes from R, want 2 (R reflected what A's import filter rejects)", st[0].Received)
		}
		for _, set := range spB.History() {
			if hasPrefix(set, "10.244.2.0/26") {
				t.Fatalf("B learned 10.244.2.0/26, which R's import filter rejects from A: %v", set)
			}
		}
		refused := spR.Refused(t)
		if !slices.ContainsFunc(refused, func(rp RefusedPath) bool {
			return rp.Prefix.String() == "10.244.2.0/26" && rp.Peer == a && strings.Contains(rp.Reason, "BGPFilter a-in importV4[1] rejects it")
		}) {
			t.Errorf("R's refused paths %+v do not name 10.244.2.0/26 from A and the rule", refused)
		}
	})

	t.Run("removing the filter lets the route through, live", func(t *testing.T) {
		l.changeLive(t, "filter removed: 10.244.2.0/26 at B", func() { l.setFilters(t, nil, nil) }, "in", a,
			via("10.244.1.0/26"), via("10.244.2.0/26"), via("10.244.3.0/26"))
	})
	t.Run("putting the filter back withdraws the route from the other client, live", func(t *testing.T) {
		l.changeLive(t, "filter back: 10.244.2.0/26 gone from B", func() { l.setFilters(t, filters, nil) }, "in", a,
			via("10.244.1.0/26"), via("10.244.3.0/26"))
	})
}

// TestReflectorExportFilter: a route reflector R with two clients, A and
// B, and a BGPFilter with an export rule on R's session to B. Export
// rules judge everything R sends to B (Calico's semantics), the routes R
// reflects included: B never receives the route the rule rejects, and
// receives A's other routes. Removing the rule lets the route through,
// putting it back withdraws it, each by a soft reset out of B alone, no
// session reset. Before, export rules judged only R's own announcements
// and R reflected the route to B anyway. Loopback, no root.
func TestReflectorExportFilter(t *testing.T) {
	if testing.Short() {
		t.Skip("real BGP sessions over loopback; skipped with -short")
	}
	// Rule 0 rejects A's second block; rule 1 accepts the rest of the
	// pool (an Accept: the reflect decision still decides).
	filters := &Filters{Export: []FilterRule{
		{Source: "BGPFilter b-out exportV4[0]", Match: MatchEqual, CIDR: netip.MustParsePrefix("10.244.2.0/26"), Action: FilterReject},
		{Source: "BGPFilter b-out exportV4[1]", Match: MatchIn, CIDR: netip.MustParsePrefix("10.244.0.0/16"), Action: FilterAccept},
	}}
	l, learned := startReflectorAndClients(t, [3]string{"127.0.0.41", "127.0.0.42", "127.0.0.43"}, nil, filters)
	spR, spB, a, b := l.R, l.B, l.a, l.b
	via := func(p string) string { return p + " via " + a.String() }

	t.Run("the client never receives the reflected route its export rule rejects", func(t *testing.T) {
		if want := []string{via("10.244.1.0/26"), via("10.244.3.0/26")}; !exactly(want...)(learned) {
			t.Errorf("B learned %v, want only %v", learned, want)
		}
		st := spB.WaitStates(t, "B received A's two blocks from R", sessionTimeout, func(st []PeerState) bool { return st[0].Received >= 2 })
		if st[0].Received != 2 {
			t.Errorf("B received %d prefixes from R, want 2 (R reflected what its export rule towards B rejects)", st[0].Received)
		}
		for _, set := range spB.History() {
			if hasPrefix(set, "10.244.2.0/26") {
				t.Fatalf("B learned 10.244.2.0/26, which R's export rule towards B rejects: %v", set)
			}
		}
		// R itself uses the route: the rule is B's, not R's import.
		spR.WaitLearned(t, "A's three blocks at R", sessionTimeout, exactly(via("10.244.1.0/26"), via("10.244.2.0/26"), via("10.244.3.0/26")))
	})

	t.Run("removing the rule lets the route through, live", func(t *testing.T) {
		l.changeLive(t, "export rule removed: 10.244.2.0/26 at B", func() { l.setFilters(t, nil, nil) }, "out", b,
			via("10.244.1.0/26"), via("10.244.2.0/26"), via("10.244.3.0/26"))
	})
	t.Run("putting the rule back withdraws the route from the client, live", func(t *testing.T) {
		l.changeLive(t, "export rule back: 10.244.2.0/26 gone from B", func() { l.setFilters(t, nil, filters) }, "out", b,
			via("10.244.1.0/26"), via("10.244.3.0/26"))
	})
}

// reflectorAndClients is a route reflector R with two clients, A and B,
// each a speaker process on its own loopback address, importing the pool
// 10.244.0.0/16.
type reflectorAndClients struct {
	r, a, b netip.Addr
	R, A, B *speakerProc
	port    int32
}

const reflectorTestASN, reflectorTestCluster = 64512, "10.255.0.9"

// startReflectorAndClients starts R, A and B on addrs, R's sessions to A
// and B filtered by fa and fb. A announces 10.244.1.0/26 and
// 10.244.2.0/26, and once the first reached B, 10.244.3.0/26 too. It
// returns B's learned set once the third reached it: whatever R sent B
// of A's first announcement reached B before that (one session, in
// order).
func startReflectorAndClients(t *testing.T, addrs [3]string, fa, fb *Filters) (*reflectorAndClients, []Path) {
	t.Helper()
	l := &reflectorAndClients{r: netip.MustParseAddr(addrs[0]), a: netip.MustParseAddr(addrs[1]), b: netip.MustParseAddr(addrs[2]), port: freeLoopbackPort(t)}
	start := func(name string, addr netip.Addr) *speakerProc {
		return startPoolSpeaker(t, name, addr, helperConfig{ASN: reflectorTestASN, ListenPort: l.port})
	}
	l.R, l.A, l.B = start("R", l.r), start("A", l.a), start("B", l.b)
	l.setFilters(t, fa, fb)
	l.A.SetPeers(t, l.peer(l.a, "r", l.r))
	l.B.SetPeers(t, l.peer(l.b, "r", l.r))
	l.R.SetAds(t)
	l.B.SetAds(t)
	l.A.SetAds(t, "10.244.1.0/26", "10.244.2.0/26")
	l.B.WaitLearned(t, "A's first block at B", sessionTimeout, func(ps []Path) bool { return hasPrefix(ps, "10.244.1.0/26") })
	l.A.SetAds(t, "10.244.1.0/26", "10.244.2.0/26", "10.244.3.0/26")
	return l, l.B.WaitLearned(t, "A's third block at B", sessionTimeout, func(ps []Path) bool { return hasPrefix(ps, "10.244.3.0/26") })
}

// setFilters gives R's sessions to A and B the filters fa and fb.
func (l *reflectorAndClients) setFilters(t *testing.T, fa, fb *Filters) {
	t.Helper()
	client := func(name string, to netip.Addr, f *Filters) Peer {
		p := l.peer(l.r, name, to)
		p.RouteReflectorClient, p.RouteReflectorClusterID, p.Filters = true, reflectorTestCluster, f
		return p
	}
	l.R.SetPeers(t, client("a", l.a, fa), client("b", l.b, fb))
}

func (l *reflectorAndClients) peer(from netip.Addr, name string, to netip.Addr) Peer {
	return Peer{Name: name, Address: to, ASN: reflectorTestASN, Port: uint16(l.port), SourceAddress: from}
}

// changeLive makes change at R, waits until B has learned exactly want
// and logs how long that took (what), then checks that no session reset
// and that R soft reset peer alone, in direction dir.
func (l *reflectorAndClients) changeLive(t *testing.T, what string, change func(), dir string, peer netip.Addr, want ...string) {
	t.Helper()
	changed, logStart := time.Now(), len(l.R.logs.String())
	change()
	l.B.WaitLearned(t, what, sessionTimeout, exactly(want...))
	t.Logf("%s %s later", what, time.Since(changed).Round(time.Millisecond))
	noSessionResets(t, map[string]*speakerProc{"R": l.R, "A": l.A, "B": l.B})
	onlySoftReset(t, l.R, logStart, dir, peer)
}

// noSessionResets fails when a session of any of procs has flapped or is
// not Established.
func noSessionResets(t *testing.T, procs map[string]*speakerProc) {
	t.Helper()
	var resets uint64
	for name, sp := range procs {
		for _, st := range sp.States(t) {
			resets += st.Flaps
			if st.Flaps != 0 || st.State != StateEstablished {
				t.Errorf("%s: session %s reset: %+v", name, st.Name, st)
			}
		}
	}
	t.Logf("session resets: %d", resets)
}

// onlySoftReset checks that, since sp's log had logStart bytes, GoBGP
// soft reset peer alone, in direction dir ("in" or "out"), once, and
// made no soft reset in the other direction.
func onlySoftReset(t *testing.T, sp *speakerProc, logStart int, dir string, peer netip.Addr) {
	t.Helper()
	resetRE := regexp.MustCompile(`"msg":"Neighbor soft reset (in|out)"[^\n]*"Key":"([^"]*)"`)
	var resets [][]string
	// The log reaches us through a pipe, maybe after the routes.
	for deadline := time.Now().Add(sessionTimeout); len(resets) == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resets = resetRE.FindAllStringSubmatch(sp.logs.String()[logStart:], -1)
	}
	var got []string
	for _, m := range resets {
		got = append(got, m[1]+" "+m[2])
	}
	if want := dir + " " + peer.String(); !slices.Equal(got, []string{want}) {
		t.Errorf("%s's soft resets %v, want one: %s", sp.name, got, want)
	}
}
