package plugin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	"github.com/cairn-net/cairn/cni-plugin/netconf"
	"github.com/cairn-net/cairn/cni-plugin/netsetup"
)

// Check compares the attachment with prevResult (CNI CHECK): the agent's
// records, the pod interface, its addresses, routes and gateway neighbour,
// and the host veth. Any difference fails with CodeCheckFailed, listing all
// of them.
func (p *Plugin) Check(ctx context.Context, args *skel.CmdArgs) error {
	r, err := p.parse(args, true)
	if err != nil {
		return err
	}
	if r.cfg.PrevResult == nil {
		return &netconf.FieldError{Field: "prevResult", Problem: "is required for CHECK"}
	}
	prev, err := current.NewResultFromResult(r.cfg.PrevResult)
	if err != nil {
		return &netconf.FieldError{Field: "prevResult", Problem: err.Error()}
	}
	want, problems := expectedFrom(prev, r)
	if want != nil {
		problems = append(problems, p.checkKernel(r, want)...)
		agentProblems, err := p.checkAgent(ctx, r, want)
		if err != nil {
			return err
		}
		problems = append(problems, agentProblems...)
	}
	if len(problems) > 0 {
		return fmt.Errorf("check %s/%s: %s: %w", r.containerID, r.ifName, strings.Join(problems, "; "), errCheckFailed)
	}
	return nil
}

func (p *Plugin) checkKernel(r *request, want *expected) []string {
	pod, err := p.dp.InspectPod(r.netns, r.ifName)
	if err != nil {
		return []string{fmt.Sprintf("pod interface: %v", err)}
	}
	host, err := p.dp.InspectHost(r.hostVeth)
	if errors.Is(err, netsetup.ErrLinkNotFound) {
		return append(comparePod(want, pod), fmt.Sprintf("host veth %s is missing", r.hostVeth))
	}
	if err != nil {
		return append(comparePod(want, pod), fmt.Sprintf("host veth: %v", err))
	}
	return append(comparePod(want, pod), compareHost(want, host, pod)...)
}

func (p *Plugin) checkAgent(ctx context.Context, r *request, want *expected) ([]string, error) {
	var problems []string
	err := p.withAgent(r.cfg, func(agent agentClient) error {
		resp, err := agent.check(ctx, &agentv1.CheckRequest{
			ContainerId: r.containerID, Ifname: r.ifName, HostIface: r.hostVeth, Addresses: cidrStrings(want.addresses),
		})
		if isAgentNotFound(err) {
			problems = append(problems, "agent has no record of the attachment")
			return nil
		}
		if err != nil {
			return err
		}
		for _, pr := range resp.GetProblems() {
			problems = append(problems, "agent: "+pr)
		}
		return nil
	})
	return problems, err
}
