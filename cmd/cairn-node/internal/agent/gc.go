package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/cairn-net/cairn/apis/kubecore"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/gc"
)

// gcLeaseName is the Lease the agents compete for; its holder runs the
// cluster-wide IPAM garbage collection.
const gcLeaseName = "cairn-ipam-gc"

// ipamGC is what the cluster-wide IPAM garbage collector needs.
type ipamGC struct {
	opts  Options
	kube  kubecore.Interface
	store ipam.Store
	nodes corelisters.NodeLister
	log   *slog.Logger
}

// run campaigns for the GC Lease until ctx ends and collects while
// leading.
func (g ipamGC) run(ctx context.Context) {
	campaign(ctx, g.opts, g.kube, gcLeaseName, g.log.With("component", "ipam-gc"), g.lead)
}

// lead collects until leadership ends. Only the leader watches pods (all
// of them): owners are looked up in that cache and the agent's Node cache,
// never fetched one by one.
func (g ipamGC) lead(ctx context.Context) {
	pods, stop, err := g.watchPods(ctx)
	if err != nil {
		g.log.Warn("IPAM garbage collection not started", "component", "ipam-gc", "err", err)
		return
	}
	defer stop()
	collector, err := gc.New(gc.Options{Store: g.store, Owners: gc.ListerOwners{Pods: pods, Nodes: g.nodes},
		Grace: g.opts.IPAMGCGrace, Logger: g.log})
	if err != nil {
		g.log.Error("IPAM garbage collection disabled", "component", "ipam-gc", "err", err)
		return
	}
	g.log.Info("leading IPAM garbage collection", "component", "ipam-gc")
	collector.Run(ctx, g.opts.IPAMGCInterval)
}

// watchPods starts a pod informer and waits for its cache; stop ends it.
func (g ipamGC) watchPods(ctx context.Context) (corelisters.PodLister, func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	informer := kubecore.NewInformer(g.kube.Pods(""), &corev1.Pod{}, kubecore.InformerOptions{Client: g.kube})
	if err := informer.SetTransform(podOwnerFields); err != nil {
		cancel()
		return nil, nil, fmt.Errorf("set pod transform: %w", err)
	}
	var informing sync.WaitGroup
	informing.Go(func() { informer.RunWithContext(ctx) })
	stop := func() { cancel(); informing.Wait() }
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		stop()
		return nil, nil, fmt.Errorf("sync pod cache: %w", context.Cause(ctx))
	}
	return corelisters.NewPodLister(informer.GetIndexer()), stop, nil
}

// podOwnerFields keeps of a Pod only what deciding ownership reads, so the
// leader's cache of every pod in the cluster stays small.
func podOwnerFields(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // a tombstone
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
			ResourceVersion: pod.ResourceVersion, DeletionTimestamp: pod.DeletionTimestamp},
		Spec:   corev1.PodSpec{NodeName: pod.Spec.NodeName},
		Status: corev1.PodStatus{Phase: pod.Status.Phase},
	}, nil
}
