package agent

import (
	"context"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	cairnclient "github.com/cairn-net/cairn/apis/client/clientset/versioned/typed/cairn/v1alpha1"
	cairnlisters "github.com/cairn-net/cairn/apis/client/listers/cairn/v1alpha1"
	"github.com/cairn-net/cairn/apis/kubecore"
	"github.com/cairn-net/cairn/ipam/kubestore"
)

// clients reach the API server: narrow clients of the kinds the agent
// uses, never client-go's clientset (see kubecore).
type clients struct {
	kube  kubecore.Interface
	cairn cairnclient.CairnV1alpha1Interface
}

// connect builds the clients from a kubeconfig file, or the in-cluster
// configuration when the path is empty.
func connect(kubeconfig string) (clients, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	if err != nil {
		return clients{}, fmt.Errorf("load API server configuration: %w", err)
	}
	return newClients(cfg)
}

func newClients(cfg *rest.Config) (clients, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "cairn-node"
	// A burst of pod starts is one write per pod (the IPAM handle); the
	// client must not be the bottleneck.
	cfg.QPS, cfg.Burst = kubestore.DefaultQPS, kubestore.DefaultBurst
	kube, err := kubecore.NewForConfig(cfg)
	if err != nil {
		return clients{}, err
	}
	cairn, err := cairnclient.NewForConfig(cfg)
	if err != nil {
		return clients{}, fmt.Errorf("cairn client: %w", err)
	}
	return clients{kube: kube, cairn: cairn}, nil
}

// informers are the agent's view of the cluster: everything it reads, it
// reads from these caches, kept current by one watch per kind.
type informers struct {
	nodes      cache.SharedIndexInformer
	pools      cache.SharedIndexInformer
	configs    cache.SharedIndexInformer
	peers      cache.SharedIndexInformer
	filters    cache.SharedIndexInformer
	blocks     cache.SharedIndexInformer
	affinities cache.SharedIndexInformer
	services   cache.SharedIndexInformer
	slices     cache.SharedIndexInformer

	nodeLister     corelisters.NodeLister
	poolLister     cairnlisters.IPPoolLister
	configLister   cairnlisters.BGPConfigurationLister
	peerLister     cairnlisters.BGPPeerLister
	filterLister   cairnlisters.BGPFilterLister
	blockLister    cairnlisters.IPAMBlockLister
	affinityLister cairnlisters.BlockAffinityLister
	serviceLister  corelisters.ServiceLister
	sliceLister    discoverylisters.EndpointSliceLister
}

// watchCluster starts the informers and waits for their caches.
func watchCluster(ctx context.Context, cl clients, log *slog.Logger) (*informers, error) {
	kube, cairn := kubecore.InformerOptions{Client: cl.kube}, kubecore.InformerOptions{Client: cl.cairn}
	inf := &informers{
		nodes:      kubecore.NewInformer(cl.kube.Nodes(), &corev1.Node{}, kube),
		services:   kubecore.NewInformer(cl.kube.Services(""), &corev1.Service{}, kube),
		slices:     kubecore.NewInformer(cl.kube.EndpointSlices(""), &discoveryv1.EndpointSlice{}, kube),
		pools:      kubecore.NewInformer(cl.cairn.IPPools(), &v1.IPPool{}, cairn),
		configs:    kubecore.NewInformer(cl.cairn.BGPConfigurations(), &v1.BGPConfiguration{}, cairn),
		peers:      kubecore.NewInformer(cl.cairn.BGPPeers(), &v1.BGPPeer{}, cairn),
		filters:    kubecore.NewInformer(cl.cairn.BGPFilters(), &v1.BGPFilter{}, cairn),
		blocks:     kubecore.NewInformer(cl.cairn.IPAMBlocks(), &v1.IPAMBlock{}, cairn),
		affinities: kubecore.NewInformer(cl.cairn.BlockAffinities(), &v1.BlockAffinity{}, cairn),
	}
	inf.nodeLister, inf.serviceLister = corelisters.NewNodeLister(inf.nodes.GetIndexer()), corelisters.NewServiceLister(inf.services.GetIndexer())
	inf.sliceLister = discoverylisters.NewEndpointSliceLister(inf.slices.GetIndexer())
	inf.poolLister, inf.configLister = cairnlisters.NewIPPoolLister(inf.pools.GetIndexer()), cairnlisters.NewBGPConfigurationLister(inf.configs.GetIndexer())
	inf.peerLister, inf.filterLister = cairnlisters.NewBGPPeerLister(inf.peers.GetIndexer()), cairnlisters.NewBGPFilterLister(inf.filters.GetIndexer())
	inf.blockLister, inf.affinityLister = cairnlisters.NewIPAMBlockLister(inf.blocks.GetIndexer()), cairnlisters.NewBlockAffinityLister(inf.affinities.GetIndexer())
	for _, t := range []struct {
		inf cache.SharedIndexInformer
		fn  cache.TransformFunc
	}{
		{inf.services, serviceFields}, {inf.slices, sliceFields},
		{inf.nodes, dropManagedFields}, {inf.pools, dropManagedFields}, {inf.configs, dropManagedFields},
		{inf.peers, dropManagedFields}, {inf.blocks, dropManagedFields}, {inf.affinities, dropManagedFields},
	} {
		if err := t.inf.SetTransform(t.fn); err != nil {
			return nil, fmt.Errorf("set informer transform: %w", err)
		}
	}
	// They run until ctx ends, as long as the agent.
	for _, i := range inf.all() {
		go i.RunWithContext(ctx)
	}
	log.Info("waiting for caches")
	var synced []cache.InformerSynced
	for _, i := range inf.all() {
		synced = append(synced, i.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil, fmt.Errorf("sync informer caches: %w", ctx.Err())
	}
	return inf, nil
}

// all are every informer.
func (inf *informers) all() []cache.SharedIndexInformer {
	return []cache.SharedIndexInformer{inf.nodes, inf.pools, inf.configs, inf.peers, inf.filters, inf.blocks, inf.affinities, inf.services, inf.slices}
}

// dropManagedFields is the transform of the informers whose objects are
// cached whole: server-side apply's bookkeeping (metadata.managedFields,
// one entry per writer, each listing the fields it set) is never read
// here, and on a block every agent writes to, or a Node the kubelet
// updates, it is a good part of the object. An Update built from a cached
// object still keeps it on the server: a request without managedFields
// leaves them as they are.
func dropManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil // a tombstone passes unchanged
}
