package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/cairn-net/cairn/internal/lab"
)

const (
	cniSequential = 40
	cniBurst      = 30
	cniVersions   = 20
)

// cniRunner execs cairn-cni as a container runtime does, from the node's
// network namespace (the exec happens on a thread inside it, as a runtime
// living in that namespace would, with no `ip netns exec` in between),
// and times exec to exit.
type cniRunner struct {
	bin    string
	nodeNS ns.NetNS
	conf   []byte
	podPfx string
	mu     sync.Mutex
	made   []string        // pod namespaces to remove
	cpu    []time.Duration // each exec's user+system time, since takeCPU
}

func newCNIRunner(l *lab.Lab, node lab.Node) (*cniRunner, error) {
	nodeNS, err := ns.GetNS(lab.NSPath(node.NS))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", node.NS, err)
	}
	conf, err := json.Marshal(map[string]any{
		"cniVersion": "1.1.0", "name": "cairn", "type": "cairn-cni", "agentSocket": l.AgentSocket(node.Name),
	})
	if err != nil {
		return nil, err
	}
	return &cniRunner{bin: filepath.Join(l.BinDir(), "cairn-cni"), nodeNS: nodeNS, conf: conf, podPfx: l.Plan().Prefix + "bpod-"}, nil
}

// sweep removes pod namespaces an interrupted run left.
func (c *cniRunner) sweep(ctx context.Context) {
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), c.podPfx) {
			_ = exec.CommandContext(ctx, "ip", "netns", "del", e.Name()).Run()
		}
	}
}

// close removes the pod namespaces and the node handle.
func (c *cniRunner) close(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.made {
		_ = exec.CommandContext(ctx, "ip", "netns", "del", n).Run()
	}
	c.made = nil
	_ = c.nodeNS.Close()
}

// cniPod is one pod as the runtime knows it.
type cniPod struct{ name, id string }

func (c *cniRunner) newPod(ctx context.Context, tag string, i int) (cniPod, error) {
	p := cniPod{name: fmt.Sprintf("%s%s-%d", c.podPfx, tag, i), id: fmt.Sprintf("bench%s%dc0ffee", tag, i)}
	c.mu.Lock()
	c.made = append(c.made, p.name)
	c.mu.Unlock()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", p.name).CombinedOutput(); err != nil {
		return p, fmt.Errorf("ip netns add %s: %w: %s", p.name, err, out)
	}
	return p, nil
}

func (c *cniRunner) delPodNS(ctx context.Context, p cniPod) {
	_ = exec.CommandContext(ctx, "ip", "netns", "del", p.name).Run()
}

// exec runs one verb and returns how long the plugin ran.
func (c *cniRunner) exec(ctx context.Context, verb string, p *cniPod) (time.Duration, error) {
	took, _, err := c.execOut(ctx, verb, p)
	return took, err
}

// execOut is exec that also returns the plugin's result.
func (c *cniRunner) execOut(ctx context.Context, verb string, p *cniPod) (time.Duration, []byte, error) {
	cmd := exec.CommandContext(ctx, c.bin)
	cmd.Env = []string{"CNI_COMMAND=" + verb, "CNI_PATH=" + filepath.Dir(c.bin)}
	if p != nil {
		cmd.Env = append(cmd.Env, "CNI_CONTAINERID="+p.id, "CNI_NETNS="+lab.NSPath(p.name), "CNI_IFNAME=eth0",
			"CNI_ARGS=K8S_POD_NAMESPACE=bench;K8S_POD_NAME="+p.name+";K8S_POD_UID="+p.id)
	}
	cmd.Stdin = bytes.NewReader(c.conf)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var took time.Duration
	err := c.nodeNS.Do(func(ns.NetNS) error {
		start := time.Now()
		err := cmd.Run()
		took = time.Since(start)
		return err
	})
	if st := cmd.ProcessState; st != nil {
		c.mu.Lock()
		c.cpu = append(c.cpu, st.UserTime()+st.SystemTime())
		c.mu.Unlock()
	}
	if err != nil {
		return took, nil, fmt.Errorf("cairn-cni %s: %w: %s %s", verb, err, strings.TrimSpace(stdout.String()), lastLine(stderr.String()))
	}
	return took, stdout.Bytes(), nil
}

