package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cairnv1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/internal/lab"
)

// linkFailInstance keeps this test's lab apart from the other tests'.
const linkFailInstance = "e2ebfd"

// Link-failure figures: cuts per mode, and the short hold time of the
// runs without BFD.
const (
	linkCuts     = 5
	linkFailHold = 9 * time.Second
)

// TestLinkFailureBIRD and TestLinkFailureFRR cut a node's link to its ToR
// (the ToR's end of the veth set down: the node and its agent keep
// running, nothing is sent or closed) and measure, from the cut, when the
// node's block leaves the ToR's kernel and the other node's kernel. With
// BFD (200 ms x 3) at both ends, within 1 s; without BFD, within the hold
// time (9 s here): not the hold time plus a graceful-restart stale time,
// as for a peer restarting. linkCuts cuts per mode, the link restored and
// the lab converged between cuts; the figures and the machine's load are
// logged.
func TestLinkFailureBIRD(t *testing.T) { checkLinkFailure(t, lab.RouterBIRD) }

func TestLinkFailureFRR(t *testing.T) { checkLinkFailure(t, lab.RouterFRR) }

func checkLinkFailure(t *testing.T, router string) {
	l := upLab(t, lab.Options{Router: router, BFD: true, PodsPerNode: 1, Instance: linkFailInstance})
	p := l.Plan()
	tor := p.Racks[0].ToR
	cut, other := p.Racks[0].Nodes[0], p.Racks[0].Nodes[1]
	blocks := nodeBlocks(t, l)[cut.Name]
	if len(blocks) == 0 {
		t.Fatalf("%s holds no block", cut.Name)
	}
	mons := map[string]*routeMonitor{}
	for i, h := range []host{{tor.Name, tor.NS}, {other.Name, other.NS}} {
		mons[h.name] = startRouteMonitor(t, h.name, h.ns)
		mons[h.name].fence(t, h.ns, markerAddr(9, i))
	}
	lf := linkFailure{t: t, l: l, tor: tor, cut: cut, other: other, block: blocks[0], mons: mons}

	t.Run("with BFD", func(t *testing.T) {
		lf.t, lf.bound, lf.slack = t, time.Second, time.Second
		lf.measure("BFD 200ms x 3", true)
	})
	t.Run("without BFD, hold time 9s", func(t *testing.T) {
		lf.t, lf.bound, lf.slack = t, linkFailHold, 2*time.Second
		lf.setBFDAndHold(t, nil, &metav1.Duration{Duration: linkFailHold})
		lf.measure("no BFD, hold time 9s", false)
	})
}

// linkFailure is one lab's link-failure measurement.
type linkFailure struct {
	t          *testing.T
	l          *lab.Lab
	tor        lab.RouterPlan
	cut, other lab.Node
	block      netip.Prefix
	mons       map[string]*routeMonitor
	// bound is the current mode's: half the cuts must be within it, and
	// a cut that takes longer is explained. slack is what one cut may
	// take on top: the detection itself ends within the bound (600 ms of
	// BFD; the hold timer, at most the hold time after the last message
	// before the cut), and the rest is the router's or agent's event
	// loop, the kernel and the route monitor on a busy machine. BIRD
	// dropped the route 9.4 s after a cut at a 9 s hold time, at load 45
	// on 2 cores; CI runs at loads up to 78.
	bound, slack time.Duration
}

// measure cuts the link linkCuts times and checks that the block leaves
// the ToR and the other node within lf.bound for half the cuts, and
// within lf.bound plus lf.slack for every cut. A cut over the bound logs,
// at once, what explains it (see explain).
func (lf *linkFailure) measure(what string, bfd bool) {
	t, bound := lf.t, lf.bound
	var torT, nodeT []time.Duration
	for i := range linkCuts {
		a, b := lf.cutOnce(bfd)
		torT, nodeT = append(torT, a), append(nodeT, b)
		t.Logf("cut %d (%s): block %s gone from %s after %v, from %s after %v",
			i+1, what, lf.block, lf.tor.Name, a.Round(time.Millisecond), lf.other.Name, b.Round(time.Millisecond))
	}
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("%s, %s, %d cuts: %s p50 %v max %v; %s p50 %v max %v; load average %s", lf.l.Plan().Router, what, linkCuts,
		lf.tor.Name, p50(torT), slices.Max(torT), lf.other.Name, p50(nodeT), slices.Max(nodeT), strings.TrimSpace(string(load)))
	for name, ds := range map[string][]time.Duration{lf.tor.Name: torT, lf.other.Name: nodeT} {
		if p50(ds) > bound || slices.Max(ds) > bound+lf.slack {
			t.Errorf("%s: %s kept %s's block too long: %v (want half within %v, all within %v); the state at each slow cut is logged above",
				what, name, lf.cut.Name, ds, bound, bound+lf.slack)
		}
	}
}

