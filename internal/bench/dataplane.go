package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-net/cairn/internal/lab"
)

// Addresses of the VXLAN overlay the dataplane section builds between the
// two nodes, for comparison: outside the lab's ranges, inside the nodes'
// namespaces only.
const (
	vxlanDev  = "benchvx0"
	vxlanNet  = "192.168.240.%d/30"
	vxlanID   = "4242"
	vxlanPort = "4789"
	iperfTime = "3"
	iperfOmit = "1"
	pingCount = "40"
)

// path is one way of getting bytes from node1's side to node2's side.
type path struct {
	name   string
	fromNS string
	to     netip.Addr
}

// runDataplane measures single-stream TCP throughput and round-trip time
// across the ToRs, interleaved per round: pod to pod across nodes, node to
// node over the same routers, and a VXLAN overlay between the same nodes;
// pod to node and node to pod split the pod path's cost by side.
func runDataplane(ctx context.Context, e *Env) ([]Row, error) {
	l, err := e.MainLab(ctx)
	if err != nil {
		return nil, err
	}
	nodes := l.Plan().Nodes()
	if len(nodes) < 2 {
		return nil, fmt.Errorf("the lab has %d nodes, need 2", len(nodes))
	}
	n1, n2 := nodes[0], nodes[1]
	p1, p2, err := podsOn(l, n1.Name, n2.Name)
	if err != nil {
		return nil, err
	}
	_, vx2, undo, err := buildVXLAN(ctx, n1, n2)
	defer undo()
	if err != nil {
		return nil, err
	}
	// iperf3 servers answer one client at a time; the rounds are serial.
	for _, ns := range []string{n2.NS, p2.NS} {
		d, err := startInNS(ns, "iperf3", "-s")
		if err != nil {
			return nil, err
		}
		defer d.stop()
	}
	// Pod to node and node to pod split the pod path's cost between the
	// sending node (the pod's veth, then forwarding) and the receiving one.
	paths := []path{
		{name: "node-to-node", fromNS: n1.NS, to: n2.Addr},
		{name: "pod-to-pod", fromNS: p1.NS, to: p2.IP},
		{name: "VXLAN overlay", fromNS: n1.NS, to: vx2},
		{name: "pod-to-node", fromNS: p1.NS, to: n2.Addr},
		{name: "node-to-pod", fromNS: n1.NS, to: p2.IP},
	}
	if err := waitIperf(ctx, paths); err != nil {
		return nil, err
	}
	tput := map[string][]float64{}
	rtt := map[string][]float64{}
	for round := range e.Rounds {
		e.Logf("dataplane round %d/%d", round+1, e.Rounds)
		// Rotate the order so no path always follows the same one.
		for i := range paths {
			p := paths[(i+round)%len(paths)]
			bps, err := iperf(ctx, p)
			if err != nil {
				return nil, err
			}
			tput[p.name] = append(tput[p.name], bps/1e9)
			ms, err := pingMedian(ctx, p)
			if err != nil {
				return nil, err
			}
			rtt[p.name] = append(rtt[p.name], ms)
		}
	}
	node, pod, vx := tput["node-to-node"], tput["pod-to-pod"], tput["VXLAN overlay"]
	where := fmt.Sprintf("%s → %s through %s", n1.Name, n2.Name, routersBetween(l.Plan(), n1, n2))
	rows := []Row{
		{Name: "throughput, node to node (one TCP stream)", Unit: "Gbit/s", Value: Median(node), Samples: node, Note: where},
		{Name: "throughput, pod to pod", Unit: "Gbit/s", Value: Median(pod), Samples: pod, Note: where},
		{Name: "throughput, VXLAN overlay node to node", Unit: "Gbit/s", Value: Median(vx), Samples: vx, Note: "ip link vxlan, same nodes and routers"},
		{Name: "throughput, pod-to-pod / node-to-node", Unit: "x", Value: Median(Ratios(pod, node)), Samples: Ratios(pod, node),
			Goal: AtLeast(0.95), Anchor: "Calico 0.63, kube-router 0.72 (InfraBuilder 2024)", Note: "per-round ratio"},
		{Name: "throughput, pod-to-pod / VXLAN overlay", Unit: "x", Value: Median(Ratios(pod, vx)), Samples: Ratios(pod, vx),
			Goal: AtLeast(1), Note: "ahead of the overlay: > 1"},
		{Name: "RTT, node to node", Unit: "ms", Value: Median(rtt["node-to-node"]), Samples: rtt["node-to-node"], Note: "median of " + pingCount + " pings per round"},
		{Name: "RTT, pod to pod", Unit: "ms", Value: Median(rtt["pod-to-pod"]), Samples: rtt["pod-to-pod"], Note: "median of " + pingCount + " pings per round"},
		{Name: "RTT, pod-to-pod / node-to-node", Unit: "x", Value: Median(Ratios(rtt["pod-to-pod"], rtt["node-to-node"])),
			Samples: Ratios(rtt["pod-to-pod"], rtt["node-to-node"]), Goal: AtMost(1.1),
			Anchor: "Calico routed 1.7, IPIP 2.2, VXLAN 2.4 (DaoCloud)", Note: "per-round ratio"},
		{Name: "RTT, VXLAN overlay / node-to-node", Unit: "x", Value: Median(Ratios(rtt["VXLAN overlay"], rtt["node-to-node"])),
			Samples: Ratios(rtt["VXLAN overlay"], rtt["node-to-node"]), Note: "per-round ratio"},
	}
	for _, side := range []struct{ path, note string }{
		{"pod-to-node", "the sending side alone: pod on " + n1.Name + " to " + n2.Name + "'s address"},
		{"node-to-pod", "the receiving side alone: " + n1.Name + " to the pod on " + n2.Name},
	} {
		rows = append(rows,
			Row{Name: "split: throughput, " + side.path + " / node-to-node", Unit: "x", Value: Median(Ratios(tput[side.path], node)),
				Samples: Ratios(tput[side.path], node), Note: side.note},
			Row{Name: "split: RTT, " + side.path + " / node-to-node", Unit: "x", Value: Median(Ratios(rtt[side.path], rtt["node-to-node"])),
				Samples: Ratios(rtt[side.path], rtt["node-to-node"]), Note: side.note})
	}
	return rows, nil
}

