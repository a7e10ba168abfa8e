package bench

import (
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	cases := []struct {
		q    float64
		want float64
	}{{0, 1}, {0.5, 3}, {0.99, 5}, {1, 5}, {0.2, 1}, {0.21, 2}}
	for _, tc := range cases {
		if got := Quantile(xs, tc.q); got != tc.want {
			t.Errorf("Quantile(%v, %v) = %v, want %v", xs, tc.q, got, tc.want)
		}
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median of nothing is not NaN")
	}
	if xs[0] != 5 {
		t.Error("Quantile sorted its input in place")
	}
}

func TestRatiosPairRounds(t *testing.T) {
	got := Ratios([]float64{2, 3, 4}, []float64{1, 0, 2, 9})
	want := []float64{2, 2} // the zero denominator is skipped, the extra sample ignored
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("Ratios = %v, want %v", got, want)
	}
}

func TestGoal(t *testing.T) {
	cases := []struct {
		goal *Goal
		v    float64
		met  bool
	}{
		{AtMost(15), 15, true}, {AtMost(15), 15.1, false},
		{AtLeast(0.95), 0.95, true}, {AtLeast(0.95), 0.9, false},
		{AtLeast(1), math.NaN(), false},
	}
	for _, tc := range cases {
		if got := tc.goal.Met(tc.v); got != tc.met {
			t.Errorf("%s met by %v = %v, want %v", tc.goal.String("ms"), tc.v, got, tc.met)
		}
	}
}

func TestParseBench(t *testing.T) {
	out := `goos: linux
BenchmarkInstall10k-2   	       1	 123456 ns/op	     95000 routes/s	         0.95 x_goal_100k/s
    bench_test.go:99: burst on bench-1: 312ms, 111 API writes (9 block writes, 2 blocks claimed), 4 API reads
BenchmarkBurst100-2   	       5	         0 ns/op	       512.5 wall-ms/burst
PASS`
	r := parseBench(out)
	if got := r.Metrics["Install10k"]["routes/s"]; got != 95000 {
		t.Errorf("Install10k routes/s = %v, want 95000", got)
	}
	if got := r.Metrics["Burst100"]["wall-ms/burst"]; got != 512.5 {
		t.Errorf("Burst100 wall-ms/burst = %v, want 512.5", got)
	}
	var burst []string
	for _, l := range r.Log {
		if m := burstLine.FindStringSubmatch(l); m != nil {
			burst = m
		}
	}
	if len(burst) == 0 || burst[1] != "bench-1" || burst[2] != "312ms" || burst[3] != "111" || burst[6] != "4" {
		t.Errorf("burst line not read: %q", burst)
	}
}

func TestBlocks(t *testing.T) {
	pool := netip.MustParsePrefix("10.244.0.0/16")
	if got := nthBlock(pool, 26, 1023); got != netip.MustParsePrefix("10.244.255.192/26") {
		t.Errorf("last /26 = %v", got)
	}
	routes := hostRoutes([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/30"), netip.MustParsePrefix("10.0.1.0/30")}, 6)
	want := "[10.0.0.0/32 10.0.0.1/32 10.0.0.2/32 10.0.0.3/32 10.0.1.0/32 10.0.1.1/32]"
	if got := fmtPrefixes(routes); got != want {
		t.Errorf("hostRoutes = %v, want %v", got, want)
	}
}

func fmtPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return "[" + strings.Join(s, " ") + "]"
}

func TestMarkdownMarksRowsBelowGoal(t *testing.T) {
	r := &Report{Start: time.Unix(0, 0), Rounds: 5, Sections: []SectionResult{
		{Name: "cni", Title: "CNI", Rows: []Row{
			{Name: "ADD, p50", Unit: "ms", Value: 20, Goal: AtMost(15), Anchor: "Calico | 232 ms"},
			{Name: "DEL, p50", Unit: "ms", Value: 10},
			{Name: "burst p99", Unit: "ms", Value: 400, Goal: AtMost(500)},
		}, Notes: []string{"Not run at 100 nodes."}},
		{Name: "felix", Title: "felix", Error: "build failed\nmore"},
	}}
	md := r.Markdown()
	for _, want := range []string{
		"| ADD, p50 | Calico / 232 ms | ≤ 15.0 ms | **20.0 ms** | **below** |",
		"| DEL, p50 | – | – | **10.0 ms** |  |",
		"**The section failed** after 0s: `build failed`",
		"- ADD, p50: 20.0 ms against ≤ 15.0 ms",
		// The goals table: every row with a goal, and the failed section.
		"| cni | ADD, p50 | Calico / 232 ms | ≤ 15.0 ms | **20.0 ms** | **below** |",
		"| cni | burst p99 | – | ≤ 500 ms | **400 ms** | met |",
		"| felix | **the section failed**: build failed | | | | |",
		"Not run at 100 nodes.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "| cni | DEL, p50 |") {
		t.Errorf("the goals table lists a row without a goal:\n%s", md)
	}
	if !r.Failed() {
		t.Error("a report with a failed section is not Failed")
	}
}

func TestSelectSections(t *testing.T) {
	got, err := selectSections([]string{"felix", "dataplane"})
	if err != nil || len(got) != 2 || got[0].Name != "dataplane" || got[1].Name != "felix" {
		t.Fatalf("selectSections = %v, %v; want dataplane then felix (run order)", got, err)
	}
	if _, err := selectSections([]string{"nope"}); err == nil || !strings.Contains(err.Error(), "dataplane") {
		t.Fatalf("unknown section: err = %v, want one listing the sections", err)
	}
}

func TestWhy100(t *testing.T) {
	got := scaleCost{nodes: 20, took: 10 * time.Minute, rss: 60}.why100()
	for _, want := range []string{"at 20 nodes took 10m0s", "agents of 60 MiB", "about 5.9 GiB", "at least 5-fold, 50m0s", "up to 25-fold"} {
		if !strings.Contains(got, want) {
			t.Errorf("why100 = %q, lacks %q", got, want)
		}
	}
}
