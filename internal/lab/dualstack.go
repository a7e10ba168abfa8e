package lab

import (
	"context"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cairnv1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
)

// The lab's IPv6 side, used with PlanOptions.DualStack (`cairn-lab up
// --dual-stack`). Every link address of the IPv4 plan gets an IPv6 twin in
// fd30::/48: 172.30.C.D becomes fd30:0:0:C::D (the last byte as a number:
// node1's 172.30.1.11 is fd30:0:0:1::b), a rack's /24 LAN a /64, a /30
// point-to-point link a /126. Pods get an address of each family from two
// pools; sessions come in pairs, one per family (MP-BGP: IPv6 unicast over
// IPv6 sessions), between nodes and to the routers.
const (
	// LabCIDR6 covers every IPv6 link address of a dual-stack lab.
	LabCIDR6 = "fd30::/48"
	// PoolCIDR6 is the IPv6 IPPool of a dual-stack lab.
	PoolCIDR6 = "fd00:10:244::/56"
	// BlockSize6 is the IPv6 pool's block prefix length (Calico's default).
	BlockSize6 = 122
	// PoolName6 is the lab's IPv6 IPPool.
	PoolName6 = "lab-pool-v6"
)

// InsideCIDRs6 are the IPv6 ranges a dual-stack lab routes: its links and
// the pod pool.
func InsideCIDRs6() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix(LabCIDR6), netip.MustParsePrefix(PoolCIDR6)}
}

// v6Of is the IPv6 twin of a lab link address (172.30.C.D ->
// fd30:0:0:C::D); invalid for anything else.
func v6Of(a netip.Addr) netip.Addr {
	if !a.Is4() || !netip.MustParsePrefix(LabCIDR).Contains(a) {
		return netip.Addr{}
	}
	b := a.As4()
	var v6 [16]byte
	v6[0], v6[1] = 0xfd, 0x30
	v6[7] = b[2]
	v6[15] = b[3]
	return netip.AddrFrom16(v6)
}

// prefix6Of is the IPv6 twin of a lab link prefix: a /24 LAN becomes a
// /64, a longer prefix keeps its host bits (/30 -> /126).
func prefix6Of(p netip.Prefix) netip.Prefix {
	a := v6Of(p.Addr())
	if !p.IsValid() || !a.IsValid() {
		return netip.Prefix{}
	}
	bits := 64
	if p.Bits() > 24 {
		bits = 96 + p.Bits()
	}
	return netip.PrefixFrom(a, bits)
}

// range6Of is the IPv6 range a static route to an IPv4 lab range becomes;
// invalid for ranges with no IPv6 twin (the Service ranges).
func range6Of(p netip.Prefix) netip.Prefix {
	switch p.String() {
	case LabCIDR:
		return netip.MustParsePrefix(LabCIDR6)
	case PoolCIDR:
		return netip.MustParsePrefix(PoolCIDR6)
	}
	return netip.Prefix{}
}

// addIPv6 gives every link of the IPv4 plan its IPv6 twin: addresses on
// every veth end and bridge, nodes', hosts' and gateways' IPv6 addresses,
// static routes to the IPv6 ranges, and beside each router session one
// over IPv6 between the same two speakers.
func (p *Plan) addIPv6() {
	p.DualStack = true
	for i := range p.Links {
		for _, e := range []*End{&p.Links[i].A, &p.Links[i].B} {
			e.Addr6 = prefix6Of(e.Addr)
		}
	}
	for i := range p.Bridges {
		p.Bridges[i].Addr6 = prefix6Of(p.Bridges[i].Addr)
	}
	for r := range p.Racks {
		rack := &p.Racks[r]
		for j := range rack.Nodes {
			n := &rack.Nodes[j]
			n.Addr6, n.Gateway6 = v6Of(n.Addr), v6Of(n.Gateway)
		}
		rack.ToR.Peers = withIPv6Peers(rack.ToR.Peers)
	}
	if p.Spine != nil {
		p.Spine.Peers = withIPv6Peers(p.Spine.Peers)
	}
	p.ControlPlane.Addr6, p.ControlPlane.Gateway6 = v6Of(p.ControlPlane.Addr), v6Of(p.ControlPlane.Gateway)
	for i := range p.Outside {
		h := &p.Outside[i]
		h.Addr6, h.Gateway6 = v6Of(h.Addr), v6Of(h.Gateway)
	}
	var routes []StaticRoute
	for _, r := range p.Routes {
		if dst := range6Of(r.Dst); dst.IsValid() {
			routes = append(routes, StaticRoute{NS: r.NS, Dst: dst, Via: v6Of(r.Via)})
		}
	}
	p.Routes = append(p.Routes, routes...)
}

