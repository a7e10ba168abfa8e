package speaker

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	gobgp "github.com/osrg/gobgp/v4/pkg/server"
)

// TestSessionFamilies: a session carries its address's family, and with
// BothFamilies the other one too (MP-BGP), each with its own prefix limit
// and graceful-restart settings.
func TestSessionFamilies(t *testing.T) {
	v4 := netip.MustParseAddr("172.30.1.1")
	v6 := netip.MustParseAddr("fd30:0:0:1::1")
	tests := []struct {
		name string
		peer Peer
		want []api.Family_Afi
	}{
		{"IPv4 peer", Peer{Address: v4, ASN: 65001}, []api.Family_Afi{api.Family_AFI_IP}},
		{"IPv6 peer", Peer{Address: v6, ASN: 65001}, []api.Family_Afi{api.Family_AFI_IP6}},
		{"IPv4 peer carrying IPv6", Peer{Address: v4, ASN: 65001, BothFamilies: true, MaxPrefixes: 50}, []api.Family_Afi{api.Family_AFI_IP, api.Family_AFI_IP6}},
		{"IPv6 peer carrying IPv4", Peer{Address: v6, ASN: 65001, BothFamilies: true, MaxPrefixes: 50}, []api.Family_Afi{api.Family_AFI_IP6, api.Family_AFI_IP}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := toAPIPeer(tc.peer, peerLocal{asn: 64512, routerID: netip.MustParseAddr("10.0.0.1"), gr: &GROptions{Enabled: true, RestartTime: DefaultRestartTime}})
			var got []api.Family_Afi
			for _, as := range out.AfiSafis {
				got = append(got, as.Config.Family.Afi)
				if as.Config.Family.Safi != api.Family_SAFI_UNICAST || !as.Config.Enabled || !as.MpGracefulRestart.Config.Enabled ||
					as.PrefixLimits.MaxPrefixes != tc.peer.MaxPrefixes || as.PrefixLimits.Family.Afi != as.Config.Family.Afi {
					t.Errorf("family %v configured as %+v", as.Config.Family, as)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("families %v, want %v", got, tc.want)
			}
		})
	}
}

// TestValidateFamilies: a session carrying both families needs the node's
// address of the other family as next hop; without it the peer is left
// out and named, the others kept.
func TestValidateFamilies(t *testing.T) {
	v4 := netip.MustParseAddr("172.30.1.1")
	v6 := netip.MustParseAddr("fd30:0:0:1::1")
	both4 := Peer{Name: "tor-v4", Address: v4, ASN: 65001, BothFamilies: true}
	both6 := Peer{Name: "tor-v6", Address: v6, ASN: 65001, BothFamilies: true}
	plain := Peer{Name: "mesh", Address: netip.MustParseAddr("172.30.1.12"), ASN: 64512}
	tests := []struct {
		name     string
		opts     Options
		want     []string
		wantErrs []string
	}{
		{"both next hops", Options{NextHop4: netip.MustParseAddr("172.30.1.11"), NextHop6: netip.MustParseAddr("fd30:0:0:1::b")}, []string{"mesh", "tor-v4", "tor-v6"}, nil},
		{"no IPv6 next hop: IPv6 over IPv4 refused", Options{NextHop4: netip.MustParseAddr("172.30.1.11")}, []string{"mesh", "tor-v6"}, []string{"tor-v4"}},
		{"none: both refused", Options{}, []string{"mesh"}, []string{"tor-v4", "tor-v6"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := map[netip.Addr]Peer{v4: both4, v6: both6, plain.Address: plain}
			err := validateFamilies(m, tc.opts)
			var got []string
			for _, p := range m {
				got = append(got, p.Name)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("kept %v, want %v", got, tc.want)
			}
			if (err == nil) != (len(tc.wantErrs) == 0) || (err != nil && !errors.Is(err, ErrInvalid)) {
				t.Errorf("error %v, want one naming %v", err, tc.wantErrs)
			}
			for _, name := range tc.wantErrs {
				if err == nil || !strings.Contains(err.Error(), name) {
					t.Errorf("error %v does not name %s", err, name)
				}
			}
		})
	}
}

