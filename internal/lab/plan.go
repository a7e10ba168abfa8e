package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cairn-net/cairn/internal/controlplane"
)

// NSPrefix starts the name of every network namespace any lab creates. A
// lab with an instance name adds it ("cl-e2e-node1"), so that labs of
// different instances can run side by side: their addresses only meet
// inside their own namespaces, and only the names are global.
const NSPrefix = "cl-"

// Fixed numbers of the lab's network. Everything is inside 172.30.0.0/16
// (links) and the pod pool, so nothing can collide with, or route to, the
// machine's real networks.
const (
	// LabCIDR covers every link address of the lab.
	LabCIDR = "172.30.0.0/16"
	// PoolCIDR is the IPPool pods get addresses from.
	PoolCIDR = "10.244.0.0/16"
	// BlockSize is the pool's block prefix length.
	BlockSize = 26
	// ClusterAS is the nodes' AS in a one-rack lab (iBGP full mesh).
	ClusterAS = 64512
	// SpineAS is the spine router's AS.
	SpineAS = 65100
	// APIServerPort and the etcd ports on the control-plane address.
	APIServerPort  = 6443
	EtcdClientPort = 2379
	EtcdPeerPort   = 2380
	// maxRacks keeps rack subnets (172.30.r.0/24) clear of the uplink
	// range (172.30.255.0/24) and uplink /30s inside it.
	maxRacks = 63
	// maxNodesPerRack keeps node addresses (.11 onwards) inside the /24.
	maxNodesPerRack = 200
)

// Service address ranges, inside 10.0.0.0/8 and clear of the pod pool.
// The lab's BGPConfiguration announces them and its routers accept them
// from nodes, so the outside host reaches Services as a data-centre client
// would.
const (
	// ServiceClusterCIDR is kube-apiserver's --service-cluster-ip-range,
	// which internal/controlplane sets.
	ServiceClusterCIDR = controlplane.ServiceClusterIPRange
	// ServiceExternalCIDR is where Services' externalIPs are announced
	// from; an externalIP outside it never is.
	ServiceExternalCIDR = "10.97.0.0/24"
	// ServiceLoadBalancerCIDR is where LoadBalancer ingress addresses are
	// announced from.
	ServiceLoadBalancerCIDR = "10.98.0.0/24"
	// LoadBalancerPoolCIDR is the lab's LoadBalancer IPPool (LBPoolName),
	// from which the agents' LoadBalancer IPAM controller gives Services of
	// type LoadBalancer their addresses: the upper half of
	// ServiceLoadBalancerCIDR, so they are announced. The lower half is
	// left to addresses something else writes (another loadBalancerClass).
	LoadBalancerPoolCIDR = "10.98.0.128/25"
)

// ServiceCIDRs lists the three service ranges.
func ServiceCIDRs() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix(ServiceClusterCIDR),
		netip.MustParsePrefix(ServiceExternalCIDR),
		netip.MustParsePrefix(ServiceLoadBalancerCIDR),
	}
}

// InsideCIDRs are every range the lab routes: its links, the pod pool and
// the service ranges. No route of the lab covers anything else.
func InsideCIDRs() []netip.Prefix {
	return append([]netip.Prefix{netip.MustParsePrefix(LabCIDR), netip.MustParsePrefix(PoolCIDR)}, ServiceCIDRs()...)
}

// OutsideName is the lab's host outside the cluster: a client on the
// data-centre network, behind the spine (several racks) or rack 1's ToR.
const OutsideName = "outside1"

// outsideLink is its /30 to its router (router .1, host .2), clear of the
// rack subnets and of the uplinks in 172.30.255.0/24.
var outsideLink = netip.MustParsePrefix("172.30.254.0/30")

// Router kinds.
const (
	RouterBIRD = "bird"
	RouterFRR  = "frr"
	// RouterGoBGPD is Debian's gobgpd (GoBGP 3.10) as the ToR of one
	// rack; gobgpd.go says what it does and does not do.
	RouterGoBGPD = "gobgpd"
)

