package routetable_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/cairn-net/cairn/felix/internal/netnstest"
	"github.com/cairn-net/cairn/felix/kernel"
	"github.com/cairn-net/cairn/felix/routetable"
	"golang.org/x/sys/unix"
)

// Anchors from ../../../shared/reference.md: Calico's felix resyncs 65,536
// routes in 84 ms; the kernel inserts about 170k routes/s batched.
const (
	anchorResync     = 84 * time.Millisecond
	anchorKernelRate = 170_000.0
	goalInstallRate  = 100_000.0
	benchIfaces      = 64
	benchProto       = 77
)

// cpuTime is the process's user+system CPU time: the kernel's route work
// runs in felix's syscalls, so it is counted too. On a shared machine it is
// steadier than wall time.
func cpuTime() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type benchEnv struct {
	ns *netnstest.NS
	k  kernel.Kernel
}

func newBenchEnv(b *testing.B) *benchEnv {
	n := netnstest.New(b)
	for i := range benchIfaces {
		n.Veth(b, fmt.Sprintf("crn%d", i))
	}
	n.Veth(b, "crnA")
	n.Veth(b, "crnB")
	nk, err := kernel.NewNetlink(kernel.NetlinkOptions{NetNSPath: n.Path()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nk.Close() })
	return &benchEnv{ns: n, k: kernel.WithDumpRetry(nk, 0)}
}

// endpoints spreads n /32s over the veths, as pods over a node's veths.
func endpoints(n int) map[string][]netip.Prefix {
	eps := map[string][]netip.Prefix{}
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, 64 + byte(i>>16), byte(i >> 8), byte(i)})
		iface := fmt.Sprintf("crn%d", i%benchIfaces)
		eps[iface] = append(eps[iface], netip.PrefixFrom(a, 32))
	}
	return eps
}

func (e *benchEnv) table(b *testing.B) *routetable.Table {
	t := routetable.New(routetable.Options{Kernel: e.k, Protocol: benchProto})
	t.MarkSynced(routetable.Endpoint)
	if err := t.Resync(); err != nil {
		b.Fatal(err)
	}
	return t
}

func (e *benchEnv) flush(b *testing.B) {
	e.ns.IP(b, "route", "flush", "proto", fmt.Sprint(benchProto))
}

func benchInstall(b *testing.B, n int) {
	e := newBenchEnv(b)
	eps := endpoints(n)
	var total, cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		e.flush(b)
		t := e.table(b)
		b.StartTimer()
		start, cpu0 := time.Now(), cpuTime()
		for iface, ps := range eps {
			t.SetEndpoint(iface, ps)
		}
		if err := t.Apply(); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		cpu += cpuTime() - cpu0
		b.StopTimer()
		if s := t.Stats(); s.Actual != n || s.PendingUpdates != 0 {
			b.Fatalf("not converged: %+v", s)
		}
		b.StartTimer()
	}
	rate := float64(n) * float64(b.N) / total.Seconds()
	b.ReportMetric(rate, "routes/s")
	b.ReportMetric(rate/goalInstallRate, "x_goal_100k/s")
	b.ReportMetric(rate/anchorKernelRate, "x_kernel_170k/s")
	b.ReportMetric(float64(n)*float64(b.N)/cpu.Seconds(), "routes/cpu-s")
}

// BenchmarkInstall10k installs 10,240 host routes from empty.
func BenchmarkInstall10k(b *testing.B) { benchInstall(b, 10240) }

// BenchmarkInstall64k installs 65,536 host routes from empty.
func BenchmarkInstall64k(b *testing.B) { benchInstall(b, 65536) }

func converged64k(b *testing.B) (*benchEnv, *routetable.Table, map[string][]netip.Prefix) {
	e := newBenchEnv(b)
	eps := endpoints(65536)
	t := e.table(b)
	for iface, ps := range eps {
		t.SetEndpoint(iface, ps)
	}
	if err := t.Apply(); err != nil {
		b.Fatal(err)
	}
	return e, t, eps
}

