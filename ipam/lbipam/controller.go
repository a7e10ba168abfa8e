package lbipam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	cairnlisters "github.com/cairn-net/cairn/apis/client/listers/cairn/v1alpha1"
	"github.com/cairn-net/cairn/apis/kubecore"
	"github.com/cairn-net/cairn/ipam/pools"
)

// Options configure a Controller.
type Options struct {
	// Kube reads Services (the controller's own watch, while it runs) and
	// writes their status and Events.
	Kube kubecore.Interface
	// Pools is a started IPPool informer; Run waits for its cache.
	Pools cache.SharedIndexInformer
	// Configs is a started BGPConfiguration informer, read to say when an
	// address given is not announced (see ReasonNotAdvertised); nil says
	// nothing about it. Run waits for its cache.
	Configs cache.SharedIndexInformer
	// Recorder writes Events on Services (see NewRecorder); nil writes
	// none.
	Recorder record.EventRecorder
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
}

// Controller gives Services of type LoadBalancer their addresses for one
// term of leadership: Run it while leading, and make a new one for the
// next term, which starts again from the Services' statuses.
type Controller struct {
	opts     Options
	log      *slog.Logger
	queue    workqueue.TypedRateLimitingInterface[string]
	services corelisters.ServiceLister
	pools    cairnlisters.IPPoolLister
	configs  cairnlisters.BGPConfigurationLister // nil: Options.Configs is
	table    *Table
	// pending are Services short of addresses: they are looked at again
	// when an address is freed. Only the worker touches table and pending.
	pending map[string]bool
	// warned are the pools last reported as not announced, with why.
	warnedMu sync.Mutex
	warned   map[string]string
}

// New checks opts and returns a Controller.
func New(opts Options) (*Controller, error) {
	if opts.Kube == nil || opts.Pools == nil {
		return nil, errors.New("lbipam: Kube and Pools are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Recorder == nil {
		opts.Recorder = &record.FakeRecorder{} // with no channel: discards
	}
	return &Controller{opts: opts, log: opts.Logger.With("component", "lbipam"), pending: map[string]bool{}}, nil
}

// Run watches Services, rebuilds the table from their statuses and
// serves them until ctx ends (leadership lost). Nothing is written before
// both caches have synced.
func (c *Controller) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	informer := kubecore.NewInformer(c.opts.Kube.Services(""), &corev1.Service{}, kubecore.InformerOptions{Client: c.opts.Kube})
	if err := informer.SetTransform(serviceFields); err != nil {
		cancel()
		return fmt.Errorf("set Service transform: %w", err)
	}
	var informing sync.WaitGroup
	informing.Go(func() { informer.RunWithContext(ctx) })
	defer func() { cancel(); informing.Wait() }()
	synced := []cache.InformerSynced{informer.HasSynced, c.opts.Pools.HasSynced}
	if c.opts.Configs != nil {
		synced = append(synced, c.opts.Configs.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return fmt.Errorf("sync Service, IPPool and BGPConfiguration caches: %w", context.Cause(ctx))
	}
	c.services, c.pools = corelisters.NewServiceLister(informer.GetIndexer()), cairnlisters.NewIPPoolLister(c.opts.Pools.GetIndexer())
	if c.opts.Configs != nil {
		c.configs = cairnlisters.NewBGPConfigurationLister(c.opts.Configs.GetIndexer())
	}
	if err := c.rebuild(); err != nil {
		return err
	}
	c.warnPools()
	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{})
	defer c.queue.ShutDown()
	stop, err := c.watch(informer)
	if err != nil {
		return err
	}
	defer stop()
	go func() { <-ctx.Done(); c.queue.ShutDown() }()
	c.log.Info("serving LoadBalancer addresses", "addresses", c.table.Len())
	for c.processNext(ctx) {
	}
	return nil
}

// rebuild makes the table from every Service's status.
func (c *Controller) rebuild() error {
	svcs, err := c.services.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list Services: %w", err)
	}
	all, err := c.allPools()
	if err != nil {
		return err
	}
	views := make([]Service, len(svcs))
	for i, s := range svcs {
		views[i] = View(s)
	}
	c.table = Rebuild(views, all)
	return nil
}

