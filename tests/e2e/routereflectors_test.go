package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cairn-net/cairn/internal/lab"
)

// TestRouteReflectorsAtScale: 20 nodes in two racks, the node mesh off and
// two nodes of each rack, chosen by label, reflecting its routes (the
// ToRs do not). Every node has sessions to its reflectors and ToR only (a
// reflector to every node of its rack), and every node's kernel routes
// every block of every other node of its rack straight to the owner
// (learned through the reflectors); other racks go through the ToR. Then a client
// node leaves the cluster (Node deleted, agent stopped): no route for its
// blocks or pods may remain in any node's kernel or any router.
func TestRouteReflectorsAtScale(t *testing.T) {
	l := upLab(t, lab.Options{Instance: "e2err", Racks: 2, NodesPerRack: 10, RouteReflectors: true, PodsPerNode: 1})
	tm := l.Timings
	t.Logf("agents started to every route everywhere: %v (agents ready %v, 20 pods %v, converged %v after the last pod); load %s",
		(tm.Agents + tm.Pods + tm.Converge).Round(time.Millisecond), tm.Agents.Round(time.Millisecond),
		tm.Pods.Round(time.Millisecond), tm.Converge.Round(time.Millisecond), loadAvg())
	plan := l.Plan()
	ctx := context.Background()

	st, err := l.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	blocks := nodeBlocks(t, l)
	reflectors := 0
	for _, ns := range st.Nodes {
		n := ns.Node
		if n.Reflector() {
			reflectors++
		}
		// Exactly the planned sessions: no mesh.
		var got []netip.Addr
		for _, s := range ns.Sessions {
			got = append(got, s.Addr)
		}
		want := plan.NodePeers(n)
		slices.SortFunc(got, netip.Addr.Compare)
		slices.SortFunc(want, netip.Addr.Compare)
		if !slices.Equal(got, want) {
			t.Errorf("%s (reflector %v) has sessions to %v, want %v", n.Name, n.Reflector(), got, want)
		}
		routes := map[string][]string{}
		for _, r := range ns.Routes {
			routes[r.Dst] = r.Gateways()
		}
		for _, other := range plan.Nodes() {
			if other.Name == n.Name {
				continue
			}
			// Another rack's pods are reached through the ToR's pool
			// route (Up's convergence checked each with route get).
			if other.Rack != n.Rack {
				continue
			}
			via := other.Addr
			for _, b := range blocks[other.Name] {
				if gw := routes[b.String()]; !slices.Equal(gw, []string{via.String()}) {
					t.Errorf("%s routes %s's block %s via %v, want via %s", n.Name, other.Name, b, gw, via)
				}
			}
		}
	}
	if reflectors != 2*len(plan.Racks) {
		t.Errorf("%d reflectors, want 2 per rack", reflectors)
	}
	t.Logf("agent RSS at %d nodes: %s; load %s", len(plan.Nodes()), agentRSS(t, l), loadAvg())
	if t.Failed() {
		return
	}

	// A client node leaves the cluster: its Node is deleted and its agent
	// stopped.
	nodes := plan.Nodes()
	gone := nodes[len(nodes)-1]
	goneRoutes := slices.Clone(blocks[gone.Name])
	for _, p := range l.Pods() {
		if p.Node == gone.Name {
			goneRoutes = append(goneRoutes, netip.PrefixFrom(p.IP, p.IP.BitLen()))
		}
	}
	if len(goneRoutes) < 2 || gone.Reflector() {
		t.Fatalf("%s should be a client owning a block and a pod, has %v", gone.Name, goneRoutes)
	}
	kube, err := l.KubeClient()
	if err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	if err := kube.CoreV1().Nodes().Delete(ctx, gone.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete Node %s: %v", gone.Name, err)
	}
	stopAgent(t, l, gone.Name)
	// Today the agent is stopped with SIGTERM, which closes its sessions as
	// a graceful restart, so the ToR (and a reflector that saw no Node
	// deletion in time) keeps its routes for the 120 s restart time: 2m0.9s
	// was measured. That is issue 13's open stale-route case; until an agent
	// whose Node is gone closes without graceful restart, the bound is the
	// restart time with room for a loaded machine, and the test still fails
	// on a route left behind for good (kube-router's bug).
	var left []string
	if err := waitUntil(5*time.Minute, func() bool {
		left = routesLeft(t, l, gone, goneRoutes)
		return len(left) == 0
	}); err != nil {
		t.Fatalf("%v after %s left the cluster, its routes are still at: %s", time.Since(removed).Round(time.Second), gone.Name, strings.Join(left, "; "))
	}
	t.Logf("%s's routes %v left every node's kernel and every router %v after its Node was deleted and its agent stopped; load %s",
		gone.Name, goneRoutes, time.Since(removed).Round(time.Millisecond), loadAvg())
}

// stopAgent ends a node's cairn-node with SIGTERM and waits until it is
// gone.
func stopAgent(t *testing.T, l *lab.Lab, node string) {
	t.Helper()
	for _, p := range l.Procs() {
		if p.Name != "cairn-node-"+node {
			continue
		}
		if err := syscall.Kill(p.PID, syscall.SIGTERM); err != nil {
			t.Fatalf("stop %s (pid %d): %v", p.Name, p.PID, err)
		}
		if err := waitUntil(time.Minute, func() bool { return !p.Alive() }); err != nil {
			t.Fatalf("%s (pid %d) still runs a minute after SIGTERM", p.Name, p.PID)
		}
		return
	}
	t.Fatalf("no cairn-node process for %s", node)
}

// agentRSS summarises the resident memory of every cairn-node.
func agentRSS(t *testing.T, l *lab.Lab) string {
	t.Helper()
	var kib []int
	for _, p := range l.Procs() {
		if !strings.HasPrefix(p.Name, "cairn-node-") {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID))
		if err != nil {
			t.Errorf("%s: %v", p.Name, err)
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				v, _ := strconv.Atoi(f[1])
				kib = append(kib, v)
			}
		}
	}
	if len(kib) == 0 {
		return "none measured"
	}
	slices.Sort(kib)
	sum := 0
	for _, v := range kib {
		sum += v
	}
	return fmt.Sprintf("%d agents, min %.1f MiB, median %.1f MiB, max %.1f MiB, total %.1f MiB",
		len(kib), float64(kib[0])/1024, float64(kib[len(kib)/2])/1024, float64(kib[len(kib)-1])/1024, float64(sum)/1024)
}

// loadAvg is the machine's 1, 5 and 15-minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
