// Package allocator hands out pod addresses on one node. It claims blocks
// for the node in two phases (pending affinity, block created, affinity
// confirmed), allocates from the node's blocks, borrows from other nodes'
// blocks only when a pool has no free block left, and combines concurrent
// allocations and releases on one block into a single compare-and-swap
// write (group commit). It keeps an in-memory view of the node's blocks;
// the store stays the only authority, so a stale view costs a conflict and
// a re-read, never a duplicate address.
package allocator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/pools"
)

// Errors callers branch on.
var (
	// ErrNoAddresses: no usable pool has a free address for the request
	// (pools full, disabled, overlapping, not selecting this node, or the
	// node at its block limit with borrowing impossible).
	ErrNoAddresses = errors.New("no free address")
	// ErrInvalidRequest: the request is malformed.
	ErrInvalidRequest = errors.New("invalid request")
)

// Options configure an Allocator.
type Options struct {
	// Node is the name of the node this allocator serves.
	Node string
	// StrictAffinity forbids borrowing addresses from other nodes' blocks.
	StrictAffinity bool
	// MaxBlocksPerNode bounds the blocks the node claims; 0 is unlimited.
	// A node at its limit does not borrow unless the pool is full.
	MaxBlocksPerNode int
	// NodeLabels returns the node's labels, matched against pools'
	// nodeSelector. The agent backs it with its Node informer; nil means
	// the node has no labels (only pools without a selector apply).
	NodeLabels func(ctx context.Context) (map[string]string, error)
	// EmptyBlockGrace is how long a block stays empty before its claim is
	// released by ReleaseEmptyBlocks; default 10 minutes.
	EmptyBlockGrace time.Duration
	// PoolCacheTTL is how long a read of the pools is reused; default one
	// second, negative disables the cache. InvalidatePools drops it early.
	PoolCacheTTL time.Duration
	// Backoff bounds compare-and-swap retries; zero fields get defaults.
	Backoff ipam.Backoff
	// WriteTimeout bounds one group-commit write cycle (retries included)
	// and one block claim, which run on behalf of several callers and so
	// do not stop when one caller's context ends; default 30 seconds.
	WriteTimeout time.Duration
	// RollbackTimeout bounds undoing a failed or cancelled AutoAssign;
	// default 30 seconds.
	RollbackTimeout time.Duration
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Clock tells the time for grace periods; nil is the wall clock.
	Clock ipam.Clock
}

func (o Options) withDefaults() Options {
	if o.EmptyBlockGrace == 0 {
		o.EmptyBlockGrace = 10 * time.Minute
	}
	if o.PoolCacheTTL == 0 {
		o.PoolCacheTTL = time.Second
	}
	o.Backoff = o.Backoff.WithDefaults()
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.RollbackTimeout <= 0 {
		o.RollbackTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = ipam.RealClock{}
	}
	return o
}

// Request asks for addresses for one pod interface.
type Request struct {
	// HandleID names the holder; build it with ipam.HandleID from the
	// node, container ID and interface. Required.
	HandleID string
	// ContainerID and Interface are recorded on the handle.
	ContainerID string
	Interface   string
	// Namespace and Pod own the addresses; garbage collection releases
	// them once that pod is gone.
	Namespace string
	Pod       string
	// PodUID, when set, is recorded on the handle so that garbage
	// collection can tell the owner from a later pod of the same name.
	PodUID string
	// Node must be empty or the allocator's node.
	Node string
	// IPv4 and IPv6 are how many addresses of each family to hand out; a
	// dual-stack pod asks for one of each.
	IPv4 int
	IPv6 int
	// Pools restricts the choice to these pools, in order of preference;
	// empty means every Automatic pool that selects the node.
	Pools []string
}

