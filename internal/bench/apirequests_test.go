package bench

import (
	"math"
	"testing"
	"time"
)

// TestPodStartRequestsTakeOutIdleRate: what agents send anyway (a Lease
// renewal every 2 s, a status refresh every 10 s) is taken out at its idle
// rate, so that only what the pod starts caused is counted, for the pod's
// node and for the others.
func TestPodStartRequestsTakeOutIdleRate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	sample := func(at time.Duration, nodes ...map[string]float64) apiSample {
		return apiSample{at: t0.Add(at), nodes: nodes}
	}
	// node 1 starts 5 pods: 2 writes each; node 2 leads (renewals, 30/min),
	// node 3 refreshes its status (6/min). Idle window 20 s, busy 10 s.
	idle0 := sample(0,
		map[string]float64{"PUT ipamblocks": 4, "PUT cairnnodestatuses/status": 1},
		map[string]float64{"PUT leases": 100},
		map[string]float64{"PUT cairnnodestatuses/status": 7})
	busy0 := sample(20*time.Second,
		map[string]float64{"PUT ipamblocks": 4, "PUT cairnnodestatuses/status": 3},
		map[string]float64{"PUT leases": 110},
		map[string]float64{"PUT cairnnodestatuses/status": 9})
	busy1 := sample(30*time.Second,
		map[string]float64{"PUT ipamblocks": 9, "POST ipamhandles": 5, "PUT cairnnodestatuses/status": 5},
		map[string]float64{"PUT leases": 115, "PUT ippools/status": 1},
		map[string]float64{"PUT cairnnodestatuses/status": 10})
	// node 2 refreshes its status in step with the busy window only: those
	// count as idle requests, never as caused ones.
	idle0.nodes[1][statusRefreshKind], busy0.nodes[1][statusRefreshKind], busy1.nodes[1][statusRefreshKind] = 4, 4, 7
	f := podStartRequests(idle0, busy0, busy0, busy1, 5)
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-9 }
	// own: 5 blocks + 5 handles + 2 status - 1 idle status = 11 → 2.2
	if !near(f.Own, 2.2) {
		t.Errorf("own %v per pod start, want 2.2", f.Own)
	}
	// others: leases 5 - 5 idle, pool status 1, status 1 - 1 idle → 0.2
	if !near(f.Others, 0.2) || !near(f.OthersByKind["PUT ippools/status"], 0.2) || !near(f.OthersByKind["PUT leases"], 0) {
		t.Errorf("others %v per pod start by kind %v, want 0.2, all of it ippools/status", f.Others, f.OthersByKind)
	}
	want := []float64{6, 30, 6} // node 2's refreshes fell in no idle window
	for i, w := range want {
		if !near(f.IdlePerMinute[i], w) {
			t.Errorf("node %d idle: %v/min, want %v", i+1, f.IdlePerMinute[i], w)
		}
	}
	if got := byKindNote(f.OthersByKind); got != "PUT ippools/status 0.2" {
		t.Errorf("note %q", got)
	}
}

func TestAPIRequestCounts(t *testing.T) {
	m := agentMetrics{
		`cairn_api_request_duration_seconds_bucket{resource="leases",verb="GET",le="0.002"}`:       1,
		`cairn_api_request_duration_seconds_count{resource="leases",verb="GET"}`:                   17,
		`cairn_api_request_duration_seconds_count{resource="cairnnodestatuses/status",verb="PUT"}`: 2,
		`cairn_api_requests_total{code="200",method="GET"}`:                                        19,
		`cairn_node_status_writes_total{cause="change"}`:                                           1,
		`cairn_node_status_writes_total{cause="refresh"}`:                                          1,
	}
	got := apiRequestCounts(m)
	if len(got) != 3 || got["GET leases"] != 17 || got["PUT cairnnodestatuses/status"] != 1 || got[statusRefreshKind] != 1 {
		t.Errorf("counts %v", got)
	}
}
