// Package agent is cairn-node: where IPAM, felix and the BGP speaker meet.
// It watches the cluster's objects through informers, keeps the speaker's
// peers and announcements and felix's desired state in line with them, and
// serves the CNI plugin's gRPC API on a unix socket.
package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	"github.com/cairn-net/cairn/bgp/peering"
	"github.com/cairn-net/cairn/bgp/speaker"
	"github.com/cairn-net/cairn/felix"
	"github.com/cairn-net/cairn/felix/kernel"
	"github.com/cairn-net/cairn/ipam/allocator"
	"github.com/cairn-net/cairn/ipam/gc"
	"github.com/cairn-net/cairn/ipam/kubestore"
)

// Options configure the agent. Named fields; zero values mean the
// defaults of DefaultOptions.
type Options struct {
	// NodeName is the Kubernetes Node this agent runs for.
	NodeName string
	// NodeIP is the node's BGP address; invalid means the Node's
	// InternalIP or cairn.dev/ipv4-address annotation.
	NodeIP netip.Addr
	// NodeIP6 is the node's IPv6 BGP address; invalid means the Node's
	// IPv6 InternalIP or cairn.dev/ipv6-address annotation, if any. With
	// one, the node also has IPv6 sessions and listens on it.
	NodeIP6 netip.Addr
	// Kubeconfig path; empty means in-cluster configuration.
	Kubeconfig string
	// AgentSocket is where the CNI plugin reaches the agent.
	AgentSocket string
	// StateDir keeps per-endpoint records across agent restarts.
	StateDir string
	// SecretNamespace holds the Secrets BGP passwords refer to, and the
	// IPAM GC Lease.
	SecretNamespace string
	// ResyncInterval bounds how stale the node's state may get.
	ResyncInterval time.Duration
	// StatusInterval is how often CairnNodeStatus is rewritten unchanged.
	StatusInterval time.Duration
	// IPAMGC runs the cluster-wide IPAM garbage collector when this agent
	// holds the Lease (one leader among all agents). Not defaulted: false
	// is off.
	IPAMGC bool
	// IPAMGCInterval is the period of collection passes; IPAMGCGrace how
	// long something must look like garbage before it is removed.
	IPAMGCInterval, IPAMGCGrace time.Duration
	// LoadBalancerIPAM gives Services of type LoadBalancer addresses from
	// LoadBalancer pools when this agent holds its Lease (one leader among
	// all agents). Not defaulted: false is off.
	LoadBalancerIPAM bool
	// ObjectStatus writes the status of BGPPeers, BGPConfigurations,
	// BGPFilters and IPPools, and Events on them, when this agent holds
	// its Lease (one writer among all agents). Not defaulted: false is
	// off.
	ObjectStatus bool
	// Version is reported in CairnNodeStatus.
	Version string
	// LogLevel, when set, is the level of Logger's handler: the default
	// BGPConfiguration's logSeverityScreen sets it while the agent runs,
	// and its value at start applies while the field is empty.
	LogLevel *slog.LevelVar
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// MetricsAddr is where Prometheus metrics are served (/metrics); empty
	// serves none. Not defaulted: DefaultOptions has ":9091".
	MetricsAddr string
	// HealthAddr is where the kubelet's probes are answered (/livez,
	// /readyz), from the start of Run; empty serves none. Not defaulted:
	// DefaultOptions has DefaultHealthAddress.
	HealthAddr string
	// ProcSysNet is where felix finds the node's net sysctls; default
	// /proc/sys/net. In a container, where the host's is mounted: the
	// runtime mounts the container's /proc/sys read-only.
	ProcSysNet string
	// Metrics is the registry the agent's metrics go to; nil means a new
	// one (never Prometheus's global registry).
	Metrics *prometheus.Registry
}

// DefaultOptions are the agent's defaults; cmd/cairn-node shows them as
// its flags' defaults.
func DefaultOptions() Options {
	return Options{
		AgentSocket:      agentv1.DefaultSocketPath,
		StateDir:         "/var/lib/cairn",
		SecretNamespace:  "cairn-system",
		ResyncInterval:   time.Minute,
		StatusInterval:   10 * time.Second,
		IPAMGC:           true,
		IPAMGCInterval:   time.Minute,
		IPAMGCGrace:      gc.DefaultGrace,
		LoadBalancerIPAM: true,
		ObjectStatus:     true,
		MetricsAddr:      ":9091",
		HealthAddr:       DefaultHealthAddress,
		ProcSysNet:       kernel.DefaultProcSysNet,
	}
}

