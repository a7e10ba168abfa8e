package lbipam

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/apis/client/clientset/versioned"
	cairninformers "github.com/cairn-net/cairn/apis/client/informers/externalversions"
	"github.com/cairn-net/cairn/apis/kubecore"
	"github.com/cairn-net/cairn/internal/controlplane/cptest"
	"github.com/cairn-net/cairn/ipam/gc"
	"github.com/cairn-net/cairn/ipam/lbipam"
)

const (
	ns       = "default"
	poolCIDR = "198.51.100.0/26" // 62 addresses handed out unasked: .1 to .62
	poolSize = 62
	timeout  = 2 * time.Minute
)

var lbPool = netip.MustParsePrefix(poolCIDR)

// One control plane serves every subtest, in order: each builds on the
// Services the one before left.
func TestLoadBalancerIPAMOnAPIServer(t *testing.T) {
	c := start(t)
	t.Run("50 Services created at once get 50 distinct addresses", c.testFifty)
	t.Run("a requested address in use gets an Event, not a duplicate", c.testRequestedTaken)
	t.Run("a Service that stops being LoadBalancer gives its address back", c.testTypeChange)
	t.Run("leader change, with duplicates written meanwhile", c.testLeaderChange)
	t.Run("deleting every Service returns every address", c.testDeleteAll)
}

// cluster is the control plane, clients, a watch of the test's Services,
// and the controller's candidates.
type cluster struct {
	t    *testing.T
	kube kubernetes.Interface
	// core is the product's own client of the same kinds (kubecore).
	core  kubecore.Interface
	cairn versioned.Interface
	pools cache.SharedIndexInformer
	// services is the test's own view, and changed is signalled on every
	// change, so waits re-check on events rather than poll.
	services corelisters.ServiceLister
	changed  chan struct{}
	// createdAt and addressedAt are when each Service's create returned and
	// when the test's watch first saw it with an address.
	timesMu                sync.Mutex
	createdAt, addressedAt map[string]time.Time
	// candidates are running controllers by identity, and how to stop them.
	mu         sync.Mutex
	candidates map[string]context.CancelFunc
	stopped    sync.WaitGroup
}

func start(t *testing.T) *cluster {
	cp := cptest.ForTest(t)
	c := &cluster{t: t, changed: make(chan struct{}, 1), candidates: map[string]context.CancelFunc{},
		createdAt: map[string]time.Time{}, addressedAt: map[string]time.Time{}}
	var err error
	if c.core, err = kubecore.NewForConfig(cp.Config); err != nil {
		t.Fatal(err)
	}
	if c.kube, err = kubernetes.NewForConfig(cp.Config); err != nil {
		t.Fatal(err)
	}
	if c.cairn, err = versioned.NewForConfig(cp.Config); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { c.stopAll(); cancel() })
	c.createPool(ctx, "lb", poolCIDR, []v1.IPPoolUse{v1.IPPoolUseLoadBalancer})
	c.createPool(ctx, "pods", "10.244.0.0/16", nil)

	pf := cairninformers.NewSharedInformerFactory(c.cairn, 0)
	c.pools = pf.Cairn().V1alpha1().IPPools().Informer()
	pf.Start(ctx.Done())
	kf := kubeinformers.NewSharedInformerFactoryWithOptions(c.kube, 0, kubeinformers.WithNamespace(ns))
	si := kf.Core().V1().Services()
	signal := func() {
		select {
		case c.changed <- struct{}{}:
		default:
		}
	}
	seen := func(obj any) {
		if s, ok := obj.(*corev1.Service); ok && len(s.Status.LoadBalancer.Ingress) > 0 {
			c.timesMu.Lock()
			if _, ok := c.addressedAt[s.Name]; !ok {
				c.addressedAt[s.Name] = time.Now()
			}
			c.timesMu.Unlock()
		}
		signal()
	}
	if _, err := si.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: seen, UpdateFunc: func(_, obj any) { seen(obj) }, DeleteFunc: func(any) { signal() },
	}); err != nil {
		t.Fatal(err)
	}
	c.services = si.Lister()
	kf.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.pools.HasSynced, si.Informer().HasSynced) {
		t.Fatal("caches did not sync")
	}
	c.campaign("agent-1")
	return c
}

