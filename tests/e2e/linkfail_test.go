package e2e

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
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
		lf.t = t
		lf.measure(time.Second, "BFD 200ms x 3")
	})
	t.Run("without BFD, hold time 9s", func(t *testing.T) {
		lf.t = t
		lf.setBFDAndHold(t, nil, &metav1.Duration{Duration: linkFailHold})
		lf.measure(linkFailHold, "no BFD, hold time 9s")
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
}

// measure cuts the link linkCuts times and checks that the block leaves
// the ToR and the other node within bound every time (a generous margin
// for a busy machine: 1 s more), and that half the cuts make it within
// bound itself.
func (lf *linkFailure) measure(bound time.Duration, what string) {
	t := lf.t
	var torT, nodeT []time.Duration
	for i := range linkCuts {
		a, b := lf.cutOnce()
		torT, nodeT = append(torT, a), append(nodeT, b)
		t.Logf("cut %d (%s): block %s gone from %s after %v, from %s after %v",
			i+1, what, lf.block, lf.tor.Name, a.Round(time.Millisecond), lf.other.Name, b.Round(time.Millisecond))
	}
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("%s, %s, %d cuts: %s p50 %v max %v; %s p50 %v max %v; load average %s", lf.l.Plan().Router, what, linkCuts,
		lf.tor.Name, p50(torT), slices.Max(torT), lf.other.Name, p50(nodeT), slices.Max(nodeT), strings.TrimSpace(string(load)))
	for name, ds := range map[string][]time.Duration{lf.tor.Name: torT, lf.other.Name: nodeT} {
		if p50(ds) > bound || slices.Max(ds) > bound+time.Second {
			t.Errorf("%s: %s kept %s's block too long: %v (want within %v)", what, name, lf.cut.Name, ds, bound)
		}
	}
}

// cutOnce sets the ToR's end of the cut node's veth down, waits for the
// block's route to leave the ToR's and the other node's kernels, then
// restores the link and waits for the lab to converge again.
func (lf *linkFailure) cutOnce() (torGone, nodeGone time.Duration) {
	t := lf.t
	t.Helper()
	setLink := func(state string) {
		if out, err := exec.Command("ip", "-n", lf.tor.NS, "link", "set", lf.cut.Name, state).CombinedOutput(); err != nil {
			t.Fatalf("ip link set %s %s in %s: %v: %s", lf.cut.Name, state, lf.tor.NS, err, out)
		}
	}
	t.Cleanup(func() { _ = exec.Command("ip", "-n", lf.tor.NS, "link", "set", lf.cut.Name, "up").Run() })
	gone := func(e routeEvent) bool { return e.deleted && e.dst == lf.block.String() }
	start := time.Now()
	setLink("down")
	for _, h := range []string{lf.tor.Name, lf.other.Name} {
		e, ok := lf.mons[h].after(start, 5*time.Minute, gone)
		if !ok {
			t.Fatalf("%s still routes %s's block %s %v after the cut", h, lf.cut.Name, lf.block, time.Since(start).Round(time.Second))
		}
		if h == lf.tor.Name {
			torGone = e.at.Sub(start)
		} else {
			nodeGone = e.at.Sub(start)
		}
	}
	setLink("up")
	ctx := context.Background()
	back := func(e routeEvent) bool { return !e.deleted && e.dst == lf.block.String() }
	for _, h := range []string{lf.tor.Name, lf.other.Name} {
		if _, ok := lf.mons[h].after(start, 3*time.Minute, back); !ok {
			t.Fatalf("%s did not route %s's block again after the link came back", h, lf.cut.Name)
		}
	}
	if err := lf.l.WaitConverged(ctx, 3*time.Minute); err != nil {
		t.Fatalf("after the link came back: %v", err)
	}
	return torGone, nodeGone
}

// setBFDAndHold sets the mesh's and the ToR BGPPeers' BFD and hold time,
// then waits until the agents applied it: with BFD off, the ToR's BFD
// sessions go down (ours stopped answering) and the BGP sessions, reset
// by the change, are up again.
func (lf *linkFailure) setBFDAndHold(t *testing.T, bfd *cairnv1.BFD, hold *metav1.Duration) {
	t.Helper()
	ctx := context.Background()
	cc, err := lf.l.CairnClient()
	if err != nil {
		t.Fatal(err)
	}
	conf, err := cc.CairnV1alpha1().BGPConfigurations().Get(ctx, "default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	conf.Spec.NodeMeshBFD, conf.Spec.NodeMeshHoldTime = bfd, hold
	if _, err := cc.CairnV1alpha1().BGPConfigurations().Update(ctx, conf, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update BGPConfiguration: %v", err)
	}
	peers, err := cc.CairnV1alpha1().BGPPeers().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers.Items {
		p.Spec.BFD, p.Spec.HoldTime = bfd, hold
		if _, err := cc.CairnV1alpha1().BGPPeers().Update(ctx, &p, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("update BGPPeer %s: %v", p.Name, err)
		}
	}
	if bfd == nil {
		if err := waitUntil(2*time.Minute, func() bool { return lf.torBFDUp() == 0 }); err != nil {
			t.Fatalf("%s still has BFD sessions up after BFD was turned off: %v", lf.tor.Name, err)
		}
	}
	if err := lf.l.WaitConverged(ctx, 3*time.Minute); err != nil {
		t.Fatalf("after the BGP settings changed: %v", err)
	}
}

// torBFDUp counts the ToR's BFD sessions that are up.
func (lf *linkFailure) torBFDUp() int {
	t := lf.t
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if lf.l.Plan().Router == lab.RouterFRR {
		out, err := lf.l.Output(ctx, lf.tor.Name, "vtysh", "-c", "show bfd peers json")
		if err != nil {
			t.Fatalf("show bfd peers on %s: %v", lf.tor.Name, err)
		}
		var peers []struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal(out, &peers); err != nil {
			t.Fatalf("decode bfdd peers of %s: %v: %s", lf.tor.Name, err, out)
		}
		n := 0
		for _, p := range peers {
			if p.Status == "up" {
				n++
			}
		}
		return n
	}
	out, err := lf.l.Output(ctx, lf.tor.Name, "birdc", "show", "bfd", "sessions")
	if err != nil {
		t.Fatalf("birdc show bfd sessions on %s: %v", lf.tor.Name, err)
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[2] == "Up" {
			n++
		}
	}
	return n
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
