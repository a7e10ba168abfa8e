package peering

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/bgp/speaker"
)

var (
	n1 = NodeInfo{Name: "n1", Labels: map[string]string{"rack": "r1"}, Addr: netip.MustParseAddr("172.30.1.11"), ASN: 64512}
	n2 = NodeInfo{Name: "n2", Labels: map[string]string{"rack": "r1"}, Addr: netip.MustParseAddr("172.30.1.12"), ASN: 64512}
	n3 = NodeInfo{Name: "n3", Labels: map[string]string{"rack": "r2"}, Addr: netip.MustParseAddr("172.30.2.11"), ASN: 64513}
	rr = NodeInfo{Name: "rr", Labels: map[string]string{"rr": "yes"}, Addr: netip.MustParseAddr("172.30.1.2"), ASN: 64512, RRClusterID: "1.1.1.1"}
	// rr2 is a second reflector of rr's cluster, in rack r1 too.
	rr2 = NodeInfo{Name: "rr2", Labels: map[string]string{"rr": "yes", "rack": "r1"}, Addr: netip.MustParseAddr("172.30.1.3"), ASN: 64512, RRClusterID: "1.1.1.1"}
)

func boolp(b bool) *bool { return &b }

func int32p(i int32) *int32 { return &i }

// withDefaultLimit gives the peers that state no prefix limit the default
// limit, and sessions between nodes their connect retry
// one, as Peers does: tables whose subject is something else leave it out.
func withDefaultLimit(peers []speaker.Peer) []speaker.Peer {
	out := make([]speaker.Peer, len(peers))
	for i, p := range peers {
		if p.MaxPrefixes == 0 {
			p.MaxPrefixes = DefaultMaxPrefixes
		}
		if p.ConnectRetry == 0 && IsNodeSession(p.Name) { // TestNodeSessionsRetrySooner
			p.ConnectRetry = nodeConnectRetry
		}
		out[i] = p
	}
	return out
}

func cfg(mesh bool) *v1.BGPConfiguration {
	return &v1.BGPConfiguration{Spec: v1.BGPConfigurationSpec{NodeToNodeMeshEnabled: boolp(mesh)}}
}

