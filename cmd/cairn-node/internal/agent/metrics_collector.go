package agent

import (
	"fmt"
	"net/netip"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/prometheus/client_golang/prometheus"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/bgp/speaker"
	"github.com/cairn-net/cairn/felix"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/allocator"
	"github.com/cairn-net/cairn/ipam/usage"
)

// nodeSources are what nodeCollector reads at scrape time; a nil one is
// left out of the scrape.
type nodeSources struct {
	node    string
	peers   func() []speaker.PeerState
	felix   func() felix.Stats
	refused func() map[netip.Prefix]string
	alloc   func() allocator.Stats
	// ipam reads the pools, blocks and affinities from the caches.
	ipam func() ([]*v1.IPPool, []*v1.IPAMBlock, []*v1.BlockAffinity, error)
}

// nodeCollector builds the collector over the agent's parts: felix's
// counters when the dataplane has them (fakes in tests may not).
func (a *agent) nodeCollector(dp dataplane, spk nodeSpeaker) *nodeCollector {
	src := nodeSources{node: a.opts.NodeName, peers: spk.PeerStates, refused: dp.RefusedRoutes, alloc: a.alloc.Stats,
		ipam: func() ([]*v1.IPPool, []*v1.IPAMBlock, []*v1.BlockAffinity, error) {
			pools, err := a.inf.poolLister.List(labels.Everything())
			if err != nil {
				return nil, nil, nil, fmt.Errorf("list IPPools: %w", err)
			}
			blocks, err := a.inf.blockLister.List(labels.Everything())
			if err != nil {
				return nil, nil, nil, fmt.Errorf("list IPAMBlocks: %w", err)
			}
			affinities, err := a.inf.affinityLister.List(labels.Everything())
			if err != nil {
				return nil, nil, nil, fmt.Errorf("list BlockAffinities: %w", err)
			}
			return pools, blocks, affinities, nil
		}}
	if s, ok := dp.(interface{ Stats() felix.Stats }); ok {
		src.felix = s.Stats
	}
	return newNodeCollector(src)
}

// sessionStates are every state a session gauge is reported for.
var sessionStates = [...]speaker.SessionState{speaker.StateIdle, speaker.StateConnect, speaker.StateActive,
	speaker.StateOpenSent, speaker.StateOpenConfirm, speaker.StateEstablished}

// nodeCollector turns the node's state into metrics when Prometheus
// scrapes: BGP sessions from the speaker, routes and counters from felix,
// the allocator's counters, blocks and pools from the informer caches.
// Peer labels are bounded by configuration (the nodes and BGPPeers);
// pool labels by the IPPools. No pod, address or prefix is ever a label.
type nodeCollector struct {
	src nodeSources

	sessionState, flaps, uptime                    *prometheus.Desc
	received, accepted, advertised, refusedPrefix  *prometheus.Desc
	routes, routesRefused                          *prometheus.Desc
	passes, resyncs, passErrors                    *prometheus.Desc
	assigned, released, claims, borrows, conflicts *prometheus.Desc
	blockWrites                                    *prometheus.Desc
	blocksOwned, blocksBorrowed, addrsBorrowed     *prometheus.Desc
	poolSize, poolAllocated, poolNode, poolUse     *prometheus.Desc
}

