package objstatus

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubeinformers "k8s.io/client-go/informers"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	cairnfake "github.com/cairn-net/cairn/apis/client/clientset/versioned/fake"
	cairninformers "github.com/cairn-net/cairn/apis/client/informers/externalversions"
	"github.com/cairn-net/cairn/apis/kubecore/kubecoretest"
	"github.com/cairn-net/cairn/bgp/bgpstatus"
)

// clock is a hand-stepped clock for the Event limit.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is a status controller leading over fake clientsets.
type env struct {
	t       *testing.T
	ctx     context.Context
	cairn   *cairnfake.Clientset
	kube    *kubefake.Clientset
	events  chan string
	metrics *Metrics
	reg     *prometheus.Registry
	clock   *clock
	c       *Controller
}

const eventInterval = 10 * time.Minute

func newEnv(t *testing.T, objs ...runtime.Object) *env {
	t.Helper()
	var cairnObjs, kubeObjs []runtime.Object
	for _, o := range objs {
		if _, ok := o.(*corev1.Service); ok {
			kubeObjs = append(kubeObjs, o)
		} else {
			cairnObjs = append(cairnObjs, o)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{t: t, ctx: ctx, cairn: cairnfake.NewSimpleClientset(cairnObjs...), kube: kubefake.NewClientset(kubeObjs...),
		events: make(chan string, 1000), reg: prometheus.NewRegistry(), clock: &clock{now: time.Unix(1_000_000, 0)}}
	var err error
	if e.metrics, err = NewMetrics(e.reg); err != nil {
		t.Fatal(err)
	}
	cf := cairninformers.NewSharedInformerFactory(e.cairn, 0)
	kf := kubeinformers.NewSharedInformerFactory(e.kube, 0)
	cv := cf.Cairn().V1alpha1()
	opts := Options{Cairn: kubecoretest.Cairn(e.cairn), Pools: cv.IPPools().Informer(), Peers: cv.BGPPeers().Informer(), Configs: cv.BGPConfigurations().Informer(),
		Blocks: cv.IPAMBlocks().Informer(), Services: kf.Core().V1().Services().Informer(), Nodes: kf.Core().V1().Nodes().Informer(),
		Recorder: &record.FakeRecorder{Events: e.events}, Metrics: e.metrics, BatchDelay: 10 * time.Millisecond,
		EventInterval: eventInterval, Now: e.clock.Now}
	cf.Start(ctx.Done())
	kf.Start(ctx.Done())
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.c = c
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		cf.Shutdown()
		kf.Shutdown()
	})
	return e
}

// eventually waits for cond, failing with what describe says after a
// generous deadline.
func (e *env) eventually(what string, cond func() (bool, string)) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, got := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: still %s", what, got)
		}
		time.Sleep(5 * time.Millisecond) // polling a fake clientset
	}
}

// statusWrites counts the status updates of kind (resource) so far.
func (e *env) statusWrites(resource string) int {
	n := 0
	for _, a := range e.cairn.Actions() {
		if a.GetVerb() == "update" && a.GetSubresource() == "status" && a.GetResource().Resource == resource {
			n++
		}
	}
	return n
}

func (e *env) peer(name string) *v1.BGPPeer {
	p, err := e.cairn.CairnV1alpha1().BGPPeers().Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) setSessions(node string, sessions ...v1.BGPSessionStatus) {
	e.t.Helper()
	c := e.cairn.CairnV1alpha1().CairnNodeStatuses()
	st, err := c.Get(e.ctx, node, metav1.GetOptions{})
	if err != nil {
		st = &v1.CairnNodeStatus{ObjectMeta: metav1.ObjectMeta{Name: node}, Spec: v1.CairnNodeStatusSpec{Node: node}}
		if st, err = c.Create(e.ctx, st, metav1.CreateOptions{}); err != nil {
			e.t.Fatal(err)
		}
	}
	now := metav1.Now()
	st.Status.LastUpdated = &now
	st.Status.BGP.Peers = sessions
	if _, err := c.UpdateStatus(e.ctx, st, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) drainEvents() []string {
	var out []string
	for {
		select {
		case ev := <-e.events:
			out = append(out, ev)
		default:
			return out
		}
	}
}

func torSession(state string, problem v1.SessionProblem) v1.BGPSessionStatus {
	s := v1.BGPSessionStatus{Name: "peer:tor", BGPPeer: "tor", Type: "BGPPeer", PeerIP: "10.0.0.1", ASNumber: 65001, State: state, Problem: problem}
	if problem == v1.ProblemAuthFailure {
		s.Reason = "TCP-MD5 authentication failing: the passwords differ"
	}
	return s
}

func tor() *v1.BGPPeer {
	return &v1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "tor", UID: "u-tor", Generation: 1}, Spec: v1.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: 65001}}
}

