package agent

import (
	"context"
	"log/slog"
	"net/netip"
	"reflect"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	cairnlisters "github.com/cairn-net/cairn/apis/client/listers/cairn/v1alpha1"
	"github.com/cairn-net/cairn/bgp/peering"
	"github.com/cairn-net/cairn/bgp/speaker"
)

type fakeSpeaker struct {
	mu     sync.Mutex
	peers  []speaker.Peer
	ads    []speaker.Advertisement
	filter []netip.Prefix
}

func (s *fakeSpeaker) SetPeers(p []speaker.Peer) error {
	s.mu.Lock()
	s.peers = p
	s.mu.Unlock()
	return nil
}
func (s *fakeSpeaker) SetAdvertisements(a []speaker.Advertisement) error {
	s.mu.Lock()
	s.ads = a
	s.mu.Unlock()
	return nil
}
func (s *fakeSpeaker) SetImportFilter(f []netip.Prefix) { s.mu.Lock(); s.filter = f; s.mu.Unlock() }
func (s *fakeSpeaker) PeerStates() []speaker.PeerState  { return nil }

type blocksAlloc struct {
	fakeAlloc
	owned    []netip.Prefix
	borrowed []netip.Addr
}

func (a *blocksAlloc) OwnedBlocks(context.Context) ([]netip.Prefix, error) { return a.owned, nil }
func (a *blocksAlloc) Borrowed(context.Context) ([]netip.Addr, error)      { return a.borrowed, nil }

type recordingDataplane struct {
	fakeDataplane
	blocks []netip.Prefix
	pools  []Pool
}

func (d *recordingDataplane) SetOwnedBlocks(b []netip.Prefix) { d.blocks = b }
func (d *recordingDataplane) SetPools(p []Pool)               { d.pools = p }

func indexer(objs ...any) cache.Indexer {
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, o := range objs {
		_ = idx.Add(o)
	}
	return idx
}

func node(name, ip string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"rack": "r1"}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}}}
}

// TestSyncWiresClusterStateToSpeakerAndDataplane checks the whole sync on
// listers and fakes: mesh and BGPPeer sessions, announced blocks and
// borrowed /32s, the import filter and the pools felix NATs for.
func TestSyncWiresClusterStateToSpeakerAndDataplane(t *testing.T) {
	pool := &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1.IPPoolSpec{CIDR: "10.244.0.0/16", NATOutgoing: true}}
	tor := &v1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "tor"}, Spec: v1.BGPPeerSpec{PeerIP: "172.30.1.1", ASNumber: 65001, NodeSelector: "rack=r1"}}
	spk := &fakeSpeaker{}
	dp := &recordingDataplane{fakeDataplane: fakeDataplane{endpoints: map[string][]netip.Prefix{}}}
	alloc := &blocksAlloc{owned: []netip.Prefix{netip.MustParsePrefix("10.244.3.0/26")}, borrowed: []netip.Addr{netip.MustParseAddr("10.244.9.7")}}
	c := &controller{
		log: slog.New(slog.DiscardHandler), nodeName: "node1", nodeAddr: netip.MustParseAddr("172.30.1.11"), queue: newQueue(),
		nodes:   corelisters.NewNodeLister(indexer(node("node1", "172.30.1.11"), node("node2", "172.30.1.12"))),
		pools:   cairnlisters.NewIPPoolLister(indexer(pool)),
		configs: cairnlisters.NewBGPConfigurationLister(indexer()),
		peers:   cairnlisters.NewBGPPeerLister(indexer(tor)),
		alloc:   alloc, speaker: spk, dataplane: dp, clusterASN: func() uint32 { return peering.DefaultASN },
	}
	if err := c.sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	var peerAddrs []string
	for _, p := range spk.peers {
		peerAddrs = append(peerAddrs, p.Name+"="+p.Address.String())
	}
	if want := []string{"peer:tor=172.30.1.1", "mesh:node2=172.30.1.12"}; !reflect.DeepEqual(peerAddrs, want) {
		t.Errorf("peers = %v, want %v", peerAddrs, want)
	}
	var ads []string
	for _, a := range spk.ads {
		ads = append(ads, a.Prefix.String())
	}
	if want := []string{"10.244.3.0/26", "10.244.9.7/32"}; !reflect.DeepEqual(ads, want) {
		t.Errorf("advertisements = %v, want %v", ads, want)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}; !reflect.DeepEqual(spk.filter, want) {
		t.Errorf("import filter = %v, want %v", spk.filter, want)
	}
	if !reflect.DeepEqual(dp.blocks, alloc.owned) || len(dp.pools) != 1 || !dp.pools[0].NATOutgoing {
		t.Errorf("dataplane blocks %v pools %+v", dp.blocks, dp.pools)
	}
	if r := c.lastResult(); r.err != nil || len(r.blocks) != 1 {
		t.Errorf("last result %+v", r)
	}
}

func TestSameStatusIgnoresTimestamps(t *testing.T) {
	now := metav1.Now()
	a := v1.CairnNodeStatusStatus{LastUpdated: &now, BGP: v1.NodeBGPStatus{Established: 1, Peers: []v1.BGPSessionStatus{{PeerIP: "1.1.1.1", State: "Established", Since: &now}}}}
	b := *a.DeepCopy()
	later := metav1.NewTime(now.Add(5e9))
	b.LastUpdated, b.BGP.Peers[0].Since = &later, &later
	if !sameStatus(a, b) {
		t.Error("statuses differing only in timestamps must compare equal")
	}
	b.BGP.Peers[0].State = "Active"
	if sameStatus(a, b) {
		t.Error("a session state change must be seen")
	}
	if a.BGP.Peers[0].Since == nil {
		t.Error("sameStatus must not modify its arguments")
	}
}
