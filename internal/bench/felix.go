package bench

import (
	"context"
	"fmt"
)

// steadyRuns is the benchtime of the steady figures.
const steadyRuns = "20x"

// runFelix runs felix/routetable's benchmarks (real netlink in a network
// namespace) in interleaved rounds: install 10k and 64k host routes from
// empty, against iproute2's `ip -batch` installing the same 64k in the
// same round; a no-op resync of 64k; one change among 64k.
func runFelix(ctx context.Context, e *Env) ([]Row, error) {
	g, err := newGoBench(ctx, e, "./felix/routetable")
	if err != nil {
		return nil, err
	}
	defer g.close()
	// Installs alternate with iproute2's in every round (a ratio); the
	// no-op resync, one change and the dump are steady figures, taken as
	// means over many in one run (each needs 65,536 routes set up first).
	s := series{}
	for round := range e.Rounds {
		e.Logf("felix: installs, round %d/%d", round+1, e.Rounds)
		r, err := g.run(ctx, "^Benchmark(Install10k|Install64k|BaselineIPBatch64k)$", "1x")
		if err != nil {
			return nil, err
		}
		for _, b := range []string{"Install10k", "Install64k", "BaselineIPBatch64k"} {
			s.add(r, b, "routes/s")
		}
	}
	e.Logf("felix: resync, one change, dump at 65,536 routes")
	r, err := g.run(ctx, "^Benchmark(NoopResync64k|OneChange64k|BaselineDump64k)$", steadyRuns)
	if err != nil {
		return nil, err
	}
	s.add(r, "NoopResync64k", "ms/resync")
	s.add(r, "OneChange64k", "us/change")
	s.add(r, "BaselineDump64k", "ms/dump")
	kernel := "kernel batched insertion about 170k routes/s (nexthop-objects patch series)"
	toMs := func(n float64, rates []float64) []float64 {
		out := make([]float64, len(rates))
		for i, r := range rates {
			out[i] = n / r * 1000
		}
		return out
	}
	in10k, in64k, ipb := s.get("Install10k", "routes/s"), s.get("Install64k", "routes/s"), s.get("BaselineIPBatch64k", "routes/s")
	rows := []Row{
		{Name: "install 10,240 host routes from empty", Unit: "ms", Value: Median(toMs(10240, in10k)), Samples: toMs(10240, in10k),
			Anchor: kernel, Note: fmt.Sprintf("median %.0f routes/s", Median(in10k))},
		{Name: "install 65,536 host routes from empty", Unit: "ms", Value: Median(toMs(65536, in64k)), Samples: toMs(65536, in64k),
			Anchor: kernel, Note: fmt.Sprintf("median %.0f routes/s", Median(in64k))},
		{Name: "install 65,536: felix / `ip -batch` (iproute2), same round", Unit: "x", Value: Median(Ratios(in64k, ipb)), Samples: Ratios(in64k, ipb),
			Note: fmt.Sprintf("rate ratio; ip -batch median %.0f routes/s", Median(ipb))},
		{Name: "no-op resync of 65,536 routes", Unit: "ms", Value: Median(s.get("NoopResync64k", "ms/resync")), Samples: s.get("NoopResync64k", "ms/resync"),
			Anchor: "Calico felix 84 ms (calico issue 9139)", Note: "mean of " + steadyRuns},
		{Name: "kernel dump of 65,536 routes alone (floor under a resync)", Unit: "ms", Value: Median(s.get("BaselineDump64k", "ms/dump")), Samples: s.get("BaselineDump64k", "ms/dump"),
			Note: "mean of " + steadyRuns},
		{Name: "one change among 65,536 routes", Unit: "ms", Value: Median(s.get("OneChange64k", "us/change")) / 1000, Samples: scale(s.get("OneChange64k", "us/change"), 0.001),
			Note: "a /32 moves to another veth; mean of " + steadyRuns},
	}
	return rows, nil
}

func scale(xs []float64, f float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = x * f
	}
	return out
}
