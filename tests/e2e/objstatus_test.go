package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	cairnv1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	cairnclient "github.com/cairn-net/cairn/apis/client/clientset/versioned"
	"github.com/cairn-net/cairn/internal/lab"
	"github.com/cairn-net/cairn/ipam"
)

// statusFixture is a lab and its clients, for the object status test.
type statusFixture struct {
	t     *testing.T
	l     *lab.Lab
	ctx   context.Context
	cairn cairnclient.Interface
	kube  kubernetes.Interface
}

// poll calls cond until it holds, failing after timeout with what it
// last said, and returns how long it took.
func (f statusFixture) poll(what string, timeout time.Duration, cond func() (bool, string)) time.Duration {
	f.t.Helper()
	begin := time.Now()
	for {
		ok, got := cond()
		if ok {
			return time.Since(begin)
		}
		if time.Since(begin) > timeout {
			f.t.Fatalf("%s: after %v, still %s", what, timeout, got)
		}
		time.Sleep(100 * time.Millisecond) // polling interval, not synchronisation
	}
}

func (f statusFixture) peer(name string) *cairnv1.BGPPeer {
	p, err := f.cairn.CairnV1alpha1().BGPPeers().Get(f.ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f statusFixture) pool(name string) cairnv1.IPPoolStatus {
	p, err := f.cairn.CairnV1alpha1().IPPools().Get(f.ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return p.Status
}

// reportedEstablished counts the Established sessions of BGPPeer name
// that the nodes report in their CairnNodeStatus.
func (f statusFixture) reportedEstablished(name string) int32 {
	list, err := f.cairn.CairnV1alpha1().CairnNodeStatuses().List(f.ctx, metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	var n int32
	for _, st := range list.Items {
		for _, s := range st.Status.BGP.Peers {
			if s.BGPPeer == name && s.State == "Established" {
				n++
			}
		}
	}
	return n
}

// allocated counts the addresses the blocks of pool cidr hold, as the
// API server has them.
func (f statusFixture) allocated(cidr string) (blocks int32, addrs int64) {
	pool := netip.MustParsePrefix(cidr)
	list, err := f.cairn.CairnV1alpha1().IPAMBlocks().List(f.ctx, metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	for _, b := range list.Items {
		if p, err := ipam.BlockPrefix(&b); err == nil && pool.Contains(p.Addr()) {
			blocks++
			addrs += int64(len(b.Spec.Allocations))
		}
	}
	return blocks, addrs
}

// events are the Events of reason on BGPPeer name.
func (f statusFixture) events(name, reason string) []corev1.Event {
	list, err := f.kube.CoreV1().Events("").List(f.ctx, metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []corev1.Event
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == "BGPPeer" && e.InvolvedObject.Name == name && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

// TestObjectStatus: in a lab, the ToR's BGPPeer status counts the
// Established sessions the nodes report; the pools' status matches the
// allocations; a wrong TCP-MD5 password shows as the peer's last error
// and raises one Event however often it comes back, and the password
// appears in no status, Event or log.
func TestObjectStatus(t *testing.T) {
	l := upLab(t, lab.Options{Instance: "e2est", Racks: 1, NodesPerRack: 2, Router: lab.RouterBIRD, PodsPerNode: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cc, err := l.CairnClient()
	if err != nil {
		t.Fatal(err)
	}
	kc, err := l.KubeClient()
	if err != nil {
		t.Fatal(err)
	}
	f := statusFixture{t: t, l: l, ctx: ctx, cairn: cc, kube: kc}
	nodes := int32(len(l.Plan().Nodes()))
	tor := "tor-" + l.Plan().Racks[0].Name

	t.Run("BGPPeer and mesh sessions", func(t *testing.T) {
		f.t = t
		took := f.poll("BGPPeer status", time.Minute, func() (bool, string) {
			st := f.peer(tor).Status
			return st.Nodes == nodes && st.Sessions == nodes && st.Established == nodes && st.Established == f.reportedEstablished(tor) &&
				meta.IsStatusConditionTrue(st.Conditions, cairnv1.ConditionReady), fmt.Sprintf("%+v", st)
		})
		t.Logf("BGPPeer %s: %d of %d sessions Established (as the nodes report), seen %v after the lab converged", tor, nodes, nodes, took)
		f.poll("mesh status", time.Minute, func() (bool, string) {
			c, err := cc.CairnV1alpha1().BGPConfigurations().Get(ctx, "default", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			st := c.Status
			return st.MeshSessions == nodes*(nodes-1) && st.MeshEstablished == st.MeshSessions && meta.IsStatusConditionTrue(st.Conditions, cairnv1.ConditionAccepted),
				fmt.Sprintf("%+v", st)
		})
	})

	t.Run("IPPool usage matches the allocations", func(t *testing.T) {
		f.t = t
		match := func() (bool, string) {
			st := f.pool(lab.PoolName)
			blocks, addrs := f.allocated(lab.PoolCIDR)
			return st.Blocks == blocks && st.Allocated == addrs && addrs > 0, fmt.Sprintf("status %d blocks %d addresses, API server %d and %d", st.Blocks, st.Allocated, blocks, addrs)
		}
		f.poll("pod pool usage", time.Minute, match)
		before := f.pool(lab.PoolName).Allocated
		begin := time.Now()
		if _, err := l.AddPod(ctx, l.Plan().Nodes()[0].Name); err != nil {
			t.Fatal(err)
		}
		added := time.Since(begin)
		took := f.poll("one more pod", time.Minute, func() (bool, string) {
			ok, got := match()
			return ok && f.pool(lab.PoolName).Allocated == before+1, got
		})
		t.Logf("pool %s: allocated %d after a pod was added; the status followed %v after the CNI ADD returned (ADD took %v)", lab.PoolName, before+1, took, added)

		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "status-lb", Namespace: lab.PodNamespace},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "none"},
				Ports: []corev1.ServicePort{{Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
		if _, err := kc.CoreV1().Services(lab.PodNamespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		lbPool := netip.MustParsePrefix(lab.LoadBalancerPoolCIDR)
		var addressed time.Time
		f.poll("the LoadBalancer pool counts the Services' addresses", time.Minute, func() (bool, string) {
			list, err := kc.CoreV1().Services("").List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var inPool int64
			for _, s := range list.Items {
				for _, in := range s.Status.LoadBalancer.Ingress {
					if a, err := netip.ParseAddr(in.IP); err == nil && lbPool.Contains(a) {
						inPool++
						if s.Name == svc.Name && addressed.IsZero() {
							addressed = time.Now()
						}
					}
				}
			}
			st := f.pool(lab.LBPoolName)
			return inPool > 0 && st.Allocated == inPool && st.Blocks == 0, fmt.Sprintf("status %d, Services hold %d", st.Allocated, inPool)
		})
		t.Logf("pool %s: allocated %d, capacity %d; status followed %v after the address was seen on the Service",
			lab.LBPoolName, f.pool(lab.LBPoolName).Allocated, f.pool(lab.LBPoolName).Capacity, time.Since(addressed).Round(time.Millisecond))
	})

	t.Run("a wrong password", func(t *testing.T) {
		f.t = t
		const password = "Wr0ng-md5-S3cret-e2est"
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: lab.AgentNamespace, Name: "tor-md5"}, StringData: map[string]string{"password": password}}
		if _, err := kc.CoreV1().Secrets(lab.AgentNamespace).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		setPassword := func(on bool) {
			p := f.peer(tor)
			p.Spec.Password = nil
			if on {
				p.Spec.Password = &cairnv1.BGPPassword{SecretKeyRef: &cairnv1.SecretKeyRef{Name: sec.Name, Key: "password"}}
			}
			if _, err := cc.CairnV1alpha1().BGPPeers().Update(ctx, p, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		authFailing := func() (bool, string) {
			st := f.peer(tor).Status
			auth := 0
			for _, d := range st.SessionsDown {
				if d.Problem == cairnv1.ProblemAuthFailure {
					auth++
				}
			}
			return st.Established == 0 && int32(auth) == nodes && strings.Contains(st.LastError, "TCP-MD5"), fmt.Sprintf("%+v", st)
		}
		established := func() (bool, string) {
			st := f.peer(tor).Status
			return st.Established == nodes && st.LastError == "", fmt.Sprintf("%+v", st)
		}
		// The router has no password: with one on our side, the nodes'
		// kernels drop its unsigned SYNs and the sessions stay down.
		const flaps = 3
		for i := range flaps {
			setPassword(true)
			took := f.poll("the auth failure in the BGPPeer status", 2*time.Minute, authFailing)
			t.Logf("flap %d: password set; the BGPPeer status says TCP-MD5 on all %d sessions %v later", i+1, nodes, took)
			if i == 0 {
				t.Logf("BGPPeer %s lastError with the wrong password: %s", tor, f.peer(tor).Status.LastError)
			}
			setPassword(false)
			took = f.poll("Established again", 2*time.Minute, established)
			t.Logf("flap %d: password removed; all Established again in the status %v later", i+1, took)
		}
		evs := f.events(tor, "BGPAuthFailure")
		if len(evs) != 1 || evs[0].Count > 1 || evs[0].Type != corev1.EventTypeWarning {
			t.Errorf("%d BGPAuthFailure Events after %d failures, want one: %+v", len(evs), flaps, evs)
		} else {
			t.Logf("Event: %s %s: %s", evs[0].Type, evs[0].Reason, evs[0].Message)
		}
		leader := f.statusLeader()
		s := mustScrape(ctx, t, l, leader)
		emitted := s.value("cairn_status_events_total", map[string]string{"reason": "BGPAuthFailure", "result": "emitted"})
		suppressed := s.value("cairn_status_events_total", map[string]string{"reason": "BGPAuthFailure", "result": "suppressed"})
		t.Logf("leader %s: BGPAuthFailure Events emitted %v, suppressed %v; status writes %v", leader, emitted, suppressed,
			s.sum("cairn_status_writes_total", nil))
		if emitted != 1 || suppressed != flaps-1 {
			t.Errorf("emitted %v, suppressed %v; want 1 and %d", emitted, suppressed, flaps-1)
		}
		f.checkNoPassword(password)
	})
}

// statusLeader is the node whose agent holds the object status Lease.
func (f statusFixture) statusLeader() string {
	lease, err := f.kube.CoordinationV1().Leases(lab.AgentNamespace).Get(f.ctx, "cairn-status", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil {
		f.t.Fatalf("object status Lease: %v", err)
	}
	return *lease.Spec.HolderIdentity
}

// checkNoPassword looks for the password in every status and Event the
// API server holds, and in every agent's log.
func (f statusFixture) checkNoPassword(password string) {
	f.t.Helper()
	peers, err1 := f.cairn.CairnV1alpha1().BGPPeers().List(f.ctx, metav1.ListOptions{})
	nodes, err2 := f.cairn.CairnV1alpha1().CairnNodeStatuses().List(f.ctx, metav1.ListOptions{})
	configs, err3 := f.cairn.CairnV1alpha1().BGPConfigurations().List(f.ctx, metav1.ListOptions{})
	events, err4 := f.kube.CoreV1().Events("").List(f.ctx, metav1.ListOptions{})
	for _, err := range []error{err1, err2, err3, err4} {
		if err != nil {
			f.t.Fatal(err)
		}
	}
	dumps := map[string]any{"BGPPeers": peers, "CairnNodeStatuses": nodes, "BGPConfigurations": configs, "Events": events}
	for what, obj := range dumps {
		b, err := json.Marshal(obj)
		if err != nil {
			f.t.Fatal(err)
		}
		if strings.Contains(string(b), password) {
			f.t.Errorf("the password appears in %s", what)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(f.l.StateDir(), "nodes", "*", "*.log"))
	if len(logs) == 0 {
		f.t.Error("no agent log found to check")
	}
	for _, p := range logs {
		b, err := os.ReadFile(p)
		if err != nil {
			f.t.Fatal(err)
		}
		if strings.Contains(string(b), password) {
			f.t.Errorf("the password appears in %s", p)
		}
	}
}
