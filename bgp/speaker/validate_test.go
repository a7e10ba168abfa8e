package speaker

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var (
	rid   = netip.MustParseAddr("10.0.0.1")
	peerA = netip.MustParseAddr("10.0.0.2")
	peerB = netip.MustParseAddr("10.0.0.3")
)

func TestValidateConfig(t *testing.T) {
	cases := []struct {
		name    string
		opts    Options
		wantErr string
		check   func(t *testing.T, c Options)
	}{
		{name: "minimal", opts: Options{RouterID: rid, ASN: 64512}, check: func(t *testing.T, c Options) {
			if c.Logger == nil || c.InitialSyncTimeout != DefaultInitialSyncTimeout {
				t.Errorf("defaults not filled: %+v", c)
			}
		}},
		{name: "IPv6 router ID", opts: Options{RouterID: netip.MustParseAddr("fd00::1"), ASN: 1}, wantErr: "router ID"},
		{name: "no router ID", opts: Options{ASN: 1}, wantErr: "router ID"},
		{name: "ASN 0", opts: Options{RouterID: rid}, wantErr: "ASN 0"},
		{name: "port -1", opts: Options{RouterID: rid, ASN: 1, ListenPort: -1}, wantErr: "listen port"},
		{name: "port too big", opts: Options{RouterID: rid, ASN: 1, ListenPort: 70000}, wantErr: "listen port"},
		{name: "addresses without port", opts: Options{RouterID: rid, ASN: 1, ListenAddresses: []string{"10.0.0.1"}}, wantErr: "listen port 0"},
		{name: "bad listen address", opts: Options{RouterID: rid, ASN: 1, ListenPort: 179, ListenAddresses: []string{"nope"}}, wantErr: "listen address"},
		{name: "GR default time", opts: Options{RouterID: rid, ASN: 1, GracefulRestart: &GROptions{Enabled: true}}, check: func(t *testing.T, c Options) {
			if c.GracefulRestart.RestartTime != DefaultRestartTime {
				t.Errorf("restart time = %s", c.GracefulRestart.RestartTime)
			}
		}},
		{name: "GR time too long", opts: Options{RouterID: rid, ASN: 1, GracefulRestart: &GROptions{Enabled: true, RestartTime: time.Hour * 2}}, wantErr: "graceful-restart time"},
		{name: "negative sync timeout", opts: Options{RouterID: rid, ASN: 1, InitialSyncTimeout: -time.Second}, wantErr: "sync timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := validateOptions(tc.opts)
			checkErr(t, err, tc.wantErr)
			if err == nil && tc.check != nil {
				tc.check(t, got)
			}
		})
	}
}

func TestValidateConfigDoesNotMutateCaller(t *testing.T) {
	gr := &GROptions{Enabled: true}
	if _, err := validateOptions(Options{RouterID: rid, ASN: 1, GracefulRestart: gr}); err != nil {
		t.Fatal(err)
	}
	if gr.RestartTime != 0 {
		t.Errorf("caller's GROptions was modified: %+v", gr)
	}
}

