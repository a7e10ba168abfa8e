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

	"github.com/cairn-net/cairn/internal/lab"
)

// rrGCGrace is the IPAM GC's grace in TestRouteReflectorsAtScale (the
// default is minutes).
const rrGCGrace = 20 * time.Second

// TestRouteReflectorsAtScale: 20 nodes in two racks, the node mesh off and
// two nodes of each rack, chosen by label, reflecting its routes (the
// ToRs do not). Every node has sessions to its reflectors and ToR only (a
// reflector to every node of its rack), and every node's kernel routes
// every block of every other node of its rack straight to the owner
// (learned through the reflectors); other racks go through the ToR. Then
// a client's agent restarts (graceful restart: none of its routes change
// anywhere), and another client leaves the cluster (Node deleted, agent
// stopped with SIGTERM): within departBound no route for its blocks or
// pods remains in any node's kernel or any router; the IPAM GC releases
// its blocks, and a node taking one over is routed to everywhere.
func TestRouteReflectorsAtScale(t *testing.T) {
	l := upLab(t, lab.Options{Instance: "e2err", Racks: 2, NodesPerRack: 10, RouteReflectors: true, PodsPerNode: 1,
		AgentArgs: []string{"--ipam-gc-grace", rrGCGrace.String(), "--ipam-gc-interval", "5s"}})
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

	// Two clients of the last rack: one restarts, the other leaves.
	rack := plan.Racks[len(plan.Racks)-1]
	var clients []lab.Node
	for _, n := range rack.Nodes {
		if !n.Reflector() {
			clients = append(clients, n)
		}
	}
	gone, stays := clients[len(clients)-1], clients[len(clients)-2]
	watchers := []host{{rack.ToR.Name, rack.ToR.NS}, {gone.Name, gone.NS}}
	for _, n := range rack.Nodes {
		if n.Reflector() {
			watchers = append(watchers, host{n.Name, n.NS})
		}
	}
	if !t.Run("a plain agent restart keeps its routes at the ToR, the reflectors and the other nodes", func(t *testing.T) {
		checkRestartKeepsRoutes(t, l, stays, watchers)
	}) {
		return
	}
	removed := time.Now()
	var goneRoutes []netip.Prefix
	if !t.Run("a node leaving the cluster leaves no route behind", func(t *testing.T) { goneRoutes = checkDeparture(t, l, gone) }) {
		return
	}
	if !t.Run("the IPAM GC releases the departed node's blocks", func(t *testing.T) { checkReleased(t, l, gone.Name, rrGCGrace, removed) }) {
		return
	}
	t.Run("another node takes its block over and announces it", func(t *testing.T) {
		checkTakeover(t, l, goneRoutes[0], gone, stays)
	})
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