// TestAdvertisedPathNextHop: a configured next hop goes into the path (so
// GoBGP sends it on sessions of either family); none leaves it
// unspecified (next hop self).
func TestAdvertisedPathNextHop(t *testing.T) {
	for _, tc := range []struct{ prefix, nh string }{
		{"fd00:10:244::40/122", "fd30:0:0:1::b"},
		{"10.244.1.0/26", "172.30.1.11"},
	} {
		path, err := advertisedPath(netip.MustParsePrefix(tc.prefix), adAttrs{}, netip.MustParseAddr(tc.nh))
		if err != nil {
			t.Fatal(err)
		}
		c, ok := candidateFromAPI(path)
		if !ok || c.NextHop != netip.MustParseAddr(tc.nh) {
			t.Errorf("%s: next hop %v, want %s", tc.prefix, c.NextHop, tc.nh)
		}
	}
	if _, err := validateOptions(Options{RouterID: netip.MustParseAddr("10.0.0.1"), ASN: 1, NextHop6: netip.MustParseAddr("10.0.0.1")}); !errors.Is(err, ErrInvalid) {
		t.Errorf("an IPv4 NextHop6 was accepted: %v", err)
	}
}

// TestCrossFamilyNextHops: paths of a family get the node's address as next
// hop only while a session of the other family carries them; otherwise
// next hop self, as every session has always had.
func TestCrossFamilyNextHops(t *testing.T) {
	nh4, nh6 := netip.MustParseAddr("172.30.1.11"), netip.MustParseAddr("fd30:0:0:1::b")
	opts := Options{NextHop4: nh4, NextHop6: nh6}
	v4 := Peer{Address: netip.MustParseAddr("172.30.1.1"), ASN: 65001}
	v6 := Peer{Address: netip.MustParseAddr("fd30:0:0:1::1"), ASN: 65001}
	both4, both6 := v4, v6
	both4.BothFamilies, both6.BothFamilies = true, true
	tests := []struct {
		name  string
		peers []Peer
		opts  Options
		want  map[bgp.Family]netip.Addr
	}{
		{"one session per family: next hop self", []Peer{v4, v6}, opts, map[bgp.Family]netip.Addr{}},
		{"IPv6 over IPv4", []Peer{both4}, opts, map[bgp.Family]netip.Addr{bgp.RF_IPv6_UC: nh6}},
		{"IPv4 over IPv6", []Peer{both6}, opts, map[bgp.Family]netip.Addr{bgp.RF_IPv4_UC: nh4}},
		{"both ways", []Peer{both4, both6}, opts, map[bgp.Family]netip.Addr{bgp.RF_IPv4_UC: nh4, bgp.RF_IPv6_UC: nh6}},
		{"no next hop configured", []Peer{both4}, Options{}, map[bgp.Family]netip.Addr{}},
	}
	for _, tc := range tests {
		m := map[netip.Addr]Peer{}
		for _, p := range tc.peers {
			m[p.Address] = p
		}
		if got := crossFamilyNextHops(m, tc.opts); !maps.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestGoBGPTablesOnlyForUnicast: the speaker's GoBGP keeps tables for
// IPv4 and IPv6 unicast only. With GoBGP's default (every family it
// knows) a fresh server held about 8 MiB of empty tables (issue 15); the
// heap a started server adds is logged.
func TestGoBGPTablesOnlyForUnicast(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	srv := gobgp.NewBgpServer()
	go srv.Serve()
	defer srv.Stop()
	s := &Speaker{opts: Options{RouterID: netip.MustParseAddr("10.0.0.1")}}
	ctx := context.Background()
	if err := s.startGoBGP(ctx, srv, Global{ASN: 64512}); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("a started GoBGP server holds %.1f MiB more heap", float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20))
	for _, tc := range []struct {
		fam  bgp.Family
		want bool
	}{{bgp.RF_IPv4_UC, true}, {bgp.RF_IPv6_UC, true}, {bgp.RF_IPv4_VPN, false}, {bgp.RF_EVPN, false}, {bgp.RF_FS_IPv4_UC, false}} {
		afi, safi := tc.fam.Afi(), tc.fam.Safi()
		_, err := srv.GetTable(ctx, &api.GetTableRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL,
			Family: &api.Family{Afi: api.Family_Afi(afi), Safi: api.Family_Safi(safi)}})
		if got := err == nil; got != tc.want {
			t.Errorf("global table of %v: exists %v (err %v), want %v", tc.fam, got, err, tc.want)
		}
	}
}