// routersBetween names the routers on the path between two nodes.
func routersBetween(p lab.Plan, a, b lab.Node) string {
	ra, _ := p.Rack(a.Rack)
	if a.Rack == b.Rack {
		return ra.ToR.Name + "'s LAN"
	}
	rb, _ := p.Rack(b.Rack)
	return ra.ToR.Name + ", the spine, " + rb.ToR.Name
}

// podsOn finds the lab's first pod on each of two nodes.
func podsOn(l *lab.Lab, a, b string) (lab.Pod, lab.Pod, error) {
	var pa, pb lab.Pod
	for _, p := range l.Pods() {
		switch {
		case p.Node == a && !pa.IP.IsValid():
			pa = p
		case p.Node == b && !pb.IP.IsValid():
			pb = p
		}
	}
	if !pa.IP.IsValid() || !pb.IP.IsValid() {
		return pa, pb, fmt.Errorf("need a pod on %s and on %s", a, b)
	}
	return pa, pb, nil
}

// buildVXLAN links the two nodes with a VXLAN tunnel over their lab
// addresses, as an overlay network would, and returns the tunnel
// addresses and an undo.
func buildVXLAN(ctx context.Context, n1, n2 lab.Node) (netip.Addr, netip.Addr, func(), error) {
	var done []string
	undo := func() {
		for _, ns := range done {
			_, _ = inNS(context.WithoutCancel(ctx), ns, "ip", "link", "del", vxlanDev)
		}
	}
	ends := []struct {
		ns          string
		local, peer netip.Addr
		addr        string
	}{
		{n1.NS, n1.Addr, n2.Addr, fmt.Sprintf(vxlanNet, 1)},
		{n2.NS, n2.Addr, n1.Addr, fmt.Sprintf(vxlanNet, 2)},
	}
	for _, end := range ends {
		_, _ = inNS(ctx, end.ns, "ip", "link", "del", vxlanDev) // left by an interrupted run
		done = append(done, end.ns)
		for _, argv := range [][]string{
			{"ip", "link", "add", vxlanDev, "type", "vxlan", "id", vxlanID, "local", end.local.String(),
				"remote", end.peer.String(), "dstport", vxlanPort},
			{"ip", "addr", "add", end.addr, "dev", vxlanDev},
			{"ip", "link", "set", vxlanDev, "up"},
		} {
			if _, err := inNS(ctx, end.ns, argv...); err != nil {
				return netip.Addr{}, netip.Addr{}, undo, fmt.Errorf("build the VXLAN overlay: %w", err)
			}
		}
	}
	a := netip.MustParsePrefix(ends[0].addr).Addr()
	b := netip.MustParsePrefix(ends[1].addr).Addr()
	return a, b, undo, nil
}

// waitIperf waits until every path's server answers (iperf3 -s starts
// listening a moment after it is started).
func waitIperf(ctx context.Context, paths []path) error {
	for _, p := range paths {
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := inNS(ctx, p.fromNS, "iperf3", "-c", p.to.String(), "-n", "64K", "-J")
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("iperf3 server for %s never answered: %w", p.name, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

// iperf runs one single-stream TCP test and returns the bits per second
// the receiver got, first second omitted (slow start).
func iperf(ctx context.Context, p path) (float64, error) {
	out, err := inNS(ctx, p.fromNS, "iperf3", "-c", p.to.String(), "-t", iperfTime, "-O", iperfOmit, "-J")
	if err != nil {
		return 0, fmt.Errorf("iperf3 %s: %w", p.name, err)
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return 0, fmt.Errorf("iperf3 %s: decode: %w", p.name, err)
	}
	if r.Error != "" || r.End.SumReceived.BitsPerSecond == 0 {
		return 0, fmt.Errorf("iperf3 %s: %q", p.name, r.Error)
	}
	return r.End.SumReceived.BitsPerSecond, nil
}

var pingTime = regexp.MustCompile(`time=([0-9.]+) ms`)

// pingMedian sends pingCount echo requests 10 ms apart and returns the
// median round-trip time.
func pingMedian(ctx context.Context, p path) (float64, error) {
	out, err := inNS(ctx, p.fromNS, "ping", "-n", "-c", pingCount, "-i", "0.01", "-W", "1", p.to.String())
	if err != nil {
		return 0, fmt.Errorf("ping %s: %w", p.name, err)
	}
	var ms []float64
	for _, m := range pingTime.FindAllStringSubmatch(out, -1) {
		v, err := strconv.ParseFloat(m[1], 64)
		if err == nil {
			ms = append(ms, v)
		}
	}
	if len(ms) == 0 {
		return 0, fmt.Errorf("ping %s: no replies: %s", p.name, strings.TrimSpace(out))
	}
	return Median(ms), nil
}