func (o Options) withDefaults() (Options, error) {
	if o.NodeName == "" {
		return o, errors.New("node name is required")
	}
	d := DefaultOptions()
	o.AgentSocket = cmp.Or(o.AgentSocket, d.AgentSocket)
	o.StateDir = cmp.Or(o.StateDir, d.StateDir)
	o.SecretNamespace = cmp.Or(o.SecretNamespace, d.SecretNamespace)
	o.ResyncInterval = cmp.Or(o.ResyncInterval, d.ResyncInterval)
	o.StatusInterval = cmp.Or(o.StatusInterval, d.StatusInterval)
	o.IPAMGCInterval = cmp.Or(o.IPAMGCInterval, d.IPAMGCInterval)
	o.IPAMGCGrace = cmp.Or(o.IPAMGCGrace, d.IPAMGCGrace)
	o.ProcSysNet = cmp.Or(o.ProcSysNet, d.ProcSysNet)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Run runs the agent until ctx is done.
func Run(ctx context.Context, opts Options) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	// Probes are answered from the start: live, and not ready while the
	// agent waits for its Node and caches.
	h := newNodeHealth(opts, time.Now)
	if opts.HealthAddr != "" {
		_, stop, err := startHealthServer(opts.HealthAddr, h, opts.Logger.With("node", opts.NodeName))
		if err != nil {
			return err
		}
		defer stop()
	}
	cl, err := connect(opts.Kubeconfig)
	if err != nil {
		return err
	}
	a, err := prepare(ctx, opts, cl)
	if err != nil {
		return err
	}
	a.health = h
	fx, err := startFelix(opts, a.log, a.metrics.observePass)
	if err != nil {
		return err
	}
	defer fx.Close()
	so := speakerOptions(a.self, a.inf, a.log)
	so.ForwardingStateKept = forwardingStateKept(fx, a.log) // before fx.Run adopts or changes anything
	spk, err := speaker.New(so)
	if err != nil {
		return fmt.Errorf("create BGP speaker: %w", err)
	}
	if err := a.wire(fx, spk); err != nil {
		return err
	}
	h.attach(a.ctrl.synced, fx, func() { spk.PeerStates() })
	g, ctx := errgroup.WithContext(ctx)
	// The speaker stops once the agent knows whether its node is leaving
	// the cluster, which decides how its sessions close.
	spkCtx, stopSpeaker := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSpeaker()
	g.Go(func() error {
		<-ctx.Done()
		decideLeaving(a.cl.kube, opts.NodeName, a.ctrl.isDeparted(), spk, a.log)
		stopSpeaker()
		return nil
	})
	g.Go(func() error { return fx.Run(ctx) })
	g.Go(func() error { return h.runSpeaker(func() error { return spk.Run(spkCtx) }) })
	g.Go(func() error { forwardLearned(ctx, spk.Learned(), fx, &a.learned); return nil })
	g.Go(func() error { return a.run(ctx) })
	return g.Wait()
}

// agent is one node's agent: its caches, allocator and loops. felix and
// the speaker are handed to wire; tests hand it fakes.
type agent struct {
	opts      Options
	log       *slog.Logger // tagged with the node
	cl        clients
	inf       *informers
	store     cachedStore
	self      peering.NodeInfo
	alloc     *allocator.Allocator
	endpoints *endpointStore
	learned   learnedHolder
	ready     readiness
	metrics   *metrics
	// health is what the probes read: Run's, else wire makes one.
	health *nodeHealth

	// Set by wire.
	ctrl      *controller
	cni       *cniServer
	status    *statusWriter
	dataplane restorer
}

// restorer is the part of felix that gets endpoints back after a restart.
type restorer interface {
	SetEndpoint(ctx context.Context, ep felix.Endpoint) error
	EndpointsInSync()
}

// prepare waits for the Node and the caches, and builds what does not
// depend on felix or the speaker.
func prepare(ctx context.Context, opts Options, cl clients) (*agent, error) {
	a := &agent{opts: opts, log: opts.Logger.With("node", opts.NodeName), cl: cl}
	var err error
	if a.metrics, err = newMetrics(opts.Metrics, opts.Version); err != nil {
		return nil, err
	}
	node, err := waitForNode(ctx, cl.kube, opts.NodeName, a.log)
	if err != nil {
		return nil, err
	}
	if a.inf, err = watchCluster(ctx, cl, a.log); err != nil {
		return nil, err
	}
	if a.self, err = nodeIdentity(node, a.inf, opts.NodeIP, opts.NodeIP6); err != nil {
		return nil, err
	}
	a.log = a.log.With("nodeIP", a.self.Addr)
	if a.self.Addr6.IsValid() {
		a.log = a.log.With("nodeIP6", a.self.Addr6)
	}
	a.store = cachedStore{Store: kubestore.New(cl.cairn), inf: a.inf}
	// The allocator tags its lines with the node itself.
	if a.alloc, err = newAllocator(a.store, a.inf.nodeLister, opts.NodeName, opts.Logger); err != nil {
		return nil, err
	}
	if a.endpoints, err = openEndpointStore(filepath.Join(opts.StateDir, "endpoints")); err != nil {
		return nil, err
	}
	return a, nil
}

