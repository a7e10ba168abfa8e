package bench

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The BGP section's own namespaces and addresses: a receiving BIRD with
// two neighbours, a Cairn speaker and a sending BIRD, on two veth pairs.
const (
	recvAS, cairnAS, sendAS = 65001, 65002, 65003
	recvToCairn, cairnAddr  = "10.90.0.1", "10.90.0.2"
	recvToSend, sendAddr    = "10.90.0.5", "10.90.0.6"
	bgpBlocksBase           = "10.128.0.0/10"
	learnTimeout            = 3 * time.Minute
	installTimeout          = 3 * time.Minute
)

// bgpBench is the section's namespaces and processes.
type bgpBench struct {
	e                *Env
	dir              string
	recvNS, cairnNS  string
	sendNS           string
	recvSock, sndSck string
	procs            []*daemon
}

// runBGP measures, in interleaved rounds, how long a BIRD router takes to
// learn 10,000 (and 1,000) blocks from one Cairn speaker against from
// another BIRD, from session up to the last prefix; then, in the shared
// lab, how long the agent takes to install 10,000 routes its ToR starts
// announcing, until the last is in the node's kernel.
func runBGP(ctx context.Context, e *Env) ([]Row, error) {
	if len(e.Instances) < 3 {
		return nil, fmt.Errorf("bgp needs a third lab instance name")
	}
	b := &bgpBench{e: e}
	defer b.close()
	if err := b.setup(ctx); err != nil {
		return nil, err
	}
	var rows []Row
	for _, n := range []int{10000, 1000} {
		var fromCairn, fromBird []float64
		for round := range e.Rounds {
			e.Logf("bgp: %d blocks, round %d/%d", n, round+1, e.Rounds)
			c, err := b.learnFromCairn(ctx, n)
			if err != nil {
				return rows, err
			}
			bb, err := b.learnFromBird(ctx, n)
			if err != nil {
				return rows, err
			}
			fromCairn, fromBird = append(fromCairn, c), append(fromBird, bb)
		}
		label := fmt.Sprintf("%d blocks", n)
		rows = append(rows,
			Row{Name: "BIRD learns " + label + " from one Cairn speaker", Unit: "s", Value: Median(fromCairn), Samples: fromCairn,
				Anchor: "GoBGP receiving 100k routes: 24 s, BIRD and FRR 3–4 s (2021 comparison)", Note: "session Established → last prefix in BIRD"},
			Row{Name: "BIRD learns " + label + " from another BIRD", Unit: "s", Value: Median(fromBird), Samples: fromBird, Note: "same receiver, same round"},
			Row{Name: "BIRD learns " + label + ": from Cairn / from BIRD", Unit: "x", Value: Median(Ratios(fromCairn, fromBird)),
				Samples: Ratios(fromCairn, fromBird), Note: "per-round ratio"},
		)
	}
	b.close()
	install, withdraw, err := installLearned(ctx, e, 10000)
	if err != nil {
		return rows, err
	}
	rows = append(rows,
		Row{Name: "Cairn installs 10,000 learned routes in the kernel", Unit: "s", Value: Median(install), Samples: install,
			Anchor: "kernel batched insertion about 170k routes/s", Note: "ToR starts announcing (birdc configure) → last route in the node's kernel"},
		Row{Name: "Cairn removes 10,000 withdrawn routes from the kernel", Unit: "s", Value: Median(withdraw), Samples: withdraw,
			Note: "ToR withdraws → last route gone"},
	)
	return rows, nil
}

func (b *bgpBench) setup(ctx context.Context) error {
	pfx := "cl-" + b.e.Instances[2] + "-"
	b.recvNS, b.cairnNS, b.sendNS = pfx+"bgprecv", pfx+"bgpcairn", pfx+"bgpsend"
	for _, ns := range []string{b.recvNS, b.cairnNS, b.sendNS} {
		_ = exec.CommandContext(ctx, "ip", "netns", "del", ns).Run() // left by an interrupted run
	}
	dir, err := os.MkdirTemp("", "cairn-bench-bgp-")
	if err != nil {
		return err
	}
	b.dir = dir
	steps := [][]string{
		{"ip", "netns", "add", b.recvNS}, {"ip", "netns", "add", b.cairnNS}, {"ip", "netns", "add", b.sendNS},
		{"ip", "link", "add", "r0", "netns", b.recvNS, "type", "veth", "peer", "name", "c0", "netns", b.cairnNS},
		{"ip", "link", "add", "r1", "netns", b.recvNS, "type", "veth", "peer", "name", "s0", "netns", b.sendNS},
		{"ip", "-n", b.recvNS, "addr", "add", recvToCairn + "/30", "dev", "r0"},
		{"ip", "-n", b.recvNS, "addr", "add", recvToSend + "/30", "dev", "r1"},
		{"ip", "-n", b.cairnNS, "addr", "add", cairnAddr + "/30", "dev", "c0"},
		{"ip", "-n", b.sendNS, "addr", "add", sendAddr + "/30", "dev", "s0"},
	}
	for _, ns := range []string{b.recvNS, b.cairnNS, b.sendNS} {
		steps = append(steps, []string{"ip", "-n", ns, "link", "set", "lo", "up"})
	}
	steps = append(steps,
		[]string{"ip", "-n", b.recvNS, "link", "set", "r0", "up"}, []string{"ip", "-n", b.recvNS, "link", "set", "r1", "up"},
		[]string{"ip", "-n", b.cairnNS, "link", "set", "c0", "up"}, []string{"ip", "-n", b.sendNS, "link", "set", "s0", "up"})
	for _, s := range steps {
		if out, err := exec.CommandContext(ctx, s[0], s[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(s, " "), err, out)
		}
	}
	b.recvSock, b.sndSck = filepath.Join(dir, "recv.ctl"), filepath.Join(dir, "send.ctl")
	if err := b.startBird(ctx, b.recvNS, "recv", recvConf(), b.recvSock); err != nil {
		return err
	}
	return b.startBird(ctx, b.sendNS, "send", sendLimitConf(10000), b.sndSck)
}

