package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/cairn-net/cairn/internal/lab"
	"github.com/cairn-net/cairn/internal/testenv"
)

// servicesInstance keeps these tests' labs apart from the others'.
const servicesInstance = "e2esvc"

// Ports: every endpoint pod serves lab.EchoServer on echoPort; Services
// map servicePort to it; outside1 serves on outsidePort.
const (
	echoPort    = 8080
	servicePort = 80
	outsidePort = 9000
)

// manualLBClass keeps Services of these tests away from any LoadBalancer
// address controller: the tests write status.loadBalancer themselves, with
// addresses in the lower half of lab.ServiceLoadBalancerCIDR, outside the
// lab's LoadBalancer pool (lab.LoadBalancerPoolCIDR).
const manualLBClass = "e2e.cairn.dev/manual"

// Pod to Service and outside to inside on one rack, BIRD as the ToR and
// outside1 behind it.
func TestServicesOneRackBIRD(t *testing.T) {
	runServiceChecks(t, servicesLab(t, lab.Options{Racks: 1, NodesPerRack: 3, Router: lab.RouterBIRD}))
}

// The same on two racks with FRR: outside1 behind the spine, Services
// spread over racks of different ASes, endpoints moving between racks.
func TestServicesTwoRacksFRR(t *testing.T) {
	runServiceChecks(t, servicesLab(t, lab.Options{Racks: 2, NodesPerRack: 2, Router: lab.RouterFRR}))
}

// servicesLab brings up a lab without pods (each check makes its own).
func servicesLab(t *testing.T, o lab.Options) *svcFixture {
	t.Helper()
	testenv.Require(t, testenv.Check("kube-proxy and kube-controller-manager built (make controlplane)", lab.ServiceBinariesBuilt))
	o.Instance, o.PodsPerNode = servicesInstance, -1
	before := hostSnapshot(t)
	l := upLab(t, o)
	kube, err := l.KubeClient()
	if err != nil {
		t.Fatal(err)
	}
	out, ok := l.Plan().OutsideHost(lab.OutsideName)
	if !ok {
		t.Fatalf("the lab has no %s", lab.OutsideName)
	}
	return &svcFixture{l: l, kube: kube, plan: l.Plan(), out: out, hostBefore: before}
}

func runServiceChecks(t *testing.T, f *svcFixture) {
	t.Run("a pod and a node reach a ClusterIP whose endpoints are on other nodes", f.checkPodAndNodeToClusterIP)
	t.Run("outside1 reaches pods directly with its own address", f.checkOutsideToPods)
	t.Run("outside1 reaches a ClusterIP and a LoadBalancer IP spread over every node", f.checkOutsideToClusterPolicy)
	t.Run("externalTrafficPolicy Local keeps the client address and routes only to endpoint nodes", f.checkLocalPolicy)
	t.Run("externalIPs outside serviceExternalIPs are never announced", f.checkExternalIPsOutsideRange)
	t.Run("natOutgoing decides the source outside1 sees", f.checkNATOutgoing)
	t.Run("a LoadBalancer Service gets an address from the lab's pool, announced until deleted", f.checkLoadBalancerIPAM)
	t.Run("internalTrafficPolicy Local announces the cluster IP only from endpoint nodes", f.checkInternalLocal)
	t.Run("a Service without a selector is announced from the node its hand-made EndpointSlice names", f.checkSelectorless)
	t.Run("time from Service creation to reachable from outside1", f.measureServiceReachable)
	t.Run("kube-proxy changed nothing outside the nodes' namespaces", f.checkHostUntouched)
}

type svcFixture struct {
	l    *lab.Lab
	kube kubernetes.Interface
	plan lab.Plan
	out  lab.Host
	// hostBefore is hostSnapshot from before the lab came up.
	hostBefore map[string]string
}

// endpointPod creates a pod on node labelled app=app, serving the echo
// server; both go when the test ends.
func (f *svcFixture) endpointPod(t *testing.T, node, app string) lab.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pod, err := f.l.AddLabeledPod(ctx, node, map[string]string{"app": app})
	if err != nil {
		t.Fatalf("add a pod for %s on %s: %v", app, node, err)
	}
	t.Cleanup(func() {
		if err := f.l.DelPod(context.Background(), pod.Name); err != nil && !strings.Contains(err.Error(), "no pod") {
			t.Errorf("delete pod %s: %v", pod.Name, err)
		}
	})
	srv, err := lab.ServeEcho(pod.NS, pod.Name, echoPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return pod
}

