package e2e

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cairn-net/cairn/internal/lab"
)

// gobgpdPassword is the TCP-MD5 key of every node-to-ToR session in the
// gobgpd labs.
const gobgpdPassword = "gobgpd-MD5-e2e-Key"

// The one-rack design with Debian's gobgpd as the ToR (a lab helper puts
// its routes in the ToR's kernel, gobgpd.go in internal/lab), every
// node-to-ToR session signed with TCP-MD5.
func TestOneRackGoBGPD(t *testing.T) {
	l := upLab(t, lab.Options{Racks: 1, NodesPerRack: 2, Router: lab.RouterGoBGPD, PodsPerNode: 2, RouterPassword: gobgpdPassword})
	t.Run("every session at gobgpd is Established with the MD5 key", func(t *testing.T) { checkGoBGPDSessionsSigned(t, l) })
	runChecks(t, l)
	t.Run("outside1 reaches every pod through the gobgpd ToR", func(t *testing.T) { checkOutsideReachesPods(t, l) })
	t.Run("a pool route from gobgpd is installed on every node, and leaves", func(t *testing.T) { checkRouterPoolRoute(t, l) })
}

// Both families: IPv4 and IPv6 sessions to gobgpd, MD5 on each.
func TestDualStackGoBGPD(t *testing.T) {
	l := upDualStack(t, lab.Options{Racks: 1, NodesPerRack: 2, Router: lab.RouterGoBGPD, PodsPerNode: 2,
		Instance: "ds4", RouterPassword: gobgpdPassword})
	t.Run("every session at gobgpd is Established with the MD5 key", func(t *testing.T) { checkGoBGPDSessionsSigned(t, l) })
	checkDualStack(t, l)
}

// checkGoBGPDSessionsSigned reads gobgpd's own view of its sessions: one
// per node and family, each Established and configured with the key (the
// kernel then drops every unsigned or wrongly signed segment, so
// Established means the node signs with the same key).
func checkGoBGPDSessionsSigned(t *testing.T, l *lab.Lab) {
	tor := l.Plan().Racks[0].ToR
	out, err := l.Output(context.Background(), tor.Name, "gobgp", "neighbor", "-j")
	if err != nil {
		t.Fatalf("gobgp neighbor: %v", err)
	}
	var neighbors []struct {
		Conf struct {
			Address  string `json:"neighbor_address"`
			Password string `json:"auth_password"`
		} `json:"conf"`
		State struct {
			SessionState int `json:"session_state"`
		} `json:"state"`
	}
	if err := json.Unmarshal(out, &neighbors); err != nil {
		t.Fatalf("decode gobgp neighbor -j: %v", err)
	}
	if len(neighbors) != len(tor.Peers) {
		t.Errorf("gobgpd has %d sessions, the plan %d", len(neighbors), len(tor.Peers))
	}
	for _, n := range neighbors {
		if n.Conf.Password != gobgpdPassword {
			t.Errorf("session to %s has no MD5 key, or another one", n.Conf.Address) // never print the key
		}
		if n.State.SessionState != 6 {
			t.Errorf("session to %s is in state %d, want 6 (Established)", n.Conf.Address, n.State.SessionState)
		}
	}
}

// checkOutsideReachesPods pings every pod from outside1, whose only way in
// is the ToR's kernel: the routes the FIB helper installed.
func checkOutsideReachesPods(t *testing.T, l *lab.Lab) {
	outside, ok := l.Plan().OutsideHost(lab.OutsideName)
	if !ok {
		t.Fatal("no outside host")
	}
	for _, p := range l.Pods() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := l.Output(ctx, outside.Name, "ping", "-c", "1", "-W", "5", p.IP.String())
		cancel()
		if err != nil {
			t.Errorf("outside1 -> %s (%s): %v\n%s", p.Name, p.IP, err, out)
		}
	}
}

// checkRouterPoolRoute has gobgpd originate the whole pool, as a fabric
// announces a covering route: every node installs it towards the ToR (its
// own blocks and the other node's stay more specific), and a withdrawal
// removes it again. The ToR itself installs nothing for its own route.
func checkRouterPoolRoute(t *testing.T, l *lab.Lab) {
	ctx := context.Background()
	plan := l.Plan()
	tor := plan.Racks[0].ToR
	pool := lab.PoolCIDR
	gobgp := func(args ...string) {
		t.Helper()
		if out, err := l.Output(ctx, tor.Name, append([]string{"gobgp"}, args...)...); err != nil {
			t.Fatalf("gobgp %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	begin := time.Now()
	gobgp("global", "rib", "add", pool, "-a", "ipv4")
	t.Cleanup(func() { _, _ = l.Output(ctx, tor.Name, "gobgp", "global", "rib", "del", pool, "-a", "ipv4") })
	for _, n := range plan.Nodes() {
		waitNodeRoute(t, n, pool, func(r lab.KernelRoute) bool { return r.Gateway == tor.RouterID.String() }, "via "+tor.RouterID.String())
	}
	t.Logf("%s from gobgpd in every node's kernel %v after it was added", pool, time.Since(begin).Round(time.Millisecond))
	if routes, err := lab.KernelRoutes(ctx, tor.NS); err != nil {
		t.Fatal(err)
	} else if r, ok := findRoute(routes, pool); ok {
		t.Errorf("%s installed its own route: %+v", tor.Name, r)
	}
	// Pods still go to each other directly across the rack, not up to
	// the covering route.
	checkPodToPod(t, l)

	begin = time.Now()
	gobgp("global", "rib", "del", pool, "-a", "ipv4")
	for _, n := range plan.Nodes() {
		waitNodeRoute(t, n, pool, nil, "gone")
	}
	t.Logf("%s withdrawn from every node's kernel %v after gobgpd dropped it", pool, time.Since(begin).Round(time.Millisecond))
}

// waitNodeRoute waits until node n's kernel has a route to dst that
// satisfies ok, or, with ok nil, none at all.
func waitNodeRoute(t *testing.T, n lab.Node, dst string, ok func(lab.KernelRoute) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		routes, err := lab.KernelRoutes(context.Background(), n.NS)
		if err != nil {
			t.Fatal(err)
		}
		r, found := findRoute(routes, dst)
		if (ok == nil && !found) || (ok != nil && found && ok(r)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not %s within 30s; route: %+v (found %v)", n.Name, dst, what, r, found)
		}
		time.Sleep(100 * time.Millisecond) // polling the kernel with a deadline
	}
}

func findRoute(routes []lab.KernelRoute, dst string) (lab.KernelRoute, bool) {
	want := netip.MustParsePrefix(dst)
	for _, r := range routes {
		if p, err := parseDst(r.Dst); err == nil && p == want {
			return r, true
		}
	}
	return lab.KernelRoute{}, false
}