// cutOnce waits until the lab is settled (with BFD: BFD up at the ToR
// too) and the block is routed at the ToR and the other node (see
// settleRouted), sets the
// ToR's end of the cut node's veth down, waits for the block's route to
// leave the ToR's and the other node's kernels, then restores the link.
// A cut that takes longer than the bound, or never ends, gets explain's
// dump.
func (lf *linkFailure) cutOnce(bfd bool) (torGone, nodeGone time.Duration) {
	t := lf.t
	t.Helper()
	lf.settleRouted(bfd)
	restore, err := lf.l.CutLink(context.Background(), lf.cut.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = restore(context.Background()) })
	start := time.Now()
	gone := func(e routeEvent) bool { return e.deleted && e.dst == lf.block.String() }
	for _, h := range []string{lf.tor.Name, lf.other.Name} {
		e, ok := lf.mons[h].after(start, 5*time.Minute, gone)
		if !ok {
			t.Fatalf("%s still routes %s's block %s %v after the cut:%s", h, lf.cut.Name, lf.block, time.Since(start).Round(time.Second), lf.explain(start))
		}
		if h == lf.tor.Name {
			torGone = e.at.Sub(start)
		} else {
			nodeGone = e.at.Sub(start)
		}
	}
	if slow := max(torGone, nodeGone); slow > lf.bound {
		t.Logf("this cut took %v, over %v:%s", slow.Round(time.Millisecond), lf.bound, lf.explain(start))
	}
	if err := restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	back := func(e routeEvent) bool { return !e.deleted && e.dst == lf.block.String() }
	for _, h := range []string{lf.tor.Name, lf.other.Name} {
		if _, ok := lf.mons[h].after(start, 3*time.Minute, back); !ok {
			t.Fatalf("%s did not route %s's block again after the link came back:%s", h, lf.cut.Name, lf.explain(start))
		}
	}
	return torGone, nodeGone
}

// settle waits until the lab converged and, with BFD, until the ToR's BFD
// sessions are up and the lab converged again after that: FRR replaces
// its BFD session when the BGP session comes up, and the node resets the
// BGP session it just established (lab.WaitBFDUp says why). Cut inside
// that window, the block is withdrawn by the reset, not by the cut, or
// stays at the ToR until the hold time.
func (lf *linkFailure) settle(bfd bool) {
	t := lf.t
	t.Helper()
	if err := lf.l.WaitSettled(context.Background(), 3*time.Minute, bfd); err != nil {
		t.Fatalf("before the cut: %v%s", err, lf.explain(time.Now().Add(-time.Minute)))
	}
}

// settleRouted settles the lab and checks that the ToR and the other node
// route the block: a cut measures a route's withdrawal only if the route
// is there. A session that went down between the two (a BFD session timed
// out on a busy machine: 600 ms without a packet) withdrew it already;
// that is logged with what explains it, and the lab settled again, up to
// three times.
func (lf *linkFailure) settleRouted(bfd bool) {
	t := lf.t
	t.Helper()
	for attempt := 1; ; attempt++ {
		checked := time.Now()
		lf.settle(bfd)
		missing := ""
		for _, h := range []host{{lf.tor.Name, lf.tor.NS}, {lf.other.Name, lf.other.NS}} {
			if ok, err := lab.Routed(context.Background(), h.ns, lf.block); err != nil || !ok {
				missing = h.name
				break
			}
		}
		if missing == "" {
			return
		}
		msg := fmt.Sprintf("before the cut, %s does not route %s's block %s, though the lab had converged (attempt %d):%s",
			missing, lf.cut.Name, lf.block, attempt, lf.explain(checked.Add(-time.Minute)))
		if attempt == 3 {
			t.Fatal(msg)
		}
		t.Log(msg)
	}
}

