package bench

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cairn-net/cairn/internal/lab"
)

// scalePodStarts is how many pods the API-request figure is averaged over.
const scalePodStarts = 5

// scaleWindow is how long after the last pod start requests are counted.
const scaleWindow = 5 * time.Second

// scaleIdleWindow is how long the agents' idle requests are counted
// before the pods start: their rate over the pod starts' window is taken
// out of what was counted then, so that the figure is what pod starts
// cost, not what agents send anyway (status refreshes, Lease renewals).
const scaleIdleWindow = 15 * time.Second

// apiSample is every agent's API requests so far by kind ("GET leases",
// "PUT cairnnodestatuses/status"), read at one moment.
type apiSample struct {
	at    time.Time
	nodes []map[string]float64
}

// apiFigures are the API request figures of one lab.
type apiFigures struct {
	// Own and Others are the requests per pod start of the pod's node and
	// of all the others together, idle rate taken out.
	Own, Others float64
	// OthersByKind is Others by kind of request.
	OthersByKind map[string]float64
	// IdlePerMinute is each agent's requests per minute while no pod
	// starts.
	IdlePerMinute []float64
}

// podStartRequests computes the figures from samples taken before and
// after an idle window and before and after pods pod starts on the first
// node: what each agent sent during the starts minus what it sends idle
// in as long a time.
func podStartRequests(idle0, idle1, busy0, busy1 apiSample, pods int) apiFigures {
	idle, busy := idle1.at.Sub(idle0.at).Seconds(), busy1.at.Sub(busy0.at).Seconds()
	f := apiFigures{OthersByKind: map[string]float64{}}
	for i := range busy1.nodes {
		idleCount := 0.0
		for kind, n := range busy1.nodes[i] {
			idleCount += idle1.nodes[i][kind] - idle0.nodes[i][kind]
			if kind == statusRefreshKind {
				continue // periodic by definition, whatever the window catches
			}
			rate := (idle1.nodes[i][kind] - idle0.nodes[i][kind]) / idle
			caused := (n - busy0.nodes[i][kind] - rate*busy) / float64(pods)
			if i == 0 {
				f.Own += caused
			} else {
				f.Others += caused
				f.OthersByKind[kind] += caused
			}
		}
		f.IdlePerMinute = append(f.IdlePerMinute, idleCount/idle*60)
	}
	return f
}

// apiPerPodStart counts every agent's requests over an idle window, then
// starts scalePodStarts pods on the lab's first node and counts again
// until scaleWindow after the last; the pods are deleted again.
func apiPerPodStart(ctx context.Context, l *lab.Lab) (apiFigures, error) {
	nodes := l.Plan().Nodes()
	idle0, err := sampleAPI(ctx, nodes)
	if err != nil {
		return apiFigures{}, err
	}
	// Measurement windows, not synchronisation: agents answer a new block
	// through their informers' watches, and whatever requests they make in
	// answer (status writes, debounced) fall inside the second one.
	if err := pause(ctx, scaleIdleWindow); err != nil {
		return apiFigures{}, err
	}
	busy0, err := sampleAPI(ctx, nodes)
	if err != nil {
		return apiFigures{}, err
	}
	var pods []string
	for range scalePodStarts {
		p, err := l.AddPod(ctx, nodes[0].Name)
		if err != nil {
			return apiFigures{}, err
		}
		pods = append(pods, p.Name)
	}
	if err := pause(ctx, scaleWindow); err != nil {
		return apiFigures{}, err
	}
	busy1, err := sampleAPI(ctx, nodes)
	if err != nil {
		return apiFigures{}, err
	}
	for _, p := range pods {
		if err := l.DelPod(ctx, p); err != nil {
			return apiFigures{}, err
		}
	}
	return podStartRequests(idle0, busy0, busy0, busy1, scalePodStarts), nil
}

func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// sampleAPI reads each node's cairn_api_request_duration_seconds_count by
// verb and resource from the agent's metrics endpoint.
func sampleAPI(ctx context.Context, nodes []lab.Node) (apiSample, error) {
	s := apiSample{nodes: make([]map[string]float64, len(nodes))}
	for i, n := range nodes {
		m, err := scrapeAgent(ctx, n)
		if err != nil {
			return apiSample{}, err
		}
		s.nodes[i] = apiRequestCounts(m)
	}
	// One moment for all: the reads take milliseconds, the windows seconds.
	s.at = time.Now()
	return s, nil
}

var (
	verbLabel     = regexp.MustCompile(`verb="([^"]*)"`)
	resourceLabel = regexp.MustCompile(`resource="([^"]*)"`)
)

// statusRefreshKind are the agent's rewrites of its unchanged
// CairnNodeStatus, every --status-interval (10 s): taken out of the PUTs
// of cairnnodestatuses/status by the agent's own count. Agents started
// together refresh in step, so a window catches all of theirs or none,
// and by the idle rate alone the figure swung by the nodes' number over
// the pod starts (0.9 per pod start at 10 nodes).
const statusRefreshKind = "PUT cairnnodestatuses/status, refresh"

// apiRequestCounts sums cairn_api_request_duration_seconds_count by
// "VERB resource", the status refreshes apart (statusRefreshKind).
func apiRequestCounts(m agentMetrics) map[string]float64 {
	out := map[string]float64{}
	for series, v := range m {
		labels, ok := strings.CutPrefix(series, "cairn_api_request_duration_seconds_count{")
		if !ok {
			continue
		}
		var verb, resource string
		if m := verbLabel.FindStringSubmatch(labels); m != nil {
			verb = m[1]
		}
		if m := resourceLabel.FindStringSubmatch(labels); m != nil {
			resource = m[1]
		}
		out[verb+" "+resource] += v
	}
	if refresh := m.sum("cairn_node_status_writes_total", []string{`cause="refresh"`}, nil); refresh > 0 {
		out[statusRefreshKind] = refresh
		out["PUT cairnnodestatuses/status"] -= refresh
	}
	return out
}

// byKindNote lists the kinds of request that make up a figure, largest
// first, leaving out those under 0.05 either way (idle noise).
func byKindNote(byKind map[string]float64) string {
	kinds := slices.Collect(maps.Keys(byKind))
	slices.SortFunc(kinds, func(a, b string) int {
		if byKind[a] != byKind[b] {
			if byKind[a] > byKind[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range kinds {
		if v := byKind[k]; v >= 0.05 || v <= -0.05 {
			parts = append(parts, fmt.Sprintf("%s %.1f", k, v))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
