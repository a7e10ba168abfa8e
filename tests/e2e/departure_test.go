package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/internal/lab"
	"github.com/cairn-net/cairn/ipam"
)

// departBound is how long a node removed from the cluster (Node deleted,
// then its agent stopped with SIGTERM) may leave a route anywhere: its
// sessions close with a Cease, so the ToR, the reflectors and through them
// every other node withdraw at once. Well under a second of work on an
// idle machine; the rest is slack for 20 agents and a busy machine (the
// stopped agent's own exit, each poll of every namespace and router).
// Graceful restart would keep the routes at the ToR for its 120 s restart
// time: the bound tells the two apart.
const departBound = 30 * time.Second

// nodePrefixes are a node's blocks and its pods' host prefixes.
func nodePrefixes(t *testing.T, l *lab.Lab, node string) []netip.Prefix {
	t.Helper()
	out := slices.Clone(nodeBlocks(t, l)[node])
	for _, p := range l.Pods() {
		if p.Node == node {
			out = append(out, netip.PrefixFrom(p.IP, p.IP.BitLen()))
		}
	}
	return out
}

// checkRestartKeepsRoutes restarts a node's agent with SIGTERM (a rollout:
// its Node stays) while `ip monitor route` watches its ToR, the rack's
// reflectors and another node of the rack: graceful restart keeps its
// routes everywhere, so not one route for its blocks or pods changes.
func checkRestartKeepsRoutes(t *testing.T, l *lab.Lab, n lab.Node, watchers []host) {
	ctx := context.Background()
	prefixes := nodePrefixes(t, l, n.Name)
	if len(prefixes) < 2 {
		t.Fatalf("%s should own a block and a pod, has %v", n.Name, prefixes)
	}
	mons := startMonitors(t, watchers, 3)
	begin := time.Now()
	if err := l.RestartAgent(ctx, n.Name, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM cairn-node on %s: %v", n.Name, err)
	}
	if err := l.WaitConverged(ctx, 2*time.Minute); err != nil {
		t.Fatalf("after restarting cairn-node on %s: %v", n.Name, err)
	}
	took := time.Since(begin)
	events := stopMonitors(t, watchers, mons, 3)
	for _, h := range watchers {
		var changed []routeEvent
		for _, e := range events[h.name] {
			if slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return e.dst == p.String() || e.dst == p.Addr().String() }) {
				changed = append(changed, e)
			}
		}
		if len(changed) > 0 {
			t.Errorf("%s: %d changes of %s's routes %v while its agent restarted (graceful restart should keep them):%s",
				h.name, len(changed), n.Name, prefixes, formatEvents(changed))
		}
	}
	t.Logf("SIGTERM and restart of cairn-node on %s, converged after %v: %s's routes %v unchanged at %d hosts; load %s",
		n.Name, took.Round(time.Millisecond), n.Name, prefixes, len(watchers), loadAvg())
}

// checkDeparture removes a node from the cluster as a drain and delete
// does (Node deleted, then its agent stopped with SIGTERM) and requires
// every route for its blocks and pods to leave every other node's kernel
// and every router within departBound. It returns the prefixes that left.
func checkDeparture(t *testing.T, l *lab.Lab, gone lab.Node) []netip.Prefix {
	ctx := context.Background()
	goneRoutes := nodePrefixes(t, l, gone.Name)
	if len(goneRoutes) < 2 {
		t.Fatalf("%s should own a block and a pod, has %v", gone.Name, goneRoutes)
	}
	kube, err := l.KubeClient()
	if err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	if err := kube.CoreV1().Nodes().Delete(ctx, gone.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete Node %s: %v", gone.Name, err)
	}
	stopAgent(t, l, gone.Name)
	stopped := time.Since(removed)
	var left []string
	var polled time.Time
	err = waitUntil(departBound+time.Minute, func() bool {
		polled = time.Now()
		left = routesLeft(t, l, gone, goneRoutes)
		return len(left) == 0
	})
	if err != nil {
		t.Fatalf("%v after %s left the cluster, its routes are still at: %s", time.Since(removed).Round(time.Second), gone.Name, strings.Join(left, "; "))
	}
	// Gone by the start of the poll that found none: each poll reads every
	// namespace and router one after another.
	took := polled.Sub(removed)
	t.Logf("%s's routes %v left every node's kernel and every router %v after its Node was deleted (its agent had stopped %v after the deletion; a poll of every host takes %v); load %s",
		gone.Name, goneRoutes, took.Round(time.Millisecond), stopped.Round(time.Millisecond), time.Since(polled).Round(time.Millisecond), loadAvg())
	if took > departBound {
		t.Errorf("%s's routes took %v to leave, more than %v: a removed node's routes were kept as a restarting peer's", gone.Name, took.Round(time.Millisecond), departBound)
	}
	return goneRoutes
}

