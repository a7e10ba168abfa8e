package plugin

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/cairn-net/cairn/apis/agent/v1/agenttest"
	"github.com/cairn-net/cairn/cni-plugin/netsetup"
	"github.com/cairn-net/cairn/cni-plugin/nstest"
)

// timedDataplane adds up the time each attachment spends in netns work,
// in total and per step.
type timedDataplane struct {
	Dataplane
	mu     sync.Mutex
	spent  map[string]time.Duration // by netns path
	byStep map[string][]time.Duration
}

func newTimedDataplane(dp Dataplane) *timedDataplane {
	return &timedDataplane{Dataplane: dp, spent: map[string]time.Duration{}, byStep: map[string][]time.Duration{}}
}

func (d *timedDataplane) record(step, netns string, start time.Time) {
	took := time.Since(start)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.spent[netns] += took
	d.byStep[step] = append(d.byStep[step], took)
}

func (d *timedDataplane) CheckPod(netns, ifName string) error {
	defer d.record("check", netns, time.Now())
	return d.Dataplane.CheckPod(netns, ifName)
}

func (d *timedDataplane) CreateVeth(netns string, v netsetup.Veth) error {
	defer d.record("create veth", netns, time.Now())
	return d.Dataplane.CreateVeth(netns, v)
}

func (d *timedDataplane) ConfigurePod(netns string, c netsetup.PodConfig) error {
	defer d.record("configure pod", netns, time.Now())
	return d.Dataplane.ConfigurePod(netns, c)
}

// TestPrivilegedSetupLatency measures per-pod setup: pods at once (as
// Calico's figure, 16 concurrent pods) and one at a time. It reports and
// never fails on a time; run with -v to see the figures.
func TestPrivilegedSetupLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement; skipped in -short")
	}
	n := newNode(t)
	const pods = 16
	for _, mode := range []string{"sequential", "concurrent"} {
		t.Run(mode, func(t *testing.T) {
			timed := newTimedDataplane(&netsetup.Kernel{HostNS: n.hostNS, Log: slog.New(slog.DiscardHandler)})
			p := New(Options{Dataplane: timed, Stdout: io.Discard})
			podNS := make([]ns.NetNS, pods)
			for i := range podNS {
				podNS[i] = nstest.New(t)
			}
			totals := make([]time.Duration, pods)
			errs := make([]error, pods)
			add := func(i int) {
				args := n.args(fmt.Sprintf("%s-%d", mode, i), podNS[i], fmt.Sprintf("%s-%d", mode, i), n.conf(""))
				start := time.Now()
				_, errs[i] = p.Add(context.Background(), args)
				totals[i] = time.Since(start)
			}
			start := time.Now()
			if mode == "sequential" {
				for i := range pods {
					add(i)
				}
			} else {
				var wg sync.WaitGroup
				for i := range pods {
					wg.Go(func() { add(i) })
				}
				wg.Wait()
			}
			wall := time.Since(start)
			for i, err := range errs {
				if err != nil {
					t.Fatalf("Add pod %d: %v", i, err)
				}
			}
			var netnsWork []time.Duration
			for _, d := range timed.spent {
				netnsWork = append(netnsWork, d)
			}
			t.Logf("%d pods %s: wall %v (%v per pod); netns work per pod %s; whole ADD per pod (gRPC to an in-process agent included) %s",
				pods, mode, wall.Round(time.Microsecond), (wall / pods).Round(time.Microsecond), summary(netnsWork), summary(totals))
			for _, step := range []string{"check", "create veth", "configure pod"} {
				t.Logf("  %s: %s", step, summary(timed.byStep[step]))
			}
		})
	}
}

// summary gives p50, p90 and max.
func summary(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(f float64) time.Duration { return s[int(f*float64(len(s)-1))].Round(time.Microsecond) }
	return fmt.Sprintf("p50 %v p90 %v max %v", q(0.5), q(0.9), s[len(s)-1].Round(time.Microsecond))
}

// BenchmarkPrivilegedAdd measures one ADD at a time: the whole ADD per op,
// and the netns part of it as the netns-µs/op metric.
func BenchmarkPrivilegedAdd(b *testing.B) {
	nstest.RequireRoot(b)
	hostNS := nstest.New(b)
	agent := agenttest.New()
	sock := agent.Serve(b)
	timed := newTimedDataplane(&netsetup.Kernel{HostNS: hostNS, Log: slog.New(slog.DiscardHandler)})
	p := New(Options{Dataplane: timed, Stdout: io.Discard})
	conf := fmt.Appendf(nil, `{"cniVersion":"1.1.0","name":"cairn","agentSocket":%q}`, sock)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		pod := nstest.New(b)
		args := &skel.CmdArgs{ContainerID: fmt.Sprintf("b%d", i), IfName: "eth0", Netns: pod.Path(), StdinData: conf}
		b.StartTimer()
		if _, err := p.Add(context.Background(), args); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := p.Del(context.Background(), args); err != nil {
			b.Fatal(err)
		}
		nstest.Remove(b, pod)
		b.StartTimer()
	}
	var total time.Duration
	for _, d := range timed.spent {
		total += d
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "netns-µs/op")
}
