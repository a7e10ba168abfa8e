package allocator_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/allocator"
	"github.com/cairn-net/cairn/ipam/memstore"
)

// A block write that keeps losing the compare-and-swap is retried for as
// long as its caller waits: contention costs time, not an allocation.
// Before the retries were bounded by the caller's deadline, the 13th
// conflict in a row failed the assignment although the caller would have
// waited.
func TestBlockWriteRetriesWhileTheCallerWaits(t *testing.T) {
	s := memstore.New()
	addPool(t, s, "v4", "10.0.0.0/24", 26)
	a := newAlloc(t, s, "a", func(o *allocator.Options) {
		o.Backoff = ipam.Backoff{Base: 10 * time.Microsecond, Cap: 100 * time.Microsecond}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The first address claims the block, so the next one is a plain
	// block write: make it lose the race 40 times, far more than the 12
	// attempts that used to be the limit.
	if _, err := a.AutoAssign(ctx, req("h1", 1, 0)); err != nil {
		t.Fatal(err)
	}
	f := s.FailNext(memstore.Blocks, memstore.Update, 40, nil)
	got, err := a.AutoAssign(ctx, req("h2", 1, 0))
	if err != nil {
		t.Fatalf("assignment failed under contention: %v", err)
	}
	if s.Hits(f) != 40 || len(got) != 1 {
		t.Fatalf("%d conflicts injected, got %v", s.Hits(f), got)
	}
	if st := a.Stats(); st.MaxRetries < 40 {
		t.Errorf("max retries %d, want at least the 40 conflicts", st.MaxRetries)
	}
	mustCheck(t, s)
}

// A write nobody waits for any more stops retrying: a caller that gave up
// gets its context's error, and the committer does not go on for the
// whole WriteTimeout holding the block's later callers back.
func TestBlockWriteStopsWhenEveryCallerGaveUp(t *testing.T) {
	s := memstore.New()
	addPool(t, s, "v4", "10.0.0.0/24", 26)
	a := newAlloc(t, s, "a", func(o *allocator.Options) {
		o.Backoff = ipam.Backoff{Attempts: 1 << 30, Base: time.Millisecond, Cap: time.Millisecond}
		o.WriteTimeout = time.Hour
		o.RollbackTimeout = time.Hour
	})
	if _, err := a.AutoAssign(context.Background(), req("h1", 1, 0)); err != nil {
		t.Fatal(err)
	}
	f := s.Inject(memstore.Fault{Kind: memstore.Blocks, Op: memstore.Update, Times: -1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := a.AutoAssign(ctx, req("h2", 1, 0))
		done <- err
	}()
	<-f.Fired
	cancel()
	// The rollback queues behind the committer: it finishes only once
	// the committer stopped retrying for nobody.
	err := <-done
	if !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "roll back") {
		t.Fatalf("AutoAssign after cancel: %v, want context.Canceled and a clean rollback", err)
	}
	// The committer has stopped: once the store accepts writes again, a
	// new caller is served (it would wait an hour behind a committer still
	// retrying for nobody).
	s.ClearFaults()
	wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
	defer wcancel()
	if _, err := a.AutoAssign(wctx, req("h3", 1, 0)); err != nil {
		t.Fatalf("next assignment: %v", err)
	}
	mustCheck(t, s)
}
