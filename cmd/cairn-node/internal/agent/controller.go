package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	cairnlisters "github.com/cairn-net/cairn/apis/client/listers/cairn/v1alpha1"
	"github.com/cairn-net/cairn/bgp/peering"
	"github.com/cairn-net/cairn/bgp/speaker"
)

// syncKey is the only key of the work queue: every event leads to one
// recomputation of the node's whole desired state, which is cheap.
const syncKey = "node"

// Speaker is the part of the BGP speaker the controller drives.
type Speaker interface {
	SetPeers(peers []speaker.Peer) error
	SetAdvertisements(ads []speaker.Advertisement) error
	SetImportFilter(allowed []netip.Prefix)
	PeerStates() []speaker.PeerState
}

// controller turns the cluster's objects and the allocator's blocks into
// the speaker's peers and announcements and felix's blocks and pools.
type controller struct {
	log        *slog.Logger
	nodeName   string
	nodeAddr   netip.Addr
	queue      workqueue.TypedRateLimitingInterface[string]
	nodes      corelisters.NodeLister
	pools      cairnlisters.IPPoolLister
	configs    cairnlisters.BGPConfigurationLister
	peers      cairnlisters.BGPPeerLister
	secrets    peering.Secrets
	alloc      Allocator
	speaker    Speaker
	dataplane  Dataplane
	clusterASN func() uint32

	mu   sync.Mutex
	last syncResult
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

func (c *controller) handler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.enqueue() },
		UpdateFunc: func(any, any) { c.enqueue() },
		DeleteFunc: func(any) { c.enqueue() },
	}
}

// run processes the queue until ctx ends, and resyncs every interval.
func (c *controller) run(ctx context.Context, resync time.Duration) {
	go func() {
		<-ctx.Done()
		c.queue.ShutDown()
	}()
	go func() {
		t := time.NewTicker(resync)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				c.enqueue()
			}
		}
	}()
	for {
		key, quit := c.queue.Get()
		if quit {
			return
		}
		err := c.sync(ctx)
		if err != nil {
			c.log.Warn("sync failed; retrying", "err", err)
			c.queue.AddRateLimited(key)
		} else {
			c.queue.Forget(key)
		}
		c.queue.Done(key)
	}
}

// sync recomputes everything from the caches and the allocator. It is
// idempotent; partial problems (one bad BGPPeer) are reported and the rest
// is still applied.
func (c *controller) sync(ctx context.Context) error {
	var errs []error
	cfg, err := c.configs.Get("default")
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("read BGPConfiguration default: %w", err)
	}
	if apierrors.IsNotFound(err) {
		cfg = nil
	}
	pools, err := c.pools.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list IPPools: %w", err)
	}
	poolVals := derefPools(pools)

	self, infos, nerrs := c.nodeInfos()
	errs = append(errs, nerrs...)
	bgpPeers, err := c.peers.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list BGPPeers: %w", err)
	}
	peerList, perrs := peering.Peers(peering.PeersInput{Self: self, Nodes: infos, Config: cfg, Peers: derefPeers(bgpPeers)}, c.secrets)
	errs = append(errs, perrs...)
	if err := c.speaker.SetPeers(peerList); err != nil {
		errs = append(errs, fmt.Errorf("set BGP peers: %w", err))
	}

	owned, err := c.alloc.OwnedBlocks(ctx)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("read owned blocks: %w", err))...)
	}
	borrowed, err := c.alloc.Borrowed(ctx)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("read borrowed addresses: %w", err))...)
	}
	c.dataplane.SetOwnedBlocks(owned)
	c.dataplane.SetPools(dataplanePools(poolVals))
	c.speaker.SetImportFilter(peering.ImportFilter(poolVals))
	ads, aerrs := peering.Advertisements(peering.ExportInput{Owned: owned, Borrowed: borrowed, Pools: poolVals, Config: cfg})
	errs = append(errs, aerrs...)
	if err := c.speaker.SetAdvertisements(ads); err != nil {
		errs = append(errs, fmt.Errorf("set BGP advertisements: %w", err))
	}
	err = errors.Join(errs...)
	c.mu.Lock()
	c.last = syncResult{peers: peerList, announced: ads, blocks: owned, err: err, at: time.Now()}
	c.mu.Unlock()
	return err
}

func (c *controller) lastResult() syncResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// nodeInfos reads every Node's BGP identity; this node's address is the
// one the agent was started with when given.
func (c *controller) nodeInfos() (peering.NodeInfo, []peering.NodeInfo, []error) {
	var errs []error
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return peering.NodeInfo{Name: c.nodeName}, nil, []error{fmt.Errorf("list nodes: %w", err)}
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	asn := c.clusterASN()
	self := peering.NodeInfo{Name: c.nodeName, Addr: c.nodeAddr, ASN: asn}
	infos := make([]peering.NodeInfo, 0, len(nodes))
	for _, n := range nodes {
		info, err := peering.NodeInfoFrom(n, asn)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if n.Name == c.nodeName {
			if c.nodeAddr.IsValid() {
				info.Addr = c.nodeAddr
			}
			self = info
		}
		infos = append(infos, info)
	}
	return self, infos, errs
}

func derefPools(in []*v1.IPPool) []v1.IPPool {
	out := make([]v1.IPPool, len(in))
	for i, p := range in {
		out[i] = *p
	}
	return out
}

func derefPeers(in []*v1.BGPPeer) []v1.BGPPeer {
	out := make([]v1.BGPPeer, len(in))
	for i, p := range in {
		out[i] = *p
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func dataplanePools(pools []v1.IPPool) []Pool {
	var out []Pool
	for _, p := range pools {
		if c, err := netip.ParsePrefix(p.Spec.CIDR); err == nil {
			out = append(out, Pool{CIDR: c.Masked(), NATOutgoing: p.Spec.NATOutgoing})
		}
	}
	return out
}

// learnedRoutes groups learned paths by prefix: several next hops for one
// prefix become one ECMP route.
func learnedRoutes(paths []speaker.Path) []Route {
	byPrefix := map[netip.Prefix]map[netip.Addr]bool{}
	for _, p := range paths {
		if !p.NextHop.IsValid() {
			continue
		}
		if byPrefix[p.Prefix] == nil {
			byPrefix[p.Prefix] = map[netip.Addr]bool{}
		}
		byPrefix[p.Prefix][p.NextHop] = true
	}
	out := make([]Route, 0, len(byPrefix))
	for pfx, hops := range byPrefix {
		r := Route{Prefix: pfx}
		for h := range hops {
			r.NextHops = append(r.NextHops, h)
		}
		sort.Slice(r.NextHops, func(i, j int) bool { return r.NextHops[i].Less(r.NextHops[j]) })
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Prefix.String() < out[j].Prefix.String() })
	return out
}