// watch subscribes to Services (each change enqueues its key), pools (a
// change enqueues every Service: one may now get an address, or a request
// become possible) and BGPConfigurations (pools may now be announced or
// not). Subscribing replays every existing object, so every Service is
// looked at once at the start of a term. stop unsubscribes: the pool and
// configuration informers outlive the term.
func (c *Controller) watch(services cache.SharedIndexInformer) (stop func(), err error) {
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(key)
		}
	}
	onServices := cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, obj any) { enqueue(obj) }, DeleteFunc: enqueue}
	all := func(any) { c.enqueueAll(); c.warnPools() }
	onPools := cache.ResourceEventHandlerFuncs{AddFunc: all, UpdateFunc: func(_, obj any) { all(obj) }, DeleteFunc: all}
	warn := func(any) { c.warnPools() }
	onConfigs := cache.ResourceEventHandlerFuncs{AddFunc: warn, UpdateFunc: func(_, obj any) { warn(obj) }, DeleteFunc: warn}
	type registration struct {
		inf cache.SharedIndexInformer
		reg cache.ResourceEventHandlerRegistration
	}
	var regs []registration
	stop = func() {
		for _, r := range regs {
			_ = r.inf.RemoveEventHandler(r.reg)
		}
	}
	for _, w := range []struct {
		what string
		inf  cache.SharedIndexInformer
		h    cache.ResourceEventHandler
	}{{"Services", services, onServices}, {"IPPools", c.opts.Pools, onPools}, {"BGPConfigurations", c.opts.Configs, onConfigs}} {
		if w.inf == nil {
			continue
		}
		reg, err := w.inf.AddEventHandler(w.h)
		if err != nil {
			stop()
			return nil, fmt.Errorf("watch %s: %w", w.what, err)
		}
		regs = append(regs, registration{w.inf, reg})
	}
	return stop, nil
}

func (c *Controller) enqueueAll() {
	svcs, err := c.services.List(labels.Everything())
	if err != nil {
		return // a cache lister does not fail
	}
	for _, s := range svcs {
		c.queue.Add(s.Namespace + "/" + s.Name)
	}
}

