package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-net/cairn/internal/speakersim"
)

// SimCommand is the hidden subcommand that runs one speaker simulation
// (internal/speakersim) and prints its result as JSON: each size gets a
// fresh process, so its memory is its own and nothing of a run stays in
// the bench's heap.
const SimCommand = "internal-speakersim"

// simTimeout bounds one simulation's wait for every route everywhere.
const simTimeout = 20 * time.Minute

// simHoldTime is the simulated sessions' hold time: longer than the wait,
// so no session of a thousand speakers sharing two busy cores expires
// for a keepalive late through starvation and starts its updates over
// (with the default 90 s, a run of 1,000 at load 30 held 390 of 1,000
// blocks at its reflector after 20 minutes, its sessions cycling through
// expired hold timers). What is measured is route propagation; liveness
// is the linkcut section's.
const simHoldTime = 30 * time.Minute

// SimMain runs the simulation the arguments describe; it returns the exit
// code.
func SimMain(args []string) int {
	fs := flag.NewFlagSet(SimCommand, flag.ContinueOnError)
	clients := fs.Int("clients", 100, "speakers announcing blocks")
	blocks := fs.Int("blocks", 1, "blocks each announces")
	timeout := fs.Duration("timeout", simTimeout, "how long to wait for every route everywhere")
	hold := fs.Duration("hold", 0, "every session's hold time (0: the speaker's default)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	logf := func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
	res, err := speakersim.Run(context.Background(), speakersim.Options{Clients: *clients, BlocksPerClient: *blocks, Timeout: *timeout, HoldTime: *hold, Logf: logf})
	if err != nil {
		fmt.Fprintln(os.Stderr, "speakersim:", err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "speakersim:", err)
		return 1
	}
	return 0
}

// runScaleSim runs the simulation at each of Options.SimClients, one
// size at a time, each once: a run of a thousand speakers takes minutes
// and the figure is a time to converge, not a ratio.
func runScaleSim(ctx context.Context, e *Env) ([]Row, error) {
	var rows []Row
	largest := simRun{}
	for _, n := range e.SimClients {
		e.Logf("scale-sim: %d speakers and two reflectors in one process", n)
		run, err := simulate(ctx, n)
		if err != nil {
			return rows, fmt.Errorf("simulate %d speakers: %w", n, err)
		}
		rows = append(rows, simRows(run)...)
		if n > largest.res.Clients {
			largest = run
		}
	}
	if n := largest.res.Clients; n > 0 && n < 1000 {
		f := math.Pow(1000/float64(n), 2)
		e.Note("Not run at 1,000 speakers (`-sim-speakers %d,1000`): at %d the simulation took %.0f s of CPU in %.0f s "+
			"(load %s on %d cores). Each reflector sends every block to every client, so the work grows with the square "+
			"of the speakers: about %.0f-fold, %.0f minutes of CPU at 1,000, more than this run's time at this load.",
			n, n, largest.cpu.Seconds(), largest.wall.Seconds(), loadAvg(), runtime.NumCPU(), f, f*largest.cpu.Minutes())
	}
	return rows, nil
}

// simRun is one simulation: its result, and the process's CPU and wall
// time.
type simRun struct {
	res       speakersim.Result
	cpu, wall time.Duration
}

// simulate runs the simulation in a child process (this binary, which
// dispatches SimCommand in main) and decodes its result.
func simulate(ctx context.Context, clients int) (simRun, error) {
	self, err := os.Executable()
	if err != nil {
		return simRun{}, err
	}
	cmd := exec.CommandContext(ctx, self, SimCommand, "-clients", strconv.Itoa(clients), "-timeout", simTimeout.String(), "-hold", simHoldTime.String())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	run := simRun{wall: time.Since(start)}
	if st := cmd.ProcessState; st != nil {
		run.cpu = st.UserTime() + st.SystemTime()
	}
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return run, fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
		}
		return run, err
	}
	if err := json.Unmarshal(out, &run.res); err != nil {
		return run, fmt.Errorf("decode the simulation's result %q: %w", out, err)
	}
	return run, nil
}

// simRows are the report's rows for one simulation.
func simRows(run simRun) []Row {
	r := run.res
	name := fmt.Sprintf("simulation, %d speakers + 2 reflectors in one process", r.Clients)
	how := fmt.Sprintf("%d blocks; every GoBGP server started (%.1f s), then peers and blocks set on all at once; hold time %v (no session expires for starvation)",
		r.Blocks, r.Start.Seconds(), simHoldTime)
	return []Row{
		{Name: name + ": both reflectors hold every block", Unit: "s", Value: r.Reflected.Seconds(), Note: how},
		{Name: name + ": every speaker holds every block, median speaker", Unit: "s", Value: r.ClientP50.Seconds()},
		{Name: name + ": every speaker holds every block", Unit: "s", Value: r.Converged.Seconds(),
			Anchor: "kube-router here: all agents started → every route everywhere 9.4 s (10 nodes)",
			Note:   "the owner as next hop; includes GoBGP's first connect, 1.5–2 s after a peer is added"},
		{Name: name + ": memory per speaker (RSS)", Unit: "MiB", Value: r.RSSPerSpeaker / mib,
			Note: fmt.Sprintf("process RSS converged minus before, over %d speakers; %.0f MiB in all, %d goroutines", r.Clients+r.Reflectors, r.RSS/mib, r.Goroutines)},
		{Name: name + ": live Go heap per speaker", Unit: "MiB", Value: r.HeapPerSpeaker / mib, Note: "after a GC"},
		{Name: name + ": CPU time of the simulation", Unit: "s", Value: run.cpu.Seconds(),
			Note: fmt.Sprintf("user+system of its process, start to converged, in %.0f s of wall time", run.wall.Seconds())},
	}
}
