package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/cairn-net/cairn/internal/lab"
)

// topology is one lab shape of the scale section.
type topology struct {
	name                string
	racks, nodesPerRack int
}

// scaleTopologies are the shapes at n nodes: one rack whose nodes peer in
// a full iBGP mesh, and two racks whose ToRs (BIRD) reflect routes for
// their nodes, the lab's multi-rack design (two route reflectors; n/2
// nodes each, so an odd n loses one and the name says so).
func scaleTopologies(n int) []topology {
	return []topology{
		{name: fmt.Sprintf("%d nodes, full mesh", n), racks: 1, nodesPerRack: n},
		{name: fmt.Sprintf("%d nodes, two route reflectors (the ToRs)", 2*(n/2)), racks: 2, nodesPerRack: n / 2},
	}
}

// runScale brings up labs of Options.ScaleNodes nodes, one after the
// other, and reports how long until every node routes to every pod, the
// agents' memory, and the API requests each node's agent makes per pod
// start (the pod's own node, and all the others together: that must not
// grow with the number of nodes). The shared two-node lab gives the same
// figure at the small end.
func runScale(ctx context.Context, e *Env) ([]Row, error) {
	if len(e.Instances) < 2 {
		return nil, fmt.Errorf("scale needs a second lab instance name (it uses the last one given)")
	}
	var rows []Row
	small, err := e.MainLab(ctx)
	if err != nil {
		return nil, err
	}
	api, err := apiPerPodStart(ctx, small)
	if err != nil {
		return nil, err
	}
	rows = append(rows, apiRows(fmt.Sprintf("%d nodes", len(small.Plan().Nodes())), api)...)
	// A shape that fails is reported and the next one still runs: a
	// 20-node mesh that does not converge says nothing of the reflectors.
	var errs []error
	var largest scaleCost
	for _, n := range e.ScaleNodes {
		cost := scaleCost{nodes: n}
		for _, t := range scaleTopologies(n) {
			start := time.Now()
			r, err := scaleLab(ctx, e, t)
			cost.took += time.Since(start)
			rows = append(rows, r...)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", t.name, err))
			}
			for _, row := range r {
				if strings.HasSuffix(row.Name, ": agent RSS, median") {
					cost.rss = max(cost.rss, row.Value)
				}
			}
		}
		if n >= largest.nodes {
			largest = cost
		}
	}
	if largest.nodes < 100 && largest.rss > 0 {
		e.Note("Not run at 100 nodes (`-scale-nodes %d,100`): %s", largest.nodes, largest.why100())
	}
	return rows, errors.Join(errs...)
}

// scaleCost is what the largest lab size of a run cost: wall time for
// both shapes, and its agents' median RSS (the larger shape's).
type scaleCost struct {
	nodes int
	took  time.Duration
	rss   float64
}

// why100 says, from the cost measured at the run's largest size, what
// 100 nodes would take.
func (c scaleCost) why100() string {
	f := 100.0 / float64(c.nodes)
	return fmt.Sprintf("both shapes at %d nodes took %v here (bring-up, measurement, teardown) at load %s, "+
		"with agents of %.0f MiB each (median). At 100 nodes the agents alone would hold about %.1f GiB, "+
		"and the time grows at least %.0f-fold, %v, and up to %.0f-fold for the full mesh, whose sessions grow with the square of the nodes: "+
		"left out to keep the run within what this %d-core machine, shared with other work, gives it.",
		c.nodes, c.took.Round(time.Second), loadAvg(), c.rss, 100*c.rss/1024, f, time.Duration(f*float64(c.took)).Round(time.Minute), f*f, runtime.NumCPU())
}

func scaleLab(ctx context.Context, e *Env, t topology) ([]Row, error) {
	e.Logf("scale: %s", t.name)
	l, down, err := e.ownLab(ctx, e.Instances[len(e.Instances)-1], lab.Options{Racks: t.racks, NodesPerRack: t.nodesPerRack, PodsPerNode: 1})
	if err != nil {
		return nil, err
	}
	defer down()
	tm := l.Timings
	var rss []float64
	var cpu float64 // s, every agent's since it started
	for _, n := range l.Plan().Nodes() {
		p, err := agentProc(l, n.Name)
		if err != nil {
			return nil, err
		}
		r, _, err := smapsRollup(p.PID)
		if err != nil {
			return nil, err
		}
		rss = append(rss, r/mib)
		ticks, err := cpuTicks(p.PID)
		if err != nil {
			return nil, err
		}
		cpu += (time.Duration(ticks) * clockTick).Seconds()
	}
	nodes := float64(len(rss))
	api, err := apiPerPodStart(ctx, l)
	if err != nil {
		return nil, err
	}
	routing := (tm.Agents + tm.Converge).Seconds()
	return append([]Row{
		{Name: t.name + ": agents started → all ready, plus last pod → every node routes every pod", Unit: "s", Value: routing,
			Goal: AtMost(3), Anchor: "kube-router here: all agents started → every route everywhere 7.2 s (3 nodes), 9.4 s (10 nodes)",
			Note: fmt.Sprintf("agents %.1f s + convergence %.2f s; the lab's serial pod creation between them (%.1f s) left out",
				tm.Agents.Seconds(), tm.Converge.Seconds(), tm.Pods.Seconds())},
		{Name: t.name + ": agents' CPU time, start to converged, all together", Unit: "s", Value: cpu,
			Note: fmt.Sprintf("%.2f s per agent, its pod included; on %d cores that alone takes %.1f s of wall time", cpu/nodes, runtime.NumCPU(), cpu/float64(runtime.NumCPU()))},
		{Name: t.name + ": agent RSS, median", Unit: "MiB", Value: Median(rss), Samples: rss, Goal: AtMost(40), Note: "every agent, 1 pod per node"},
		{Name: t.name + ": agent RSS, max", Unit: "MiB", Value: Quantile(rss, 1)},
	}, apiRows(t.name, api)...), nil
}

// apiRows are a lab's API request figures: per pod start (the issue's
// figure, which must not grow with the nodes) and, apart, what each agent
// sends while nothing happens.
func apiRows(name string, api apiFigures) []Row {
	how := fmt.Sprintf("mean over %d pod starts on the first node, minus each agent's idle rate over %s", scalePodStarts, scaleIdleWindow)
	return []Row{
		{Name: name + ": API requests per pod start, the pod's node", Value: api.Own,
			Anchor: "Calico plugin here: 3 writes + about 12 reads per ADD", Note: how},
		{Name: name + ": API requests per pod start, every other node together", Value: api.Others,
			Note: "must not grow with the nodes; by kind: " + byKindNote(api.OthersByKind)},
		{Name: name + ": API requests per minute of an idle agent, median", Unit: "/min", Value: Median(api.IdlePerMinute), Samples: api.IdlePerMinute,
			Note: fmt.Sprintf("every agent; max %.0f (the leader renews its Leases); a status refresh every 10 s is 6", Quantile(api.IdlePerMinute, 1))},
	}
}
