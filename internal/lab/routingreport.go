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

// RoutingReport says, node by node, how each routes into the pools (its
// kernel's routes there, of both families in a dual-stack lab) and which
// learned routes its agent refused and why (its CairnNodeStatus): the
// state that explains why a node cannot reach another node's pods, for a
// failure message. What cannot be read is reported in its place.
func (l *Lab) RoutingReport(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	pools := l.st.Plan.pools()
	var nodes []nodeRouting
	statuses, serr := l.nodeRouteStatuses(ctx)
	for _, n := range l.st.Plan.Nodes() {
		nr := nodeRouting{Node: n.Name, Status: statuses[n.Name], StatusErr: serr}
		for _, pool := range pools {
			routes, err := kernelRoutes(ctx, n.NS, familyFlag(pool.Addr()))
			if err != nil {
				nr.RoutesErr = err
				break
			}
			nr.Routes = append(nr.Routes, routes...)
		}
		nodes = append(nodes, nr)
	}
	return formatRoutingReport(nodes, pools)
}

// nodeRouting is what RoutingReport shows of one node.
type nodeRouting struct {
	Node      string
	Routes    []KernelRoute
	RoutesErr error
	Status    *cairnv1.NodeRouteStatus
	StatusErr error
}

// formatRoutingReport renders nodes' routes into pools and their refused
// learned routes.
func formatRoutingReport(nodes []nodeRouting, pools []netip.Prefix) string {
	var b strings.Builder
	fmt.Fprintf(&b, "routing into the pools %v, node by node:", pools)
	for _, n := range nodes {
		fmt.Fprintf(&b, "\n  %s kernel routes:", n.Node)
		if n.RoutesErr != nil {
			fmt.Fprintf(&b, " cannot read: %v", n.RoutesErr)
		}
		shown := 0
		for _, r := range n.Routes {
			if inAny(pools, r.Dst) {
				fmt.Fprintf(&b, "\n    %s", r)
				shown++
			}
		}
		if n.RoutesErr == nil && shown == 0 {
			b.WriteString(" none")
		}
		switch {
		case n.StatusErr != nil:
			fmt.Fprintf(&b, "\n  %s refused routes: cannot read its CairnNodeStatus: %v", n.Node, n.StatusErr)
		case n.Status == nil:
			fmt.Fprintf(&b, "\n  %s refused routes: it has written no CairnNodeStatus", n.Node)
		default:
			writeRefused(&b, n.Node, *n.Status)
		}
	}
	return b.String()
}

func writeRefused(b *strings.Builder, node string, st cairnv1.NodeRouteStatus) {
	fmt.Fprintf(b, "\n  %s refused %d of %d learned routes", node, st.RefusedCount, st.LearnedCount)
	listed := 0
	for _, r := range st.Learned {
		if r.State != cairnv1.LearnedRouteRefused {
			continue
		}
		listed++
		fmt.Fprintf(b, "\n    %s via %s: %s", r.Prefix, strings.Join(r.NextHops, ","), r.Reason)
	}
	if int(st.RefusedCount) > listed {
		fmt.Fprintf(b, "\n    (%d more not listed in the status)", int(st.RefusedCount)-listed)
	}
}

// nodeRouteStatuses reads every agent's route status, by node name.
func (l *Lab) nodeRouteStatuses(ctx context.Context) (map[string]*cairnv1.NodeRouteStatus, error) {
	c, err := l.clients()
	if err != nil {
		return nil, err
	}
	list, err := c.cairn.CairnV1alpha1().CairnNodeStatuses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list CairnNodeStatus: %w", err)
	}
	out := map[string]*cairnv1.NodeRouteStatus{}
	for i := range list.Items {
		out[list.Items[i].Spec.Node] = &list.Items[i].Status.Routes
	}
	return out, nil
}

// pools are the lab's pod pools: the IPv4 one, and the IPv6 one in a
// dual-stack lab.
func (p Plan) pools() []netip.Prefix {
	pools := []netip.Prefix{netip.MustParsePrefix(PoolCIDR)}
	if p.DualStack {
		pools = append(pools, netip.MustParsePrefix(PoolCIDR6))
	}
	return pools
}

// familyFlag is ip's option for a's family.
func familyFlag(a netip.Addr) string {
	if a.Is6() {
		return "-6"
	}
	return "-4"
}
