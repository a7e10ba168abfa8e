package bench

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/cairn-net/cairn/internal/lab"
)

// agentMetrics is one scrape of an agent's Prometheus metrics: each
// sample's value by its series as written ("name{labels}").
type agentMetrics map[string]float64

// scrapeAgent reads a node's agent metrics from inside the node.
func scrapeAgent(ctx context.Context, n lab.Node) (agentMetrics, error) {
	body, err := inNS(ctx, n.NS, "curl", "-sf", "--max-time", "10", "http://127.0.0.1:9091/metrics")
	if err != nil {
		return nil, fmt.Errorf("metrics of %s: %w", n.Name, err)
	}
	m := agentMetrics{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m, sc.Err()
}

// sum adds the samples of metric name whose labels hold every one of
// with (`verb="ADD"`) and none of without.
func (m agentMetrics) sum(name string, with, without []string) float64 {
	total := 0.0
	for series, v := range m {
		rest, ok := strings.CutPrefix(series, name)
		if !ok || (rest != "" && rest[0] != '{') {
			continue
		}
		if matchesLabels(rest, with, without) {
			total += v
		}
	}
	return total
}

func matchesLabels(labels string, with, without []string) bool {
	for _, w := range with {
		if !strings.Contains(labels, w) {
			return false
		}
	}
	for _, w := range without {
		if strings.Contains(labels, w) {
			return false
		}
	}
	return true
}

// delta is after's sum minus before's.
func delta(before, after agentMetrics, name string, with, without []string) float64 {
	return after.sum(name, with, without) - before.sum(name, with, without)
}
