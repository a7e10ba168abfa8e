package lbipam

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	cairnlisters "github.com/cairn-net/cairn/apis/client/listers/cairn/v1alpha1"
	"github.com/cairn-net/cairn/apis/kubecore/kubecoretest"
)

// harness drives a Controller's sync by hand: cache is what its Service
// informer would hold, kube where its writes land; deliver copies the
// API's Services into the cache, as the informer would.
type harness struct {
	t      *testing.T
	c      *Controller
	kube   *fake.Clientset
	cache  cache.Indexer
	events *record.FakeRecorder
}

func newHarness(t *testing.T, ps []*v1.IPPool, svcs ...*corev1.Service) *harness {
	t.Helper()
	var objs []runtime.Object
	for _, s := range svcs {
		objs = append(objs, s)
	}
	h := &harness{t: t, kube: fake.NewClientset(objs...), events: record.NewFakeRecorder(1000),
		cache: cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})}
	poolCache := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, p := range ps {
		if err := poolCache.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	c, err := New(Options{Kube: kubecoretest.From(h.kube), Pools: cache.NewSharedIndexInformer(nil, &v1.IPPool{}, 0, cache.Indexers{}), Recorder: h.events})
	if err != nil {
		t.Fatal(err)
	}
	c.services, c.pools = corelisters.NewServiceLister(h.cache), cairnlisters.NewIPPoolLister(poolCache)
	c.queue = workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	t.Cleanup(c.queue.ShutDown)
	h.c = c
	h.deliver()
	if err := c.rebuild(); err != nil {
		t.Fatal(err)
	}
	return h
}

// deliverOne makes the cache's copy of one Service what the API holds.
func (h *harness) deliverOne(name string) {
	h.t.Helper()
	s, err := h.kube.CoreV1().Services("default").Get(context.Background(), name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		err = h.cache.Delete(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}})
	case err == nil:
		o, _ := serviceFields(s)
		err = h.cache.Update(o)
	}
	if err != nil {
		h.t.Fatal(err)
	}
}

// deliver makes the cache what the API holds.
func (h *harness) deliver() {
	h.t.Helper()
	list, err := h.kube.CoreV1().Services("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	var objs []any
	for i := range list.Items {
		o, _ := serviceFields(&list.Items[i])
		objs = append(objs, o)
	}
	if err := h.cache.Replace(objs, ""); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) create(s *corev1.Service) {
	h.t.Helper()
	if _, err := h.kube.CoreV1().Services(s.Namespace).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		h.t.Fatal(err)
	}
	h.deliverOne(s.Name)
}

func (h *harness) update(s *corev1.Service) {
	h.t.Helper()
	if _, err := h.kube.CoreV1().Services(s.Namespace).Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		h.t.Fatal(err)
	}
	h.deliverOne(s.Name)
}

func (h *harness) remove(name string) {
	h.t.Helper()
	if err := h.kube.CoreV1().Services("default").Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		h.t.Fatal(err)
	}
	h.deliverOne(name)
}

// sync syncs one Service and delivers what it wrote.
func (h *harness) sync(name string) error {
	err := h.c.sync(context.Background(), "default/"+name)
	h.deliverOne(name)
	return err
}

func (h *harness) mustSync(names ...string) {
	h.t.Helper()
	for _, n := range names {
		if err := h.sync(n); err != nil {
			h.t.Fatalf("sync %s: %v", n, err)
		}
	}
}

// status is the Service's ingress as the API holds it.
func (h *harness) status(name string) []string {
	h.t.Helper()
	s, err := h.kube.CoreV1().Services("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, in := range s.Status.LoadBalancer.Ingress {
		out = append(out, in.IP)
	}
	return out
}

func (h *harness) ingress(name string) corev1.LoadBalancerIngress {
	h.t.Helper()
	s, err := h.kube.CoreV1().Services("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil || len(s.Status.LoadBalancer.Ingress) == 0 {
		h.t.Fatalf("%s: no ingress (%v)", name, err)
	}
	return s.Status.LoadBalancer.Ingress[0]
}