// service creates a Service selecting app=app, port servicePort to
// echoPort, shaped further by edit; it is deleted when the test ends.
func (f *svcFixture) service(t *testing.T, name, app string, edit func(*corev1.Service)) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: lab.PodNamespace},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": app},
			Ports:    []corev1.ServicePort{{Protocol: corev1.ProtocolTCP, Port: servicePort, TargetPort: intstr.FromInt32(echoPort)}},
		},
	}
	if edit != nil {
		edit(svc)
	}
	created, err := f.kube.CoreV1().Services(lab.PodNamespace).Create(context.Background(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Service %s: %v", name, err)
	}
	t.Cleanup(func() {
		err := f.kube.CoreV1().Services(lab.PodNamespace).Delete(context.Background(), name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete Service %s: %v", name, err)
		}
	})
	return created
}

// plainLoadBalancer makes a Service of type LoadBalancer with no class,
// with the given traffic policy: the agents' LoadBalancer IPAM controller
// gives it an address from the lab's LoadBalancer pool.
func plainLoadBalancer(policy corev1.ServiceExternalTrafficPolicy) func(*corev1.Service) {
	return func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		s.Spec.ExternalTrafficPolicy = policy
	}
}

// loadBalancer makes a Service of type LoadBalancer of the manual class
// with the given traffic policy.
func loadBalancer(policy corev1.ServiceExternalTrafficPolicy) func(*corev1.Service) {
	return func(s *corev1.Service) {
		class := manualLBClass
		plainLoadBalancer(policy)(s)
		s.Spec.LoadBalancerClass = &class
	}
}

// waitIngress waits until Service name has a LoadBalancer address, polling
// the API server, and returns it.
func (f *svcFixture) waitIngress(ctx context.Context, name string, timeout time.Duration) (netip.Addr, error) {
	var ip netip.Addr
	err := pollUntil(ctx, timeout, func() error {
		s, err := f.kube.CoreV1().Services(lab.PodNamespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, in := range s.Status.LoadBalancer.Ingress {
			if ip, err = netip.ParseAddr(in.IP); err == nil {
				return nil
			}
		}
		return fmt.Errorf("Service %s has no LoadBalancer address yet", name)
	})
	return ip, err
}

// deleteService deletes Service name now (its cleanup then finds it gone).
func (f *svcFixture) deleteService(ctx context.Context, name string) error {
	if err := f.kube.CoreV1().Services(lab.PodNamespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("delete Service %s: %w", name, err)
	}
	return nil
}

// setIngress writes the Service's LoadBalancer address, as a
// LoadBalancer controller would.
func (f *svcFixture) setIngress(ctx context.Context, svc *corev1.Service, ip netip.Addr) error {
	patch := fmt.Sprintf(`{"status":{"loadBalancer":{"ingress":[{"ip":%q}]}}}`, ip)
	_, err := f.kube.CoreV1().Services(svc.Namespace).Patch(ctx, svc.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("set the LoadBalancer address of %s: %w", svc.Name, err)
	}
	return nil
}

func clusterIP(t *testing.T, svc *corev1.Service) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil {
		t.Fatalf("Service %s has cluster IP %q: %v", svc.Name, svc.Spec.ClusterIP, err)
	}
	return a
}

func addrPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// reach connects from netns to addr until answered, within a minute.
func reach(t *testing.T, netns string, addr netip.Addr, port int) lab.EchoReply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := lab.ReachEcho(ctx, netns, netip.AddrPortFrom(addr, uint16(port)), 100*time.Millisecond, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// checkPodAndNodeToClusterIP: a pod on the first node reaches a ClusterIP
// whose endpoints are on every other node; each connection is answered
// by one of them, which sees the client pod's own address (pod to pod
// through a Service is not NATed). The first node itself reaches it too.
func (f *svcFixture) checkPodAndNodeToClusterIP(t *testing.T) {
	nodes := f.plan.Nodes()
	client, far := nodes[0], nodes[1:]
	endpoints := map[string]bool{}
	for _, n := range far {
		endpoints[f.endpointPod(t, n.Name, "remote").Name] = true
	}
	from := f.endpointPod(t, client.Name, "client")
	svc := f.service(t, "remote", "remote", nil)
	vip := clusterIP(t, svc)
	first := reach(t, from.NS, vip, servicePort)
	answered := map[string]int{first.Server: 1}
	const conns = 30
	for range conns - 1 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := lab.DialEcho(ctx, from.NS, netip.AddrPortFrom(vip, servicePort))
		cancel()
		if err != nil {
			t.Fatalf("pod %s -> %s:%d: %v", from.Name, vip, servicePort, err)
		}
		answered[r.Server]++
		if r.Source != from.IP {
			t.Errorf("endpoint %s saw %s, want the client pod's own %s", r.Server, r.Source, from.IP)
		}
	}
	for name := range answered {
		if !endpoints[name] {
			t.Errorf("%s answered for %s, not one of its endpoints %v", name, vip, endpoints)
		}
	}
	t.Logf("%d connections from %s on %s to %s: answered by %v", conns, from.Name, client.Name, vip, answered)
	if len(answered) < 2 && len(endpoints) >= 2 {
		t.Errorf("only %v answered of %d endpoints in %d connections: not spread", answered, len(endpoints), conns)
	}
	r := reach(t, client.NS, vip, servicePort)
	if !endpoints[r.Server] || r.Source != client.Addr {
		t.Errorf("node %s -> %s: answered by %s seeing %s, want an endpoint seeing the node's %s", client.Name, vip, r.Server, r.Source, client.Addr)
	}
}

