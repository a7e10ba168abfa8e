package peering

import (
	"encoding/json"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
)

// fuzzInput is what a cluster can say about BGP: the default
// BGPConfiguration, BGPPeers, IP pools and the nodes' annotations.
type fuzzInput struct {
	Config *v1.BGPConfigurationSpec `json:"config"`
	Peers  []v1.BGPPeerSpec         `json:"peers"`
	Pools  []v1.IPPoolSpec          `json:"pools"`
	Nodes  []map[string]string      `json:"nodes"` // annotations
	Owned  []string                 `json:"owned"`
}

// The translation from CRDs to the speaker's peers and announcements runs
// on whatever objects the API server holds (their CEL rules may lag behind
// the code, or be bypassed by an older CRD): it must never panic, never
// peer with the node itself, never announce or accept a default route, and
// ask only for the Secrets SecretNames names.
func FuzzTranslate(f *testing.F) {
	f.Add([]byte(`{"config":{"asNumber":64512,"serviceClusterIPs":[{"cidr":"10.96.0.0/12"}],"communities":[{"name":"a","value":"64512:100"}],"prefixAdvertisements":[{"cidr":"10.96.0.0/12","communities":["a","65000:1"]}]},
		"peers":[{"peerIP":"172.30.1.1","asNumber":65001,"password":{"secretKeyRef":{"name":"s","key":"k"}}},{"peerSelector":"all()","nodeSelector":"rack == 'r1'"}],
		"pools":[{"cidr":"10.244.0.0/16"},{"cidr":"0.0.0.0/0"}],
		"nodes":[{"cairn.dev/ipv4-address":"172.30.1.11/24"},{"cairn.dev/ipv4-address":"172.30.1.12","cairn.dev/as-number":"1.10","cairn.dev/route-reflector-cluster-id":"1.2.3.4"}],
		"owned":["10.244.1.0/26","0.0.0.0/0"]}`))
	f.Add([]byte(`{"peers":[{"peerIP":"::1","asNumber":4294967295,"node":"n0","holdTime":"1s","maxPrefixes":-1}],"nodes":[{"cairn.dev/as-number":"0"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var in fuzzInput
		if json.Unmarshal(data, &in) != nil || len(in.Nodes) == 0 || len(in.Nodes) > 16 {
			return
		}
		var cfg *v1.BGPConfiguration
		if in.Config != nil {
			cfg = &v1.BGPConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: *in.Config}
		}
		var nodes []NodeInfo
		for i, ann := range in.Nodes {
			n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n" + string(rune('0'+i)), Annotations: ann, Labels: map[string]string{"rack": "r1"}}}
			if info, err := NodeInfoFrom(n, 64512); err == nil {
				nodes = append(nodes, info)
			}
		}
		if len(nodes) == 0 {
			return
		}
		peers := make([]v1.BGPPeer, len(in.Peers))
		for i, s := range in.Peers {
			peers[i] = v1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "p" + string(rune('0'+i%10))}, Spec: s}
		}
		allowed := SecretNames(cfg, peers)
		got, _ := Peers(PeersInput{Self: nodes[0], Nodes: nodes, Config: cfg, Peers: peers}, func(ref v1.SecretKeyRef) (string, error) {
			if !slices.Contains(allowed, ref.Name) {
				t.Fatalf("asked for Secret %q, not among %v", ref.Name, allowed)
			}
			return "pw", nil
		})
		for _, p := range got {
			if !p.Address.IsValid() || (nodes[0].Addr.IsValid() && p.Address == nodes[0].Addr) {
				t.Fatalf("peer %+v: invalid address or the node itself", p)
			}
		}
		pools := make([]v1.IPPool, len(in.Pools))
		for i, s := range in.Pools {
			pools[i] = v1.IPPool{Spec: s}
		}
		var owned, blocks []netip.Prefix
		for _, s := range in.Owned {
			if p, err := netip.ParsePrefix(s); err == nil {
				blocks = append(blocks, p) // a block may say anything
				if p.Bits() > 0 {
					owned = append(owned, p)
				}
			}
		}
		for _, p := range ImportFilter(pools, blocks) {
			if p.Bits() == 0 {
				t.Fatalf("import filter accepts a default route: %v", p)
			}
		}
		ads, _ := Advertisements(ExportInput{Owned: owned, Pools: pools, Config: cfg})
		for _, a := range ads {
			if a.Prefix.Bits() == 0 {
				t.Fatalf("announces a default route")
			}
		}
	})
}
