package objstatus

import (
	"context"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/bgp/bgpstatus"
	"github.com/cairn-net/cairn/bgp/peering"
	"github.com/cairn-net/cairn/ipam/pools"
	"github.com/cairn-net/cairn/ipam/usage"
)

var everything = labels.Everything()

// Writes are conditional on the resourceVersion the status was computed
// from: a Conflict means the cache was behind, and the key is retried.

func (c *Controller) syncPeer(ctx context.Context, name string) error {
	p, err := c.peers.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	reports, err := c.reports(byPeer, name)
	if err != nil {
		return err
	}
	next := bgpstatus.Peer(bgpstatus.PeerInput{Peer: p, Reports: reports, Filters: c.filterValidity()})
	if equality.Semantic.DeepEqual(p.Status, next) {
		return nil
	}
	obj := p.DeepCopy()
	obj.Status = next
	if _, err := c.opts.Cairn.BGPPeers().UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update status of BGPPeer %s: %w", name, err)
	}
	c.opts.Metrics.writes.WithLabelValues("BGPPeer").Inc()
	for _, ev := range bgpstatus.SessionEvents(p.Status.SessionsDown, next.SessionsDown) {
		c.emit(ref("BGPPeer", p.Name, p.UID), ev)
	}
	return nil
}

func (c *Controller) syncConfig(ctx context.Context, name string) error {
	cfg, err := c.configs.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var reports []bgpstatus.Report
	if name == peering.DefaultConfigName {
		if reports, err = c.reports(byMesh, meshKey); err != nil {
			return err
		}
	}
	next := bgpstatus.Config(cfg, reports, func(node string) bool { _, err := c.nodes.Get(node); return err == nil })
	if equality.Semantic.DeepEqual(cfg.Status, next) {
		return nil
	}
	obj := cfg.DeepCopy()
	obj.Status = next
	if _, err := c.opts.Cairn.BGPConfigurations().UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update status of BGPConfiguration %s: %w", name, err)
	}
	c.opts.Metrics.writes.WithLabelValues("BGPConfiguration").Inc()
	for _, ev := range bgpstatus.SessionEvents(cfg.Status.SessionsDown, next.SessionsDown) {
		c.emit(ref("BGPConfiguration", cfg.Name, cfg.UID), ev)
	}
	return nil
}

func (c *Controller) syncFilter(ctx context.Context, name string) error {
	obj, ok, err := c.filters.GetByKey(name)
	if err != nil || !ok {
		return err
	}
	f := obj.(*v1.BGPFilter)
	peers, err := c.peers.List(everything)
	if err != nil {
		return err
	}
	next := bgpstatus.Filter(f, peers)
	if equality.Semantic.DeepEqual(f.Status, next) {
		return nil
	}
	out := f.DeepCopy()
	out.Status = next
	if _, err := c.opts.Cairn.BGPFilters().UpdateStatus(ctx, out, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update status of BGPFilter %s: %w", name, err)
	}
	c.opts.Metrics.writes.WithLabelValues("BGPFilter").Inc()
	return nil
}

// syncPools computes every pool's status in one pass over the blocks and
// Services, and writes those that changed.
func (c *Controller) syncPools(ctx context.Context) error {
	ips, err := c.pools.List(everything)
	if err != nil {
		return err
	}
	blocks, err := c.blocks.List(everything)
	if err != nil {
		return err
	}
	svcs, err := c.services.List(everything)
	if err != nil {
		return err
	}
	parsed := pools.Analyze(ips)
	used := map[string]usage.Pool{}
	for _, u := range usage.Compute(ips, blocks) {
		used[u.Name] = u
	}
	lb := usage.LoadBalancerAllocated(parsed, loadBalancerAddrs(svcs))
	byName := map[string]pools.Pool{}
	for _, pl := range parsed {
		byName[pl.Name] = pl
	}
	var errs []error
	for _, ip := range ips {
		next := usage.PoolStatus(ip, byName[ip.Name], used[ip.Name], lb[ip.Name])
		if equality.Semantic.DeepEqual(ip.Status, next) {
			continue
		}
		obj := ip.DeepCopy()
		obj.Status = next
		if _, err := c.opts.Cairn.IPPools().UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("update status of IPPool %s: %w", ip.Name, err))
			continue
		}
		c.opts.Metrics.writes.WithLabelValues("IPPool").Inc()
		if !meta.IsStatusConditionTrue(ip.Status.Conditions, v1.ConditionExhausted) && meta.IsStatusConditionTrue(next.Conditions, v1.ConditionExhausted) {
			c.emit(ref("IPPool", ip.Name, ip.UID), bgpstatus.Event{Type: corev1.EventTypeWarning, Reason: ReasonPoolExhausted,
				Message: meta.FindStatusCondition(next.Conditions, v1.ConditionExhausted).Message})
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d pools: %w", len(errs), len(ips), errs[0])
	}
	return nil
}

// reports are the sessions of the node statuses under index value v.
func (c *Controller) reports(index, v string) ([]bgpstatus.Report, error) {
	objs, err := c.nodeStatuses.ByIndex(index, v)
	if err != nil {
		return nil, fmt.Errorf("node statuses by %s %s: %w", index, v, err)
	}
	out := make([]bgpstatus.Report, 0, len(objs))
	for _, o := range objs {
		st := o.(*v1.CairnNodeStatus)
		node := st.Spec.Node
		if node == "" {
			node = st.Name
		}
		out = append(out, bgpstatus.Report{Node: node, Sessions: st.Status.BGP.Peers})
	}
	return out, nil
}

// filterValidity is every BGPFilter by name, with why it is invalid.
func (c *Controller) filterValidity() map[string]error {
	out := map[string]error{}
	for _, o := range c.filters.List() {
		f := o.(*v1.BGPFilter)
		out[f.Name] = bgpstatus.ValidateFilter(f)
	}
	return out
}

// loadBalancerAddrs are the Services' LoadBalancer ingress addresses.
func loadBalancerAddrs(svcs []*corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, s := range svcs {
		for _, in := range s.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(in.IP); err == nil {
				out = append(out, a)
			}
		}
	}
	return out
}
