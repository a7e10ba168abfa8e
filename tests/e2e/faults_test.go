package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cairn-net/cairn/internal/lab"
)

// faultsInstance keeps this test's lab apart from the other tests'.
const faultsInstance = "e2eflt"

// Fault figures: agent kills in a row, ping's interval between pods, and
// the deleted node's IPAM GC grace (short here: the default is minutes).
// ping's sleeps end on the kernel's timer ticks, so "-i 0.01" sends about
// 52 packets a second on this machine; "-i 0.005" sends 110 to 120. The
// rate reached is measured and reported.
const (
	agentKills   = 10
	pingInterval = "0.005"
	faultsGrace  = 20 * time.Second
)

// TestFaultsTwoRacks runs faults on a two-rack lab (four nodes, the ToRs
// reflecting routes, a spine between racks) with traffic between pods on
// different nodes and racks the whole time: agents killed and restarted,
// then a node deleted from the cluster.
func TestFaultsTwoRacks(t *testing.T) {
	l := upLab(t, lab.Options{Racks: 2, NodesPerRack: 2, Router: lab.RouterBIRD, PodsPerNode: 1, Instance: faultsInstance,
		AgentArgs: []string{"--ipam-gc-grace", faultsGrace.String(), "--ipam-gc-interval", "5s"}})
	if !t.Run("agents killed and every node restarted under traffic", func(t *testing.T) { checkAgentsKilledUnderTraffic(t, l) }) {
		return
	}
	t.Run("a node deleted from the cluster", func(t *testing.T) { checkNodeDeleted(t, l) })
}

// checkAgentsKilledUnderTraffic kills cairn-node with SIGKILL agentKills
// times (a different node each time), then restarts every node's agent
// gracefully (SIGTERM), each time waiting until the lab has converged
// again, while pods on different nodes and racks ping each other at 100
// packets per second. Not one packet may be lost, not one route may change
// in any kernel (nodes, ToRs, spine: so neither the ToR nor another rack
// saw a restart), and no pod's address may change.
func checkAgentsKilledUnderTraffic(t *testing.T, l *lab.Lab) {
	ctx := context.Background()
	hosts := monitoredHosts(l.Plan())
	addrs := podAddresses(t, l)
	mons := startMonitors(t, hosts, 1)

	pingers := startPingers(t, l)
	begin := time.Now()
	nodes := l.Plan().Nodes()
	restart := func(node string, sig syscall.Signal) {
		t.Helper()
		start := time.Now()
		if err := l.RestartAgent(ctx, node, sig); err != nil {
			t.Fatalf("%v cairn-node on %s: %v", sigName[sig], node, err)
		}
		if err := l.WaitConverged(ctx, 2*time.Minute); err != nil {
			t.Fatalf("after %v of cairn-node on %s: %v", sigName[sig], node, err)
		}
		t.Logf("%v of cairn-node on %s: converged again after %v", sigName[sig], node, time.Since(start).Round(time.Millisecond))
	}
	for i := range agentKills {
		restart(nodes[i%len(nodes)].Name, syscall.SIGKILL)
	}
	for _, n := range nodes {
		restart(n.Name, syscall.SIGTERM)
	}
	t.Logf("%d kills and %d graceful restarts took %v", agentKills, len(nodes), time.Since(begin).Round(time.Millisecond))

	for _, p := range pingers {
		st := p.stop(t)
		t.Logf("%s: %d sent in %v (%.0f/s), %d lost%s", p.name, st.sent, st.took.Round(time.Second), float64(st.sent)/st.took.Seconds(),
			len(st.missing), formatSeqs(st.missing))
		if st.sent < 100 {
			t.Errorf("%s: only %d packets sent: the traffic did not run", p.name, st.sent)
		}
		if len(st.missing) > 0 {
			t.Errorf("%s: %d of %d packets lost while agents restarted", p.name, len(st.missing), st.sent)
		}
	}
	events := stopMonitors(t, hosts, mons, 1)
	for _, h := range hosts {
		// The kernel's own routes for addresses and links (a pod veth's
		// IPv6 link-local address appearing once its DAD ends) are not
		// routing; anything a daemon does is.
		changes, kernel := splitKernelEvents(events[h.name])
		t.Logf("%s: %d route changes during %d kills and %d graceful restarts%s", h.name, len(changes), agentKills, len(nodes), formatEvents(changes))
		if len(kernel) > 0 {
			t.Logf("%s: and %d of the kernel's own address routes:%s", h.name, len(kernel), formatEvents(kernel))
		}
		if len(changes) > 0 {
			t.Errorf("%s: %d route changes while agents restarted", h.name, len(changes))
		}
	}
	if after := podAddresses(t, l); !maps2Equal(addrs, after) {
		t.Errorf("pod addresses changed:\nbefore %v\nafter  %v", addrs, after)
	}
}

