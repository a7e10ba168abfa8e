package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	cairnclient "github.com/cairn-net/cairn/apis/client/clientset/versioned"
	"github.com/cairn-net/cairn/internal/controlplane"
)

// Options configure Up.
type Options struct {
	// StateDir holds the state file, binaries, configs and logs; empty
	// means DefaultStateDir. Up refuses a directory that is not empty.
	StateDir string
	// RepoRoot is the checkout to build from; empty means the one above
	// the working directory.
	RepoRoot string
	// Racks (default 1) and NodesPerRack (default 2).
	Racks, NodesPerRack int
	// Router is RouterBIRD (default), RouterFRR or RouterGoBGPD.
	Router string
	// DualStack puts IPv6 on every link besides IPv4 (dualstack.go): an
	// IPv6 pool beside the IPv4 one, every pod an address of each, BGP
	// sessions of both families between nodes and to the routers.
	DualStack bool
	// RouteReflectors (more than one rack) makes two nodes of every rack
	// its route reflectors in place of the ToR (routereflectors.go).
	RouteReflectors bool
	// BlockSize is the pool's block prefix length (default BlockSize).
	BlockSize int
	// Instance names the lab inside its namespace names ("cl-<instance>-
	// node1"), so it can run beside a lab of another instance; empty for
	// the default lab ("cl-node1").
	Instance string
	// PodsPerNode is the number of pods Up creates on every node (default
	// 2; negative means none).
	PodsPerNode int
	// SkipAgents brings up the network, the routers and the control plane
	// with its objects, but no cairn-node and no pods.
	SkipAgents bool
	// Kubelet makes the nodes real Kubernetes nodes: each runs containerd
	// and a kubelet (kubelet.go), the control plane adds kube-scheduler and
	// kube-controller-manager, and pods are Kubernetes pods the kubelets
	// start. Slower to come up than the default, where a pod is a bare
	// namespace wired by calling the CNI plugin directly.
	Kubelet bool
	// AgentProcesses, with Kubelet, runs cairn-node as a process per node
	// and places cairn-cni as the fast mode does, instead of installing
	// Cairn's DaemonSet from deploy/overlays/lab.
	AgentProcesses bool
	// RouterPassword, when set, puts TCP-MD5 with this key on every
	// session between a node and its top-of-rack router: in the routers'
	// configuration and, through the Secret RouterPasswordSecret, in the
	// BGPPeers.
	RouterPassword string
	// KeepOnFailure leaves a failed lab up for inspection instead of
	// tearing it down.
	KeepOnFailure bool
	// AgentLogLevel is cairn-node's --log-level (default "info").
	AgentLogLevel string
	// AgentArgs are more cairn-node flags for every node (a test's short
	// IPAM GC grace, say); a restarted agent gets them too.
	AgentArgs []string
	// BFD runs BFD on the node mesh and between nodes and their ToR (BIRD's
	// bfd protocol, FRR's bfdd), so a cut link withdraws routes in under
	// a second instead of at the hold time.
	BFD bool
	// Logf receives progress lines; nil discards them.
	Logf func(format string, args ...any)
}

func (o *Options) defaults() error {
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir
	}
	if o.RepoRoot == "" {
		root, err := controlplane.RepoRoot()
		if err != nil {
			return err
		}
		o.RepoRoot = root
	}
	if o.Racks == 0 {
		o.Racks = 1
	}
	if o.NodesPerRack == 0 {
		o.NodesPerRack = 2
	}
	if o.Router == "" {
		o.Router = RouterBIRD
	}
	if o.PodsPerNode == 0 {
		o.PodsPerNode = 2
	}
	if o.AgentLogLevel == "" {
		o.AgentLogLevel = "info"
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return nil
}

// checkModes refuses options that do not go together, before Up touches
// anything: an option that would be ignored is an error, not a surprise.
func (o Options) checkModes() error {
	switch {
	case o.DualStack && o.Kubelet:
		// The kubelets, kube-proxy and the API server's Service range
		// are IPv4-only in this lab for now.
		return errors.New("a dual-stack lab runs in the fast mode only: leave out --kubelet (or --dual-stack)")
	case o.AgentProcesses && !o.Kubelet:
		return errors.New("--agent-processes chooses how real nodes run cairn-node: it needs --kubelet (the fast mode always runs it as a process)")
	}
	return nil
}

