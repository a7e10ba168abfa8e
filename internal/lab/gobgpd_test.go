package lab

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cairn-net/cairn/internal/testenv"
)

func gobgpdPlans(t *testing.T) map[string]RouterPlan {
	t.Helper()
	out := map[string]RouterPlan{}
	for _, ds := range []bool{false, true} {
		p, err := NewPlan(PlanOptions{Racks: 1, NodesPerRack: 2, Router: RouterGoBGPD, DualStack: ds})
		if err != nil {
			t.Fatal(err)
		}
		p.setNodePasswords("md5-" + "key")
		name := "tor1"
		if ds {
			name = "dual-stack-tor1"
		}
		out[name] = p.Racks[0].ToR
	}
	return out
}

// gobgpd's own parser (--dry-run) accepts the rendered configurations.
func TestGoBGPDConfigParses(t *testing.T) {
	testenv.Require(t, testenv.Binary("gobgpd"))
	for name, rp := range gobgpdPlans(t) {
		t.Run(name, func(t *testing.T) {
			conf := filepath.Join(t.TempDir(), "gobgpd.toml")
			if err := os.WriteFile(conf, []byte(gobgpdConfig(rp)), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("gobgpd", "-f", conf, "-t", "toml", "-d").CombinedOutput()
			// gobgpd -d exits 0 on some errors: its log says.
			if err != nil || strings.Contains(string(out), `"level":"fatal"`) || strings.Contains(string(out), `"level":"error"`) {
				t.Fatalf("gobgpd -d rejects the config: %v\n%s\n%s", err, out, gobgpdConfig(rp))
			}
		})
	}
}

// What the design depends on: the BIRD and FRR ToRs' policy, MD5 on every
// session, each family on its own sessions.
func TestGoBGPDConfigPolicy(t *testing.T) {
	plans := gobgpdPlans(t)
	checkContains(t, "gobgpd", gobgpdConfig(plans["tor1"]), []string{
		"as = 65001", `router-id = "172.30.1.1"`,
		`import-policy-list = ["from-nodes"]`, `default-import-policy = "reject-route"`,
		`export-policy-list = ["pool-only"]`, `default-export-policy = "reject-route"`,
		"ip-prefix = \"10.244.0.0/16\"\n    masklength-range = \"16..32\"",
		"ip-prefix = \"10.96.0.0/16\"\n    masklength-range = \"16..32\"",
		"ip-prefix = \"10.98.0.0/24\"\n    masklength-range = \"24..32\"",
		"neighbor-address = \"172.30.1.11\"\n    peer-as = 64512\n    description = \"node1\"\n    auth-password = \"md5-key\"",
		`local-address = "172.30.1.1"`, `afi-safi-name = "ipv4-unicast"`,
	}, []string{"ipv6-unicast", "pool6", "route-reflector", "zebra"})
	ds := gobgpdConfig(plans["dual-stack-tor1"])
	checkContains(t, "gobgpd dual-stack", ds, []string{
		"prefix-set-name = \"pool6\"", "masklength-range = \"56..128\"",
		"neighbor-address = \"fd30:0:0:1::b\"", `afi-safi-name = "ipv6-unicast"`,
	}, nil)
	if n := strings.Count(ds, "auth-password"); n != 4 {
		t.Errorf("dual-stack config has %d MD5 keys, want one on each of 4 sessions", n)
	}
	// The pool-only export names each family's pool, never the services.
	if i := strings.Index(ds, `name = "pool-only"`); i < 0 || strings.Contains(ds[i:strings.Index(ds[i:], "[[neighbors]]")+i], "services") {
		t.Errorf("pool-only exports services:\n%s", ds)
	}
}

func TestParseGoBGP(t *testing.T) {
	rp := RouterPlan{Name: "tor1", Peers: []Peer{{Name: "node1", Addr: mustAddr("172.30.1.11")}, {Name: "node2", Addr: mustAddr("172.30.1.12")}}}
	neighbors := `[{"conf":{"auth_password":"s3cret","description":"node1","local_asn":65001,"neighbor_address":"172.30.1.11","peer_asn":64512},"state":{"session_state":6}},
	  {"conf":{"neighbor_address":"172.30.1.12","peer_asn":64512},"state":{"session_state":3}}]`
	sessions, err := parseGoBGPNeighbors([]byte(neighbors), rp)
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 2 || sessions[0].Peer != "node1" || !sessions[0].Established() || sessions[0].AS != 64512 ||
		sessions[1].Peer != "node2" || sessions[1].State != "Active" {
		t.Errorf("sessions = %+v", sessions)
	}
	if strings.Contains(strings.Join([]string{sessions[0].Info, sessions[1].Info}, ""), "s3cret") {
		t.Error("the MD5 key reached a session")
	}
	// As gobgp 3.10 prints them (v4 paths; v6 carry MP_REACH, type 14).
	rib := `{"10.244.1.0/26":[{"nlri":{"prefix":"10.244.1.0/26"},"best":true,"attrs":[{"type":1,"value":2},{"type":2,"as_paths":[{"segment_type":2,"num":1,"asns":[64512]}]},{"type":3,"nexthop":"172.30.1.11"}],"neighbor-ip":"172.30.1.11"}],
	  "fd00:10:244:1::/122":[{"nlri":{"prefix":"fd00:10:244:1::/122"},"best":true,"attrs":[{"type":1,"value":2},{"type":2,"as_paths":[{"segment_type":2,"num":2,"asns":[64512,64513]}]},{"type":14,"nexthop":"fd30:0:0:1::11","afi":2,"safi":1}],"neighbor-ip":"fd30:0:0:1::11"}],
	  "10.244.0.0/16":[{"nlri":{"prefix":"10.244.0.0/16"},"best":true,"attrs":[{"type":1,"value":0},{"type":3,"nexthop":"0.0.0.0"},{"type":4,"metric":7},{"type":5,"value":200}],"neighbor-ip":"<nil>"}]}`
	paths, err := parseGoBGPRib([]byte(rib))
	if err != nil {
		t.Fatal(err)
	}
	want := []gobgpPath{
		{Prefix: netip.MustParsePrefix("10.244.0.0/16"), NextHop: mustAddr("0.0.0.0"), Best: true, Merit: gobgpMerit{LocalPref: 200, MED: 7}},
		{Prefix: netip.MustParsePrefix("10.244.1.0/26"), NextHop: mustAddr("172.30.1.11"), Neighbor: mustAddr("172.30.1.11"), Best: true, Merit: gobgpMerit{LocalPref: 100, ASPathLen: 1, Origin: 2}},
		{Prefix: netip.MustParsePrefix("fd00:10:244:1::/122"), NextHop: mustAddr("fd30:0:0:1::11"), Neighbor: mustAddr("fd30:0:0:1::11"), Best: true, Merit: gobgpMerit{LocalPref: 100, ASPathLen: 2, Origin: 2}},
	}
	if !slices.Equal(paths, want) {
		t.Errorf("paths:\n got %+v\nwant %+v", paths, want)
	}
	if _, err := parseGoBGPRib([]byte(`{"not a prefix":[]}`)); err == nil {
		t.Error("a bad prefix parsed")
	}
}

func TestFIBRoutes(t *testing.T) {
	n1, n2, n3 := mustAddr("172.30.1.11"), mustAddr("172.30.1.12"), mustAddr("172.30.1.13")
	merit := gobgpMerit{LocalPref: 100, ASPathLen: 1}
	longer := gobgpMerit{LocalPref: 100, ASPathLen: 2}
	path := func(pfx string, nh netip.Addr, best bool, m gobgpMerit) gobgpPath {
		return gobgpPath{Prefix: netip.MustParsePrefix(pfx), NextHop: nh, Neighbor: nh, Best: best, Merit: m}
	}
	cases := []struct {
		name  string
		paths []gobgpPath
		want  []string
	}{
		{"one path", []gobgpPath{path("10.244.1.0/26", n1, true, merit)}, []string{"10.244.1.0/26 via 172.30.1.11"}},
		{"equal paths are ECMP, sorted", []gobgpPath{path("10.96.0.0/16", n2, true, merit), path("10.96.0.0/16", n1, false, merit)},
			[]string{"10.96.0.0/16 via 172.30.1.11,172.30.1.12"}},
		{"a longer AS path is left out", []gobgpPath{path("10.96.0.0/16", n2, true, merit), path("10.96.0.0/16", n3, false, longer)},
			[]string{"10.96.0.0/16 via 172.30.1.12"}},
		{"no best path: nothing", []gobgpPath{path("10.96.0.0/16", n2, false, merit)}, nil},
		{"the router's own best path: nothing", []gobgpPath{
			{Prefix: netip.MustParsePrefix("10.244.0.0/16"), NextHop: mustAddr("0.0.0.0"), Best: true, Merit: merit},
			path("10.244.0.0/16", n1, false, merit)}, nil},
		{"link-local next hop is not installed", []gobgpPath{path("fd00:10:244::/122", mustAddr("fe80::1"), true, merit)}, nil},
		{"duplicate next hops merge", []gobgpPath{path("10.244.2.0/26", n1, true, merit), path("10.244.2.0/26", n1, false, merit)},
			[]string{"10.244.2.0/26 via 172.30.1.11"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, r := range fibRoutes(tc.paths) {
				got = append(got, r.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("fibRoutes = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFIBDiff(t *testing.T) {
	r := func(pfx string, via ...string) fibRoute {
		fr := fibRoute{Dst: netip.MustParsePrefix(pfx)}
		for _, v := range via {
			fr.Via = append(fr.Via, mustAddr(v))
		}
		return fr
	}
	desired := []fibRoute{r("10.244.1.0/26", "172.30.1.11"), r("10.96.0.0/16", "172.30.1.11", "172.30.1.12"), r("10.244.2.0/26", "172.30.1.12")}
	actual := []fibRoute{r("10.244.1.0/26", "172.30.1.11"), r("10.96.0.0/16", "172.30.1.11"), r("10.244.9.0/26", "172.30.1.13")}
	replace, remove := fibDiff(desired, actual)
	str := func(rs []fibRoute) []string {
		var out []string
		for _, x := range rs {
			out = append(out, x.String())
		}
		return out
	}
	if got, want := str(replace), []string{"10.96.0.0/16 via 172.30.1.11,172.30.1.12", "10.244.2.0/26 via 172.30.1.12"}; !slices.Equal(got, want) {
		t.Errorf("replace = %q, want %q", got, want)
	}
	if got, want := str(remove), []string{"10.244.9.0/26 via 172.30.1.13"}; !slices.Equal(got, want) {
		t.Errorf("remove = %q, want %q", got, want)
	}
}

// fakeFIB is a kernel holding fibRoutes that fails the calls it is told to.
type fakeFIB struct {
	routes map[netip.Prefix]fibRoute
	fail   map[string]error // "replace 10.244.1.0/26", "list", "remove ..."
}

func (f *fakeFIB) failing(op string) error {
	err := f.fail[op]
	delete(f.fail, op)
	return err
}

func (f *fakeFIB) list(family int) ([]fibRoute, error) {
	if err := f.failing("list"); err != nil {
		return nil, err
	}
	var out []fibRoute
	for _, r := range f.routes {
		if r.Dst.Addr().Is4() == (family == unix.AF_INET) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *fakeFIB) replace(r fibRoute) error {
	if err := f.failing("replace " + r.Dst.String()); err != nil {
		return err
	}
	f.routes[r.Dst] = r
	return nil
}

func (f *fakeFIB) remove(r fibRoute) error {
	if err := f.failing("remove " + r.Dst.String()); err != nil {
		return err
	}
	delete(f.routes, r.Dst)
	return nil
}

func (f *fakeFIB) String() string {
	var out []string
	for _, r := range f.routes {
		out = append(out, r.String())
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

// The helper's reconcile loop under kernel and CLI failures: what fails is
// retried by the next sync, the rest goes in at once, and a route that left
// the RIB leaves the kernel.
func TestFIBSyncerRecovers(t *testing.T) {
	n1, n2 := mustAddr("172.30.1.11"), mustAddr("fd30:0:0:1::c")
	rib := map[string][]gobgpPath{
		"ipv4": {{Prefix: netip.MustParsePrefix("10.244.1.0/26"), NextHop: n1, Neighbor: n1, Best: true},
			{Prefix: netip.MustParsePrefix("10.96.0.0/16"), NextHop: n1, Neighbor: n1, Best: true}},
		"ipv6": {{Prefix: netip.MustParsePrefix("fd00:10:244:1::/122"), NextHop: n2, Neighbor: n2, Best: true}},
	}
	readErr := map[string]error{}
	k := &fakeFIB{routes: map[netip.Prefix]fibRoute{
		// Left by a withdrawn path: must go.
		netip.MustParsePrefix("10.244.9.0/26"): {Dst: netip.MustParsePrefix("10.244.9.0/26"), Via: []netip.Addr{n1}},
	}, fail: map[string]error{
		"replace 10.244.1.0/26": syscall.ENETUNREACH,
		"remove 10.244.9.0/26":  syscall.EINTR,
	}}
	var logs strings.Builder
	s := fibSyncer{k: k, fams: []string{"ipv4", "ipv6"}, log: slog.New(slog.NewTextHandler(&logs, nil)),
		read: func(_ context.Context, fam string) ([]gobgpPath, error) {
			if err := readErr[fam]; err != nil {
				return nil, err
			}
			return rib[fam], nil
		}}
	readErr["ipv6"] = errors.New("gobgp: connection refused")
	s.sync(context.Background())
	if got, want := k.String(), "10.244.9.0/26 via 172.30.1.11; 10.96.0.0/16 via 172.30.1.11"; got != want {
		t.Errorf("after a sync with failures, kernel = %q, want %q", got, want)
	}
	for _, w := range []string{"install 10.244.1.0/26 via 172.30.1.11", "remove 10.244.9.0/26", "read the ipv6 RIB"} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("the warning does not say %q:\n%s", w, logs.String())
		}
	}
	delete(readErr, "ipv6")
	s.sync(context.Background())
	if got, want := k.String(), "10.244.1.0/26 via 172.30.1.11; 10.96.0.0/16 via 172.30.1.11; fd00:10:244:1::/122 via fd30:0:0:1::c"; got != want {
		t.Errorf("after the retry, kernel = %q, want %q", got, want)
	}
	rib["ipv4"] = rib["ipv4"][:1]
	k.fail["list"] = syscall.EINTR
	s.sync(context.Background()) // the IPv4 dump fails: nothing changes there
	s.sync(context.Background())
	if got, want := k.String(), "10.244.1.0/26 via 172.30.1.11; fd00:10:244:1::/122 via fd30:0:0:1::c"; got != want {
		t.Errorf("after a withdrawal, kernel = %q, want %q", got, want)
	}
}
