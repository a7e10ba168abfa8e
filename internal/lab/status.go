package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Status is a snapshot of the lab.
type Status struct {
	Router       string         `json:"router"`
	ControlPlane string         `json:"controlPlane"`
	APIServer    string         `json:"apiServer"`
	Nodes        []NodeStatus   `json:"nodes"`
	Routers      []RouterStatus `json:"routers"`
	Outside      []HostStatus   `json:"outside,omitempty"`
	Pods         []Pod          `json:"pods"`
}

// HostStatus is a host outside the cluster and its kernel routes.
type HostStatus struct {
	Host   Host          `json:"host"`
	Routes []KernelRoute `json:"routes"`
	Err    string        `json:"error,omitempty"`
}

// NodeStatus is one node: its agent, the BGP sessions its agent reports
// (CairnNodeStatus, when the agent writes one) and its kernel routes.
type NodeStatus struct {
	Node      Node          `json:"node"`
	Agent     string        `json:"agent"`
	KubeProxy string        `json:"kubeProxy"`
	Sessions  []Session     `json:"sessions,omitempty"`
	Routes    []KernelRoute `json:"routes"`
	Err       string        `json:"error,omitempty"`
}

// RouterStatus is one router's sessions and BGP table.
type RouterStatus struct {
	Router   RouterPlan    `json:"router"`
	Sessions []Session     `json:"sessions"`
	Routes   []RouterRoute `json:"routes"`
	Err      string        `json:"error,omitempty"`
}

// KernelRoute is a route of `ip -j route show`.
type KernelRoute struct {
	Type     string `json:"type"`
	Dst      string `json:"dst"`
	Gateway  string `json:"gateway"`
	Dev      string `json:"dev"`
	Protocol string `json:"protocol"`
	Scope    string `json:"scope"`
	// Nexthops are the paths of a multipath (ECMP) route, which has no
	// Gateway of its own.
	Nexthops []KernelNexthop `json:"nexthops,omitempty"`
}

// KernelNexthop is one path of a multipath route.
type KernelNexthop struct {
	Gateway string `json:"gateway"`
	Dev     string `json:"dev"`
}

// Gateways lists the route's next hops: its Gateway, or those of its
// paths.
func (r KernelRoute) Gateways() []string {
	if r.Gateway != "" {
		return []string{r.Gateway}
	}
	var out []string
	for _, nh := range r.Nexthops {
		out = append(out, nh.Gateway)
	}
	return out
}

func (r KernelRoute) String() string {
	var b strings.Builder
	if r.Type != "" && r.Type != "unicast" {
		b.WriteString(r.Type + " ")
	}
	b.WriteString(r.Dst)
	if r.Gateway != "" {
		b.WriteString(" via " + r.Gateway)
	}
	if r.Dev != "" {
		b.WriteString(" dev " + r.Dev)
	}
	for _, nh := range r.Nexthops {
		b.WriteString(" nexthop via " + nh.Gateway + " dev " + nh.Dev)
	}
	if r.Protocol != "" {
		b.WriteString(" proto " + r.Protocol)
	}
	if r.Scope != "" && r.Scope != "global" {
		b.WriteString(" scope " + r.Scope)
	}
	return b.String()
}

// KernelRoutes lists the IPv4 routes of a namespace's main table.
func KernelRoutes(ctx context.Context, netns string) ([]KernelRoute, error) {
	return kernelRoutes(ctx, netns, "-4")
}

// KernelRoutes6 lists the IPv6 routes of a namespace's main table.
func KernelRoutes6(ctx context.Context, netns string) ([]KernelRoute, error) {
	return kernelRoutes(ctx, netns, "-6")
}

func kernelRoutes(ctx context.Context, netns, family string) ([]KernelRoute, error) {
	out, err := ip(ctx, netns, "-j", family, "route", "show")
	if err != nil {
		return nil, fmt.Errorf("routes of %s: %w", netns, err)
	}
	var routes []KernelRoute
	if err := json.Unmarshal(out, &routes); err != nil {
		return nil, fmt.Errorf("decode routes of %s: %w", netns, err)
	}
	return routes, nil
}