// TestPeerStatusFromNodes: a BGPPeer's status counts what the nodes
// report, and names the one down with its reason; an auth failure raises
// one Event.
func TestPeerStatusFromNodes(t *testing.T) {
	e := newEnv(t, tor())
	e.setSessions("n1", torSession("Established", ""))
	e.setSessions("n2", torSession("Established", ""))
	e.setSessions("n3", torSession("Active", v1.ProblemAuthFailure))
	e.eventually("BGPPeer status", func() (bool, string) {
		st := e.peer("tor").Status
		return st.Nodes == 3 && st.Sessions == 3 && st.Established == 2 && strings.Contains(st.LastError, "TCP-MD5") &&
			len(st.SessionsDown) == 1 && st.SessionsDown[0].Node == "n3", fmt.Sprintf("%+v", st)
	})
	e.eventually("one auth Event", func() (bool, string) {
		evs := e.drainEvents()
		return len(evs) == 1 && strings.Contains(evs[0], bgpstatus.ReasonAuthFailure) && strings.Contains(evs[0], "n3 to 10.0.0.1"), fmt.Sprint(evs)
	})
	e.setSessions("n3", torSession("Established", ""))
	e.eventually("all Established", func() (bool, string) {
		st := e.peer("tor").Status
		return st.Established == 3 && st.LastError == "" && len(st.SessionsDown) == 0, fmt.Sprintf("%+v", st)
	})
}

// TestNoWriteWhenUnchanged: a node's periodic rewrite that changes no
// session, and the controller's own status writes, cost no status write.
func TestNoWriteWhenUnchanged(t *testing.T) {
	e := newEnv(t, tor(), &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "pods", Generation: 1}, Spec: v1.IPPoolSpec{CIDR: "10.244.0.0/16", BlockSize: 26}})
	e.setSessions("n1", torSession("Established", ""))
	e.eventually("first status", func() (bool, string) {
		return e.peer("tor").Status.Established == 1 && e.statusWrites("ippools") == 1, fmt.Sprintf("%+v", e.peer("tor").Status)
	})
	peerWrites, poolWrites := e.statusWrites("bgppeers"), e.statusWrites("ippools")
	for range 20 {
		e.setSessions("n1", torSession("Established", "")) // as the agent's refresh does
	}
	// A change that must be written, after the unchanged ones: once it is
	// there, the unchanged ones have been seen too.
	e.setSessions("n2", torSession("Established", ""))
	e.eventually("the second node", func() (bool, string) { return e.peer("tor").Status.Established == 2, "" })
	if got := e.statusWrites("bgppeers") - peerWrites; got != 1 {
		t.Errorf("BGPPeer status written %d times for one change among 21 rewrites, want 1", got)
	}
	if got := e.statusWrites("ippools") - poolWrites; got != 0 {
		t.Errorf("IPPool status written %d times with nothing changed", got)
	}
	if got := testutil.ToFloat64(e.metrics.writes.WithLabelValues("BGPPeer")); int(got) != e.statusWrites("bgppeers") {
		t.Errorf("metric counts %v BGPPeer writes, the API saw %d", got, e.statusWrites("bgppeers"))
	}
}