// checkNodeDeleted deletes one node's Node object while its agent still
// runs (a node being decommissioned): its routes must leave every other
// node, both ToRs and the spine, by withdrawal (not at the end of a
// graceful-restart timer); nothing else may change (other routes, other
// sessions, traffic between the other pods); and the IPAM GC must release
// its address and blocks once the grace period is over.
func checkNodeDeleted(t *testing.T, l *lab.Lab) {
	ctx := context.Background()
	plan := l.Plan()
	nodes := plan.Nodes()
	gone := nodes[len(nodes)-1]
	var goneRoutes []netip.Prefix
	goneRoutes = append(goneRoutes, nodeBlocks(t, l)[gone.Name]...)
	for _, p := range l.Pods() {
		if p.Node == gone.Name {
			goneRoutes = append(goneRoutes, netip.PrefixFrom(p.IP, p.IP.BitLen()))
		}
	}
	if len(goneRoutes) < 2 {
		t.Fatalf("%s should own a block and a pod, has %v", gone.Name, goneRoutes)
	}
	// What must not change: the others' routes and router sessions.
	others := map[string][]string{}
	for _, n := range nodes {
		if n.Name != gone.Name {
			others[n.Name] = withoutPrefixes(cairnRoutes(t, n), goneRoutes)
		}
	}
	sessions := map[string][]string{}
	for _, r := range plan.Routers() {
		sessions[r.Name] = routerSessionLines(t, l, r, gone.Name)
	}
	var stay []lab.Pod
	for _, p := range l.Pods() {
		if p.Node != gone.Name {
			stay = append(stay, p)
		}
	}
	pingers := startPingersAmong(t, stay)

	kube, err := l.KubeClient()
	if err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	if err := kube.CoreV1().Nodes().Delete(ctx, gone.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete Node %s: %v", gone.Name, err)
	}

	// Withdrawn everywhere: no other node's kernel and no router's RIB or
	// kernel has a route for the gone node's block or pod.
	var left []string
	err = waitUntil(2*time.Minute, func() bool {
		left = routesLeft(t, l, gone, goneRoutes)
		return len(left) == 0
	})
	if err != nil {
		t.Fatalf("%v after deleting Node %s, its routes are still at: %s", time.Since(deleted).Round(time.Second), gone.Name, strings.Join(left, "; "))
	}
	t.Logf("%s's routes %v left every other node and router %v after its Node was deleted", gone.Name, goneRoutes, time.Since(deleted).Round(time.Millisecond))
	// By withdrawal: its session to its ToR is still up (a router that
	// loses a session may keep its routes as a restarting peer's).
	tor := plan.Racks[len(plan.Racks)-1].ToR
	if line := routerSessionLine(t, l, tor, gone.Name); !strings.HasSuffix(line, "Established") {
		t.Errorf("%s's session to %s is down after its Node was deleted (%q): its routes went with the session, not by withdrawal", gone.Name, tor.Name, line)
	}

	// Released after the grace period.
	var held []string
	err = waitUntil(faultsGrace+2*time.Minute, func() bool {
		held = ipamHeldBy(t, l, gone.Name)
		return len(held) == 0
	})
	if err != nil {
		t.Fatalf("%v after deleting Node %s, IPAM still holds for it: %s", time.Since(deleted).Round(time.Second), gone.Name, strings.Join(held, "; "))
	}
	released := time.Since(deleted)
	if released < faultsGrace {
		t.Errorf("%s's IPAM state was released %v after the deletion, before the %v grace period", gone.Name, released.Round(time.Millisecond), faultsGrace)
	}
	t.Logf("%s's address, blocks and claims released %v after its Node was deleted (grace %v)", gone.Name, released.Round(time.Millisecond), faultsGrace)

	// Nothing else changed.
	for _, p := range pingers {
		st := p.stop(t)
		t.Logf("%s: %d sent in %v (%.0f/s), %d lost%s", p.name, st.sent, st.took.Round(time.Second), float64(st.sent)/st.took.Seconds(),
			len(st.missing), formatSeqs(st.missing))
		if len(st.missing) > 0 {
			t.Errorf("%s: %d of %d packets lost while %s was deleted", p.name, len(st.missing), st.sent, gone.Name)
		}
	}
	for _, n := range nodes {
		if n.Name == gone.Name {
			continue
		}
		if after := withoutPrefixes(cairnRoutes(t, n), goneRoutes); !slices.Equal(others[n.Name], after) {
			t.Errorf("%s: other routes changed when %s was deleted\nbefore:\n  %s\nafter:\n  %s", n.Name, gone.Name,
				strings.Join(others[n.Name], "\n  "), strings.Join(after, "\n  "))
		}
	}
	for _, r := range plan.Routers() {
		if after := routerSessionLines(t, l, r, gone.Name); !slices.Equal(sessions[r.Name], after) {
			t.Errorf("%s: other sessions changed when %s was deleted\nbefore:\n  %s\nafter:\n  %s", r.Name, gone.Name,
				strings.Join(sessions[r.Name], "\n  "), strings.Join(after, "\n  "))
		}
	}
}