// createPool retries while the API server publishes the CRD's schema for
// the defaulting policy (see deploy/policies/ippool-defaults.yaml).
func (c *cluster) createPool(ctx context.Context, name, cidr string, uses []v1.IPPoolUse) {
	c.t.Helper()
	p := &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.IPPoolSpec{CIDR: cidr, AllowedUses: uses}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.cairn.CairnV1alpha1().IPPools().Create(ctx, p, metav1.CreateOptions{})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("create pool %s: %v", name, err)
		}
		c.t.Logf("create pool %s: %v (retrying)", name, err)
		select {
		case <-ctx.Done():
			c.t.Fatal(ctx.Err())
		case <-time.After(200 * time.Millisecond): // the API server's schema publication has no event to wait on
		}
	}
}

func logger() *slog.Logger {
	if os.Getenv("LBIPAM_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

// campaign runs a candidate as cairn-node does: leader election on one
// Lease, the controller while leading.
func (c *cluster) campaign(id string) {
	ctx, cancel := context.WithCancel(context.Background())
	c.mu.Lock()
	c.candidates[id] = cancel
	c.mu.Unlock()
	recorder, stop := lbipam.NewRecorder(c.core, id)
	c.stopped.Go(func() {
		defer stop()
		err := gc.RunLeaderElected(ctx, gc.LeaderOptions{Client: c.core, Namespace: "kube-system", Name: "cairn-lbipam", Identity: id,
			LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 500 * time.Millisecond, Logger: logger()},
			func(ctx context.Context) {
				ctl, err := lbipam.New(lbipam.Options{Kube: c.core, Pools: c.pools, Recorder: recorder, Logger: logger().With("candidate", id)})
				if err != nil {
					c.t.Error(err)
					return
				}
				if err := ctl.Run(ctx); err != nil {
					c.t.Errorf("%s: Run: %v", id, err)
				}
			})
		if err != nil {
			c.t.Errorf("%s: leader election: %v", id, err)
		}
	})
}

// stop ends a candidate; it releases the Lease on the way out.
func (c *cluster) stop(id string) {
	c.mu.Lock()
	cancel := c.candidates[id]
	delete(c.candidates, id)
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

func (c *cluster) stopAll() {
	c.mu.Lock()
	for _, cancel := range c.candidates {
		cancel()
	}
	c.candidates = map[string]context.CancelFunc{}
	c.mu.Unlock()
	c.stopped.Wait()
}

func lbService(name string, mods ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}},
	}
	for _, m := range mods {
		m(s)
	}
	return s
}

func (c *cluster) create(ctx context.Context, s *corev1.Service) {
	c.t.Helper()
	if err := c.tryCreate(ctx, s); err != nil {
		c.t.Fatal(err)
	}
}

// tryCreate is create for goroutines other than the test's.
func (c *cluster) tryCreate(ctx context.Context, s *corev1.Service) error {
	if _, err := c.kube.CoreV1().Services(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create Service %s: %w", s.Name, err)
	}
	c.timesMu.Lock()
	c.createdAt[s.Name] = time.Now()
	c.timesMu.Unlock()
	return nil
}

