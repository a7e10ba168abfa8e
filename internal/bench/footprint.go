package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-net/cairn/internal/lab"
)

const (
	footprintPods   = 100
	footprintBlocks = 100
	mib             = 1 << 20
)

// usage is one agent's memory and CPU.
type usage struct {
	rss, anon, file []float64 // MiB, one sample a second
	cpuPct          float64   // of one core over the samples
}

// runFootprint measures cairn-node's resident memory and CPU on a node,
// idle (one pod), then with 100 local pods and 100 remote blocks learned
// from the ToR over BGP.
func runFootprint(ctx context.Context, e *Env) ([]Row, error) {
	l, err := e.MainLab(ctx)
	if err != nil {
		return nil, err
	}
	node := l.Plan().Nodes()[len(l.Plan().Nodes())-1]
	agent, err := agentProc(l, node.Name)
	if err != nil {
		return nil, err
	}
	idle, err := measureUsage(ctx, agent.PID, e.Rounds)
	if err != nil {
		return nil, err
	}
	rack, _ := l.Plan().Rack(node.Rack)
	e.Logf("footprint: %d pods on %s, %d blocks from %s", footprintPods, node.Name, footprintBlocks, rack.ToR.Name)
	blocks, err := freeBlocks(ctx, l, footprintBlocks)
	if err != nil {
		return nil, err
	}
	if err := announce(ctx, l, rack.ToR, blocks); err != nil {
		return nil, err
	}
	defer func() { _ = announce(context.WithoutCancel(ctx), l, rack.ToR, nil) }()
	for range footprintPods {
		if _, err := l.AddPod(ctx, node.Name); err != nil {
			return nil, fmt.Errorf("add pods for the loaded footprint: %w", err)
		}
	}
	if err := waitRoutes(ctx, node.NS, blocks, time.Minute); err != nil {
		return nil, err
	}
	loaded, err := measureUsage(ctx, agent.PID, e.Rounds)
	if err != nil {
		return nil, err
	}
	var size float64
	if fi, err := os.Stat(l.BinDir() + "/cairn-node"); err == nil {
		size = float64(fi.Size()) / 1e6
	}
	idleNote := fmt.Sprintf("%s, 1 pod, %d samples 1 s apart", node.Name, e.Rounds)
	loadNote := fmt.Sprintf("%s, %d local pods, %d remote blocks", node.Name, footprintPods+1, footprintBlocks)
	rows := []Row{
		{Name: "agent RSS, idle", Unit: "MiB", Value: Median(idle.rss), Samples: idle.rss, Goal: AtMost(40),
			Anchor: "kube-router 53–54 MiB measured here; felix about 88 MB; Cairn 80–86 MiB before", Note: idleNote},
		{Name: "agent RSS, idle: anonymous", Unit: "MiB", Value: Median(idle.anon), Samples: idle.anon, Anchor: "26–29 MiB before", Note: "smaps_rollup Anonymous"},
		{Name: "agent RSS, idle: file-backed (the binary's pages)", Unit: "MiB", Value: Median(idle.file), Samples: idle.file, Anchor: "57 MiB before", Note: "Rss − Anonymous"},
		{Name: "agent CPU, idle", Unit: "%", Value: idle.cpuPct, Note: "of one core"},
		{Name: "agent RSS, 100 pods and 100 remote blocks", Unit: "MiB", Value: Median(loaded.rss), Samples: loaded.rss, Goal: AtMost(40), Note: loadNote},
		{Name: "agent RSS, loaded: anonymous", Unit: "MiB", Value: Median(loaded.anon), Samples: loaded.anon},
		{Name: "agent RSS, loaded: file-backed", Unit: "MiB", Value: Median(loaded.file), Samples: loaded.file},
		{Name: "agent CPU, loaded (steady)", Unit: "%", Value: loaded.cpuPct, Note: "of one core, after the pods and routes are in"},
		{Name: "cairn-node binary size", Unit: "MB", Value: size, Anchor: "97 MB before"},
	}
	lever, err := measureStripped(ctx, e, l, l.Plan().Nodes()[0])
	return append(rows, lever...), err
}

// agentProc finds a node's cairn-node process in the lab.
func agentProc(l *lab.Lab, node string) (lab.Proc, error) {
	for _, p := range l.Procs() {
		if p.Name == "cairn-node-"+node && p.Alive() {
			return p, nil
		}
	}
	return lab.Proc{}, fmt.Errorf("no running cairn-node for %s in the lab", node)
}

// measureUsage samples memory n times a second apart, and the CPU used
// across those seconds.
func measureUsage(ctx context.Context, pid, n int) (usage, error) {
	var u usage
	cpu0, err := cpuTicks(pid)
	if err != nil {
		return u, err
	}
	t0 := time.Now()
	for i := range n {
		if i > 0 {
			select {
			case <-ctx.Done():
				return u, ctx.Err()
			case <-time.After(time.Second):
			}
		}
		rss, anon, err := smapsRollup(pid)
		if err != nil {
			return u, err
		}
		u.rss = append(u.rss, rss/mib)
		u.anon = append(u.anon, anon/mib)
		u.file = append(u.file, (rss-anon)/mib)
	}
	cpu1, err := cpuTicks(pid)
	if err != nil {
		return u, err
	}
	// USER_HZ is 100 on every Linux this runs on.
	u.cpuPct = float64(cpu1-cpu0) / 100 / time.Since(t0).Seconds() * 100
	return u, nil
}

// smapsRollup reads a process's resident and anonymous bytes.
func smapsRollup(pid int) (rss, anon float64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[2] != "kB" {
			continue
		}
		v, _ := strconv.ParseFloat(fields[1], 64)
		switch fields[0] {
		case "Rss:":
			rss = v * 1024
		case "Anonymous:":
			anon = v * 1024
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("no Rss in /proc/%d/smaps_rollup", pid)
	}
	return rss, anon, sc.Err()
}

// cpuTicks is a process's user+system time in clock ticks.
func cpuTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU of pid %d: %w", pid, err)
	}
	// Fields after the command name, which may hold spaces: state is
	// the first, utime the 12th, stime the 13th.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return ut + st, nil
}