func TestValidatePeers(t *testing.T) {
	const secret = "hunter2-very-secret"
	ok := Peer{Name: "node-2", Address: peerA, ASN: 64512}
	with := func(f func(*Peer)) Peer { p := ok; f(&p); return p }
	cases := []struct {
		name    string
		peers   []Peer
		wantErr string
	}{
		{name: "ok", peers: []Peer{ok}},
		{name: "ok eBGP with everything", peers: []Peer{with(func(p *Peer) {
			p.ASN, p.Password, p.TTLSecurity, p.HoldTime, p.KeepaliveTime = 65001, secret, 1, 9*time.Second, 3*time.Second
			p.MaxPrefixes, p.SourceAddress, p.Port, p.Passive = 100, rid, 1179, true
		})}},
		{name: "ok RR client with cluster", peers: []Peer{with(func(p *Peer) { p.RouteReflectorClient, p.RouteReflectorClusterID = true, "1.2.3.4" })}},
		{name: "no address", peers: []Peer{with(func(p *Peer) { p.Address = netip.Addr{} })}, wantErr: "address"},
		{name: "unspecified address", peers: []Peer{with(func(p *Peer) { p.Address = netip.IPv4Unspecified() })}, wantErr: "address"},
		{name: "multicast", peers: []Peer{with(func(p *Peer) { p.Address = netip.MustParseAddr("224.0.0.5") })}, wantErr: "address"},
		{name: "zoned", peers: []Peer{with(func(p *Peer) { p.Address = netip.MustParseAddr("fe80::1%eth0") })}, wantErr: "zoned"},
		{name: "ASN 0", peers: []Peer{with(func(p *Peer) { p.ASN = 0 })}, wantErr: "ASN 0"},
		{name: "connect retry under GoBGP's floor", peers: []Peer{with(func(p *Peer) { p.ConnectRetry = time.Second })}, wantErr: "connect retry 1s"},
		{name: "connect retry not whole seconds", peers: []Peer{with(func(p *Peer) { p.ConnectRetry = 2500 * time.Millisecond })}, wantErr: "whole seconds"},
		{name: "connect retry at the floor", peers: []Peer{with(func(p *Peer) { p.ConnectRetry = 2 * time.Second })}},
		{name: "password too long", peers: []Peer{with(func(p *Peer) { p.Password = strings.Repeat(secret, 10) })}, wantErr: "at most 80"},
		{name: "GTSM over IPv6", peers: []Peer{with(func(p *Peer) { p.Address, p.TTLSecurity = netip.MustParseAddr("fd00::2"), 1 })}, wantErr: "IPv6 is not supported"},
		{name: "GTSM and multihop", peers: []Peer{with(func(p *Peer) { p.TTLSecurity, p.EBGPMultihop = 1, 2 })}, wantErr: "mutually exclusive"},
		{name: "hold too short", peers: []Peer{with(func(p *Peer) { p.HoldTime = time.Second })}, wantErr: "hold time"},
		{name: "keepalive >= hold", peers: []Peer{with(func(p *Peer) { p.HoldTime, p.KeepaliveTime = 9*time.Second, 9*time.Second })}, wantErr: "keepalive"},
		{name: "keepalive with default hold", peers: []Peer{with(func(p *Peer) { p.KeepaliveTime = 10 * time.Second })}},
		{name: "keepalive above default hold", peers: []Peer{with(func(p *Peer) { p.KeepaliveTime = 100 * time.Second })}, wantErr: "below the hold time 1m30s"},
		{name: "negative timer", peers: []Peer{with(func(p *Peer) { p.HoldTime = -time.Second })}, wantErr: "negative"},
		{name: "RR client over eBGP", peers: []Peer{with(func(p *Peer) { p.ASN, p.RouteReflectorClient = 65001, true })}, wantErr: "must be iBGP"},
		{name: "cluster ID without client", peers: []Peer{with(func(p *Peer) { p.RouteReflectorClusterID = "1.2.3.4" })}, wantErr: "cluster ID"},
		{name: "cluster ID not IPv4", peers: []Peer{with(func(p *Peer) { p.RouteReflectorClient, p.RouteReflectorClusterID = true, "fd00::1" })}, wantErr: "cluster ID"},
		{name: "source of other family", peers: []Peer{with(func(p *Peer) { p.SourceAddress = netip.MustParseAddr("fd00::1") })}, wantErr: "source address"},
		{name: "duplicate address", peers: []Peer{ok, with(func(p *Peer) { p.Name = "other" })}, wantErr: "has the address"},
		{name: "duplicate via v4-mapped", peers: []Peer{ok, with(func(p *Peer) { p.Address = netip.AddrFrom16(peerA.As16()) })}, wantErr: "has the address"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Every case carries the password, so no error may show it.
			for i := range tc.peers {
				if tc.peers[i].Password == "" {
					tc.peers[i].Password = secret
				}
			}
			m, err := validatePeers(tc.peers, 64512)
			checkErr(t, err, tc.wantErr)
			if err != nil && strings.Contains(err.Error(), secret[:7]) {
				t.Errorf("error shows the password: %v", err)
			}
			want := len(tc.peers)
			if err != nil {
				want-- // the bad (or duplicate) one is the last
			}
			if len(m) != want {
				t.Errorf("kept %d peers, want %d", len(m), want)
			}
		})
	}
}

