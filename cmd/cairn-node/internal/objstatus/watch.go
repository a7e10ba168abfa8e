package objstatus

import (
	"context"
	"fmt"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	cairnlisters "github.com/cairn-net/cairn/apis/client/listers/cairn/v1alpha1"
	"github.com/cairn-net/cairn/apis/kubecore"
	"github.com/cairn-net/cairn/bgp/peering"
)

// Index names of the node statuses' cache.
const (
	// byPeer: the BGPPeers a node reports sessions of.
	byPeer = "bgppeer"
	// byMesh: "mesh" when the node reports node mesh sessions.
	byMesh  = "mesh"
	meshKey = "mesh"
)

// watch starts the term's own informers (node statuses and filters),
// subscribes to the agent's, and waits for every cache. stop ends the
// informers and unsubscribes: the agent's informers outlive the term.
func (c *Controller) watch(ctx context.Context) (stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	own := kubecore.InformerOptions{Client: c.opts.Cairn}
	cns := kubecore.NewInformer(c.opts.Cairn.CairnNodeStatuses(), &v1.CairnNodeStatus{}, own)
	filters := kubecore.NewInformer(c.opts.Cairn.BGPFilters(), &v1.BGPFilter{}, own)
	var regs []func()
	var informing sync.WaitGroup
	stop = func() {
		for _, r := range regs {
			r()
		}
		cancel()
		informing.Wait()
	}
	if err := cns.SetTransform(sessionFields); err != nil {
		stop()
		return nil, fmt.Errorf("set node status transform: %w", err)
	}
	if err := cns.AddIndexers(cache.Indexers{byPeer: peersOf, byMesh: meshOf}); err != nil {
		stop()
		return nil, fmt.Errorf("index node statuses: %w", err)
	}
	for _, inf := range []cache.SharedIndexInformer{cns, filters} {
		informing.Go(func() { inf.RunWithContext(ctx) })
	}
	o := c.opts
	if !cache.WaitForCacheSync(ctx.Done(), cns.HasSynced, filters.HasSynced, o.Pools.HasSynced, o.Peers.HasSynced,
		o.Configs.HasSynced, o.Blocks.HasSynced, o.Services.HasSynced, o.Nodes.HasSynced) {
		stop()
		return nil, fmt.Errorf("sync caches: %w", context.Cause(ctx))
	}
	c.nodeStatuses, c.filters = cns.GetIndexer(), filters.GetIndexer()
	c.pools, c.peers = cairnlisters.NewIPPoolLister(o.Pools.GetIndexer()), cairnlisters.NewBGPPeerLister(o.Peers.GetIndexer())
	c.configs, c.blocks = cairnlisters.NewBGPConfigurationLister(o.Configs.GetIndexer()), cairnlisters.NewIPAMBlockLister(o.Blocks.GetIndexer())
	c.services, c.nodes = corelisters.NewServiceLister(o.Services.GetIndexer()), corelisters.NewNodeLister(o.Nodes.GetIndexer())
	for _, s := range []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{
		{cns, c.onNodeStatus()}, {filters, c.onFilter()}, {o.Peers, c.onPeer()},
		{o.Configs, onSpec(func(obj any) { c.enqueue(configKey + name(obj)) })},
		{o.Pools, onSpec(func(any) { c.enqueue(poolsKey) })},
		{o.Blocks, onAny(func(any) { c.enqueue(poolsKey) })},
		{o.Services, c.onService()},
		// A node.<name> configuration is accepted only while its node exists.
		{o.Nodes, onSpec(func(obj any) { c.enqueue(configKey + peering.NodeConfigName(name(obj))) })},
	} {
		reg, err := s.inf.AddEventHandler(s.h)
		if err != nil {
			stop()
			return nil, fmt.Errorf("add event handler: %w", err)
		}
		inf := s.inf
		regs = append(regs, func() { _ = inf.RemoveEventHandler(reg) })
	}
	return stop, nil
}

// sessionFields is the node statuses' transform: of each session only
// what the aggregation reads, so the leader's cache stays small and a
// node's periodic rewrite (new timestamps, prefix counters) compares equal.
func sessionFields(obj any) (any, error) {
	st, ok := obj.(*v1.CairnNodeStatus)
	if !ok {
		return obj, nil // a tombstone
	}
	out := &v1.CairnNodeStatus{ObjectMeta: metav1.ObjectMeta{Name: st.Name, UID: st.UID, ResourceVersion: st.ResourceVersion},
		Spec: st.Spec}
	for _, s := range st.Status.BGP.Peers {
		out.Status.BGP.Peers = append(out.Status.BGP.Peers, v1.BGPSessionStatus{PeerIP: s.PeerIP, Name: s.Name, BGPPeer: s.BGPPeer,
			Type: s.Type, State: s.State, Reason: s.Reason, Problem: s.Problem})
	}
	return out, nil
}