// drain returns the Events written so far.
func (h *harness) drain() []string {
	var out []string
	for {
		select {
		case e := <-h.events.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func (h *harness) statusWrites() int {
	n := 0
	for _, a := range h.kube.Actions() {
		if a.GetVerb() == "patch" && a.GetSubresource() == "status" {
			n++
		}
	}
	return n
}

// queued returns the keys waiting in the queue.
func (h *harness) queued() []string {
	var out []string
	for h.c.queue.Len() > 0 {
		k, _ := h.c.queue.Get()
		h.c.queue.Done(k)
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func hasEvent(events []string, prefix string) bool {
	return slices.ContainsFunc(events, func(e string) bool { return strings.HasPrefix(e, prefix) })
}

func lbPool() *v1.IPPool { return ippool("lb", "192.0.2.0/26", true) } // 62 addresses unasked

func TestFiftyServicesGetDistinctAddressesAndGiveThemBack(t *testing.T) {
	var svcs []*corev1.Service
	var names []string
	for i := range 50 {
		names = append(names, fmt.Sprintf("s%02d", i))
		svcs = append(svcs, svc(names[i], i))
	}
	h := newHarness(t, []*v1.IPPool{lbPool(), ippool("pods", "10.244.0.0/16", false)}, svcs...)
	h.mustSync(names...)
	seen := map[string]string{}
	for _, n := range names {
		st := h.status(n)
		if len(st) != 1 || !netip.MustParsePrefix("192.0.2.0/26").Contains(netip.MustParseAddr(st[0])) {
			t.Fatalf("%s: status %v, want one address of the pool", n, st)
		}
		if in := h.ingress(n); in.IPMode == nil || *in.IPMode != corev1.LoadBalancerIPModeVIP {
			t.Errorf("%s: ingress %s has ipMode %v, want VIP: kube-proxy serves it on every node", n, in.IP, in.IPMode)
		}
		if other, dup := seen[st[0]]; dup {
			t.Fatalf("%s and %s both have %s", other, n, st[0])
		}
		seen[st[0]] = n
	}
	if events := h.drain(); len(events) != 50 || !hasEvent(events, "Normal "+ReasonAssigned+" assigned 192.0.2.1 (pool lb)") {
		t.Errorf("events: %q", events)
	}
	writes := h.statusWrites()
	h.mustSync(names...) // nothing changed: nothing written
	if n := h.statusWrites() - writes; n != 0 {
		t.Errorf("%d status writes on a second sync of settled Services", n)
	}
	for _, n := range names {
		h.remove(n)
		h.mustSync(n)
	}
	if h.c.table.Len() != 0 {
		t.Errorf("%d addresses still held after every Service went", h.c.table.Len())
	}
	h.create(svc("after", 100))
	h.mustSync("after")
	if st := h.status("after"); !slices.Equal(st, []string{"192.0.2.1"}) {
		t.Errorf("a new Service got %v, want the first address back", st)
	}
}

func TestRequestedAddressTakenGetsAnEventThenTheAddress(t *testing.T) {
	h := newHarness(t, []*v1.IPPool{lbPool()}, svc("first", 0, lbIP("192.0.2.10")), svc("second", 1, annotated("192.0.2.10")))
	h.mustSync("first", "second")
	if st := h.status("first"); !slices.Equal(st, []string{"192.0.2.10"}) {
		t.Fatalf("first: %v", st)
	}
	if st := h.status("second"); len(st) != 0 {
		t.Fatalf("second got %v, an address in use", st)
	}
	events := h.drain()
	want := "Warning " + ReasonUnavailable + " requested address 192.0.2.10 is in use by another Service"
	if !hasEvent(events, want) {
		t.Errorf("events %q, want %q", events, want)
	}
	h.remove("first")
	h.mustSync("first")
	if q := h.queued(); !slices.Equal(q, []string{"default/second"}) {
		t.Errorf("queued after the release: %v, want the waiting Service", q)
	}
	h.mustSync("second")
	if st := h.status("second"); !slices.Equal(st, []string{"192.0.2.10"}) {
		t.Errorf("second: %v once the address is free", st)
	}
}

func TestOutsideEveryPoolGetsAnEvent(t *testing.T) {
	h := newHarness(t, []*v1.IPPool{lbPool(), ippool("pods", "10.244.0.0/16", false)}, svc("a", 0, lbIP("10.244.0.10")))
	h.mustSync("a")
	if st := h.status("a"); len(st) != 0 {
		t.Errorf("got %v", st)
	}
	if events := h.drain(); !hasEvent(events, "Warning "+ReasonUnavailable+" requested address 10.244.0.10 is not in any LoadBalancer IP pool") {
		t.Errorf("events %q", events)
	}
}

// A write refused for a stale version hands out nothing: the address
// goes back to free and the Service is retried.
func TestConflictingWriteReservesNothing(t *testing.T) {
	h := newHarness(t, []*v1.IPPool{lbPool()}, svc("a", 0), svc("b", 1))
	h.failPatches(1, apierrors.NewConflict(schema.GroupResource{Resource: "services"}, "a", fmt.Errorf("stale")))
	if err := h.sync("a"); !apierrors.IsConflict(err) {
		t.Fatalf("sync a: %v, want the conflict", err)
	}
	if _, held := h.c.table.Held("default/a"); len(held) != 0 {
		t.Errorf("a holds %v after a refused write", held)
	}
	h.mustSync("b", "a")
	if a, b := h.status("a"), h.status("b"); !slices.Equal(b, []string{"192.0.2.1"}) || !slices.Equal(a, []string{"192.0.2.2"}) {
		t.Errorf("a %v b %v", a, b)
	}
}

// A write that may or may not have happened (a timeout) keeps the
// address reserved: nobody else gets it until the Service is settled.
func TestUncertainWriteKeepsTheReservation(t *testing.T) {
	h := newHarness(t, []*v1.IPPool{lbPool()}, svc("a", 0), svc("b", 1))
	h.failPatches(1, apierrors.NewTimeoutError("slow etcd", 1))
	if err := h.sync("a"); err == nil {
		t.Fatal("sync a succeeded through a failed write")
	}
	h.mustSync("b")
	if b := h.status("b"); !slices.Equal(b, []string{"192.0.2.2"}) {
		t.Errorf("b got %v while a's write of 192.0.2.1 is uncertain", b)
	}
	h.mustSync("a")
	if a := h.status("a"); !slices.Equal(a, []string{"192.0.2.1"}) {
		t.Errorf("a %v", a)
	}
}

func (h *harness) failPatches(n int, err error) {
	h.kube.PrependReactor("patch", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
		if n == 0 {
			return false, nil, nil
		}
		n--
		return true, nil, err
	})
}

func TestTypeChangeReleases(t *testing.T) {
	h := newHarness(t, []*v1.IPPool{lbPool()}, svc("a", 0), svc("b", 1, lbIP("192.0.2.1")))
	h.mustSync("a", "b")
	if st := h.status("a"); !slices.Equal(st, []string{"192.0.2.1"}) {
		t.Fatalf("a: %v", st)
	}
	h.drain()
	a, _ := h.kube.CoreV1().Services("default").Get(context.Background(), "a", metav1.GetOptions{})
	a.Spec.Type = corev1.ServiceTypeClusterIP
	h.update(a)
	h.mustSync("a")
	if st := h.status("a"); len(st) != 0 {
		t.Errorf("a, now ClusterIP, still has %v", st)
	}
	if events := h.drain(); !hasEvent(events, "Normal "+ReasonReleased+" released 192.0.2.1") {
		t.Errorf("events %q", events)
	}
	if q := h.queued(); !slices.Contains(q, "default/b") {
		t.Errorf("queued %v: b waits for the released address", q)
	}
	h.mustSync("b")
	if st := h.status("b"); !slices.Equal(st, []string{"192.0.2.1"}) {
		t.Errorf("b: %v", st)
	}
}

// Two Services found carrying one address at the start of a term (a write
// of the previous leader's, a hand edit): the older keeps it, the other
// gets a new one and an Event.
func TestDuplicateFoundAtStartIsResolved(t *testing.T) {
	h := newHarness(t, []*v1.IPPool{lbPool()}, svc("young", 5, status("192.0.2.1")), svc("old", 1, status("192.0.2.1")))
	h.mustSync("young", "old")
	if o, y := h.status("old"), h.status("young"); !slices.Equal(o, []string{"192.0.2.1"}) || !slices.Equal(y, []string{"192.0.2.2"}) {
		t.Errorf("old %v young %v", o, y)
	}
	if events := h.drain(); !hasEvent(events, "Warning "+ReasonConflict+" 192.0.2.1 is also in use by another Service") {
		t.Errorf("events %q", events)
	}
}

// Another controller's Services keep what they carry; Cairn's go around.
func TestOtherClassAddressesAreTaken(t *testing.T) {
	h := newHarness(t, []*v1.IPPool{lbPool()}, svc("metal", 0, class("example.com/metal"), status("192.0.2.1")), svc("ours", 1))
	h.mustSync("metal", "ours")
	if st := h.status("ours"); !slices.Equal(st, []string{"192.0.2.2"}) {
		t.Errorf("ours: %v", st)
	}
	if st := h.status("metal"); !slices.Equal(st, []string{"192.0.2.1"}) {
		t.Errorf("metal's status changed: %v", st)
	}
}

func TestRecreatedUnderTheSameName(t *testing.T) {
	h := newHarness(t, []*v1.IPPool{lbPool()}, svc("a", 0, lbIP("192.0.2.7")))
	h.mustSync("a")
	h.remove("a")
	again := svc("a", 9)
	again.UID = types.UID("uid-a-2")
	h.create(again)
	h.mustSync("a") // one sync sees the new Service without seeing the deletion
	if st := h.status("a"); !slices.Equal(st, []string{"192.0.2.1"}) {
		t.Errorf("the new a: %v", st)
	}
	if uid, held := h.c.table.Held("default/a"); uid != "uid-a-2" || !slices.Equal(held, addrs("192.0.2.1")) {
		t.Errorf("table: %v held by %s", held, uid)
	}
}