func TestValidateAdvertisements(t *testing.T) {
	cases := []struct {
		name    string
		ads     []Advertisement
		want    []netip.Prefix
		wantErr string
	}{
		{name: "block, borrowed /32, v6", ads: []Advertisement{
			{Prefix: netip.MustParsePrefix("10.244.1.0/26")},
			{Prefix: netip.MustParsePrefix("10.244.9.7/32"), Communities: []uint32{64512<<16 | 100}},
			{Prefix: netip.MustParsePrefix("fd00:10:244::/122")},
		}, want: []netip.Prefix{netip.MustParsePrefix("10.244.1.0/26"), netip.MustParsePrefix("10.244.9.7/32"), netip.MustParsePrefix("fd00:10:244::/122")}},
		{name: "unmasked is masked", ads: []Advertisement{{Prefix: netip.MustParsePrefix("10.244.1.5/26")}}, want: []netip.Prefix{netip.MustParsePrefix("10.244.1.0/26")}},
		{name: "empty list", ads: nil},
		{name: "default v4", ads: []Advertisement{{Prefix: netip.MustParsePrefix("0.0.0.0/0")}}, wantErr: "default route"},
		{name: "default v6", ads: []Advertisement{{Prefix: netip.MustParsePrefix("::/0")}}, wantErr: "default route"},
		{name: "zero prefix", ads: []Advertisement{{}}, wantErr: "invalid prefix"},
		{name: "loopback", ads: []Advertisement{{Prefix: netip.MustParsePrefix("127.0.0.0/8")}}, wantErr: "unicast"},
		{name: "link-local gateway", ads: []Advertisement{{Prefix: netip.MustParsePrefix("169.254.1.1/32")}}, wantErr: "unicast"},
		{name: "multicast", ads: []Advertisement{{Prefix: netip.MustParsePrefix("239.0.0.0/8")}}, wantErr: "unicast"},
		{name: "v4-mapped", ads: []Advertisement{{Prefix: netip.MustParsePrefix("::ffff:10.0.0.0/104")}}, wantErr: "IPv4-mapped"},
		{name: "duplicate keeps the first", ads: []Advertisement{{Prefix: netip.MustParsePrefix("10.244.1.0/26")}, {Prefix: netip.MustParsePrefix("10.244.1.1/26")}},
			want: prefixes("10.244.1.0/26"), wantErr: "twice"},
		{name: "a bad entry does not withdraw the good ones", ads: []Advertisement{{Prefix: netip.MustParsePrefix("10.244.1.0/26")}, {Prefix: netip.MustParsePrefix("0.0.0.0/0")}, {Prefix: netip.MustParsePrefix("10.96.0.0/12")}},
			want: prefixes("10.244.1.0/26", "10.96.0.0/12"), wantErr: "default route"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := validateAdvertisements(tc.ads)
			checkErr(t, err, tc.wantErr)
			if len(m) != len(tc.want) {
				t.Fatalf("got %v, want %v", m, tc.want)
			}
			for _, p := range tc.want {
				if _, ok := m[p]; !ok {
					t.Errorf("missing %s in %v", p, m)
				}
			}
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q does not contain %q", err, want)
	case want != "" && !errors.Is(err, ErrInvalid):
		t.Fatalf("error %q does not wrap ErrInvalid", err)
	}
}

// The max-prefix restart time is a global setting that changes no
// session: applyGlobal compares the rest (sessionSettings) to decide
// between nothing, re-created sessions and a server restart.
func TestMaxPrefixRestartIsNoSessionSetting(t *testing.T) {
	base := Global{ASN: 64512, ListenPort: 179, GracefulRestart: GROptions{Enabled: true, RestartTime: time.Minute}, MaxPrefixRestart: 2 * time.Minute}
	for _, tc := range []struct {
		name   string
		change func(*Global)
		same   bool
	}{
		{"max-prefix restart time", func(g *Global) { g.MaxPrefixRestart = 15 * time.Second }, true},
		{"max-prefix restart time unset", func(g *Global) { g.MaxPrefixRestart = 0 }, true},
		{"graceful restart", func(g *Global) { g.GracefulRestart.Enabled = false }, false},
		{"listen port", func(g *Global) { g.ListenPort = 1790 }, false},
		{"AS", func(g *Global) { g.ASN = 64513 }, false},
	} {
		g := base
		tc.change(&g)
		if got := g.sessionSettings() == base.sessionSettings(); got != tc.same {
			t.Errorf("%s: same session settings %v, want %v", tc.name, got, tc.same)
		}
	}
	if _, err := validateGlobal(Global{ASN: 1, ListenPort: 179, MaxPrefixRestart: -time.Second}, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("a negative max-prefix restart time: %v, want ErrInvalid", err)
	}
}
