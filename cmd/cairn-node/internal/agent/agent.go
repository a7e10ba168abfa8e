// Package agent is cairn-node: where IPAM, felix and the BGP speaker meet.
// It watches the cluster's objects through informers, keeps the speaker's
// peers and announcements and felix's desired state in line with them, and
// serves the CNI plugin's gRPC API on a unix socket.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/apis/client/clientset/versioned"
	cairninformers "github.com/cairn-net/cairn/apis/client/informers/externalversions"
	"github.com/cairn-net/cairn/bgp/peering"
	"github.com/cairn-net/cairn/bgp/speaker"
	"github.com/cairn-net/cairn/felix"
)

// Config configures the agent. Named fields; zero values mean defaults.
type Config struct {
	// NodeName is the Kubernetes Node this agent runs for.
	NodeName string
	// NodeIP is the node's BGP address; invalid means the Node's
	// InternalIP or cairn.dev/ipv4-address annotation.
	NodeIP netip.Addr
	// Kubeconfig path; empty means in-cluster configuration.
	Kubeconfig string
	// AgentSocket is where the CNI plugin reaches the agent.
	AgentSocket string
	// StateDir keeps per-endpoint records across agent restarts.
	StateDir string
	// SecretNamespace holds the Secrets BGP passwords refer to.
	SecretNamespace string
	// ResyncInterval bounds how stale the node's state may get.
	ResyncInterval time.Duration
	// StatusInterval is how often CairnNodeStatus is written.
	StatusInterval time.Duration
	// IPAMGC runs the cluster-wide IPAM garbage collector when this agent
	// holds the Lease (one leader among all agents).
	IPAMGC bool
	// IPAMGCInterval is the period of collection passes; IPAMGCGrace how
	// long something must look like garbage before it is removed.
	IPAMGCInterval, IPAMGCGrace time.Duration
	// Version is reported in CairnNodeStatus.
	Version string
	Logger  *slog.Logger
}

