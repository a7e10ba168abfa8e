// Command cairn-bench is what `make bench` runs: it measures Cairn against
// its anchors and goals in one run and writes a report (internal/bench).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-net/cairn/internal/bench"
	"github.com/cairn-net/cairn/internal/controlplane"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == bench.SpeakerCommand {
		os.Exit(bench.SpeakerMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == bench.SimCommand {
		os.Exit(bench.SimMain(os.Args[2:]))
	}
	sections := flag.String("sections", "", "comma-separated sections to run (default all: "+strings.Join(bench.SectionNames(), ",")+")")
	out := flag.String("out", "", "output directory (default bench/results/<UTC date and time>)")
	rounds := flag.Int("rounds", 5, "interleaved rounds per ratio (at least 5)")
	instances := flag.String("instances", "bench,bench2,bench3,bench4", "lab instance names this run may use")
	goCmd := flag.String("go", "go", "the go command")
	scaleNodes := flag.String("scale-nodes", "20", "comma-separated lab sizes for the scale section (100 needs about 10 GB and many minutes)")
	simSpeakers := flag.String("sim-speakers", "100,1000", "comma-separated sizes of the scale-sim section (speakers besides the two reflectors)")
	linkCutHolds := flag.String("linkcut-holds", "9s", "comma-separated hold times the linkcut section measures without BFD (90s, the default hold time, adds about 10 minutes)")
	flag.Parse()

	repo, err := controlplane.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairn-bench:", err)
		os.Exit(2)
	}
	dir := *out
	if dir == "" {
		dir = filepath.Join(repo, "bench", "results", time.Now().UTC().Format("2006-01-02T1504Z"))
	}
	var names []string
	if *sections != "" {
		names = strings.Split(*sections, ",")
	}
	sizes, err := counts("-scale-nodes", *scaleNodes)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairn-bench:", err)
		os.Exit(2)
	}
	simSizes, err := counts("-sim-speakers", *simSpeakers)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairn-bench:", err)
		os.Exit(2)
	}
	holds, err := durations("-linkcut-holds", *linkCutHolds)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairn-bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	rep, err := bench.Run(ctx, bench.Options{
		Sections: names, Rounds: *rounds, OutDir: dir, RepoRoot: repo,
		Instances: strings.Split(*instances, ","), Go: *goCmd, ScaleNodes: sizes, SimClients: simSizes, LinkCutHolds: holds, Logf: logf,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairn-bench:", err)
		os.Exit(2)
	}
	fmt.Printf("report: %s\n", filepath.Join(dir, "report.md"))
	if rep.Failed() {
		fmt.Fprintln(os.Stderr, "cairn-bench: some sections failed (see the report); no figure fails the run")
		os.Exit(1)
	}
}

// counts parses a comma-separated list of sizes of at least 2.
func counts(flagName, list string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 {
			return nil, fmt.Errorf("%s: %q is not a count of at least 2", flagName, f)
		}
		out = append(out, n)
	}
	return out, nil
}

// durations parses a comma-separated list of BGP hold times: 3s or more,
// whole seconds (the CRDs' rule).
func durations(flagName, list string) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range strings.Split(list, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || d < 3*time.Second || d%time.Second != 0 {
			return nil, fmt.Errorf("%s: %q is not a hold time (whole seconds, at least 3s)", flagName, f)
		}
		out = append(out, d)
	}
	return out, nil
}