func bgpPeer(name string, spec v1.BGPPeerSpec) v1.BGPPeer {
	return v1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

func secrets(values map[string]string) Secrets {
	return func(ref v1.SecretKeyRef) (string, error) {
		v, ok := values[ref.Name+"/"+ref.Key]
		if !ok {
			return "", errors.New("secret " + ref.Name + " has no key " + ref.Key)
		}
		return v, nil
	}
}

// meshBFD is a configuration with a short mesh hold time and BFD.
var meshBFD = &v1.BGPConfiguration{Spec: v1.BGPConfigurationSpec{
	NodeMeshHoldTime: &metav1.Duration{Duration: 9 * time.Second},
	NodeMeshBFD:      &v1.BFD{Enabled: true, Interval: &metav1.Duration{Duration: 200 * time.Millisecond}, Multiplier: 3},
}}

func withPort(n NodeInfo, port uint16) NodeInfo { n.Port = port; return n }

func TestPeers(t *testing.T) {
	tor := bgpPeer("tor", v1.BGPPeerSpec{PeerIP: "172.30.1.1", ASNumber: 65001, NodeSelector: "rack=r1",
		Password: &v1.BGPPassword{SecretKeyRef: &v1.SecretKeyRef{Name: "bgp", Key: "tor"}},
		HoldTime: &metav1.Duration{Duration: 9 * time.Second}, TTLSecurity: 1, MaxPrefixes: 100, MaxRestartTime: &metav1.Duration{Duration: 30 * time.Second}})
	tests := []struct {
		name    string
		in      PeersInput
		want    []speaker.Peer
		wantErr string
	}{
		{name: "mesh by default", in: PeersInput{Self: n1, Nodes: []NodeInfo{n1, n2, n3}},
			want: []speaker.Peer{
				{Name: "mesh:n2", Address: n2.Addr, ASN: 64512, MaxPrefixes: DefaultMaxPrefixes},
				{Name: "mesh:n3", Address: n3.Addr, ASN: 64513, MaxPrefixes: DefaultMaxPrefixes},
			}},
		{name: "of each pair of nodes the lower address dials, the higher listens", in: PeersInput{Self: n2, Nodes: []NodeInfo{n1, n2, n3}},
			want: []speaker.Peer{
				{Name: "mesh:n1", Address: n1.Addr, ASN: 64512, MaxPrefixes: DefaultMaxPrefixes, Passive: true},
				{Name: "mesh:n3", Address: n3.Addr, ASN: 64513, MaxPrefixes: DefaultMaxPrefixes},
			}},
		{name: "the configuration's prefix limit applies to the mesh and to peers without their own",
			in: PeersInput{Self: n1, Nodes: []NodeInfo{n1, n2}, Config: &v1.BGPConfiguration{Spec: v1.BGPConfigurationSpec{MaxPrefixes: int32p(300)}},
				Peers: []v1.BGPPeer{bgpPeer("tor", v1.BGPPeerSpec{PeerIP: "172.30.1.1", ASNumber: 65001, SourceAddress: v1.SourceAddressNone}),
					bgpPeer("tor2", v1.BGPPeerSpec{PeerIP: "172.30.1.2", ASNumber: 65001, SourceAddress: v1.SourceAddressNone, MaxPrefixes: 7})}},
			want: []speaker.Peer{
				{Name: "peer:tor", Address: netip.MustParseAddr("172.30.1.1"), ASN: 65001, MaxPrefixes: 300},
				{Name: "peer:tor2", Address: netip.MustParseAddr("172.30.1.2"), ASN: 65001, MaxPrefixes: 7},
				{Name: "mesh:n2", Address: n2.Addr, ASN: 64512, MaxPrefixes: 300},
			}},
		{name: "mesh disabled", in: PeersInput{Self: n1, Nodes: []NodeInfo{n1, n2}, Config: cfg(false)}, want: []speaker.Peer{}},
		{name: "node without address is skipped", in: PeersInput{Self: n1, Nodes: []NodeInfo{n1, {Name: "new", ASN: 64512}}}, want: []speaker.Peer{}},
		{name: "router peer selected by label, settings carried", in: PeersInput{Self: n1, Nodes: []NodeInfo{n1}, Config: cfg(false), Peers: []v1.BGPPeer{tor}},
			want: []speaker.Peer{{Name: "peer:tor", Address: netip.MustParseAddr("172.30.1.1"), ASN: 65001, Password: "s3cret",
				HoldTime: 9 * time.Second, TTLSecurity: 1, MaxPrefixes: 100, MaxRestartTime: 30 * time.Second, SourceAddress: n1.Addr}}},
		{name: "router peer not selecting this node", in: PeersInput{Self: n3, Nodes: []NodeInfo{n3}, Config: cfg(false), Peers: []v1.BGPPeer{tor}}, want: []speaker.Peer{}},
		{name: "peer for one named node", in: PeersInput{Self: n2, Nodes: []NodeInfo{n2}, Config: cfg(false),
			Peers: []v1.BGPPeer{bgpPeer("only-n1", v1.BGPPeerSpec{Node: "n1", PeerIP: "10.0.0.1", ASNumber: 65000})}}, want: []speaker.Peer{}},
		{name: "global peer, sourceAddress None", in: PeersInput{Self: n2, Nodes: []NodeInfo{n2}, Config: cfg(false),
			Peers: []v1.BGPPeer{bgpPeer("all", v1.BGPPeerSpec{PeerIP: "fd00::1", ASNumber: 65000, SourceAddress: v1.SourceAddressNone, Port: 1179})}},
			want: []speaker.Peer{{Name: "peer:all", Address: netip.MustParseAddr("fd00::1"), ASN: 65000, Port: 1179, MaxPrefixes: DefaultMaxPrefixes}}},
		{name: "explicit peer replaces the mesh session to the same address", in: PeersInput{Self: n1, Nodes: []NodeInfo{n1, n2},
			Peers: []v1.BGPPeer{bgpPeer("to-n2", v1.BGPPeerSpec{PeerIP: "172.30.1.12", ASNumber: 64512, SourceAddress: v1.SourceAddressNone, MaxPrefixes: 5})}},
			want: []speaker.Peer{{Name: "peer:to-n2", Address: n2.Addr, ASN: 64512, MaxPrefixes: 5}}},
		{name: "route reflector: clients from peerSelector", in: PeersInput{Self: rr, Nodes: []NodeInfo{rr, n1, n2}, Config: cfg(false),
			Peers: []v1.BGPPeer{bgpPeer("rr-clients", v1.BGPPeerSpec{NodeSelector: "rr=yes", PeerSelector: "rack=r1", SourceAddress: v1.SourceAddressNone})}},
			want: []speaker.Peer{
				{Name: "peer:rr-clients:n1", Address: n1.Addr, ASN: 64512, RouteReflectorClient: true, RouteReflectorClusterID: "1.1.1.1", MaxPrefixes: DefaultMaxPrefixes},
				{Name: "peer:rr-clients:n2", Address: n2.Addr, ASN: 64512, RouteReflectorClient: true, RouteReflectorClusterID: "1.1.1.1", MaxPrefixes: DefaultMaxPrefixes},
			}},
		{name: "client side of a reflector (listening: the reflector's address is lower)", in: PeersInput{Self: n1, Nodes: []NodeInfo{rr, n1, n2}, Config: cfg(false),
			Peers: []v1.BGPPeer{bgpPeer("to-rr", v1.BGPPeerSpec{PeerSelector: "rr=yes", SourceAddress: v1.SourceAddressNone})}},
			want: []speaker.Peer{{Name: "peer:to-rr:rr", Address: rr.Addr, ASN: 64512, MaxPrefixes: DefaultMaxPrefixes, Passive: true}}},
		{name: "redundant reflectors of one cluster: each other's non-client peer taking only its own routes, both clients' reflector", in: PeersInput{Self: rr,
			Nodes: []NodeInfo{rr, rr2, n1}, Config: cfg(false), Peers: []v1.BGPPeer{
				bgpPeer("rr-clients", v1.BGPPeerSpec{NodeSelector: "rr=yes", PeerSelector: "rack=r1", SourceAddress: v1.SourceAddressNone}),
				bgpPeer("to-rr", v1.BGPPeerSpec{PeerSelector: "rr=yes", SourceAddress: v1.SourceAddressNone})}},
			want: []speaker.Peer{
				{Name: "peer:to-rr:rr2", Address: rr2.Addr, ASN: 64512, MaxPrefixes: DefaultMaxPrefixes, SameCluster: true},
				{Name: "peer:rr-clients:n1", Address: n1.Addr, ASN: 64512, RouteReflectorClient: true, RouteReflectorClusterID: "1.1.1.1", MaxPrefixes: DefaultMaxPrefixes},
			}},
		{name: "reflectors of two clusters are plain non-client peers", in: PeersInput{Self: rr,
			Nodes: []NodeInfo{rr, func() NodeInfo { o := rr2; o.RRClusterID = "2.2.2.2"; return o }()}, Config: cfg(false), Peers: []v1.BGPPeer{
				bgpPeer("to-rr", v1.BGPPeerSpec{PeerSelector: "rr=yes", SourceAddress: v1.SourceAddressNone})}},
			want: []speaker.Peer{{Name: "peer:to-rr:rr2", Address: rr2.Addr, ASN: 64512, MaxPrefixes: DefaultMaxPrefixes}}},
		{name: "bad selector is reported, others still apply", in: PeersInput{Self: n1, Nodes: []NodeInfo{n1}, Config: cfg(false),
			Peers: []v1.BGPPeer{bgpPeer("bad", v1.BGPPeerSpec{NodeSelector: "rack in (", PeerIP: "10.0.0.9", ASNumber: 1}), tor}},
			want: []speaker.Peer{{Name: "peer:tor", Address: netip.MustParseAddr("172.30.1.1"), ASN: 65001, Password: "s3cret",
				HoldTime: 9 * time.Second, TTLSecurity: 1, MaxPrefixes: 100, MaxRestartTime: 30 * time.Second, SourceAddress: n1.Addr}},
			wantErr: "BGPPeer bad nodeSelector"},
		{name: "mesh hold time and BFD from the configuration", in: PeersInput{Self: n1, Nodes: []NodeInfo{n1, n2}, Config: meshBFD},
			want: []speaker.Peer{{Name: "mesh:n2", Address: n2.Addr, ASN: 64512, HoldTime: 9 * time.Second,
				BFD: speaker.BFD{Enabled: true, Interval: 200 * time.Millisecond, Multiplier: 3}}}},
		{name: "BFD on a router peer; a disabled BFD carries nothing", in: PeersInput{Self: n1, Nodes: []NodeInfo{n1}, Config: cfg(false),
			Peers: []v1.BGPPeer{
				bgpPeer("bfd", v1.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: 65000, SourceAddress: v1.SourceAddressNone, BFD: &v1.BFD{Enabled: true}}),
				bgpPeer("off", v1.BGPPeerSpec{PeerIP: "10.0.0.2", ASNumber: 65000, SourceAddress: v1.SourceAddressNone,
					BFD: &v1.BFD{Interval: &metav1.Duration{Duration: time.Second}, Multiplier: 5}}),
			}},
			want: []speaker.Peer{
				{Name: "peer:bfd", Address: netip.MustParseAddr("10.0.0.1"), ASN: 65000, BFD: speaker.BFD{Enabled: true}},
				{Name: "peer:off", Address: netip.MustParseAddr("10.0.0.2"), ASN: 65000},
			}},
		{name: "eBGP multihop to a router's loopback, from the node's address", in: PeersInput{Self: n1, Nodes: []NodeInfo{n1}, Config: cfg(false),
			Peers: []v1.BGPPeer{bgpPeer("lo", v1.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000, EBGPMultihop: 2}),
				bgpPeer("one-hop", v1.BGPPeerSpec{PeerIP: "192.0.2.2", ASNumber: 65000, EBGPMultihop: 1})}},
			want: []speaker.Peer{
				{Name: "peer:lo", Address: netip.MustParseAddr("192.0.2.1"), ASN: 65000, EBGPMultihop: 2, SourceAddress: n1.Addr},
				{Name: "peer:one-hop", Address: netip.MustParseAddr("192.0.2.2"), ASN: 65000, SourceAddress: n1.Addr},
			}},
		{name: "mesh sessions dial the port each node listens on", in: PeersInput{Self: n1, Nodes: []NodeInfo{n1, withPort(n2, 1790), withPort(n3, 179)}},
			want: []speaker.Peer{
				{Name: "mesh:n2", Address: n2.Addr, ASN: 64512, Port: 1790},
				{Name: "mesh:n3", Address: n3.Addr, ASN: 64513},
			}},
		{name: "missing secret skips the peer", in: PeersInput{Self: n1, Nodes: []NodeInfo{n1}, Config: cfg(false),
			Peers: []v1.BGPPeer{bgpPeer("nopw", v1.BGPPeerSpec{PeerIP: "10.0.0.9", ASNumber: 1, Password: &v1.BGPPassword{SecretKeyRef: &v1.SecretKeyRef{Name: "bgp", Key: "missing"}}})}},
			want: []speaker.Peer{}, wantErr: "BGPPeer nopw password"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, errs := Peers(tc.in, secrets(map[string]string{"bgp/tor": "s3cret"}))
			if !reflect.DeepEqual(got, withDefaultLimit(tc.want)) {
				t.Errorf("peers:\n got %+v\nwant %+v", got, tc.want)
			}
			joined := errors.Join(errs...)
			switch {
			case tc.wantErr == "" && joined != nil:
				t.Errorf("unexpected errors: %v", joined)
			case tc.wantErr != "" && (joined == nil || !strings.Contains(joined.Error(), tc.wantErr)):
				t.Errorf("errors %v, want one containing %q", joined, tc.wantErr)
			}
			if joined != nil && strings.Contains(joined.Error(), "s3cret") {
				t.Errorf("a password leaked into an error: %v", joined)
			}
		})
	}
}