// createAll creates Services concurrently, as a burst of deployments would.
func (c *cluster) createAll(ctx context.Context, t *testing.T, svcs []string) {
	var wg sync.WaitGroup
	for _, n := range svcs {
		wg.Go(func() {
			if err := c.tryCreate(ctx, lbService(n)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

func (c *cluster) delete(ctx context.Context, name string) {
	c.t.Helper()
	if err := c.kube.CoreV1().Services(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		c.t.Fatalf("delete Service %s: %v", name, err)
	}
}

func (c *cluster) get(ctx context.Context, name string) *corev1.Service {
	c.t.Helper()
	s, err := c.kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

// ingress is the Service's addresses as the test's cache has them; nil
// when it is not there.
func (c *cluster) ingress(name string) []string {
	s, err := c.services.Services(ns).Get(name)
	if err != nil {
		return nil
	}
	var out []string
	for _, in := range s.Status.LoadBalancer.Ingress {
		out = append(out, in.IP)
	}
	return out
}

// waitFor waits until cond holds, re-checking on every Service change.
func (c *cluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-c.changed:
		case <-deadline:
			c.t.Fatalf("waited %v for %s", timeout, what)
		}
	}
}

// addressed waits until every named Service has exactly one address, and
// returns them.
func (c *cluster) addressed(names []string) map[string]netip.Addr {
	c.t.Helper()
	c.waitFor(fmt.Sprintf("%d Services to get an address", len(names)), func() bool {
		for _, n := range names {
			if len(c.ingress(n)) != 1 {
				return false
			}
		}
		return true
	})
	out := map[string]netip.Addr{}
	for _, n := range names {
		out[n] = netip.MustParseAddr(c.ingress(n)[0])
	}
	return out
}

// distinctInPool fails unless every address is in the LoadBalancer pool
// and held by one Service only.
func distinctInPool(t *testing.T, got map[string]netip.Addr) {
	t.Helper()
	holder := map[netip.Addr]string{}
	for n, a := range got {
		if !lbPool.Contains(a) {
			t.Errorf("%s got %s, outside the LoadBalancer pool %s", n, a, lbPool)
		}
		if other, dup := holder[a]; dup {
			t.Errorf("%s and %s both got %s", other, n, a)
		}
		holder[a] = n
	}
}

// waitEvent waits for an Event with reason on the Service, through a
// watch started from a list (so one written already counts), and returns
// its message.
func (c *cluster) waitEvent(ctx context.Context, name, reason string) string {
	c.t.Helper()
	sel := fields.SelectorFromSet(fields.Set{"involvedObject.name": name, "involvedObject.kind": "Service", "reason": reason}).String()
	list, err := c.kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		c.t.Fatal(err)
	}
	if len(list.Items) > 0 {
		return list.Items[0].Message
	}
	w, err := c.kube.CoreV1().Events(ns).Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: list.ResourceVersion})
	if err != nil {
		c.t.Fatal(err)
	}
	defer w.Stop()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				c.t.Fatalf("event watch for %s closed", name)
			}
			if e, isEvent := ev.Object.(*corev1.Event); isEvent {
				return e.Message
			}
		case <-deadline:
			c.t.Fatalf("no %s Event on Service %s within %v", reason, name, timeout)
		}
	}
}

// latencies describes, over the named Services, the time from a
// create's return to the test's watch seeing an address.
func (c *cluster) latencies(svcs []string) string {
	c.timesMu.Lock()
	defer c.timesMu.Unlock()
	var ds []time.Duration
	for _, n := range svcs {
		if a, ok := c.addressedAt[n]; ok {
			ds = append(ds, max(a.Sub(c.createdAt[n]), 0))
		}
	}
	if len(ds) == 0 {
		return "no latencies"
	}
	slices.Sort(ds)
	q := func(p float64) time.Duration {
		return ds[min(len(ds)-1, int(p*float64(len(ds))))].Round(time.Millisecond)
	}
	return fmt.Sprintf("create to address per Service: p50 %v, p99 %v, max %v", q(0.5), q(0.99), ds[len(ds)-1].Round(time.Millisecond))
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%02d", prefix, i)
	}
	return out
}

// testFifty creates 50 Services at once and times until each has an
// address.
func (c *cluster) testFifty(t *testing.T) {
	ctx := context.Background()
	svcs := names("web", 50)
	began := time.Now()
	c.createAll(ctx, t, svcs)
	created := time.Since(began)
	got := c.addressed(svcs)
	t.Logf("50 Services: created in %v, all addressed %v after the first create; %s", created.Round(time.Millisecond),
		time.Since(began).Round(time.Millisecond), c.latencies(svcs))
	distinctInPool(t, got)
	if len(got) != 50 {
		t.Errorf("%d Services addressed", len(got))
	}
}

// testRequestedTaken asks for an address web-00 holds, by annotation and by
// spec.loadBalancerIP; then web-00 goes and the first to ask gets it.
func (c *cluster) testRequestedTaken(t *testing.T) {
	ctx := context.Background()
	taken := c.ingress("web-00")[0]
	c.create(ctx, lbService("wants-taken", func(s *corev1.Service) {
		s.Annotations = map[string]string{lbipam.RequestAnnotation: taken}
	}))
	msg := c.waitEvent(ctx, "wants-taken", lbipam.ReasonUnavailable)
	t.Logf("Event on wants-taken: %s: %s", lbipam.ReasonUnavailable, msg)
	if want := "requested address " + taken + " is in use by another Service"; msg != want {
		t.Errorf("Event message %q, want %q", msg, want)
	}
	c.create(ctx, lbService("wants-outside", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "10.244.0.10" }))
	if msg := c.waitEvent(ctx, "wants-outside", lbipam.ReasonUnavailable); msg != "requested address 10.244.0.10 is not in any LoadBalancer IP pool" {
		t.Errorf("Event message %q", msg)
	}
	for _, n := range []string{"wants-taken", "wants-outside"} {
		if in := c.ingress(n); len(in) != 0 {
			t.Errorf("%s got %v", n, in)
		}
	}
	c.delete(ctx, "web-00")
	c.waitFor("wants-taken to get "+taken+" once free", func() bool { return slices.Equal(c.ingress("wants-taken"), []string{taken}) })
	c.delete(ctx, "wants-outside")
}

