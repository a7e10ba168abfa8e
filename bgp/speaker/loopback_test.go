package speaker

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

const sessionTimeout = 30 * time.Second

// freeLoopbackPort picks a TCP port on 127.0.0.1 nobody listens on.
func freeLoopbackPort(t *testing.T) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

// rogueRouter is a bare GoBGP with GoBGP's accept-everything defaults, in
// this test process (the only GoBGP in it). It announces what a careless
// router would: a default route, a prefix outside the pools and one inside.
type rogueRouter struct {
	local netip.Addr
	t     *testing.T
	srv   *server.BgpServer
}

func startRogueRouter(t *testing.T, asn uint32, routerID, local, peer netip.Addr, peerASN uint32, peerPort int32, announce ...string) *rogueRouter {
	t.Helper()
	return startRogueRouterGR(t, 0, asn, routerID, local, peer, peerASN, peerPort, announce...)
}

// startRogueRouterGR is startRogueRouter with graceful restart negotiated
// (restart time grSeconds) when grSeconds > 0.
func startRogueRouterGR(t *testing.T, grSeconds uint32, asn uint32, routerID, local, peer netip.Addr, peerASN uint32, peerPort int32, announce ...string) *rogueRouter {
	t.Helper()
	srv := server.NewBgpServer()
	go srv.Serve()
	t.Cleanup(srv.Stop)
	ctx := context.Background()
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: asn, RouterId: routerID.String(), ListenPort: -1}}); err != nil {
		t.Fatal(err)
	}
	ap := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: peer.String(), PeerAsn: peerASN},
		Transport: &api.Transport{LocalAddress: local.String(), RemotePort: uint32(peerPort)},
		Timers:    &api.Timers{Config: &api.TimersConfig{ConnectRetry: 1}},
	}
	if grSeconds > 0 {
		fam := apiFamily(bgp.RF_IPv4_UC)
		ap.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: grSeconds}
		ap.AfiSafis = []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: fam, Enabled: true},
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}}}
	}
	if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: ap}); err != nil {
		t.Fatal(err)
	}
	r := &rogueRouter{t: t, srv: srv, local: local}
	r.announce(announce...)
	return r
}

// announce adds paths for the prefixes, next hop the router's address.
func (r *rogueRouter) announce(prefixes ...string) {
	r.t.Helper()
	srv, local, t := r.srv, r.local, r.t
	for _, s := range prefixes {
		pfx := netip.MustParsePrefix(s)
		nlri, _ := bgp.NewIPAddrPrefix(pfx)
		nh, _ := bgp.NewPathAttributeNextHop(local)
		if _, err := srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{{
			Family: bgp.RF_IPv4_UC, Nlri: nlri,
			Attrs: []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(0), nh},
		}}}); err != nil {
			t.Fatalf("rogue router: announce %s: %v", s, err)
		}
	}
}

// received lists "prefix via nexthop" of every path the router learned.
func (r *rogueRouter) received() []string {
	var out []string
	_ = r.srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: bgp.RF_IPv4_UC},
		func(_ bgp.NLRI, paths []*apiutil.Path) {
			for _, p := range paths {
				c, ok := candidateFromAPI(p)
				if ok && c.Peer.IsValid() { // not its own
					out = append(out, c.Prefix.String()+" via "+c.NextHop.String())
				}
			}
		})
	slices.Sort(out)
	return out
}

// waitReceived waits until the router's learned set equals want.
func (r *rogueRouter) waitReceived(timeout time.Duration, want ...string) {
	r.t.Helper()
	slices.Sort(want)
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		got := r.received()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("router received %v, want %v", got, want)
		}
		<-tick.C
	}
}