// checkOutsideToPods: outside1 connects to a pod on every node by its pod
// IP; each pod sees outside1's own address.
func (f *svcFixture) checkOutsideToPods(t *testing.T) {
	for _, n := range f.plan.Nodes() {
		pod := f.endpointPod(t, n.Name, "direct")
		r := reach(t, f.out.NS, pod.IP, echoPort)
		if r.Server != pod.Name || r.Source != f.out.Addr {
			t.Errorf("%s -> %s (%s on %s): answered by %s seeing %s, want %s seeing %s", f.out.Name, pod.IP, pod.Name, n.Name, r.Server, r.Source, pod.Name, f.out.Addr)
		}
	}
}

// checkOutsideToClusterPolicy: the cluster-IP range reaches outside1's
// router as one ECMP route over every node (or every rack), and outside1
// reaches a ClusterIP and, with externalTrafficPolicy Cluster, a
// LoadBalancer IP announced by every node.
func (f *svcFixture) checkOutsideToClusterPolicy(t *testing.T) {
	nodes := f.plan.Nodes()
	endpoints := map[string]bool{}
	for _, n := range nodes[1:] {
		endpoints[f.endpointPod(t, n.Name, "spread").Name] = true
	}
	router := f.outsideRouter(t)
	ctx := context.Background()
	clusterRange := netip.MustParsePrefix(lab.ServiceClusterCIDR)
	if err := f.waitKernelECMP(ctx, router, clusterRange, nodes); err != nil {
		t.Error(err)
	}
	svc := f.service(t, "spread", "spread", loadBalancer(corev1.ServiceExternalTrafficPolicyCluster))
	lbIP := netip.MustParseAddr("10.98.0.10")
	if err := f.setIngress(ctx, svc, lbIP); err != nil {
		t.Fatal(err)
	}
	if took, err := f.waitRouterPaths(ctx, addrPrefix(lbIP), nodes, 30*time.Second); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("%s announced by every node, in every router's table, %v after its status was written", lbIP, took.Round(time.Millisecond))
	}
	for _, addr := range []netip.Addr{clusterIP(t, svc), lbIP} {
		r := reach(t, f.out.NS, addr, servicePort)
		if !endpoints[r.Server] {
			t.Errorf("%s -> %s answered by %s, not an endpoint of %v", f.out.Name, addr, r.Server, endpoints)
		}
		t.Logf("%s -> %s:%d answered by %s, which saw %s (externalTrafficPolicy Cluster: the node may translate)", f.out.Name, addr, servicePort, r.Server, r.Source)
	}
}

