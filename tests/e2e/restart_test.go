package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-net/cairn/internal/lab"
)

// restartInstance keeps this test's lab apart from the other tests' ("e2e").
const restartInstance = "e2erst"

// cairnProto is the routing protocol number felix puts on its routes.
const cairnProto = "77"

// Markers: routes of a protocol nobody else uses, added and deleted in a
// node's namespace to fence off stretches of a route monitor's output.
const markerProto = "199"

// TestAgentRestartKeepsDataplane restarts node1's cairn-node (SIGTERM, then
// SIGKILL) in the default lab while `ip monitor route` watches node1's and
// node2's kernels: no route of Cairn's may be deleted or changed while the
// agent is away and until the lab has converged again; afterwards the
// routes are the same as before, pods still talk across nodes and the ToR
// still has node1's block via node1.
func TestAgentRestartKeepsDataplane(t *testing.T) {
	l := upLab(t, lab.Options{Racks: 1, NodesPerRack: 2, Router: lab.RouterBIRD, PodsPerNode: 2, Instance: restartInstance})
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if !t.Run(sigName[sig], func(t *testing.T) { checkAgentRestart(t, l, sig) }) {
			return
		}
	}
}

var sigName = map[syscall.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGKILL: "SIGKILL"}

func checkAgentRestart(t *testing.T, l *lab.Lab, sig syscall.Signal) {
	ctx := context.Background()
	nodes := l.Plan().Nodes()
	node1, node2 := nodes[0], nodes[1]
	watched := []lab.Node{node1, node2}

	before := map[string][]string{}
	for _, n := range watched {
		before[n.Name] = cairnRoutes(t, n)
	}
	checkRouteKinds(t, node1, before[node1.Name], l)

	mons := map[string]*routeMonitor{}
	for i, n := range watched {
		mons[n.Name] = startRouteMonitor(t, n.Name, n.NS)
		// Once the monitor reports a marker it is subscribed.
		mons[n.Name].fence(t, n.NS, markerAddr(1, i))
	}

	begin := time.Now()
	if err := l.RestartAgent(ctx, node1.Name, sig); err != nil {
		t.Fatalf("restart cairn-node on %s: %v", node1.Name, err)
	}
	ready := time.Since(begin)
	if err := l.WaitConverged(ctx, 90*time.Second); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	t.Logf("%s: cairn-node on %s ready again after %v, lab converged after %v",
		sigName[sig], node1.Name, ready.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))

	for i, n := range watched {
		mons[n.Name].fence(t, n.NS, markerAddr(2, i))
	}
	// A pod added now must show in node1's monitor: proof that it sees
	// Cairn's routes, so that the silence during the restart means something.
	fresh, err := l.AddPod(ctx, node1.Name)
	if err != nil {
		t.Fatalf("add a pod after the restart: %v", err)
	}
	if err := l.WaitConverged(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	freshLine := mons[node1.Name].waitFor(t, 10*time.Second, func(e routeEvent) bool {
		return !e.deleted && e.proto == cairnProto && e.dst == fresh.IP.String()
	})
	t.Logf("%s: monitor saw the new pod's route: %s", node1.Name, freshLine)

	for i, n := range watched {
		events := mons[n.Name].stop(t)
		during := between(t, events, markerAddr(1, i), markerAddr(2, i))
		ours := map[string]bool{}
		for _, r := range before[n.Name] {
			ours[parseRouteEvent(r).dst] = true
		}
		for _, e := range during {
			if e.proto == cairnProto || ours[e.dst] {
				t.Errorf("%s: route of Cairn's touched while cairn-node on %s restarted: %q", n.Name, node1.Name, e.line)
			}
		}
		t.Logf("%s: monitor saw %d route events, %d of them during the restart:%s", n.Name, len(events), len(during), formatEvents(during))
		after := cairnRoutes(t, n)
		if n.Name == node1.Name {
			after = slices.DeleteFunc(after, func(r string) bool { return strings.HasPrefix(r, fresh.IP.String()+" ") })
		}
		if !slices.Equal(before[n.Name], after) {
			t.Errorf("%s: Cairn's routes differ after the restart\nbefore:\n  %s\nafter:\n  %s", n.Name,
				strings.Join(before[n.Name], "\n  "), strings.Join(after, "\n  "))
		}
	}

	for _, from := range l.Pods() {
		for _, to := range l.Pods() {
			if from.Node == to.Node {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			res, err := lab.Probe(pctx, from, to)
			cancel()
			if err != nil {
				t.Errorf("after the restart, %s -> %s: %v", from.Name, to.Name, err)
			} else if res.Source != from.IP {
				t.Errorf("after the restart, %s -> %s arrived from %s", from.Name, to.Name, res.Source)
			}
		}
	}

	rack, _ := l.Plan().Rack(node1.Rack)
	routes, err := l.RouterRoutes(ctx, rack.ToR.Name)
	if err != nil {
		t.Fatal(err)
	}
	blocks := nodeBlocks(t, l)[node1.Name]
	if len(blocks) == 0 {
		t.Fatalf("%s owns no block", node1.Name)
	}
	for _, b := range blocks {
		if !hasRoute(routes, b, node1.Addr) {
			t.Errorf("after the restart, %s lacks %s via %s; it has:\n%s", rack.ToR.Name, b, node1.Addr, formatRoutes(routes))
		}
	}
}

// checkRouteKinds makes sure node1 has the three kinds of route the test
// is about: its pods' /32s, its block's blackhole, a block learned over BGP.
func checkRouteKinds(t *testing.T, n lab.Node, routes []string, l *lab.Lab) {
	t.Helper()
	for _, p := range l.Pods() {
		if p.Node == n.Name && !slices.ContainsFunc(routes, func(r string) bool { return strings.HasPrefix(r, p.IP.String()+" ") }) {
			t.Errorf("%s has no route of Cairn's to its pod %s (%s): %q", n.Name, p.Name, p.IP, routes)
		}
	}
	if !slices.ContainsFunc(routes, func(r string) bool { return strings.HasPrefix(r, "blackhole ") }) {
		t.Errorf("%s has no blackhole of Cairn's: %q", n.Name, routes)
	}
	if !slices.ContainsFunc(routes, func(r string) bool { return strings.Contains(r, " via ") }) {
		t.Errorf("%s has no learned route of Cairn's: %q", n.Name, routes)
	}
}

// cairnRoutes lists a node's routes with Cairn's protocol, one line each,
// sorted.
func cairnRoutes(t *testing.T, n lab.Node) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", n.NS, "ip", "-o", "route", "show", "table", "all", "proto", cairnProto).Output()
	if err != nil {
		t.Fatalf("routes of %s: %v", n.Name, err)
	}
	var routes []string
	for _, line := range strings.Split(string(out), "\n") {
		if line = strings.Join(strings.Fields(line), " "); line != "" {
			routes = append(routes, line)
		}
	}
	slices.Sort(routes)
	return routes
}