func (c *Config) defaults() error {
	if c.NodeName == "" {
		return errors.New("node name is required")
	}
	if c.AgentSocket == "" {
		c.AgentSocket = agentv1.DefaultSocketPath
	}
	if c.StateDir == "" {
		c.StateDir = "/var/lib/cairn"
	}
	if c.SecretNamespace == "" {
		c.SecretNamespace = "cairn-system"
	}
	if c.ResyncInterval == 0 {
		c.ResyncInterval = time.Minute
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = 10 * time.Second
	}
	if c.IPAMGCInterval == 0 {
		c.IPAMGCInterval = time.Minute
	}
	if c.IPAMGCGrace == 0 {
		c.IPAMGCGrace = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Run runs the agent until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	log := cfg.Logger.With("node", cfg.NodeName)
	restCfg, err := restConfig(cfg.Kubeconfig)
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	cairn, err := versioned.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("cairn client: %w", err)
	}
	node, err := waitForNode(ctx, kube, cfg.NodeName, log)
	if err != nil {
		return err
	}

	kubeInf := kubeinformers.NewSharedInformerFactory(kube, 0)
	cairnInf := cairninformers.NewSharedInformerFactory(cairn, 0)
	nodes := kubeInf.Core().V1().Nodes()
	pools := cairnInf.Cairn().V1alpha1().IPPools()
	configs := cairnInf.Cairn().V1alpha1().BGPConfigurations()
	peers := cairnInf.Cairn().V1alpha1().BGPPeers()
	blocks := cairnInf.Cairn().V1alpha1().IPAMBlocks()
	// Informer() registers each informer with its factory; Start starts
	// only registered ones.
	informers := []cache.SharedIndexInformer{nodes.Informer(), pools.Informer(), configs.Informer(), peers.Informer(), blocks.Informer()}
	kubeInf.Start(ctx.Done())
	cairnInf.Start(ctx.Done())
	log.Info("waiting for caches")
	for typ, ok := range kubeInf.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("sync cache of %v: %w", typ, ctx.Err())
		}
	}
	for typ, ok := range cairnInf.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("sync cache of %v: %w", typ, ctx.Err())
		}
	}

	clusterASN := func() uint32 {
		c, err := configs.Lister().Get("default")
		if err != nil || c.Spec.ASNumber == 0 {
			return peering.DefaultASN
		}
		return uint32(c.Spec.ASNumber)
	}
	info, err := peering.NodeInfoFrom(node, clusterASN())
	if err != nil {
		return err
	}
	if cfg.NodeIP.IsValid() {
		info.Addr = cfg.NodeIP
	}
	if !info.Addr.IsValid() || !info.Addr.Is4() {
		return fmt.Errorf("node %s has no IPv4 address for BGP: pass --node-ip or set an InternalIP", cfg.NodeName)
	}
	log = log.With("nodeIP", info.Addr)

	ipamAlloc, err := newAllocator(cairn, nodes.Lister(), cfg.NodeName, log)
	if err != nil {
		return err
	}
	alloc := ipamAllocator{a: ipamAlloc}
	fx, err := felix.New(felix.Config{NodeName: cfg.NodeName, Logger: log.With("component", "felix")})
	if err != nil {
		return fmt.Errorf("start felix: %w", err)
	}
	defer fx.Close()
	if _, err := felix.CheckNodeSettings(nil, log.With("component", "felix")); err != nil {
		return fmt.Errorf("check node settings: %w", err)
	}
	dp := felixDataplane{f: fx}
	spk, err := speaker.New(speakerConfig(info, configs.Lister(), log))
	if err != nil {
		return fmt.Errorf("create BGP speaker: %w", err)
	}
	endpoints, err := openEndpointStore(filepath.Join(cfg.StateDir, "endpoints"))
	if err != nil {
		return err
	}

	ctrl := &controller{
		log: log.With("component", "controller"), nodeName: cfg.NodeName, nodeAddr: info.Addr,
		queue: newQueue(), nodes: nodes.Lister(), pools: pools.Lister(), configs: configs.Lister(), peers: peers.Lister(),
		secrets: secretReader(kube, cfg.SecretNamespace), alloc: alloc, speaker: spk, dataplane: dp, clusterASN: clusterASN,
	}
	for _, inf := range informers {
		if _, err := inf.AddEventHandler(ctrl.handler()); err != nil {
			return fmt.Errorf("add event handler: %w", err)
		}
	}
	var ready readiness
	srv := &cniServer{log: log.With("component", "cni-server"), alloc: alloc, dataplane: dp, endpoints: endpoints, ready: ready.get, changed: ctrl.enqueue}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return fx.Run(ctx) })
	g.Go(func() error { ipamAlloc.Run(ctx, cfg.ResyncInterval); return nil })
	g.Go(func() error { relay(ctx, ipamAlloc.Changes(), ctrl.enqueue); return nil })
	g.Go(func() error { return spk.Run(ctx) })
	learned := &learnedHolder{}
	g.Go(func() error { forwardLearned(ctx, spk.Learned(), dp, learned); return nil })
	g.Go(func() error {
		if err := restoreEndpoints(ctx, endpoints, dp, log); err != nil {
			return err
		}
		ctrl.enqueue()
		ctrl.run(ctx, cfg.ResyncInterval)
		return nil
	})
	g.Go(func() error {
		st := &statusWriter{client: cairn, node: cfg.NodeName, version: cfg.Version, ctrl: ctrl, speaker: spk, learned: learned.get, log: log}
		st.run(ctx, cfg.StatusInterval)
		return nil
	})
	g.Go(func() error { return serveCNI(ctx, cfg.AgentSocket, srv, log) })
	if cfg.IPAMGC {
		g.Go(func() error { runIPAMGC(ctx, cfg, kube, cairn, log); return nil })
	}
	ready.set(true, "")
	log.Info("cairn-node running", "asn", info.ASN, "socket", cfg.AgentSocket)
	return g.Wait()
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	if err != nil {
		return nil, fmt.Errorf("load API server configuration: %w", err)
	}
	cfg.UserAgent = "cairn-node"
	// A burst of pod starts is one write per pod (the IPAM handle); the
	// client must not be the bottleneck.
	cfg.QPS, cfg.Burst = 200, 400
	return cfg, nil
}