// takeCPU returns the plugin's CPU time of each exec since the last call.
func (c *cniRunner) takeCPU() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.cpu
	c.cpu = nil
	return out
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// runCNI measures the plugin against the shared lab's real agent and API
// server: process start alone (VERSION), ADD and DEL one at a time, and
// bursts of 30 ADDs (then DELs) at once on one node.
func runCNI(ctx context.Context, e *Env) ([]Row, error) {
	l, err := e.MainLab(ctx)
	if err != nil {
		return nil, err
	}
	node := l.Plan().Nodes()[0]
	c, err := newCNIRunner(l, node)
	if err != nil {
		return nil, err
	}
	c.sweep(ctx)
	defer c.close(context.WithoutCancel(ctx))

	var version []time.Duration
	for range cniVersions {
		d, err := c.exec(ctx, "VERSION", nil)
		if err != nil {
			return nil, err
		}
		version = append(version, d)
	}
	add, del, split, err := c.sequential(ctx, cniSequential, node)
	if err != nil {
		return nil, err
	}
	cpu, err := newBurstCPU(l, node)
	if err != nil {
		return nil, err
	}
	var bAdd, bDel, bTotal []float64
	for round := range e.Rounds {
		e.Logf("CNI burst %d/%d", round+1, e.Rounds)
		c.takeCPU()
		if err := cpu.start(); err != nil {
			return nil, err
		}
		a, d, total, err := c.burst(ctx, fmt.Sprintf("b%d", round), cniBurst, func() error { return cpu.stop(c.takeCPU()) })
		if err != nil {
			return nil, err
		}
		bAdd = append(bAdd, Millis(a)...)
		bDel = append(bDel, Millis(d)...)
		bTotal = append(bTotal, float64(total)/float64(time.Millisecond))
	}
	addMs, delMs := Millis(add), Millis(del)
	seq := fmt.Sprintf("%d pods one at a time on %s", cniSequential, node.Name)
	bursts := fmt.Sprintf("%d bursts of %d, %d ADDs", e.Rounds, cniBurst, len(bAdd))
	rows := []Row{
		{Name: "plugin process start (VERSION), p50", Unit: "ms", Value: Median(Millis(version)),
			Anchor: "30 ms measured here before (reference.md)", Note: fmt.Sprintf("%d runs", cniVersions)},
		{Name: "ADD, p50", Unit: "ms", Value: Median(addMs), Samples: addMs, Goal: AtMost(15),
			Anchor: "Calico plugin measured here 232–277 ms; Cairn 67–91 ms (reference.md)", Note: seq},
		{Name: "ADD, p99", Unit: "ms", Value: Quantile(addMs, 0.99), Anchor: "Calico 354–401 ms", Note: seq},
		{Name: "DEL, p50", Unit: "ms", Value: Median(delMs), Samples: delMs, Anchor: "Calico 90 ms", Note: seq},
		{Name: "DEL, p99", Unit: "ms", Value: Quantile(delMs, 0.99), Anchor: "Calico 100–112 ms", Note: seq},
		{Name: "30 ADDs at once on one node, p50", Unit: "ms", Value: Median(bAdd), Samples: nil,
			Anchor: "AWS VPC CNI 0.75 s (PR 3764); Calico plugin here 2.3–2.5 s", Note: bursts},
		{Name: "30 ADDs at once on one node, p99", Unit: "ms", Value: Quantile(bAdd, 0.99), Goal: AtMost(500),
			Anchor: "Calico plugin here 7.4–7.9 s; Cairn 1.3–1.7 s before", Note: bursts},
		{Name: "30 ADDs at once on one node, total", Unit: "ms", Value: Median(bTotal), Samples: bTotal,
			Anchor: "Calico plugin here 3.8–4.0 s", Note: "first start to last exit, median of bursts"},
		{Name: "30 DELs at once on one node, p99", Unit: "ms", Value: Quantile(bDel, 0.99), Note: bursts},
	}
	rows = append(rows, split.rows(seq)...)
	rows = append(rows, cpu.rows(cniBurst)...)
	return rows, nil
}