// Plan is the whole topology, derived from the options alone: who lives in
// which namespace, with which address, which AS, and who peers with whom.
type Plan struct {
	// Prefix starts every namespace name of this lab.
	Prefix string `json:"prefix"`
	Router string `json:"router"`
	// DualStack gives every link an IPv6 address too (dualstack.go).
	DualStack bool `json:"dualStack,omitempty"`
	// BlockSize is the pool's block prefix length.
	BlockSize    int  `json:"blockSize"`
	ControlPlane Host `json:"controlPlane"`
	// Outside are hosts outside the cluster (OutsideName): no agent, no
	// BGP, a static route to each lab range through their router.
	Outside []Host        `json:"outside,omitempty"`
	Racks   []Rack        `json:"racks"`
	Spine   *RouterPlan   `json:"spine,omitempty"`
	BGP     ClusterBGP    `json:"bgp"`
	Bridges []Bridge      `json:"bridges"`
	Links   []Link        `json:"links"`
	Routes  []StaticRoute `json:"routes"`
}

// ClusterBGP is what the lab writes into BGPConfiguration "default".
type ClusterBGP struct {
	ASNumber    int64 `json:"asNumber"`
	MeshEnabled bool  `json:"meshEnabled"`
	// BFD runs BFD (LabBFDInterval, LabBFDMultiplier) on the mesh and on
	// every node's session to its ToR, at both ends.
	BFD bool `json:"bfd,omitempty"`
	// RouteReflectors: nodes, not the ToRs, reflect each rack's routes
	// (routereflectors.go).
	RouteReflectors bool `json:"routeReflectors,omitempty"`
}

// The lab's BFD timers: a link failure is detected after 600 ms, inside
// the 1 s the issue asks for, with room for a busy machine's scheduling.
const (
	LabBFDInterval   = 200 * time.Millisecond
	LabBFDMultiplier = 3
)

// Host is a namespace with one address, e.g. the control plane.
type Host struct {
	Name    string     `json:"name"`
	NS      string     `json:"ns"`
	Addr    netip.Addr `json:"addr"`
	Gateway netip.Addr `json:"gateway"`
	// Addr6 and Gateway6 are set in a dual-stack lab.
	Addr6    netip.Addr `json:"addr6,omitzero"`
	Gateway6 netip.Addr `json:"gateway6,omitzero"`
	// Router names the router Gateway belongs to.
	Router string `json:"router,omitempty"`
}

// Rack is a LAN with a top-of-rack router and its nodes.
type Rack struct {
	Name   string       `json:"name"`
	Index  int          `json:"index"`
	Subnet netip.Prefix `json:"subnet"`
	AS     int64        `json:"as"`
	ToR    RouterPlan   `json:"tor"`
	Nodes  []Node       `json:"nodes"`
}

// Node is a Kubernetes node: a namespace running cairn-node.
type Node struct {
	Name    string     `json:"name"`
	NS      string     `json:"ns"`
	Rack    string     `json:"rack"`
	Addr    netip.Addr `json:"addr"`
	Gateway netip.Addr `json:"gateway"`
	// Addr6 and Gateway6 are set in a dual-stack lab.
	Addr6    netip.Addr `json:"addr6,omitzero"`
	Gateway6 netip.Addr `json:"gateway6,omitzero"`
	// AS is the node's own AS; ASAnnotation says whether it differs from
	// the cluster AS and so goes on the Node as cairn.dev/as-number.
	AS           int64 `json:"as"`
	ASAnnotation bool  `json:"asAnnotation"`
	// RRClusterID is set on a route reflector (routereflectors.go).
	RRClusterID string `json:"rrClusterID,omitempty"`
}

// RouterPlan is a BGP router (BIRD or FRR) in its own namespace.
type RouterPlan struct {
	Name     string     `json:"name"`
	NS       string     `json:"ns"`
	AS       int64      `json:"as"`
	RouterID netip.Addr `json:"routerID"`
	Peers    []Peer     `json:"peers"`
	// Exports says whether the router hands its connected lab networks to
	// its eBGP routers, so other racks reach this rack's nodes and the
	// control plane.
	ExportConnected bool `json:"exportConnected"`
	// AnnouncePool makes the router announce the whole pool (both pools
	// in a dual-stack lab) to its nodes and to no router: with racks, a
	// node refuses another rack's blocks from its ToR (only the block's
	// owner may announce a block, and the ToR's path carries the ToR as
	// next hop), so it reaches other racks through this covering route,
	// as on a real fabric.
	AnnouncePool bool `json:"announcePool,omitempty"`
	// Injected are routes the router originates towards its nodes
	// whatever its filters say, by set name: a misbehaving ToR for tests
	// (inject.go, SetInjectedRoutes; BIRD only).
	Injected map[string][]InjectedRoute `json:"injected,omitempty"`
}