// TestSpeakersOverLoopback runs three speakers as processes on 127.0.0.1-3
// and a careless eBGP router on 127.0.0.4, no root needed. A listens; the
// others connect to it.
func TestSpeakersOverLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real BGP sessions over loopback (a few seconds); skipped with -short")
	}
	const (
		asn      = 64512
		password = "loopback-md5-Secret-42"
	)
	lo := func(i byte) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, i}) }
	port := freeLoopbackPort(t)
	gr := &GROptions{Enabled: true, RestartTime: 30 * time.Second}

	a := startSpeaker(t, "A", "", helperConfig{RouterID: netip.MustParseAddr("10.0.0.1"), ASN: asn, ListenPort: port,
		ListenAddresses: []string{"127.0.0.1"}, GracefulRestart: gr, InitialSyncTimeout: 20 * time.Second,
		MaxPrefixRestart: 2 * time.Second})
	b := startSpeaker(t, "B", "", helperConfig{RouterID: netip.MustParseAddr("10.0.0.2"), ASN: asn, GracefulRestart: gr})
	c := startSpeaker(t, "C", "", helperConfig{RouterID: netip.MustParseAddr("10.0.0.3"), ASN: asn, GracefulRestart: gr})

	pools := []string{"10.244.0.0/16"}
	for _, s := range []*speakerProc{a, b, c} {
		s.SetFilter(t, pools...)
	}
	rogue := Peer{Name: "rogue", Address: lo(4), ASN: 65001, Passive: true, MaxPrefixes: 100}
	a.SetPeers(t,
		Peer{Name: "B", Address: lo(2), ASN: asn, Passive: true, Password: password, HoldTime: 9 * time.Second},
		Peer{Name: "C", Address: lo(3), ASN: asn, Passive: true},
		rogue,
	)
	b.SetPeers(t, Peer{Name: "A", Address: lo(1), ASN: asn, Port: uint16(port), SourceAddress: lo(2), Password: password, HoldTime: 9 * time.Second})
	c.SetPeers(t, Peer{Name: "A", Address: lo(1), ASN: asn, Port: uint16(port), SourceAddress: lo(3)})

	// No session before the first SetAdvertisements (End-of-RIB must not
	// precede our routes).
	for _, st := range a.States(t) {
		if st.State == StateEstablished || !strings.Contains(st.LastError, "SetAdvertisements") {
			t.Errorf("before SetAdvertisements: %+v", st)
		}
	}
	// 10.244.50.0/24 is a service range both B and C announce: ECMP at A.
	a.SetAds(t, "10.244.1.0/26")
	b.SetAds(t, "10.244.2.0/26", "10.244.9.9/32", "10.244.50.0/24", "192.0.2.0/24")
	c.SetAds(t, "10.244.3.0/26", "10.244.50.0/24")
	r := startRogueRouter(t, 65001, netip.MustParseAddr("10.0.0.9"), lo(4), lo(1), asn, port,
		"0.0.0.0/0", "198.51.100.0/24", "10.244.7.0/26", "10.244.1.0/26")

	t.Run("sessions establish, with MD5 between A and B", func(t *testing.T) {
		st := a.WaitEstablished(t, sessionTimeout)
		b.WaitEstablished(t, sessionTimeout)
		c.WaitEstablished(t, sessionTimeout)
		for _, s := range st {
			if s.Uptime < 0 || s.LastError != "" {
				t.Errorf("state %+v", s)
			}
		}
	})

	t.Run("import: pool prefixes only, ECMP, never a default route nor our own block", func(t *testing.T) {
		got := a.WaitLearned(t, "learned set", sessionTimeout, exactly(
			"10.244.2.0/26 via 127.0.0.2",
			"10.244.9.9/32 via 127.0.0.2",
			"10.244.3.0/26 via 127.0.0.3",
			"10.244.50.0/24 via 127.0.0.2",
			"10.244.50.0/24 via 127.0.0.3",
			"10.244.7.0/26 via 127.0.0.4",
		))
		if i := slices.IndexFunc(got, func(p Path) bool { return p.Prefix.String() == "10.244.50.0/24" }); got[i].NextHop != lo(2) || got[i+1].NextHop != lo(3) {
			t.Errorf("ECMP paths not in next-hop order: %v", got)
		}
		st := a.WaitStates(t, "rogue's prefixes counted", sessionTimeout, func(st []PeerState) bool {
			i := slices.IndexFunc(st, func(s PeerState) bool { return s.Name == "rogue" })
			return st[i].Received == 4
		})
		i := slices.IndexFunc(st, func(s PeerState) bool { return s.Name == "rogue" })
		// 10.244.7.0/26 and 10.244.1.0/26 pass the pool filter; only the
		// first is handed on (the second is our own block).
		if st[i].Accepted != 2 || st[i].Advertised != 1 {
			t.Errorf("rogue counters: %+v", st[i])
		}
	})

	t.Run("export: only our own advertisement, next hop self, learned routes never redistributed", func(t *testing.T) {
		r.waitReceived(sessionTimeout, "10.244.1.0/26 via 127.0.0.1")
	})

	t.Run("withdraw on SetAdvertisements removal", func(t *testing.T) {
		b.SetAds(t, "10.244.2.0/26", "10.244.50.0/24", "192.0.2.0/24")
		a.WaitLearned(t, "borrowed /32 withdrawn", sessionTimeout, func(p []Path) bool {
			return !hasPrefix(p, "10.244.9.9/32") && has(p, "10.244.2.0/26", "127.0.0.2")
		})
		c.SetAds(t, "10.244.3.0/26")
		a.WaitLearned(t, "ECMP shrinks to one path", sessionTimeout, func(p []Path) bool {
			return has(p, "10.244.50.0/24", "127.0.0.2") && !has(p, "10.244.50.0/24", "127.0.0.3")
		})
	})

	t.Run("import filter changes apply to routes already received", func(t *testing.T) {
		a.SetFilter(t, "10.244.2.0/24")
		a.WaitLearned(t, "narrowed", sessionTimeout, exactly("10.244.2.0/26 via 127.0.0.2"))
		a.SetFilter(t, "10.244.0.0/16", "192.0.2.0/24")
		a.WaitLearned(t, "widened (soft reset in re-admits rejected paths)", sessionTimeout, exactly(
			"10.244.2.0/26 via 127.0.0.2",
			"10.244.3.0/26 via 127.0.0.3",
			"10.244.50.0/24 via 127.0.0.2",
			"10.244.7.0/26 via 127.0.0.4",
			"192.0.2.0/24 via 127.0.0.2",
		))
		a.SetFilter(t, "0.0.0.0/0")
		a.WaitLearned(t, "a /0 filter admits nothing", sessionTimeout, exactly())
		a.SetFilter(t, pools...)
	})

	t.Run("a max-prefix shutdown drops the peer's routes at once, with graceful restart", func(t *testing.T) {
		// The flooding peer negotiated graceful restart with a long
		// restart time: its routes must still leave at the shutdown, not
		// stay stale and installed for those 120 s.
		grRogue := Peer{Name: "gr-rogue", Address: lo(7), ASN: 65002, Passive: true, MaxPrefixes: 3}
		a.SetPeers(t,
			Peer{Name: "B", Address: lo(2), ASN: asn, Passive: true, Password: password, HoldTime: 9 * time.Second},
			Peer{Name: "C", Address: lo(3), ASN: asn, Passive: true},
			rogue, grRogue,
		)
		gr := startRogueRouterGR(t, 120, 65002, netip.MustParseAddr("10.0.0.7"), lo(7), lo(1), asn, port, "10.244.8.0/26", "10.244.8.64/26")
		a.WaitLearned(t, "gr-rogue's routes", sessionTimeout, func(p []Path) bool { return has(p, "10.244.8.0/26", "127.0.0.7") })
		i := slices.IndexFunc(a.States(t), func(s PeerState) bool { return s.Name == "gr-rogue" })
		gr.announce("10.244.8.128/26", "10.244.8.192/26") // 4 > 3
		over := time.Now()
		a.WaitLearned(t, "gr-rogue's routes gone at the shutdown", sessionTimeout, func(p []Path) bool { return !hasPrefix(p, "10.244.8.0/26") })
		gone := time.Since(over)
		st := a.WaitStates(t, "gr-rogue shut down for max-prefix", sessionTimeout, func(st []PeerState) bool {
			return st[i].State != StateEstablished && IsMaxPrefixes(st[i].LastError)
		})
		t.Logf("gr-rogue went over its limit; its routes left the learned set %v later (graceful restart time 120s); state %+v", gone.Round(time.Millisecond), st[i])
		if gone > 20*time.Second {
			t.Errorf("routes of a peer shut for max-prefix stayed %v: kept as graceful-restart stale", gone)
		}
		st = a.WaitStates(t, "gr-rogue tried again after the idle time, and shut again", sessionTimeout, func(st []PeerState) bool {
			return st[i].Flaps >= 2 && IsMaxPrefixes(st[i].LastError)
		})
		a.HoldsLearned(t, "none of gr-rogue's routes while it floods", 3*time.Second, func(p []Path) bool { return !hasPrefix(p, "10.244.8.0/26") })
	})

	t.Run("max prefixes shuts a flooding peer down", func(t *testing.T) {
		rogue.MaxPrefixes = 2
		a.SetPeers(t,
			Peer{Name: "B", Address: lo(2), ASN: asn, Passive: true, Password: password, HoldTime: 9 * time.Second},
			Peer{Name: "C", Address: lo(3), ASN: asn, Passive: true},
			rogue,
		)
		a.WaitLearned(t, "rogue's routes gone", sessionTimeout, func(p []Path) bool { return !hasPrefix(p, "10.244.7.0/26") })
		st := a.WaitStates(t, "rogue shut down", sessionTimeout, func(st []PeerState) bool {
			i := slices.IndexFunc(st, func(s PeerState) bool { return s.Name == "rogue" })
			return st[i].State != StateEstablished && IsMaxPrefixes(st[i].LastError)
		})
		t.Logf("after max-prefix: %+v", st)
		// Tried again after the idle time (2s here), and shut again: the
		// rogue still sends too much. Each cycle is one more flap.
		flaps := st[slices.IndexFunc(st, func(s PeerState) bool { return s.Name == "rogue" })].Flaps
		st = a.WaitStates(t, "rogue tried again after the idle time", sessionTimeout, func(st []PeerState) bool {
			i := slices.IndexFunc(st, func(s PeerState) bool { return s.Name == "rogue" })
			return st[i].Flaps > flaps && IsMaxPrefixes(st[i].LastError)
		})
		t.Logf("after the idle time: %+v", st)
	})

	t.Run("the password is in no log, error or status", func(t *testing.T) {
		texts := map[string]string{"A's logs": a.logs.String(), "B's logs": b.logs.String()}
		for _, s := range []*speakerProc{a, b} {
			for _, st := range s.States(t) {
				texts[s.name+"'s status"] += st.LastError + st.Name
			}
		}
		// A peer rejected by validation, with the password in it.
		m := a.call(t, helperCmd{Op: "peers", Peers: []Peer{{Name: "bad", Address: lo(5), ASN: asn, Password: password, TTLSecurity: 1, EBGPMultihop: 2}}})
		texts["a SetPeers error"] = m.Err
		if m.Err == "" {
			t.Error("invalid peer accepted")
		}
		mustNotContain(t, password, texts)
		if !strings.Contains(a.logs.String(), `"md5":true`) {
			t.Error("logs do not say MD5 is on (is the log test looking at the right output?)")
		}
	})

	t.Run("stop is clean", func(t *testing.T) {
		c.Stop(t)
		b.Stop(t)
		a.Stop(t)
		for _, s := range []*speakerProc{a, b, c} {
			if strings.Contains(s.logs.String(), gobgpStopNoise) {
				t.Errorf("speaker %s logged GoBGP's stop noise", s.name)
			}
		}
	})
}
