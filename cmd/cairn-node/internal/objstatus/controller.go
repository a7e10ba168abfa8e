package objstatus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	cairnclient "github.com/cairn-net/cairn/apis/client/clientset/versioned/typed/cairn/v1alpha1"
	cairnlisters "github.com/cairn-net/cairn/apis/client/listers/cairn/v1alpha1"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// Defaults of Options.
const (
	DefaultBatchDelay    = time.Second
	DefaultEventInterval = 10 * time.Minute
)

// Options configure a Controller.
type Options struct {
	// Cairn writes the statuses, and watches node statuses and filters.
	Cairn cairnclient.CairnV1alpha1Interface
	// Informers the agent runs anyway; they outlive a term, so the
	// controller's handlers are removed when it ends.
	Pools, Peers, Configs, Blocks, Services, Nodes cache.SharedIndexInformer
	// Recorder writes Events (see NewRecorder); nil writes none.
	Recorder record.EventRecorder
	// Metrics, made once per process with NewMetrics.
	Metrics *Metrics
	// BatchDelay is how long a key waits in the queue, gathering the
	// changes that come meanwhile; it bounds writes to one per object per
	// BatchDelay. Default DefaultBatchDelay.
	BatchDelay time.Duration
	// EventInterval is the least time between two Events of one object and
	// reason. Default DefaultEventInterval.
	EventInterval time.Duration
	// Now tells the time; nil is time.Now.
	Now func() time.Time
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
}

// Controller keeps the statuses of one term of leadership: Run it while
// leading, make a new one for the next term.
type Controller struct {
	opts  Options
	log   *slog.Logger
	queue workqueue.TypedRateLimitingInterface[string]
	limit *limiter

	// Set by Run.
	nodeStatuses cache.Indexer
	filters      cache.Indexer
	pools        cairnlisters.IPPoolLister
	peers        cairnlisters.BGPPeerLister
	configs      cairnlisters.BGPConfigurationLister
	blocks       cairnlisters.IPAMBlockLister
	services     corelisters.ServiceLister
	nodes        corelisters.NodeLister
}

// New checks opts and returns a Controller.
func New(opts Options) (*Controller, error) {
	if opts.Cairn == nil || opts.Pools == nil || opts.Peers == nil || opts.Configs == nil || opts.Blocks == nil || opts.Services == nil || opts.Nodes == nil || opts.Metrics == nil {
		return nil, errors.New("status controller: Cairn, Metrics and the Pools, Peers, Configs, Blocks, Services and Nodes informers are required")
	}
	if opts.BatchDelay <= 0 {
		opts.BatchDelay = DefaultBatchDelay
	}
	if opts.EventInterval <= 0 {
		opts.EventInterval = DefaultEventInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Recorder == nil {
		opts.Recorder = &record.FakeRecorder{} // with no channel: discards
	}
	return &Controller{opts: opts, log: opts.Logger.With("component", "status"), limit: newLimiter(opts.EventInterval, opts.Now),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "cairn-status"})}, nil
}

// Run watches the node statuses and filters, and keeps the statuses until
// ctx ends (leadership lost). Nothing is written before every cache has
// synced.
func (c *Controller) Run(ctx context.Context) error {
	defer c.queue.ShutDown()
	stop, err := c.watch(ctx)
	if err != nil {
		return err
	}
	defer stop()
	go func() { <-ctx.Done(); c.queue.ShutDown() }()
	c.log.Info("writing object status")
	for c.processNext(ctx) {
	}
	return nil
}

// Keys of the queue: a kind and a name; every pool is one key, since one
// block or Service changes the usage of whichever pool holds it and all
// pools are computed in one pass.
const (
	peerKey   = "peer/"
	configKey = "config/"
	filterKey = "filter/"
	poolsKey  = "pools"
)

// enqueue schedules key after the batch delay; a key already waiting keeps
// its earlier time, so a stream of changes is one sync per delay.
func (c *Controller) enqueue(key string) { c.queue.AddAfter(key, c.opts.BatchDelay) }

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
		c.log.Info("status sync failed; retrying", "key", key, "err", err)
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

func (c *Controller) sync(ctx context.Context, key string) error {
	switch {
	case key == poolsKey:
		return c.syncPools(ctx)
	case strings.HasPrefix(key, peerKey):
		return c.syncPeer(ctx, strings.TrimPrefix(key, peerKey))
	case strings.HasPrefix(key, configKey):
		return c.syncConfig(ctx, strings.TrimPrefix(key, configKey))
	case strings.HasPrefix(key, filterKey):
		return c.syncFilter(ctx, strings.TrimPrefix(key, filterKey))
	}
	return fmt.Errorf("unknown key %q", key)
}
