package gc

import (
	"context"
	"log/slog"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/cairn-net/cairn/apis/kubecore"
	"github.com/cairn-net/cairn/apis/kubecore/kubecoretest"
)

func heldBy(holder string, rv string, transitions int32) *coordinationv1.Lease {
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: testLease, ResourceVersion: rv}}
	if holder != "" {
		l.Spec.HolderIdentity = &holder
	}
	acquired := metav1.NewMicroTime(time.Unix(1000, 0))
	l.Spec.AcquireTime, l.Spec.LeaseTransitions = &acquired, &transitions
	return l
}

func renewed(l *coordinationv1.Lease, at time.Time) *coordinationv1.Lease {
	t := metav1.NewMicroTime(at)
	l.Spec.RenewTime = &t
	return l
}

// An elector's decisions, one step after another against one Lease: it
// takes a Lease nobody holds at once, another's only once the record has
// not changed for LeaseDuration by its own clock, and keeps its own term's
// acquire time and transition count when it renews.
func TestElectorTakesOnlyExpiredOrFreeLeases(t *testing.T) {
	const lease = 15 * time.Second
	t0 := time.Unix(5000, 0)
	type step struct {
		at    time.Duration         // after t0
		write *coordinationv1.Lease // the Lease as another party writes it first, if any
		want  bool                  // tryAcquireOrRenew's answer
		check func(*coordinationv1.Lease) string
	}
	holder := func(want string) func(*coordinationv1.Lease) string {
		return func(l *coordinationv1.Lease) string {
			got := ""
			if l.Spec.HolderIdentity != nil {
				got = *l.Spec.HolderIdentity
			}
			if got != want {
				return "holder " + got + ", want " + want
			}
			return ""
		}
	}
	cases := map[string][]step{
		"no Lease: created": {
			{at: 0, want: true, check: holder("me")},
		},
		"another's, unchanged for LeaseDuration: taken over": {
			{at: 0, write: heldBy("other", "1", 2), want: false, check: holder("other")},
			{at: lease - time.Second, want: false, check: holder("other")},
			{at: lease, want: true, check: func(l *coordinationv1.Lease) string {
				if *l.Spec.HolderIdentity != "me" || *l.Spec.LeaseTransitions != 3 || !l.Spec.AcquireTime.Time.Equal(t0.Add(lease)) {
					return "not a new term of mine: " + l.Spec.String()
				}
				return ""
			}},
		},
		"another's, renewed meanwhile: its term starts again": {
			{at: 0, write: heldBy("other", "1", 0), want: false},
			{at: 10 * time.Second, write: renewed(heldBy("other", "2", 0), t0.Add(10*time.Second)), want: false},
			{at: lease + time.Second, want: false, check: holder("other")},
			{at: 10*time.Second + lease, want: true, check: holder("me")},
		},
		"released (no holder): taken at once": {
			{at: 0, write: heldBy("", "1", 4), want: true, check: holder("me")},
		},
		"mine: renewed, same term": {
			{at: 0, write: heldBy("me", "1", 4), want: true, check: func(l *coordinationv1.Lease) string {
				if *l.Spec.LeaseTransitions != 4 || !l.Spec.AcquireTime.Time.Equal(time.Unix(1000, 0)) || !l.Spec.RenewTime.Time.Equal(t0) {
					return "not a renewal: " + l.Spec.String()
				}
				return ""
			}},
		},
	}
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			cs := fake.NewClientset()
			leases := kubecoretest.From(cs).Leases(testNS)
			now := t0
			e := &elector{lease: liveLease(leases, "me"), log: slog.New(slog.DiscardHandler), now: func() time.Time { return now },
				opts: LeaderOptions{Namespace: testNS, Name: testLease, Identity: "me", LeaseDuration: lease}}
			ctx := context.Background()
			for i, s := range steps {
				now = t0.Add(s.at)
				if s.write != nil {
					if _, err := leases.Get(ctx, testLease, metav1.GetOptions{}); err == nil {
						_, err = leases.Update(ctx, s.write, metav1.UpdateOptions{})
						if err != nil {
							t.Fatal(err)
						}
					} else if _, err := leases.Create(ctx, s.write, metav1.CreateOptions{}); err != nil {
						t.Fatal(err)
					}
				}
				if got := e.tryAcquireOrRenew(ctx); got != s.want {
					t.Fatalf("step %d (at %v): tryAcquireOrRenew = %v, want %v", i, s.at, got, s.want)
				}
				if s.check == nil {
					continue
				}
				l, err := leases.Get(ctx, testLease, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if msg := s.check(l); msg != "" {
					t.Fatalf("step %d (at %v): %s", i, s.at, msg)
				}
			}
		})
	}
}

// release clears the holder only while the Lease names this candidate.
func TestElectorReleasesOnlyItsOwnTerm(t *testing.T) {
	for name, tc := range map[string]struct {
		holder, want string
	}{
		"mine":      {holder: "me", want: ""},
		"another's": {holder: "other", want: "other"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			leases := kubecoretest.From(fake.NewClientset(heldBy(tc.holder, "1", 0))).Leases(testNS)
			e := &elector{lease: liveLease(leases, "me"), log: slog.New(slog.DiscardHandler), now: time.Now,
				opts: LeaderOptions{Namespace: testNS, Name: testLease, Identity: "me", LeaseDuration: time.Minute}}
			e.tryAcquireOrRenew(ctx) // reads it; renews it if it is mine
			e.release(ctx)
			l, err := leases.Get(ctx, testLease, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if l.Spec.HolderIdentity != nil {
				got = *l.Spec.HolderIdentity
			}
			if got != tc.want {
				t.Errorf("holder after release %q, want %q", got, tc.want)
			}
		})
	}
}

// Two candidates over one fake API: one leads, and when it stops, the
// other takes over; never both.
func TestRunLeaderElectedHandsOver(t *testing.T) {
	client := kubecoretest.From(fake.NewClientset())
	started := make(chan string, 4)
	stops := map[string]context.CancelFunc{}
	done := make(chan struct{}, 2)
	var leading, most int32
	mu := make(chan struct{}, 1)
	count := func(d int32) {
		mu <- struct{}{}
		leading += d
		most = max(most, leading)
		<-mu
	}
	for _, id := range []string{"a", "b"} {
		ctx, cancel := context.WithCancel(context.Background())
		stops[id] = cancel
		go func() {
			defer func() { done <- struct{}{} }()
			err := RunLeaderElected(ctx, LeaderOptions{Client: client, Namespace: testNS, Name: testLease, Identity: id,
				LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 20 * time.Millisecond},
				func(ctx context.Context) {
					count(1)
					started <- id
					<-ctx.Done()
					count(-1)
				})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	defer func() {
		for _, s := range stops {
			s()
		}
		<-done
		<-done
	}()
	wait := func() string {
		t.Helper()
		select {
		case id := <-started:
			return id
		case <-time.After(time.Minute):
			t.Fatal("no leader within a minute")
			return ""
		}
	}
	first := wait()
	stops[first]() // releases the Lease: the other need not wait 15 s
	if second := wait(); second == first {
		t.Fatalf("%s led twice", first)
	}
	mu <- struct{}{}
	defer func() { <-mu }()
	if most != 1 {
		t.Errorf("%d candidates led at once", most)
	}
}

// liveLease is the Lease read from the API server every time, without a
// watch.
func liveLease(leases kubecore.LeaseClient, identity string) *watchedLease {
	return &watchedLease{leases: leases, meta: metav1.ObjectMeta{Namespace: testNS, Name: testLease}, identity: identity}
}