// routeEvent is one line of `ip -o monitor route`.
type routeEvent struct {
	line    string
	deleted bool
	dst     string
	proto   string
	// at is when the monitor read the line.
	at time.Time
}

func parseRouteEvent(line string) routeEvent {
	e := routeEvent{line: strings.Join(strings.Fields(line), " ")}
	f := strings.Fields(line)
	if len(f) > 0 && f[0] == "Deleted" {
		e.deleted = true
		f = f[1:]
	}
	// The destination is the first word, after an optional route type.
	for len(f) > 0 && slices.Contains([]string{"unicast", "local", "broadcast", "blackhole", "unreachable", "prohibit", "throw", "multicast"}, f[0]) {
		f = f[1:]
	}
	if len(f) > 0 {
		e.dst = f[0]
	}
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "proto" {
			e.proto = f[i+1]
		}
	}
	return e
}

// routeMonitor runs `ip -o monitor route` in a host's namespace.
type routeMonitor struct {
	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	events  []routeEvent
	changed chan struct{} // closed and replaced on every event
}

func startRouteMonitor(t *testing.T, name, ns string) *routeMonitor {
	t.Helper()
	m := &routeMonitor{
		cmd:     exec.Command("ip", "netns", "exec", ns, "ip", "-o", "monitor", "route"),
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	out, err := m.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("ip monitor in %s: %v", name, err)
	}
	go func() {
		defer close(m.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			m.mu.Lock()
			e := parseRouteEvent(sc.Text())
			e.at = time.Now()
			m.events = append(m.events, e)
			close(m.changed)
			m.changed = make(chan struct{})
			m.mu.Unlock()
		}
	}()
	t.Cleanup(func() { m.stop(t) })
	return m
}

