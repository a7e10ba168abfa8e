// Command cairn-lab builds a Cairn cluster on this machine out of network
// namespaces: a control plane (etcd, kube-apiserver), top-of-rack routers
// (BIRD, FRR or gobgpd), nodes running cairn-node and pods created through the
// real cairn-cni. It needs root. The work is in internal/lab.
//
//	cairn-lab demo [--keep] [up flags]     up, pods talk across nodes, status, down
//	cairn-lab up [--nodes N] [--racks R] [--router bird|frr|gobgpd] [--bfd] [--pods-per-node P] [--kubelet] [--dual-stack] [--route-reflectors]
//	cairn-lab status [-o json]
//	cairn-lab pods [-o json]
//	cairn-lab exec NAME -- CMD...          in the namespace of a pod, node, router or outside1
//	cairn-lab kubectl ARGS...
//	cairn-lab add-pod NODE
//	cairn-lab del-pod NAME
//	cairn-lab down
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-net/cairn/internal/lab"
)

const usage = `usage: cairn-lab [--state-dir DIR] COMMAND [ARGS]

commands:
  demo [--keep] [up flags]   bring up a lab, show pods on different nodes talking, print status, tear down
  up [flags]                 bring up a lab and leave it running
      --nodes N              nodes per rack (default 2)
      --racks R              racks, each its own AS and ToR; >1 adds a spine (default 1)
      --router bird|frr|gobgpd
                             router daemon for ToRs and spine (default bird); gobgpd (Debian's GoBGP 3.10)
                             serves one rack without BFD, a lab helper installs its routes in its kernel
      --bfd                  BFD (200 ms x 3) on the node mesh and between nodes and their ToR
      --pods-per-node P      pods created on every node (default 2)
      --no-agents            network, routers and control plane only
      --kubelet              real nodes: containerd and a kubelet on every node, Cairn installed with
                             kubectl apply -k deploy/overlays/lab, pods through the API
      --agent-processes      with --kubelet: cairn-node as a process per node instead of the DaemonSet
      --dual-stack           IPv6 on every link too (fd30::/48): an IPv6 pool (fd00:10:244::/56), every pod
                             an address of each family, BGP sessions of both families (not with --kubelet)
      --route-reflectors     with 2+ racks of 3+ nodes: two nodes per rack (label cairn.dev/route-reflector=true)
                             reflect the rack's routes in place of the ToR; node mesh off
      --keep-on-failure      leave a failed lab up for inspection
      --instance NAME        name inside the namespaces (cl-NAME-node1), to run beside another lab;
                             its state goes to /run/cairn-lab-NAME unless --state-dir says otherwise
                             (pass that directory to status, exec, down: cairn-lab --state-dir DIR down)
  status [-o json]           nodes, BGP sessions, routes per router and node, pods
  pods [-o json]             pods: name, node, IPs, netns path (JSON: "ips" lists every address, "ip" the first)
  exec NAME -- CMD...        run CMD in the namespace of a pod, node, router or outside host (cp: control plane, outside1: a client outside the cluster)
  kubectl ARGS...            the pinned kubectl against the lab's API server
  add-pod NODE               create a pod on NODE through cairn-cni
  del-pod NAME               delete a pod through cairn-cni
  down [--all]               remove everything the lab created (safe to repeat);
                             --all also deletes every cl-* namespace of any lab (lost state)

The state directory defaults to $CAIRN_LAB_DIR or /run/cairn-lab.
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	global := flag.NewFlagSet("cairn-lab", flag.ContinueOnError)
	global.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	stateDir := global.String("state-dir", envOr("CAIRN_LAB_DIR", lab.DefaultStateDir), "state directory")
	if err := global.Parse(args); err != nil {
		return 2
	}
	if global.NArg() == 0 {
		global.Usage()
		return 2
	}
	cmd, rest := global.Arg(0), global.Args()[1:]
	code, err := dispatch(ctx, *stateDir, cmd, rest)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cairn-lab %s: %v\n", cmd, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func dispatch(ctx context.Context, dir, cmd string, args []string) (int, error) {
	logf := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, a...)...)
	}
	stdio := lab.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}
	switch cmd {
	case "up":
		o, _, err := upFlags(cmd, args, dir, logf)
		if err != nil {
			return 2, err
		}
		l, err := lab.Up(ctx, o)
		if err != nil {
			return 1, err
		}
		t := l.Timings
		fmt.Printf("lab up in %v (build %v, network+routers %v, control plane %v, agents %v, pods %v, converge %v); state in %s\n",
			t.Total.Round(time.Millisecond), t.Build.Round(time.Millisecond), t.Network.Round(time.Millisecond),
			t.ControlPlane.Round(time.Millisecond), t.Agents.Round(time.Millisecond), t.Pods.Round(time.Millisecond),
			t.Converge.Round(time.Millisecond), l.StateDir())
		if t.PodStart.N > 0 {
			fmt.Printf("pods created to Running: %v\n", t.PodStart)
		}
		return 0, nil
	case "demo":
		o, keep, err := upFlags(cmd, args, dir, logf)
		if err != nil {
			return 2, err
		}
		return 0, lab.Demo(ctx, lab.DemoOptions{Up: o, Keep: keep, Out: os.Stdout})
	case "down":
		fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
		all := fs.Bool("all", false, "also delete every cl-* namespace of any lab")
		if err := fs.Parse(args); err != nil {
			return 2, err
		}
		err := lab.Down(ctx, dir, logf)
		if *all {
			err = errors.Join(err, lab.Sweep(ctx, logf))
		}
		return 0, err
	case "status":
		return withLab(dir, func(l *lab.Lab) error { return status(ctx, l, args) })
	case "pods":
		return withLab(dir, func(l *lab.Lab) error { return pods(ctx, l, args) })
	case "exec":
		if len(args) >= 2 && args[1] == "--" {
			args = append(args[:1], args[2:]...)
		}
		if len(args) < 2 {
			return 2, errors.New("usage: exec NAME -- CMD...")
		}
		return withLabCode(dir, func(l *lab.Lab) (int, error) { return l.Exec(ctx, args[0], args[1:], stdio) })
	case "kubectl":
		return withLabCode(dir, func(l *lab.Lab) (int, error) { return l.Kubectl(ctx, args, stdio) })
	case "add-pod":
		if len(args) != 1 {
			return 2, errors.New("usage: add-pod NODE")
		}
		return withLab(dir, func(l *lab.Lab) error {
			p, err := l.AddPod(ctx, args[0])
			if err == nil {
				fmt.Printf("%s on %s: %s (%s)\n", p.Name, p.Node, p.IP, p.NetnsPath)
			}
			return err
		})
	case "del-pod":
		if len(args) != 1 {
			return 2, errors.New("usage: del-pod NAME")
		}
		return withLab(dir, func(l *lab.Lab) error { return l.DelPod(ctx, args[0]) })
	case lab.HelperCommand:
		return 0, lab.RunControlPlaneHelper(ctx, args, os.Stdout, os.Stderr)
	case lab.NodeHelperCommand:
		return 0, lab.RunNodeHelper(ctx, args, os.Stderr)
	case lab.GoBGPFIBCommand:
		return 0, lab.RunGoBGPFIB(ctx, args, os.Stderr)
	}
	fmt.Fprint(os.Stderr, usage)
	return 2, fmt.Errorf("unknown command %q", cmd)
}

// upFlags parses the flags of up and demo (demo adds --keep).
func upFlags(cmd string, args []string, dir string, logf func(string, ...any)) (lab.Options, bool, error) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	o := lab.Options{StateDir: dir, Logf: logf}
	fs.IntVar(&o.NodesPerRack, "nodes", 2, "nodes per rack")
	fs.IntVar(&o.Racks, "racks", 1, "racks")
	fs.StringVar(&o.Router, "router", lab.RouterBIRD, "router daemon: bird, frr or gobgpd")
	fs.IntVar(&o.PodsPerNode, "pods-per-node", 2, "pods per node")
	fs.BoolVar(&o.SkipAgents, "no-agents", false, "network, routers and control plane only")
	fs.BoolVar(&o.Kubelet, "kubelet", false, "real nodes: containerd and a kubelet on every node")
	fs.BoolVar(&o.AgentProcesses, "agent-processes", false, "with --kubelet: cairn-node as processes, not the DaemonSet")
	fs.BoolVar(&o.BFD, "bfd", false, "BFD on the node mesh and between nodes and ToRs (a cut link detected in 600 ms)")
	fs.BoolVar(&o.KeepOnFailure, "keep-on-failure", false, "leave a failed lab up")
	fs.StringVar(&o.AgentLogLevel, "agent-log-level", "info", "cairn-node --log-level")
	fs.StringVar(&o.Instance, "instance", "", "instance name inside namespace names")
	fs.BoolVar(&o.RouteReflectors, "route-reflectors", false, "with 2 or more racks: two nodes of every rack, labelled "+lab.RouteReflectorLabel+"=true, reflect its routes instead of the ToR")
	fs.BoolVar(&o.DualStack, "dual-stack", false, "IPv6 on every link too: an IPv6 pool, every pod an address of each family, BGP in both")
	fs.StringVar(&o.RepoRoot, "repo", "", "checkout to build from (default: the one above the working directory)")
	keep := false
	if cmd == "demo" {
		fs.BoolVar(&keep, "keep", false, "leave the lab up")
	}
	if err := fs.Parse(args); err != nil {
		return o, false, err
	}
	if o.PodsPerNode == 0 {
		o.PodsPerNode = -1 // Options: 0 means the default
	}
	if o.Instance != "" && o.StateDir == lab.DefaultStateDir {
		// Another instance's lab may hold the default directory: an
		// instance gets its own unless --state-dir or CAIRN_LAB_DIR says.
		o.StateDir = lab.DefaultStateDir + "-" + o.Instance
	}
	return o, keep, nil
}

func status(ctx context.Context, l *lab.Lab, args []string) error {
	asJSON, err := outputJSON("status", args)
	if err != nil {
		return err
	}
	st, err := l.Status(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(os.Stdout, st)
	}
	st.Print(os.Stdout)
	return nil
}

func pods(ctx context.Context, l *lab.Lab, args []string) error {
	asJSON, err := outputJSON("pods", args)
	if err != nil {
		return err
	}
	type pod struct {
		Name string `json:"name"`
		Node string `json:"node"`
		IP   string `json:"ip"`
		// IPs are all the pod's addresses, one per family (IP is the
		// first, kept for scripts written before dual-stack labs).
		IPs   []string `json:"ips"`
		Netns string   `json:"netns"`
	}
	// With real nodes, every pod on them, whoever made it.
	all, err := l.RealPods(ctx)
	if err != nil {
		return err
	}
	var out []pod
	for _, p := range all {
		var ips []string
		for _, a := range p.Addrs() {
			ips = append(ips, a.String())
		}
		out = append(out, pod{Name: p.Name, Node: p.Node, IP: p.IP.String(), IPs: ips, Netns: p.NetnsPath})
	}
	if asJSON {
		if out == nil {
			out = []pod{}
		}
		return printJSON(os.Stdout, out)
	}
	for _, p := range out {
		fmt.Printf("%-16s %-8s %-15s %s\n", p.Name, p.Node, strings.Join(p.IPs, ","), p.Netns)
	}
	return nil
}

func outputJSON(cmd string, args []string) (bool, error) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	o := fs.String("o", "", "output format: json")
	if err := fs.Parse(args); err != nil {
		return false, err
	}
	if *o != "" && *o != "json" {
		return false, fmt.Errorf("unknown output format %q", *o)
	}
	return *o == "json", nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func withLab(dir string, f func(*lab.Lab) error) (int, error) {
	return withLabCode(dir, func(l *lab.Lab) (int, error) { return 0, f(l) })
}

func withLabCode(dir string, f func(*lab.Lab) (int, error)) (int, error) {
	l, err := lab.Open(dir, nil)
	if err != nil {
		return 1, err
	}
	return f(l)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
