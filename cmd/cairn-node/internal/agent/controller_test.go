package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	cairnlisters "github.com/cairn-net/cairn/apis/client/listers/cairn/v1alpha1"
	"github.com/cairn-net/cairn/apis/kubecore/kubecoretest"
	"github.com/cairn-net/cairn/bgp/peering"
	"github.com/cairn-net/cairn/bgp/speaker"
	"github.com/cairn-net/cairn/felix"
	"github.com/cairn-net/cairn/ipam"
)

type fakeSpeaker struct {
	mu     sync.Mutex
	global speaker.Global
	peers  []speaker.Peer
	ads    []speaker.Advertisement
	filter []netip.Prefix
	held   []speaker.Holding
	// refused is what RefusedPaths answers, states what PeerStates does.
	refused []speaker.RefusedPath
	states  []speaker.PeerState
}

func (s *fakeSpeaker) SetGlobal(g speaker.Global) error {
	s.mu.Lock()
	s.global = g
	s.mu.Unlock()
	return nil
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
func (s *fakeSpeaker) SetImportFilter(f []netip.Prefix)           { s.mu.Lock(); s.filter = f; s.mu.Unlock() }
func (s *fakeSpeaker) PeerStates() []speaker.PeerState            { return s.states }
func (s *fakeSpeaker) RefusedPaths() ([]speaker.RefusedPath, int) { return s.refused, len(s.refused) }
func (s *fakeSpeaker) SetHoldings(h []speaker.Holding)            { s.mu.Lock(); s.held = h; s.mu.Unlock() }

type recordingDataplane struct {
	fakeDataplane
	mu     sync.Mutex
	blocks []netip.Prefix
	pools  []felix.Pool
}

func (d *recordingDataplane) SetOwnedBlocks(b []netip.Prefix) {
	d.mu.Lock()
	d.blocks = b
	d.mu.Unlock()
}
func (d *recordingDataplane) SetPools(p []felix.Pool) { d.mu.Lock(); d.pools = p; d.mu.Unlock() }

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

// block is an IPAM block owned by owner, with addresses held by nodes
// (ordinal -> node).
func block(cidr, owner string, held map[int32]string) *v1.IPAMBlock {
	b := &v1.IPAMBlock{ObjectMeta: metav1.ObjectMeta{Name: ipam.BlockName(netip.MustParsePrefix(cidr))},
		Spec: v1.IPAMBlockSpec{CIDR: cidr, Affinity: ipam.AffinityValue(owner)}}
	for ord, n := range held {
		b.Spec.Allocations = append(b.Spec.Allocations, v1.BlockAllocation{Ordinal: ord, Handle: "h", Node: n})
	}
	return b
}

func claim(node, cidr string) *v1.BlockAffinity {
	return &v1.BlockAffinity{ObjectMeta: metav1.ObjectMeta{Name: ipam.AffinityName(node, netip.MustParsePrefix(cidr))},
		Spec: v1.BlockAffinitySpec{Node: node, CIDR: cidr, State: v1.AffinityConfirmed}}
}

// TestSyncWiresClusterStateToSpeakerAndDataplane checks the whole sync on
// listers and fakes: mesh and BGPPeer sessions (the password read through
// a Secret informer), announced blocks and borrowed /32s in numeric order,
// the import filter, the BGPPeer's BGPFilter and the pools felix NATs for.
func TestSyncWiresClusterStateToSpeakerAndDataplane(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1.IPPoolSpec{CIDR: "10.244.0.0/16", NATOutgoing: true}}
	tor := &v1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "tor"}, Spec: v1.BGPPeerSpec{PeerIP: "172.30.1.1", ASNumber: 65001, NodeSelector: "rack=r1",
		Password: &v1.BGPPassword{SecretKeyRef: &v1.SecretKeyRef{Name: "bgp", Key: "tor"}}, Filters: []string{"tor-in"}}}
	torIn := &v1.BGPFilter{ObjectMeta: metav1.ObjectMeta{Name: "tor-in"}, Spec: v1.BGPFilterSpec{ImportV4: []v1.BGPFilterRule{{Action: "Reject"}}}}
	kube := fake.NewClientset(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "cairn-system", Name: "bgp"}, Data: map[string][]byte{"tor": []byte("pw")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "cairn-system", Name: "unrelated"}},
	)
	spk := &fakeSpeaker{}
	dp := &recordingDataplane{fakeDataplane: fakeDataplane{endpoints: map[string][]netip.Prefix{}}}
	c := &controller{
		log: slog.New(slog.DiscardHandler), nodeName: "node1", nodeAddr: netip.MustParseAddr("172.30.1.11"), queue: newQueue(),
		listers: listers{
			nodes:   corelisters.NewNodeLister(indexer(node("node1", "172.30.1.11"), node("node2", "172.30.1.12"))),
			pools:   cairnlisters.NewIPPoolLister(indexer(pool)),
			configs: cairnlisters.NewBGPConfigurationLister(indexer()),
			peers:   cairnlisters.NewBGPPeerLister(indexer(tor)), filters: cairnlisters.NewBGPFilterLister(indexer(torIn)),
			// node1 owns two blocks (10.244.10.0 sorts before 10.244.2.0
			// as a string, after it as a prefix) and borrowed 10.244.9.7.
			blocks: cairnlisters.NewIPAMBlockLister(indexer(
				block("10.244.10.0/26", "node1", nil), block("10.244.2.0/26", "node1", nil),
				block("10.244.9.0/26", "node2", map[int32]string{5: "node2", 7: "node1"}))),
			affinities: cairnlisters.NewBlockAffinityLister(indexer(
				claim("node1", "10.244.10.0/26"), claim("node1", "10.244.2.0/26"), claim("node2", "10.244.9.0/26"))),
		},
		speaker: spk, dataplane: dp,
	}
	c.secrets = newSecretWatch(kubecoretest.From(kube), "cairn-system", c.enqueue)
	if err := c.sync(ctx); err != nil {
		t.Fatal(err)
	}
	var peerAddrs []string
	for _, p := range spk.peers {
		peerAddrs = append(peerAddrs, p.Name+"="+p.Address.String())
	}
	if want := []string{"peer:tor=172.30.1.1", "mesh:node2=172.30.1.12"}; !reflect.DeepEqual(peerAddrs, want) {
		t.Errorf("peers = %v, want %v", peerAddrs, want)
	}
	if spk.peers[0].Password != "pw" {
		t.Error("the BGPPeer's password was not read from its Secret")
	}
	if f := spk.peers[0].Filters; f == nil || len(f.Import) != 1 || f.Import[0].Source != "BGPFilter tor-in importV4[0]" || spk.peers[1].Filters != nil {
		t.Errorf("filters %+v, %+v: want the BGPPeer's BGPFilter on its session only", spk.peers[0].Filters, spk.peers[1].Filters)
	}
	var ads []string
	for _, a := range spk.ads {
		ads = append(ads, a.Prefix.String())
	}
	if want := []string{"10.244.2.0/26", "10.244.9.7/32", "10.244.10.0/26"}; !reflect.DeepEqual(ads, want) {
		t.Errorf("advertisements = %v, want %v", ads, want)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}; !reflect.DeepEqual(spk.filter, want) {
		t.Errorf("import filter = %v, want %v", spk.filter, want)
	}
	var held []string
	for _, h := range spk.held {
		held = append(held, fmt.Sprintf("%s:%v:local=%t:borrowed=%t", h.Prefix, h.NextHops, h.Local, h.Borrowed))
	}
	if want := []string{
		"10.244.2.0/26:[172.30.1.11]:local=true:borrowed=false",
		"10.244.9.0/26:[172.30.1.12]:local=false:borrowed=false",
		"10.244.9.7/32:[172.30.1.11]:local=true:borrowed=true",
		"10.244.10.0/26:[172.30.1.11]:local=true:borrowed=false",
	}; !reflect.DeepEqual(held, want) {
		t.Errorf("holdings =\n%s\nwant\n%s", strings.Join(held, "\n"), strings.Join(want, "\n"))
	}
	wantBlocks := []netip.Prefix{netip.MustParsePrefix("10.244.2.0/26"), netip.MustParsePrefix("10.244.10.0/26")}
	if !reflect.DeepEqual(dp.blocks, wantBlocks) || len(dp.pools) != 1 || !dp.pools[0].NATOutgoing {
		t.Errorf("dataplane blocks %v pools %+v, want blocks %v", dp.blocks, dp.pools, wantBlocks)
	}
	if r := c.lastResult(); r.err != nil || !reflect.DeepEqual(r.blocks, wantBlocks) {
		t.Errorf("last result %+v", r)
	}
}

