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

// runConvergence brings up a lab of its own, two racks of two nodes,
// whose pool has /32 blocks, so that every pod start on node A claims a
// new block, and times, from the exec of the CNI ADD, the route's arrival
// in three kernels, from their own notifications: node A's ToR (BIRD
// installs what it learns), node B beside A (the ToR reflects A's route
// to it, next hop A), and the other rack's ToR, behind the spine. The
// other rack's nodes hold no route per block: they take a block only
// from its owner (owner-only imports), the ToR relays it with itself as
// next hop, and they reach it through the pool aggregate their ToR
// announces, so their ToR's kernel is where the route must arrive.
func runConvergence(ctx context.Context, e *Env) ([]Row, error) {
	if len(e.Instances) < 2 {
		return nil, fmt.Errorf("convergence needs a second lab instance name")
	}
	l, down, err := e.ownLab(ctx, e.Instances[1], lab.Options{Racks: 2, NodesPerRack: 2, PodsPerNode: 1, BlockSize: 32})
	if err != nil {
		return nil, err
	}
	defer down()
	racks := l.Plan().Racks
	a, b := racks[0].Nodes[0], racks[0].Nodes[1]
	tor, far := racks[0].ToR, racks[1].ToR
	watchCtx, stop := context.WithCancel(ctx)
	defer stop()
	var watches []*routeWatch
	for _, ns := range []string{tor.NS, b.NS, far.NS} {
		w, err := watchRoutes(watchCtx, ns)
		if err != nil {
			return nil, err
		}
		watches = append(watches, w)
	}
	c, err := newCNIRunner(l, a)
	if err != nil {
		return nil, err
	}
	c.sweep(ctx)
	defer c.close(context.WithoutCancel(ctx))
	var add []float64
	arrived := make([][]float64, len(watches))
	where := []string{tor.Name, b.Name, far.Name}
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
		for j, w := range watches {
			t, err := w.wait(ctx, dst, convergenceTimeout)
			if err != nil {
				return nil, fmt.Errorf("pod %d (%s) at %s: %w", i, ip, where[j], err)
			}
			arrived[j] = append(arrived[j], ms(t.Sub(start)))
		}
		add = append(add, ms(took))
	}
	note := fmt.Sprintf("%d pods one at a time on %s, each on a new /32 block; from the exec of ADD", convergencePods, a.Name)
	atToR := tor.Name + "'s kernel (BIRD)"
	atB := b.Name + "'s kernel: " + tor.Name + " reflects " + a.Name + "'s route"
	atFar := far.Name + "'s kernel, through " + tor.Name + " and the spine: its nodes reach the pod through the pool aggregate it announces"
	return []Row{
		{Name: "CNI ADD claiming a new block, p50", Unit: "ms", Value: Median(add), Note: note},
		{Name: "ADD → route at the ToR, p50", Unit: "ms", Value: Median(arrived[0]), Note: atToR},
		{Name: "ADD → route at the ToR, p99", Unit: "ms", Value: Quantile(arrived[0], 0.99), Goal: AtMost(300), Note: atToR},
		{Name: "ADD → route in node B's kernel, p50", Unit: "ms", Value: Median(arrived[1]), Note: atB},
		{Name: "ADD → route in node B's kernel, p99", Unit: "ms", Value: Quantile(arrived[1], 0.99), Goal: AtMost(300),
			Anchor: "kube-router: a joining node routed everywhere in 8.3 s (reference.md)", Note: atB},
		{Name: "ADD → route at the other rack's ToR, p50", Unit: "ms", Value: Median(arrived[2]), Note: atFar},
		{Name: "ADD → route at the other rack's ToR, p99", Unit: "ms", Value: Quantile(arrived[2], 0.99), Note: atFar},
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
