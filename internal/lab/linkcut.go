package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cairnv1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
)

// CutLink sets down the top-of-rack router's end of a node's link, as a
// failed cable or switch port would: the node and its agent keep
// running, and nothing is sent or closed, so only BFD or the hold timer
// can tell. restore sets the link up again. Down removes the namespaces
// whether or not the link was restored.
func (l *Lab) CutLink(ctx context.Context, node string) (restore func(context.Context) error, err error) {
	n, ok := l.st.Plan.Node(node)
	if !ok {
		return nil, fmt.Errorf("cut link: no node %q in the lab", node)
	}
	rack, ok := l.st.Plan.Rack(n.Rack)
	if !ok {
		return nil, fmt.Errorf("cut link: node %s is in no rack of the lab (%q)", node, n.Rack)
	}
	set := func(ctx context.Context, state string) error {
		if _, err := ip(ctx, rack.ToR.NS, "link", "set", n.Name, state); err != nil {
			return fmt.Errorf("set %s's link to %s %s: %w", rack.ToR.Name, n.Name, state, err)
		}
		return nil
	}
	if err := set(ctx, "down"); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error { return set(ctx, "up") }, nil
}

// WaitSettled waits until the lab converged and, when its sessions run
// BFD (bfd: a lab planned with BFD may have had it turned off by
// SetBFDAndHold), until the routers' BFD sessions are up and the lab
// converged again after that (WaitBFDUp says why): only then does a
// route leave because of what the caller does next and not because of a
// session reset still on its way. Each of the three waits gets timeout.
func (l *Lab) WaitSettled(ctx context.Context, timeout time.Duration, bfd bool) error {
	if err := l.WaitConverged(ctx, timeout); err != nil {
		return err
	}
	if !bfd {
		return nil
	}
	start := time.Now()
	if err := l.WaitBFDUp(ctx, timeout); err != nil {
		return err
	}
	if err := l.WaitConverged(ctx, timeout); err != nil {
		return fmt.Errorf("after BFD came up: %w", err)
	}
	l.logf("BFD up at the routers and converged again after %v", time.Since(start).Round(time.Millisecond))
	return nil
}

// SetBFDAndHold sets the BFD and the hold time of the node mesh (the
// default BGPConfiguration) and of every BGPPeer, as an operator would
// (nil: the default), and waits until the agents applied it: with BFD
// off, every router's BFD sessions are down (the nodes stopped
// answering), and the BGP sessions, which the change resets, are
// up again. Start from a settled lab (WaitSettled): BFD sessions still
// down from an earlier event would pass for BFD turned off.
func (l *Lab) SetBFDAndHold(ctx context.Context, bfd *cairnv1.BFD, hold *metav1.Duration, timeout time.Duration) error {
	cc, err := l.CairnClient()
	if err != nil {
		return err
	}
	conf, err := cc.CairnV1alpha1().BGPConfigurations().Get(ctx, "default", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read BGPConfiguration default: %w", err)
	}
	conf.Spec.NodeMeshBFD, conf.Spec.NodeMeshHoldTime = bfd, hold
	if _, err := cc.CairnV1alpha1().BGPConfigurations().Update(ctx, conf, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update BGPConfiguration default: %w", err)
	}
	peers, err := cc.CairnV1alpha1().BGPPeers().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list BGPPeers: %w", err)
	}
	for _, p := range peers.Items {
		p.Spec.BFD, p.Spec.HoldTime = bfd, hold
		if _, err := cc.CairnV1alpha1().BGPPeers().Update(ctx, &p, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update BGPPeer %s: %w", p.Name, err)
		}
	}
	if bfd == nil || !bfd.Enabled {
		if err := l.waitBFDDown(ctx, timeout); err != nil {
			return err
		}
	}
	if err := l.WaitConverged(ctx, timeout); err != nil {
		return fmt.Errorf("after the BGP settings changed: %w", err)
	}
	return nil
}

// waitBFDDown waits until no router has a BFD session up.
func (l *Lab) waitBFDDown(ctx context.Context, timeout time.Duration) error {
	return until(ctx, timeout, 200*time.Millisecond, "the routers' BFD sessions with the nodes to go down", func(ctx context.Context) (bool, error) {
		for _, r := range l.st.Plan.Routers() {
			sessions, err := l.drv.bfdSessions(ctx, r, routerDir(l.st.Dir, r.Name))
			if err != nil {
				return false, err
			}
			for _, s := range sessions {
				if s.Up() {
					return false, fmt.Errorf("BFD %s -> %s is still up", r.Name, s.Peer)
				}
			}
		}
		return true, nil
	})
}

// NodeBlocks lists the address blocks affine to each node, from the
// IPAMBlocks.
func (l *Lab) NodeBlocks(ctx context.Context) (map[string][]netip.Prefix, error) {
	cc, err := l.CairnClient()
	if err != nil {
		return nil, err
	}
	list, err := cc.CairnV1alpha1().IPAMBlocks().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list IPAMBlocks: %w", err)
	}
	out := map[string][]netip.Prefix{}
	for _, b := range list.Items {
		node, ok := strings.CutPrefix(b.Spec.Affinity, "node:")
		if !ok {
			continue
		}
		p, err := netip.ParsePrefix(b.Spec.CIDR)
		if err != nil {
			return nil, fmt.Errorf("IPAMBlock %s has CIDR %q: %w", b.Name, b.Spec.CIDR, err)
		}
		out[node] = append(out[node], p)
	}
	return out, nil
}

// Routed reports whether the kernel of namespace netns has a route for
// exactly p.
func Routed(ctx context.Context, netns string, p netip.Prefix) (bool, error) {
	out, err := ip(ctx, netns, "route", "show", "exact", p.String())
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(out)) != "", nil
}
