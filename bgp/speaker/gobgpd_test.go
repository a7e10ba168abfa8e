package speaker

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// gobgpdTorConf makes Debian's gobgpd (GoBGP 3.10) a ToR in AS 65001 with
// an IPv4 and an IPv6 session, each MD5-signed and carrying its own
// family, to each of two nodes on links of their own. It accepts and
// sends everything: a test router, which the speakers' own filters face.
const gobgpdTorConf = `
[global.config]
  as = 65001
  router-id = "10.87.1.2"
`

const gobgpdNeighborConf = `
[[neighbors]]
  [neighbors.config]
    neighbor-address = %q
    peer-as = 64512
    auth-password = %q
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 9
    keepalive-interval = 3
  [neighbors.transport.config]
    local-address = %q
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = %q
`

// gobgpdRouter is a gobgpd process in a namespace, queried with the gobgp
// CLI there (its API listens on that namespace's loopback only).
type gobgpdRouter struct {
	netns string
	logs  *lockedBuffer
}

func startGoBGPD(t *testing.T, netns, conf string) *gobgpdRouter {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gobgpd.toml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &gobgpdRouter{netns: netns}
	g.logs = startDaemon(t, "gobgpd", netns, "gobgpd", "-f", path, "-t", "toml", "-p", "--api-hosts", "127.0.0.1:50051", "--pprof-disable")
	g.waitFor(t, "gobgpd's API up", 20*time.Second, func(string) bool { return true }, "global")
	return g
}

func (g *gobgpdRouter) gobgp(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", g.netns, "gobgp", "-u", "127.0.0.1"}, args...)...).CombinedOutput()
	return string(out), err
}

func (g *gobgpdRouter) mustGoBGP(t *testing.T, args ...string) {
	t.Helper()
	if out, err := g.gobgp(args...); err != nil {
		t.Fatalf("gobgp %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// waitFor polls a gobgp command until cond holds on its output.
func (g *gobgpdRouter) waitFor(t *testing.T, what string, timeout time.Duration, cond func(string) bool, args ...string) string {
	t.Helper()
	return pollCLI(t, "gobgp", g.gobgp, what, timeout, cond, args...)
}

// ribHas reports whether `gobgp global rib -j` output holds prefix with
// next hop nh, learned from neighbor nh.
func ribHas(out, prefix, nh string) bool {
	var rib map[string][]struct {
		Neighbor string `json:"neighbor-ip"`
		Attrs    []struct {
			Type    int    `json:"type"`
			NextHop string `json:"nexthop"`
		} `json:"attrs"`
	}
	if json.Unmarshal([]byte(out), &rib) != nil {
		return false
	}
	for _, p := range rib[prefix] {
		for _, a := range p.Attrs {
			if (a.Type == 3 || a.Type == 14) && a.NextHop == nh && p.Neighbor == nh {
				return true
			}
		}
	}
	return false
}

// establishedNeighbors counts gobgpd's sessions in state Established.
func establishedNeighbors(out string) int {
	var ns []struct {
		State struct {
			SessionState int `json:"session_state"`
		} `json:"state"`
	}
	if json.Unmarshal([]byte(out), &ns) != nil {
		return -1
	}
	n := 0
	for _, s := range ns {
		if s.State.SessionState == 6 {
			n++
		}
	}
	return n
}

type gobgpdInterop struct{ *gobgpdRouter }

// startInteropGoBGPD runs gobgpd with a session per node and family and
// adds the pool routes to its RIB through its API.
func startInteropGoBGPD(t *testing.T, netns string, nodes []*interopNode) interopRouter {
	conf := gobgpdTorConf
	for _, s := range interopSessions(nodes) {
		conf += fmt.Sprintf(gobgpdNeighborConf, s.peer, interopPassword, s.local, s.family+"-unicast")
	}
	g := gobgpdInterop{startGoBGPD(t, netns, conf)}
	g.mustGoBGP(t, "global", "rib", "add", interopPool4, "-a", "ipv4")
	g.mustGoBGP(t, "global", "rib", "add", interopPool6, "-a", "ipv6")
	return g
}

func (g gobgpdInterop) established() (int, error) {
	out, err := g.gobgp("neighbor", "-j")
	return establishedNeighbors(out), err
}

func (g gobgpdInterop) routeVia(family, prefix, nh string) (bool, error) {
	out, err := g.gobgp("global", "rib", "-a", family, "-j")
	return ribHas(out, prefix, nh), err
}

func (g gobgpdInterop) withdrawPool4(t *testing.T) {
	g.mustGoBGP(t, "global", "rib", "del", interopPool4, "-a", "ipv4")
}