// sequential adds n pods one at a time, then deletes them one at a time,
// and splits the ADDs' time (addSplit).
func (c *cniRunner) sequential(ctx context.Context, n int, node lab.Node) (add, del []time.Duration, split addSplit, err error) {
	pods := make([]cniPod, n)
	c.takeCPU()
	before, err := scrapeAgent(ctx, node)
	if err != nil {
		return nil, nil, split, err
	}
	for i := range n {
		if pods[i], err = c.newPod(ctx, "s", i); err != nil {
			return nil, nil, split, err
		}
		d, err := c.exec(ctx, "ADD", &pods[i])
		if err != nil {
			return nil, nil, split, err
		}
		add = append(add, d)
	}
	after, err := scrapeAgent(ctx, node)
	if err != nil {
		return nil, nil, split, err
	}
	split = newAddSplit(before, after, c.takeCPU(), n)
	for i := range n {
		d, err := c.exec(ctx, "DEL", &pods[i])
		if err != nil {
			return nil, nil, split, err
		}
		del = append(del, d)
		c.delPodNS(ctx, pods[i])
	}
	return add, del, split, nil
}

// addSplit is where the time of an ADD goes: the plugin's own CPU time,
// the agent's two calls (their time as the agent measures it), and the
// agent's requests to the API server in them (watches left out).
type addSplit struct {
	pluginCPU            []float64 // ms, each ADD
	allocate, endpointUp float64   // ms, mean
	apiRequests, apiTime float64   // per ADD; ms
}

func newAddSplit(before, after agentMetrics, cpu []time.Duration, n int) addSplit {
	mean := func(rpc string) float64 {
		with := []string{`verb="ADD"`, `rpc="` + rpc + `"`}
		count := delta(before, after, "cairn_cni_request_duration_seconds_count", with, nil)
		if count == 0 {
			return math.NaN()
		}
		return 1000 * delta(before, after, "cairn_cni_request_duration_seconds_sum", with, nil) / count
	}
	notWatch := []string{`verb="WATCH"`}
	return addSplit{
		pluginCPU:   Millis(cpu),
		allocate:    mean("Allocate"),
		endpointUp:  mean("EndpointUp"),
		apiRequests: delta(before, after, "cairn_api_request_duration_seconds_count", nil, notWatch) / float64(n),
		apiTime:     1000 * delta(before, after, "cairn_api_request_duration_seconds_sum", nil, notWatch) / float64(n),
	}
}

// rows are the split's figures.
func (s addSplit) rows(note string) []Row {
	return []Row{
		{Name: "ADD split: the plugin's CPU time (user+system), p50", Unit: "ms", Value: Median(s.pluginCPU), Note: note},
		{Name: "ADD split: the agent's Allocate, mean", Unit: "ms", Value: s.allocate, Note: "the agent's own cairn_cni_request_duration_seconds"},
		{Name: "ADD split: the agent's EndpointUp, mean", Unit: "ms", Value: s.endpointUp, Note: "the route in the kernel before it answers"},
		{Name: "ADD split: API requests per ADD", Unit: "", Value: s.apiRequests,
			Note: "every request of the agent's while the ADDs ran (background ones too: status, leases), watches left out"},
		{Name: "ADD split: API request time per ADD", Unit: "ms", Value: s.apiTime, Note: "summed over those requests, some of them concurrent"},
	}
}

// burst starts n ADDs at once, then n DELs at once, and returns each
// one's time and the ADDs' first-start-to-last-exit. afterAdds runs
// between the two.
func (c *cniRunner) burst(ctx context.Context, tag string, n int, afterAdds func() error) (add, del []time.Duration, total time.Duration, err error) {
	pods := make([]cniPod, n)
	for i := range n {
		if pods[i], err = c.newPod(ctx, tag, i); err != nil {
			return nil, nil, 0, err
		}
	}
	all := func(verb string) ([]time.Duration, time.Duration, error) {
		took := make([]time.Duration, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				took[i], errs[i] = c.exec(ctx, verb, &pods[i])
			})
		}
		t0 := time.Now()
		close(start)
		wg.Wait()
		return took, time.Since(t0), errors.Join(errs...)
	}
	add, total, err = all("ADD")
	if err != nil {
		return nil, nil, 0, err
	}
	if err := afterAdds(); err != nil {
		return nil, nil, 0, err
	}
	del, _, err = all("DEL")
	if err != nil {
		return nil, nil, 0, err
	}
	for _, p := range pods {
		c.delPodNS(ctx, p)
	}
	return add, del, total, nil
}