// host is a namespace whose kernel routes a fault test watches.
type host struct{ name, ns string }

// monitoredHosts are every node and router of the lab.
func monitoredHosts(p lab.Plan) []host {
	var out []host
	for _, n := range p.Nodes() {
		out = append(out, host{n.Name, n.NS})
	}
	for _, r := range p.Routers() {
		out = append(out, host{r.Name, r.NS})
	}
	return out
}

// startMonitors starts `ip monitor route` on every host and fences it
// with marker routes numbered fence.
func startMonitors(t *testing.T, hosts []host, fence int) map[string]*routeMonitor {
	t.Helper()
	mons := map[string]*routeMonitor{}
	for i, h := range hosts {
		mons[h.name] = startRouteMonitor(t, h.name, h.ns)
		mons[h.name].fence(t, h.ns, markerAddr(fence, i))
	}
	return mons
}

// stopMonitors fences every monitor again and returns, per host, the
// route events between the two fences.
func stopMonitors(t *testing.T, hosts []host, mons map[string]*routeMonitor, fence int) map[string][]routeEvent {
	t.Helper()
	out := map[string][]routeEvent{}
	for i, h := range hosts {
		mons[h.name].fence(t, h.ns, markerAddr(fence+1, i))
		out[h.name] = between(t, mons[h.name].stop(t), markerAddr(fence, i), markerAddr(fence+1, i))
	}
	return out
}

// splitKernelEvents separates the routes the kernel makes for addresses
// and links (proto kernel) from the rest.
func splitKernelEvents(events []routeEvent) (others, kernel []routeEvent) {
	for _, e := range events {
		if e.proto == "kernel" {
			kernel = append(kernel, e)
		} else {
			others = append(others, e)
		}
	}
	return others, kernel
}

