package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-net/cairn/internal/lab"
)

// clockTick is the unit of /proc/PID/stat's CPU times (USER_HZ, 100 on
// Linux everywhere that matters).
const clockTick = 10 * time.Millisecond

// burstCPU is the CPU time a burst of ADDs costs, by process:
// the plugins (their own user+system time), the node's agent, and the
// API server and etcd, whose every write the allocations wait for. On a
// machine of N cores, a burst cannot end before the sum over N.
type burstCPU struct {
	procs                    map[string]int // name → pid
	last                     map[string]uint64
	plugins, agent, cpServer []float64 // ms per burst
}

func newBurstCPU(l *lab.Lab, node lab.Node) (*burstCPU, error) {
	p, err := agentProc(l, node.Name)
	if err != nil {
		return nil, err
	}
	b := &burstCPU{procs: map[string]int{"agent": p.PID}}
	for _, name := range []string{"kube-apiserver", "etcd"} {
		path := filepath.Join(l.ControlPlane().Dir, name+".pid")
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("find the lab's %s: %w", name, err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		b.procs[name] = pid
	}
	return b, nil
}

func (b *burstCPU) read() (map[string]uint64, error) {
	out := map[string]uint64{}
	for name, pid := range b.procs {
		t, err := cpuTicks(pid)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

func (b *burstCPU) start() (err error) {
	b.last, err = b.read()
	return err
}

// stop takes the processes' CPU since start and the plugins' CPU times.
func (b *burstCPU) stop(plugins []time.Duration) error {
	now, err := b.read()
	if err != nil {
		return err
	}
	ms := func(names ...string) float64 {
		var ticks uint64
		for _, n := range names {
			ticks += now[n] - b.last[n]
		}
		return float64(ticks) * float64(clockTick) / float64(time.Millisecond)
	}
	var sum time.Duration
	for _, d := range plugins {
		sum += d
	}
	b.plugins = append(b.plugins, float64(sum)/float64(time.Millisecond))
	b.agent = append(b.agent, ms("agent"))
	b.cpServer = append(b.cpServer, ms("kube-apiserver", "etcd"))
	return nil
}

func (b *burstCPU) rows(n int) []Row {
	note := fmt.Sprintf("CPU time from the start of a burst of %d ADDs to its last exit, median of bursts", n)
	burst := fmt.Sprintf("%d-ADD burst CPU: ", n)
	return []Row{
		{Name: burst + "the plugins (user+system)", Unit: "ms", Value: Median(b.plugins), Samples: b.plugins, Note: note},
		{Name: burst + "the node's agent", Unit: "ms", Value: Median(b.agent), Samples: b.agent, Note: note},
		{Name: burst + "kube-apiserver and etcd", Unit: "ms", Value: Median(b.cpServer), Samples: b.cpServer,
			Note: note + "; with the rest of the lab's API traffic in that time"},
	}
}
