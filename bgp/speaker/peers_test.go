package speaker

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"
)

func TestDiffPeers(t *testing.T) {
	a := Peer{Name: "a", Address: peerA, ASN: 64512}
	b := Peer{Name: "b", Address: peerB, ASN: 64512}
	c := Peer{Name: "c", Address: netip.MustParseAddr("10.0.0.4"), ASN: 65001}
	bNewPassword := b
	bNewPassword.Password = "changed"
	m := func(ps ...Peer) map[netip.Addr]Peer {
		out := map[netip.Addr]Peer{}
		for _, p := range ps {
			out[p.Address] = p
		}
		return out
	}
	cases := []struct {
		name                 string
		desired, actual      map[netip.Addr]Peer
		add, replace, remove []netip.Addr
	}{
		{name: "nothing", desired: m(), actual: m()},
		{name: "first set", desired: m(c, a, b), actual: m(), add: []netip.Addr{a.Address, b.Address, c.Address}},
		{name: "unchanged", desired: m(a, b), actual: m(a, b)},
		{name: "remove is actual minus desired", desired: m(a), actual: m(a, b, c), remove: []netip.Addr{b.Address, c.Address}},
		{name: "password change replaces", desired: m(a, bNewPassword), actual: m(a, b), replace: []netip.Addr{b.Address}},
		{name: "mixed", desired: m(a, bNewPassword), actual: m(b, c), add: []netip.Addr{a.Address}, replace: []netip.Addr{b.Address}, remove: []netip.Addr{c.Address}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := diffPeers(tc.desired, tc.actual)
			if !slices.Equal(got.Add, tc.add) || !slices.Equal(got.Replace, tc.replace) || !slices.Equal(got.Remove, tc.remove) {
				t.Errorf("got %+v, want add=%v replace=%v remove=%v", got, tc.add, tc.replace, tc.remove)
			}
			if got.empty() != (len(tc.add)+len(tc.replace)+len(tc.remove) == 0) {
				t.Errorf("empty() = %v", got.empty())
			}
		})
	}
}

func TestDiffAdvertisements(t *testing.T) {
	p1, p2, p3 := netip.MustParsePrefix("10.244.1.0/26"), netip.MustParsePrefix("10.244.2.0/26"), netip.MustParsePrefix("fd00::/122")
	cases := []struct {
		name                 string
		desired, actual      map[netip.Prefix]adAttrs
		add, replace, remove []netip.Prefix
	}{
		{name: "add", desired: map[netip.Prefix]adAttrs{p1: {}, p3: {}}, actual: map[netip.Prefix]adAttrs{}, add: []netip.Prefix{p1, p3}},
		{name: "withdraw", desired: map[netip.Prefix]adAttrs{p1: {}}, actual: map[netip.Prefix]adAttrs{p1: {}, p2: {}}, remove: []netip.Prefix{p2}},
		{name: "communities change re-adds", desired: map[netip.Prefix]adAttrs{p1: {communities: []uint32{1}}}, actual: map[netip.Prefix]adAttrs{p1: {communities: []uint32{2}}}, replace: []netip.Prefix{p1}},
		{name: "nil and empty communities are the same", desired: map[netip.Prefix]adAttrs{p1: {communities: []uint32{}}}, actual: map[netip.Prefix]adAttrs{p1: {}}},
		{name: "large communities change re-adds", desired: map[netip.Prefix]adAttrs{p1: {large: []LargeCommunity{{1, 2, 3}}}}, actual: map[netip.Prefix]adAttrs{p1: {}}, replace: []netip.Prefix{p1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := diffAdvertisements(tc.desired, tc.actual)
			if !slices.Equal(got.Add, tc.add) || !slices.Equal(got.Replace, tc.replace) || !slices.Equal(got.Remove, tc.remove) {
				t.Errorf("got %+v, want add=%v replace=%v remove=%v", got, tc.add, tc.replace, tc.remove)
			}
		})
	}
}

