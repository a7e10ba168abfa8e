package plugin

import (
	"context"
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/utils"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	"github.com/cairn-net/cairn/cni-plugin/netconf"
)

// GC answers CNI GC: it hands the runtime's cni.dev/valid-attachments to
// the agent, which releases every other attachment of this network.
func (p *Plugin) GC(ctx context.Context, args *skel.CmdArgs) error {
	cfg, err := p.parseConf(args.StdinData)
	if err != nil {
		return err
	}
	if cfg.ValidAttachments == nil {
		// Absent is not "none are valid": that would release every pod.
		return &netconf.FieldError{Field: "cni.dev/valid-attachments", Problem: "is required for GC (use [] for none)"}
	}
	// The agent releases only attachments allocated for this network:
	// another network using cairn-cni keeps its pods.
	req := &agentv1.GCRequest{Network: cfg.Name}
	for i, a := range cfg.ValidAttachments {
		// An attachment the agent cannot match would make it release a
		// live pod's addresses: refuse the whole list instead.
		if utils.ValidateContainerID(a.ContainerID) != nil || utils.ValidateInterfaceName(a.IfName) != nil {
			return &netconf.FieldError{Field: "cni.dev/valid-attachments", Problem: fmt.Sprintf("entry %d has an invalid containerID or ifname", i)}
		}
		req.ValidAttachments = append(req.ValidAttachments, &agentv1.Attachment{ContainerId: a.ContainerID, Ifname: a.IfName})
	}
	err = p.withAgent(cfg, func(agent agentClient) error { return agent.gc(ctx, req) })
	if err != nil {
		return err
	}
	p.log.Info("garbage collection requested", "network", cfg.Name, "validAttachments", len(req.ValidAttachments))
	return nil
}
