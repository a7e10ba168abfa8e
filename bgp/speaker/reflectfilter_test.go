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
	port := freeLoopbackPort(t)
	const asn, cluster = 64512, "10.255.0.9"
	r, a, b := netip.MustParseAddr("127.0.0.31"), netip.MustParseAddr("127.0.0.32"), netip.MustParseAddr("127.0.0.33")
	start := func(name string, addr netip.Addr) *speakerProc {
		return startPoolSpeaker(t, name, addr, helperConfig{ASN: asn, ListenPort: port})
	}
	peer := func(from netip.Addr, name string, to netip.Addr) Peer {
		return Peer{Name: name, Address: to, ASN: asn, Port: uint16(port), SourceAddress: from}
	}
	client := func(name string, to netip.Addr, f *Filters) Peer {
		p := peer(r, name, to)
		p.RouteReflectorClient, p.RouteReflectorClusterID, p.Filters = true, cluster, f
		return p
	}
	// Rule 0 accepts A's /24 of 10.244.3.0 (an Accept: the pools still
	// decide), rule 1 rejects everything outside 10.244.0.0/23 (NotIn:
	// GoBGP needs it decomposed into prefix ranges).
	filters := &Filters{Import: []FilterRule{
		{Source: "BGPFilter a-in importV4[0]", Match: MatchIn, CIDR: netip.MustParsePrefix("10.244.3.0/24"), Action: FilterAccept},
		{Source: "BGPFilter a-in importV4[1]", Match: MatchNotIn, CIDR: netip.MustParsePrefix("10.244.0.0/23"), Action: FilterReject},
	}}
	spR, spA, spB := start("R", r), start("A", a), start("B", b)
	spR.SetPeers(t, client("a", a, filters), client("b", b, nil))
	spA.SetPeers(t, peer(a, "r", r))
	spB.SetPeers(t, peer(b, "r", r))
	spR.SetAds(t)
	spB.SetAds(t)
	spA.SetAds(t, "10.244.1.0/26", "10.244.2.0/26")
	via := func(p string) string { return p + " via " + a.String() }
	spB.WaitLearned(t, "A's accepted block at B", sessionTimeout, func(ps []Path) bool { return hasPrefix(ps, "10.244.1.0/26") })
	// Anything R reflected of A's first announcement reaches B before
	// what R reflects of A's second: one session each, in order.
	spA.SetAds(t, "10.244.1.0/26", "10.244.2.0/26", "10.244.3.0/26")
	learned := spB.WaitLearned(t, "A's third block at B", sessionTimeout, func(ps []Path) bool { return hasPrefix(ps, "10.244.3.0/26") })

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

	noFlaps := func(t *testing.T) {
		t.Helper()
		for name, sp := range map[string]*speakerProc{"R": spR, "A": spA, "B": spB} {
			for _, st := range sp.States(t) {
				if st.Flaps != 0 || st.State != StateEstablished {
					t.Errorf("%s: session %s reset: %+v", name, st.Name, st)
				}
			}
		}
	}
	// onlyAReimported: since R's log had logStart bytes, GoBGP re-ran its
	// import policy over A's routes alone.
	onlyAReimported := func(t *testing.T, logStart int) {
		t.Helper()
		resetRE := regexp.MustCompile(`"msg":"Neighbor soft reset in"[^\n]*"Key":"([^"]*)"`)
		var resets [][]string
		// R's log reaches us through a pipe, maybe after B's routes.
		for deadline := time.Now().Add(sessionTimeout); len(resets) == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			resets = resetRE.FindAllStringSubmatch(spR.logs.String()[logStart:], -1)
		}
		if len(resets) != 1 || resets[0][1] != a.String() {
			t.Errorf("R's soft resets in %v, want one, of A (%s)", resets, a)
		}
	}
	t.Run("removing the filter lets the route through, live", func(t *testing.T) {
		changed, logStart := time.Now(), len(spR.logs.String())
		spR.SetPeers(t, client("a", a, nil), client("b", b, nil))
		spB.WaitLearned(t, "all of A's blocks at B", sessionTimeout, exactly(via("10.244.1.0/26"), via("10.244.2.0/26"), via("10.244.3.0/26")))
		t.Logf("filter removed: 10.244.2.0/26 at B %s later", time.Since(changed).Round(time.Millisecond))
		noFlaps(t)
		onlyAReimported(t, logStart)
	})

	t.Run("putting the filter back withdraws the route from the other client, live", func(t *testing.T) {
		changed, logStart := time.Now(), len(spR.logs.String())
		spR.SetPeers(t, client("a", a, filters), client("b", b, nil))
		spB.WaitLearned(t, "10.244.2.0/26 withdrawn from B", sessionTimeout, exactly(via("10.244.1.0/26"), via("10.244.3.0/26")))
		t.Logf("filter back: 10.244.2.0/26 gone from B %s later", time.Since(changed).Round(time.Millisecond))
		noFlaps(t)
		onlyAReimported(t, logStart)
	})
}