// Timings are how long the phases of Up took.
type Timings struct {
	Build, Network, ControlPlane, Agents, Pods, Converge, Total time.Duration
	// PodStart is, with real nodes, how long each pod took from its
	// creation to Running with an address.
	PodStart Durations
}

// Lab is a running lab: its state and API clients.
type Lab struct {
	st      *State
	c       *clients
	drv     routerDriver
	logf    func(format string, args ...any)
	unlock  func()
	Timings Timings
	// imageFiles are the tarballs of the images Up built for real nodes.
	imageFiles []string
}

// Up builds a lab as the options say and waits until it routes: every
// router session is Established and every node routes to every pod. On
// failure it tears everything down again (unless KeepOnFailure), and the
// error carries the tails of the relevant logs.
func Up(ctx context.Context, o Options) (*Lab, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if err := o.checkModes(); err != nil {
		return nil, err
	}
	plan, err := NewPlan(PlanOptions{Racks: o.Racks, NodesPerRack: o.NodesPerRack, Router: o.Router, Instance: o.Instance, DualStack: o.DualStack, BlockSize: o.BlockSize, BFD: o.BFD, RouteReflectors: o.RouteReflectors})
	if err != nil {
		return nil, err
	}
	if o.RouterPassword != "" {
		plan.setNodePasswords(o.RouterPassword)
	}
	if err := preflight(ctx, o, plan); err != nil {
		return nil, err
	}
	drv, err := driverFor(o.Router)
	if err != nil {
		return nil, err
	}
	// Traversable, not listable: FRR's daemons run as their own user and
	// need to reach their router directory. Secrets below are 0600/0700.
	if err := os.MkdirAll(o.StateDir, 0o711); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	if err := os.Chmod(o.StateDir, 0o711); err != nil {
		return nil, fmt.Errorf("set mode of state directory: %w", err)
	}
	unlock, err := lockDir(o.StateDir)
	if err != nil {
		return nil, err
	}
	l := &Lab{
		st:   &State{Dir: o.StateDir, RepoRoot: o.RepoRoot, Plan: plan, PodSeq: map[string]int{}, AgentArgs: o.AgentArgs, Kubelet: o.Kubelet, DaemonSet: o.Kubelet && !o.AgentProcesses},
		drv:  drv,
		logf: o.Logf,
	}
	if err := l.st.save(); err != nil {
		unlock()
		return nil, err
	}
	begin := time.Now()
	if err := l.up(ctx, o); err != nil {
		err = fmt.Errorf("lab up: %w%s", err, l.failureLogs())
		if o.KeepOnFailure {
			unlock()
			return nil, fmt.Errorf("%w\n(the failed lab is left up: `cairn-lab status`, then `cairn-lab down`)", err)
		}
		unlock()
		if derr := Down(context.WithoutCancel(ctx), o.StateDir, o.Logf); derr != nil {
			return nil, fmt.Errorf("%w\ntear down after failure: %v", err, derr)
		}
		return nil, err
	}
	l.Timings.Total = time.Since(begin)
	unlock()
	return l, nil
}

// preflight refuses to start over an existing lab or without the tools.
func preflight(ctx context.Context, o Options, plan Plan) error {
	if os.Geteuid() != 0 {
		return errors.New("the lab needs root: it creates network namespaces")
	}
	if _, err := loadState(o.StateDir); err == nil {
		return fmt.Errorf("a lab is already up (state in %s): run `cairn-lab down` first", o.StateDir)
	}
	if entries, err := os.ReadDir(o.StateDir); err == nil && len(entries) > 0 {
		return fmt.Errorf("state directory %s is not empty and holds no lab: remove it or choose another", o.StateDir)
	}
	if clash, err := existingPlanned(ctx, plan); err != nil {
		return err
	} else if len(clash) > 0 {
		return fmt.Errorf("namespaces %v exist: another lab of this instance runs (`cairn-lab --state-dir DIR down`), or choose another --instance", clash)
	}
	tools := append([]string{"ip", "go"}, RouterTools(o.Router)...)
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("the lab needs %s: %w", t, err)
		}
	}
	if _, err := controlplane.BinDir(); err != nil {
		return err
	}
	if o.Kubelet {
		return RealNodeTools()
	}
	return nil
}

