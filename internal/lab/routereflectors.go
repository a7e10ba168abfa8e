package lab

import (
	"context"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cairnv1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/bgp/peering"
)

// Route reflectors (Options.RouteReflectors, at least two racks): the node
// mesh stays off, as in every multi-rack lab, and the ToRs no longer
// reflect; instead the first two nodes of each rack are that rack's route
// reflectors, chosen by the label RouteReflectorLabel, with one cluster ID
// per rack on the Node (peering.AnnotationRRClusterID). Two BGPPeers per
// rack say who peers with whom, as a Calico user writes them:
//
//	rr-clients-R: nodeSelector "rack=R,RouteReflectorLabel=true", peerSelector "rack=R"
//	to-rr-R:      nodeSelector "rack=R", peerSelector "rack=R,RouteReflectorLabel=true"
//
// so a node has three sessions (its two reflectors and its ToR) and a
// reflector one per other node of its rack and the ToR. Reflection stays
// inside a rack: the racks are separate ASes on separate subnets, a node
// of another rack is no next hop a node can reach directly (felix refuses
// it), and the ToR and spine carry routes between racks by eBGP.

// RouteReflectorLabel marks, with "true", a Node that reflects its rack's
// routes.
const RouteReflectorLabel = "cairn.dev/route-reflector"

// reflectorsPerRack is how many nodes of a rack reflect.
const reflectorsPerRack = 2

// rrClusterID is rack r's reflectors' cluster ID.
func rrClusterID(r int) string { return fmt.Sprintf("10.255.%d.1", r) }

// Reflector reports whether the node reflects its rack's routes.
func (n Node) Reflector() bool { return n.RRClusterID != "" }

// reflectorPeers are the nodes n has a session with in a route-reflector
// lab: its rack's reflectors, or, for a reflector, every other node of its
// rack.
func (p Plan) reflectorPeers(n Node) []netip.Addr {
	if !p.BGP.RouteReflectors {
		return nil
	}
	var out []netip.Addr
	for _, r := range p.Racks {
		for _, other := range r.Nodes {
			if other.Rack == n.Rack && other.Name != n.Name && (n.Reflector() || other.Reflector()) {
				out = append(out, other.Addrs()...)
			}
		}
	}
	return out
}

// labelReflector marks a reflector's Node.
func labelReflector(node *corev1.Node, n Node) {
	if !n.Reflector() {
		return
	}
	node.Labels[RouteReflectorLabel] = "true"
	if node.Annotations == nil {
		node.Annotations = map[string]string{}
	}
	node.Annotations[peering.AnnotationRRClusterID] = n.RRClusterID
}

// createReflectorPeers writes each rack's two BGPPeers.
func createReflectorPeers(ctx context.Context, c *clients, p Plan) error {
	if !p.BGP.RouteReflectors {
		return nil
	}
	for _, r := range p.Racks {
		rack := RackLabel + "=" + r.Name
		reflectors := rack + "," + RouteReflectorLabel + "=true"
		for _, peer := range []*cairnv1.BGPPeer{
			{ObjectMeta: labMeta("rr-clients-" + r.Name), Spec: cairnv1.BGPPeerSpec{NodeSelector: reflectors, PeerSelector: rack}},
			{ObjectMeta: labMeta("to-rr-" + r.Name), Spec: cairnv1.BGPPeerSpec{NodeSelector: rack, PeerSelector: reflectors}},
		} {
			if _, err := c.cairn.CairnV1alpha1().BGPPeers().Create(ctx, peer, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("create BGPPeer %s: %w", peer.Name, err)
			}
		}
	}
	return nil
}
