package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cairn-net/cairn/internal/lab"
)

// metricsURL is the agent's default metrics endpoint, seen from inside
// its node's namespace.
const metricsURL = "http://127.0.0.1:9091/metrics"

// TestMetricsMatchTheLab scrapes every agent of a running lab and checks
// its main series against what the lab really holds: the sessions the
// plan gives the node, all Established; what the node advertises to its
// ToR against what the ToR received from it, and to each mesh peer
// against what that peer's agent says it received; the blocks the API
// server says the node owns; felix's routes against the kernel's
// protocol-77 routes, class by class; pool use against the allocations
// the API server holds; and one more CNI ADD after a pod is added.
func TestMetricsMatchTheLab(t *testing.T) {
	l := upLab(t, lab.Options{Instance: "e2emet", Racks: 1, NodesPerRack: 2, Router: lab.RouterBIRD, PodsPerNode: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Poll until the series agree with the lab: a scrape and a read of
	// the kernel or a router are never the same instant.
	var problems []string
	for deadline := time.Now().Add(30 * time.Second); ; {
		problems = metricsMismatches(ctx, t, l)
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond) // polling interval, not synchronisation
	}
	for _, p := range problems {
		t.Error(p)
	}
	for _, n := range l.Plan().Nodes() {
		s := mustScrape(ctx, t, l, n.Name)
		t.Logf("%s: %v sessions Established, %v blocks owned, advertised to the ToR %v, routes endpoint/blackhole/learned %v/%v/%v",
			n.Name, s.sum("cairn_bgp_session_state", map[string]string{"state": "Established"}), s.value("cairn_ipam_blocks_owned", nil),
			s.value("cairn_bgp_prefixes_advertised", map[string]string{"peer_address": n.Gateway.String()}),
			s.value("cairn_felix_routes_installed", map[string]string{"class": "endpoint"}),
			s.value("cairn_felix_routes_installed", map[string]string{"class": "blackhole"}),
			s.value("cairn_felix_routes_installed", map[string]string{"class": "learned"}))
	}

	t.Run("a CNI ADD is counted once, with its route", func(t *testing.T) {
		node := l.Plan().Nodes()[0].Name
		before := mustScrape(ctx, t, l, node)
		if _, err := l.AddPod(ctx, node); err != nil {
			t.Fatal(err)
		}
		after := mustScrape(ctx, t, l, node)
		for _, c := range []struct {
			name   string
			labels map[string]string
		}{
			{"cairn_cni_requests_total", map[string]string{"verb": "ADD", "rpc": "Allocate", "code": "0"}},
			{"cairn_cni_requests_total", map[string]string{"verb": "ADD", "rpc": "EndpointUp", "code": "0"}},
			{"cairn_ipam_allocations_total", map[string]string{"result": "assigned"}},
			{"cairn_cni_request_duration_seconds", map[string]string{"rpc": "Allocate"}},
		} {
			if d := after.value(c.name, c.labels) - before.value(c.name, c.labels); d != 1 {
				t.Errorf("%s%v went up by %v, want 1", c.name, c.labels, d)
			}
		}
		// The endpoint route is in the kernel when ADD returns.
		want := before.value("cairn_felix_routes_installed", map[string]string{"class": "endpoint"}) + 1
		if got := after.value("cairn_felix_routes_installed", map[string]string{"class": "endpoint"}); got != want {
			t.Errorf("endpoint routes %v after the ADD, want %v", got, want)
		}
	})

	t.Run("process and API series are there", func(t *testing.T) {
		s := mustScrape(ctx, t, l, l.Plan().Nodes()[0].Name)
		if v := s.sum("cairn_api_requests_total", map[string]string{"code": "200"}); v < 1 {
			t.Errorf("cairn_api_requests_total{code=200} = %v", v)
		}
		rss := s.value("process_resident_memory_bytes", nil)
		if rss <= 0 {
			t.Errorf("process_resident_memory_bytes = %v", rss)
		}
		t.Logf("agent RSS %.1f MiB, Go heap in use %.1f MiB, %d series in one scrape of %d bytes",
			rss/(1<<20), s.value("go_memstats_heap_inuse_bytes", nil)/(1<<20), s.series, s.size)
	})
}

// metricsMismatches compares every agent's series with the lab.
func metricsMismatches(ctx context.Context, t *testing.T, l *lab.Lab) []string {
	t.Helper()
	plan := l.Plan()
	st, err := l.Status(ctx)
	if err != nil {
		return []string{fmt.Sprintf("lab status: %v", err)}
	}
	cl, err := l.CairnClient()
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := cl.CairnV1alpha1().IPAMBlocks().List(ctx, metav1.ListOptions{})
	if err != nil {
		return []string{fmt.Sprintf("list IPAMBlocks: %v", err)}
	}
	scrapes := map[string]scrape{}
	for _, n := range plan.Nodes() {
		s, err := scrapeAgent(ctx, l, n.Name)
		if err != nil {
			return []string{err.Error()}
		}
		scrapes[n.Name] = s
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for _, n := range plan.Nodes() {
		s := scrapes[n.Name]
		// Sessions: one per peer the plan gives the node, each Established.
		peers := plan.NodePeers(n)
		if got := s.sum("cairn_bgp_session_state", map[string]string{"state": "Established"}); int(got) != len(peers) {
			bad("%s: %v sessions Established, the plan gives it %d peers", n.Name, got, len(peers))
		}
		for _, p := range peers {
			if v := s.value("cairn_bgp_session_state", map[string]string{"peer_address": p.String(), "state": "Established"}); v != 1 {
				bad("%s: session to %s not Established in the metrics", n.Name, p)
			}
		}
		// Blocks: as the API server has them.
		owned := map[netip.Prefix]bool{}
		for _, b := range blocks.Items {
			if b.Spec.Affinity == "node:"+n.Name {
				owned[netip.MustParsePrefix(b.Spec.CIDR)] = true
			}
		}
		if got := s.value("cairn_ipam_blocks_owned", nil); int(got) != len(owned) || len(owned) == 0 {
			bad("%s: cairn_ipam_blocks_owned %v, the API server has %d blocks affine to it", n.Name, got, len(owned))
		}
		// Pool use: the allocations the API server holds, cluster-wide and
		// for this node's pods.
		all, mine := 0, 0
		for _, b := range blocks.Items {
			all += len(b.Spec.Allocations)
			for _, a := range b.Spec.Allocations {
				if a.Node == n.Name {
					mine++
				}
			}
		}
		if got := s.sum("cairn_ipam_pool_allocated_addresses", nil); int(got) != all || all == 0 {
			bad("%s: cairn_ipam_pool_allocated_addresses %v, the API server holds %d allocations", n.Name, got, all)
		}
		if got := s.sum("cairn_ipam_pool_node_allocated_addresses", nil); int(got) != mine {
			bad("%s: cairn_ipam_pool_node_allocated_addresses %v, the API server holds %d allocations of its pods", n.Name, got, mine)
		}
		// Advertised to the ToR: what the ToR received from the node, the
		// node's blocks among it.
		fromNode := torRoutesFrom(st, n)
		adv := s.value("cairn_bgp_prefixes_advertised", map[string]string{"peer_address": n.Gateway.String()})
		if int(adv) != len(fromNode) {
			bad("%s: advertised %v prefixes to its ToR, the ToR holds %d from it (%v)", n.Name, adv, len(fromNode), fromNode)
		}
		for b := range owned {
			if !fromNode[b] {
				bad("%s: owns %s, but the ToR did not receive it", n.Name, b)
			}
		}
		// Advertised to each mesh peer: what that peer's agent received.
		for _, other := range plan.Nodes() {
			if other.Name == n.Name || !plan.BGP.MeshEnabled {
				continue
			}
			sent := s.value("cairn_bgp_prefixes_advertised", map[string]string{"peer_address": other.Addr.String()})
			got := scrapes[other.Name].value("cairn_bgp_prefixes_received", map[string]string{"peer_address": n.Addr.String()})
			if sent != got || sent < float64(len(owned)) {
				bad("%s advertised %v prefixes to %s, which received %v (the node owns %d blocks)", n.Name, sent, other.Name, got, len(owned))
			}
		}
		// Routes: felix's count per class against the kernel's protocol-77
		// routes.
		kernel, err := ownRoutes(ctx, n.NS)
		if err != nil {
			bad("%s: %v", n.Name, err)
			continue
		}
		for _, class := range []string{"endpoint", "blackhole", "learned"} {
			if got := s.value("cairn_felix_routes_installed", map[string]string{"class": class}); int(got) != kernel[class] {
				bad("%s: %v %s routes installed, the kernel has %d of protocol 77", n.Name, got, class, kernel[class])
			}
		}
		if kernel["endpoint"] == 0 || kernel["blackhole"] == 0 || kernel["learned"] == 0 {
			bad("%s: the kernel's protocol-77 routes %v lack a class: the check proves nothing", n.Name, kernel)
		}
	}
	return problems
}

// torRoutesFrom is the set of prefixes n's ToR received from n.
func torRoutesFrom(st *lab.Status, n lab.Node) map[netip.Prefix]bool {
	out := map[netip.Prefix]bool{}
	for _, r := range st.Routers {
		if r.Router.RouterID != n.Gateway {
			continue
		}
		from := ""
		for _, s := range r.Sessions {
			if s.Addr == n.Addr {
				from = s.Peer
			}
		}
		for _, rt := range r.Routes {
			if from != "" && rt.From == from {
				out[rt.Prefix] = true
			}
		}
	}
	return out
}

// ownRoutes counts the routes of felix's protocol in a namespace by class,
// both families.
func ownRoutes(ctx context.Context, netns string) (map[string]int, error) {
	counts := map[string]int{}
	for _, fam := range []string{"-4", "-6"} {
		out, err := exec.CommandContext(ctx, "ip", "-n", netns, "-j", fam, "route", "show", "proto", "77").Output()
		if err != nil {
			return nil, fmt.Errorf("routes of protocol 77 in %s: %w", netns, err)
		}
		var routes []lab.KernelRoute
		if err := json.Unmarshal(out, &routes); err != nil {
			return nil, fmt.Errorf("decode routes of %s: %w", netns, err)
		}
		for _, r := range routes {
			switch {
			case r.Type == "blackhole":
				counts["blackhole"]++
			case len(r.Gateways()) > 0:
				counts["learned"]++
			default:
				counts["endpoint"]++
			}
		}
	}
	return counts, nil
}

// scrape is one parsed scrape of an agent.
type scrape struct {
	families     map[string]*dto.MetricFamily
	series, size int
}

func scrapeAgent(ctx context.Context, l *lab.Lab, node string) (scrape, error) {
	body, err := l.HTTPGet(ctx, node, metricsURL)
	if err != nil {
		return scrape{}, fmt.Errorf("scrape %s: %w", node, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return scrape{}, fmt.Errorf("parse the scrape of %s: %w", node, err)
	}
	s := scrape{families: fams, size: len(body)}
	for _, f := range fams {
		s.series += len(f.GetMetric())
	}
	return s, nil
}

func mustScrape(ctx context.Context, t *testing.T, l *lab.Lab, node string) scrape {
	t.Helper()
	s, err := scrapeAgent(ctx, l, node)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sum adds up the series of name whose labels include want; a histogram
// counts its observations.
func (s scrape) sum(name string, want map[string]string) float64 {
	total := 0.0
	for _, m := range s.families[name].GetMetric() {
		if !labelsInclude(m, want) {
			continue
		}
		switch {
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			total += m.Untyped.GetValue()
		}
	}
	return total
}

// value is sum, for a selection of one series (or none: 0).
func (s scrape) value(name string, want map[string]string) float64 { return s.sum(name, want) }

func labelsInclude(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			n++
		}
	}
	return n == len(want)
}