// TestSyncWritesOnlyChanges: syncing every object again, with nothing
// changed, writes nothing.
func TestSyncWritesOnlyChanges(t *testing.T) {
	p := tor()
	p.Spec.Filters = []string{"f"}
	e := newEnv(t, p, &v1.BGPFilter{ObjectMeta: metav1.ObjectMeta{Name: "f"}},
		&v1.BGPConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		&v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "pods"}, Spec: v1.IPPoolSpec{CIDR: "10.244.0.0/16", BlockSize: 26}})
	e.setSessions("n1", torSession("Established", ""), v1.BGPSessionStatus{Name: "mesh:n2", Type: "NodeMesh", PeerIP: "10.0.0.2", State: "Established"})
	kinds := []string{"bgppeers", "bgpfilters", "bgpconfigurations", "ippools"}
	e.eventually("every status written", func() (bool, string) {
		var n []int
		for _, k := range kinds {
			n = append(n, e.statusWrites(k))
		}
		return e.peer("tor").Status.Established == 1 && n[0] > 0 && n[1] > 0 && n[2] > 0 && n[3] > 0, fmt.Sprint(n)
	})
	// The caches hold the controller's own writes once the informers saw
	// them; until then a sync would compute from an older status.
	e.eventually("caches hold the statuses", func() (bool, string) {
		p, err1 := e.c.peers.Get("tor")
		cfg, err2 := e.c.configs.Get("default")
		pool, err3 := e.c.pools.Get("pods")
		f, ok, err4 := e.c.filters.GetByKey("f")
		return err1 == nil && err2 == nil && err3 == nil && err4 == nil && ok && p.Status.Established == 1 && cfg.Status.MeshSessions == 1 &&
			len(pool.Status.Conditions) > 0 && f.(*v1.BGPFilter).Status.UsedByCount == 1, ""
	})
	before := map[string]int{}
	for _, k := range kinds {
		before[k] = e.statusWrites(k)
	}
	for range 3 {
		for _, key := range []string{peerKey + "tor", filterKey + "f", configKey + "default", poolsKey} {
			if err := e.c.sync(e.ctx, key); err != nil {
				t.Fatalf("sync %s: %v", key, err)
			}
		}
	}
	for _, k := range kinds {
		if n := e.statusWrites(k) - before[k]; n != 0 {
			t.Errorf("%s: %d status writes with nothing changed", k, n)
		}
	}
}

// TestEventRateLimit: a peer whose auth failure comes and goes on a
// forty nodes, twenty times, raises one Event per interval; the others
// are counted as suppressed and the next Event says how many.
func TestEventRateLimit(t *testing.T) {
	e := newEnv(t, tor())
	const nodes, flaps = 40, 20 // the fake watch holds 100 events
	set := func(problem v1.SessionProblem) {
		state := "Established"
		if problem != "" {
			state = "Active"
		}
		for i := range nodes {
			e.setSessions(fmt.Sprintf("n%03d", i), torSession(state, problem))
		}
	}
	// Every session down, or every one up: a status caught half-way
	// through a flap (some nodes reported, some not) would let the next
	// flap begin while sessions are still down, and a failure that never
	// cleared raises no new Event.
	wait := func(down bool) {
		want := nodes
		if down {
			want = 0
		}
		e.eventually("status follows the flap", func() (bool, string) {
			st := e.peer("tor").Status
			return st.Sessions == nodes && st.Established == int32(want), fmt.Sprintf("established %d of %d, want %d", st.Established, st.Sessions, want)
		})
	}
	for range flaps {
		set(v1.ProblemAuthFailure)
		wait(true)
		set("")
		wait(false)
	}
	emitted := testutil.ToFloat64(e.metrics.events.WithLabelValues(bgpstatus.ReasonAuthFailure, "emitted"))
	suppressed := testutil.ToFloat64(e.metrics.events.WithLabelValues(bgpstatus.ReasonAuthFailure, "suppressed"))
	evs := e.drainEvents()
	t.Logf("%d nodes, %d flaps: %v emitted, %v suppressed, %d BGPPeer status writes", nodes, flaps, emitted, suppressed, e.statusWrites("bgppeers"))
	// Each flap raises at least one Event; one that the controller sees
	// half-way (some nodes' sessions down, then more) may raise two, so
	// the count of suppressed ones is a floor, and the next Event must
	// carry exactly that count.
	if emitted != 1 || len(evs) != 1 || suppressed < flaps-1 {
		t.Fatalf("emitted %v (%d recorded), suppressed %v; want 1 and at least %d: %v", emitted, len(evs), suppressed, flaps-1, evs)
	}
	e.clock.Step(eventInterval)
	set(v1.ProblemAuthFailure)
	e.eventually("an Event after the interval, counting the suppressed", func() (bool, string) {
		evs := e.drainEvents()
		return len(evs) == 1 && strings.Contains(evs[0], fmt.Sprintf("(%d similar Event(s) suppressed", int(suppressed))), fmt.Sprint(evs)
	})
}