// existingPlanned lists the plan's namespaces that already exist, and any
// pod namespace of the plan's prefix.
func existingPlanned(ctx context.Context, plan Plan) ([]string, error) {
	existing, err := labNamespaces(ctx)
	if err != nil {
		return nil, err
	}
	planned := map[string]bool{}
	for _, ns := range plan.Namespaces() {
		planned[ns] = true
	}
	var clash []string
	for _, ns := range existing {
		if planned[ns] || strings.HasPrefix(ns, plan.Prefix+"pod-") {
			clash = append(clash, ns)
		}
	}
	return clash, nil
}

func (l *Lab) up(ctx context.Context, o Options) error {
	// Building is the slow part of a cold start and needs nothing from
	// the network: it runs while the namespaces and routers come up.
	bins := []string{binLab}
	if !o.SkipAgents {
		bins = append(bins, binNode, binCNI)
	}
	start := time.Now()
	buildCtx, cancelBuild := context.WithCancel(ctx)
	defer cancelBuild()
	built := make(chan error, 1)
	var imgs nodeImages
	go func() {
		o.Logf("building %v", bins)
		err := buildBinaries(buildCtx, binaryBuild{Repo: o.RepoRoot, Out: binDir(l.st.Dir), Static: o.Kubelet}, bins...)
		if err == nil && o.Kubelet && !o.SkipAgents {
			imgs, err = buildImages(buildCtx, o.RepoRoot)
		}
		l.Timings.Build = time.Since(start)
		built <- err
	}()
	if err := l.upNetwork(ctx); err != nil {
		cancelBuild()
		<-built
		return err
	}
	l.Timings.Network = time.Since(start)
	if err := <-built; err != nil {
		return err
	}
	for _, r := range l.st.Plan.Routers() {
		if err := startRouterHelper(ctx, l.drv, r, l.st.Dir, filepath.Join(binDir(l.st.Dir), binLab), l.st.addProc); err != nil {
			return err
		}
	}
	l.useImages(imgs)
	o.Logf("built in %v, network and routers up in %v", l.Timings.Build.Round(time.Millisecond), l.Timings.Network.Round(time.Millisecond))
	if err := l.upControlPlane(ctx); err != nil {
		return err
	}
	if o.SkipAgents {
		return nil
	}
	if o.Kubelet {
		return l.upRealNodes(ctx, o)
	}
	return l.upNodes(ctx, o)
}

// upNetwork creates the namespaces and links and starts the routers.
func (l *Lab) upNetwork(ctx context.Context) error {
	p := l.st.Plan
	for _, ns := range p.Namespaces() {
		if err := l.st.recordNamespace(ns); err != nil {
			return err
		}
		if err := addNS(ctx, ns); err != nil {
			return err
		}
	}
	for _, r := range p.Routers() {
		if err := setSysctl(r.NS, "net.ipv4.ip_forward", "1"); err != nil {
			return err
		}
		// Only the routers: a node's agent turns IPv6 forwarding on itself
		// once an IPv6 pool serves it.
		if p.DualStack {
			if err := setSysctl(r.NS, "net.ipv6.conf.all.forwarding", "1"); err != nil {
				return err
			}
		}
	}
	// Nodes forward pod traffic, as any Kubernetes node is set up to.
	for _, n := range p.Nodes() {
		if err := setSysctl(n.NS, "net.ipv4.ip_forward", "1"); err != nil {
			return err
		}
	}
	if err := buildLinks(ctx, p); err != nil {
		return err
	}
	l.logf("network: %d namespaces, %d links", len(p.Namespaces()), len(p.Links))
	for _, r := range p.Routers() {
		if err := startRouter(ctx, l.drv, r, l.st.Dir, l.st.addProc); err != nil {
			return err
		}
	}
	for _, r := range p.Routers() {
		r := r
		err := until(ctx, 20*time.Second, 50*time.Millisecond, "router "+r.Name+" to answer", func(ctx context.Context) (bool, error) {
			if err := l.routerProcsAlive(r); err != nil {
				return false, stopWaiting(err)
			}
			err := l.drv.ready(ctx, r, routerDir(l.st.Dir, r.Name))
			return err == nil, err
		})
		if err != nil {
			return err
		}
	}
	l.logf("routers (%s) up: %d", p.Router, len(p.Routers()))
	return nil
}

