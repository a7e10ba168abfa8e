package bench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cairn-net/cairn/internal/lab"
)

// Link-cut waits: for the lab to settle between cuts (a restored link
// costs the cut node a BGP session reset and GoBGP's 30 s idle hold), for
// a route to leave after a cut (the longest hold time measured plus
// room), and for it to come back.
const (
	linkCutSettle  = 3 * time.Minute
	linkCutGone    = 5 * time.Minute
	linkCutRestore = 3 * time.Minute
)

// DefaultLinkCutHolds are the hold times the link-cut section measures
// without BFD: a short one, so that five cuts fit in minutes. 90 s, the
// default, adds about ten minutes (-linkcut-holds 9s,90s).
var DefaultLinkCutHolds = []time.Duration{9 * time.Second}

// defaultHoldTime is BGPConfiguration's and BGPPeer's unset hold time:
// the link-cut section leaves it unset rather than writing it.
const defaultHoldTime = 90 * time.Second

// runLinkCut brings up a lab of one rack, two nodes and BFD (the shape of
// tests/e2e's link-failure tests), cuts the first node's link to its ToR
// (the ToR's end of the veth set down: the node and its agent keep
// running, nothing is sent or closed) Rounds times, and times, from the
// cut, the node's block leaving the ToR's kernel and the other node's,
// from the kernels' notifications; first with BFD (the lab's 200 ms × 3),
// then without it at each of Options.LinkCutHolds.
func runLinkCut(ctx context.Context, e *Env) ([]Row, error) {
	if len(e.Instances) < 2 {
		return nil, fmt.Errorf("linkcut needs a second lab instance name")
	}
	l, down, err := e.ownLab(ctx, e.Instances[1], lab.Options{Racks: 1, NodesPerRack: 2, PodsPerNode: 1, BFD: true})
	if err != nil {
		return nil, err
	}
	defer down()
	watchCtx, stop := context.WithCancel(ctx)
	defer stop()
	lc, err := newLinkCut(watchCtx, l)
	if err != nil {
		return nil, err
	}
	var rows []Row
	bfd := fmt.Sprintf("BFD %v × %d", lab.LabBFDInterval, lab.LabBFDMultiplier)
	torT, nodeT, err := lc.cuts(ctx, e, true)
	if err != nil {
		return nil, fmt.Errorf("with %s: %w", bfd, err)
	}
	rows = append(rows, lc.rows("with "+bfd, "", torT, nodeT)...)
	for i, hold := range holdsOrDefault(e.LinkCutHolds) {
		// From BFD up, the first time: BFD sessions still down from the
		// last cut must not pass for BFD turned off.
		if err := l.WaitSettled(ctx, linkCutSettle, i == 0); err != nil {
			return rows, fmt.Errorf("before turning BFD off: %w", err)
		}
		var h *metav1.Duration
		if hold != defaultHoldTime {
			h = &metav1.Duration{Duration: hold}
		}
		if err := l.SetBFDAndHold(ctx, nil, h, linkCutSettle); err != nil {
			return rows, fmt.Errorf("turn BFD off, hold time %v: %w", hold, err)
		}
		torT, nodeT, err := lc.cuts(ctx, e, false)
		what := fmt.Sprintf("without BFD, hold time %v", hold)
		if h == nil {
			what += " (the default)"
		}
		if err != nil {
			return rows, fmt.Errorf("%s: %w", what, err)
		}
		rows = append(rows, lc.rows(what, "kube-router here: 73–89 s at its 90 s hold time; Calico without BFD: up to 4 min (reference.md)", torT, nodeT)...)
	}
	return rows, nil
}

func holdsOrDefault(holds []time.Duration) []time.Duration {
	if len(holds) == 0 {
		return DefaultLinkCutHolds
	}
	return holds
}

// linkCut is one lab's link-cut measurement: the node whose link is cut,
// its block, and the kernels watched for it.
type linkCut struct {
	l          *lab.Lab
	tor        lab.RouterPlan
	cut, other lab.Node
	block      netip.Prefix
	atToR      *routeWatch
	atOther    *routeWatch
}

func newLinkCut(ctx context.Context, l *lab.Lab) (*linkCut, error) {
	rack := l.Plan().Racks[0]
	if len(rack.Nodes) < 2 {
		return nil, fmt.Errorf("linkcut needs two nodes in %s, have %d", rack.Name, len(rack.Nodes))
	}
	lc := &linkCut{l: l, tor: rack.ToR, cut: rack.Nodes[0], other: rack.Nodes[1]}
	blocks, err := l.NodeBlocks(ctx)
	if err != nil {
		return nil, err
	}
	if len(blocks[lc.cut.Name]) == 0 {
		return nil, fmt.Errorf("%s holds no block", lc.cut.Name)
	}
	lc.block = blocks[lc.cut.Name][0]
	// The watches end with ctx.
	if lc.atToR, err = watchRoutes(ctx, lc.tor.NS); err != nil {
		return nil, err
	}
	if lc.atOther, err = watchRoutes(ctx, lc.other.NS); err != nil {
		return nil, err
	}
	return lc, nil
}

