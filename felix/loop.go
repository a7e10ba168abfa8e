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
	f.health.start()
	f.log.Info("starting", "routeProtocol", f.opts.RouteProtocol, "resyncInterval", f.opts.ResyncInterval)

	// Subscribe before the first listing so no link change falls between.
	st := &loopState{timer: time.NewTimer(0), links: f.subscribe(ctx)}
	defer st.timer.Stop()
	for full := true; ctx.Err() == nil; full = f.waitForWork(ctx, st) {
		if f.takeInputs() {
			full = true
		}
		if full && st.links == nil {
			st.links = f.subscribe(ctx)
		}
		resync, start := full || f.rt.NeedsResync(), time.Now()
		err := f.iterate(full)
		f.health.passed(time.Now(), full, err)
		f.publishRefused()
		f.publishStats(Pass{Resync: resync, Took: time.Since(start), Err: err})
		// Scheduled before the waiters go, so that what they see of
		// Health already says when the next pass is due.
		f.schedule(st, full, err)
		f.finishWaiters(full, err)
	}
	f.failWaiters(ErrNotRunning)
	f.log.Info("stopped")
	return nil
}

// loopState is what the Run loop carries between passes.
type loopState struct {
	timer   *time.Timer
	links   <-chan kernel.LinkUpdate // nil while not subscribed
	backoff time.Duration
}

// schedule sets the timer for the next full pass: soon (with backoff) after
// an error or while something is amiss, else after ResyncInterval.
func (f *Felix) schedule(st *loopState, full bool, err error) {
	if err != nil || f.rt.NeedsResync() || st.links == nil {
		st.backoff = min(max(2*st.backoff, f.opts.RetryInterval), f.opts.ResyncInterval)
		if err != nil {
			f.log.Warn("dataplane not in sync; will read the kernel back", "err", err, "retryIn", st.backoff)
		}
		resetTimer(st.timer, st.backoff)
		f.health.scheduled(time.Now().Add(st.backoff))
		return
	}
	if full {
		st.backoff = 0
		resetTimer(st.timer, f.opts.ResyncInterval)
		f.health.scheduled(time.Now().Add(f.opts.ResyncInterval))
	}
}

// waitForWork blocks until there is something to do and reports whether
// the next pass must be a full one.
func (f *Felix) waitForWork(ctx context.Context, st *loopState) (full bool) {
	select {
	case <-ctx.Done():
	case <-f.kick:
	case <-st.timer.C:
		return true
	case u, ok := <-st.links:
		if !ok {
			f.log.Warn("link subscription broke; resubscribing and reading the kernel back")
			st.links = nil
			return true
		}
		f.onLinkUpdate(u)
		return f.drainLinks(st)
	}
	return false
}

// drainLinks takes the rest of a burst of link changes, to apply once.
func (f *Felix) drainLinks(st *loopState) (full bool) {
	for {
		select {
		case u, ok := <-st.links:
			if !ok {
				st.links = nil
				return true
			}
			f.onLinkUpdate(u)
		default:
			return false
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
	v6Fwd := f.wantV6Fwd
	f.mu.Unlock()
	f.ifs.SetIPv6Forwarding(v6Fwd)
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