func (c *Controller) processNext(ctx context.Context) bool {
	key, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(key)
	if ctx.Err() != nil {
		return false // leadership lost: write nothing more
	}
	if err := c.sync(ctx, key); err != nil {
		c.log.Info("sync failed; retrying", "service", key, "err", err)
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

// sync brings one Service's status in line with the table. Idempotent:
// a Service already right costs no write.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil // not a key this controller makes: nothing to retry
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.release(key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read Service %s from cache: %w", key, err)
	}
	if uid, _ := c.table.Held(key); uid != "" && uid != svc.UID {
		c.release(key) // deleted and created again under the same name
	}
	view := View(svc)
	if view.LoadBalancer && !view.Managed {
		// Another controller's: what it carries is taken, nothing more.
		c.freed(c.table.Set(key, svc.UID, view.Status))
		return nil
	}
	all, err := c.allPools()
	if err != nil {
		return err
	}
	_, held := c.table.Held(key)
	d := Decide(Input{Service: view, Held: held, Pools: all, Taken: c.table.TakenByOther(key)})
	c.report(svc, view, d)
	if slices.Equal(held, d.Addrs) && slices.Equal(view.Status, d.Addrs) {
		return nil
	}
	if !view.Managed && len(held) == 0 && !anyIn(view.Status, all) {
		return nil // not ours, and carries none of our addresses
	}
	return c.write(ctx, svc, view, held, d)
}

// write reserves the decided addresses, writes the status conditionally on
// the version decided on, and settles the table by the outcome: exactly
// what was written, or what was held before when the write certainly did
// not happen; when it may have happened, both stay held until a later
// write settles it.
func (c *Controller) write(ctx context.Context, svc *corev1.Service, view Service, held []netip.Addr, d Decision) error {
	key := view.Key
	c.table.Set(key, svc.UID, union(held, d.Addrs))
	err := writeStatus(ctx, c.opts.Kube, svc, d.Addrs)
	switch {
	case err == nil:
		c.freed(c.table.Set(key, svc.UID, d.Addrs))
		c.announce(svc, view, d)
		return nil
	case apierrors.IsNotFound(err):
		c.release(key)
		return nil
	case apierrors.IsConflict(err):
		c.table.Set(key, svc.UID, held)
		return fmt.Errorf("write status of Service %s: changed since read: %w", key, err)
	}
	return fmt.Errorf("write status of Service %s: %w", key, err)
}

// release drops what a Service held: it is gone.
func (c *Controller) release(key string) {
	delete(c.pending, key)
	if freed := c.table.Remove(key); len(freed) > 0 {
		c.log.Info("addresses released", "service", key, "addresses", freed)
		c.freed(freed)
	}
}

// freed looks again at the Services waiting for an address.
func (c *Controller) freed(addrs []netip.Addr) {
	if len(addrs) == 0 {
		return
	}
	for k := range c.pending {
		c.queue.Add(k)
	}
}

// report writes the decision's problems as Warning Events, and remembers
// the Service as waiting for an address.
func (c *Controller) report(svc *corev1.Service, view Service, d Decision) {
	if len(d.Problems) == 0 {
		delete(c.pending, view.Key)
		return
	}
	c.pending[view.Key] = true
	for _, p := range d.Problems {
		c.log.Warn("LoadBalancer address not given", "service", view.Key, "reason", p.Reason, "why", p.Message)
		c.opts.Recorder.Event(svc, corev1.EventTypeWarning, p.Reason, p.Message)
	}
}

// announce writes what a successful write changed as Events.
func (c *Controller) announce(svc *corev1.Service, view Service, d Decision) {
	var added, removed []string
	var addedAddrs []netip.Addr
	for _, a := range d.Addrs {
		if !slices.Contains(view.Status, a) {
			added, addedAddrs = append(added, describe(a, d.From)), append(addedAddrs, a)
		}
	}
	for _, a := range view.Status {
		if !slices.Contains(d.Addrs, a) {
			removed = append(removed, a.String())
		}
	}
	if len(d.Lost) > 0 {
		msg := fmt.Sprintf("%s is also in use by another Service, which keeps it; this Service gets another address", joinAddrs(d.Lost))
		if len(d.Lost) > 1 {
			msg = fmt.Sprintf("%s are also in use by other Services, which keep them; this Service gets other addresses", joinAddrs(d.Lost))
		}
		c.log.Warn("duplicate LoadBalancer address replaced", "service", view.Key, "lost", d.Lost, "holders", c.holders(d.Lost))
		c.opts.Recorder.Event(svc, corev1.EventTypeWarning, ReasonConflict, msg)
	}
	if len(added) > 0 {
		c.log.Info("LoadBalancer addresses assigned", "service", view.Key, "addresses", added)
		c.opts.Recorder.Event(svc, corev1.EventTypeNormal, ReasonAssigned, "assigned "+strings.Join(added, ", "))
		c.reportNotAdvertised(svc, view.Key, addedAddrs)
	}
	if !view.Managed && len(removed) > 0 {
		c.log.Info("LoadBalancer addresses released", "service", view.Key, "addresses", removed)
		c.opts.Recorder.Event(svc, corev1.EventTypeNormal, ReasonReleased,
			fmt.Sprintf("released %s: the Service is no longer of type LoadBalancer", strings.Join(removed, ", ")))
	}
}

func (c *Controller) holders(addrs []netip.Addr) []string {
	var out []string
	for _, a := range addrs {
		out = append(out, c.table.Holders(a)...)
	}
	return out
}

func (c *Controller) allPools() ([]pools.Pool, error) {
	ips, err := c.pools.List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("list IPPools: %w", err)
	}
	return pools.Analyze(ips), nil
}

func describe(a netip.Addr, from map[netip.Addr]string) string {
	if p, ok := from[a]; ok {
		return fmt.Sprintf("%s (pool %s)", a, p)
	}
	return a.String()
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

func union(a, b []netip.Addr) []netip.Addr {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// anyIn reports whether an address lies in a LoadBalancer pool.
func anyIn(addrs []netip.Addr, all []pools.Pool) bool {
	return slices.ContainsFunc(addrs, func(a netip.Addr) bool {
		_, ok := pools.LoadBalancerContaining(all, a)
		return ok
	})
}
