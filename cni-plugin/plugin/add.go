package plugin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	"github.com/cairn-net/cairn/cni-plugin/netsetup"
)

// Add wires one attachment (CNI ADD) and returns its result. On any failure
// everything done so far is undone before the error is returned.
func (p *Plugin) Add(ctx context.Context, args *skel.CmdArgs) (*current.Result, error) {
	start := time.Now()
	r, err := p.parse(args, true)
	if err != nil {
		return nil, err
	}
	var res *current.Result
	err = p.withAgent(r.cfg, func(agent agentClient) error {
		var (
			undo undoList
			t    addTimings
		)
		added, addErr := p.add(ctx, r, agent, &undo, &t)
		if addErr != nil {
			r.log.Warn("pod network add failed", "err", addErr, "undoSteps", len(undo.steps))
			if undoErr := undo.run(r.log); undoErr != nil {
				return errors.Join(addErr, fmt.Errorf("rollback incomplete: %w", undoErr))
			}
			return addErr
		}
		res = added
		r.log.Info("pod network added", "addresses", ipStrings(res), "total", micros(time.Since(start)),
			"allocate", micros(t.allocate), "netns", micros(t.netns), "endpointUp", micros(t.endpointUp))
		return nil
	})
	return res, err
}

// micros renders a duration for logs, readable in text and JSON alike.
func micros(d time.Duration) string { return d.Round(time.Microsecond).String() }

// addTimings records where an ADD spent its time.
type addTimings struct {
	allocate, netns, endpointUp time.Duration
}

// add runs the ADD steps in order, pushing each undo as soon as its step
// may have changed something.
func (p *Plugin) add(ctx context.Context, r *request, agent agentClient, undo *undoList, t *addTimings) (*current.Result, error) {
	netnsStart := time.Now()
	if err := p.dp.CheckPod(r.netns, r.ifName); err != nil {
		return nil, err
	}
	t.netns = time.Since(netnsStart)

	alloc, err := p.allocate(ctx, r, agent, undo, t)
	if err != nil {
		return nil, err
	}
	podMAC, err := netsetup.RandomMAC(p.rand)
	if err != nil {
		return nil, err
	}
	if r.cfg.MTU == 0 {
		// The pod's MTU follows the node's uplinks unless configured; the
		// result records it, so CHECK compares against what was set.
		if r.cfg.MTU, err = p.dp.UplinkMTU(); err != nil {
			return nil, fmt.Errorf("find the uplink MTU: %w", err)
		}
	}
	netnsStart = time.Now()
	veth := netsetup.Veth{HostName: r.hostVeth, HostMAC: netsetup.HostMAC(), PodIfName: r.ifName, PodMAC: podMAC, MTU: r.cfg.MTU}
	if err := p.dp.CreateVeth(r.netns, veth); err != nil {
		return nil, err
	}
	undo.push("delete veth "+r.hostVeth, func() error { return p.dp.DeleteHostVeth(r.hostVeth) })

	podCfg := netsetup.PodConfig{IfName: r.ifName, Addresses: alloc.addresses, Gateways: alloc.gateways, GatewayMAC: netsetup.HostMAC()}
	if err := p.dp.ConfigurePod(r.netns, podCfg); err != nil {
		return nil, fmt.Errorf("configure %s in %s: %w", r.ifName, r.netns, err)
	}
	t.netns += time.Since(netnsStart)

	upStart := time.Now()
	err = agent.endpointUp(ctx, &agentv1.EndpointUpRequest{
		ContainerId: r.containerID, Ifname: r.ifName, HostIface: r.hostVeth, Addresses: cidrStrings(alloc.addresses),
	})
	t.endpointUp = time.Since(upStart)
	if err != nil {
		return nil, err
	}
	return buildResult(r, alloc, podMAC), nil
}

// allocate asks the agent for addresses. The Release undo is pushed before
// the call: if the call times out here after the agent committed, the
// allocation must not leak, and Release is idempotent.
func (p *Plugin) allocate(ctx context.Context, r *request, agent agentClient, undo *undoList, t *addTimings) (*allocation, error) {
	// The undo runs after ctx may have been cancelled; it gets its own
	// deadline from agentClient.
	undoCtx := context.WithoutCancel(ctx)
	undo.push("release addresses", func() error {
		return agent.release(undoCtx, &agentv1.ReleaseRequest{ContainerId: r.containerID, Ifname: r.ifName})
	})
	start := time.Now()
	resp, err := agent.allocate(ctx, &agentv1.AllocateRequest{
		ContainerId:  r.containerID,
		Ifname:       r.ifName,
		PodNamespace: r.pod.Namespace,
		PodName:      r.pod.Name,
		PodUid:       r.pod.UID,
		IpFamilies:   apiFamilies(r.cfg.Families),
		PoolHint:     r.cfg.PoolHint,
		Network:      r.cfg.Name,
	})
	t.allocate = time.Since(start)
	if err != nil {
		return nil, err
	}
	alloc, err := parseAllocation(resp, r.cfg.Families)
	if err != nil {
		return nil, fmt.Errorf("agent Allocate for %s/%s: %w", r.containerID, r.ifName, err)
	}
	return alloc, nil
}
