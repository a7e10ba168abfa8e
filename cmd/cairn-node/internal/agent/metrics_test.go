package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/bgp/speaker"
	"github.com/cairn-net/cairn/felix"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/allocator"
)

// testRegistry is every metric the agent registers, with fake sources.
func testRegistry(t *testing.T) (*prometheus.Registry, *metrics) {
	t.Helper()
	m, err := newMetrics(nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	// Not ObserveAPIRequests: client-go keeps the first registration of
	// the process, and tests make many registries.
	latency, results, err := newAPIMetrics(m.reg)
	if err != nil {
		t.Fatal(err)
	}
	// One observation each, so every vector has a series to gather.
	latency.Observe(context.Background(), "GET", url.URL{Path: "/api/v1/nodes/n1"}, time.Millisecond)
	results.Increment(context.Background(), "200", "GET", "host")
	m.cniDuration.WithLabelValues("ADD", "Allocate").Observe(0.01)
	m.cniRequests.WithLabelValues("ADD", "Allocate", "0").Inc()
	m.observePass(felix.Pass{Resync: true})
	m.observePass(felix.Pass{})
	if err := m.reg.Register(newNodeCollector(fakeSources())); err != nil {
		t.Fatal(err)
	}
	return m.reg, m
}

func fakeSources() nodeSources {
	block := func(cidr, owner string, holders ...string) *v1.IPAMBlock {
		b := &v1.IPAMBlock{Spec: v1.IPAMBlockSpec{CIDR: cidr, Pool: "default", Affinity: "node:" + owner}}
		for i, h := range holders {
			b.Spec.Allocations = append(b.Spec.Allocations, v1.BlockAllocation{Ordinal: int32(i), Handle: fmt.Sprint("h", i), Node: h})
		}
		return b
	}
	return nodeSources{
		node: "n1",
		peers: func() []speaker.PeerState {
			return []speaker.PeerState{
				{Name: "mesh:n2", Address: netip.MustParseAddr("10.0.0.2"), State: speaker.StateEstablished, Uptime: time.Minute,
					Received: 3, Accepted: 2, Advertised: 2, Flaps: 1},
				{Name: "peer:tor", Address: netip.MustParseAddr("10.0.0.254"), State: speaker.StateActive},
			}
		},
		felix: func() felix.Stats {
			return felix.Stats{EndpointRoutes: 3, BlackholeRoutes: 2, LearnedRoutes: 1, Passes: 9, Resyncs: 4, Errors: 1}
		},
		refused: func() map[netip.Prefix]string {
			return map[netip.Prefix]string{netip.MustParsePrefix("10.1.0.0/26"): "why"}
		},
		alloc: func() allocator.Stats { return allocator.Stats{Assigned: 5, Released: 2, Claims: 2, Borrows: 1} },
		ipam: func() ([]*v1.IPPool, []*v1.IPAMBlock, []*v1.BlockAffinity, error) {
			pools := []*v1.IPPool{{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1.IPPoolSpec{CIDR: "10.0.0.0/24"}}}
			blocks := []*v1.IPAMBlock{
				block("10.0.0.0/26", "n1", "n1", "n1", "n1"),
				block("10.0.0.64/26", "n1"),
				block("10.0.0.128/26", "n2", "n2", "n1"),
			}
			affinities := []*v1.BlockAffinity{
				{Spec: v1.BlockAffinitySpec{Node: "n1", CIDR: "10.0.0.0/26", State: v1.AffinityConfirmed}},
				{Spec: v1.BlockAffinitySpec{Node: "n1", CIDR: "10.0.0.64/26", State: v1.AffinityConfirmed}},
				{Spec: v1.BlockAffinitySpec{Node: "n2", CIDR: "10.0.0.128/26", State: v1.AffinityConfirmed}},
			}
			return pools, blocks, affinities, nil
		},
	}
}

// value finds the one series of name whose labels include want.
func value(t *testing.T, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m, want) {
				switch {
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Histogram != nil:
					return float64(m.Histogram.GetSampleCount())
				}
			}
		}
	}
	t.Fatalf("no series %s%v", name, want)
	return 0
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			n++
		}
	}
	return n == len(want)
}