// dataplane is felix as the agent's parts use it.
type dataplane interface {
	blockDataplane
	endpointDataplane
	restorer
	// RefusedRoutes are the learned routes not installed, and why.
	RefusedRoutes() map[netip.Prefix]string
}

// nodeSpeaker is the BGP speaker as the agent's parts use it.
type nodeSpeaker interface {
	peerSpeaker
	statusSpeaker
}

// statusSpeaker is what the status writer and cairnctl read of the speaker.
type statusSpeaker interface {
	PeerStates() []speaker.PeerState
	// RefusedPaths are paths the import rules refuse (a capped list) and
	// how many there are.
	RefusedPaths() ([]speaker.RefusedPath, int)
}

// wire builds the controller, the CNI server and the status writer around
// felix and the speaker, and subscribes the controller to the caches.
func (a *agent) wire(dp dataplane, spk nodeSpeaker) error {
	a.dataplane = dp
	if a.health == nil {
		a.health = newNodeHealth(a.opts, time.Now)
	}
	a.ctrl = &controller{beat: a.health.controller,
		log: a.log.With("component", "controller"), nodeName: a.opts.NodeName, nodeAddr: a.self.Addr, nodeAddr6: a.self.Addr6, queue: newQueue(),
		logLevel: newLogLevel(a.opts.LogLevel),
		listers: listers{nodes: a.inf.nodeLister, pools: a.inf.poolLister, configs: a.inf.configLister,
			peers: a.inf.peerLister, filters: a.inf.filterLister, blocks: a.inf.blockLister, affinities: a.inf.affinityLister,
			services: serviceListers{services: a.inf.serviceLister, slices: a.inf.sliceLister}},
		speaker: spk, dataplane: dp,
	}
	a.ctrl.secrets = newSecretWatch(a.cl.kube, a.opts.SecretNamespace, a.ctrl.enqueue)
	a.cni = &cniServer{log: a.log.With("component", "cni-server"), node: a.opts.NodeName, alloc: countingAllocator{a.alloc, a.metrics}, dataplane: dp, endpoints: a.endpoints, ready: a.ready.get}
	a.status = &statusWriter{contact: a.health.api, client: a.cl.cairn, node: a.opts.NodeName, version: a.opts.Version, ctrl: a.ctrl,
		speaker: spk, learned: a.learned.get, refused: dp.RefusedRoutes, log: a.log.With("component", "status"),
		auth: authWatch{read: netstatFile(defaultNetstat)}, writes: a.metrics.statusWrites}
	// A pool change reaches the allocator at once, not after its cache's TTL.
	if _, err := a.inf.pools.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { a.alloc.InvalidatePools() },
		UpdateFunc: func(any, any) { a.alloc.InvalidatePools() },
		DeleteFunc: func(any) { a.alloc.InvalidatePools() },
	}); err != nil {
		return fmt.Errorf("add event handler: %w", err)
	}
	if err := a.metrics.reg.Register(a.nodeCollector(dp, spk)); err != nil {
		return fmt.Errorf("register node metrics: %w", err)
	}
	return a.ctrl.watchEvents(a.inf)
}

// run runs the agent's own loops until ctx ends: the allocator's
// housekeeping, the controller, the status writer, the CNI socket and,
// when enabled, the cluster-wide loops (IPAM garbage collector,
// LoadBalancer IPAM, object status) that run while this agent leads them.
func (a *agent) run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { a.alloc.Run(ctx, a.opts.ResyncInterval); return nil })
	g.Go(func() error { return a.runController(ctx) })
	g.Go(func() error { a.status.run(ctx, a.opts.StatusInterval); return nil })
	g.Go(func() error {
		return serveCNI(ctx, a.opts.AgentSocket, a.api(), a.log, cniDrain, grpc.UnaryInterceptor(a.metrics.cniInterceptor))
	})
	if a.opts.MetricsAddr != "" {
		serve, err := serveHTTP(ctx, a.opts.MetricsAddr, a.metrics.handler(), a.log)
		if err != nil {
			return err
		}
		g.Go(serve)
	}
	if a.opts.IPAMGC {
		gc := ipamGC{opts: a.opts, kube: a.cl.kube, store: a.store, nodes: a.inf.nodeLister, log: a.log}
		g.Go(func() error { gc.run(ctx); return nil })
	}
	if a.opts.LoadBalancerIPAM {
		lb := lbIPAM{opts: a.opts, kube: a.cl.kube, pools: a.inf.pools, configs: a.inf.configs, log: a.log}
		g.Go(func() error { lb.run(ctx); return nil })
	}
	if a.opts.ObjectStatus {
		st, err := newObjectStatus(a)
		if err != nil {
			return err
		}
		g.Go(func() error { st.run(ctx); return nil })
	}
	a.ready.set(true, "")
	a.log.Info("cairn-node running", "asn", a.self.ASN, "socket", a.opts.AgentSocket)
	return g.Wait()
}