func (c *cluster) testTypeChange(t *testing.T) {
	ctx := context.Background()
	s := c.get(ctx, "web-01")
	addr := s.Status.LoadBalancer.Ingress[0].IP
	s.Spec.Type = corev1.ServiceTypeClusterIP
	for i := range s.Spec.Ports {
		s.Spec.Ports[i].NodePort = 0
	}
	if _, err := c.kube.CoreV1().Services(ns).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitFor("web-01 to lose its address", func() bool { return len(c.ingress("web-01")) == 0 })
	t.Logf("web-01 gave %s back", addr)
	c.create(ctx, lbService("wants-released", func(s *corev1.Service) { s.Spec.LoadBalancerIP = addr }))
	c.waitFor("the released address to be given again", func() bool { return slices.Equal(c.ingress("wants-released"), []string{addr}) })
}

// testLeaderChange stops the leader, writes a duplicate into two
// Services' statuses while nobody leads, and starts two candidates: the
// new leader starts from the statuses, resolves the duplicate (the older
// Service keeps the address) and goes on giving distinct addresses.
func (c *cluster) testLeaderChange(t *testing.T) {
	ctx := context.Background()
	c.stop("agent-1")
	c.stopped.Wait()
	// While nobody leads, the younger of web-02 and web-03 is given the
	// older one's address by hand. Older: created first, then by name, as
	// the controller decides.
	older, younger := c.get(ctx, "web-02"), c.get(ctx, "web-03")
	if younger.CreationTimestamp.Before(&older.CreationTimestamp) {
		older, younger = younger, older
	}
	dupAddr := older.Status.LoadBalancer.Ingress[0].IP
	younger.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: dupAddr}}
	if _, err := c.kube.CoreV1().Services(ns).UpdateStatus(ctx, younger, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// And new Services wait for a leader.
	more := names("more", 5)
	for _, n := range more {
		c.create(ctx, lbService(n))
	}
	began := time.Now()
	c.campaign("agent-2")
	c.campaign("agent-3")
	all := append(names("web", 50)[2:], more...)
	got := c.addressed(all)
	c.waitFor(younger.Name+" to get an address of its own", func() bool {
		in := c.ingress(younger.Name)
		return len(in) == 1 && in[0] != dupAddr
	})
	t.Logf("new leader: 5 waiting Services addressed, duplicate resolved %v after the campaign began", time.Since(began).Round(time.Millisecond))
	if in := c.ingress(older.Name); !slices.Equal(in, []string{dupAddr}) {
		t.Errorf("%s, the older, has %v; want it to keep %s", older.Name, in, dupAddr)
	}
	msg := c.waitEvent(ctx, younger.Name, lbipam.ReasonConflict)
	t.Logf("Event on %s: %s: %s", younger.Name, lbipam.ReasonConflict, msg)
	got = c.addressed(all)
	got["wants-taken"] = netip.MustParseAddr(c.ingress("wants-taken")[0])
	got["wants-released"] = netip.MustParseAddr(c.ingress("wants-released")[0])
	distinctInPool(t, got)
}

// testDeleteAll deletes every Service and fills the pool again with new
// ones: had any address not come back, one of them would go without.
func (c *cluster) testDeleteAll(t *testing.T) {
	ctx := context.Background()
	list, err := c.kube.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list.Items {
		if s.Name != "kubernetes" {
			c.delete(ctx, s.Name)
		}
	}
	c.waitFor("every test Service gone", func() bool {
		l, _ := c.services.List(labels.Everything())
		return len(l) <= 1
	})
	fill := names("fill", poolSize)
	began := time.Now()
	c.createAll(ctx, t, fill)
	got := c.addressed(fill)
	t.Logf("%d new Services took the whole pool in %v; %s", poolSize, time.Since(began).Round(time.Millisecond), c.latencies(fill))
	distinctInPool(t, got)
	c.create(ctx, lbService("one-too-many"))
	msg := c.waitEvent(ctx, "one-too-many", lbipam.ReasonAllocationFailed)
	t.Logf("Event on one-too-many: %s: %s", lbipam.ReasonAllocationFailed, msg)
	if in := c.ingress("one-too-many"); len(in) != 0 {
		t.Errorf("one-too-many got %v from a full pool", in)
	}
}