// recvConf is the receiver: passive, so that each session has one TCP
// connection (no collision to resolve, which would drop one side's after
// it came up and blur the timing).
func recvConf() string {
	return fmt.Sprintf(`log stderr { warning, error, fatal };
router id %[1]s;
protocol device { }
template bgp quick { passive on; error wait time 1, 2; hold time 30; }
protocol bgp from_cairn from quick { local %[1]s as %[2]d; neighbor %[3]s as %[4]d; ipv4 { import all; export none; }; }
protocol bgp from_bird from quick { local %[5]s as %[2]d; neighbor %[6]s as %[7]d; ipv4 { import all; export none; }; }
`, recvToCairn, recvAS, cairnAddr, cairnAS, recvToSend, sendAddr, sendAS)
}

// sendConf holds n blocks, the same the Cairn speaker announces, and a
// session to the receiver that starts disabled.
func sendConf(n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "log stderr { warning, error, fatal };\nrouter id %s;\nprotocol device { }\n", sendAddr)
	b.WriteString("protocol static blocks {\n  ipv4;\n")
	pool := netip.MustParsePrefix(bgpBlocksBase)
	for i := range n {
		fmt.Fprintf(&b, "  route %s blackhole;\n", nthBlock(pool, 26, i))
	}
	b.WriteString("}\n")
	fmt.Fprintf(&b, `protocol bgp to_recv {
  local %s as %d; neighbor %s as %d;
  connect delay time 1; connect retry time 1; error wait time 1, 2; hold time 30;
  disabled;
  ipv4 { import none; export where net ~ [ %s{26,26} ] && bench_limit(net); };
}
`, sendAddr, sendAS, recvToSend, recvAS, bgpBlocksBase)
	return b.String()
}

