package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-net/cairn/internal/lab"
)

// scalePodStarts is how many pods the API-request figure is averaged over.
const scalePodStarts = 5

// scaleWindow is how long after the last pod start requests are counted.
const scaleWindow = 5 * time.Second

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
	own, others, err := apiPerPodStart(ctx, small)
	if err != nil {
		return nil, err
	}
	rows = append(rows,
		Row{Name: fmt.Sprintf("%d nodes: API requests per pod start, the pod's node", len(small.Plan().Nodes())), Unit: "", Value: own,
			Anchor: "Calico plugin here: 3 writes + about 12 reads per ADD", Note: fmt.Sprintf("mean over %d pod starts", scalePodStarts)},
		Row{Name: fmt.Sprintf("%d nodes: API requests per pod start, every other node together", len(small.Plan().Nodes())), Unit: "", Value: others},
	)
	// A shape that fails is reported and the next one still runs: a
	// 20-node mesh that does not converge says nothing of the reflectors.
	var errs []error
	for _, n := range e.ScaleNodes {
		for _, t := range scaleTopologies(n) {
			r, err := scaleLab(ctx, e, t)
			rows = append(rows, r...)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", t.name, err))
			}
		}
	}
	return rows, errors.Join(errs...)
}

func scaleLab(ctx context.Context, e *Env, t topology) ([]Row, error) {
	e.Logf("scale: %s", t.name)
	inst := e.Instances[len(e.Instances)-1]
	o := lab.Options{
		StateDir: labStateDir(inst), RepoRoot: e.RepoRoot, Instance: inst,
		Racks: t.racks, NodesPerRack: t.nodesPerRack, PodsPerNode: 1, Logf: e.Logf,
	}
	l, err := upFresh(ctx, o)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := lab.Down(context.WithoutCancel(ctx), l.StateDir(), e.Logf); err != nil {
			e.Logf("take down lab %s: %v", o.Instance, err)
		}
	}()
	tm := l.Timings
	var rss []float64
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
	}
	own, others, err := apiPerPodStart(ctx, l)
	if err != nil {
		return nil, err
	}
	routing := (tm.Agents + tm.Converge).Seconds()
	return []Row{
		{Name: t.name + ": agents started → all ready, plus last pod → every node routes every pod", Unit: "s", Value: routing,
			Goal: AtMost(3), Anchor: "kube-router here: all agents started → every route everywhere 7.2 s (3 nodes), 9.4 s (10 nodes)",
			Note: fmt.Sprintf("agents %.1f s + convergence %.2f s; the lab's serial pod creation between them (%.1f s) left out",
				tm.Agents.Seconds(), tm.Converge.Seconds(), tm.Pods.Seconds())},
		{Name: t.name + ": agent RSS, median", Unit: "MiB", Value: Median(rss), Samples: rss, Goal: AtMost(40), Note: "every agent, 1 pod per node"},
		{Name: t.name + ": agent RSS, max", Unit: "MiB", Value: Quantile(rss, 1)},
		{Name: t.name + ": API requests per pod start, the pod's node", Unit: "", Value: own, Note: fmt.Sprintf("mean over %d pod starts", scalePodStarts)},
		{Name: t.name + ": API requests per pod start, every other node together", Unit: "", Value: others, Note: "must not grow with the nodes"},
	}, nil
}

// apiPerPodStart starts scalePodStarts pods on the lab's first node and
// returns the API requests per pod start made by that node's agent and by
// all the other agents together, from their own request counters. The
// pods are deleted again.
func apiPerPodStart(ctx context.Context, l *lab.Lab) (own, others float64, err error) {
	nodes := l.Plan().Nodes()
	before, err := apiCounts(ctx, nodes)
	if err != nil {
		return 0, 0, err
	}
	var pods []string
	for range scalePodStarts {
		p, err := l.AddPod(ctx, nodes[0].Name)
		if err != nil {
			return 0, 0, err
		}
		pods = append(pods, p.Name)
	}
	// A measurement window, not a synchronisation: agents answer a new
	// block through their informers' watches, and whatever requests they
	// make in answer (status writes, debounced) fall inside it.
	time.Sleep(scaleWindow)
	after, err := apiCounts(ctx, nodes)
	if err != nil {
		return 0, 0, err
	}
	for _, p := range pods {
		if err := l.DelPod(ctx, p); err != nil {
			return 0, 0, err
		}
	}
	for i := range nodes {
		d := after[i] - before[i]
		if i == 0 {
			own = d
		} else {
			others += d
		}
	}
	return own / scalePodStarts, others / scalePodStarts, nil
}

// apiCounts reads each node's cairn_api_request_duration_seconds_count,
// summed over resources and verbs, from the agent's metrics endpoint.
func apiCounts(ctx context.Context, nodes []lab.Node) ([]float64, error) {
	out := make([]float64, len(nodes))
	for i, n := range nodes {
		body, err := inNS(ctx, n.NS, "curl", "-sf", "--max-time", "10", "http://127.0.0.1:9091/metrics")
		if err != nil {
			return nil, fmt.Errorf("metrics of %s: %w", n.Name, err)
		}
		sc := bufio.NewScanner(strings.NewReader(body))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "cairn_api_request_duration_seconds_count{") {
				continue
			}
			f := strings.Fields(line)
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				out[i] += v
			}
		}
	}
	return out, nil
}