// podAddresses reads every pod's eth0 IPv4 address from inside the pod.
func podAddresses(t *testing.T, l *lab.Lab) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range l.Pods() {
		b, err := exec.Command("ip", "netns", "exec", p.NS, "ip", "-4", "-o", "addr", "show", "dev", "eth0").Output()
		if err != nil {
			t.Fatalf("addresses of %s: %v", p.Name, err)
		}
		var addrs []string
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 4 {
				addrs = append(addrs, f[3])
			}
		}
		out[p.Name] = strings.Join(addrs, ",")
		if want := p.IP.String() + "/32"; out[p.Name] != want {
			t.Errorf("%s has %q on eth0, want %s", p.Name, out[p.Name], want)
		}
	}
	return out
}

func maps2Equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// startPingers pings between pods on different nodes: the first pod to
// each other node's pods, which covers the same rack and the other one.
func startPingers(t *testing.T, l *lab.Lab) []*pinger {
	return startPingersAmong(t, l.Pods())
}

func startPingersAmong(t *testing.T, pods []lab.Pod) []*pinger {
	t.Helper()
	if len(pods) < 2 {
		t.Fatalf("need two pods to send traffic, have %d", len(pods))
	}
	var out []*pinger
	from := pods[0]
	for _, to := range pods[1:] {
		if to.Node != from.Node {
			out = append(out, startPinger(t, from, to))
		}
	}
	if len(out) == 0 {
		t.Fatal("no two pods on different nodes")
	}
	// Traffic must flow before the fault starts: a first reply from each.
	for _, p := range out {
		if err := waitUntil(30*time.Second, func() bool { return p.received() > 0 }); err != nil {
			t.Fatalf("%s: no reply within 30s", p.name)
		}
	}
	return out
}

// pinger runs ping at 100 packets per second from one pod to another and
// records which sequence numbers were answered.
type pinger struct {
	name  string
	cmd   *exec.Cmd
	done  chan struct{}
	start time.Time

	mu    sync.Mutex
	seqs  map[int]bool
	last  int // last raw icmp_seq seen, to follow its 16-bit wrap
	wraps int
}

var icmpSeq = regexp.MustCompile(`icmp_seq=(\d+)`)

func startPinger(t *testing.T, from, to lab.Pod) *pinger {
	t.Helper()
	p := &pinger{
		name:  fmt.Sprintf("%s -> %s", from.Name, to.Name),
		cmd:   exec.Command("ip", "netns", "exec", from.NS, "ping", "-n", "-i", pingInterval, to.IP.String()),
		done:  make(chan struct{}),
		seqs:  map[int]bool{},
		start: time.Now(),
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("ping from %s: %v", from.Name, err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			m := icmpSeq.FindStringSubmatch(sc.Text())
			if m == nil || strings.Contains(sc.Text(), "DUP!") {
				continue
			}
			seq, _ := strconv.Atoi(m[1])
			p.mu.Lock()
			if seq+1<<15 < p.last {
				p.wraps++
			}
			p.last = seq
			p.seqs[p.wraps<<16+seq] = true
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *pinger) received() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.seqs)
}

type pingStats struct {
	sent    int
	missing []int
	took    time.Duration
}

// stop ends ping and counts as lost every sequence number below the last
// answered one that had no answer. Packets still in flight when ping
// stops are neither lost nor counted.
func (p *pinger) stop(t *testing.T) pingStats {
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	<-p.done
	_ = p.cmd.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	st := pingStats{took: time.Since(p.start)}
	for s := range p.seqs {
		st.sent = max(st.sent, s+1)
	}
	// iputils ping numbers from 1 (older versions from 0).
	first := 1
	if p.seqs[0] {
		first = 0
	}
	for s := first; s < st.sent; s++ {
		if !p.seqs[s] {
			st.missing = append(st.missing, s)
		}
	}
	st.sent -= first
	return st
}

func formatSeqs(seqs []int) string {
	if len(seqs) == 0 {
		return ""
	}
	if len(seqs) > 20 {
		return fmt.Sprintf(" (icmp_seq %v ...)", seqs[:20])
	}
	return fmt.Sprintf(" (icmp_seq %v)", seqs)
}

