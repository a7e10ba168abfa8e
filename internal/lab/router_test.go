package lab

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-net/cairn/internal/testenv"
)

func allRouterPlans(t *testing.T) map[string]RouterPlan {
	t.Helper()
	out := map[string]RouterPlan{}
	for _, racks := range []int{1, 2} {
		for _, bfd := range []bool{false, true} {
			p, err := NewPlan(PlanOptions{Racks: racks, NodesPerRack: 2, Router: RouterBIRD, BFD: bfd})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range p.Routers() {
				name := strings.Repeat("multi-", racks-1) + r.Name
				if bfd {
					name += "-bfd"
				}
				out[name] = r
			}
		}
	}
	// BFD on IPv6 sessions too.
	p, err := NewPlan(PlanOptions{Racks: 1, NodesPerRack: 2, Router: RouterBIRD, BFD: true, DualStack: true})
	if err != nil {
		t.Fatal(err)
	}
	out["dual-stack-tor1-bfd"] = p.Racks[0].ToR
	return out
}

// The rendered configurations are accepted by the daemons' own parsers.
func TestBirdConfigParses(t *testing.T) {
	testenv.Require(t, testenv.Binary("bird"))
	for name, rp := range allRouterPlans(t) {
		t.Run(name, func(t *testing.T) { checkBirdParses(t, birdConfig(rp)) })
	}
}

// checkBirdParses fails t when BIRD's own parser rejects config.
func checkBirdParses(t *testing.T, config string) {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "bird.conf")
	if err := os.WriteFile(conf, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bird", "-p", "-c", conf).CombinedOutput(); err != nil {
		t.Fatalf("bird -p rejects the config: %v\n%s\n%s", err, out, config)
	}
}

