package felix

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cairn-net/cairn/felix/kernel"
)

type waitKind int

const (
	waitEndpointUp waitKind = iota
	waitEndpointGone
	waitResync
)

// waiter is a caller blocked until the dataplane reaches a state.
type waiter struct {
	ctx      context.Context
	kind     waitKind
	iface    string
	prefixes []netip.Prefix
	// gen is, for waitResync, the resync generation it waits to pass.
	gen  uint64
	done chan error
}

func (w *waiter) wait() error {
	select {
	case err := <-w.done:
		return err
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
}

// Run reconciles until ctx is done, then returns nil. It reads the kernel
// back first (adopting what already matches), applies every change as it is
// stated, reads back again every ResyncInterval and, with backoff, after
// any error. Only one Run may be active at a time.
func (f *Felix) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return errors.New("felix: Run called twice")
	}
	defer f.running.Store(false)
	f.log.Info("starting", "routeProtocol", f.cfg.RouteProtocol, "resyncInterval", f.cfg.ResyncInterval)

	links := f.subscribe(ctx)
	timer := time.NewTimer(0) // the first pass is a full resync
	defer timer.Stop()
	full, backoff := true, time.Duration(0)
	for {
		if ctx.Err() != nil {
			f.failWaiters(ErrNotRunning)
			f.log.Info("stopped")
			return nil
		}
		if f.takeInputs() {
			full = true
		}
		if full && links == nil {
			// Resubscribe before listing so no change falls between.
			links = f.subscribe(ctx)
		}
		err := f.iterate(full)
		f.finishWaiters(full, err)
		if err != nil || f.rt.NeedsResync() {
			backoff = min(max(2*backoff, f.cfg.RetryInterval), f.cfg.ResyncInterval)
			if err != nil {
				f.log.Warn("dataplane not in sync; will read the kernel back", "err", err, "retryIn", backoff)
			}
			resetTimer(timer, backoff)
		} else if full {
			backoff = 0
			resetTimer(timer, f.cfg.ResyncInterval)
		}
		full = false
		select {
		case <-ctx.Done():
		case <-f.kick:
		case <-timer.C:
			full = true
		case u, ok := <-links:
			if !ok {
				f.log.Warn("link subscription broke; resubscribing and reading the kernel back")
				links, full = nil, true
				break
			}
			f.onLinkUpdate(u)
			// Take the whole burst before applying once.
			for drained := false; !drained; {
				select {
				case u, ok := <-links:
					if !ok {
						links, full, drained = nil, true, true
						break
					}
					f.onLinkUpdate(u)
				default:
					drained = true
				}
			}
		}
	}
}

func resetTimer(t *time.Timer, d time.Duration) {
	t.Stop()
	select {
	case <-t.C:
	default:
	}
	t.Reset(d)
}

func (f *Felix) subscribe(ctx context.Context) <-chan kernel.LinkUpdate {
	ch, err := f.k.LinkSubscribe(ctx)
	if err != nil {
		// Full resyncs (with backoff) try again; meanwhile link changes are
		// only seen at resyncs.
		f.log.Warn("cannot subscribe to link changes", "err", err)
		return nil
	}
	return ch
}

func (f *Felix) onLinkUpdate(u kernel.LinkUpdate) {
	f.rt.OnLinkUpdate(u)
	f.ifs.OnLinkUpdate(u)
}

// takeInputs moves the stated desired state into the reconcilers; it
// reports whether a caller asked for a full resync.
func (f *Felix) takeInputs() (fullWanted bool) {
	f.mu.Lock()
	pending, blocks, learned, pools, newWait := f.pending, f.blocks, f.learned, f.pools, f.newWait
	f.pending, f.blocks, f.learned, f.pools, f.newWait = nil, nil, nil, nil, nil
	f.mu.Unlock()
	for _, do := range pending {
		do()
	}
	if blocks != nil {
		f.rt.SetBlocks(*blocks)
	}
	if learned != nil {
		f.rt.SetLearned(*learned)
	}
	if pools != nil {
		f.nat.SetPools(*pools)
	}
	for _, w := range newWait {
		if w.kind == waitResync {
			w.gen = f.resyncGen + 1
			fullWanted = true
		}
	}
	f.waiters = append(f.waiters, newWait...)
	return fullWanted
}

// iterate runs one pass; full reads everything back from the kernel.
func (f *Felix) iterate(full bool) error {
	var errs []error
	if full || f.rt.NeedsResync() {
		start := time.Now()
		err := f.rt.Resync()
		f.ifs.SetLinks(f.rt.Links())
		if err != nil {
			errs = append(errs, fmt.Errorf("resync routes: %w", err))
		}
		f.log.Debug("resync done", "took", time.Since(start), "stats", f.rt.Stats())
	} else if err := f.rt.Apply(); err != nil {
		errs = append(errs, err)
	}
	if err := f.ifs.Apply(full); err != nil {
		errs = append(errs, err)
	}
	if err := f.spoof.Apply(full); err != nil {
		errs = append(errs, err)
	}
	if err := f.nat.Apply(full); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// finishWaiters releases the callers whose state has been reached.
func (f *Felix) finishWaiters(full bool, passErr error) {
	if full {
		f.resyncGen++
	}
	live := f.waiters[:0]
	for _, w := range f.waiters {
		done, err := f.check(w, passErr)
		if w.ctx.Err() != nil {
			continue // the caller gave up
		}
		if done {
			w.done <- err
			continue
		}
		live = append(live, w)
	}
	clear(f.waiters[len(live):])
	f.waiters = live
}

func (f *Felix) check(w *waiter, passErr error) (bool, error) {
	switch w.kind {
	case waitEndpointUp:
		ok, err := f.rt.EndpointReady(w.iface, w.prefixes)
		if err != nil {
			return true, err
		}
		return ok && f.ifs.Ready(w.iface), nil
	case waitEndpointGone:
		return f.rt.EndpointGone(w.iface, w.prefixes), nil
	default:
		return f.resyncGen >= w.gen, passErr
	}
}

func (f *Felix) failWaiters(err error) {
	f.mu.Lock()
	f.waiters = append(f.waiters, f.newWait...)
	f.newWait = nil
	f.mu.Unlock()
	for _, w := range f.waiters {
		w.done <- err
	}
	f.waiters = nil
}
