package lab

import (
	"context"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RouterPasswordSecret holds, under RouterPasswordKey in AgentNamespace,
// the TCP-MD5 key of the sessions between nodes and their top-of-rack
// routers when the lab has one (Options.RouterPassword).
const (
	RouterPasswordSecret = "lab-bgp"
	RouterPasswordKey    = "tor"
)

// setNodePasswords puts pw on every ToR's sessions to its nodes.
func (p *Plan) setNodePasswords(pw string) {
	for i := range p.Racks {
		for j := range p.Racks[i].ToR.Peers {
			if p.Racks[i].ToR.Peers[j].Kind == PeerNode {
				p.Racks[i].ToR.Peers[j].Password = pw
			}
		}
	}
}

// routerPasswordSet reports whether the ToRs' node sessions use MD5.
func (p Plan) routerPasswordSet() bool {
	for _, r := range p.Racks {
		for _, peer := range r.ToR.Peers {
			if peer.Kind == PeerNode && peer.Password != "" {
				return true
			}
		}
	}
	return false
}

// createRouterPasswordSecret writes the Secret the BGPPeers' passwords
// refer to.
func createRouterPasswordSecret(ctx context.Context, c *clients, pw string) error {
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: RouterPasswordSecret, Namespace: AgentNamespace, Labels: map[string]string{LabLabel: "true"}},
		StringData: map[string]string{RouterPasswordKey: pw}}
	_, err := c.kube.CoreV1().Secrets(AgentNamespace).Create(ctx, sec, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		_, err = c.kube.CoreV1().Secrets(AgentNamespace).Update(ctx, sec, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("write Secret %s/%s: %w", AgentNamespace, RouterPasswordSecret, err)
	}
	return nil
}

// SetRouterPassword changes the TCP-MD5 key of the node sessions of the
// routers named (every ToR when none is), as an operator would on a live
// fabric: the routers first (a BIRD reconfiguration restarts only the
// sessions whose settings changed), then the Secret the BGPPeers read,
// which the agents apply while running. The sessions come back once both
// sides agree.
func (l *Lab) SetRouterPassword(ctx context.Context, pw string, routers ...string) error {
	if pw == "" {
		return errors.New("set router password: empty password")
	}
	return l.mutate(func() error { return l.setRouterPassword(ctx, pw, routers) })
}

func (l *Lab) setRouterPassword(ctx context.Context, pw string, routers []string) error {
	for i := range l.st.Plan.Racks {
		tor := &l.st.Plan.Racks[i].ToR
		if len(routers) > 0 && !slices.Contains(routers, tor.Name) {
			continue
		}
		for j := range tor.Peers {
			if tor.Peers[j].Kind == PeerNode {
				tor.Peers[j].Password = pw
			}
		}
		if err := l.reloadRouter(ctx, *tor); err != nil {
			return err
		}
	}
	if err := l.st.save(); err != nil {
		return err
	}
	c, err := l.clients()
	if err != nil {
		return err
	}
	return createRouterPasswordSecret(ctx, c, pw)
}

// SetNodeAS changes a node's AS number as an operator would: its ToR's
// session to it first, then the node's cairn.dev/as-number annotation,
// which its agent applies while running (its BGP server restarts; every
// other session stays as it is).
func (l *Lab) SetNodeAS(ctx context.Context, node string, as int64) error {
	return l.mutate(func() error { return l.setNodeAS(ctx, node, as) })
}

func (l *Lab) setNodeAS(ctx context.Context, node string, as int64) error {
	n, ok := l.st.Plan.Node(node)
	if !ok {
		return fmt.Errorf("set AS of %s: no such node", node)
	}
	for i := range l.st.Plan.Racks {
		r := &l.st.Plan.Racks[i]
		for j := range r.Nodes {
			if r.Nodes[j].Name == node {
				r.Nodes[j].AS, r.Nodes[j].ASAnnotation = as, true
			}
		}
		for j := range r.ToR.Peers {
			if r.ToR.Peers[j].Kind == PeerNode && r.ToR.Peers[j].Name == node {
				r.ToR.Peers[j].AS = as
				if err := l.reloadRouter(ctx, r.ToR); err != nil {
					return err
				}
			}
		}
	}
	if err := l.st.save(); err != nil {
		return err
	}
	c, err := l.clients()
	if err != nil {
		return err
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, ASAnnotation, fmt.Sprint(as))
	if _, err := c.kube.CoreV1().Nodes().Patch(ctx, n.Name, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("annotate Node %s with AS %d: %w", n.Name, as, err)
	}
	return nil
}

// reloadRouter rewrites a router's configuration from the plan and has the
// daemon apply it without a restart. Only BIRD can here (`birdc
// configure` restarts only the sessions whose settings changed).
func (l *Lab) reloadRouter(ctx context.Context, rp RouterPlan) error {
	d, ok := l.drv.(birdDriver)
	if !ok {
		return fmt.Errorf("reconfigure %s: only BIRD routers can be reconfigured in a running lab", rp.Name)
	}
	dir := routerDir(l.st.Dir, rp.Name)
	if _, err := d.configure(rp, dir); err != nil {
		return fmt.Errorf("reconfigure %s: %w", rp.Name, err)
	}
	out, err := run(ctx, append(d.cli(rp, dir), "configure")...)
	if err != nil {
		return fmt.Errorf("reconfigure %s: birdc configure: %w: %s", rp.Name, err, out)
	}
	return nil
}