func pool(cidr string, noExport bool) v1.IPPool {
	return v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: cidr}, Spec: v1.IPPoolSpec{CIDR: cidr, DisableBGPExport: noExport}}
}

func TestAdvertisements(t *testing.T) {
	pfx := netip.MustParsePrefix
	ad := func(p string, cs ...uint32) speaker.Advertisement {
		return speaker.Advertisement{Prefix: pfx(p), Communities: cs}
	}
	tests := []struct {
		name    string
		in      ExportInput
		want    []speaker.Advertisement
		wantErr string
	}{
		{name: "blocks and borrowed addresses", in: ExportInput{
			Owned: []netip.Prefix{pfx("10.244.0.64/26"), pfx("10.244.0.0/26")}, Borrowed: []netip.Prefix{pfx("10.244.1.5/32")},
			Pools: []v1.IPPool{pool("10.244.0.0/16", false)}},
			want: []speaker.Advertisement{ad("10.244.0.0/26"), ad("10.244.0.64/26"), ad("10.244.1.5/32")}},
		{name: "disableBGPExport pool is not announced", in: ExportInput{
			Owned: []netip.Prefix{pfx("10.244.0.0/26"), pfx("10.245.0.0/26")},
			Pools: []v1.IPPool{pool("10.244.0.0/16", false), pool("10.245.0.0/16", true)}},
			want: []speaker.Advertisement{ad("10.244.0.0/26")}},
		{name: "service ranges and communities", in: ExportInput{
			Owned: []netip.Prefix{pfx("10.244.0.0/26")},
			Config: &v1.BGPConfiguration{Spec: v1.BGPConfigurationSpec{
				ServiceClusterIPs:    []v1.ServiceIPBlock{{CIDR: "10.96.0.0/12"}},
				Communities:          []v1.Community{{Name: "blue", Value: "64512:100"}},
				PrefixAdvertisements: []v1.PrefixAdvertisement{{CIDR: "10.244.0.0/16", Communities: []string{"blue", "65535:65281"}}},
			}}},
			want: []speaker.Advertisement{ad("10.96.0.0/12"), ad("10.244.0.0/26", 64512<<16|100, 65535<<16|65281)}},
		{name: "large communities, named and literal", in: ExportInput{
			Owned: []netip.Prefix{pfx("10.244.0.0/26")},
			Config: &v1.BGPConfiguration{Spec: v1.BGPConfigurationSpec{
				Communities:          []v1.Community{{Name: "rack", Value: "4200000001:7:9"}},
				PrefixAdvertisements: []v1.PrefixAdvertisement{{CIDR: "10.244.0.0/16", Communities: []string{"rack", "64512:1:2", "64512:100"}}},
			}}},
			want: []speaker.Advertisement{{Prefix: pfx("10.244.0.0/26"), Communities: []uint32{64512<<16 | 100},
				LargeCommunities: []speaker.LargeCommunity{{GlobalAdmin: 4200000001, LocalData1: 7, LocalData2: 9}, {GlobalAdmin: 64512, LocalData1: 1, LocalData2: 2}}}}},
		{name: "a large community out of range is refused", in: ExportInput{
			Owned: []netip.Prefix{pfx("10.244.0.0/26")},
			Config: &v1.BGPConfiguration{Spec: v1.BGPConfigurationSpec{
				PrefixAdvertisements: []v1.PrefixAdvertisement{{CIDR: "10.244.0.0/16", Communities: []string{"4294967296:1:2"}}},
			}}},
			want: []speaker.Advertisement{ad("10.244.0.0/26")}, wantErr: "each part must be 0..4294967295"},
		{name: "default route never announced", in: ExportInput{Config: &v1.BGPConfiguration{Spec: v1.BGPConfigurationSpec{
			ServiceExternalIPs: []v1.ServiceIPBlock{{CIDR: "0.0.0.0/0"}}}}},
			want: []speaker.Advertisement{}, wantErr: "default route"},
		{name: "IPv6 block", in: ExportInput{Owned: []netip.Prefix{pfx("fd00:10:244::40/122")}},
			want: []speaker.Advertisement{ad("fd00:10:244::40/122")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, errs := Advertisements(tc.in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("advertisements:\n got %+v\nwant %+v", got, tc.want)
			}
			joined := errors.Join(errs...)
			if (tc.wantErr == "") != (joined == nil) || (joined != nil && !strings.Contains(joined.Error(), tc.wantErr)) {
				t.Errorf("errors %v, want %q", joined, tc.wantErr)
			}
		})
	}
}

