package peering

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/bgp/speaker"
)

// Dual-stack nodes: an IPv6 address beside the IPv4 one.
var (
	d1 = NodeInfo{Name: "d1", Labels: map[string]string{"rack": "r1"}, Addr: netip.MustParseAddr("172.30.1.11"), Addr6: netip.MustParseAddr("fd30:0:1::11"), ASN: 64512}
	d2 = NodeInfo{Name: "d2", Labels: map[string]string{"rack": "r1"}, Addr: netip.MustParseAddr("172.30.1.12"), Addr6: netip.MustParseAddr("fd30:0:1::12"), ASN: 64512}
	// drr is a dual-stack route reflector.
	drr = NodeInfo{Name: "drr", Labels: map[string]string{"rr": "yes"}, Addr: netip.MustParseAddr("172.30.1.2"), Addr6: netip.MustParseAddr("fd30:0:1::2"), ASN: 64512, RRClusterID: "1.1.1.1"}
)

// TestPeersDualStack: a node with an address of each family has a session
// of each family to every peer that has one too (mesh, route reflectors),
// and a session to a router's peerIP starts from the node's address of the
// peerIP's family.
func TestPeersDualStack(t *testing.T) {
	tor6 := bgpPeer("tor6", v1.BGPPeerSpec{PeerIP: "fd30:0:1::1", ASNumber: 65001})
	tor4 := bgpPeer("tor4", v1.BGPPeerSpec{PeerIP: "172.30.1.1", ASNumber: 65001})
	tests := []struct {
		name string
		in   PeersInput
		want []speaker.Peer
	}{
		{name: "mesh in both families", in: PeersInput{Self: d1, Nodes: []NodeInfo{d1, d2}},
			want: []speaker.Peer{
				{Name: "mesh:d2", Address: d2.Addr, ASN: 64512},
				{Name: "mesh:d2", Address: d2.Addr6, ASN: 64512},
			}},
		{name: "mesh to an IPv4-only node: IPv4 only", in: PeersInput{Self: d1, Nodes: []NodeInfo{d1, n2}},
			want: []speaker.Peer{{Name: "mesh:n2", Address: n2.Addr, ASN: 64512}}},
		{name: "IPv4-only node meshes over IPv4 with a dual-stack one", in: PeersInput{Self: n1, Nodes: []NodeInfo{n1, d2}},
			want: []speaker.Peer{{Name: "mesh:d2", Address: d2.Addr, ASN: 64512}}},
		{name: "IPv6 peerIP: default source is the node's IPv6 address", in: PeersInput{Self: d1, Nodes: []NodeInfo{d1}, Config: cfg(false), Peers: []v1.BGPPeer{tor4, tor6}},
			want: []speaker.Peer{
				{Name: "peer:tor4", Address: netip.MustParseAddr("172.30.1.1"), ASN: 65001, SourceAddress: d1.Addr},
				{Name: "peer:tor6", Address: netip.MustParseAddr("fd30:0:1::1"), ASN: 65001, SourceAddress: d1.Addr6},
			}},
		{name: "IPv6 peerIP on a node without IPv6: no source, the kernel picks", in: PeersInput{Self: n1, Nodes: []NodeInfo{n1}, Config: cfg(false), Peers: []v1.BGPPeer{tor6}},
			want: []speaker.Peer{{Name: "peer:tor6", Address: netip.MustParseAddr("fd30:0:1::1"), ASN: 65001}}},
		{name: "IPv6 peerIP that is the node's own IPv6 address is refused", in: PeersInput{Self: d1, Nodes: []NodeInfo{d1}, Config: cfg(false),
			Peers: []v1.BGPPeer{bgpPeer("self6", v1.BGPPeerSpec{PeerIP: "fd30:0:1::11", ASNumber: 65001})}},
			want: []speaker.Peer{}},
		{name: "dualStackAddressFamily: one IPv4 session to the router carries both", in: PeersInput{Self: d1, Nodes: []NodeInfo{d1}, Config: cfg(false),
			Peers: []v1.BGPPeer{bgpPeer("tor", v1.BGPPeerSpec{PeerIP: "172.30.1.1", ASNumber: 65001, DualStackAddressFamily: true})}},
			want: []speaker.Peer{{Name: "peer:tor", Address: netip.MustParseAddr("172.30.1.1"), ASN: 65001, SourceAddress: d1.Addr, BothFamilies: true}}},
		{name: "dualStackAddressFamily between nodes: one session, not one per family", in: PeersInput{Self: drr, Nodes: []NodeInfo{drr, d1}, Config: cfg(false),
			Peers: []v1.BGPPeer{bgpPeer("rr-clients", v1.BGPPeerSpec{NodeSelector: "rr=yes", PeerSelector: "rack=r1", DualStackAddressFamily: true})}},
			want: []speaker.Peer{{Name: "peer:rr-clients:d1", Address: d1.Addr, ASN: 64512, RouteReflectorClient: true, RouteReflectorClusterID: "1.1.1.1", SourceAddress: drr.Addr, BothFamilies: true}}},
		{name: "route reflector: clients in both families", in: PeersInput{Self: drr, Nodes: []NodeInfo{drr, d1, n2}, Config: cfg(false),
			Peers: []v1.BGPPeer{bgpPeer("rr-clients", v1.BGPPeerSpec{NodeSelector: "rr=yes", PeerSelector: "rack=r1"})}},
			want: []speaker.Peer{
				{Name: "peer:rr-clients:d1", Address: d1.Addr, ASN: 64512, RouteReflectorClient: true, RouteReflectorClusterID: "1.1.1.1", SourceAddress: drr.Addr},
				{Name: "peer:rr-clients:n2", Address: n2.Addr, ASN: 64512, RouteReflectorClient: true, RouteReflectorClusterID: "1.1.1.1", SourceAddress: drr.Addr},
				{Name: "peer:rr-clients:d1", Address: d1.Addr6, ASN: 64512, RouteReflectorClient: true, RouteReflectorClusterID: "1.1.1.1", SourceAddress: drr.Addr6},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := Peers(tc.in, secrets(nil))
			if !reflect.DeepEqual(got, withDefaultLimit(tc.want)) {
				t.Errorf("peers:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestPeersDualStackHeldPassword: with the mesh password unreadable for
// now, each family's session keeps its own previous settings.
func TestPeersDualStackHeldPassword(t *testing.T) {
	meshCfg := &v1.BGPConfiguration{Spec: v1.BGPConfigurationSpec{NodeMeshPassword: &v1.BGPPassword{SecretKeyRef: &v1.SecretKeyRef{Name: "mesh", Key: "pw"}}}}
	previous := []speaker.Peer{
		{Name: "mesh:d2", Address: d2.Addr, ASN: 64512, Password: "old4"},
		{Name: "mesh:d2", Address: d2.Addr6, ASN: 64512, Password: "old6"},
	}
	got, errs := Peers(PeersInput{Self: d1, Nodes: []NodeInfo{d1, d2}, Config: meshCfg, Previous: previous},
		func(v1.SecretKeyRef) (string, error) { return "", ErrPasswordUnavailable })
	if !reflect.DeepEqual(got, previous) || len(errs) == 0 {
		t.Errorf("peers %+v (errors %v), want the previous ones %+v and a problem", got, errs, previous)
	}
}

func TestNodeInfoFromDualStack(t *testing.T) {
	node := func(ann map[string]string, addrs ...string) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Annotations: ann}}
		for _, a := range addrs {
			n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a})
		}
		return n
	}
	tests := []struct {
		name        string
		node        *corev1.Node
		addr, addr6 string
		wantErr     string
	}{
		{name: "InternalIPs of both families", node: node(nil, "fd00::5", "172.30.1.11", "fd00::6"), addr: "172.30.1.11", addr6: "fd00::5"},
		{name: "IPv4 only", node: node(nil, "172.30.1.11"), addr: "172.30.1.11"},
		{name: "IPv6 annotation wins", node: node(map[string]string{AnnotationIPv6Address: "fd30:0:1::11/64"}, "172.30.1.11", "fd00::5"), addr: "172.30.1.11", addr6: "fd30:0:1::11"},
		{name: "an IPv4-mapped address is not IPv6", node: node(nil, "::ffff:10.0.0.1", "172.30.1.11"), addr: "172.30.1.11"},
		{name: "IPv4 in the IPv6 annotation", node: node(map[string]string{AnnotationIPv6Address: "10.0.0.1"}), wantErr: AnnotationIPv6Address},
		{name: "IPv6 in the IPv4 annotation", node: node(map[string]string{AnnotationIPv4Address: "fd00::1"}), wantErr: AnnotationIPv4Address},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info, err := NodeInfoFrom(tc.node, 64512)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := addrString(info.Addr); got != tc.addr {
				t.Errorf("IPv4 address %q, want %q", got, tc.addr)
			}
			if got := addrString(info.Addr6); got != tc.addr6 {
				t.Errorf("IPv6 address %q, want %q", got, tc.addr6)
			}
		})
	}
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
