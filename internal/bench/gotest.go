package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// goBench runs a package's own Go benchmarks: it builds the test binary
// once, then runs it once per round, so that the benchmarks a ratio
// compares alternate (A B A B ...) instead of running back to back.
type goBench struct {
	e   *Env
	pkg string // "./felix/routetable"
	bin string
}

// benchRun is one run's output: metrics by benchmark and unit, and the
// benchmarks' log lines (b.Log output is always printed for benchmarks).
type benchRun struct {
	Metrics map[string]map[string]float64
	Log     []string
}

func newGoBench(ctx context.Context, e *Env, pkg string) (*goBench, error) {
	dir, err := os.MkdirTemp("", "cairn-bench-")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, filepath.Base(pkg)+".test")
	cmd := exec.CommandContext(ctx, e.Go, "test", "-c", "-o", bin, pkg)
	cmd.Dir = e.RepoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build the benchmarks of %s: %w\n%s", pkg, err, out)
	}
	return &goBench{e: e, pkg: pkg, bin: bin}, nil
}

// close removes the test binary.
func (g *goBench) close() { _ = os.RemoveAll(filepath.Dir(g.bin)) }

// run runs the benchmarks matching pattern once, each for benchtime
// ("1x", "5x"). CI=true makes a missing requirement fail instead of skip.
func (g *goBench) run(ctx context.Context, pattern, benchtime string) (benchRun, error) {
	if err := ctx.Err(); err != nil {
		return benchRun{}, err
	}
	// Not bound to ctx: killing a benchmark would leave the namespaces
	// its cleanups remove; an interrupted run ends after the current one.
	cmd := exec.Command(g.bin, "-test.run", "^$", "-test.bench", pattern,
		"-test.benchtime", benchtime, "-test.count", "1", "-test.timeout", "20m")
	cmd.Dir = filepath.Join(g.e.RepoRoot, g.pkg)
	cmd.Env = append(os.Environ(), "CI=true")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	r := parseBench(out.String())
	if err != nil {
		return r, fmt.Errorf("%s -test.bench %s: %w\n%s", g.pkg, pattern, err, tailLines(out.String(), 30))
	}
	if len(r.Metrics) == 0 {
		return r, fmt.Errorf("%s -test.bench %s ran no benchmark:\n%s", g.pkg, pattern, tailLines(out.String(), 30))
	}
	return r, nil
}

// parseBench reads `go test -bench` output: "BenchmarkX-2  5  123 ns/op
// 4.5 routes/s ..." lines, and every other line as log.
func parseBench(out string) benchRun {
	r := benchRun{Metrics: map[string]map[string]float64{}}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			r.Log = append(r.Log, line)
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			r.Log = append(r.Log, line)
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		m := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				m[f[i+1]] = v
			}
		}
		r.Metrics[name] = m
	}
	return r
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// series collects one metric of one benchmark over rounds.
type series map[string][]float64

func (s series) add(r benchRun, bench, unit string) {
	if v, ok := r.Metrics[bench][unit]; ok {
		k := bench + " " + unit
		s[k] = append(s[k], v)
	}
}

func (s series) get(bench, unit string) []float64 { return s[bench+" "+unit] }