func newNodeCollector(src nodeSources) *nodeCollector {
	peer := []string{"peer", "peer_address"}
	pool := []string{"pool"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &nodeCollector{
		src:            src,
		sessionState:   d("cairn_bgp_session_state", "1 for the state each BGP session is in, 0 for the others.", append(peer, "state")...),
		flaps:          d("cairn_bgp_session_flaps_total", "Times the BGP session left Established since the peer was configured.", peer...),
		uptime:         d("cairn_bgp_session_uptime_seconds", "How long the BGP session has been Established; 0 when it is not.", peer...),
		received:       d("cairn_bgp_prefixes_received", "Prefixes the peer sent that are in the RIB.", peer...),
		accepted:       d("cairn_bgp_prefixes_accepted", "Prefixes from the peer that the import policy let in.", peer...),
		advertised:     d("cairn_bgp_prefixes_advertised", "Prefixes this node sent the peer.", peer...),
		refusedPrefix:  d("cairn_bgp_prefixes_refused", "Prefixes from the peer that the import policy refused (received minus accepted).", peer...),
		routes:         d("cairn_felix_routes_installed", "Routes of Cairn's protocol in the kernel, by class: endpoint (local pods), blackhole (owned blocks), learned.", "class"),
		routesRefused:  d("cairn_felix_routes_refused", "Learned routes felix does not install (they would hide local state, or no next hop is usable)."),
		passes:         d("cairn_felix_passes_total", "Reconciliation passes of felix."),
		resyncs:        d("cairn_felix_resyncs_total", "felix passes that read the kernel back in full."),
		passErrors:     d("cairn_felix_errors_total", "felix passes that failed (each is followed by a resync)."),
		assigned:       d("cairn_ipam_addresses_assigned_total", "Addresses this node's allocator assigned."),
		released:       d("cairn_ipam_addresses_released_total", "Addresses this node's allocator released."),
		claims:         d("cairn_ipam_block_claims_total", "Blocks this node's allocator claimed."),
		borrows:        d("cairn_ipam_borrows_total", "Addresses this node's allocator borrowed from other nodes' blocks."),
		conflicts:      d("cairn_ipam_write_conflicts_total", "Compare-and-swap conflicts on IPAM objects (each costs a re-read and a retry)."),
		blockWrites:    d("cairn_ipam_block_writes_total", "Block updates written by this node's allocator."),
		blocksOwned:    d("cairn_ipam_blocks_owned", "Blocks affine to this node."),
		blocksBorrowed: d("cairn_ipam_blocks_borrowed", "Other nodes' blocks that hold addresses of this node's pods."),
		addrsBorrowed:  d("cairn_ipam_addresses_borrowed", "Addresses of this node's pods in other nodes' blocks."),
		poolSize:       d("cairn_ipam_pool_size_addresses", "Addresses in the IP pool.", pool...),
		poolAllocated:  d("cairn_ipam_pool_allocated_addresses", "Addresses of the IP pool in use, cluster-wide.", pool...),
		poolNode:       d("cairn_ipam_pool_node_allocated_addresses", "Addresses of the IP pool held by this node's pods.", pool...),
		poolUse:        d("cairn_ipam_pool_utilisation_ratio", "Fraction of the IP pool's addresses in use, cluster-wide.", pool...),
	}
}

func (c *nodeCollector) descs() []*prometheus.Desc {
	return []*prometheus.Desc{c.sessionState, c.flaps, c.uptime, c.received, c.accepted, c.advertised, c.refusedPrefix,
		c.routes, c.routesRefused, c.passes, c.resyncs, c.passErrors,
		c.assigned, c.released, c.claims, c.borrows, c.conflicts, c.blockWrites,
		c.blocksOwned, c.blocksBorrowed, c.addrsBorrowed, c.poolSize, c.poolAllocated, c.poolNode, c.poolUse}
}

// Describe implements prometheus.Collector.
func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs() {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src.peers != nil {
		c.collectSessions(ch, c.src.peers())
	}
	if c.src.felix != nil {
		c.collectFelix(ch, c.src.felix())
	}
	if c.src.refused != nil {
		ch <- gauge(c.routesRefused, float64(len(c.src.refused())))
	}
	if c.src.alloc != nil {
		s := c.src.alloc()
		for d, v := range map[*prometheus.Desc]int64{c.assigned: s.Assigned, c.released: s.Released, c.claims: s.Claims,
			c.borrows: s.Borrows, c.conflicts: s.Conflicts, c.blockWrites: s.BlockWrites} {
			ch <- counter(d, float64(v))
		}
	}
	if c.src.ipam != nil {
		c.collectIPAM(ch)
	}
}

func (c *nodeCollector) collectSessions(ch chan<- prometheus.Metric, peers []speaker.PeerState) {
	for _, p := range peers {
		l := []string{p.Name, p.Address.String()}
		for _, st := range sessionStates {
			v := 0.0
			if p.State == st {
				v = 1
			}
			ch <- gauge(c.sessionState, v, append(l, string(st))...)
		}
		ch <- counter(c.flaps, float64(p.Flaps), l...)
		ch <- gauge(c.uptime, p.Uptime.Seconds(), l...)
		ch <- gauge(c.received, float64(p.Received), l...)
		ch <- gauge(c.accepted, float64(p.Accepted), l...)
		ch <- gauge(c.advertised, float64(p.Advertised), l...)
		ch <- gauge(c.refusedPrefix, float64(p.Received-min(p.Accepted, p.Received)), l...)
	}
}

func (c *nodeCollector) collectFelix(ch chan<- prometheus.Metric, s felix.Stats) {
	ch <- gauge(c.routes, float64(s.EndpointRoutes), "endpoint")
	ch <- gauge(c.routes, float64(s.BlackholeRoutes), "blackhole")
	ch <- gauge(c.routes, float64(s.LearnedRoutes), "learned")
	ch <- counter(c.passes, float64(s.Passes))
	ch <- counter(c.resyncs, float64(s.Resyncs))
	ch <- counter(c.passErrors, float64(s.Errors))
}

func (c *nodeCollector) collectIPAM(ch chan<- prometheus.Metric) {
	pools, blocks, affinities, err := c.src.ipam()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.blocksOwned, err)
		return
	}
	owned, borrowed := ipam.NodeRoutes(c.src.node, blocks, affinities)
	ch <- gauge(c.blocksOwned, float64(len(owned)))
	ch <- gauge(c.addrsBorrowed, float64(len(borrowed)))
	ch <- gauge(c.blocksBorrowed, float64(blocksBorrowedBy(c.src.node, blocks)))
	for _, p := range usage.Compute(pools, blocks) {
		ch <- gauge(c.poolSize, p.Size, p.Name)
		ch <- gauge(c.poolAllocated, float64(p.Allocated), p.Name)
		ch <- gauge(c.poolUse, p.Utilisation(), p.Name)
		mine := 0
		for _, n := range p.Nodes {
			if n.Name == c.src.node {
				mine = n.Allocated
			}
		}
		ch <- gauge(c.poolNode, float64(mine), p.Name)
	}
}

// blocksBorrowedBy counts the blocks affine to other nodes that hold an
// address of node's pods.
func blocksBorrowedBy(node string, blocks []*v1.IPAMBlock) int {
	n := 0
	for _, b := range blocks {
		if ipam.AffinityNode(b.Spec.Affinity) == node {
			continue
		}
		for _, a := range b.Spec.Allocations {
			if a.Node == node {
				n++
				break
			}
		}
	}
	return n
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func counter(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}