func (l *Lab) routerProcsAlive(r RouterPlan) error {
	for _, p := range l.st.Procs {
		if p.NS == r.NS && !p.Alive() {
			return fmt.Errorf("%s exited; log tail:\n%s", p.Name, tail(p.Log, 20))
		}
	}
	return nil
}

// upControlPlane starts etcd and kube-apiserver in their namespace and
// writes the cluster's objects.
func (l *Lab) upControlPlane(ctx context.Context) error {
	start := time.Now()
	ready, err := startControlPlane(ctx, l.st, filepath.Join(binDir(l.st.Dir), binLab), l.st.Kubelet)
	if err != nil {
		return err
	}
	if l.c, err = newClients(l.st); err != nil {
		return err
	}
	if err := createClusterObjects(ctx, l.c, l.st.Plan, l.st.Kubelet); err != nil {
		return err
	}
	l.Timings.ControlPlane = time.Since(start)
	l.logf("control plane at %s (ready after %v), objects written, %v in all", l.st.ControlPlane.URL, ready, l.Timings.ControlPlane.Round(time.Millisecond))
	return nil
}

// upNodes starts the agents, creates the pods and waits for routing.
func (l *Lab) upNodes(ctx context.Context, o Options) error {
	start := time.Now()
	if err := l.waitAPIReachable(ctx); err != nil {
		return err
	}
	for _, n := range l.st.Plan.Nodes() {
		p, err := startAgent(l.st, n, o.AgentLogLevel)
		if err != nil {
			return err
		}
		if err := l.st.addProc(p); err != nil {
			return err
		}
	}
	for _, n := range l.st.Plan.Nodes() {
		if err := l.waitAgentReady(ctx, n); err != nil {
			return err
		}
	}
	l.Timings.Agents = time.Since(start)
	l.logf("agents ready on %d nodes after %v", len(l.st.Plan.Nodes()), l.Timings.Agents.Round(time.Millisecond))
	if err := l.upServices(ctx); err != nil {
		return err
	}
	start = time.Now()
	for _, n := range l.st.Plan.Nodes() {
		for i := 0; i < o.PodsPerNode; i++ {
			pod, err := l.addPod(ctx, n.Name)
			if err != nil {
				return err
			}
			l.logf("pod %s on %s: %s", pod.Name, pod.Node, pod.IP)
		}
	}
	l.Timings.Pods = time.Since(start)
	start = time.Now()
	if err := l.waitSettled(ctx, 90*time.Second); err != nil {
		return err
	}
	l.Timings.Converge = time.Since(start)
	l.logf("converged after %v: every session Established, every pod routed", l.Timings.Converge.Round(time.Millisecond))
	return nil
}