func TestToAPIPeer(t *testing.T) {
	gr := &GROptions{Enabled: true, RestartTime: 90 * time.Second}
	local := peerLocal{asn: 64512, routerID: rid}
	v4fam := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	v6fam := &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	cases := []struct {
		name  string
		peer  Peer
		local peerLocal
		check func(t *testing.T, p *api.Peer)
	}{
		{name: "plain iBGP", peer: Peer{Name: "n2", Address: peerA, ASN: 64512}, local: local, check: func(t *testing.T, p *api.Peer) {
			if p.Conf.NeighborAddress != "10.0.0.2" || p.Conf.PeerAsn != 64512 || p.Conf.AuthPassword != "" || p.Conf.Description != "n2" {
				t.Errorf("conf %v", p.Conf)
			}
			if p.TtlSecurity != nil || p.EbgpMultihop != nil || p.RouteReflector != nil || p.GracefulRestart != nil {
				t.Errorf("unexpected optional parts: %v", p)
			}
			if len(p.AfiSafis) != 1 || p.AfiSafis[0].Config.Family.String() != v4fam.String() || !p.AfiSafis[0].Config.Enabled {
				t.Errorf("families %v, want only IPv4 unicast", p.AfiSafis)
			}
			if p.Timers.Config.ConnectRetry != 5 || p.Timers.Config.HoldTime != 0 {
				t.Errorf("timers %v", p.Timers.Config)
			}
		}},
		{name: "connect retry of a session between nodes", peer: Peer{Address: peerA, ASN: 64512, ConnectRetry: 2 * time.Second}, local: local, check: func(t *testing.T, p *api.Peer) {
			if p.Timers.Config.ConnectRetry != 2 {
				t.Errorf("connect retry %d s, want 2", p.Timers.Config.ConnectRetry)
			}
		}},
		{name: "IPv6 peer carries IPv6 only", peer: Peer{Address: netip.MustParseAddr("fd00::2"), ASN: 64512}, local: local, check: func(t *testing.T, p *api.Peer) {
			if p.AfiSafis[0].Config.Family.String() != v6fam.String() {
				t.Errorf("family %v", p.AfiSafis[0].Config.Family)
			}
		}},
		{name: "GTSM one hop is min TTL 255", peer: Peer{Address: peerA, ASN: 1, TTLSecurity: 1}, local: local, check: func(t *testing.T, p *api.Peer) {
			if !p.TtlSecurity.Enabled || p.TtlSecurity.TtlMin != 255 {
				t.Errorf("ttl security %v", p.TtlSecurity)
			}
		}},
		{name: "GTSM three hops", peer: Peer{Address: peerA, ASN: 1, TTLSecurity: 3}, local: local, check: func(t *testing.T, p *api.Peer) {
			if p.TtlSecurity.TtlMin != 253 {
				t.Errorf("ttl min %d", p.TtlSecurity.TtlMin)
			}
		}},
		{name: "multihop", peer: Peer{Address: peerA, ASN: 1, EBGPMultihop: 4}, local: local, check: func(t *testing.T, p *api.Peer) {
			if !p.EbgpMultihop.Enabled || p.EbgpMultihop.MultihopTtl != 4 {
				t.Errorf("multihop %v", p.EbgpMultihop)
			}
		}},
		{name: "timers, keepalive defaults to a third", peer: Peer{Address: peerA, ASN: 1, HoldTime: 9 * time.Second}, local: local, check: func(t *testing.T, p *api.Peer) {
			if p.Timers.Config.HoldTime != 9 || p.Timers.Config.KeepaliveInterval != 3 {
				t.Errorf("timers %v", p.Timers.Config)
			}
		}},
		{name: "md5, limits, transport", peer: Peer{Address: peerA, ASN: 1, Password: "pw", MaxPrefixes: 500, Port: 1179, SourceAddress: rid, Passive: true}, local: local, check: func(t *testing.T, p *api.Peer) {
			if p.Conf.AuthPassword != "pw" || p.AfiSafis[0].PrefixLimits.MaxPrefixes != 500 {
				t.Errorf("password or limit not set: %v", p.AfiSafis[0].PrefixLimits)
			}
			if p.Transport.RemotePort != 1179 || p.Transport.LocalAddress != "10.0.0.1" || !p.Transport.PassiveMode {
				t.Errorf("transport %v", p.Transport)
			}
		}},
		{name: "RR client defaults cluster to router ID", peer: Peer{Address: peerA, ASN: 64512, RouteReflectorClient: true}, local: local, check: func(t *testing.T, p *api.Peer) {
			if !p.RouteReflector.RouteReflectorClient || p.RouteReflector.RouteReflectorClusterId != "10.0.0.1" {
				t.Errorf("rr %v", p.RouteReflector)
			}
		}},
		{name: "RR explicit cluster", peer: Peer{Address: peerA, ASN: 64512, RouteReflectorClient: true, RouteReflectorClusterID: "1.1.1.1"}, local: local, check: func(t *testing.T, p *api.Peer) {
			if p.RouteReflector.RouteReflectorClusterId != "1.1.1.1" {
				t.Errorf("rr %v", p.RouteReflector)
			}
		}},
		{name: "graceful restart per session and family", peer: Peer{Address: peerA, ASN: 64512}, local: peerLocal{asn: 64512, routerID: rid, gr: gr}, check: func(t *testing.T, p *api.Peer) {
			if !p.GracefulRestart.Enabled || p.GracefulRestart.RestartTime != 90 {
				t.Errorf("gr %v", p.GracefulRestart)
			}
			if !p.AfiSafis[0].MpGracefulRestart.Config.Enabled {
				t.Error("GR not enabled for the family: no End-of-RIB would be sent")
			}
		}},
		{name: "graceful restart disabled", peer: Peer{Address: peerA, ASN: 64512}, local: peerLocal{asn: 64512, routerID: rid, gr: &GROptions{}}, check: func(t *testing.T, p *api.Peer) {
			if p.GracefulRestart != nil || p.AfiSafis[0].MpGracefulRestart.Config.Enabled {
				t.Errorf("gr %v", p.GracefulRestart)
			}
		}},
		{name: "a peer of the restart claims forwarding state, deferred to the sync deadline", peer: Peer{Address: peerA, ASN: 64512},
			local: peerLocal{asn: 64512, routerID: rid, gr: gr, restarting: true, deferral: 12300 * time.Millisecond}, check: func(t *testing.T, p *api.Peer) {
				if !p.GracefulRestart.LocalRestarting || p.GracefulRestart.DeferralTime != 13 {
					t.Errorf("gr %v, want local restarting with a 13 s deferral", p.GracefulRestart)
				}
				if !p.AfiSafis[0].MpGracefulRestart.Config.Enabled {
					t.Error("GR not enabled for the family: GoBGP would set no F bit for it")
				}
			}},
		{name: "a peer added outside the restart claims nothing", peer: Peer{Address: peerA, ASN: 64512},
			local: peerLocal{asn: 64512, routerID: rid, gr: gr, deferral: time.Minute}, check: func(t *testing.T, p *api.Peer) {
				if p.GracefulRestart.LocalRestarting || p.GracefulRestart.DeferralTime != 0 {
					t.Errorf("gr %v, want no local restart", p.GracefulRestart)
				}
			}},
		{name: "no restart claimed without graceful restart", peer: Peer{Address: peerA, ASN: 64512},
			local: peerLocal{asn: 64512, routerID: rid, gr: &GROptions{}, restarting: true, deferral: time.Minute}, check: func(t *testing.T, p *api.Peer) {
				if p.GracefulRestart != nil {
					t.Errorf("gr %v", p.GracefulRestart)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, toAPIPeer(tc.peer, tc.local))
		})
	}
}

func TestDeferralSeconds(t *testing.T) {
	cases := []struct {
		in   time.Duration
		want uint32
	}{
		{in: 20 * time.Second, want: 20},
		{in: 19*time.Second + time.Millisecond, want: 20}, // never ends before the sync deadline
		{in: 300 * time.Millisecond, want: 1},
		{in: 0, want: 1},                   // deadline passed; 0 would be GoBGP's 360 s
		{in: -5 * time.Second, want: 1},    // deadline long passed
		{in: 100 * time.Hour, want: 65535}, // GoBGP's 16-bit field
	}
	for _, tc := range cases {
		if got := deferralSeconds(tc.in); got != tc.want {
			t.Errorf("deferralSeconds(%s) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