func TestImportFilter(t *testing.T) {
	lb := pool("10.98.0.0/24", false)
	lb.Spec.AllowedUses = []v1.IPPoolUse{v1.IPPoolUseLoadBalancer}
	got := ImportFilter([]v1.IPPool{pool("10.244.0.0/16", false), pool("fd00::/48", true), pool("bad", false), pool("0.0.0.0/0", false), lb}, nil)
	want := []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00::/48")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ImportFilter = %v, want %v (a default route is never importable, nor a LoadBalancer pool)", got, want)
	}
	// The pool of 10.245.0.0/26 was deleted while its pods run: its block
	// stays importable; blocks inside a pool add nothing.
	blocks := []netip.Prefix{netip.MustParsePrefix("10.245.0.0/26"), netip.MustParsePrefix("10.244.1.0/26"), netip.MustParsePrefix("0.0.0.0/0")}
	got = ImportFilter([]v1.IPPool{pool("10.244.0.0/16", false)}, blocks)
	want = []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("10.245.0.0/26")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ImportFilter with the blocks of a deleted pool = %v, want %v", got, want)
	}
}

func TestSecretNames(t *testing.T) {
	pw := func(name string) *v1.BGPPassword {
		return &v1.BGPPassword{SecretKeyRef: &v1.SecretKeyRef{Name: name, Key: "k"}}
	}
	mesh := cfg(true)
	mesh.Spec.NodeMeshPassword = pw("mesh")
	for _, tc := range []struct {
		name   string
		config *v1.BGPConfiguration
		peers  []v1.BGPPeer
		want   []string
	}{
		{name: "none", config: nil, peers: nil, want: nil},
		{name: "mesh only", config: mesh, want: []string{"mesh"}},
		{name: "sorted, once each", config: mesh, peers: []v1.BGPPeer{
			bgpPeer("tor2", v1.BGPPeerSpec{Password: pw("tors")}),
			bgpPeer("tor1", v1.BGPPeerSpec{Password: pw("tors")}),
			bgpPeer("rr", v1.BGPPeerSpec{Password: pw("aaa")}),
		}, want: []string{"aaa", "mesh", "tors"}},
		{name: "no ref, no name", config: cfg(true), peers: []v1.BGPPeer{
			bgpPeer("open", v1.BGPPeerSpec{}),
			bgpPeer("broken", v1.BGPPeerSpec{Password: &v1.BGPPassword{}}),
		}, want: nil},
	} {
		if got := SecretNames(tc.config, tc.peers); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: SecretNames = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestNodeInfoFrom(t *testing.T) {
	node := func(ann map[string]string, addrs ...string) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Annotations: ann}}
		for _, a := range addrs {
			n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a})
		}
		return n
	}
	tests := []struct {
		name    string
		node    *corev1.Node
		addr    string
		asn     uint32
		wantErr string
	}{
		{name: "InternalIP and cluster AS", node: node(nil, "fd00::5", "172.30.1.11"), addr: "172.30.1.11", asn: 64512},
		{name: "annotations win", node: node(map[string]string{AnnotationASNumber: "65010", AnnotationIPv4Address: "10.1.1.1/24"}, "172.30.1.11"), addr: "10.1.1.1", asn: 65010},
		{name: "asdot AS", node: node(map[string]string{AnnotationASNumber: "1.10"}), asn: 65546},
		{name: "bad AS", node: node(map[string]string{AnnotationASNumber: "0"}), wantErr: "between 1 and 4294967295"},
		{name: "bad cluster ID", node: node(map[string]string{AnnotationRRClusterID: "rr-1"}), asn: 64512, wantErr: "cluster ID"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info, err := NodeInfoFrom(tc.node, 64512)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if info.ASN != tc.asn || (tc.addr != "" && info.Addr.String() != tc.addr) || (tc.addr == "" && info.Addr.IsValid()) {
				t.Errorf("got ASN %d addr %v, want %d %q", info.ASN, info.Addr, tc.asn, tc.addr)
			}
		})
	}
}

