package gc

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	"github.com/cairn-net/cairn/apis/kubecore/kubecoretest"
)

const testNS, testLease = "cairn-system", "cairn-test"

// leaseGets counts the GETs of the Lease that reach the (fake) API server.
func leaseGets(kube *fake.Clientset) *atomic.Int64 {
	var n atomic.Int64
	kube.PrependReactor("get", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		n.Add(1)
		return false, nil, nil // counted; the tracker answers
	})
	return &n
}

func heldLease(holder string, renewed time.Time) *coordinationv1.Lease {
	seconds := int32(3)
	return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: testLease},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &seconds,
			AcquireTime: &metav1.MicroTime{Time: renewed}, RenewTime: &metav1.MicroTime{Time: renewed}}}
}

// TestWaitingCandidateMakesNoRequests: while another agent holds and
// renews the Lease, a waiting candidate sees the renewals through its
// watch and sends the API server nothing (client-go's LeaseLock GETs the
// Lease every retry period, from every agent, so a cluster's requests
// grew with its nodes). Once the renewals stop it takes the Lease over
// after the lease duration, as before.
func TestWaitingCandidateMakesNoRequests(t *testing.T) {
	kube := fake.NewClientset(heldLease("node-1", time.Now()))
	gets := leaseGets(kube)
	leases := kube.CoordinationV1().Leases(testNS)
	ctx, cancel := context.WithCancel(context.Background())
	led := make(chan time.Time, 1)
	done := make(chan error, 1)
	go func() {
		done <- RunLeaderElected(ctx, LeaderOptions{Client: kubecoretest.From(kube), Namespace: testNS, Name: testLease, Identity: "node-2",
			LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 100 * time.Millisecond,
			Logger: slog.New(slog.DiscardHandler)},
			func(ctx context.Context) { led <- time.Now(); <-ctx.Done() })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})

	// node-1 renews for longer than the lease lasts: node-2 must see every
	// renewal through its watch, or it would take the Lease over.
	renewFor := 4 * time.Second
	start := time.Now()
	var ownGets int64 // node-1's reads are the test's
	var lastRenewal time.Time
	for time.Since(start) < renewFor {
		ownGets++
		cur, err := leases.Get(ctx, testLease, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if h := holder(cur); h != "node-1" {
			t.Fatalf("node-2 took over a Lease node-1 renewed %s ago (holder %q)", time.Since(cur.Spec.RenewTime.Time), h)
		}
		lastRenewal = time.Now()
		cur.Spec.RenewTime = &metav1.MicroTime{Time: lastRenewal}
		if _, err := leases.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // node-1's renewal period
	}
	renewals := time.Since(start)
	// One read may come before the watch has listed the Lease.
	waiting := gets.Load() - ownGets
	t.Logf("node-2 waited %s (retry period 100 ms) with %d GETs of the Lease", renewals.Round(time.Millisecond), waiting)
	if waiting > 1 {
		t.Errorf("the waiting candidate sent %d GETs of the Lease in %s; it must read its watch", waiting, renewals.Round(time.Millisecond))
	}

	// The election record holds the renewal to the second, so a candidate
	// may count the lease duration from up to a second before the last
	// renewal (client-go's rule, with or without the watch).
	select {
	case at := <-led:
		after := at.Sub(lastRenewal)
		t.Logf("node-2 led %s after node-1's last renewal (lease duration 3 s)", after.Round(time.Millisecond))
		if after < 1900*time.Millisecond {
			t.Errorf("node-2 led %s after node-1's last renewal, before the Lease ran out", after)
		}
	case <-time.After(time.Minute):
		t.Fatal("node-2 never took over the expired Lease")
	}
	cur, err := leases.Get(ctx, testLease, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := holder(cur); h != "node-2" {
		t.Errorf("Lease held by %q after node-2 took over", h)
	}
}

// TestStaleWatchCostsAConflictNotALeader: a candidate whose watch has not
// yet seen another's renewal tries to take the Lease over; the write is
// conditional on the version it read, so it fails, and the next read goes
// to the API server, which has the renewal.
func TestStaleWatchCostsAConflictNotALeader(t *testing.T) {
	old := heldLease("node-1", time.Now().Add(-time.Minute))
	old.ResourceVersion = "1"
	kube := fake.NewClientset()
	gets := leaseGets(kube)
	fresh := heldLease("node-1", time.Now())
	fresh.ResourceVersion = "2"
	if err := kube.Tracker().Add(fresh); err != nil {
		t.Fatal(err)
	}
	kube.PrependReactor("update", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		l := a.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease)
		if l.ResourceVersion != "2" {
			return true, nil, apierrors.NewConflict(coordinationv1.Resource("leases"), l.Name, nil)
		}
		return false, nil, nil
	})
	store := cache.NewStore(cache.MetaNamespaceKeyFunc)
	if err := store.Add(old); err != nil {
		t.Fatal(err)
	}
	l := &watchedLease{leases: kube.CoordinationV1().Leases(testNS), meta: metav1.ObjectMeta{Namespace: testNS, Name: testLease}, identity: "node-2",
		store: store, synced: func() bool { return true }}
	ctx := context.Background()

	cur, err := l.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if gets.Load() != 0 {
		t.Errorf("read another's Lease with %d GETs; the watch has it", gets.Load())
	}
	takeover := cur.DeepCopy()
	me := "node-2"
	takeover.Spec.HolderIdentity = &me
	if _, err := l.update(ctx, takeover); !apierrors.IsConflict(err) {
		t.Fatalf("takeover of a Lease read stale: %v, want a conflict", err)
	}
	cur, err = l.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if gets.Load() != 1 {
		t.Errorf("%d GETs after a conflict, want 1", gets.Load())
	}
	if !cur.Spec.RenewTime.Time.Equal(fresh.Spec.RenewTime.Time) {
		t.Errorf("read after a conflict: renewed %s, want the API server's %s", cur.Spec.RenewTime, fresh.Spec.RenewTime)
	}
}

// TestHolderRenewsWithoutReading: the leader renews over its own last
// write, one conditional UPDATE per retry period and no GET, as
// client-go's optimistic renewal does (with a GET before each renewal
// the leader of cairn-node's three Leases sent about 200 requests a
// minute instead of 90).
func TestHolderRenewsWithoutReading(t *testing.T) {
	kube := fake.NewClientset()
	gets := leaseGets(kube)
	var updates atomic.Int64
	kube.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		updates.Add(1)
		return false, nil, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	led := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- RunLeaderElected(ctx, LeaderOptions{Client: kubecoretest.From(kube), Namespace: testNS, Name: testLease, Identity: "node-1",
			LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 100 * time.Millisecond,
			Logger: slog.New(slog.DiscardHandler)},
			func(ctx context.Context) { close(led); <-ctx.Done() })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case <-led:
	case <-time.After(time.Minute):
		t.Fatal("the only candidate never led")
	}
	gets0, updates0 := gets.Load(), updates.Load()
	deadline := time.Now().Add(time.Minute)
	for updates.Load()-updates0 < 10 { // ten renewals
		if time.Now().After(deadline) {
			t.Fatalf("%d renewals in a minute", updates.Load()-updates0)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := gets.Load() - gets0; n != 0 {
		t.Errorf("the leader read the Lease %d times over %d renewals; it renews over its own last write", n, updates.Load()-updates0)
	}
}
