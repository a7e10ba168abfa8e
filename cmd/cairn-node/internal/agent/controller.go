package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/util/workqueue"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	cairnlisters "github.com/cairn-net/cairn/apis/client/listers/cairn/v1alpha1"
	"github.com/cairn-net/cairn/bgp/peering"
	"github.com/cairn-net/cairn/bgp/speaker"
	"github.com/cairn-net/cairn/cmd/cairn-node/internal/health"
	"github.com/cairn-net/cairn/felix"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/pools"
)

// syncKey is the only key of the work queue: every event leads to one
// recomputation of the node's whole desired state, which is cheap.
const syncKey = "node"

// peerSpeaker is the part of the BGP speaker the controller drives.
type peerSpeaker interface {
	SetGlobal(g speaker.Global) error
	SetPeers(peers []speaker.Peer) error
	SetAdvertisements(ads []speaker.Advertisement) error
	SetImportFilter(allowed []netip.Prefix)
	SetHoldings(hs []speaker.Holding)
}

// blockDataplane is the part of felix the controller drives.
type blockDataplane interface {
	SetOwnedBlocks(blocks []netip.Prefix)
	SetPools(pools []felix.Pool)
}

// passwords resolves BGP passwords from the Secrets it was told to watch.
type passwords interface {
	watch(ctx context.Context, names []string)
	password(ref v1.SecretKeyRef) (string, error)
}

// listers are the caches a sync reads; it reads nothing else.
type listers struct {
	nodes      corelisters.NodeLister
	pools      cairnlisters.IPPoolLister
	configs    cairnlisters.BGPConfigurationLister
	peers      cairnlisters.BGPPeerLister
	filters    cairnlisters.BGPFilterLister
	blocks     cairnlisters.IPAMBlockLister
	affinities cairnlisters.BlockAffinityLister
	services   serviceListers
}

// controller turns the cluster's objects into the speaker's peers and
// announcements and felix's blocks and pools.
type controller struct {
	// beat is marked as the loop goes round, for the liveness probe.
	beat     *health.Beat
	log      *slog.Logger
	nodeName string
	nodeAddr netip.Addr
	// nodeAddr6 is the node's IPv6 BGP address as the agent was given it
	// (invalid: the Node's, if any).
	nodeAddr6 netip.Addr
	queue     workqueue.TypedRateLimitingInterface[string]
	listers   listers
	secrets   passwords
	speaker   peerSpeaker
	dataplane blockDataplane
	logLevel  logLevel

	mu   sync.Mutex
	last syncResult
	// departed is the last sync's clusterState.departed, to log changes.
	departed bool
}

// syncResult is the last computed state, for the status writer.
type syncResult struct {
	peers     []speaker.Peer
	announced []speaker.Advertisement
	blocks    []netip.Prefix
	err       error
	at        time.Time
}

func newQueue() workqueue.TypedRateLimitingInterface[string] {
	return workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedMaxOfRateLimiter(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 30*time.Second),
		),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "cairn-node"},
	)
}

// enqueue is the only thing event handlers do.
func (c *controller) enqueue() { c.queue.Add(syncKey) }

// run processes the queue until ctx ends, and resyncs every interval.
func (c *controller) run(ctx context.Context, resync time.Duration) {
	go func() {
		<-ctx.Done()
		c.queue.ShutDown()
	}()
	go c.tick(ctx, resync)
	c.beat.Mark(time.Now())
	for {
		key, quit := c.queue.Get()
		if quit {
			return
		}
		err := c.sync(ctx)
		c.beat.Mark(time.Now())
		if err != nil {
			c.log.Warn("sync failed; retrying", "err", err)
			c.queue.AddRateLimited(key)
		} else {
			c.queue.Forget(key)
		}
		c.queue.Done(key)
	}
}

// tick enqueues a full recomputation every interval until ctx ends.
func (c *controller) tick(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.enqueue()
		}
	}
}

// sync recomputes everything from the caches. It is idempotent; partial
// problems (one bad BGPPeer) are reported and the rest is still applied.
func (c *controller) sync(ctx context.Context) error {
	st, err := c.read()
	if err != nil {
		return err
	}
	c.noteDeparture(st.departed)
	c.logLevel.apply(st.config, c.log)
	peers, perrs := c.applyPeers(ctx, st)
	ads, aerrs := c.applyRoutes(st)
	err = errors.Join(slices.Concat(st.problems, perrs, aerrs)...)
	c.mu.Lock()
	c.last = syncResult{peers: peers, announced: ads, blocks: st.owned, err: err, at: time.Now()}
	c.mu.Unlock()
	return err
}

