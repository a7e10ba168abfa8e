package peering

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Node annotations that carry a node's BGP identity.
const (
	// AnnotationASNumber overrides the cluster AS for one node.
	AnnotationASNumber = "cairn.dev/as-number"
	// AnnotationIPv4Address names the address BGP uses ("10.0.0.5" or
	// "10.0.0.5/24"); default: the node's first IPv4 InternalIP.
	AnnotationIPv4Address = "cairn.dev/ipv4-address"
	// AnnotationIPv6Address names the node's IPv6 address for BGP
	// ("fd00::5" or "fd00::5/64"); default: the node's first IPv6
	// InternalIP. With it the node has IPv6 sessions too (mesh, route
	// reflectors), which carry the IPv6 blocks.
	AnnotationIPv6Address = "cairn.dev/ipv6-address"
	// AnnotationRRClusterID makes the node a route reflector with this
	// cluster ID (dotted IPv4).
	AnnotationRRClusterID = "cairn.dev/route-reflector-cluster-id"
)

// NodeInfo is what peering needs of a Kubernetes Node.
type NodeInfo struct {
	Name   string
	Labels map[string]string
	// Addr is the node's IPv4 BGP address; invalid when it has none yet.
	Addr netip.Addr
	// Addr6 is the node's IPv6 BGP address; invalid when it has none (an
	// IPv4-only node).
	Addr6 netip.Addr
	// ASN is the node's AS: its annotation, else the cluster's.
	ASN uint32
	// RRClusterID is set on route reflectors.
	RRClusterID string
	// Port is where the node accepts BGP sessions (its effective
	// BGPConfiguration's listenPort, see ListenPort); 0 means 179.
	Port uint16
}

// NodeInfoFrom reads a Node's BGP identity. clusterASN applies when the
// node has no AS annotation.
func NodeInfoFrom(node *corev1.Node, clusterASN uint32) (NodeInfo, error) {
	info := NodeInfo{Name: node.Name, Labels: node.Labels, ASN: clusterASN, RRClusterID: node.Annotations[AnnotationRRClusterID]}
	if s, ok := node.Annotations[AnnotationASNumber]; ok {
		asn, err := ParseASN(s)
		if err != nil {
			return info, fmt.Errorf("node %s annotation %s: %w", node.Name, AnnotationASNumber, err)
		}
		info.ASN = asn
	}
	if info.RRClusterID != "" {
		if a, err := netip.ParseAddr(info.RRClusterID); err != nil || !a.Is4() {
			return info, fmt.Errorf("node %s annotation %s: %q is not a dotted IPv4 cluster ID", node.Name, AnnotationRRClusterID, info.RRClusterID)
		}
	}
	var err error
	if info.Addr, err = nodeAddress(node, AnnotationIPv4Address, netip.Addr.Is4); err != nil {
		return info, err
	}
	if info.Addr6, err = nodeAddress(node, AnnotationIPv6Address, is6); err != nil {
		return info, err
	}
	return info, nil
}

func is6(a netip.Addr) bool { return a.Is6() && !a.Is4In6() }

// nodeAddress is the node's address of one family: the annotation when
// set, else its first InternalIP of that family.
func nodeAddress(node *corev1.Node, annotation string, family func(netip.Addr) bool) (netip.Addr, error) {
	if s, ok := node.Annotations[annotation]; ok {
		if p, err := netip.ParsePrefix(s); err == nil && family(p.Addr()) {
			return p.Addr(), nil
		}
		if a, err := netip.ParseAddr(s); err == nil && family(a) {
			return a, nil
		}
		return netip.Addr{}, fmt.Errorf("node %s annotation %s: %q is not an address of that family", node.Name, annotation, s)
	}
	for _, a := range node.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil && family(ip) {
			return ip, nil
		}
	}
	return netip.Addr{}, nil
}

// Addrs are the node's BGP addresses, IPv4 first; one session to a node
// per address both ends have.
func (n NodeInfo) Addrs() []netip.Addr {
	var out []netip.Addr
	for _, a := range []netip.Addr{n.Addr, n.Addr6} {
		if a.IsValid() {
			out = append(out, a)
		}
	}
	return out
}

// AddrOf is the node's address in the family of peer, invalid when it has
// none: the source of a session to peer.
func (n NodeInfo) AddrOf(peer netip.Addr) netip.Addr {
	if peer.Unmap().Is4() {
		return n.Addr
	}
	return n.Addr6
}

// sharedFamilies are the addresses of other that self can have a session
// to: those of a family self has an address of.
func sharedFamilies(self, other NodeInfo) []netip.Addr {
	var out []netip.Addr
	for _, a := range other.Addrs() {
		if self.AddrOf(a).IsValid() {
			out = append(out, a)
		}
	}
	return out
}

// ParseASN parses a plain ("64512") or asdot ("1.10") AS number.
func ParseASN(s string) (uint32, error) {
	if hi, lo, ok := strings.Cut(s, "."); ok {
		h, err1 := strconv.ParseUint(hi, 10, 16)
		l, err2 := strconv.ParseUint(lo, 10, 16)
		if err1 != nil || err2 != nil {
			return 0, fmt.Errorf("AS number %q is not asdot (two 16-bit numbers)", s)
		}
		return uint32(h<<16 | l), nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("AS number %q must be between 1 and 4294967295", s)
	}
	return uint32(n), nil
}
