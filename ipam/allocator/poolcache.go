package allocator

import (
	"context"
	"fmt"
	"strings"

	"github.com/cairn-net/cairn/ipam/pools"
)

// allPools returns every pool, parsed, from a cache at most PoolCacheTTL
// old. Concurrent callers share one read.
func (a *Allocator) allPools(ctx context.Context) ([]pools.Pool, error) {
	a.poolMu.Lock()
	defer a.poolMu.Unlock()
	now := a.opts.Clock.Now()
	if a.poolCache != nil && a.opts.PoolCacheTTL > 0 && now.Sub(a.poolAt) < a.opts.PoolCacheTTL {
		return a.poolCache, nil
	}
	ips, err := a.store.Pools().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list pools: %w", err)
	}
	all := pools.Analyze(ips)
	a.reportProblems(all)
	a.poolCache, a.poolAt = all, now
	return all, nil
}

// InvalidatePools makes the next assignment re-read the pools; the agent
// calls it from its IPPool informer.
func (a *Allocator) InvalidatePools() {
	a.poolMu.Lock()
	a.poolCache = nil
	a.poolMu.Unlock()
}

// reportProblems logs overlapping and invalid pools when the set changes.
// Called with poolMu held.
func (a *Allocator) reportProblems(all []pools.Pool) {
	var b strings.Builder
	for _, p := range all {
		if len(p.YieldsTo) > 0 {
			fmt.Fprintf(&b, "%s overlaps the older %s; ", p.Name, strings.Join(p.YieldsTo, ","))
		}
		if p.Invalid != nil {
			fmt.Fprintf(&b, "%v; ", p.Invalid)
		}
	}
	if s := b.String(); s != a.overlaps {
		a.overlaps = s
		if s != "" {
			a.log.Warn("pools that will not be used", "problems", s)
		}
	}
}

func (a *Allocator) nodeLabels(ctx context.Context) (map[string]string, error) {
	if a.opts.NodeLabels == nil {
		return nil, nil
	}
	l, err := a.opts.NodeLabels(ctx)
	if err != nil {
		return nil, fmt.Errorf("read labels of node %s: %w", a.opts.Node, err)
	}
	return l, nil
}
