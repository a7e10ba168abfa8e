package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// waitAPIReachable waits until every node's namespace can open a TCP
// connection to the API server. Within a rack that is immediate; from
// other racks it needs the routers' sessions to carry rack 1's networks.
func (l *Lab) waitAPIReachable(ctx context.Context) error {
	addr := apiServerAddr(l.st.Plan)
	for _, n := range l.st.Plan.Nodes() {
		dial := dialInNS(n.NS)
		err := until(ctx, 60*time.Second, 100*time.Millisecond, n.Name+" to reach the API server at "+addr, func(ctx context.Context) (bool, error) {
			dctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			c, err := dial(dctx, "tcp", addr)
			if err != nil {
				return false, err
			}
			c.Close()
			return true, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// waitAgentReady waits until cairn-node on n answers the plugin's STATUS,
// which is how a CNI 1.1 runtime learns the plugin can serve ADD.
func (l *Lab) waitAgentReady(ctx context.Context, n Node) error {
	return until(ctx, 60*time.Second, 100*time.Millisecond, "cairn-node on "+n.Name+" to be ready", func(ctx context.Context) (bool, error) {
		for _, p := range l.st.Procs {
			if p.NS == n.NS && p.Name == binNode+"-"+n.Name && !p.Alive() {
				return false, stopWaiting(fmt.Errorf("cairn-node on %s exited; log tail:\n%s", n.Name, tail(p.Log, 30)))
			}
		}
		if _, err := runCNI(ctx, l.st.Dir, n, cniCall{Command: "STATUS"}); err != nil {
			return false, err
		}
		return true, nil
	})
}

// WaitConverged waits until every router session is Established and every
// host forwards to every pod as the topology says it should. Its error
// ends with the nodes' routing (RoutingReport), which says why a node
// does not route to a pod.
func (l *Lab) WaitConverged(ctx context.Context, timeout time.Duration) error {
	if err := l.waitConverged(ctx, timeout); err != nil {
		return fmt.Errorf("%w\n%s", err, l.RoutingReport(ctx))
	}
	return nil
}

func (l *Lab) waitConverged(ctx context.Context, timeout time.Duration) error {
	return until(ctx, timeout, 200*time.Millisecond, "the lab to converge", func(ctx context.Context) (bool, error) {
		if err := l.sessionsUp(ctx); err != nil {
			return false, err
		}
		if err := l.agentSessionsUp(ctx); err != nil {
			return false, err
		}
		if err := l.podsRouted(ctx); err != nil {
			return false, err
		}
		return true, nil
	})
}

func (l *Lab) sessionsUp(ctx context.Context) error {
	for _, r := range l.st.Plan.Routers() {
		sessions, err := l.drv.sessions(ctx, r, routerDir(l.st.Dir, r.Name))
		if err != nil {
			return err
		}
		up := map[netip.Addr]bool{}
		for _, s := range sessions {
			up[s.Addr] = s.Established()
		}
		for _, p := range r.Peers {
			if !up[p.Addr] {
				return fmt.Errorf("session %s -> %s (%s) is not Established", r.Name, p.Name, p.Addr)
			}
		}
	}
	return nil
}

// agentSessionsUp checks the sessions each agent reports in its
// CairnNodeStatus: the node mesh is only visible there.
func (l *Lab) agentSessionsUp(ctx context.Context) error {
	reported, err := l.agentSessions(ctx)
	if err != nil {
		return err
	}
	for _, n := range l.st.Plan.Nodes() {
		state := map[netip.Addr]string{}
		for _, s := range reported[n.Name] {
			state[s.Addr] = s.State
		}
		for _, peer := range l.st.Plan.NodePeers(n) {
			if state[peer] != "Established" {
				return fmt.Errorf("%s reports its session to %s (%s) as %q, want Established", n.Name, l.st.Plan.Name(peer), peer, state[peer])
			}
		}
	}
	return nil
}

// podsRouted checks the kernel's forwarding decision for every pod on
// every node and router (`ip route get`), against the plan.
func (l *Lab) podsRouted(ctx context.Context) error {
	p := l.st.Plan
	for _, pod := range l.st.Pods {
		owner, _ := p.Node(pod.Node)
		for _, addr := range pod.Addrs() {
			for _, n := range p.Nodes() {
				if err := l.checkNodeRoute(ctx, n, owner, pod, addr); err != nil {
					return err
				}
			}
			for _, r := range p.Routers() {
				want := l.routerNextHop(r, owner, addr)
				got, err := RouteGet(ctx, r.NS, addr)
				if err != nil {
					return err
				}
				if got.Gateway != want {
					return fmt.Errorf("%s routes pod %s (%s) via %v, want via %s", r.Name, pod.Name, addr, got.Gateway, want)
				}
			}
		}
	}
	return nil
}

func (l *Lab) checkNodeRoute(ctx context.Context, n, owner Node, pod Pod, addr netip.Addr) error {
	got, err := RouteGet(ctx, n.NS, addr)
	if err != nil {
		return err
	}
	if n.Name == owner.Name {
		if got.Gateway.IsValid() || !strings.HasPrefix(got.Dev, "crn") {
			return fmt.Errorf("%s routes its pod %s (%s) %s, want straight to a crn* veth", n.Name, pod.Name, addr, got)
		}
		return nil
	}
	if want := l.st.Plan.NextHopFor(n, owner, addr); got.Gateway != want {
		return fmt.Errorf("%s routes pod %s (%s) %s, want via %s", n.Name, pod.Name, addr, got, want)
	}
	return nil
}

// routerNextHop is where router r should send traffic for a pod address
// dst of owner: the router peer of dst's family.
func (l *Lab) routerNextHop(r RouterPlan, owner Node, dst netip.Addr) netip.Addr {
	for _, peer := range r.Peers {
		if peer.Kind == PeerNode && peer.Name == owner.Name {
			return owner.AddrOfFamily(dst)
		}
	}
	// Not our node: a ToR goes up to the spine, the spine down to the
	// owner's ToR.
	for _, peer := range r.Peers {
		if peer.Kind != PeerRouter || peer.Addr.Is4() != dst.Is4() {
			continue
		}
		if peer.Name == "spine" {
			return peer.Addr
		}
		if rack, ok := l.st.Plan.Rack(owner.Rack); ok && rack.ToR.Name == peer.Name {
			return peer.Addr
		}
	}
	return netip.Addr{}
}

// Route is the kernel's answer to `ip route get`.
type Route struct {
	Dst     string     `json:"dst"`
	Gateway netip.Addr `json:"gateway"`
	Dev     string     `json:"dev"`
	PrefSrc string     `json:"prefsrc"`
}

func (r Route) String() string {
	s := "dev " + r.Dev
	if r.Gateway.IsValid() {
		s = "via " + r.Gateway.String() + " " + s
	}
	return s
}

// RouteGet asks the kernel of namespace netns how it forwards to dst.
func RouteGet(ctx context.Context, netns string, dst netip.Addr) (Route, error) {
	out, err := ip(ctx, netns, "-j", "route", "get", dst.String())
	if err != nil {
		return Route{}, fmt.Errorf("route to %s in %s: %w", dst, netns, err)
	}
	var routes []Route
	if err := json.Unmarshal(out, &routes); err != nil || len(routes) == 0 {
		return Route{}, fmt.Errorf("decode route to %s in %s: %q: %v", dst, netns, out, err)
	}
	return routes[0], nil
}
