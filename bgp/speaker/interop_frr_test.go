package speaker

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// frrInteropConf is FRR's bgpd as the interop ToR: the pool routes from
// network statements (no import check: the ToR does not route them), a
// session per node and family, each activated in its own family only,
// MD5-signed. Policies are off (no RFC 8212 requirement): a test router.
func frrInteropConf(nodes []*interopNode) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("frr defaults traditional")
	w("hostname tor")
	w("log stdout")
	w("router bgp %d", interopTorAS)
	w(" bgp router-id %s", interopRouterID)
	w(" no bgp ebgp-requires-policy")
	w(" no bgp network import-check")
	w(" no bgp default ipv4-unicast")
	sessions := interopSessions(nodes)
	for _, s := range sessions {
		w(" neighbor %s remote-as %d", s.peer, interopNodeAS)
		w(" neighbor %s update-source %s", s.peer, s.local)
		w(" neighbor %s password %s", s.peer, interopPassword)
		w(" neighbor %s timers 3 9", s.peer)
		w(" neighbor %s timers connect 1", s.peer)
	}
	for _, fam := range []struct{ name, pool string }{{"ipv4", interopPool4}, {"ipv6", interopPool6}} {
		w(" address-family %s unicast", fam.name)
		w("  network %s", fam.pool)
		for _, s := range sessions {
			if s.family == fam.name {
				w("  neighbor %s activate", s.peer)
			}
		}
		w(" exit-address-family")
	}
	return b.String()
}

// frrInterop is zebra and bgpd in a namespace, queried with vtysh over
// their sockets in dir.
type frrInterop struct {
	dir  string
	logs *lockedBuffer
}

func startInteropFRR(t *testing.T, netns string, nodes []*interopNode) interopRouter {
	t.Helper()
	// The daemons drop to the frr user: it must reach and own the directory.
	dir := t.TempDir() // and its parent: the test's directory
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	u, err := user.Lookup("frr")
	if err != nil {
		t.Fatalf("find the frr user (Debian package frr): %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	f := &frrInterop{dir: dir}
	for daemon, conf := range map[string]string{"zebra": "hostname tor\n", "bgpd": frrInteropConf(nodes)} {
		if err := os.WriteFile(filepath.Join(dir, daemon+".conf"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, daemon := range []string{"zebra", "bgpd"} {
		f.logs = startDaemon(t, daemon, netns, filepath.Join("/usr/lib/frr", daemon),
			"-f", filepath.Join(dir, daemon+".conf"), "-i", filepath.Join(dir, daemon+".pid"),
			"-z", filepath.Join(dir, "zserv.api"), "--vty_socket", dir, "-u", "frr", "-g", "frr", "-P", "0", "--log", "stdout")
	}
	pollCLI(t, "vtysh", f.vtysh, "bgpd answers", 20*time.Second, func(string) bool { return true }, "show bgp summary json")
	return f
}

func (f *frrInterop) vtysh(cmds ...string) (string, error) {
	args := []string{"--vty_socket", f.dir}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command("vtysh", args...).CombinedOutput()
	return string(out), err
}

func (f *frrInterop) established() (int, error) {
	out, err := f.vtysh("show bgp neighbors json")
	if err != nil {
		return 0, err
	}
	var ns map[string]struct {
		State string `json:"bgpState"`
	}
	if err := json.Unmarshal([]byte(out), &ns); err != nil {
		return 0, fmt.Errorf("decode %q: %w", out, err)
	}
	n := 0
	for _, s := range ns {
		if s.State == "Established" {
			n++
		}
	}
	return n, nil
}

func (f *frrInterop) routeVia(family, prefix, nh string) (bool, error) {
	out, err := f.vtysh(fmt.Sprintf("show bgp %s unicast %s json", family, prefix))
	if err != nil {
		return false, err
	}
	var r struct {
		Paths []struct {
			Nexthops []struct {
				IP string `json:"ip"`
			} `json:"nexthops"`
		} `json:"paths"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return false, fmt.Errorf("decode %q: %w", out, err)
	}
	for _, p := range r.Paths {
		for _, h := range p.Nexthops {
			if h.IP == nh {
				return true, nil
			}
		}
	}
	return false, nil
}

func (f *frrInterop) withdrawPool4(t *testing.T) {
	if out, err := f.vtysh("configure terminal", fmt.Sprintf("router bgp %d", interopTorAS), "address-family ipv4 unicast",
		"no network "+interopPool4); err != nil {
		t.Fatalf("vtysh no network %s: %v\n%s", interopPool4, err, out)
	}
}