// TestPoolStatus: a Workload pool counts its blocks' addresses, a
// LoadBalancer pool the Services' addresses in it; a full pool raises
// PoolExhausted once.
func TestPoolStatus(t *testing.T) {
	lbPool := &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "lb", UID: "u-lb", Generation: 1},
		Spec: v1.IPPoolSpec{CIDR: "10.98.0.0/30", AllowedUses: []v1.IPPoolUse{v1.IPPoolUseLoadBalancer}}}
	pods := &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "pods", Generation: 1}, Spec: v1.IPPoolSpec{CIDR: "10.244.0.0/16", BlockSize: 26}}
	block := &v1.IPAMBlock{ObjectMeta: metav1.ObjectMeta{Name: "10-244-0-0-26"}, Spec: v1.IPAMBlockSpec{CIDR: "10.244.0.0/26", Affinity: "node:n1",
		Allocations: []v1.BlockAllocation{{Ordinal: 1}, {Ordinal: 2}, {Ordinal: 3}}}}
	svc := func(name, ip string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: ip}}}}}
	}
	e := newEnv(t, lbPool, pods, block, svc("a", "10.98.0.1"))
	pool := func(name string) v1.IPPoolStatus {
		p, err := e.cairn.CairnV1alpha1().IPPools().Get(e.ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p.Status
	}
	e.eventually("usage", func() (bool, string) {
		lb, pd := pool("lb"), pool("pods")
		return lb.Allocated == 1 && lb.Capacity == 2 && lb.Blocks == 0 && pd.Allocated == 3 && pd.Blocks == 1 && pd.Capacity == 65536,
			fmt.Sprintf("lb %+v pods %+v", lb, pd)
	})
	if evs := e.drainEvents(); len(evs) != 0 {
		t.Errorf("Events before the pool is full: %v", evs)
	}
	if _, err := e.kube.CoreV1().Services("default").Create(e.ctx, svc("b", "10.98.0.2"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually("exhausted", func() (bool, string) {
		evs := e.drainEvents()
		return pool("lb").Allocated == 2 && len(evs) == 1 && strings.Contains(evs[0], ReasonPoolExhausted), fmt.Sprint(evs)
	})
}

// TestFilterStatus: a filter says which BGPPeers name it; a peer naming a
// missing filter says so.
func TestFilterStatus(t *testing.T) {
	p := tor()
	p.Spec.Filters = []string{"f", "missing"}
	f := &v1.BGPFilter{ObjectMeta: metav1.ObjectMeta{Name: "f", Generation: 1}, Spec: v1.BGPFilterSpec{ImportV4: []v1.BGPFilterRule{{CIDR: "10.0.0.0/8", MatchOperator: "In", Action: "Accept"}}}}
	e := newEnv(t, p, f)
	e.eventually("filter and peer status", func() (bool, string) {
		got, err := e.cairn.CairnV1alpha1().BGPFilters().Get(e.ctx, "f", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		fr := findCond(e.peer("tor").Status.Conditions, v1.ConditionFiltersResolved)
		return got.Status.UsedByCount == 1 && len(got.Status.UsedBy) == 1 && got.Status.UsedBy[0] == "tor" &&
				fr != nil && fr.Status == metav1.ConditionFalse && strings.Contains(fr.Message, "missing"),
			fmt.Sprintf("filter %+v peer %+v", got.Status, fr)
	})
}

func findCond(conds []metav1.Condition, typ string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}