// Peer kinds: a node below the router, or another router.
const (
	PeerNode   = "node"
	PeerRouter = "router"
)

// Peer is one BGP session as seen from a router.
type Peer struct {
	Name  string     `json:"name"`
	Kind  string     `json:"kind"`
	Local netip.Addr `json:"local"`
	Addr  netip.Addr `json:"addr"`
	AS    int64      `json:"as"`
	// RRClient makes the router reflect routes to this (iBGP) peer and
	// announce routes learned over eBGP with itself as next hop.
	RRClient bool `json:"rrClient"`
	// BFD runs BFD on the session (ClusterBGP.BFD).
	BFD bool `json:"bfd,omitempty"`
	// Password is the session's TCP-MD5 key (Options.RouterPassword);
	// empty for none.
	Password string `json:"password,omitempty"`
}

// Bridge is a Linux bridge with an address: a rack's LAN in its ToR.
type Bridge struct {
	NS    string       `json:"ns"`
	Name  string       `json:"name"`
	Addr  netip.Prefix `json:"addr"`
	Addr6 netip.Prefix `json:"addr6,omitzero"`
}

// Link is a veth pair between two namespaces.
type Link struct {
	A End `json:"a"`
	B End `json:"b"`
}

// End is one side of a veth pair. Addr may be invalid (no address), and
// Master names a bridge to enslave the end to.
type End struct {
	NS     string       `json:"ns"`
	Name   string       `json:"name"`
	Addr   netip.Prefix `json:"addr"`
	Addr6  netip.Prefix `json:"addr6,omitzero"`
	Master string       `json:"master,omitempty"`
}

// StaticRoute is a route the lab installs itself: hosts reach the rest of
// the lab through their router. No route covers anything outside the lab.
type StaticRoute struct {
	NS  string       `json:"ns"`
	Dst netip.Prefix `json:"dst"`
	Via netip.Addr   `json:"via"`
}

// PlanOptions choose the topology.
type PlanOptions struct {
	Racks        int
	NodesPerRack int
	Router       string
	// Instance, when set, goes into every namespace name after NSPrefix.
	Instance string
	// DualStack adds IPv6 on every link (dualstack.go).
	DualStack bool
	// RouteReflectors, with more than one rack, turns the ToRs' route
	// reflection off and makes the first two nodes of every rack its
	// route reflectors instead (routereflectors.go).
	RouteReflectors bool
	// BlockSize is the pool's block prefix length, 20..32 (default
	// BlockSize); 32 gives every pod a block of its own, so that every
	// pod start is a block claim and a new route (cairn-bench's
	// convergence section).
	BlockSize int
	// BFD runs BFD between nodes and between nodes and their ToR.
	BFD bool
}

// maxInstance bounds instance names; with "pod-nodeNNN-NNNN" they keep
// namespace names short enough to read.
const maxInstance = 8

