package bench

import (
	"math"
	"testing"
	"time"
)

func TestAgentMetricsSum(t *testing.T) {
	m := agentMetrics{
		`cairn_cni_request_duration_seconds_sum{rpc="Allocate",verb="ADD"}`:            0.5,
		`cairn_cni_request_duration_seconds_sum{rpc="EndpointUp",verb="ADD"}`:          0.25,
		`cairn_cni_request_duration_seconds_sum{rpc="Release",verb="DEL"}`:             9,
		`cairn_cni_request_duration_seconds_sum_other{rpc="Allocate"}`:                 100, // another metric, same prefix
		`cairn_api_request_duration_seconds_count{resource="ipamblocks",verb="PUT"}`:   3,
		`cairn_api_request_duration_seconds_count{resource="ipamblocks",verb="WATCH"}`: 7,
		`cairn_up`: 1,
	}
	for _, c := range []struct {
		name          string
		with, without []string
		want          float64
	}{
		{"cairn_cni_request_duration_seconds_sum", []string{`verb="ADD"`}, nil, 0.75},
		{"cairn_cni_request_duration_seconds_sum", []string{`verb="ADD"`, `rpc="Allocate"`}, nil, 0.5},
		{"cairn_cni_request_duration_seconds_sum", nil, nil, 9.75},
		{"cairn_api_request_duration_seconds_count", nil, []string{`verb="WATCH"`}, 3},
		{"cairn_up", nil, nil, 1},
		{"cairn_missing", nil, nil, 0},
	} {
		if got := m.sum(c.name, c.with, c.without); got != c.want {
			t.Errorf("sum(%s, %v, %v) = %v, want %v", c.name, c.with, c.without, got, c.want)
		}
	}
}

func TestAddSplit(t *testing.T) {
	before := agentMetrics{
		`cairn_cni_request_duration_seconds_sum{rpc="Allocate",verb="ADD"}`:          1,
		`cairn_cni_request_duration_seconds_count{rpc="Allocate",verb="ADD"}`:        10,
		`cairn_api_request_duration_seconds_count{resource="ipamblocks",verb="PUT"}`: 5,
		`cairn_api_request_duration_seconds_sum{resource="ipamblocks",verb="PUT"}`:   0.1,
	}
	after := agentMetrics{
		`cairn_cni_request_duration_seconds_sum{rpc="Allocate",verb="ADD"}`:          1.2,
		`cairn_cni_request_duration_seconds_count{rpc="Allocate",verb="ADD"}`:        14,
		`cairn_api_request_duration_seconds_count{resource="ipamblocks",verb="PUT"}`: 9,
		`cairn_api_request_duration_seconds_sum{resource="ipamblocks",verb="PUT"}`:   0.14,
		`cairn_api_request_duration_seconds_count{resource="nodes",verb="WATCH"}`:    3,
	}
	s := newAddSplit(before, after, []time.Duration{2 * time.Millisecond, 4 * time.Millisecond}, 4)
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !near(s.allocate, 50) || !math.IsNaN(s.endpointUp) || !near(s.apiRequests, 1) || !near(s.apiTime, 10) || len(s.pluginCPU) != 2 {
		t.Errorf("split = %+v; want Allocate 50 ms, EndpointUp unknown, 1 API request and 10 ms per ADD, 2 CPU samples", s)
	}
}