// TestSyncReportsMissingSecret: a password whose Secret does not exist is
// that peer's problem; the mesh still applies.
func TestSyncReportsMissingSecret(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tor := &v1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "tor"}, Spec: v1.BGPPeerSpec{PeerIP: "172.30.1.1", ASNumber: 65001,
		Password: &v1.BGPPassword{SecretKeyRef: &v1.SecretKeyRef{Name: "missing", Key: "tor"}}}}
	spk := &fakeSpeaker{}
	c := &controller{
		log: slog.New(slog.DiscardHandler), nodeName: "node1", queue: newQueue(),
		listers: listers{
			nodes: corelisters.NewNodeLister(indexer(node("node1", "172.30.1.11"), node("node2", "172.30.1.12"))),
			pools: cairnlisters.NewIPPoolLister(indexer()), configs: cairnlisters.NewBGPConfigurationLister(indexer()),
			peers: cairnlisters.NewBGPPeerLister(indexer(tor)), filters: cairnlisters.NewBGPFilterLister(indexer()), blocks: cairnlisters.NewIPAMBlockLister(indexer()),
			affinities: cairnlisters.NewBlockAffinityLister(indexer()),
		},
		speaker: spk, dataplane: &recordingDataplane{},
	}
	c.secrets = newSecretWatch(kubecoretest.From(fake.NewClientset()), "cairn-system", c.enqueue)
	err := c.sync(ctx)
	if err == nil || !strings.Contains(err.Error(), "cairn-system/missing not found") {
		t.Errorf("sync error = %v, want the missing Secret named", err)
	}
	if len(spk.peers) != 1 || spk.peers[0].Name != "mesh:node2" {
		t.Errorf("peers = %+v, want the mesh session alone", spk.peers)
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

// TestSyncOfADeletedNode: once this node's Node object is gone it
// withdraws everything it announced and keeps only router sessions; when
// the Node is back it announces and meshes again. Felix keeps the blocks
// (local pods stay routed).
func TestSyncOfADeletedNode(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1.IPPoolSpec{CIDR: "10.244.0.0/16"}}
	tor := &v1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "tor"}, Spec: v1.BGPPeerSpec{PeerIP: "172.30.1.1", ASNumber: 65001}}
	// node1 runs with an AS of its own (annotation): when its Node goes,
	// that AS must stay, or the sessions it keeps would reset as Bad Peer AS.
	n1 := node("node1", "172.30.1.11")
	n1.Annotations = map[string]string{peering.AnnotationASNumber: "65101"}
	nodes := indexer(n1, node("node2", "172.30.1.12"))
	spk := &fakeSpeaker{}
	dp := &recordingDataplane{fakeDataplane: fakeDataplane{endpoints: map[string][]netip.Prefix{}}}
	c := &controller{
		log: slog.New(slog.DiscardHandler), nodeName: "node1", nodeAddr: netip.MustParseAddr("172.30.1.11"), queue: newQueue(),
		listers: listers{
			nodes:   corelisters.NewNodeLister(nodes),
			pools:   cairnlisters.NewIPPoolLister(indexer(pool)),
			configs: cairnlisters.NewBGPConfigurationLister(indexer()),
			peers:   cairnlisters.NewBGPPeerLister(indexer(tor)), filters: cairnlisters.NewBGPFilterLister(indexer()),
			blocks:     cairnlisters.NewIPAMBlockLister(indexer(block("10.244.2.0/26", "node1", nil))),
			affinities: cairnlisters.NewBlockAffinityLister(indexer(claim("node1", "10.244.2.0/26"))),
		},
		speaker: spk, dataplane: dp,
	}
	c.secrets = newSecretWatch(kubecoretest.From(fake.NewClientset()), "cairn-system", c.enqueue)
	state := func() (peers, ads []string) {
		for _, p := range spk.peers {
			peers = append(peers, p.Name)
		}
		for _, a := range spk.ads {
			ads = append(ads, a.Prefix.String())
		}
		return peers, ads
	}
	member := func(stage string) {
		t.Helper()
		if err := c.sync(ctx); err != nil {
			t.Fatal(err)
		}
		peers, ads := state()
		if want := []string{"peer:tor", "mesh:node2"}; !reflect.DeepEqual(peers, want) {
			t.Errorf("%s: peers = %v, want %v", stage, peers, want)
		}
		if want := []string{"10.244.2.0/26"}; !reflect.DeepEqual(ads, want) {
			t.Errorf("%s: advertisements = %v, want %v", stage, ads, want)
		}
	}
	member("a member")
	memberGlobal := spk.global

	self, _, _ := nodes.GetByKey("node1")
	if err := nodes.Delete(self); err != nil {
		t.Fatal(err)
	}
	for range 2 { // and stays so on the next sync
		if err := c.sync(ctx); err != nil {
			t.Fatal(err)
		}
		peers, ads := state()
		if want := []string{"peer:tor"}; !reflect.DeepEqual(peers, want) || len(ads) != 0 {
			t.Errorf("deleted: peers %v advertisements %v, want peers %v and no advertisement", peers, ads, want)
		}
		if want := []netip.Prefix{netip.MustParsePrefix("10.244.2.0/26")}; !reflect.DeepEqual(dp.blocks, want) {
			t.Errorf("deleted: felix blocks %v, want %v kept", dp.blocks, want)
		}
		if !reflect.DeepEqual(spk.global, memberGlobal) {
			t.Errorf("deleted: speaker global %+v, want %+v kept (the kept sessions would reset)", spk.global, memberGlobal)
		}
	}

	if err := nodes.Add(self); err != nil {
		t.Fatal(err)
	}
	member("back")
}