// withIPv6Peers adds, after each IPv4 session, its IPv6 twin.
func withIPv6Peers(peers []Peer) []Peer {
	out := make([]Peer, 0, 2*len(peers))
	for _, pe := range peers {
		out = append(out, pe)
		if pe.Addr.Is4() {
			v6 := pe
			v6.Local, v6.Addr = v6Of(pe.Local), v6Of(pe.Addr)
			out = append(out, v6)
		}
	}
	return out
}

// validate6 checks the IPv6 addresses as validate does the IPv4 ones:
// inside LabCIDR6 and unique.
func (p Plan) validate6() []error {
	if !p.DualStack {
		return nil
	}
	lab := netip.MustParsePrefix(LabCIDR6)
	var errs []error
	seen := map[netip.Addr]string{}
	for _, l := range p.Links {
		for _, e := range []End{l.A, l.B} {
			if !e.Addr.IsValid() {
				continue // a bridge port: no address of either family
			}
			if !e.Addr6.IsValid() {
				errs = append(errs, fmt.Errorf("%s/%s has no IPv6 address in a dual-stack lab", e.NS, e.Name))
				continue
			}
			if !lab.Contains(e.Addr6.Addr()) {
				errs = append(errs, fmt.Errorf("address %s of %s/%s is outside %s", e.Addr6, e.NS, e.Name, lab))
			}
			if other, dup := seen[e.Addr6.Addr()]; dup {
				errs = append(errs, fmt.Errorf("address %s used by %s and %s/%s", e.Addr6.Addr(), other, e.NS, e.Name))
			}
			seen[e.Addr6.Addr()] = e.NS + "/" + e.Name
		}
	}
	return errs
}

// AddrOfFamily is the node's address of dst's family.
func (n Node) AddrOfFamily(dst netip.Addr) netip.Addr {
	if dst.Is4() {
		return n.Addr
	}
	return n.Addr6
}

// GatewayOfFamily is the node's gateway of dst's family.
func (n Node) GatewayOfFamily(dst netip.Addr) netip.Addr {
	if dst.Is4() {
		return n.Gateway
	}
	return n.Gateway6
}

// Addrs are the node's addresses, IPv4 first.
func (n Node) Addrs() []netip.Addr {
	if n.Addr6.IsValid() {
		return []netip.Addr{n.Addr, n.Addr6}
	}
	return []netip.Addr{n.Addr}
}

// Addrs are the pod's addresses, one per family (IP alone for a pod
// recorded before the lab knew several).
func (p Pod) Addrs() []netip.Addr {
	if len(p.IPs) > 0 {
		return p.IPs
	}
	if p.IP.IsValid() {
		return []netip.Addr{p.IP}
	}
	return nil
}

// statusPodIPs are addresses as a Pod's status lists them.
func statusPodIPs(addrs []netip.Addr) []corev1.PodIP {
	out := make([]corev1.PodIP, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, corev1.PodIP{IP: a.String()})
	}
	return out
}

// podIPsOf reads every address of a Pod's status.
func podIPsOf(p *corev1.Pod) []netip.Addr {
	var out []netip.Addr
	for _, ip := range p.Status.PodIPs {
		if a, err := netip.ParseAddr(ip.IP); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// createIPv6Objects writes what a dual-stack lab adds to the cluster: the
// IPv6 pool and, per rack, a BGPPeer to the ToR's IPv6 address (the
// session that carries the IPv6 blocks; the nodes' IPv6 addresses come
// from their Nodes' InternalIPs).
func createIPv6Objects(ctx context.Context, c *clients, p Plan) error {
	pool := &cairnv1.IPPool{
		ObjectMeta: labMeta(PoolName6),
		Spec:       cairnv1.IPPoolSpec{CIDR: PoolCIDR6, BlockSize: BlockSize6},
	}
	if _, err := c.cairn.CairnV1alpha1().IPPools().Create(ctx, pool, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create IPPool %s: %w", PoolName6, err)
	}
	for _, r := range p.Racks {
		if err := createToRPeer(ctx, c, p, r, "tor-"+r.Name+"-v6", r.ToR.Addr6().String()); err != nil {
			return err
		}
	}
	return nil
}

// Addr6 is a ToR's IPv6 address on its rack's LAN (the twin of RouterID),
// invalid outside a dual-stack lab.
func (r RouterPlan) Addr6() netip.Addr {
	for _, pe := range r.Peers {
		if pe.Kind == PeerNode && pe.Local.Is6() {
			return pe.Local
		}
	}
	return netip.Addr{}
}

// nodeIPFlag is cairn-node's --node-ip: "v4" or "v4,v6".
func nodeIPFlag(n Node) string {
	if n.Addr6.IsValid() {
		return n.Addr.String() + "," + n.Addr6.String()
	}
	return n.Addr.String()
}