// checkReleased waits for the IPAM GC leader to release everything held
// for a deleted node: its addresses, blocks and claims.
func checkReleased(t *testing.T, l *lab.Lab, gone string, grace time.Duration, since time.Time) {
	var held []string
	if err := waitUntil(grace+2*time.Minute, func() bool {
		held = ipamHeldBy(t, l, gone)
		return len(held) == 0
	}); err != nil {
		t.Fatalf("%v after deleting Node %s, IPAM still holds for it: %s", time.Since(since).Round(time.Second), gone, strings.Join(held, "; "))
	}
	t.Logf("%s's address, blocks and claims released %v after its Node was deleted (GC grace %v)", gone, time.Since(since).Round(time.Millisecond), grace)
}

// checkTakeover gives a departed node's block to another node of its rack,
// as its allocator's claim leaves it (a confirmed claim and the block
// affine to it; which free block a claim picks is the allocator's
// business, tested in ipam/allocator), and requires the new owner to
// announce it: the rack's ToR and every other node of the rack (the
// reflectors among them) route it via the new owner, and nothing anywhere
// routes it via the departed node.
func checkTakeover(t *testing.T, l *lab.Lab, block netip.Prefix, gone, owner lab.Node) {
	ctx := context.Background()
	cc, err := l.CairnClient()
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	aff := &v1.BlockAffinity{ObjectMeta: metav1.ObjectMeta{Name: ipam.AffinityName(owner.Name, block)},
		Spec: v1.BlockAffinitySpec{Node: owner.Name, CIDR: block.String(), State: v1.AffinityConfirmed}}
	if _, err := cc.CairnV1alpha1().BlockAffinities().Create(ctx, aff, metav1.CreateOptions{}); err != nil {
		t.Fatalf("claim %s for %s: %v", block, owner.Name, err)
	}
	b := &v1.IPAMBlock{ObjectMeta: metav1.ObjectMeta{Name: ipam.BlockName(block)},
		Spec: v1.IPAMBlockSpec{CIDR: block.String(), Pool: lab.PoolName, Affinity: ipam.AffinityValue(owner.Name), Sequence: time.Now().UnixMicro()}}
	if _, err := cc.CairnV1alpha1().IPAMBlocks().Create(ctx, b, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create block %s for %s: %v", block, owner.Name, err)
	}
	rack, ok := l.Plan().Rack(owner.Rack)
	if !ok {
		t.Fatalf("no rack %s", owner.Rack)
	}
	var wrong []string
	err = waitUntil(2*time.Minute, func() bool {
		wrong = takeoverWrong(t, l, block, gone, owner, rack)
		return len(wrong) == 0
	})
	if err != nil {
		t.Fatalf("%v after %s took %s over: %s", time.Since(begin).Round(time.Second), owner.Name, block, strings.Join(wrong, "; "))
	}
	t.Logf("%s took over %s's block %s: routed via %s at %s and every node of %s after %v; load %s",
		owner.Name, gone.Name, block, owner.Addr, rack.ToR.Name, rack.Name, time.Since(begin).Round(time.Millisecond), loadAvg())
}

// takeoverWrong lists where block is not routed via its new owner: the
// rack's ToR and its other nodes must route it so, and no host via the
// departed node.
func takeoverWrong(t *testing.T, l *lab.Lab, block netip.Prefix, gone, owner lab.Node, rack lab.Rack) []string {
	t.Helper()
	var wrong []string
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	routes, err := l.RouterRoutes(ctx, rack.ToR.Name)
	if err != nil {
		t.Fatalf("routes of %s: %v", rack.ToR.Name, err)
	}
	var hops []string
	for _, r := range routes {
		if r.Prefix == block {
			hops = append(hops, r.NextHop.String())
		}
	}
	// The ToR may hold the block more than once (from the owner, and
	// reflected by the rack's reflectors, its iBGP peers): every copy
	// must lead to the new owner.
	if len(hops) == 0 || slices.ContainsFunc(hops, func(h string) bool { return h != owner.Addr.String() }) {
		wrong = append(wrong, fmt.Sprintf("%s BGP has %s via %v", rack.ToR.Name, block, hops))
	}
	for _, h := range monitoredHosts(l.Plan()) {
		if h.name == gone.Name || h.name == owner.Name {
			continue
		}
		out, err := exec.Command("ip", "netns", "exec", h.ns, "ip", "-o", "route", "show", "exact", block.String()).Output()
		if err != nil {
			t.Fatalf("routes of %s: %v", h.name, err)
		}
		line := strings.Join(strings.Fields(string(out)), " ")
		if strings.Contains(line, "via "+gone.Addr.String()+" ") {
			wrong = append(wrong, h.name+" kernel: "+line)
		}
		if slices.ContainsFunc(rack.Nodes, func(n lab.Node) bool { return n.Name == h.name }) && !strings.Contains(line, "via "+owner.Addr.String()+" ") {
			wrong = append(wrong, fmt.Sprintf("%s kernel: %q, want via %s", h.name, line, owner.Addr))
		}
	}
	return wrong
}
