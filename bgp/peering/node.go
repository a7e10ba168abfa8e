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
	// AnnotationRRClusterID makes the node a route reflector with this
	// cluster ID (dotted IPv4).
	AnnotationRRClusterID = "cairn.dev/route-reflector-cluster-id"
)

// NodeInfo is what peering needs of a Kubernetes Node.
type NodeInfo struct {
	Name   string
	Labels map[string]string
	// Addr is the node's BGP address; invalid when it has none yet.
	Addr netip.Addr
	// ASN is the node's AS: its annotation, else the cluster's.
	ASN uint32
	// RRClusterID is set on route reflectors.
	RRClusterID string
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
	addr, err := nodeAddress(node)
	if err != nil {
		return info, err
	}
	info.Addr = addr
	return info, nil
}

func nodeAddress(node *corev1.Node) (netip.Addr, error) {
	if s, ok := node.Annotations[AnnotationIPv4Address]; ok {
		if p, err := netip.ParsePrefix(s); err == nil && p.Addr().Is4() {
			return p.Addr(), nil
		}
		if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
			return a, nil
		}
		return netip.Addr{}, fmt.Errorf("node %s annotation %s: %q is not an IPv4 address", node.Name, AnnotationIPv4Address, s)
	}
	for _, a := range node.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Is4() {
			return ip, nil
		}
	}
	return netip.Addr{}, nil
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