// BenchmarkNoopResync64k reads 65,536 routes back with nothing to change.
func BenchmarkNoopResync64k(b *testing.B) {
	_, t, _ := converged64k(b)
	cpu0 := cpuTime()
	for b.Loop() {
		if err := t.Resync(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/resync")
	if s := t.Stats(); s.PendingUpdates != 0 || s.PendingDeletes != 0 {
		b.Fatalf("resync left work: %+v", s)
	}
	per := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(per.Microseconds())/1000, "ms/resync")
	b.ReportMetric(float64(per)/float64(anchorResync), "x_felix_84ms")
}

// BenchmarkOneChange64k: among 65,536 routes, one pod address moves to
// another veth (a new pod got it); the change is applied incrementally.
func BenchmarkOneChange64k(b *testing.B) {
	_, t, _ := converged64k(b)
	p := []netip.Prefix{netip.MustParsePrefix("10.99.0.1/32")}
	t.SetEndpoint("crnA", p)
	if err := t.Apply(); err != nil {
		b.Fatal(err)
	}
	from, to := "crnA", "crnB"
	for b.Loop() {
		t.RemoveEndpoint(from)
		t.SetEndpoint(to, p)
		if err := t.Apply(); err != nil {
			b.Fatal(err)
		}
		from, to = to, from
	}
	if s := t.Stats(); s.Actual != 65537 || s.PendingUpdates != 0 {
		b.Fatalf("not converged: %+v", s)
	}
	b.ReportMetric(float64((b.Elapsed() / time.Duration(b.N)).Microseconds()), "us/change")
}

// BenchmarkOneChangeResync64k: one of 65,536 routes is deleted behind
// felix's back; a full resync finds and restores it.
func BenchmarkOneChangeResync64k(b *testing.B) {
	e, t, eps := converged64k(b)
	p := eps["crn5"][3]
	for b.Loop() {
		b.StopTimer()
		e.ns.IP(b, "route", "del", p.String(), "proto", fmt.Sprint(benchProto))
		b.StartTimer()
		if err := t.Resync(); err != nil {
			b.Fatal(err)
		}
	}
	if s := t.Stats(); s.Actual != 65536 || s.PendingUpdates != 0 {
		b.Fatalf("not restored: %+v", s)
	}
	per := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(per.Microseconds())/1000, "ms/resync")
	b.ReportMetric(float64(per)/float64(anchorResync), "x_felix_84ms")
}

// BenchmarkBaselineIPBatch64k installs the same 65,536 routes with
// `ip -batch` (iproute2: one request and one ack per route), as a baseline
// measured on the same machine at the same moment.
func BenchmarkBaselineIPBatch64k(b *testing.B) {
	e := newBenchEnv(b)
	var lines []string
	for iface, ps := range endpoints(65536) {
		for _, p := range ps {
			lines = append(lines, fmt.Sprintf("route add %s dev %s scope link proto %d", p, iface, benchProto))
		}
	}
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		e.flush(b)
		b.StartTimer()
		start := time.Now()
		e.ns.IPBatch(b, lines)
		total += time.Since(start)
	}
	b.ReportMetric(65536*float64(b.N)/total.Seconds(), "routes/s")
}

// BenchmarkBaselineDump64k only reads 65,536 routes back (the kernel's
// dump, decoded, nothing done with it): the floor under a resync.
func BenchmarkBaselineDump64k(b *testing.B) {
	e, _, _ := converged64k(b)
	n := 0
	for b.Loop() {
		n = 0
		if err := e.k.RouteDump(4, func(*kernel.Route) { n++ }); err != nil {
			b.Fatal(err)
		}
	}
	if n < 65536 {
		b.Fatalf("dumped %d routes", n)
	}
	b.ReportMetric(float64((b.Elapsed()/time.Duration(b.N)).Microseconds())/1000, "ms/dump")
}