// waitUntil polls cond every 200ms until it holds or timeout passes.
func waitUntil(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met within %v", timeout)
		}
		time.Sleep(200 * time.Millisecond) // polling interval of a condition with a deadline
	}
}

// withoutPrefixes drops the route lines whose destination is one of ps.
func withoutPrefixes(routes []string, ps []netip.Prefix) []string {
	return slices.DeleteFunc(slices.Clone(routes), func(r string) bool {
		return slices.ContainsFunc(ps, func(p netip.Prefix) bool {
			return parseRouteEvent(r).dst == p.String() || parseRouteEvent(r).dst == p.Addr().String()
		})
	})
}

// routesLeft lists where a route for one of ps remains: in another
// node's kernel, or in a router's kernel or BGP table.
func routesLeft(t *testing.T, l *lab.Lab, gone lab.Node, ps []netip.Prefix) []string {
	t.Helper()
	var left []string
	for _, h := range monitoredHosts(l.Plan()) {
		if h.name == gone.Name {
			continue
		}
		for _, p := range ps {
			out, err := exec.Command("ip", "netns", "exec", h.ns, "ip", "-o", "route", "show", "table", "all", "exact", p.String()).Output()
			if err != nil {
				t.Fatalf("routes of %s: %v", h.name, err)
			}
			if s := strings.TrimSpace(string(out)); s != "" {
				left = append(left, h.name+" kernel: "+s)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, r := range l.Plan().Routers() {
		routes, err := l.RouterRoutes(ctx, r.Name)
		if err != nil {
			t.Fatalf("routes of %s: %v", r.Name, err)
		}
		for _, rt := range routes {
			if slices.Contains(ps, rt.Prefix) {
				left = append(left, fmt.Sprintf("%s BGP: %s via %s from %s", r.Name, rt.Prefix, rt.NextHop, rt.From))
			}
		}
	}
	return left
}

// routerSessionLines are `birdc show protocols` of a router without the
// lines of the named node's session.
func routerSessionLines(t *testing.T, l *lab.Lab, r lab.RouterPlan, except string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := l.Output(ctx, r.Name, "birdc", "show", "protocols")
	if err != nil {
		t.Fatalf("birdc show protocols on %s: %v", r.Name, err)
	}
	var lines []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] != except {
			lines = append(lines, strings.Join(f, " "))
		}
	}
	return lines
}

// routerSessionLine is the `birdc show protocols` line of one session.
func routerSessionLine(t *testing.T, l *lab.Lab, r lab.RouterPlan, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := l.Output(ctx, r.Name, "birdc", "show", "protocols")
	if err != nil {
		t.Fatalf("birdc show protocols on %s: %v", r.Name, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			return strings.Join(f, " ")
		}
	}
	return ""
}

// ipamHeldBy lists the IPAM state kept for a node: blocks whose affinity
// is the node, its claims, and addresses allocated to it.
func ipamHeldBy(t *testing.T, l *lab.Lab, node string) []string {
	t.Helper()
	cc, err := l.CairnClient()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var held []string
	blocks, err := cc.CairnV1alpha1().IPAMBlocks().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list IPAMBlocks: %v", err)
	}
	for _, b := range blocks.Items {
		if b.Spec.Affinity == "node:"+node {
			held = append(held, "block "+b.Spec.CIDR)
		}
		for _, a := range b.Spec.Allocations {
			if a.Node == node {
				held = append(held, fmt.Sprintf("address %d of %s for %s/%s", a.Ordinal, b.Spec.CIDR, a.Namespace, a.Pod))
			}
		}
	}
	claims, err := cc.CairnV1alpha1().BlockAffinities().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list BlockAffinities: %v", err)
	}
	for _, c := range claims.Items {
		if c.Spec.Node == node {
			held = append(held, "claim "+c.Spec.CIDR)
		}
	}
	return held
}