func (b *bgpBench) startBird(ctx context.Context, netns, name, conf, sock string) error {
	path := filepath.Join(b.dir, name+".conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return err
	}
	d, err := startInNS(netns, "bird", "-f", "-c", path, "-s", sock)
	if err != nil {
		return err
	}
	b.procs = append(b.procs, d)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := birdc(ctx, sock, "show", "status")
		if err == nil && strings.Contains(out, "up and running") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("BIRD %s did not come up: %v %s", name, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func birdc(ctx context.Context, sock string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "birdc", append([]string{"-s", sock}, args...)...).CombinedOutput()
	return string(out), err
}

func (b *bgpBench) close() {
	for i := len(b.procs) - 1; i >= 0; i-- {
		b.procs[i].stop()
	}
	b.procs = nil
	for _, ns := range []string{b.recvNS, b.cairnNS, b.sendNS} {
		if ns != "" {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	}
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
		b.dir = ""
	}
}

var routeCount = regexp.MustCompile(`(\d+) of (\d+) routes`)

// learned is how many routes the receiver holds from one protocol, and
// whether its session is up.
func (b *bgpBench) learned(ctx context.Context, proto string) (int, bool, error) {
	out, err := birdc(ctx, b.recvSock, "show", "route", "protocol", proto, "count")
	if err != nil {
		return 0, false, fmt.Errorf("birdc: %w: %s", err, out)
	}
	n := 0
	if m := routeCount.FindStringSubmatch(out); m != nil {
		n, _ = strconv.Atoi(m[1])
	}
	st, err := birdc(ctx, b.recvSock, "show", "protocols", proto)
	if err != nil {
		return 0, false, fmt.Errorf("birdc: %w: %s", err, st)
	}
	return n, strings.Contains(st, "Established"), nil
}

// timeLearn waits for the session to come up, then for n routes, and
// returns the time between the two.
func (b *bgpBench) timeLearn(ctx context.Context, proto string, n int) (float64, error) {
	deadline := time.Now().Add(learnTimeout)
	var up time.Time
	for {
		got, established, err := b.learned(ctx, proto)
		if err != nil {
			return 0, err
		}
		now := time.Now()
		if established && up.IsZero() {
			up = now
		}
		if got >= n && !up.IsZero() {
			return now.Sub(up).Seconds(), nil
		}
		if now.After(deadline) {
			return 0, fmt.Errorf("%s: %d of %d routes after %v (session up: %v)", proto, got, n, learnTimeout, !up.IsZero())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitGone waits until the receiver holds no route from proto.
func (b *bgpBench) waitGone(ctx context.Context, proto string) error {
	deadline := time.Now().Add(learnTimeout)
	for {
		got, established, err := b.learned(ctx, proto)
		if err != nil {
			return err
		}
		if got == 0 && !established {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still holds %d routes", proto, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *bgpBench) learnFromCairn(ctx context.Context, n int) (float64, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	d, err := startInNS(b.cairnNS, self, SpeakerCommand, "-router-id", cairnAddr, "-asn", strconv.Itoa(cairnAS),
		"-peer", recvToCairn, "-peer-asn", strconv.Itoa(recvAS), "-blocks", strconv.Itoa(n), "-base", bgpBlocksBase)
	if err != nil {
		return 0, err
	}
	took, err := b.timeLearn(ctx, "from_cairn", n)
	d.stop()
	if err != nil {
		return 0, err
	}
	return took, b.waitGone(ctx, "from_cairn")
}

func (b *bgpBench) learnFromBird(ctx context.Context, n int) (float64, error) {
	if err := b.setSendLimit(ctx, n); err != nil {
		return 0, err
	}
	if out, err := birdc(ctx, b.sndSck, "enable", "to_recv"); err != nil {
		return 0, fmt.Errorf("enable to_recv: %w: %s", err, out)
	}
	took, err := b.timeLearn(ctx, "from_bird", n)
	if out, derr := birdc(ctx, b.sndSck, "disable", "to_recv"); derr != nil && err == nil {
		err = fmt.Errorf("disable to_recv: %w: %s", derr, out)
	}
	if err != nil {
		return 0, err
	}
	return took, b.waitGone(ctx, "from_bird")
}

// sendLimitConf is sendConf with the function its export filter calls:
// only the first n blocks, consecutive from the start of the range, go out.
func sendLimitConf(n int) string {
	last := nthBlock(netip.MustParsePrefix(bgpBlocksBase), 26, n-1)
	return fmt.Sprintf("function bench_limit(prefix p) { return p.ip <= %s; }\n", last.Addr()) + sendConf(10000)
}

// setSendLimit makes the sending BIRD export only the first n blocks,
// reloading its configuration while its session is disabled.
func (b *bgpBench) setSendLimit(ctx context.Context, n int) error {
	path := filepath.Join(b.dir, "send.conf")
	if err := os.WriteFile(path, []byte(sendLimitConf(n)), 0o644); err != nil {
		return err
	}
	out, err := birdc(ctx, b.sndSck, "configure")
	if err != nil || !strings.Contains(out, "onfigur") {
		return fmt.Errorf("configure the sending BIRD: %v: %s", err, out)
	}
	return nil
}

// installLearned times, in the shared lab, node1's agent installing
// n host routes its ToR starts announcing, and removing them when the ToR
// withdraws them.
func installLearned(ctx context.Context, e *Env, n int) (install, withdraw []float64, err error) {
	l, err := e.MainLab(ctx)
	if err != nil {
		return nil, nil, err
	}
	node := l.Plan().Nodes()[0]
	rack, _ := l.Plan().Rack(node.Rack)
	blocks, err := freeBlocks(ctx, l, (n+63)/64)
	if err != nil {
		return nil, nil, err
	}
	routes := hostRoutes(blocks, n)
	defer func() { _ = announce(context.WithoutCancel(ctx), l, rack.ToR, nil) }()
	for round := range e.Rounds {
		e.Logf("bgp: %d learned routes into %s's kernel, round %d/%d", n, node.Name, round+1, e.Rounds)
		start := time.Now()
		if err := announce(ctx, l, rack.ToR, routes); err != nil {
			return nil, nil, err
		}
		if err := waitRoutes(ctx, node.NS, routes, installTimeout); err != nil {
			return nil, nil, err
		}
		install = append(install, time.Since(start).Seconds())
		start = time.Now()
		if err := announce(ctx, l, rack.ToR, nil); err != nil {
			return nil, nil, err
		}
		if err := waitRouteCount(ctx, node.NS, routes, 0, installTimeout); err != nil {
			return nil, nil, err
		}
		withdraw = append(withdraw, time.Since(start).Seconds())
	}
	return install, withdraw, nil
}