func validInstance(s string) bool {
	if len(s) > maxInstance {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// NewPlan lays out the lab.
//
// Addresses: the control plane sits on 172.30.0.0/30 (.2, ToR of rack 1 is
// .1); rack r is the LAN 172.30.r.0/24 (ToR .1 on a bridge, nodes .11 on);
// rack r's uplink to the spine is 172.30.255.4(r-1)/30 (ToR .+1, spine .+2).
//
// BGP, one rack: the nodes share ClusterAS with an iBGP full mesh and each
// has an eBGP session to the ToR (a BGPPeer), which learns every block with
// its node as next hop.
//
// BGP, several racks: rack r is AS 65000+r, ToR and nodes alike (nodes get
// it through the cairn.dev/as-number annotation) and the node mesh is off.
// Each ToR is an iBGP route reflector for its nodes: routes between nodes
// of a rack are reflected with the originating node as next hop (they share
// the LAN), routes learned from the spine over eBGP are reflected with the
// ToR as next hop (nodes cannot reach the spine directly). ToRs and the
// spine (SpineAS) speak eBGP, so AS paths stop loops between racks, and the
// ToRs also announce their connected lab networks so that nodes of every
// rack reach the control plane behind rack 1.
func NewPlan(o PlanOptions) (Plan, error) {
	if o.Racks < 1 || o.Racks > maxRacks {
		return Plan{}, fmt.Errorf("racks must be between 1 and %d, got %d", maxRacks, o.Racks)
	}
	if o.NodesPerRack < 1 || o.NodesPerRack > maxNodesPerRack {
		return Plan{}, fmt.Errorf("nodes per rack must be between 1 and %d, got %d", maxNodesPerRack, o.NodesPerRack)
	}
	if o.Router != RouterBIRD && o.Router != RouterFRR && o.Router != RouterGoBGPD {
		return Plan{}, fmt.Errorf("router must be %q, %q or %q, got %q", RouterBIRD, RouterFRR, RouterGoBGPD, o.Router)
	}
	if err := gobgpdSupports(o); err != nil {
		return Plan{}, err
	}
	if o.BlockSize == 0 {
		o.BlockSize = BlockSize
	}
	if o.BlockSize < 20 || o.BlockSize > 32 {
		return Plan{}, fmt.Errorf("block size must be between 20 and 32, got %d", o.BlockSize)
	}
	if !validInstance(o.Instance) {
		return Plan{}, fmt.Errorf("instance name %q: want at most %d lower-case letters and digits", o.Instance, maxInstance)
	}
	multi := o.Racks > 1
	prefix := NSPrefix
	if o.Instance != "" {
		prefix += o.Instance + "-"
	}
	p := Plan{
		Prefix:       prefix,
		Router:       o.Router,
		BlockSize:    o.BlockSize,
		ControlPlane: Host{Name: "cp", NS: prefix + "cp", Addr: v4(172, 30, 0, 2), Gateway: v4(172, 30, 0, 1)},
		BGP:          ClusterBGP{ASNumber: ClusterAS, MeshEnabled: !multi, BFD: o.BFD, RouteReflectors: o.RouteReflectors},
	}
	if o.RouteReflectors && (!multi || o.NodesPerRack < 3) {
		return Plan{}, fmt.Errorf("route reflectors need at least 2 racks of 3 nodes, got %d of %d", o.Racks, o.NodesPerRack)
	}
	if multi {
		p.Spine = &RouterPlan{Name: "spine", NS: prefix + "spine", AS: SpineAS, RouterID: uplinkAddr(1, 2), ExportConnected: true}
	}
	nodeNum := 0
	for r := 1; r <= o.Racks; r++ {
		rack := newRack(prefix, r, multi)
		for j := 1; j <= o.NodesPerRack; j++ {
			nodeNum++
			n := Node{
				Name: fmt.Sprintf("node%d", nodeNum), Rack: rack.Name,
				Addr: v4(172, 30, byte(r), byte(10+j)), Gateway: rack.ToR.RouterID,
				AS: ClusterAS,
			}
			n.NS = prefix + n.Name
			if multi {
				n.AS, n.ASAnnotation = rack.AS, true
			}
			if o.RouteReflectors && j <= reflectorsPerRack {
				n.RRClusterID = rrClusterID(r)
			}
			rack.Nodes = append(rack.Nodes, n)
			rack.ToR.Peers = append(rack.ToR.Peers, Peer{
				Name: n.Name, Kind: PeerNode, Local: rack.ToR.RouterID, Addr: n.Addr, AS: n.AS, RRClient: multi && !o.RouteReflectors, BFD: o.BFD,
			})
			p.Links = append(p.Links, Link{
				A: End{NS: n.NS, Name: "eth0", Addr: netip.PrefixFrom(n.Addr, 24)},
				B: End{NS: rack.ToR.NS, Name: n.Name, Master: "br0"},
			})
			// The service ranges too: a node's own connection to a
			// cluster IP needs a route before kube-proxy's DNAT rewrites
			// it (a real node has a default route for that).
			for _, dst := range append([]netip.Prefix{netip.MustParsePrefix(LabCIDR)}, ServiceCIDRs()...) {
				p.Routes = append(p.Routes, StaticRoute{NS: n.NS, Dst: dst, Via: n.Gateway})
			}
		}
		p.Bridges = append(p.Bridges, Bridge{NS: rack.ToR.NS, Name: "br0", Addr: netip.PrefixFrom(rack.ToR.RouterID, 24)})
		if multi {
			torUp, spineDown := uplinkAddr(r, 1), uplinkAddr(r, 2)
			rack.ToR.Peers = append(rack.ToR.Peers, Peer{Name: "spine", Kind: PeerRouter, Local: torUp, Addr: spineDown, AS: SpineAS})
			p.Spine.Peers = append(p.Spine.Peers, Peer{Name: rack.ToR.Name, Kind: PeerRouter, Local: spineDown, Addr: torUp, AS: rack.AS})
			p.Links = append(p.Links, Link{
				A: End{NS: rack.ToR.NS, Name: "spine", Addr: netip.PrefixFrom(torUp, 30)},
				B: End{NS: p.Spine.NS, Name: rack.ToR.Name, Addr: netip.PrefixFrom(spineDown, 30)},
			})
		}
		p.Racks = append(p.Racks, rack)
	}
	cp := p.ControlPlane
	p.Links = append(p.Links, Link{
		A: End{NS: cp.NS, Name: "eth0", Addr: netip.PrefixFrom(cp.Addr, 30)},
		B: End{NS: p.Racks[0].ToR.NS, Name: "cp", Addr: netip.PrefixFrom(cp.Gateway, 30)},
	})
	// The control plane reaches the lab and the pods (as an API server's
	// webhooks would) through rack 1's ToR, and nothing else.
	p.Routes = append(p.Routes,
		StaticRoute{NS: cp.NS, Dst: netip.MustParsePrefix(LabCIDR), Via: cp.Gateway},
		StaticRoute{NS: cp.NS, Dst: netip.MustParsePrefix(PoolCIDR), Via: cp.Gateway},
	)
	p.addOutside(prefix)
	if o.DualStack {
		p.addIPv6()
	}
	return p, p.validate()
}

// addOutside puts OutsideName behind the spine, or behind rack 1's ToR when
// there is no spine: where a client of the data centre would sit. It
// routes every lab range (links, pods, services) through that router, and
// nothing else: it has no default route.
func (p *Plan) addOutside(prefix string) {
	router := p.Racks[0].ToR
	if p.Spine != nil {
		router = *p.Spine
	}
	gw := outsideLink.Addr().Next()
	h := Host{Name: OutsideName, NS: prefix + OutsideName, Addr: gw.Next(), Gateway: gw, Router: router.Name}
	p.Outside = append(p.Outside, h)
	p.Links = append(p.Links, Link{
		A: End{NS: h.NS, Name: "eth0", Addr: netip.PrefixFrom(h.Addr, outsideLink.Bits())},
		B: End{NS: router.NS, Name: h.Name, Addr: netip.PrefixFrom(gw, outsideLink.Bits())},
	})
	for _, dst := range InsideCIDRs() {
		p.Routes = append(p.Routes, StaticRoute{NS: h.NS, Dst: dst, Via: gw})
	}
}

func newRack(prefix string, r int, multi bool) Rack {
	rack := Rack{
		Name: fmt.Sprintf("r%d", r), Index: r,
		Subnet: netip.PrefixFrom(v4(172, 30, byte(r), 0), 24),
		AS:     int64(65000 + r),
	}
	rack.ToR = RouterPlan{
		Name: fmt.Sprintf("tor%d", r), AS: rack.AS, RouterID: v4(172, 30, byte(r), 1),
		ExportConnected: multi, AnnouncePool: multi,
	}
	rack.ToR.NS = prefix + rack.ToR.Name
	return rack
}

// uplinkAddr is host h (1 = ToR, 2 = spine) of rack r's uplink /30.
func uplinkAddr(r, h int) netip.Addr { return v4(172, 30, 255, byte(4*(r-1)+h)) }

func v4(a, b, c, d byte) netip.Addr { return netip.AddrFrom4([4]byte{a, b, c, d}) }

// validate checks the invariants the rest of the lab relies on: unique
// namespaces and addresses, everything inside the lab's range, and
// namespace and interface names the kernel accepts.
func (p Plan) validate() error {
	lab := netip.MustParsePrefix(LabCIDR)
	var errs []error
	addrs := map[netip.Addr]string{}
	for _, l := range p.Links {
		for _, e := range []End{l.A, l.B} {
			if len(e.Name) > 15 {
				errs = append(errs, fmt.Errorf("interface name %q in %s is longer than 15 bytes", e.Name, e.NS))
			}
			if !e.Addr.IsValid() {
				continue
			}
			if !lab.Contains(e.Addr.Addr()) {
				errs = append(errs, fmt.Errorf("address %s of %s/%s is outside %s", e.Addr, e.NS, e.Name, lab))
			}
			if other, dup := addrs[e.Addr.Addr()]; dup {
				errs = append(errs, fmt.Errorf("address %s used by %s and %s/%s", e.Addr.Addr(), other, e.NS, e.Name))
			}
			addrs[e.Addr.Addr()] = e.NS + "/" + e.Name
		}
	}
	errs = append(errs, p.validate6()...)
	seen := map[string]bool{}
	for _, ns := range p.Namespaces() {
		if seen[ns] {
			errs = append(errs, fmt.Errorf("namespace %s planned twice", ns))
		}
		seen[ns] = true
	}
	return errors.Join(errs...)
}

// Namespaces lists every namespace of the plan except pods', in creation
// order: routers first, then the control plane and outside hosts, then
// nodes.
func (p Plan) Namespaces() []string {
	var out []string
	for _, r := range p.Routers() {
		out = append(out, r.NS)
	}
	out = append(out, p.ControlPlane.NS)
	for _, h := range p.Outside {
		out = append(out, h.NS)
	}
	for _, n := range p.Nodes() {
		out = append(out, n.NS)
	}
	return out
}

// Routers lists the ToRs, then the spine if any.
func (p Plan) Routers() []RouterPlan {
	var out []RouterPlan
	for _, r := range p.Racks {
		out = append(out, r.ToR)
	}
	if p.Spine != nil {
		out = append(out, *p.Spine)
	}
	return out
}

// Nodes lists every node, rack by rack.
func (p Plan) Nodes() []Node {
	var out []Node
	for _, r := range p.Racks {
		out = append(out, r.Nodes...)
	}
	return out
}

// Node finds a node by name.
func (p Plan) Node(name string) (Node, bool) {
	for _, n := range p.Nodes() {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// OutsideHost finds a host outside the cluster by name.
func (p Plan) OutsideHost(name string) (Host, bool) {
	for _, h := range p.Outside {
		if h.Name == name {
			return h, true
		}
	}
	return Host{}, false
}

// Rack finds a rack by name.
func (p Plan) Rack(name string) (Rack, bool) {
	for _, r := range p.Racks {
		if r.Name == name {
			return r, true
		}
	}
	return Rack{}, false
}

// RoutedHops is the number of routers a packet crosses from a pod on node
// a to a pod on node b, each of which decrements the TTL: the sending node,
// the ToR (and spine and far ToR between racks), the receiving node.
func (p Plan) RoutedHops(a, b Node) int {
	switch {
	case a.Name == b.Name:
		return 1
	case a.Rack == b.Rack:
		return 2 // node to node across the rack's LAN
	default:
		return 5 // node, ToR, spine, ToR, node
	}
}

// NextHop is the address node from forwards to, to reach a pod of node to:
// the other node on the same LAN, else the ToR.
func (p Plan) NextHop(from, to Node) netip.Addr {
	return p.NextHopFor(from, to, to.Addr)
}

// NextHopFor is NextHop in the family of dst.
func (p Plan) NextHopFor(from, to Node, dst netip.Addr) netip.Addr {
	if from.Rack == to.Rack {
		return to.AddrOfFamily(dst)
	}
	return from.GatewayOfFamily(dst)
}

// NodePeers lists the addresses a node's speaker should have sessions
// with: the other nodes when the mesh is on, and its rack's ToR.
func (p Plan) NodePeers(n Node) []netip.Addr {
	var out []netip.Addr
	if p.BGP.MeshEnabled {
		for _, other := range p.Nodes() {
			if other.Name != n.Name {
				out = append(out, other.Addrs()...)
			}
		}
	}
	out = append(out, p.reflectorPeers(n)...)
	out = append(out, n.Gateway)
	if n.Gateway6.IsValid() {
		out = append(out, n.Gateway6)
	}
	return out
}

// Name returns the name of the node or router owning addr in the lab, or
// addr itself.
func (p Plan) Name(addr netip.Addr) string {
	for _, n := range p.Nodes() {
		if n.Addr == addr || n.Addr6 == addr {
			return n.Name
		}
	}
	for _, r := range p.Routers() {
		if r.RouterID == addr {
			return r.Name
		}
	}
	for _, h := range p.Outside {
		if h.Addr == addr || h.Addr6 == addr {
			return h.Name
		}
	}
	for _, r := range p.Routers() {
		for _, pe := range r.Peers {
			if pe.Local == addr && addr.Is6() {
				return r.Name
			}
		}
	}
	return addr.String()
}