// Stats counts what an allocator did, for tests and metrics.
type Stats struct {
	// Assigned and Released count addresses.
	Assigned, Released int64
	// BlockWrites counts block updates sent by group commit, failed ones
	// included.
	BlockWrites int64
	// Conflicts counts compare-and-swap failures on blocks and handles.
	Conflicts int64
	// MaxRetries is the most retries any single write needed.
	MaxRetries int64
	// Claims counts blocks claimed; Borrows addresses borrowed.
	Claims, Borrows int64
}

// Allocator allocates addresses for one node. It is safe for concurrent
// use; create one per node.
type Allocator struct {
	store ipam.Store
	opts  Options
	log   *slog.Logger

	loadMu sync.Mutex
	loaded bool

	mu       sync.Mutex
	entries  map[netip.Prefix]*entry
	claiming map[pools.Family]*claimCall
	inClaim  map[netip.Prefix]bool

	poolMu    sync.Mutex
	poolCache []pools.Pool
	poolAt    time.Time
	overlaps  string

	handles handleLocks
	changes chan struct{}

	assigned, released, blockWrites, conflicts, maxRetries, claims, borrows atomic.Int64
}

// New returns an allocator for opts.Node working on store.
func New(store ipam.Store, opts Options) (*Allocator, error) {
	if opts.Node == "" {
		return nil, fmt.Errorf("new allocator: %w: node name is empty", ErrInvalidRequest)
	}
	if opts.MaxBlocksPerNode < 0 {
		return nil, fmt.Errorf("new allocator for node %s: %w: negative MaxBlocksPerNode", opts.Node, ErrInvalidRequest)
	}
	opts = opts.withDefaults()
	return &Allocator{
		store:    store,
		opts:     opts,
		log:      opts.Logger.With("node", opts.Node),
		entries:  map[netip.Prefix]*entry{},
		claiming: map[pools.Family]*claimCall{},
		inClaim:  map[netip.Prefix]bool{},
		handles:  handleLocks{m: map[string]*handleLock{}},
		changes:  make(chan struct{}, 1),
	}, nil
}

// Node returns the node the allocator serves.
func (a *Allocator) Node() string { return a.opts.Node }

// Changes is signalled (coalesced) whenever this allocator changed what
// the node announces: a block claimed or released, an address borrowed or
// a borrowed one released. A caller that does not watch the blocks itself
// then calls OwnedBlocks and BorrowedAddresses (cairn-node watches them,
// and reads ipam.NodeRoutes from its caches). Changes made by others
// (garbage collection of a deleted node) are seen through Resync.
func (a *Allocator) Changes() <-chan struct{} { return a.changes }

func (a *Allocator) notify() {
	select {
	case a.changes <- struct{}{}:
	default:
	}
}

// Stats returns counters of what the allocator did so far.
func (a *Allocator) Stats() Stats {
	return Stats{
		Assigned: a.assigned.Load(), Released: a.released.Load(),
		BlockWrites: a.blockWrites.Load(), Conflicts: a.conflicts.Load(), MaxRetries: a.maxRetries.Load(),
		Claims: a.claims.Load(), Borrows: a.borrows.Load(),
	}
}

func (a *Allocator) noteRetries(n int) {
	for {
		cur := a.maxRetries.Load()
		if int64(n) <= cur || a.maxRetries.CompareAndSwap(cur, int64(n)) {
			return
		}
	}
}

// retry runs fn with the allocator's backoff and records retries.
func (a *Allocator) retry(ctx context.Context, what string, fn func() error) error {
	n, err := a.opts.Backoff.Retry(ctx, what, func() error {
		err := fn()
		if ipam.IsConflict(err) {
			a.conflicts.Add(1)
		}
		return err
	})
	a.noteRetries(n)
	return err
}

// Run does the allocator's housekeeping until ctx ends: every interval it
// re-reads the node's claims (finishing claims and releases interrupted by
// a crash) and releases blocks empty for longer than EmptyBlockGrace.
func (a *Allocator) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := a.Resync(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("resync IPAM state", "err", err)
		}
		if _, err := a.ReleaseEmptyBlocks(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("release empty blocks", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