// cuts cuts the link Rounds times and returns, in ms, when the block
// left the ToR's kernel and the other node's after each cut.
func (lc *linkCut) cuts(ctx context.Context, e *Env, bfd bool) (torT, nodeT []float64, err error) {
	for i := range e.Rounds {
		a, b, err := lc.once(ctx, bfd)
		if err != nil {
			return nil, nil, fmt.Errorf("cut %d: %w", i+1, err)
		}
		torT, nodeT = append(torT, ms(a)), append(nodeT, ms(b))
		e.Logf("  cut %d: %s gone from %s after %v, from %s after %v", i+1, lc.block, lc.tor.Name,
			a.Round(time.Millisecond), lc.other.Name, b.Round(time.Millisecond))
	}
	return torT, nodeT, nil
}

// once waits until the lab is settled and the block is routed at the ToR
// and the other node, cuts the link, waits for the block to leave both
// kernels, restores the link and waits for the block to come back.
func (lc *linkCut) once(ctx context.Context, bfd bool) (torGone, nodeGone time.Duration, err error) {
	if err := lc.settleRouted(ctx, bfd); err != nil {
		return 0, 0, err
	}
	start := time.Now()
	restore, err := lc.l.CutLink(ctx, lc.cut.Name)
	if err != nil {
		return 0, 0, err
	}
	restored := false
	defer func() {
		if !restored {
			if rerr := restore(context.WithoutCancel(ctx)); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
	}()
	tTor, err := lc.atToR.waitEvent(ctx, lc.block, true, start, linkCutGone)
	if err != nil {
		return 0, 0, fmt.Errorf("%s after the cut: %w", lc.tor.Name, err)
	}
	tNode, err := lc.atOther.waitEvent(ctx, lc.block, true, start, linkCutGone)
	if err != nil {
		return 0, 0, fmt.Errorf("%s after the cut: %w", lc.other.Name, err)
	}
	restored = true
	if err := restore(ctx); err != nil {
		return 0, 0, err
	}
	// Back after it left: an addition between the cut and the removal
	// (a route replaced) is not the route's return.
	for w, gone := range map[*routeWatch]time.Time{lc.atToR: tTor, lc.atOther: tNode} {
		if _, err := w.waitEvent(ctx, lc.block, false, gone, linkCutRestore); err != nil {
			return 0, 0, fmt.Errorf("after the link came back: %w", err)
		}
	}
	return tTor.Sub(start), tNode.Sub(start), nil
}

// settleRouted settles the lab and checks that the ToR and the other node
// route the block: a cut measures a withdrawal only if the route is
// there. A session that went down in between (a BFD session that missed
// 600 ms of packets on a busy machine) already withdrew it: the lab is
// settled again, up to three times.
func (lc *linkCut) settleRouted(ctx context.Context, bfd bool) error {
	var missing []string
	for range 3 {
		if err := lc.l.WaitSettled(ctx, linkCutSettle, bfd); err != nil {
			return fmt.Errorf("before the cut: %w", err)
		}
		missing = missing[:0]
		for _, h := range []struct{ name, ns string }{{lc.tor.Name, lc.tor.NS}, {lc.other.Name, lc.other.NS}} {
			ok, err := lab.Routed(ctx, h.ns, lc.block)
			if err != nil {
				return err
			}
			if !ok {
				missing = append(missing, h.name)
			}
		}
		if len(missing) == 0 {
			return nil
		}
	}
	return fmt.Errorf("before the cut, %s did not route %s's block %s though the lab had converged, three times",
		strings.Join(missing, " and "), lc.cut.Name, lc.block)
}

// rows are one mode's figures: medians at the ToR and at the other node.
func (lc *linkCut) rows(mode, anchor string, torT, nodeT []float64) []Row {
	note := fmt.Sprintf("%d cuts of %s's link (the ToR's end set down), from the cut to its block leaving %s's kernel; %s",
		len(torT), lc.cut.Name, lc.tor.Name, detection(mode))
	return []Row{
		{Name: "link cut → routes gone at the ToR, " + mode + ", p50", Unit: "ms", Value: Median(torT), Samples: torT,
			Anchor: anchor, Note: note},
		{Name: "link cut → routes gone at the other node, " + mode + ", p50", Unit: "ms", Value: Median(nodeT), Samples: nodeT,
			Note: lc.other.Name + "'s kernel: it learned the block over the node mesh session, which crosses the same link"},
	}
}

// detection says what bounds the detection in a mode.
func detection(mode string) string {
	if strings.HasPrefix(mode, "with BFD") {
		return "BFD declares the session down after 3 missed packets, 600 ms"
	}
	return "the hold timer expires from about two thirds of the hold time to all of it after the cut (a keepalive every third of it)"
}