// explain is what a slow or failed cut needs to be understood: the ToR's
// BFD and BGP sessions now, the agents' session and BFD events and the
// route events of the ToR and the other node since the cut.
func (lf *linkFailure) explain(since time.Time) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var b strings.Builder
	fmt.Fprintf(&b, "\n--- %s BFD sessions:", lf.tor.Name)
	if bfd, err := lf.l.RouterBFD(ctx, lf.tor.Name); err != nil {
		fmt.Fprintf(&b, " %v", err)
	} else {
		for _, s := range bfd {
			from := ""
			if s.Local.IsValid() {
				from = " from " + s.Local.String()
			}
			fmt.Fprintf(&b, "\n  %s%s: %s (%s)", s.Peer, from, s.State, s.Detail)
		}
	}
	summary := []string{"birdc", "show", "protocols"}
	if lf.l.Plan().Router == lab.RouterFRR {
		summary = []string{"vtysh", "-c", "show bgp summary"}
	}
	out, err := lf.l.Output(ctx, lf.tor.Name, summary...)
	fmt.Fprintf(&b, "\n--- %s BGP sessions (%v):\n%s", lf.tor.Name, err, strings.TrimSpace(string(out)))
	for _, p := range lf.l.Procs() {
		// The router's daemons (bird; zebra, bfdd, bgpd): their last lines.
		if p.NS == lf.tor.NS {
			fmt.Fprintf(&b, "\n--- %s, last lines:\n%s", p.Name, lastLines(p.Log, 15))
		}
	}
	for _, n := range []lab.Node{lf.cut, lf.other} {
		fmt.Fprintf(&b, "\n--- %s's agent, sessions and BFD since %s:", n.Name, since.UTC().Format("15:04:05.000"))
		for _, p := range lf.l.Procs() {
			if p.Name == "cairn-node-"+n.Name {
				b.WriteString(sessionLogLines(p.Log, since))
			}
		}
	}
	for _, h := range []string{lf.tor.Name, lf.other.Name} {
		fmt.Fprintf(&b, "\n--- %s route events since then:", h)
		for _, e := range lf.mons[h].since(since) {
			fmt.Fprintf(&b, "\n  %s %s", e.at.UTC().Format("15:04:05.000"), e.line)
		}
	}
	return b.String()
}

// lastLines is the last n lines of the file at path.
func lastLines(path string, n int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// sessionLogLines are the lines of an agent's log, at or after since,
// about BGP sessions and BFD.
func sessionLogLines(path string, since time.Time) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return " " + err.Error()
	}
	var b strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		l := strings.ToLower(line)
		if !strings.Contains(l, "bfd") && !strings.Contains(l, "peer up") && !strings.Contains(l, "peer down") &&
			!strings.Contains(l, "session state changed") && !strings.Contains(l, "hold timer") {
			continue
		}
		if _, rest, ok := strings.Cut(line, "time="); ok {
			at, err := time.Parse(time.RFC3339Nano, strings.Fields(rest + " ")[0])
			if err == nil && at.Before(since) {
				continue
			}
		}
		fmt.Fprintf(&b, "\n  %s", line)
	}
	return b.String()
}

// setBFDAndHold sets the mesh's and the ToR BGPPeers' BFD and hold time,
// then waits until the agents applied it (lab.SetBFDAndHold).
func (lf *linkFailure) setBFDAndHold(t *testing.T, bfd *cairnv1.BFD, hold *metav1.Duration) {
	t.Helper()
	// From a settled lab, with BFD up: BFD sessions down after the last
	// cut must not pass for BFD turned off.
	lf.settle(true)
	if err := lf.l.SetBFDAndHold(context.Background(), bfd, hold, 3*time.Minute); err != nil {
		t.Fatalf("%v%s", err, lf.explain(time.Now().Add(-3*time.Minute)))
	}
}

// since returns the events read at or after t.
func (m *routeMonitor) since(t time.Time) []routeEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []routeEvent
	for _, e := range m.events {
		if !e.at.Before(t) {
			out = append(out, e)
		}
	}
	return out
}

// after returns the first event read at or after since that matches,
// waiting up to timeout.
func (m *routeMonitor) after(since time.Time, timeout time.Duration, match func(routeEvent) bool) (routeEvent, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		m.mu.Lock()
		for _, e := range m.events {
			if !e.at.Before(since) && match(e) {
				m.mu.Unlock()
				return e, true
			}
		}
		changed := m.changed
		m.mu.Unlock()
		select {
		case <-changed:
		case <-m.done:
			return routeEvent{}, false
		case <-deadline.C:
			return routeEvent{}, false
		}
	}
}

// p50 is the median (the upper one of an even count).
func p50(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
