package bench

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// burstLine is tests/ipam BenchmarkBurst100's log of one burst.
var burstLine = regexp.MustCompile(`burst on (\S+): (\S+), (\d+) API writes \((\d+) block writes, (\d+) blocks claimed\), (\d+) API reads`)

// runIPAM runs tests/ipam's BenchmarkBurst100: 100 concurrent assignments
// on a node with no block yet, against a real kube-apiserver and etcd. The
// first burst on a fresh API server is left out (the benchmark reports it
// apart as cold); the others are one sample each.
func runIPAM(ctx context.Context, e *Env) ([]Row, error) {
	g, err := newGoBench(ctx, e, "./tests/ipam")
	if err != nil {
		return nil, err
	}
	defer g.close()
	r, err := g.run(ctx, "^BenchmarkBurst100$", fmt.Sprintf("%dx", e.Rounds))
	if err != nil {
		return nil, err
	}
	var wall, writes, reads []float64
	for _, line := range r.Log {
		m := burstLine.FindStringSubmatch(line)
		if m == nil || m[1] == "bench-cold" {
			continue
		}
		d, err := time.ParseDuration(m[2])
		if err != nil {
			return nil, fmt.Errorf("burst line %q: %w", line, err)
		}
		w, _ := strconv.Atoi(m[3])
		rd, _ := strconv.Atoi(m[6])
		wall = append(wall, float64(d)/float64(time.Millisecond))
		writes = append(writes, float64(w))
		reads = append(reads, float64(rd))
	}
	if len(wall) == 0 {
		return nil, fmt.Errorf("BenchmarkBurst100 logged no burst:\n%s", tailLines(fmt.Sprint(r.Log), 20))
	}
	m := r.Metrics["Burst100"]
	rows := []Row{
		{Name: "100 concurrent allocations on one node, first block claims included: wall", Unit: "ms",
			Value: Median(wall), Samples: wall, Goal: AtMost(1000),
			Anchor: "Calico: 2–3 min for 100 pods (issue 5612); its plugin measured here 13.3–15.4 s (reference.md)",
			Note:   "allocator against a real kube-apiserver; median of bursts"},
		{Name: "the same: API writes per burst", Unit: "", Value: Median(writes), Samples: writes,
			Anchor: "Calico plugin measured here: 308 writes"},
		{Name: "the same: API reads per burst", Unit: "", Value: Median(reads), Samples: reads},
		{Name: "the same: one allocation, p50", Unit: "ms", Value: m["p50-ms"], Note: "over the allocations of the benchmark's main run"},
		{Name: "the same: one allocation, p99", Unit: "ms", Value: m["p99-ms"], Note: "over the allocations of the benchmark's main run"},
	}
	return rows, nil
}
