package routetable

import (
	"errors"
	"fmt"

	"github.com/cairn-net/cairn/felix/kernel"
	"golang.org/x/sys/unix"
)

// mayDelete: a route of ours that is not desired is deleted only once its
// class is in sync, so a restart never removes live routes before the
// desired state has been stated again.
func (t *Table) mayDelete(r *kernel.Route) bool {
	if t.synced[classOf(r)] {
		return true
	}
	_, ok := t.removed[r.Dst]
	return ok
}

// Apply writes the pending differences to the kernel in one batch.
func (t *Table) Apply() error {
	if t.tracker.NumPendingUpdates() == 0 && t.tracker.NumPendingDeletes() == 0 {
		return nil
	}
	ops := t.ops[:0]
	for _, r := range t.tracker.PendingDeletes() {
		if t.mayDelete(&r) {
			// Deleting with our protocol set: the kernel will not match a
			// foreign route even if one took this destination meanwhile.
			ops = append(ops, kernel.RouteOp{Kind: kernel.OpDelete, Route: kernel.Route{
				Dst: r.Dst, Priority: r.Priority, Protocol: t.proto}})
		}
	}
	for _, u := range t.tracker.PendingUpdates() {
		kind := kernel.OpAdd
		if u.InDataplane {
			kind = kernel.OpReplace
		}
		ops = append(ops, kernel.RouteOp{Kind: kind, Route: u.Desired})
	}
	t.ops = ops
	if len(ops) == 0 {
		return nil
	}
	return t.write(ops)
}

// applyChunk is how many ops go to the kernel per RouteApply call in a
// large apply. The kernel's work on one chunk overlaps felix's bookkeeping
// of the previous one (a node has at least two cores).
const applyChunk = 4096

type chunkResult struct {
	start int
	errs  []error
}

// write sends ops to the kernel and records the outcome; large writes are
// pipelined in chunks. Only this goroutine touches the tracker; the
// writer goroutine only reads ops.
func (t *Table) write(ops []kernel.RouteOp) error {
	if len(ops) <= applyChunk {
		return t.record(ops, t.k.RouteApply(ops))
	}
	results := make(chan chunkResult, 2)
	go func() {
		defer close(results)
		for start := 0; start < len(ops); start += applyChunk {
			end := min(start+applyChunk, len(ops))
			results <- chunkResult{start: start, errs: t.k.RouteApply(ops[start:end])}
		}
	}()
	var errs []error
	for r := range results {
		if err := t.record(ops[r.start:r.start+len(r.errs)], r.errs); err != nil && len(errs) < maxReportedErrors {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func linkGone(err error) bool {
	return errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENETDOWN)
}

func unreachable(err error) bool {
	return errors.Is(err, unix.ENETUNREACH) || errors.Is(err, unix.EHOSTUNREACH)
}

// maxReportedErrors bounds the error returned by Apply.
const maxReportedErrors = 5

func (t *Table) record(ops []kernel.RouteOp, errs []error) error {
	var failed []error
	nFailed := 0
	for i := range ops {
		op, err := &ops[i], errs[i]
		k := keyOf(op.Route.Dst, op.Route.Priority)
		switch {
		case err == nil && op.Kind == kernel.OpDelete:
			t.tracker.DeleteActual(k)
			delete(t.removed, op.Route.Dst)
		case err == nil:
			t.tracker.SetActual(k, op.Route)
		case op.Kind == kernel.OpDelete && errors.Is(err, unix.ESRCH):
			t.tracker.DeleteActual(k)
			delete(t.removed, op.Route.Dst)
		case op.Route.LinkIndex != 0 && linkGone(err):
			// The link went away after it was resolved; its change event
			// (or a resync, asked for here in case the event was missed)
			// brings the route back. Not an error.
			t.forgetLink(op.Route.LinkIndex)
			t.needResync = true
		case unreachable(err):
			// A next hop not reachable yet: retried at the next resync,
			// reported quietly.
			t.needResync = true
			t.log.Debug("next hop not reachable yet", "prefix", op.Route.Dst, "err", err)
		default:
			// EEXIST means a foreign route appeared since the last dump:
			// reading back tells whose it is, and it is then left alone.
			t.needResync = true
			nFailed++
			if len(failed) < maxReportedErrors {
				failed = append(failed, err)
			}
		}
	}
	if nFailed == 0 {
		return nil
	}
	if nFailed > len(failed) {
		failed = append(failed, fmt.Errorf("and %d more route errors", nFailed-len(failed)))
	}
	return fmt.Errorf("apply %d route changes: %w", len(ops), errors.Join(failed...))
}
