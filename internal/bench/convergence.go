package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/cairn-net/cairn/internal/lab"
)

const (
	convergencePods    = 50
	convergenceTimeout = 30 * time.Second
)

// runConvergence brings up a lab of its own whose pool has /32 blocks, so
// that every pod start on node A claims a new block, and times, from the
// exec of the CNI ADD, the route's arrival in node A's ToR's kernel (BIRD
// installs what it learns) and in node B's kernel (behind the other ToR
// and the spine), from the kernels' own notifications.
func runConvergence(ctx context.Context, e *Env) ([]Row, error) {
	if len(e.Instances) < 2 {
		return nil, fmt.Errorf("convergence needs a second lab instance name")
	}
	o := lab.Options{
		StateDir: labStateDir(e.Instances[1]), RepoRoot: e.RepoRoot, Instance: e.Instances[1],
		Racks: 2, NodesPerRack: 1, PodsPerNode: 1, BlockSize: 32, Logf: e.Logf,
	}
	l, err := upFresh(ctx, o)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := lab.Down(context.WithoutCancel(ctx), l.StateDir(), e.Logf); err != nil {
			e.Logf("take down lab %s: %v", o.Instance, err)
		}
	}()
	nodes := l.Plan().Nodes()
	a, b := nodes[0], nodes[1]
	rack, _ := l.Plan().Rack(a.Rack)
	watchCtx, stop := context.WithCancel(ctx)
	defer stop()
	atToR, err := watchRoutes(watchCtx, rack.ToR.NS)
	if err != nil {
		return nil, err
	}
	atB, err := watchRoutes(watchCtx, b.NS)
	if err != nil {
		return nil, err
	}
	c, err := newCNIRunner(l, a)
	if err != nil {
		return nil, err
	}
	c.sweep(ctx)
	defer c.close(context.WithoutCancel(ctx))
	var add, tor, remote []float64
	for i := range convergencePods {
		p, err := c.newPod(ctx, "c", i)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		took, out, err := c.execOut(ctx, "ADD", &p)
		if err != nil {
			return nil, err
		}
		ip, err := cniResultIP(out)
		if err != nil {
			return nil, err
		}
		dst := netip.PrefixFrom(ip, 32)
		tTor, err := atToR.wait(ctx, dst, convergenceTimeout)
		if err != nil {
			return nil, fmt.Errorf("pod %d (%s) at %s: %w", i, ip, rack.ToR.Name, err)
		}
		tB, err := atB.wait(ctx, dst, convergenceTimeout)
		if err != nil {
			return nil, fmt.Errorf("pod %d (%s) on %s: %w", i, ip, b.Name, err)
		}
		add = append(add, ms(took))
		tor = append(tor, ms(tTor.Sub(start)))
		remote = append(remote, ms(tB.Sub(start)))
	}
	note := fmt.Sprintf("%d pods one at a time on %s, each on a new /32 block; from the exec of ADD", convergencePods, a.Name)
	hops := fmt.Sprintf("%s, through %s", b.Name, routersBetween(l.Plan(), a, b))
	return []Row{
		{Name: "CNI ADD claiming a new block, p50", Unit: "ms", Value: Median(add), Note: note},
		{Name: "ADD → route at the ToR, p50", Unit: "ms", Value: Median(tor), Note: rack.ToR.Name + "'s kernel (BIRD)"},
		{Name: "ADD → route at the ToR, p99", Unit: "ms", Value: Quantile(tor, 0.99), Goal: AtMost(300), Note: rack.ToR.Name + "'s kernel (BIRD)"},
		{Name: "ADD → route in node B's kernel, p50", Unit: "ms", Value: Median(remote), Note: hops},
		{Name: "ADD → route in node B's kernel, p99", Unit: "ms", Value: Quantile(remote, 0.99), Goal: AtMost(300),
			Anchor: "kube-router: a joining node routed everywhere in 8.3 s (reference.md)", Note: hops},
	}, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// cniResultIP reads the first address of an ADD result.
func cniResultIP(out []byte) (netip.Addr, error) {
	var r struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(out, &r); err != nil || len(r.IPs) == 0 {
		return netip.Addr{}, fmt.Errorf("ADD result without an address: %q", out)
	}
	p, err := netip.ParsePrefix(r.IPs[0].Address)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("ADD result address %q: %w", r.IPs[0].Address, err)
	}
	return p.Addr(), nil
}