// runController restates the endpoints of before a restart, then runs the
// controller.
func (a *agent) runController(ctx context.Context) error {
	if err := restoreEndpoints(ctx, a.endpoints, a.dataplane, a.log); err != nil {
		return err
	}
	a.ctrl.enqueue()
	a.ctrl.run(ctx, a.opts.ResyncInterval)
	return nil
}

// nodeIdentity is the node's BGP identity: from its Node object, with the
// address the agent was given, if any.
func nodeIdentity(node *corev1.Node, inf *informers, addr, addr6 netip.Addr) (peering.NodeInfo, error) {
	cfg, err := inf.configLister.Get("default")
	if err != nil {
		cfg = nil // none, or not readable: the default AS
	}
	info, err := peering.NodeInfoFrom(node, clusterASN(cfg))
	if err != nil {
		return info, err
	}
	if addr.IsValid() {
		info.Addr = addr
	}
	if addr6.IsValid() {
		info.Addr6 = addr6
	}
	if !info.Addr.IsValid() || !info.Addr.Is4() {
		return info, fmt.Errorf("node %s has no IPv4 address for BGP: pass --node-ip or set an InternalIP", node.Name)
	}
	return info, nil
}

// startFelix creates felix after checking the node's kernel settings.
func startFelix(opts Options, log *slog.Logger, onPass func(felix.Pass)) (*felix.Felix, error) {
	k, err := kernel.NewNetlink(kernel.NetlinkOptions{ProcSysNet: opts.ProcSysNet})
	if err != nil {
		return nil, fmt.Errorf("check node settings: open kernel: %w", err)
	}
	_, err = felix.CheckNodeSettings(k, log.With("component", "felix"))
	k.Close()
	if err != nil {
		return nil, fmt.Errorf("check node settings: %w", err)
	}
	// felix tags its lines with the node and its component itself.
	fx, err := felix.New(felix.Options{NodeName: opts.NodeName, Logger: opts.Logger, OnPass: onPass, ProcSysNet: opts.ProcSysNet})
	if err != nil {
		return nil, fmt.Errorf("start felix: %w", err)
	}
	return fx, nil
}

// forwardingStateKept reports whether the node kept forwarding across this
// agent's restart: the routes of felix's last run are still in the kernel
// (felix adopts them). Not knowing counts as not kept: peers then flush our
// routes when the session comes back and relearn them, a flap rather than
// traffic sent to a node that would drop it.
func forwardingStateKept(fx *felix.Felix, log *slog.Logger) bool {
	n, err := fx.CountOwnRoutes()
	if err != nil {
		log.Warn("cannot tell whether forwarding state was kept: BGP graceful restart will not claim it", "err", err)
		return false
	}
	log.Info("routes of an earlier run found in the kernel", "routes", n, "forwardingStateKept", n > 0)
	return n > 0
}

// speakerOptions are the speaker's settings from the node's identity and
// its effective BGPConfiguration; the controller changes the global ones
// later (SetGlobal) as the cluster's objects change.
func speakerOptions(self peering.NodeInfo, inf *informers, log *slog.Logger) speaker.Options {
	def, _ := inf.configLister.Get(peering.DefaultConfigName)
	node, _ := inf.configLister.Get(peering.NodeConfigName(self.Name))
	g := peering.Global(self, peering.EffectiveConfig(def, node))
	// The max-prefix restart time comes with SetGlobal, live, before any
	// peer is set.
	return speaker.Options{RouterID: self.Addr, ASN: g.ASN, ListenPort: g.ListenPort, Logger: log,
		ListenAddresses: listenAddresses(self), GracefulRestart: &g.GracefulRestart,
		// Used only for a family a session of the other family carries
		// (BGPPeer dualStackAddressFamily).
		NextHop4: self.Addr, NextHop6: self.Addr6}
}

// listenAddresses are the node's BGP addresses, one per family it has:
// peers of both families connect to us.
func listenAddresses(self peering.NodeInfo) []string {
	var out []string
	for _, a := range self.Addrs() {
		out = append(out, a.String())
	}
	return out
}