// clusterState is what one sync reads from the caches.
type clusterState struct {
	// config is this node's effective configuration: the default with its
	// node.<name> overrides (peering.EffectiveConfig); nil: there is none.
	config          *v1.BGPConfiguration
	pools           []v1.IPPool
	peers           []v1.BGPPeer
	filters         []v1.BGPFilter
	self            peering.NodeInfo
	nodes           []peering.NodeInfo
	owned, borrowed []netip.Prefix
	// holdings are every block's owner and every borrowed address's
	// borrower: who may announce what inside the blocks.
	holdings []ipam.Holding
	// blocks are every IPAM block's cidr: a block outside every pool (its
	// pool deleted while pods run) stays importable.
	blocks []netip.Prefix
	// services are the cluster's Services as announcing needs them; nil
	// when the configuration announces none.
	services []peering.Service
	// departed: this node's Node object is gone from the cluster (see
	// peering.Departed).
	departed bool
	// problems are errors with single objects; the rest still applies.
	problems []error
}

func (c *controller) read() (clusterState, error) {
	var st clusterState
	configs, err := c.listers.configs.List(labels.Everything())
	if err != nil {
		return st, fmt.Errorf("list BGPConfigurations: %w", err)
	}
	byName := map[string]*v1.BGPConfiguration{}
	for _, cfg := range configs {
		byName[cfg.Name] = cfg
	}
	def := byName[peering.DefaultConfigName]
	st.config = peering.EffectiveConfig(def, byName[peering.NodeConfigName(c.nodeName)])
	pools, err := c.listers.pools.List(labels.Everything())
	if err != nil {
		return st, fmt.Errorf("list IPPools: %w", err)
	}
	peers, err := c.listers.peers.List(labels.Everything())
	if err != nil {
		return st, fmt.Errorf("list BGPPeers: %w", err)
	}
	filters, err := c.listers.filters.List(labels.Everything())
	if err != nil {
		return st, fmt.Errorf("list BGPFilters: %w", err)
	}
	blocks, err := c.listers.blocks.List(labels.Everything())
	if err != nil {
		return st, fmt.Errorf("list IPAMBlocks: %w", err)
	}
	affinities, err := c.listers.affinities.List(labels.Everything())
	if err != nil {
		return st, fmt.Errorf("list BlockAffinities: %w", err)
	}
	st.pools, st.peers, st.filters = deref(pools), deref(peers), deref(filters)
	slices.SortFunc(st.peers, func(a, b v1.BGPPeer) int { return strings.Compare(a.Name, b.Name) })
	st.self, st.nodes, st.problems = c.nodeInfos(clusterASN(def), func(node string) uint16 {
		return peering.ListenPort(peering.EffectiveConfig(def, byName[peering.NodeConfigName(node)]))
	})
	if announcesServices(st.config) {
		if st.services, err = c.listers.services.list(c.nodeName); err != nil {
			return st, fmt.Errorf("list Services: %w", err)
		}
	}
	if _, err := c.listers.nodes.Get(c.nodeName); apierrors.IsNotFound(err) {
		st.departed = true
	}
	st.holdings = ipam.Holdings(blocks, affinities)
	st.owned, st.borrowed = ipam.NodeRoutes(c.nodeName, blocks, affinities)
	for _, b := range blocks {
		if p, err := ipam.BlockPrefix(b); err == nil {
			st.blocks = append(st.blocks, p)
		}
	}
	return st, nil
}

// applyPeers hands the node's BGP sessions to the speaker.
func (c *controller) applyPeers(ctx context.Context, st clusterState) ([]speaker.Peer, []error) {
	c.secrets.watch(ctx, peering.SecretNames(st.config, st.peers))
	// A password that cannot be read for now keeps its sessions as they
	// were last set.
	in := peering.PeersInput{Self: st.self, Nodes: st.nodes, Config: st.config, Peers: st.peers, Filters: st.filters, Previous: c.lastResult().peers}
	var peers []speaker.Peer
	var errs []error
	if st.departed {
		// The Node (and its AS annotation) is gone: the speaker keeps the
		// AS and port it runs with, or the router sessions it keeps would
		// reset (Bad Peer AS) before their routes are withdrawn.
		peers = peering.Departed(in.Previous)
	} else {
		// Before the peers: they are checked against this AS.
		if err := c.speaker.SetGlobal(peering.Global(st.self, st.config)); err != nil {
			errs = append(errs, err)
		}
		var perrs []error
		peers, perrs = peering.Peers(in, c.secrets.password)
		errs = append(errs, perrs...)
	}
	if err := c.speaker.SetPeers(peers); err != nil {
		errs = append(errs, fmt.Errorf("set BGP peers: %w", err))
	}
	return peers, errs
}

// applyRoutes hands the node's blocks and pools to felix, and what it
// announces and may learn to the speaker.
func (c *controller) applyRoutes(st clusterState) ([]speaker.Advertisement, []error) {
	c.dataplane.SetOwnedBlocks(st.owned)
	c.dataplane.SetPools(felixPools(st.pools, c.nodeLabels()))
	c.speaker.SetImportFilter(peering.ImportFilter(st.pools, st.blocks))
	c.speaker.SetHoldings(speakerHoldings(st.holdings, c.nodeName, st.nodes))
	var ads []speaker.Advertisement
	var errs []error
	if !st.departed {
		ads, errs = peering.Advertisements(peering.ExportInput{Owned: st.owned, Borrowed: st.borrowed, Pools: st.pools, Config: st.config, Services: st.services})
	}
	if err := c.speaker.SetAdvertisements(ads); err != nil {
		errs = append(errs, fmt.Errorf("set BGP advertisements: %w", err))
	}
	return ads, errs
}

