package ipam

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cairn-net/cairn/ipam/gc"
)

// testLeaderElection: of two candidates exactly one leads; when it stops,
// the other takes over, and they never lead at the same time.
func testLeaderElection(t *testing.T, c *cluster) {
	type term struct {
		id   string
		stop context.CancelFunc
	}
	started := make(chan string, 4)
	var mu sync.Mutex
	leading, maxLeading := 0, 0
	lead := func(id string) func(ctx context.Context) {
		return func(ctx context.Context) {
			mu.Lock()
			leading++
			maxLeading = max(maxLeading, leading)
			mu.Unlock()
			started <- id
			<-ctx.Done()
			mu.Lock()
			leading--
			mu.Unlock()
		}
	}
	stops := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	for _, id := range []string{"gc-1", "gc-2"} {
		ctx, cancel := context.WithCancel(context.Background())
		stops[id] = cancel
		wg.Go(func() {
			err := gc.RunLeaderElected(ctx, gc.LeaderOptions{
				Client: c.core, Namespace: "kube-system", Name: "cairn-ipam-gc", Identity: id,
				// Generous timings: on a loaded machine a renewal can take
				// seconds, and a leader that lost its lease to slowness
				// would read as a second leader here.
				LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 500 * time.Millisecond,
				Logger: logger(t),
			}, lead(id))
			if err != nil {
				t.Error(err)
			}
		})
	}
	defer func() {
		for _, s := range stops {
			s()
		}
		wg.Wait()
	}()
	waitLeader := func(not string) string {
		t.Helper()
		select {
		case id := <-started:
			if id == not {
				t.Fatalf("%s led again", id)
			}
			return id
		case <-time.After(time.Minute):
			t.Fatal("no leader within a minute")
			return ""
		}
	}
	first := waitLeader("")
	stops[first]() // the leader's agent stops; it releases the Lease
	second := waitLeader(first)
	t.Logf("%s led, then %s took over", first, second)
	mu.Lock()
	defer mu.Unlock()
	if maxLeading != 1 {
		t.Errorf("%d candidates led at once", maxLeading)
	}
}
