package plugin

import (
	"context"
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// Status answers CNI STATUS: nil when the agent can serve ADD now, else
// code 50 (plugin not available) with the reason.
func (p *Plugin) Status(ctx context.Context, args *skel.CmdArgs) error {
	cfg, err := p.parseConf(args.StdinData)
	if err != nil {
		return err
	}
	var (
		ready  bool
		reason string
	)
	err = p.withAgent(cfg, func(agent agentClient) error {
		resp, err := agent.status(ctx)
		if err != nil {
			return err
		}
		ready, reason = resp.GetReady(), resp.GetReason()
		return nil
	})
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, fmt.Sprintf("cairn agent unreachable: %v", err), "")
	}
	if !ready {
		if reason == "" {
			reason = "no reason given"
		}
		return types.NewError(types.ErrPluginNotAvailable, "cairn agent not ready: "+reason, "")
	}
	return nil
}