// failureLogs returns the tails of the agents' and routers' logs, for an
// error message: Down removes the files.
func (l *Lab) failureLogs() string {
	var s string
	for _, p := range l.st.Procs {
		s += fmt.Sprintf("\n--- %s (%s), last lines:\n%s", p.Name, p.Log, tail(p.Log, 15))
	}
	for _, n := range l.st.Plan.Nodes() {
		if path := filepath.Join(nodeDir(l.st.Dir, n.Name), "cni.log"); fileExists(path) {
			s += fmt.Sprintf("\n--- cairn-cni on %s, last lines:\n%s", n.Name, tail(path, 10))
		}
		if np := newNodePaths(l.st.Dir, n.Name); l.st.Kubelet && fileExists(np.KubeletLog) {
			s += fmt.Sprintf("\n--- kubelet on %s, last lines:\n%s", n.Name, tail(np.KubeletLog, 10))
		}
		if l.st.DaemonSet {
			s += "\n" + l.agentPodLog(n, 10)
		}
	}
	return s
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Open returns the lab whose state is in dir (empty: DefaultStateDir).
func Open(dir string, logf func(string, ...any)) (*Lab, error) {
	if dir == "" {
		dir = DefaultStateDir
	}
	st, err := loadState(dir)
	if err != nil {
		return nil, err
	}
	drv, err := driverFor(st.Plan.Router)
	if err != nil {
		return nil, err
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Lab{st: st, drv: drv, logf: logf}, nil
}

// Plan is the lab's topology.
func (l *Lab) Plan() Plan { return l.st.Plan }

// StateDir is the lab's state directory.
func (l *Lab) StateDir() string { return l.st.Dir }

// BinDir holds the lab's built binaries (cairn-node, cairn-cni): a CNI_PATH.
func (l *Lab) BinDir() string { return binDir(l.st.Dir) }

// AgentSocket is where node's agent serves the CNI plugin (with the
// DaemonSet, its /run/cairn as the host reaches it).
func (l *Lab) AgentSocket(node string) string {
	if l.st.DaemonSet {
		return newNodePaths(l.st.Dir, node).private("/run/cairn/agent.sock")
	}
	return agentSocket(l.st.Dir, node)
}

// Pods lists the lab's pods.
func (l *Lab) Pods() []Pod { return append([]Pod(nil), l.st.Pods...) }

// Procs lists the lab's daemons (routers and agents).
func (l *Lab) Procs() []Proc { return append([]Proc(nil), l.st.Procs...) }

// ControlPlane says where the API server is.
func (l *Lab) ControlPlane() ControlPlaneInfo {
	if l.st.ControlPlane == nil {
		return ControlPlaneInfo{}
	}
	return *l.st.ControlPlane
}

func (l *Lab) clients() (*clients, error) {
	if l.c != nil {
		return l.c, nil
	}
	c, err := newClients(l.st)
	if err != nil {
		return nil, err
	}
	l.c = c
	return c, nil
}

// mutate runs f with the state locked and freshly loaded, so concurrent
// commands (two add-pod) never lose each other's changes.
func (l *Lab) mutate(f func() error) error {
	unlock, err := lockDir(l.st.Dir)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := loadState(l.st.Dir)
	if err != nil {
		return err
	}
	l.st = st
	if _, err := l.clients(); err != nil {
		return err
	}
	return f()
}

// AddPod creates a pod on a node: through the CNI plugin, or with real
// nodes through the API, waiting until the kubelet runs it.
func (l *Lab) AddPod(ctx context.Context, node string) (Pod, error) {
	var pod Pod
	err := l.mutate(func() error {
		if l.st.Kubelet {
			pods, _, err := l.addRealPods(ctx, []string{node}, 1)
			if err == nil {
				pod = pods[0]
			}
			return err
		}
		var err error
		pod, err = l.addPod(ctx, node)
		return err
	})
	return pod, err
}

// DelPod deletes a pod: through the CNI plugin, or with real nodes
// through the API, waiting until the kubelet has stopped it.
func (l *Lab) DelPod(ctx context.Context, name string) error {
	return l.mutate(func() error {
		if l.st.Kubelet {
			return l.delRealPod(ctx, name)
		}
		return l.delPod(ctx, name)
	})
}

// Namespaces lists the network namespaces with the lab's prefix that exist
// on this machine, whoever's state they belong to.
func Namespaces(ctx context.Context) ([]string, error) { return labNamespaces(ctx) }

// CairnClient is a client for Cairn's CRDs on the lab's API server.
func (l *Lab) CairnClient() (cairnclient.Interface, error) {
	c, err := l.clients()
	if err != nil {
		return nil, err
	}
	return c.cairn, nil
}

// KubeClient is a Kubernetes client of the lab's API server (admin).
func (l *Lab) KubeClient() (kubernetes.Interface, error) {
	c, err := l.clients()
	if err != nil {
		return nil, err
	}
	return c.kube, nil
}

// RouterRoutes is the BGP table of the named router (birdc or vtysh).
func (l *Lab) RouterRoutes(ctx context.Context, router string) ([]RouterRoute, error) {
	for _, r := range l.st.Plan.Routers() {
		if r.Name == router {
			return l.drv.routes(ctx, r, routerDir(l.st.Dir, r.Name))
		}
	}
	return nil, fmt.Errorf("no router %q in the lab", router)
}