// Status gathers the lab's state from the kernels, routers and API server.
// Parts that cannot be read carry their error instead of failing it all.
func (l *Lab) Status(ctx context.Context) (*Status, error) {
	s := &Status{Router: l.st.Plan.Router, ControlPlane: l.st.Plan.ControlPlane.NS, Pods: l.Pods()}
	if l.st.ControlPlane != nil {
		s.APIServer = l.st.ControlPlane.URL
	}
	nodeSessions, err := l.agentSessions(ctx)
	if err != nil {
		nodeSessions = nil // shown as no sessions; the routers' view still shows
	}
	agentPods := map[string]*corev1.Pod{}
	if l.st.DaemonSet {
		if agentPods, err = l.agentPods(ctx); err != nil {
			agentPods = nil // shown as no pod
		}
	}
	for _, n := range l.st.Plan.Nodes() {
		agent := l.agentState(n)
		if l.st.DaemonSet {
			agent = agentPodState(agentPods, n)
		}
		ns := NodeStatus{Node: n, Agent: agent, KubeProxy: l.kubeProxyState(n), Sessions: nodeSessions[n.Name]}
		routes, err := KernelRoutes(ctx, n.NS)
		if err == nil && n.Addr6.IsValid() {
			var routes6 []KernelRoute
			routes6, err = KernelRoutes6(ctx, n.NS)
			routes = append(routes, routes6...)
		}
		if err != nil {
			ns.Err = err.Error()
		}
		ns.Routes = routes
		s.Nodes = append(s.Nodes, ns)
	}
	for _, r := range l.st.Plan.Routers() {
		rs := RouterStatus{Router: r}
		dir := routerDir(l.st.Dir, r.Name)
		var err error
		if rs.Sessions, err = l.drv.sessions(ctx, r, dir); err != nil {
			rs.Err = err.Error()
		} else if rs.Routes, err = l.drv.routes(ctx, r, dir); err != nil {
			rs.Err = err.Error()
		}
		s.Routers = append(s.Routers, rs)
	}
	for _, h := range l.st.Plan.Outside {
		hs := HostStatus{Host: h}
		routes, err := KernelRoutes(ctx, h.NS)
		if err != nil {
			hs.Err = err.Error()
		}
		hs.Routes = routes
		s.Outside = append(s.Outside, hs)
	}
	return s, nil
}

func (l *Lab) agentState(n Node) string {
	for _, p := range l.st.Procs {
		if p.Name == binNode+"-"+n.Name {
			if p.Alive() {
				return fmt.Sprintf("running (pid %d)", p.PID)
			}
			return "exited (log " + p.Log + ")"
		}
	}
	return "not started"
}

// agentSessions reads the sessions each agent reports in its
// CairnNodeStatus, by node name.
func (l *Lab) agentSessions(ctx context.Context) (map[string][]Session, error) {
	c, err := l.clients()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	list, err := c.cairn.CairnV1alpha1().CairnNodeStatuses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list CairnNodeStatus: %w", err)
	}
	out := map[string][]Session{}
	for _, cns := range list.Items {
		for _, p := range cns.Status.BGP.Peers {
			addr, _ := netip.ParseAddr(p.PeerIP)
			out[cns.Spec.Node] = append(out[cns.Spec.Node], Session{Peer: l.st.Plan.Name(addr), Addr: addr, State: p.State, Info: p.Type})
		}
	}
	return out, nil
}

// peerAS is the AS of a lab address, for display.
func peerAS(s *Status, addr netip.Addr) int64 {
	for _, n := range s.Nodes {
		if n.Node.Addr == addr || n.Node.Addr6 == addr {
			return n.Node.AS
		}
	}
	for _, r := range s.Routers {
		if r.Router.RouterID == addr || r.Router.Addr6() == addr {
			return r.Router.AS
		}
	}
	return 0
}