// TestSyncPerNodeConfiguration: node.<name> BGPConfigurations override the
// default's listen port (and service ranges, log level) for their node
// alone; this node listens on its own port, dials every other node on
// that node's port, runs with its AS annotation and the cluster's
// graceful-restart settings.
func TestSyncPerNodeConfiguration(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	off := false
	cfg := func(name string, spec v1.BGPConfigurationSpec) *v1.BGPConfiguration {
		return &v1.BGPConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
	}
	n1 := node("node1", "172.30.1.11")
	n1.Annotations = map[string]string{"cairn.dev/as-number": "65010"}
	spk := &fakeSpeaker{}
	level := new(slog.LevelVar)
	c := &controller{
		log: slog.New(slog.DiscardHandler), nodeName: "node1", queue: newQueue(), logLevel: newLogLevel(level),
		listers: listers{
			nodes: corelisters.NewNodeLister(indexer(n1, node("node2", "172.30.1.12"), node("node3", "172.30.1.13"))),
			pools: cairnlisters.NewIPPoolLister(indexer()),
			configs: cairnlisters.NewBGPConfigurationLister(indexer(
				cfg("default", v1.BGPConfigurationSpec{ASNumber: 64600, ListenPort: 1790,
					GracefulRestart:   &v1.GracefulRestart{Enabled: &off},
					ServiceClusterIPs: []v1.ServiceIPBlock{{CIDR: "10.96.0.0/16"}}}),
				cfg("node.node1", v1.BGPConfigurationSpec{ListenPort: 1791, ASNumber: 1, LogSeverityScreen: "Debug",
					ServiceClusterIPs: []v1.ServiceIPBlock{}}),
				cfg("node.node2", v1.BGPConfigurationSpec{ListenPort: 179}),
			)),
			peers: cairnlisters.NewBGPPeerLister(indexer()), filters: cairnlisters.NewBGPFilterLister(indexer()), blocks: cairnlisters.NewIPAMBlockLister(indexer()),
			affinities: cairnlisters.NewBlockAffinityLister(indexer()),
			services:   serviceListers{services: corelisters.NewServiceLister(indexer())},
		},
		speaker: spk, dataplane: &recordingDataplane{},
	}
	c.secrets = newSecretWatch(kubecoretest.From(fake.NewClientset()), "cairn-system", c.enqueue)
	if err := c.sync(ctx); err != nil {
		t.Fatal(err)
	}
	want := speaker.Global{ASN: 65010, ListenPort: 1791}
	if spk.global != want {
		t.Errorf("global = %+v, want %+v (the node's AS annotation and port, graceful restart off)", spk.global, want)
	}
	ports := map[string]uint16{}
	for _, p := range spk.peers {
		ports[p.Name] = p.Port
	}
	// node2 listens on 179 (its own override), node3 on the default's 1790.
	if w := map[string]uint16{"mesh:node2": 0, "mesh:node3": 1790}; !reflect.DeepEqual(ports, w) {
		t.Errorf("mesh ports = %v, want %v", ports, w)
	}
	if len(spk.ads) != 0 {
		t.Errorf("node1 announces %v; its own configuration announces no service range", spk.ads)
	}
	if level.Level() != slog.LevelDebug {
		t.Errorf("log level %s, want node1's Debug", level.Level())
	}
}
