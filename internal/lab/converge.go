package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
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
// every node and router, against the plan: one `ip -batch` of `route get`
// per namespace, and an error that lists what is wrong everywhere, not
// only the first thing found (a 20-node lab has 400 such routes).
func (l *Lab) podsRouted(ctx context.Context) error {
	p := l.st.Plan
	var wrong []string
	checked := 0
	add := func(w []string, c int, err error) error {
		wrong, checked = append(wrong, w...), checked+c
		return err
	}
	for _, n := range p.Nodes() {
		err := add(l.routesWrongIn(ctx, n.NS, func(pa podAddr, owner Node, r Route, ok bool) string {
			return checkNodeRoute(p, n, owner, pa, r, ok)
		}))
		if err != nil {
			return err
		}
	}
	for _, r := range p.Routers() {
		err := add(l.routesWrongIn(ctx, r.NS, func(pa podAddr, owner Node, rt Route, ok bool) string {
			return l.checkRouterRoute(r, owner, pa, rt, ok)
		}))
		if err != nil {
			return err
		}
	}
	return routesWrong(wrong, checked)
}

// maxListed bounds how many wrong routes an error names.
const maxListed = 8

// routesWrong sums up the wrong routes: how many of how many, and the
// first few.
func routesWrong(wrong []string, checked int) error {
	if len(wrong) == 0 {
		return nil
	}
	listed := wrong[:min(len(wrong), maxListed)]
	more := ""
	if len(wrong) > len(listed) {
		more = fmt.Sprintf("; and %d more", len(wrong)-len(listed))
	}
	return fmt.Errorf("%d of %d pod routes not as planned: %s%s", len(wrong), checked, strings.Join(listed, "; "), more)
}

// podAddr is one address of one pod.
type podAddr struct {
	pod  Pod
	addr netip.Addr
}

func (l *Lab) podAddrs() []podAddr {
	var out []podAddr
	for _, pod := range l.st.Pods {
		for _, a := range pod.Addrs() {
			out = append(out, podAddr{pod: pod, addr: a})
		}
	}
	return out
}

// routesWrongIn asks namespace netns for its route to every pod and
// returns what judge finds wrong (judge says "" for a right route; ok is
// false when there is no route at all).
func (l *Lab) routesWrongIn(ctx context.Context, netns string, judge func(pa podAddr, owner Node, r Route, ok bool) string) (wrong []string, checked int, err error) {
	pas := l.podAddrs()
	got, err := routesGet(ctx, netns, addrsOf(pas))
	if err != nil {
		return nil, 0, err
	}
	for _, pa := range pas {
		owner, _ := l.st.Plan.Node(pa.pod.Node)
		r, ok := got[pa.addr]
		if why := judge(pa, owner, r, ok); why != "" {
			wrong = append(wrong, why)
		}
	}
	return wrong, len(pas), nil
}

// checkNodeRoute judges node n's route to a pod: its own pods straight to
// their veth, the others via the plan's next hop.
func checkNodeRoute(p Plan, n, owner Node, pa podAddr, r Route, ok bool) string {
	if !ok {
		return fmt.Sprintf("%s has no route to pod %s (%s)", n.Name, pa.pod.Name, pa.addr)
	}
	if n.Name == owner.Name {
		if r.Gateway.IsValid() || !strings.HasPrefix(r.Dev, "crn") {
			return fmt.Sprintf("%s routes its pod %s (%s) %s, want straight to a crn* veth", n.Name, pa.pod.Name, pa.addr, r)
		}
		return ""
	}
	if want := p.NextHopFor(n, owner, pa.addr); r.Gateway != want {
		return fmt.Sprintf("%s routes pod %s (%s) %s, want via %s", n.Name, pa.pod.Name, pa.addr, r, want)
	}
	return ""
}

// checkRouterRoute judges router r's route to a pod.
func (l *Lab) checkRouterRoute(r RouterPlan, owner Node, pa podAddr, rt Route, ok bool) string {
	want := l.routerNextHop(r, owner, pa.addr)
	switch {
	case !ok:
		return fmt.Sprintf("%s has no route to pod %s (%s), want via %s", r.Name, pa.pod.Name, pa.addr, want)
	case rt.Gateway != want:
		return fmt.Sprintf("%s routes pod %s (%s) via %v, want via %s", r.Name, pa.pod.Name, pa.addr, rt.Gateway, want)
	}
	return ""
}

func addrsOf(pas []podAddr) []netip.Addr {
	out := make([]netip.Addr, len(pas))
	for i, pa := range pas {
		out[i] = pa.addr
	}
	return out
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

// routesGet asks the kernel of namespace netns how it forwards to each of
// dsts, in one `ip -batch` (one process, not one per address). A
// destination the kernel has no route to is missing from the map.
func routesGet(ctx context.Context, netns string, dsts []netip.Addr) (map[netip.Addr]Route, error) {
	out := make(map[netip.Addr]Route, len(dsts))
	if len(dsts) == 0 {
		return out, nil
	}
	var in strings.Builder
	for _, d := range dsts {
		fmt.Fprintf(&in, "route get %s\n", d)
	}
	// -force: an unreachable destination fails its line and the rest go on.
	cmd := exec.CommandContext(ctx, "ip", "-n", netns, "-force", "-j", "-batch", "-")
	cmd.Stdin = strings.NewReader(in.String())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	dec := json.NewDecoder(&stdout)
	for {
		var routes []Route
		if err := dec.Decode(&routes); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decode routes in %s: %w", netns, err)
		}
		for _, r := range routes {
			if a, err := netip.ParseAddr(r.Dst); err == nil {
				out[a] = r
			}
		}
	}
	// ip exits 1 when a line failed (no route to it, said on stderr);
	// anything else (255: no such namespace) is a failure to ask.
	var exit *exec.ExitError
	if runErr != nil && (!errors.As(runErr, &exit) || exit.ExitCode() != 1 || ctx.Err() != nil) {
		return nil, fmt.Errorf("ip -n %s route get (batch of %d): %w: %s", netns, len(dsts), runErr, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