// TestPeersKeepSessionsWhosePasswordIsUnavailable: a password that cannot
// be read for now keeps the sessions it is for as they were (or starts
// none); a password that is gone changes them.
func TestPeersKeepSessionsWhosePasswordIsUnavailable(t *testing.T) {
	meshCfg := &v1.BGPConfiguration{Spec: v1.BGPConfigurationSpec{NodeMeshPassword: &v1.BGPPassword{SecretKeyRef: &v1.SecretKeyRef{Name: "mesh", Key: "pw"}}}}
	tor := bgpPeer("tor", v1.BGPPeerSpec{PeerIP: "172.30.1.1", ASNumber: 65001, Password: &v1.BGPPassword{SecretKeyRef: &v1.SecretKeyRef{Name: "bgp", Key: "tor"}}})
	rrs := bgpPeer("rrs", v1.BGPPeerSpec{PeerSelector: "rr=yes", Password: &v1.BGPPassword{SecretKeyRef: &v1.SecretKeyRef{Name: "bgp", Key: "tor"}}})
	previous := []speaker.Peer{
		{Name: "peer:tor", Address: netip.MustParseAddr("172.30.1.1"), ASN: 65001, Password: "old-tor"},
		{Name: "peer:rrs:rr", Address: rr.Addr, ASN: 64512, Password: "old-tor"},
		{Name: "mesh:n2", Address: n2.Addr, ASN: 64512, Password: "old-mesh"},
	}
	unavailable := func(ref v1.SecretKeyRef) (string, error) {
		return "", fmt.Errorf("Secret %s not read yet: %w", ref.Name, ErrPasswordUnavailable)
	}
	gone := func(ref v1.SecretKeyRef) (string, error) { return "", errors.New("Secret " + ref.Name + " not found") }
	mesh3 := []NodeInfo{n1, n2, n3}
	tests := []struct {
		name    string
		in      PeersInput
		secrets Secrets
		want    []string // name=password, by address
	}{
		{"unavailable: previous sessions kept", PeersInput{Self: n1, Nodes: append(mesh3, rr), Config: meshCfg, Peers: []v1.BGPPeer{tor, rrs}, Previous: previous},
			unavailable, []string{"peer:tor=old-tor", "peer:rrs:rr=old-tor", "mesh:n2=old-mesh"}},
		{"unavailable, nothing before: no session without its password", PeersInput{Self: n1, Nodes: mesh3, Config: meshCfg, Peers: []v1.BGPPeer{tor}},
			unavailable, nil},
		{"unavailable: a node that left is not kept", PeersInput{Self: n1, Nodes: []NodeInfo{n1}, Config: meshCfg, Previous: previous},
			unavailable, nil},
		{"gone: the BGPPeer goes, the mesh runs without a password", PeersInput{Self: n1, Nodes: mesh3, Config: meshCfg, Peers: []v1.BGPPeer{tor}, Previous: previous},
			gone, []string{"mesh:n2=", "mesh:n3="}},
	}
	for _, tc := range tests {
		got, errs := Peers(tc.in, tc.secrets)
		var names []string
		for _, p := range got {
			names = append(names, p.Name+"="+p.Password)
		}
		if !reflect.DeepEqual(names, tc.want) {
			t.Errorf("%s: peers %v, want %v", tc.name, names, tc.want)
		}
		if len(errs) == 0 {
			t.Errorf("%s: no problem reported", tc.name)
		}
	}
}