// checkLocalPolicy: a LoadBalancer Service with externalTrafficPolicy
// Local and one endpoint: every router's table holds its /32 (and its
// cluster IP's) only towards the endpoint's node, and the endpoint sees
// outside1's own address. A second endpoint on another node (in another
// rack when there is one) adds that node's path; deleting the first Pod
// (the scale-down) leaves only the second's. The time each step takes to
// reach every router's table is reported, not asserted.
func (f *svcFixture) checkLocalPolicy(t *testing.T) {
	nodes := f.plan.Nodes()
	x, y := nodes[1], nodes[len(nodes)-1]
	ctx := context.Background()
	a := f.endpointPod(t, x.Name, "local")
	svc := f.service(t, "local", "local", loadBalancer(corev1.ServiceExternalTrafficPolicyLocal))
	lbIP, vip := netip.MustParseAddr("10.98.0.11"), clusterIP(t, svc)
	if err := f.setIngress(ctx, svc, lbIP); err != nil {
		t.Fatal(err)
	}
	for _, p := range []netip.Prefix{addrPrefix(lbIP), addrPrefix(vip)} {
		if _, err := f.waitRouterPaths(ctx, p, []lab.Node{x}, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	f.checkLocalAnswer(t, lbIP, a)

	begin := time.Now()
	b := f.endpointPod(t, y.Name, "local")
	took, err := f.waitRouterPaths(ctx, addrPrefix(lbIP), []lab.Node{x, y}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scale up: %s's path in every router %v after its Pod was Ready (%v after the pod was started)",
		y.Name, took.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))

	// Scale down: the API object goes first, as a ReplicaSet deletes it;
	// the pod's network is torn down afterwards.
	begin = time.Now()
	if err := f.kube.CoreV1().Pods(lab.PodNamespace).Delete(ctx, a.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	took, err = f.waitRouterPaths(ctx, addrPrefix(lbIP), []lab.Node{y}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scale down: %s's path gone from every router %v after its Pod was deleted (move %s -> %s)", x.Name, took.Round(time.Millisecond), x.Name, y.Name)
	if _, err := f.waitRouterPaths(ctx, addrPrefix(vip), []lab.Node{y}, 30*time.Second); err != nil {
		t.Error(err)
	}
	if err := f.l.DelPod(ctx, a.Name); err != nil {
		t.Fatal(err)
	}
	f.checkLocalAnswer(t, lbIP, b)
}

// checkLocalAnswer: outside1 reaches addr, answered by want seeing
// outside1's own address.
func (f *svcFixture) checkLocalAnswer(t *testing.T, addr netip.Addr, want lab.Pod) {
	t.Helper()
	r := reach(t, f.out.NS, addr, servicePort)
	if r.Server != want.Name || r.Source != f.out.Addr {
		t.Errorf("%s -> %s: answered by %s seeing %s, want %s seeing %s (externalTrafficPolicy Local keeps the client's address)",
			f.out.Name, addr, r.Server, r.Source, want.Name, f.out.Addr)
	}
}

// checkExternalIPsOutsideRange: of two Services with externalIPs, the one
// inside serviceExternalIPs is announced by every node (and reachable
// from outside1); then, with that proof that announcements have gone
// out, the one outside it is in no node's announcements and no router's
// table.
func (f *svcFixture) checkExternalIPsOutsideRange(t *testing.T) {
	nodes := f.plan.Nodes()
	f.endpointPod(t, nodes[0].Name, "ext")
	inside, outside := netip.MustParseAddr("10.97.0.20"), netip.MustParseAddr("10.99.0.20")
	f.service(t, "ext-outside", "ext", func(s *corev1.Service) { s.Spec.ExternalIPs = []string{outside.String()} })
	f.service(t, "ext-inside", "ext", func(s *corev1.Service) { s.Spec.ExternalIPs = []string{inside.String()} })
	ctx := context.Background()
	if _, err := f.waitRouterPaths(ctx, addrPrefix(inside), nodes, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	err := pollUntil(ctx, 30*time.Second, func() error {
		announced, err := f.announced(ctx)
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if !slices.Contains(announced[n.Name], addrPrefix(inside).String()) {
				return fmt.Errorf("%s's status does not list %s yet: %v", n.Name, addrPrefix(inside), announced[n.Name])
			}
		}
		for node, list := range announced {
			if slices.Contains(list, addrPrefix(outside).String()) {
				return stopPolling(fmt.Errorf("%s announces %s, outside serviceExternalIPs %s", node, addrPrefix(outside), lab.ServiceExternalCIDR))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.plan.Routers() {
		routes, err := f.l.RouterRoutes(ctx, r.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, rt := range routes {
			if rt.Prefix.Contains(outside) {
				t.Errorf("%s holds %s via %s: an externalIP outside %s reached a router", r.Name, rt.Prefix, rt.NextHop, lab.ServiceExternalCIDR)
			}
		}
	}
	reach(t, f.out.NS, inside, servicePort)
}

// checkLoadBalancerIPAM: two Services of type LoadBalancer with no class
// get distinct addresses from the lab's LoadBalancer pool, from the
// agents' controller; the one with externalTrafficPolicy Cluster is
// announced by every node, the Local one only by its endpoint's node, and
// outside1 reaches both (Local: seen with its own address). Deleting a
// Service withdraws its /32 from every router.
func (f *svcFixture) checkLoadBalancerIPAM(t *testing.T) {
	nodes := f.plan.Nodes()
	x := nodes[len(nodes)-1]
	pod := f.endpointPod(t, x.Name, "lbipam")
	ctx := context.Background()
	pool := netip.MustParsePrefix(lab.LoadBalancerPoolCIDR)
	given := map[netip.Addr]string{}
	for _, c := range []struct {
		name       string
		policy     corev1.ServiceExternalTrafficPolicy
		announcers []lab.Node
	}{
		{"lbipam-cluster", corev1.ServiceExternalTrafficPolicyCluster, nodes},
		{"lbipam-local", corev1.ServiceExternalTrafficPolicyLocal, []lab.Node{x}},
	} {
		begin := time.Now()
		f.service(t, c.name, "lbipam", plainLoadBalancer(c.policy))
		ip, err := f.waitIngress(ctx, c.name, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		addressed := time.Since(begin)
		if !pool.Contains(ip) {
			t.Errorf("Service %s got %s, outside the lab's LoadBalancer pool %s", c.name, ip, pool)
		}
		if other, ok := given[ip]; ok {
			t.Errorf("Services %s and %s both got %s", other, c.name, ip)
		}
		given[ip] = c.name
		took, err := f.waitRouterPaths(ctx, addrPrefix(ip), c.announcers, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s (%s): %s %v after creation, in every router's table via %d node(s) %v later",
			c.name, c.policy, ip, addressed.Round(time.Millisecond), len(c.announcers), took.Round(time.Millisecond))
		r := reach(t, f.out.NS, ip, servicePort)
		if r.Server != pod.Name {
			t.Errorf("%s -> %s answered by %s, want %s", f.out.Name, ip, r.Server, pod.Name)
		}
		if c.policy == corev1.ServiceExternalTrafficPolicyLocal && r.Source != f.out.Addr {
			t.Errorf("%s -> %s: %s saw %s, want %s's own address (Local)", f.out.Name, ip, r.Server, r.Source, f.out.Addr)
		}
	}
	for ip, name := range given {
		begin := time.Now()
		if err := f.deleteService(ctx, name); err != nil {
			t.Fatal(err)
		}
		if _, err := f.waitRouterPaths(ctx, addrPrefix(ip), nil, 30*time.Second); err != nil {
			t.Fatalf("after deleting %s: %v", name, err)
		}
		t.Logf("%s deleted: %s gone from every router %v later", name, ip, time.Since(begin).Round(time.Millisecond))
	}
}

// checkInternalLocal: a ClusterIP Service with internalTrafficPolicy Local
// and one endpoint: every router holds its cluster IP's /32 only via the
// endpoint's node, and a pod on that node reaches it, answered by the
// endpoint seeing the pod's own address.
func (f *svcFixture) checkInternalLocal(t *testing.T) {
	x := f.plan.Nodes()[1]
	ep := f.endpointPod(t, x.Name, "itp")
	client := f.endpointPod(t, x.Name, "itp-client")
	local := corev1.ServiceInternalTrafficPolicyLocal
	svc := f.service(t, "itp", "itp", func(s *corev1.Service) { s.Spec.InternalTrafficPolicy = &local })
	vip := clusterIP(t, svc)
	took, err := f.waitRouterPaths(context.Background(), addrPrefix(vip), []lab.Node{x}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s/32 (internalTrafficPolicy Local) in every router's table only via %s, %v after waiting began", vip, x.Name, took.Round(time.Millisecond))
	r := reach(t, client.NS, vip, servicePort)
	if r.Server != ep.Name || r.Source != client.IP {
		t.Errorf("%s -> %s: answered by %s seeing %s, want %s seeing %s", client.Name, vip, r.Server, r.Source, ep.Name, client.IP)
	}
}

// checkSelectorless: a Service of type LoadBalancer, externalTrafficPolicy
// Local, without a selector, and an EndpointSlice written by hand naming a
// pod and its node: the controller gives it an address, only that node
// announces it, and outside1 reaches the pod through it with its own
// address. Rewriting the slice to name a pod on another node moves the
// route there.
func (f *svcFixture) checkSelectorless(t *testing.T) {
	nodes := f.plan.Nodes()
	first, second := nodes[0], nodes[len(nodes)-1]
	a, b := f.endpointPod(t, first.Name, "by-hand"), f.endpointPod(t, second.Name, "by-hand")
	ctx := context.Background()
	f.service(t, "noselector", "", func(s *corev1.Service) {
		s.Spec.Selector = nil
		plainLoadBalancer(corev1.ServiceExternalTrafficPolicyLocal)(s)
	})
	eps := f.kube.DiscoveryV1().EndpointSlices(lab.PodNamespace)
	slice, err := eps.Create(ctx, handMadeSlice("noselector", a), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create EndpointSlice: %v", err)
	}
	t.Cleanup(func() {
		if err := eps.Delete(context.Background(), slice.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete EndpointSlice %s: %v", slice.Name, err)
		}
	})
	ip, err := f.waitIngress(ctx, "noselector", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.waitRouterPaths(ctx, addrPrefix(ip), []lab.Node{first}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	f.checkLocalAnswer(t, ip, a)

	moved := handMadeSlice("noselector", b)
	moved.Name, moved.ResourceVersion = slice.Name, slice.ResourceVersion
	begin := time.Now()
	if _, err := eps.Update(ctx, moved, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("rewrite EndpointSlice %s: %v", slice.Name, err)
	}
	if _, err := f.waitRouterPaths(ctx, addrPrefix(ip), []lab.Node{second}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("slice rewritten from %s on %s to %s on %s: %s moved in every router within %v",
		a.Name, first.Name, b.Name, second.Name, ip, time.Since(begin).Round(time.Millisecond))
	f.checkLocalAnswer(t, ip, b)
}

// handMadeSlice is an EndpointSlice of Service svc with one ready
// endpoint, pod, on its node, serving echoPort.
func handMadeSlice(svc string, pod lab.Pod) *discoveryv1.EndpointSlice {
	ready, port, name := true, int32(echoPort), ""
	proto := corev1.ProtocolTCP
	node := pod.Node
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: svc + "-by-hand", Namespace: lab.PodNamespace, Labels: map[string]string{
			discoveryv1.LabelServiceName: svc, discoveryv1.LabelManagedBy: "e2e.cairn.dev"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{pod.IP.String()}, NodeName: &node,
			Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
	}
}

// announced is what every agent reports announcing, by node.
func (f *svcFixture) announced(ctx context.Context) (map[string][]string, error) {
	cc, err := f.l.CairnClient()
	if err != nil {
		return nil, err
	}
	list, err := cc.CairnV1alpha1().CairnNodeStatuses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list CairnNodeStatus: %w", err)
	}
	out := map[string][]string{}
	for _, s := range list.Items {
		out[s.Spec.Node] = s.Status.Routes.Announced
	}
	return out, nil
}

// checkNATOutgoing: a pod on every node connects to outside1, which sees
// the pod's own address while the pool has natOutgoing false, the node's
// address once it is true, and the pod's again once it is false again.
func (f *svcFixture) checkNATOutgoing(t *testing.T) {
	srv, err := lab.ServeEcho(f.out.NS, f.out.Name, outsidePort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	var pods []lab.Pod
	for _, n := range f.plan.Nodes() {
		pods = append(pods, f.endpointPod(t, n.Name, "nat"))
	}
	ctx := context.Background()
	dst := netip.AddrPortFrom(f.out.Addr, outsidePort)
	seen := func(p lab.Pod) (netip.Addr, error) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		r, err := lab.DialEcho(cctx, p.NS, dst)
		return r.Source, err
	}
	expect := func(nat bool, since string) {
		t.Helper()
		begin := time.Now()
		for _, p := range pods {
			n, _ := f.plan.Node(p.Node)
			want := p.IP
			if nat {
				want = n.Addr
			}
			err := pollUntil(ctx, 30*time.Second, func() error {
				got, err := seen(p)
				if err == nil && got != want {
					err = fmt.Errorf("%s saw %s from %s on %s, want %s (natOutgoing %v)", f.out.Name, got, p.Name, p.Node, want, nat)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("natOutgoing %v: every pod arrives from %s, %v after %s", nat,
			map[bool]string{true: "its node's address", false: "its own address"}[nat], time.Since(begin).Round(time.Millisecond), since)
	}
	setNAT := func(on bool) error {
		cc, err := f.l.CairnClient()
		if err != nil {
			return err
		}
		patch := fmt.Sprintf(`{"spec":{"natOutgoing":%v}}`, on)
		_, err = cc.CairnV1alpha1().IPPools().Patch(ctx, lab.PoolName, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		if err != nil {
			return fmt.Errorf("set natOutgoing %v on %s: %w", on, lab.PoolName, err)
		}
		return nil
	}
	t.Cleanup(func() {
		if err := setNAT(false); err != nil {
			t.Error(err)
		}
	})
	expect(false, "the first try")
	if err := setNAT(true); err != nil {
		t.Fatal(err)
	}
	expect(true, "the pool changed")
	if err := setNAT(false); err != nil {
		t.Fatal(err)
	}
	expect(false, "the pool changed")
}

// serviceFigures is how many Services measureServiceReachable creates.
const serviceFigures = 20

// measureServiceReachable creates serviceFigures Services of type
// LoadBalancer with no class, one after the other, and measures from the
// Create call to: the LoadBalancer IPAM controller's address in the
// Service's status; the first answer from outside1 on the ClusterIP
// (inside the always announced range: kube-proxy programming it is what is
// waited for); and the first answer on the LoadBalancer IP (the
// controller, the /32 announced by every node, and kube-proxy). Tries are
// 10 ms apart. The figures are reported, not asserted.
func (f *svcFixture) measureServiceReachable(t *testing.T) {
	for _, n := range f.plan.Nodes() {
		f.endpointPod(t, n.Name, "fig")
	}
	ctx := context.Background()
	var toAddr, toCluster, toLB []time.Duration
	for i := range serviceFigures {
		name := fmt.Sprintf("fig-%d", i)
		begin := time.Now()
		svc := f.service(t, name, "fig", plainLoadBalancer(corev1.ServiceExternalTrafficPolicyCluster))
		var wg sync.WaitGroup
		var errs [2]error
		var addressed, cluster, lb time.Duration
		try := func(addr netip.Addr) error {
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			_, err := lab.ReachEcho(rctx, f.out.NS, netip.AddrPortFrom(addr, servicePort), 10*time.Millisecond, 300*time.Millisecond)
			return err
		}
		vip := clusterIP(t, svc)
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs[0] = try(vip)
			cluster = time.Since(begin)
		}()
		go func() {
			defer wg.Done()
			ip, err := f.waitIngress(ctx, name, time.Minute)
			if addressed = time.Since(begin); err != nil {
				errs[1] = err
				return
			}
			errs[1] = try(ip)
			lb = time.Since(begin)
		}()
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("Service %s: %v", name, err)
			}
		}
		toAddr, toCluster, toLB = append(toAddr, addressed), append(toCluster, cluster), append(toLB, lb)
	}
	t.Logf("Service created -> LoadBalancer address in its status (the controller): %s", percentiles(toAddr))
	t.Logf("Service created -> ClusterIP answers %s: %s", f.out.Name, percentiles(toCluster))
	t.Logf("Service created -> LoadBalancer IP answers %s (controller in the loop): %s", f.out.Name, percentiles(toLB))
}

// percentiles formats p50, p99 (nearest rank) and max of ds.
func percentiles(ds []time.Duration) string {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	var all []string
	for _, d := range ds {
		all = append(all, d.Round(time.Millisecond).String())
	}
	return fmt.Sprintf("n=%d p50 %v p99 %v max %v (in order: %s)", len(s), rank(0.50).Round(time.Millisecond),
		rank(0.99).Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond), strings.Join(all, " "))
}

// outsideRouter is the router outside1 hangs off.
func (f *svcFixture) outsideRouter(t *testing.T) lab.RouterPlan {
	t.Helper()
	for _, r := range f.plan.Routers() {
		if r.Name == f.out.Router {
			return r
		}
	}
	t.Fatalf("no router %s", f.out.Router)
	return lab.RouterPlan{}
}

// pathsWanted are the next hops router r must hold, and may also hold,
// for a prefix that exactly nodes announce. Each node's own ToR must hold
// it via the node. Towards other racks a router holds what its eBGP
// neighbours pass on, which is only their best path: the spine holds one
// path per rack with an announcing node; a ToR holds the spine's path when
// no node of its own rack announces, and may hold it otherwise (when the
// spine's best path came from another rack).
func (f *svcFixture) pathsWanted(r lab.RouterPlan, nodes []lab.Node) (must, may []netip.Addr) {
	own := false
	for _, n := range nodes {
		rack, _ := f.plan.Rack(n.Rack)
		own = own || rack.ToR.Name == r.Name
	}
	for _, n := range nodes {
		via := expectedRouterNextHop(f.plan, r, n)
		rack, _ := f.plan.Rack(n.Rack)
		if rack.ToR.Name == r.Name || f.plan.Spine != nil && r.Name == f.plan.Spine.Name || !own {
			must = append(must, via)
		} else {
			may = append(may, via)
		}
	}
	return sortedUnique(must), sortedUnique(may)
}

// checkPaths says whether got holds every must and nothing beyond must
// and may.
func checkPaths(got, must, may []netip.Addr) bool {
	for _, a := range must {
		if !slices.Contains(got, a) {
			return false
		}
	}
	for _, a := range got {
		if !slices.Contains(must, a) && !slices.Contains(may, a) {
			return false
		}
	}
	return true
}

func sortedUnique(as []netip.Addr) []netip.Addr {
	s := slices.Clone(as)
	slices.SortFunc(s, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(s)
}

// routerPaths are the next hops of p in router r's BGP table.
func (f *svcFixture) routerPaths(ctx context.Context, r lab.RouterPlan, p netip.Prefix) ([]netip.Addr, error) {
	routes, err := f.l.RouterRoutes(ctx, r.Name)
	if err != nil {
		return nil, err
	}
	var hops []netip.Addr
	for _, rt := range routes {
		if rt.Prefix == p {
			hops = append(hops, rt.NextHop)
		}
	}
	return sortedUnique(hops), nil
}

// waitRouterPaths waits until every router's BGP table holds p via the
// paths towards nodes and via no other (none: p is gone everywhere; see
// pathsWanted), polling the routers back to back, and returns how long
// that took.
func (f *svcFixture) waitRouterPaths(ctx context.Context, p netip.Prefix, nodes []lab.Node, timeout time.Duration) (time.Duration, error) {
	begin := time.Now()
	err := pollUntil(ctx, timeout, func() error {
		for _, r := range f.plan.Routers() {
			got, err := f.routerPaths(ctx, r, p)
			if err != nil {
				return err
			}
			if must, may := f.pathsWanted(r, nodes); !checkPaths(got, must, may) {
				return fmt.Errorf("%s holds %s via %v, want via %v (and maybe %v)", r.Name, p, got, must, may)
			}
		}
		return nil
	})
	return time.Since(begin), err
}

// waitKernelECMP waits until router r's kernel routes p over the paths
// towards every one of nodes at once.
func (f *svcFixture) waitKernelECMP(ctx context.Context, r lab.RouterPlan, p netip.Prefix, nodes []lab.Node) error {
	want, _ := f.pathsWanted(r, nodes)
	return pollUntil(ctx, 30*time.Second, func() error {
		routes, err := lab.KernelRoutes(ctx, r.NS)
		if err != nil {
			return err
		}
		for _, rt := range routes {
			if rt.Dst != p.String() {
				continue
			}
			var got []netip.Addr
			for _, g := range rt.Gateways() {
				if a, err := netip.ParseAddr(g); err == nil {
					got = append(got, a)
				}
			}
			if got = sortedUnique(got); !slices.Equal(got, want) {
				return fmt.Errorf("%s's kernel routes %s via %v, want one route via %v", r.Name, p, got, want)
			}
			return nil
		}
		return fmt.Errorf("%s's kernel has no route for %s", r.Name, p)
	})
}

// pollStop ends pollUntil at once.
type pollStop struct{ error }

func stopPolling(err error) error { return pollStop{err} }

// pollUntil calls cond back to back (each call is a round trip to a router or
// the API server) until it returns nil, returns a stop error, or timeout
// passes; the error then carries cond's last word.
func pollUntil(ctx context.Context, timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if s, ok := err.(pollStop); ok {
			return s.error
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(5 * time.Millisecond) // polling routers and the API server: a short breath, not synchronisation
	}
}

// hostWide are settings kube-proxy writes unless told not to, read in the
// root namespace: conntrack's table size and hash size are the whole
// machine's, the others the root namespace's.
var hostWide = []string{
	"/proc/sys/net/netfilter/nf_conntrack_max",
	"/sys/module/nf_conntrack/parameters/hashsize",
	"/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established",
	"/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_close_wait",
	"/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal",
	"/proc/sys/net/netfilter/nf_conntrack_udp_timeout",
	"/proc/sys/net/netfilter/nf_conntrack_udp_timeout_stream",
	"/proc/sys/net/ipv4/conf/all/route_localnet",
	"/proc/sys/net/bridge/bridge-nf-call-iptables",
	"/run/xtables.lock", // iptables' lock: kube-proxy's clean-up of iptables rules could create it
}

// hostSnapshot reads hostWide and the root namespace's nftables ruleset.
func hostSnapshot(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, path := range hostWide {
		data, err := os.ReadFile(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			out[path] = "(absent)"
		case err != nil:
			out[path] = "(unreadable: " + err.Error() + ")"
		default:
			out[path] = strings.TrimSpace(string(data))
		}
	}
	rules, err := exec.Command("nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list ruleset in the root namespace: %v: %s", err, rules)
	}
	out["nft ruleset of the root namespace"] = string(rules)
	return out
}

// checkHostUntouched: every node's namespace has kube-proxy's nftables
// tables (so kube-proxy did run there), and nothing of hostWide nor the
// root namespace's ruleset differs from before the lab came up.
func (f *svcFixture) checkHostUntouched(t *testing.T) {
	for _, n := range f.plan.Nodes() {
		out, err := f.l.Output(context.Background(), n.Name, "nft", "list", "tables")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), "table ip kube-proxy") {
			t.Errorf("%s has no kube-proxy table: %s", n.Name, out)
		}
	}
	after := hostSnapshot(t)
	for k, v := range f.hostBefore {
		if after[k] != v {
			t.Errorf("%s changed while the lab ran: %q before, %q now", k, v, after[k])
		}
	}
	t.Logf("unchanged: %d host-wide settings and the root namespace's nftables ruleset", len(hostWide))
}
