package cli

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	"github.com/cairn-net/cairn/bgp/peering"
	"github.com/cairn-net/cairn/cmd/cairnctl/internal/view"
)

// nodeStatus is "node status [NODE]".
func nodeStatus(ctx context.Context, env Env, args []string) (int, error) {
	o, pos, err := parse("node status", args, false)
	if err != nil {
		return ExitError, err
	}
	if len(pos) > 1 {
		return ExitError, fmt.Errorf("%w: node status takes at most one NODE", errUsage)
	}
	var n view.Node
	if len(pos) == 0 {
		n, err = agentNode(ctx, env, o.socket)
	} else {
		n, err = apiNode(ctx, env, pos[0])
	}
	if err != nil {
		return ExitError, err
	}
	if err := emit(env.Stdout, o.output, n, func() error { return view.PrintNode(env.Stdout, n) }); err != nil {
		return ExitError, err
	}
	if !n.Healthy() {
		return ExitProblems, nil
	}
	return ExitOK, nil
}

// agentNode asks the node's agent.
func agentNode(ctx context.Context, env Env, socket string) (view.Node, error) {
	c, closer, err := env.Agent(ctx, socket)
	if err != nil {
		return view.Node{}, fmt.Errorf("reach the agent at %s (on another host, name the node to read its CairnNodeStatus): %w", socket, err)
	}
	defer closer.Close()
	r, err := c.NodeStatus(ctx, &agentv1.NodeStatusRequest{})
	if err != nil {
		return view.Node{}, fmt.Errorf("ask the agent at %s: %w", socket, err)
	}
	return view.FromAgent(r), nil
}

// apiNode reads the node's CairnNodeStatus, naming its peers from the
// Nodes and BGPPeers.
func apiNode(ctx context.Context, env Env, node string) (view.Node, error) {
	cl, err := env.Kube()
	if err != nil {
		return view.Node{}, err
	}
	st, err := cl.Cairn.CairnV1alpha1().CairnNodeStatuses().Get(ctx, node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return view.Node{}, fmt.Errorf("node %s has no CairnNodeStatus (no such node, or its agent never ran): %w", node, errNotFound)
	}
	if err != nil {
		return view.Node{}, fmt.Errorf("read CairnNodeStatus %s: %w", node, err)
	}
	peers, err := clusterPeers(ctx, cl)
	if err != nil {
		return view.Node{}, err
	}
	return view.FromStatus(st, peers, env.Now()), nil
}

// clusterPeers names the addresses sessions can have: nodes and BGPPeers.
func clusterPeers(ctx context.Context, cl *Clients) (view.Peers, error) {
	p := view.Peers{Nodes: map[string]view.NamedAS{}, BGPPeers: map[string]view.NamedAS{}}
	asn := uint32(peering.DefaultASN)
	if cfg, err := cl.Cairn.CairnV1alpha1().BGPConfigurations().Get(ctx, "default", metav1.GetOptions{}); err == nil && cfg.Spec.ASNumber != 0 {
		asn = uint32(cfg.Spec.ASNumber)
	}
	nodes, err := cl.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return p, fmt.Errorf("list nodes: %w", err)
	}
	for i := range nodes.Items {
		if info, err := peering.NodeInfoFrom(&nodes.Items[i], asn); err == nil && info.Addr.IsValid() {
			p.Nodes[info.Addr.String()] = view.NamedAS{Name: info.Name, AS: info.ASN}
		}
	}
	bgpPeers, err := cl.Cairn.CairnV1alpha1().BGPPeers().List(ctx, metav1.ListOptions{})
	if err != nil {
		return p, fmt.Errorf("list BGPPeers: %w", err)
	}
	for _, bp := range bgpPeers.Items {
		p.BGPPeers[bp.Spec.PeerIP] = view.NamedAS{Name: bp.Name, AS: uint32(bp.Spec.ASNumber)}
	}
	return p, nil
}