// waitForNode waits for this node's Node object: the agent can start
// before the kubelet registered it, or while the API server is down.
func waitForNode(ctx context.Context, kube kubernetes.Interface, name string, log *slog.Logger) (*corev1.Node, error) {
	delay := 200 * time.Millisecond
	for {
		n, err := kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			return n, nil
		}
		if apierrors.IsNotFound(err) {
			log.Info("waiting for the Node object", "err", err)
		} else {
			log.Warn("cannot read the Node object; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for Node %s: %w (last error: %v)", name, ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// restoreEndpoints states every endpoint recorded before a restart, then
// tells felix the set is complete, so it never removes a live pod's route.
func restoreEndpoints(ctx context.Context, store *endpointStore, dp Dataplane, log *slog.Logger) error {
	var recs []endpointRecord
	for _, r := range store.all() {
		if r.HostIface != "" { // allocated, but ADD never finished
			recs = append(recs, r)
		}
	}
	var wg sync.WaitGroup
	for _, r := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := dp.SetEndpoint(sctx, Endpoint{HostIface: r.HostIface, Addrs: r.Addresses}); err != nil {
				// The pod's veth may be gone while we were down; CNI DEL
				// or GC will release it.
				log.Warn("restoring an endpoint failed", "iface", r.HostIface, "container", r.ContainerID, "err", err)
			}
		}()
	}
	wg.Wait()
	dp.EndpointsInSync()
	if len(recs) > 0 {
		log.Info("restored endpoints", "count", len(recs))
	}
	return ctx.Err()
}

// forwardLearned hands every new set of learned paths to felix as routes.
func forwardLearned(ctx context.Context, learned <-chan []speaker.Path, dp Dataplane, last *learnedHolder) {
	for {
		select {
		case <-ctx.Done():
			return
		case paths, ok := <-learned:
			if !ok {
				return
			}
			routes := learnedRoutes(paths)
			last.set(routes)
			dp.SetLearnedRoutes(routes)
		}
	}
}

// learnedHolder keeps the latest learned routes for the status writer.
type learnedHolder struct {
	mu     sync.Mutex
	routes []Route
}

func (h *learnedHolder) set(r []Route) { h.mu.Lock(); h.routes = r; h.mu.Unlock() }
func (h *learnedHolder) get() []Route {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.routes
}

func speakerConfig(info peering.NodeInfo, configs interface {
	Get(string) (*v1.BGPConfiguration, error)
}, log *slog.Logger) speaker.Config {
	sc := speaker.Config{RouterID: info.Addr, ASN: info.ASN, ListenPort: 179, Logger: log.With("component", "bgp"),
		ListenAddresses: []string{info.Addr.String()},
		GracefulRestart: &speaker.GRConfig{Enabled: true}}
	if c, err := configs.Get("default"); err == nil {
		if c.Spec.ListenPort != 0 {
			sc.ListenPort = c.Spec.ListenPort
		}
		if gr := c.Spec.GracefulRestart; gr != nil {
			sc.GracefulRestart.Enabled = gr.Enabled == nil || *gr.Enabled
			if gr.RestartTime != nil {
				sc.GracefulRestart.RestartTime = gr.RestartTime.Duration
			}
		}
	}
	return sc
}

// serveCNI serves the plugin's API on a unix socket only root can reach.
func serveCNI(ctx context.Context, path string, srv *cniServer, log *slog.Logger) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create socket directory: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("restrict socket %s: %w", path, err)
	}
	gs := grpc.NewServer()
	agentv1.RegisterAgentServer(gs, srv)
	go func() {
		<-ctx.Done()
		gs.GracefulStop()
	}()
	log.Info("serving the CNI plugin", "socket", path)
	if err := gs.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve CNI socket: %w", err)
	}
	return nil
}

// relay calls fn for every signal on ch until ctx ends.
func relay(ctx context.Context, ch <-chan struct{}, fn func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
			fn()
		}
	}
}

// readiness is what Status and Allocate report.
type readiness struct {
	mu  sync.Mutex
	ok  bool
	why string
}

func (r *readiness) set(ok bool, why string) { r.mu.Lock(); r.ok, r.why = ok, why; r.mu.Unlock() }
func (r *readiness) get() (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ok && r.why == "" {
		return false, "starting"
	}
	return r.ok, r.why
}