func TestDeparted(t *testing.T) {
	tor := speaker.Peer{Name: "peer:tor", Address: netip.MustParseAddr("172.30.1.1"), ASN: 65001, Password: "pw"}
	mesh := speaker.Peer{Name: "mesh:node2", Address: netip.MustParseAddr("172.30.1.12"), ASN: 64512}
	sel := speaker.Peer{Name: "peer:reflectors:node3", Address: netip.MustParseAddr("172.30.1.13"), ASN: 64512}
	tor6 := speaker.Peer{Name: "peer:tor-v6", Address: netip.MustParseAddr("fd00::1"), ASN: 65001}
	for _, tc := range []struct {
		name string
		in   []speaker.Peer
		want []speaker.Peer
	}{
		{"nothing before, nothing after", nil, nil},
		{"router sessions stay as they were", []speaker.Peer{tor, tor6}, []speaker.Peer{tor, tor6}},
		{"mesh sessions go", []speaker.Peer{mesh, tor}, []speaker.Peer{tor}},
		{"node-selected sessions go", []speaker.Peer{sel, tor}, []speaker.Peer{tor}},
		{"only node sessions: none left", []speaker.Peer{mesh, sel}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Departed(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Departed = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestMeshListens(t *testing.T) {
	a := netip.MustParseAddr
	for _, c := range []struct {
		self, peer netip.Addr
		want       bool
	}{
		{a("172.30.1.11"), a("172.30.1.12"), false},
		{a("172.30.1.12"), a("172.30.1.11"), true},
		{a("172.30.2.11"), a("172.30.10.1"), false}, // numeric, not text, order
		{a("fd30::c"), a("fd30::b"), true},
		{a("fd30::b"), a("fd30::c"), false},
		{netip.Addr{}, a("172.30.1.11"), false}, // no address of the family: dial, as before
	} {
		if got := meshListens(c.self, c.peer); got != c.want {
			t.Errorf("meshListens(%v, %v) = %v, want %v", c.self, c.peer, got, c.want)
		}
		if c.self.IsValid() && meshListens(c.self, c.peer) == meshListens(c.peer, c.self) {
			t.Errorf("%v and %v: exactly one end must dial", c.self, c.peer)
		}
	}
}

// TestNodeSessionsRetrySooner: the dialling end of a session between two
// nodes (mesh, peerSelector) tries again 2 s after a failed connection,
// so that nodes starting together meet within seconds; sessions to
// routers keep the speaker's default.
func TestNodeSessionsRetrySooner(t *testing.T) {
	in := PeersInput{Self: n1, Nodes: []NodeInfo{n1, n2, rr}, Config: cfg(true), Peers: []v1.BGPPeer{
		bgpPeer("to-rr", v1.BGPPeerSpec{PeerSelector: "rr=yes", SourceAddress: v1.SourceAddressNone}),
		bgpPeer("tor", v1.BGPPeerSpec{PeerIP: "172.30.1.1", ASNumber: 65001, SourceAddress: v1.SourceAddressNone}),
	}}
	got, errs := Peers(in, secrets(nil))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := map[string]time.Duration{"mesh:n2": 2 * time.Second, "peer:to-rr:rr": 2 * time.Second, "peer:tor": 0}
	for _, p := range got {
		if w, ok := want[p.Name]; !ok || p.ConnectRetry != w {
			t.Errorf("%s: connect retry %s, want %s", p.Name, p.ConnectRetry, w)
		}
		delete(want, p.Name)
	}
	if len(want) > 0 {
		t.Errorf("sessions missing: %v", want)
	}
	for name, node := range map[string]bool{"mesh:n2": true, "peer:to-rr:rr": true, "peer:tor": false} {
		if IsNodeSession(name) != node {
			t.Errorf("IsNodeSession(%q) = %v", name, !node)
		}
	}
}
