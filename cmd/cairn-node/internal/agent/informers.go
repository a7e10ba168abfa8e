package agent

import (
	"context"
	"fmt"
	"log/slog"

	"k8s.io/apimachinery/pkg/api/meta"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/cairn-net/cairn/apis/client/clientset/versioned"
	cairninformers "github.com/cairn-net/cairn/apis/client/informers/externalversions"
	cairnlisters "github.com/cairn-net/cairn/apis/client/listers/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam/kubestore"
)

// clients reach the API server.
type clients struct {
	kube  kubernetes.Interface
	cairn versioned.Interface
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
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return clients{}, fmt.Errorf("kubernetes client: %w", err)
	}
	cairn, err := versioned.NewForConfig(cfg)
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
	kubeFactory := kubeinformers.NewSharedInformerFactory(cl.kube, 0)
	cairnFactory := cairninformers.NewSharedInformerFactory(cl.cairn, 0)
	nodes, cairn := kubeFactory.Core().V1().Nodes(), cairnFactory.Cairn().V1alpha1()
	pools, configs, peers, filters := cairn.IPPools(), cairn.BGPConfigurations(), cairn.BGPPeers(), cairn.BGPFilters()
	blocks, affinities := cairn.IPAMBlocks(), cairn.BlockAffinities()
	services, slices := kubeFactory.Core().V1().Services(), kubeFactory.Discovery().V1().EndpointSlices()
	// Informer() registers each informer with its factory; Start starts
	// only registered ones.
	inf := &informers{
		nodes: nodes.Informer(), pools: pools.Informer(), configs: configs.Informer(),
		peers: peers.Informer(), filters: filters.Informer(), blocks: blocks.Informer(), affinities: affinities.Informer(),
		nodeLister: nodes.Lister(), poolLister: pools.Lister(), configLister: configs.Lister(),
		peerLister: peers.Lister(), filterLister: filters.Lister(), blockLister: blocks.Lister(), affinityLister: affinities.Lister(),
		services: services.Informer(), slices: slices.Informer(),
		serviceLister: services.Lister(), sliceLister: slices.Lister(),
	}
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
	kubeFactory.Start(ctx.Done())
	cairnFactory.Start(ctx.Done())
	log.Info("waiting for caches")
	if !cache.WaitForCacheSync(ctx.Done(), inf.nodes.HasSynced, inf.pools.HasSynced, inf.configs.HasSynced,
		inf.peers.HasSynced, inf.filters.HasSynced, inf.blocks.HasSynced, inf.affinities.HasSynced, inf.services.HasSynced, inf.slices.HasSynced) {
		return nil, fmt.Errorf("sync informer caches: %w", ctx.Err())
	}
	return inf, nil
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