// speakerHoldings gives each holding the addresses of the node holding it,
// so the speaker can tell a path from that node (its next hop) from one
// relayed by anyone else.
func speakerHoldings(hs []ipam.Holding, self string, nodes []peering.NodeInfo) []speaker.Holding {
	addrs := map[string][]netip.Addr{}
	for _, n := range nodes {
		for _, a := range []netip.Addr{n.Addr, n.Addr6} {
			if a.IsValid() {
				addrs[n.Name] = append(addrs[n.Name], a)
			}
		}
	}
	out := make([]speaker.Holding, 0, len(hs))
	for _, h := range hs {
		out = append(out, speaker.Holding{Prefix: h.Prefix, NextHops: addrs[h.Node], Local: h.Node != "" && h.Node == self, Borrowed: h.Borrowed})
	}
	return out
}

// noteDeparture logs when this node's Node object goes or comes back.
func (c *controller) noteDeparture(departed bool) {
	c.mu.Lock()
	changed := c.departed != departed
	c.departed = departed
	c.mu.Unlock()
	switch {
	case changed && departed:
		c.log.Warn("this node's Node object was deleted: withdrawing every route and closing node sessions; local pods keep their routes")
	case changed:
		c.log.Info("this node's Node object is back: announcing and peering again")
	}
}

// isDeparted reports whether the last sync found this node's Node gone.
func (c *controller) isDeparted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.departed
}

// synced reports whether a sync has applied the node's state.
func (c *controller) synced() bool { return !c.lastResult().at.IsZero() }

func (c *controller) lastResult() syncResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// nodeInfos reads every Node's BGP identity; this node's address is the
// one the agent was started with when given.
// port gives each node's listen port.
func (c *controller) nodeInfos(asn uint32, port func(node string) uint16) (peering.NodeInfo, []peering.NodeInfo, []error) {
	self := peering.NodeInfo{Name: c.nodeName, Addr: c.nodeAddr, Addr6: c.nodeAddr6, ASN: asn, Port: port(c.nodeName)}
	nodes, err := c.listers.nodes.List(labels.Everything())
	if err != nil {
		return self, nil, []error{fmt.Errorf("list nodes: %w", err)}
	}
	slices.SortFunc(nodes, func(a, b *corev1.Node) int { return strings.Compare(a.Name, b.Name) })
	var errs []error
	infos := make([]peering.NodeInfo, 0, len(nodes))
	for _, n := range nodes {
		info, err := peering.NodeInfoFrom(n, asn)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		info.Port = port(n.Name)
		if n.Name == c.nodeName {
			if c.nodeAddr.IsValid() {
				info.Addr = c.nodeAddr
			}
			if c.nodeAddr6.IsValid() {
				info.Addr6 = c.nodeAddr6
			}
			self = info
		}
		infos = append(infos, info)
	}
	return self, infos, errs
}

// clusterASN is the cluster's AS number: the default BGPConfiguration's,
// else peering.DefaultASN.
func clusterASN(cfg *v1.BGPConfiguration) uint32 {
	if cfg == nil || cfg.Spec.ASNumber == 0 {
		return peering.DefaultASN
	}
	return uint32(cfg.Spec.ASNumber)
}

// deref copies the objects a lister returns: peering takes values.
func deref[T any](in []*T) []T {
	out := make([]T, len(in))
	for i, p := range in {
		out[i] = *p
	}
	return out
}

// felixPools is what felix needs of the pools: their CIDRs, NAT, and
// whether this node's pods take addresses from them (an IPv6 one turns on
// IPv6 forwarding).
func felixPools(all []v1.IPPool, nodeLabels map[string]string) []felix.Pool {
	var out []felix.Pool
	for i := range all {
		c, err := netip.ParsePrefix(all[i].Spec.CIDR)
		if err != nil {
			continue
		}
		p := pools.Parse(&all[i])
		serves := p.Invalid == nil && p.Workload && p.Selects(nodeLabels) // a LoadBalancer pool serves Services, not pods
		out = append(out, felix.Pool{CIDR: c.Masked(), NATOutgoing: all[i].Spec.NATOutgoing, ServesNode: serves})
	}
	return out
}

// nodeLabels are this node's labels as the informer has them; nil when
// the Node is not known yet.
func (c *controller) nodeLabels() map[string]string {
	n, err := c.listers.nodes.Get(c.nodeName)
	if err != nil {
		return nil
	}
	return n.Labels
}
