package plugin

import (
	"context"
	"errors"
	"time"

	"github.com/containernetworking/cni/pkg/skel"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	"github.com/cairn-net/cairn/cni-plugin/netsetup"
)

// Del removes one attachment (CNI DEL): the pod's veth, then the agent's
// addresses and routes. It succeeds when repeated, when the netns is gone,
// and when the agent knows nothing of the attachment. The veth goes first:
// addresses are released only once no interface can still carry them, so
// a failed delete returns an error and the runtime retries the whole DEL.
func (p *Plugin) Del(ctx context.Context, args *skel.CmdArgs) error {
	start := time.Now()
	r, err := p.parse(args, false)
	if err != nil {
		return err
	}
	if r.netns != "" {
		err := p.dp.DeletePodInterface(r.netns, r.ifName)
		switch {
		case errors.Is(err, netsetup.ErrNotOurs):
			// E.g. DEL after an ADD that failed because the interface
			// already existed: it belongs to someone else.
			r.log.Warn("leaving interface that Cairn did not create", "reason", err)
		case err != nil:
			return err
		}
	}
	err = p.withAgent(r.cfg, func(agent agentClient) error {
		return agent.release(ctx, &agentv1.ReleaseRequest{ContainerId: r.containerID, Ifname: r.ifName})
	})
	if err != nil {
		return err
	}
	r.log.Info("pod network deleted", "total", micros(time.Since(start)))
	return nil
}