func peersOf(obj any) ([]string, error) {
	st, ok := obj.(*v1.CairnNodeStatus)
	if !ok {
		return nil, nil
	}
	var out []string
	for _, s := range st.Status.BGP.Peers {
		if s.BGPPeer != "" {
			out = append(out, s.BGPPeer)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func meshOf(obj any) ([]string, error) {
	if st, ok := obj.(*v1.CairnNodeStatus); ok && hasMesh(st) {
		return []string{meshKey}, nil
	}
	return nil, nil
}

func hasMesh(st *v1.CairnNodeStatus) bool {
	return slices.ContainsFunc(st.Status.BGP.Peers, func(s v1.BGPSessionStatus) bool { return s.Type == "NodeMesh" || peering.IsMesh(s.Name) })
}

// onNodeStatus enqueues the BGPPeers, and the default configuration for
// the mesh, whose sessions a node status change touches; a change that
// leaves the sessions as they were enqueues nothing.
func (c *Controller) onNodeStatus() cache.ResourceEventHandler {
	touch := func(objs ...any) {
		mesh := false
		for _, obj := range objs {
			st, ok := unwrap(obj).(*v1.CairnNodeStatus)
			if !ok {
				continue
			}
			names, _ := peersOf(st)
			for _, n := range names {
				c.enqueue(peerKey + n)
			}
			mesh = mesh || hasMesh(st)
		}
		if mesh {
			c.enqueue(configKey + peering.DefaultConfigName)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { touch(obj) },
		UpdateFunc: func(old, obj any) {
			o, ok1 := old.(*v1.CairnNodeStatus)
			n, ok2 := obj.(*v1.CairnNodeStatus)
			if ok1 && ok2 && equality.Semantic.DeepEqual(o.Status.BGP.Peers, n.Status.BGP.Peers) {
				return
			}
			touch(old, obj)
		},
		DeleteFunc: func(obj any) { touch(obj) },
	}
}

// onPeer enqueues a BGPPeer whose spec changed (not on its own status
// writes), and the filters it names before and after.
func (c *Controller) onPeer() cache.ResourceEventHandler {
	touch := func(obj any) {
		p, ok := unwrap(obj).(*v1.BGPPeer)
		if !ok {
			return
		}
		c.enqueue(peerKey + p.Name)
		for _, f := range p.Spec.Filters {
			c.enqueue(filterKey + f)
		}
	}
	return onSpecPair(touch)
}

// onFilter enqueues a filter whose spec changed, and the BGPPeers that
// name it (their FiltersResolved condition).
func (c *Controller) onFilter() cache.ResourceEventHandler {
	return onSpec(func(obj any) {
		n := name(obj)
		c.enqueue(filterKey + n)
		peers, _ := c.peers.List(everything)
		for _, p := range peers {
			if slices.Contains(p.Spec.Filters, n) {
				c.enqueue(peerKey + p.Name)
			}
		}
	})
}

// onService enqueues the pools when a Service's LoadBalancer addresses
// change.
func (c *Controller) onService() cache.ResourceEventHandler {
	has := func(obj any) bool {
		s, ok := unwrap(obj).(*corev1.Service)
		return ok && len(s.Status.LoadBalancer.Ingress) > 0
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if has(obj) {
				c.enqueue(poolsKey)
			}
		},
		UpdateFunc: func(old, obj any) {
			o, ok1 := old.(*corev1.Service)
			n, ok2 := obj.(*corev1.Service)
			if ok1 && ok2 && !equality.Semantic.DeepEqual(o.Status.LoadBalancer.Ingress, n.Status.LoadBalancer.Ingress) {
				c.enqueue(poolsKey)
			}
		},
		DeleteFunc: func(obj any) {
			if has(obj) {
				c.enqueue(poolsKey)
			}
		},
	}
}

// onSpec calls f on adds, deletes and updates that change the object's
// generation (its spec), not on status writes, the controller's own.
func onSpec(f func(obj any)) cache.ResourceEventHandler {
	return onSpecPair(func(obj any) { f(unwrap(obj)) })
}

func onSpecPair(f func(obj any)) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: f,
		UpdateFunc: func(old, obj any) {
			o, ok1 := old.(metav1.Object)
			n, ok2 := obj.(metav1.Object)
			if ok1 && ok2 && o.GetGeneration() == n.GetGeneration() {
				return
			}
			f(old)
			f(obj)
		},
		DeleteFunc: func(obj any) { f(unwrap(obj)) },
	}
}

func onAny(f func(obj any)) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{AddFunc: f, UpdateFunc: func(_, obj any) { f(obj) }, DeleteFunc: f}
}

// unwrap is the object of a tombstone, else obj.
func unwrap(obj any) any {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return d.Obj
	}
	return obj
}

func name(obj any) string {
	if o, ok := unwrap(obj).(metav1.Object); ok {
		return o.GetName()
	}
	return ""
}