// Print writes the status for people.
func (s *Status) Print(w io.Writer) {
	fmt.Fprintf(w, "Control plane: %s in %s\n", s.APIServer, s.ControlPlane)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\nNODE\tRACK\tNETNS\tADDRESS\tAS\tAGENT\tKUBE-PROXY\n")
	for _, n := range s.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", n.Node.Name, n.Node.Rack, n.Node.NS, n.Node.Addr, n.Node.AS, n.Agent, n.KubeProxy)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nBGP SESSIONS (%s)\n", s.Router)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ROUTER\tPEER\tADDRESS\tAS\tSTATE\tINFO\n")
	for _, r := range s.Routers {
		if r.Err != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\terror\t%s\n", r.Router.Name, r.Err)
		}
		for _, sess := range r.Sessions {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", r.Router.Name, sess.Peer, sess.Addr, sess.AS, sess.State, sess.Info)
		}
	}
	for _, n := range s.Nodes {
		for _, sess := range n.Sessions {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s, as the agent reports it\n", n.Node.Name, sess.Peer, sess.Addr, peerAS(s, sess.Addr), sess.State, sess.Info)
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "\nROUTER ROUTES (BGP table)\n")
	for _, r := range s.Routers {
		routes := append([]RouterRoute(nil), r.Routes...)
		sortRoutes(routes)
		for _, rt := range routes {
			best := " "
			if rt.Best {
				best = "*"
			}
			from := rt.From
			if from == "" {
				from = "local"
			}
			fmt.Fprintf(w, "  %-6s %s %-18s via %-13s from %s\n", r.Router.Name, best, rt.Prefix, rt.NextHop, from)
		}
	}
	pools := []netip.Prefix{netip.MustParsePrefix(PoolCIDR)}
	if len(s.Nodes) > 0 && s.Nodes[0].Node.Addr6.IsValid() {
		pools = append(pools, netip.MustParsePrefix(PoolCIDR6))
	}
	fmt.Fprintf(w, "\nNODE ROUTES (kernel, pool %s)\n", pools)
	for _, n := range s.Nodes {
		for _, rt := range n.Routes {
			if inAny(pools, rt.Dst) {
				fmt.Fprintf(w, "  %-6s %s\n", n.Node.Name, rt)
			}
		}
		if n.Err != "" {
			fmt.Fprintf(w, "  %-6s error: %s\n", n.Node.Name, n.Err)
		}
	}
	if len(s.Outside) > 0 {
		fmt.Fprintf(w, "\nOUTSIDE HOSTS (clients of the data-centre network, not nodes)\n")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "NAME\tNETNS\tADDRESS\tBEHIND\tROUTES\n")
		for _, h := range s.Outside {
			routes := make([]string, 0, len(h.Routes))
			for _, rt := range h.Routes {
				if len(rt.Gateways()) > 0 {
					routes = append(routes, rt.Dst)
				}
			}
			if h.Err != "" {
				routes = append(routes, "error: "+h.Err)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s (%s)\t%s via %s\n", h.Host.Name, h.Host.NS, h.Host.Addr, h.Host.Router, h.Host.Gateway,
				strings.Join(routes, " "), h.Host.Gateway)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\nPODS\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "NAME\tNODE\tIP\tNETNS\n")
	pods := append([]Pod(nil), s.Pods...)
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	for _, p := range pods {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, p.Node, p.IP, p.NetnsPath)
	}
	tw.Flush()
}

// inAny reports whether a route destination (a prefix, or an address for
// a host route) lies in one of pools.
func inAny(pools []netip.Prefix, dst string) bool {
	for _, pool := range pools {
		if p, err := netip.ParsePrefix(dst); err == nil && pool.Overlaps(p) {
			return true
		}
		if a, err := netip.ParseAddr(dst); err == nil && pool.Contains(a) {
			return true
		}
	}
	return false
}
