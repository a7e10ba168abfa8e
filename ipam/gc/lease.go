package gc

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// acquireJitter spreads the candidates' attempts to take a Lease: each
// waits RetryPeriod times 1 to 1+acquireJitter (client-go's JitterFactor).
const acquireJitter = 1.2

// elector is one candidate for one Lease, with client-go's leader
// election rules (tools/leaderelection, whose package brings every API
// group's client: see kubecore). Another holder's term is judged by this
// candidate's own clock: the Lease is taken over only when its record has
// not changed for LeaseDuration since this candidate last saw it change,
// never by comparing renewTime with the local time.
type elector struct {
	lease *watchedLease
	opts  LeaderOptions
	log   *slog.Logger
	now   func() time.Time

	// seen is the Lease as last read or written; seenAt when its record
	// (the spec) last changed, by now.
	seen   *coordinationv1.Lease
	seenAt time.Time
}

// holds reports whether the last Lease seen names this candidate.
func (e *elector) holds() bool {
	return e.seen != nil && holder(e.seen) == e.opts.Identity
}

// observe records lease as seen at t, restarting the other holder's term
// only when the record changed.
func (e *elector) observe(lease *coordinationv1.Lease, t time.Time) {
	if e.seen == nil || !apiequality.Semantic.DeepEqual(e.seen.Spec, lease.Spec) {
		e.seenAt = t
	}
	e.seen = lease
}

// tryAcquireOrRenew makes this candidate the Lease's holder, or renews its
// term, unless another candidate's term is running. Every write is a
// compare-and-swap on the resourceVersion read, so of two candidates
// racing for a free Lease one wins.
func (e *elector) tryAcquireOrRenew(ctx context.Context) bool {
	now := e.now()
	cur, err := e.lease.get(ctx)
	if apierrors.IsNotFound(err) {
		lease := &coordinationv1.Lease{}
		e.stamp(lease, now, true)
		created, err := e.lease.create(ctx, lease)
		if err != nil {
			e.log.Warn("cannot create the Lease", "err", err)
			return false
		}
		e.observe(created, now)
		return true
	}
	if err != nil {
		e.log.Warn("cannot read the Lease", "err", err)
		return false
	}
	e.observe(cur, now)
	holder := holder(cur)
	if holder != "" && holder != e.opts.Identity && now.Before(e.seenAt.Add(e.opts.LeaseDuration)) {
		return false
	}
	next := cur.DeepCopy()
	e.stamp(next, now, holder != e.opts.Identity)
	updated, err := e.lease.update(ctx, next)
	if err != nil {
		e.log.Debug("cannot take or renew the Lease", "holder", holder, "err", err)
		return false
	}
	e.observe(updated, now)
	return true
}

// stamp writes this candidate's term into lease at now; a new term (taken
// from another holder, or a new Lease) also sets acquireTime and counts a
// transition.
func (e *elector) stamp(lease *coordinationv1.Lease, now time.Time, newTerm bool) {
	t := metav1.NewMicroTime(now)
	seconds := int32(e.opts.LeaseDuration / time.Second)
	id := e.opts.Identity
	lease.Spec.HolderIdentity, lease.Spec.LeaseDurationSeconds, lease.Spec.RenewTime = &id, &seconds, &t
	if newTerm {
		lease.Spec.AcquireTime = &t
		if lease.ResourceVersion != "" { // an existing Lease changes hands
			n := int32(1)
			if lease.Spec.LeaseTransitions != nil {
				n += *lease.Spec.LeaseTransitions
			}
			lease.Spec.LeaseTransitions = &n
		}
	}
}

// release ends this candidate's term at once, so that another takes over
// without waiting for it to expire: only if the Lease still names it (a
// compare-and-swap on what it last wrote).
func (e *elector) release(ctx context.Context) {
	if !e.holds() {
		return
	}
	next := e.seen.DeepCopy()
	t, one := metav1.NewMicroTime(e.now()), int32(1)
	next.Spec.HolderIdentity, next.Spec.LeaseDurationSeconds, next.Spec.RenewTime = nil, &one, &t
	if _, err := e.lease.update(ctx, next); err != nil {
		e.log.Warn("cannot release the Lease; it expires by itself", "err", err)
	}
}

// acquire tries to take the Lease every RetryPeriod (with jitter) until it
// does, or ctx ends.
func (e *elector) acquire(ctx context.Context) bool {
	for {
		if e.tryAcquireOrRenew(ctx) {
			return true
		}
		wait := time.Duration(float64(e.opts.RetryPeriod) * (1 + acquireJitter*rand.Float64()))
		if !sleep(ctx, wait) {
			return false
		}
	}
}

// renew renews the term every RetryPeriod until ctx ends, or until no
// renewal succeeded for RenewDeadline: the term is then over, as another
// candidate may take the Lease once LeaseDuration has passed.
func (e *elector) renew(ctx context.Context) {
	for sleep(ctx, e.opts.RetryPeriod) {
		deadline := e.now().Add(e.opts.RenewDeadline)
		for {
			rctx, cancel := context.WithDeadline(ctx, deadline)
			ok := e.tryAcquireOrRenew(rctx)
			cancel()
			if ok {
				break
			}
			if ctx.Err() != nil {
				return
			}
			if !e.now().Before(deadline) {
				e.log.Warn("no renewal of the Lease within the renew deadline: leadership lost", "renewDeadline", e.opts.RenewDeadline)
				return
			}
			if !sleep(ctx, e.opts.RetryPeriod) {
				return
			}
		}
	}
}

// sleep waits d, or less if ctx ends first; it reports whether ctx is
// still going.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