func TestNodeMetricsFromSources(t *testing.T) {
	reg, _ := testRegistry(t)
	n2 := map[string]string{"peer": "mesh:n2", "peer_address": "10.0.0.2"}
	with := func(m map[string]string, k, v string) map[string]string {
		out := map[string]string{k: v}
		for a, b := range m {
			out[a] = b
		}
		return out
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"cairn_bgp_session_state", with(n2, "state", "Established"), 1},
		{"cairn_bgp_session_state", with(n2, "state", "Idle"), 0},
		{"cairn_bgp_session_state", map[string]string{"peer": "peer:tor", "state": "Active"}, 1},
		{"cairn_bgp_session_flaps_total", n2, 1},
		{"cairn_bgp_session_uptime_seconds", n2, 60},
		{"cairn_bgp_prefixes_received", n2, 3},
		{"cairn_bgp_prefixes_accepted", n2, 2},
		{"cairn_bgp_prefixes_refused", n2, 1},
		{"cairn_bgp_prefixes_advertised", n2, 2},
		{"cairn_felix_routes_installed", map[string]string{"class": "endpoint"}, 3},
		{"cairn_felix_routes_installed", map[string]string{"class": "blackhole"}, 2},
		{"cairn_felix_routes_installed", map[string]string{"class": "learned"}, 1},
		{"cairn_felix_routes_refused", nil, 1},
		{"cairn_felix_resyncs_total", nil, 4},
		{"cairn_felix_errors_total", nil, 1},
		{"cairn_ipam_addresses_assigned_total", nil, 5},
		{"cairn_ipam_blocks_owned", nil, 2},
		{"cairn_ipam_blocks_borrowed", nil, 1},
		{"cairn_ipam_addresses_borrowed", nil, 1},
		{"cairn_ipam_pool_size_addresses", map[string]string{"pool": "default"}, 256},
		{"cairn_ipam_pool_allocated_addresses", map[string]string{"pool": "default"}, 5},
		{"cairn_ipam_pool_node_allocated_addresses", map[string]string{"pool": "default"}, 4},
		{"cairn_ipam_pool_utilisation_ratio", map[string]string{"pool": "default"}, 5.0 / 256},
		{"cairn_agent_info", map[string]string{"version": "test"}, 1},
	}
	for _, tc := range tests {
		if got := value(t, reg, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

// TestMetricsFollowPrometheusConventions runs Prometheus's own linter
// (names, units, _total on counters, help text) over every series.
func TestMetricsFollowPrometheusConventions(t *testing.T) {
	reg, _ := testRegistry(t)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if !strings.HasPrefix(p.Metric, "cairn_") {
			continue // the Go and process collectors are Prometheus's own
		}
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestSecondRegistryDoesNotPanic(t *testing.T) {
	testRegistry(t)
	testRegistry(t)
}

func TestFelixPassesGoToTheirHistogram(t *testing.T) {
	reg, m := testRegistry(t)
	m.observePass(felix.Pass{Resync: true, Took: 5 * time.Millisecond})
	m.observePass(felix.Pass{Took: time.Millisecond})
	m.observePass(felix.Pass{Took: time.Millisecond, Err: errors.New("x")})
	// testRegistry observed one of each already.
	if got := value(t, reg, "cairn_felix_resync_duration_seconds", nil); got != 2 {
		t.Errorf("resync observations %v, want 2", got)
	}
	if got := value(t, reg, "cairn_felix_apply_duration_seconds", nil); got != 3 {
		t.Errorf("apply observations %v, want 3", got)
	}
}

func TestAllocationResult(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "assigned"},
		{fmt.Errorf("x: %w", allocator.ErrNoAddresses), "exhausted"},
		{fmt.Errorf("x: %w", ipam.ErrRejected), "rejected"},
		{fmt.Errorf("x: %w", allocator.ErrInvalidRequest), "rejected"},
		{errors.New("api down"), "error"},
	} {
		if got := allocationResult(tc.err); got != tc.want {
			t.Errorf("allocationResult(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

func TestCNICode(t *testing.T) {
	for _, tc := range []struct {
		rpc  string
		err  error
		want int
	}{
		{"Allocate", nil, 0},
		{"Allocate", status.Error(codes.ResourceExhausted, "full"), 11},
		{"Allocate", status.Error(codes.Unavailable, "not ready"), 11},
		{"EndpointUp", status.Error(codes.FailedPrecondition, "not allocated"), 101},
		{"EndpointUp", status.Error(codes.Internal, "boom"), 101},
		{"Release", status.Error(codes.NotFound, "gone"), 0},
		{"Check", status.Error(codes.NotFound, "gone"), 101},
		{"Check", errors.New("not a status"), 101},
	} {
		if got := cniCode(tc.rpc, tc.err); got != tc.want {
			t.Errorf("cniCode(%s, %v) = %d, want %d", tc.rpc, tc.err, got, tc.want)
		}
	}
}

func TestAPIResource(t *testing.T) {
	for path, want := range map[string]string{
		"/api/v1/nodes":                                                          "nodes",
		"/api/v1/nodes/node-1":                                                   "nodes",
		"/api/v1/namespaces":                                                     "namespaces",
		"/api/v1/namespaces/cairn-system":                                        "namespaces",
		"/api/v1/namespaces/cairn-system/secrets/bgp-pw":                         "secrets",
		"/apis/cairn.dev/v1alpha1/ipamblocks/10-0-0-0-26":                        "ipamblocks",
		"/apis/cairn.dev/v1alpha1/cairnnodestatuses/node-1/status":               "cairnnodestatuses/status",
		"/apis/coordination.k8s.io/v1/namespaces/cairn-system/leases/cairn-ipam": "leases",
		"/apis/discovery.k8s.io/v1/endpointslices":                               "endpointslices",
		"/version": "other",
		"":         "other",
	} {
		if got := apiResource(path); got != want {
			t.Errorf("apiResource(%q) = %q, want %q", path, got, want)
		}
	}
}