// waitFor returns the first event that matches, failing after timeout.
func (m *routeMonitor) waitFor(t *testing.T, timeout time.Duration, match func(routeEvent) bool) string {
	t.Helper()
	line, ok := m.seen(timeout, match)
	if !ok {
		t.Fatalf("ip monitor did not report the expected event within %v", timeout)
	}
	return line
}

// seen returns the first event that matches, waiting up to timeout.
func (m *routeMonitor) seen(timeout time.Duration, match func(routeEvent) bool) (string, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		m.mu.Lock()
		for _, e := range m.events {
			if match(e) {
				m.mu.Unlock()
				return e.line, true
			}
		}
		changed := m.changed
		m.mu.Unlock()
		select {
		case <-changed:
		case <-m.done:
			return "", false
		case <-deadline.C:
			return "", false
		}
	}
}

// fence adds and deletes a marker route in the monitored namespace ns
// until the monitor reports the deletion: a monitor just started may not
// have subscribed yet, and on a busy machine that can take seconds.
func (m *routeMonitor) fence(t *testing.T, ns string, addr netip.Addr) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for _, op := range []string{"add", "del"} {
			if out, err := exec.Command("ip", "netns", "exec", ns, "ip", "route", op, "blackhole", addr.String()+"/32", "proto", markerProto).CombinedOutput(); err != nil {
				t.Fatalf("marker route %s %s in %s: %v: %s", op, addr, ns, err, out)
			}
		}
		_, ok := m.seen(2*time.Second, func(e routeEvent) bool {
			return e.deleted && e.proto == markerProto && e.dst == addr.String()
		})
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ip monitor in %s never reported the marker route %s", ns, addr)
		}
	}
}

// stop ends the monitor, waits for it and returns every event it saw.
func (m *routeMonitor) stop(t *testing.T) []routeEvent {
	m.once.Do(func() {
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		<-m.done
		_ = m.cmd.Wait()
	})
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.events)
}

// between returns the events after the deletion of marker a and before the
// addition of marker b.
func between(t *testing.T, events []routeEvent, a, b netip.Addr) []routeEvent {
	t.Helper()
	start, end := -1, -1
	for i, e := range events {
		if e.proto != markerProto {
			continue
		}
		if e.deleted && e.dst == a.String() && start < 0 {
			start = i
		}
		if !e.deleted && e.dst == b.String() && end < 0 {
			end = i
		}
	}
	if start < 0 || end < start {
		t.Fatalf("monitor output lacks the markers %s and %s in order: %s", a, b, formatEvents(events))
	}
	return events[start+1 : end]
}

func formatEvents(events []routeEvent) string {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "\n  %s", e.line)
	}
	return b.String()
}

// markerAddr is a TEST-NET-1 address (192.0.2.0/24), distinct per fence
// and node, so runs never mistake one marker for another.
func markerAddr(fence, node int) netip.Addr {
	return netip.AddrFrom4([4]byte{192, 0, 2, byte(10*fence + node)})
}