func TestFRRConfigParses(t *testing.T) {
	testenv.Require(t, testenv.Binary("vtysh"))
	for name, rp := range allRouterPlans(t) {
		t.Run(name, func(t *testing.T) {
			conf := filepath.Join(t.TempDir(), "bgpd.conf")
			if err := os.WriteFile(conf, []byte(frrBGPConfig(rp)), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("vtysh", "-C", "-f", conf).CombinedOutput(); err != nil {
				t.Fatalf("vtysh -C rejects the config: %v\n%s\n%s", err, out, frrBGPConfig(rp))
			}
		})
	}
	t.Run("bfdd", func(t *testing.T) {
		conf := filepath.Join(t.TempDir(), "bfdd.conf")
		if err := os.WriteFile(conf, []byte(frrBFDConfig()), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("vtysh", "-C", "-f", conf).CombinedOutput(); err != nil {
			t.Fatalf("vtysh -C rejects the config: %v\n%s\n%s", err, out, frrBFDConfig())
		}
	})
}

// What the BGP design depends on, per router and peer kind.
func TestRouterConfigPolicy(t *testing.T) {
	plans := allRouterPlans(t)
	cases := []struct {
		router  string
		bird    []string
		birdNot []string
		frr     []string
		frrNot  []string
	}{
		{
			router: "tor1",
			bird: []string{
				"neighbor 172.30.1.11 as 64512;", "local 172.30.1.1 as 65001;", "import filter from_nodes; export filter pool_only;",
				"define SERVICES = [ 10.96.0.0/16{16,32}, 10.97.0.0/24{24,32}, 10.98.0.0/24{24,32} ];",
				"filter from_nodes { if net ~ POOL || net ~ SERVICES then accept; reject; }", "merge paths on;",
			},
			birdNot: []string{"rr client", "protocol direct"},
			frr: []string{
				"neighbor 172.30.1.11 remote-as 64512", "neighbor 172.30.1.11 route-map FROM-NODES in", "neighbor 172.30.1.11 route-map POOL-ONLY out",
				"ip prefix-list SERVICES seq 10 permit 10.96.0.0/16 le 32", "ip prefix-list SERVICES seq 30 permit 10.98.0.0/24 le 32",
				"maximum-paths 64", "maximum-paths ibgp 64",
			},
			frrNot: []string{"route-reflector-client", "redistribute connected"},
		},
		{
			router: "multi-tor2",
			bird: []string{
				"neighbor 172.30.2.11 as 65002;", "rr client; rr cluster id 172.30.2.1;", "next hop self ebgp;",
				"neighbor 172.30.255.6 as 65100;", "import filter from_routers; export filter to_routers;", "protocol direct",
			},
			frr: []string{
				"neighbor 172.30.2.11 route-reflector-client", "neighbor 172.30.2.11 next-hop-self",
				"neighbor 172.30.255.6 route-map ROUTERS in", "neighbor 172.30.255.6 route-map ROUTERS out", "redistribute connected route-map CONNECTED",
			},
			frrNot: []string{"next-hop-self force"},
		},
		{
			router: "multi-spine",
			bird: []string{
				"neighbor 172.30.255.1 as 65001;", "neighbor 172.30.255.5 as 65002;", "local 172.30.255.2 as 65100;",
				"filter from_routers { if net ~ POOL || net ~ SERVICES || net ~ LAB then accept; reject; }",
				"if net ~ POOL || net ~ SERVICES then accept;",
			},
			birdNot: []string{"rr client"},
			frr: []string{
				"router bgp 65100", "neighbor 172.30.255.1 route-map ROUTERS out",
				"route-map ROUTERS permit 30\n match ip address prefix-list SERVICES",
				// The racks are different ASes: ECMP over them needs relax.
				"bgp bestpath as-path multipath-relax",
			},
			frrNot: []string{"route-reflector-client"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.router, func(t *testing.T) {
			rp, ok := plans[tc.router]
			if !ok {
				t.Fatalf("no router %s", tc.router)
			}
			checkContains(t, "BIRD", birdConfig(rp), tc.bird, tc.birdNot)
			checkContains(t, "FRR", frrBGPConfig(rp), tc.frr, tc.frrNot)
		})
	}
}

func checkContains(t *testing.T, what, conf string, want, notWant []string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(conf, w) {
			t.Errorf("%s config lacks %q:\n%s", what, w, conf)
		}
	}
	for _, w := range notWant {
		if strings.Contains(conf, w) {
			t.Errorf("%s config has %q:\n%s", what, w, conf)
		}
	}
}

func TestParseBirdProtocols(t *testing.T) {
	out := `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     2026-11-25 21:03:53  

kernel1    Kernel     master4    up     2026-11-25 21:03:53  
  Channel ipv4
    State:          UP

node1      BGP        ---        start  2026-11-25 21:03:53  Active        Socket: Connection refused
  Description:    node1
  BGP state:          Active
    Neighbor address: 172.30.1.11
    Neighbor AS:      65001
    Local AS:         65001
    Last error:       Socket: Connection refused
  Channel ipv4
    State:          DOWN

spine      BGP        ---        up     2026-11-25 21:03:54  Established   
  BGP state:          Established
    Neighbor address: 172.30.255.2
    Neighbor AS:      65100
`
	got := parseBirdProtocols(out)
	if len(got) != 2 {
		t.Fatalf("sessions = %+v, want node1 and spine", got)
	}
	if s := got[0]; s.Peer != "node1" || s.State != "Active" || s.Addr.String() != "172.30.1.11" || s.AS != 65001 || s.Info != "Socket: Connection refused" || s.Established() {
		t.Errorf("node1 = %+v", s)
	}
	if s := got[1]; s.Peer != "spine" || !s.Established() || s.Addr.String() != "172.30.255.2" || s.AS != 65100 ||
		s.Since.Format(time.DateTime) != "2026-11-25 21:03:54" {
		t.Errorf("spine = %+v", s)
	}
}

func TestParseBirdRoutes(t *testing.T) {
	out := "BIRD 2.0.12 ready.\nTable master4:\n" +
		"10.244.1.0/26        unicast [node1 2026-11-25 21:04:09] * (100) [AS64512i]\n\tvia 172.30.1.11 on br0\n" +
		"172.30.255.0/30      unicast [direct1 2026-11-25 21:03:53] * (240)\n\tdev spine\n" +
		"                     unicast [spine 2026-11-25 21:03:54] (100) [AS65100i]\n\tvia 172.30.255.2 on spine\n" +
		"10.244.2.0/26        unicast [node2 2026-11-25 21:04:09] * (100) [AS64512i]\n\tvia 172.30.1.12 on br0\n\tvia 172.30.1.13 on br0\n"
	got := parseBirdRoutes(out)
	want := []string{
		"10.244.1.0/26 172.30.1.11 node1 true",
		"172.30.255.0/30 172.30.255.2 spine false",
		"10.244.2.0/26 172.30.1.12 node2 true",
		"10.244.2.0/26 172.30.1.13 node2 true",
	}
	if len(got) != len(want) {
		t.Fatalf("routes = %+v, want %v", got, want)
	}
	for i, r := range got {
		if s := strings.Join([]string{r.Prefix.String(), r.NextHop.String(), r.From, boolString(r.Best)}, " "); s != want[i] {
			t.Errorf("route %d = %s, want %s", i, s, want[i])
		}
	}
}

func TestParseFRR(t *testing.T) {
	rp := RouterPlan{Name: "tor1", Peers: []Peer{{Name: "node1", Addr: mustAddr("172.30.1.11"), AS: 64512}, {Name: "node2", Addr: mustAddr("172.30.1.12"), AS: 64512}}}
	summary := `{"routerId":"172.30.1.1","as":65001,"peers":{"172.30.1.11":{"remoteAs":64512,"state":"Established","pfxRcd":1}}}`
	sessions, err := parseFRRSummary([]byte(summary), rp, "ipv4")
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 2 || sessions[0].Peer != "node1" || !sessions[0].Established() || sessions[1].Peer != "node2" || sessions[1].State != "Idle" {
		t.Errorf("sessions = %+v, want node1 Established and node2 Idle (missing from the summary)", sessions)
	}
	routes := `{"routes":{
	  "10.244.1.0/26":[{"valid":true,"bestpath":true,"peerId":"172.30.1.11","nexthops":[{"ip":"172.30.1.11","afi":"ipv4","used":true}]}],
	  "172.30.1.0/24":[{"valid":true,"bestpath":true,"peerId":"(unspec)","nexthops":[{"ip":"0.0.0.0"}]}],
	  "10.244.9.0/26":[{"valid":false,"peerId":"172.30.1.12","nexthops":[{"ip":"172.30.1.12"}]}]}}`
	got, err := parseFRRRoutes([]byte(routes), rp)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Prefix.String() != "10.244.1.0/26" || got[0].NextHop.String() != "172.30.1.11" || got[0].From != "node1" || !got[0].Best {
		t.Errorf("routes = %+v, want only the valid node1 route", got)
	}
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// zebra's client table, as FRR 8.4 prints it.
func TestZebraListsClient(t *testing.T) {
	out := []byte(`Name      Connect Time    Last Read  Last Write      IPv4 Routes           IPv6 Routes
------------------------------------------------------------------------------------------
bgp           00:01:38     00:00:02    00:00:02          3/0                   0/0
vnc           00:01:38     00:01:38    00:01:37          0/0                   0/0
Routes column shows (added+updated)/deleted
`)
	for proto, want := range map[string]bool{"bgp": true, "vnc": true, "bfd": false, "Name": true, "bg": false} {
		if got := zebraListsClient(out, proto); got != want {
			t.Errorf("zebraListsClient(%q) = %v, want %v", proto, got, want)
		}
	}
	if zebraListsClient(nil, "bgp") {
		t.Error("an empty table lists bgp")
	}
}

// FRR's daemons start in the order that lets bgpd's BFD registrations
// reach bfdd whatever the load (frrDriver.configure says why): zebra
// listening, then bgpd connected to it, then bfdd.
func TestFRRStartOrder(t *testing.T) {
	testenv.Require(t, testenv.Root)
	for name, rp := range allRouterPlans(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for _, d := range []string{filepath.Dir(dir), dir} {
				if err := os.Chmod(d, 0o755); err != nil { // FRR's user reaches it
					t.Fatal(err)
				}
			}
			cmds, err := frrDriver{}.configure(rp, dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, c := range cmds {
				names = append(names, c.name)
			}
			want := []string{"zebra", "bgpd"}
			if frrUsesBFD(rp) {
				want = append(want, "bfdd")
			}
			if strings.Join(names, ",") != strings.Join(want, ",") {
				t.Fatalf("daemons start as %v, want %v", names, want)
			}
			for _, c := range cmds[:2] {
				if c.ready == nil {
					t.Errorf("%s: the next daemon starts without waiting for it", c.name)
				}
			}
		})
	}
}
