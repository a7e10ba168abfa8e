package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cairn-net/cairn/internal/controlplane"
	"github.com/cairn-net/cairn/internal/images"
	"github.com/cairn-net/cairn/internal/lab"
	"github.com/cairn-net/cairn/internal/testenv"
	"github.com/cairn-net/cairn/internal/workload"
)

// realNodesInstance keeps this test's lab apart from the other tests'.
const realNodesInstance = "e2ekl"

// What the test creates with kubectl, besides the lab's own pods.
const (
	webReplicas  = 6 // two per node
	webPort      = 7000
	hostPort     = 17000
	agentNS      = lab.AgentNamespace
	agentDS      = "daemonset/cairn-node"
	agentLabel   = "app=cairn-node"
	kubectlWait  = "3m"
	workloadPath = "/workload"
)

// TestRealNodes is issue 11's end-to-end test: three real nodes
// (containerd and a kubelet each) behind a BIRD ToR, Cairn installed by
// `kubectl apply -k deploy/overlays/lab`, workloads created and used with
// kubectl as users do; then the DaemonSet restarted under traffic; then
// every pod deleted and every address released.
func TestRealNodes(t *testing.T) {
	requireLab(t, lab.RouterBIRD)
	testenv.Require(t, testenv.Check("what real nodes need", lab.RealNodeTools))
	l := upLab(t, lab.Options{Kubelet: true, NodesPerRack: 3, PodsPerNode: 1, Router: lab.RouterBIRD, Instance: realNodesInstance})
	f := &realFixture{l: l, nodes: l.Plan().Nodes()}
	if !t.Run("Cairn installed by kubectl apply -k, Ready on every node", f.checkInstalled) {
		return
	}
	if !t.Run("workloads created with kubectl run", f.createWorkloads) {
		return
	}
	t.Run("every pod reaches every other with its own address", f.checkPodToPod)
	t.Run("two containers of a pod talk over localhost", f.checkLocalhost)
	t.Run("hostPort through the chained portmap", f.checkHostPort)
	t.Run("a ClusterIP Service with endpoints on other nodes", f.checkClusterIP)
	t.Run("kubectl logs", f.checkLogs)
	t.Run("rollout restart of the DaemonSet under traffic", f.checkRolloutRestart)
	t.Run("kubectl delete releases every address", f.checkDeleteReleases)
}

type realFixture struct {
	l     *lab.Lab
	nodes []lab.Node
}

func (f *realFixture) ctx(t *testing.T, timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// kubectl runs the lab's kubectl with stdin and returns its stdout,
// failing the test on a non-zero exit.
func (f *realFixture) kubectl(t *testing.T, ctx context.Context, stdin string, args ...string) string {
	t.Helper()
	out, errOut, code := f.kubectlCode(t, ctx, stdin, args...)
	if code != 0 {
		t.Fatalf("kubectl %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func (f *realFixture) kubectlCode(t *testing.T, ctx context.Context, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	io := lab.Stdio{Out: &out, Err: &errOut}
	if stdin != "" {
		io.In = strings.NewReader(stdin)
	}
	code, err := f.l.Kubectl(ctx, args, io)
	if err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), code
}

// probe runs the workload's probe in a container with kubectl exec and
// returns what it found (it prints its result even when it fails).
func (f *realFixture) probe(t *testing.T, ctx context.Context, pod, container string, args ...string) workload.ProbeResult {
	t.Helper()
	res, err := f.tryProbe(ctx, pod, container, args...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// tryProbe is probe for goroutines other than the test's.
func (f *realFixture) tryProbe(ctx context.Context, pod, container string, args ...string) (workload.ProbeResult, error) {
	argv := []string{"exec", pod}
	if container != "" {
		argv = append(argv, "-c", container)
	}
	argv = append(append(argv, "--", workloadPath, "probe"), args...)
	var out, errOut bytes.Buffer
	code, err := f.l.Kubectl(ctx, argv, lab.Stdio{Out: &out, Err: &errOut})
	var res workload.ProbeResult
	if err == nil {
		err = json.Unmarshal(out.Bytes(), &res)
	}
	if err != nil {
		return res, fmt.Errorf("kubectl %s: exit %d, no result (%w)\n%s%s", strings.Join(argv, " "), code, err, out.String(), errOut.String())
	}
	return res, nil
}

// checkInstalled: the DaemonSet was applied by kubectl (server-side apply
// of the overlay), runs a Ready pod on every node, and its init container
// installed the base's conflist unchanged; kube-proxy runs on every node.
func (f *realFixture) checkInstalled(t *testing.T) {
	ctx := f.ctx(t, 2*time.Minute)
	kube, err := f.l.KubeClient()
	if err != nil {
		t.Fatal(err)
	}
	ds, err := kube.AppsV1().DaemonSets(agentNS).Get(ctx, "cairn-node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !appliedByKubectl(ds) {
		t.Errorf("DaemonSet cairn-node was not applied by kubectl: managed fields %+v", ds.ManagedFields)
	}
	if want := images.CairnSpec().Ref(images.DefaultTag); ds.Spec.Template.Spec.Containers[0].Image != want {
		t.Errorf("DaemonSet image %s, want the overlay's %s", ds.Spec.Template.Spec.Containers[0].Image, want)
	}
	agents := f.agentPods(t, ctx)
	for _, n := range f.nodes {
		if p, ok := agents[n.Name]; !ok || !podIsReady(p) {
			t.Errorf("no Ready cairn-node pod on %s", n.Name)
		}
	}
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(root + "/deploy/node/10-cairn.conflist")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range f.nodes {
		path, err := f.l.NodeFile(n.Name, "/etc/cni/net.d/10-cairn.conflist")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s's /etc/cni/net.d/10-cairn.conflist (%v):\n%s\nwant deploy/node/10-cairn.conflist as it is:\n%s", n.Name, err, got, want)
		}
	}
	st, err := f.l.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range st.Nodes {
		if !strings.HasPrefix(n.KubeProxy, "running") {
			t.Errorf("kube-proxy on %s: %s", n.Node.Name, n.KubeProxy)
		}
	}
}

// appliedByKubectl: some field of the object is owned by kubectl through
// an apply (client- or server-side).
func appliedByKubectl(o metav1.Object) bool {
	return slices.ContainsFunc(o.GetManagedFields(), func(m metav1.ManagedFieldsEntry) bool {
		return strings.HasPrefix(m.Manager, "kubectl") && (m.Operation == metav1.ManagedFieldsOperationApply || m.Manager == "kubectl-client-side-apply")
	})
}

// agentPods are the DaemonSet's live pods by node.
func (f *realFixture) agentPods(t *testing.T, ctx context.Context) map[string]*corev1.Pod {
	t.Helper()
	kube, err := f.l.KubeClient()
	if err != nil {
		t.Fatal(err)
	}
	list, err := kube.CoreV1().Pods(agentNS).List(ctx, metav1.ListOptions{LabelSelector: agentLabel})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*corev1.Pod{}
	for i := range list.Items {
		if p := &list.Items[i]; p.DeletionTimestamp == nil {
			out[p.Spec.NodeName] = p
		}
	}
	return out
}

func podIsReady(p *corev1.Pod) bool {
	return slices.ContainsFunc(p.Status.Conditions, func(c corev1.PodCondition) bool {
		return c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue
	})
}

// workloads is what a user would apply: a Deployment of the test workload
// spread evenly over the nodes, a pod of two containers (the second serves
// only HTTP on loopback, so an answer on TCP 7000 can only come from the
// first), and a pod with a hostPort on the second node.
func (f *realFixture) workloads() string {
	image := images.WorkloadSpec().Ref(images.DefaultTag)
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: %[1]d
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      enableServiceLinks: false
      terminationGracePeriodSeconds: 1
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: web}}}
      containers:
      - {name: app, image: %[2]s, imagePullPolicy: Never, ports: [{containerPort: %[3]d}]}
---
apiVersion: v1
kind: Pod
metadata: {name: duo}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: server, image: %[2]s, imagePullPolicy: Never}
  - {name: client, image: %[2]s, imagePullPolicy: Never, args: [serve, --tcp=, --udp=, --http=127.0.0.1:8081]}
---
apiVersion: v1
kind: Pod
metadata: {name: hp}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: %[4]s}
  containers:
  - {name: app, image: %[2]s, imagePullPolicy: Never, ports: [{containerPort: %[3]d, hostPort: %[5]d}]}
`, webReplicas, image, webPort, f.nodes[1].Name, hostPort)
}

// createWorkloads applies workloads and waits until every pod runs; the
// Deployment's pods must be spread two per node.
func (f *realFixture) createWorkloads(t *testing.T) {
	ctx := f.ctx(t, 5*time.Minute)
	begin := time.Now()
	f.kubectl(t, ctx, f.workloads(), "apply", "-f", "-")
	f.kubectl(t, ctx, "", "rollout", "status", "deployment/web", "--timeout="+kubectlWait)
	f.kubectl(t, ctx, "", "wait", "--for=condition=Ready", "pod/duo", "pod/hp", "--timeout="+kubectlWait)
	t.Logf("%d Deployment pods and 2 pods Ready %v after kubectl apply", webReplicas, time.Since(begin).Round(time.Millisecond))
	perNode := map[string]int{}
	for _, p := range f.webPods(t, ctx) {
		perNode[p.Spec.NodeName]++
	}
	for _, n := range f.nodes {
		if perNode[n.Name] != webReplicas/len(f.nodes) {
			t.Errorf("Deployment pods per node %v, want %d on each node", perNode, webReplicas/len(f.nodes))
			break
		}
	}
}

// webPods are the Deployment's running pods, by name.
func (f *realFixture) webPods(t *testing.T, ctx context.Context) []corev1.Pod {
	t.Helper()
	kube, err := f.l.KubeClient()
	if err != nil {
		t.Fatal(err)
	}
	list, err := kube.CoreV1().Pods(lab.PodNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && p.Status.PodIP != "" {
			out = append(out, p)
		}
	}
	if len(out) != webReplicas {
		t.Fatalf("%d running Deployment pods, want %d", len(out), webReplicas)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// checkPodToPod: from every Deployment pod, kubectl exec a TCP probe to
// every other; the server must answer, and must have seen the prober's
// own pod address (no NAT). One UDP and one HTTP probe per pod, to a pod
// on the next node, too.
func (f *realFixture) checkPodToPod(t *testing.T) {
	ctx := f.ctx(t, 5*time.Minute)
	pods := f.webPods(t, ctx)
	type pair struct {
		from, to corev1.Pod
		proto    string
	}
	var pairs []pair
	for i, from := range pods {
		for j, to := range pods {
			if i != j {
				pairs = append(pairs, pair{from, to, "tcp"})
			}
		}
		k := slices.IndexFunc(pods, func(p corev1.Pod) bool { return p.Spec.NodeName != from.Spec.NodeName })
		pairs = append(pairs, pair{from, pods[k], "udp"}, pair{from, pods[k], "http"})
	}
	begin := time.Now()
	var mu sync.Mutex
	var failed []string
	crossNode := 0
	work := make(chan pair)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				port := webPort
				if p.proto == "http" {
					port = 8080
				}
				res, err := f.tryProbe(ctx, p.from.Name, "", "--proto", p.proto, "--to", fmt.Sprintf("%s:%d", p.to.Status.PodIP, port), "--count", "3")
				ok := err == nil && res.OK() && res.Local == p.from.Status.PodIP && slices.Equal(res.Hosts, []string{p.to.Name})
				mu.Lock()
				if !ok {
					failed = append(failed, fmt.Sprintf("%s (%s, %s) -> %s (%s, %s) %s: %+v", p.from.Name, p.from.Status.PodIP, p.from.Spec.NodeName,
						p.to.Name, p.to.Status.PodIP, p.to.Spec.NodeName, p.proto, probeFailure(res, err)))
				}
				if p.from.Spec.NodeName != p.to.Spec.NodeName {
					crossNode++
				}
				mu.Unlock()
			}
		}()
	}
	for _, p := range pairs {
		work <- p
	}
	close(work)
	wg.Wait()
	t.Logf("%d probes with kubectl exec (%d across nodes) in %v", len(pairs), crossNode, time.Since(begin).Round(time.Millisecond))
	for _, s := range failed {
		t.Errorf("not answered with the prober's own address: %s", s)
	}
}

// probeFailure says why a probe failed: its error, or what it found.
func probeFailure(res workload.ProbeResult, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%+v", res)
}

// checkLocalhost: each container of pod duo reaches the other on
// 127.0.0.1.
func (f *realFixture) checkLocalhost(t *testing.T) {
	ctx := f.ctx(t, time.Minute)
	for _, c := range []struct{ from, proto, to string }{
		{"client", "tcp", fmt.Sprintf("127.0.0.1:%d", webPort)},
		{"server", "http", "127.0.0.1:8081"},
	} {
		res := f.probe(t, ctx, "duo", c.from, "--proto", c.proto, "--to", c.to)
		if !res.OK() || res.Local != "127.0.0.1" || !slices.Equal(res.Hosts, []string{"duo"}) {
			t.Errorf("container %s of duo -> %s %s: %+v", c.from, c.proto, c.to, res)
		}
	}
}

// checkHostPort: a pod on another node reaches pod hp through its node's
// address and hostPort, and hp sees the prober's own address.
func (f *realFixture) checkHostPort(t *testing.T) {
	ctx := f.ctx(t, time.Minute)
	from := f.podOn(t, ctx, f.nodes[0].Name)
	res := f.probe(t, ctx, from.Name, "", "--to", fmt.Sprintf("%s:%d", f.nodes[1].Addr, hostPort), "--count", "3")
	if !res.OK() || res.Local != from.Status.PodIP || !slices.Equal(res.Hosts, []string{"hp"}) {
		t.Errorf("%s (%s) -> %s:%d, hostPort of hp: %+v", from.Name, from.Spec.NodeName, f.nodes[1].Addr, hostPort, res)
	}
}

// podOn is a Deployment pod on node.
func (f *realFixture) podOn(t *testing.T, ctx context.Context, node string) corev1.Pod {
	t.Helper()
	for _, p := range f.webPods(t, ctx) {
		if p.Spec.NodeName == node {
			return p
		}
	}
	t.Fatalf("no Deployment pod on %s", node)
	return corev1.Pod{}
}

// checkClusterIP: a Service whose endpoints are only the Deployment's pods
// on the other nodes; a pod on the first node reaches it by its cluster
// IP (kube-proxy on the real node translates, Cairn routes), through pods
// on both other nodes, and they see its own address.
func (f *realFixture) checkClusterIP(t *testing.T) {
	ctx := f.ctx(t, 3*time.Minute)
	client := f.podOn(t, ctx, f.nodes[0].Name)
	var remote []string
	remoteNodes := map[string]string{}
	for _, p := range f.webPods(t, ctx) {
		if p.Spec.NodeName != client.Spec.NodeName {
			remote = append(remote, p.Name)
			remoteNodes[p.Name] = p.Spec.NodeName
		}
	}
	f.kubectl(t, ctx, "", append([]string{"label", "pod", "--overwrite"}, append(remote, "reach=remote")...)...)
	f.kubectl(t, ctx, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: web-remote}
spec:
  selector: {app: web, reach: remote}
  ports: [{port: 80, targetPort: %d, protocol: TCP}]
`, webPort), "apply", "-f", "-")
	ip := strings.TrimSpace(f.kubectl(t, ctx, "", "get", "service", "web-remote", "-o", "jsonpath={.spec.clusterIP}"))
	if _, err := netip.ParseAddr(ip); err != nil {
		t.Fatalf("Service web-remote has no cluster IP: %q", ip)
	}
	// kube-proxy programs the Service once it sees its EndpointSlice.
	begin := time.Now()
	var res workload.ProbeResult
	var perr error
	err := waitUntil(time.Minute, func() bool {
		res, perr = f.tryProbe(ctx, client.Name, "", "--to", ip+":80", "--count", "1", "--timeout", "1s")
		return perr == nil && res.OK()
	})
	if err != nil {
		t.Fatalf("%s cannot reach Service web-remote at %s: %s", client.Name, ip, probeFailure(res, perr))
	}
	t.Logf("Service web-remote (%s) answered %v after it was created", ip, time.Since(begin).Round(time.Millisecond))
	res = f.probe(t, ctx, client.Name, "", "--to", ip+":80", "--count", "24")
	reached := map[string]bool{}
	for _, h := range res.Hosts {
		if remoteNodes[h] == "" {
			t.Errorf("Service web-remote answered by %s, not one of its endpoints %v", h, remote)
		}
		reached[remoteNodes[h]] = true
	}
	if !res.OK() || res.Local != client.Status.PodIP || len(reached) != len(f.nodes)-1 {
		t.Errorf("%s (%s) -> Service %s:80, endpoints on the other nodes: %+v (nodes reached %v)", client.Name, client.Spec.NodeName, ip, res, reached)
	}
}

// checkLogs: kubectl logs reads a Deployment pod's and a second
// container's log through the kubelets.
func (f *realFixture) checkLogs(t *testing.T) {
	ctx := f.ctx(t, time.Minute)
	for _, p := range f.webPods(t, ctx)[:len(f.nodes)] {
		if out := f.kubectl(t, ctx, "", "logs", p.Name); !strings.Contains(out, "msg=serving host="+p.Name) {
			t.Errorf("kubectl logs %s on %s: %q", p.Name, p.Spec.NodeName, out)
		}
	}
	if out := f.kubectl(t, ctx, "", "logs", "duo", "-c", "client"); !strings.Contains(out, "http=127.0.0.1:8081") {
		t.Errorf("kubectl logs duo -c client: %q", out)
	}
}

// checkRolloutRestart is issue 11's second must-show: `kubectl rollout
// restart daemonset/cairn-node` while pods on different nodes ping each
// other at 100 packets per second. Not one packet may be lost, no pod's
// address may change, and no route may change in the ToR's kernel (where
// BIRD installs what the nodes announce) nor in the nodes'; every agent
// pod must have been replaced, and each node's session with the ToR
// restarted.
func (f *realFixture) checkRolloutRestart(t *testing.T) {
	ctx := f.ctx(t, 10*time.Minute)
	before := f.agentPods(t, ctx)
	addrs := podAddresses(t, f.l)
	apiAddrs := f.podIPs(t, ctx)
	tor := f.l.Plan().Racks[0].ToR
	sessions := map[string]string{}
	for _, n := range f.nodes {
		sessions[n.Name] = routerSessionLine(t, f.l, tor, n.Name)
	}
	hosts := monitoredHosts(f.l.Plan())
	mons := startMonitors(t, hosts, 3)
	pingers := f.startPingersBetweenNodes(t)

	begin := time.Now()
	f.kubectl(t, ctx, "", "-n", agentNS, "rollout", "restart", agentDS)
	f.kubectl(t, ctx, "", "-n", agentNS, "rollout", "status", agentDS, "--timeout=5m")
	rollout := time.Since(begin)
	if err := f.l.WaitConverged(ctx, 2*time.Minute); err != nil {
		t.Fatalf("after the rollout: %v", err)
	}
	t.Logf("rollout restart of %s on %d nodes: rollout status done after %v, converged after %v",
		agentDS, len(f.nodes), rollout.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))

	after := f.agentPods(t, ctx)
	for _, n := range f.nodes {
		old, cur := before[n.Name], after[n.Name]
		switch {
		case cur == nil || !podIsReady(cur):
			t.Errorf("no Ready cairn-node pod on %s after the rollout", n.Name)
		case old != nil && old.UID == cur.UID:
			t.Errorf("cairn-node pod %s on %s was not replaced by the rollout", cur.Name, n.Name)
		}
	}
	// Each node's session with the ToR went down and came back (its
	// "since" moved): the ToR kept the routes through graceful restart,
	// not because the session never dropped.
	for _, n := range f.nodes {
		now := routerSessionLine(t, f.l, tor, n.Name)
		t.Logf("%s's session at %s: before %q, after %q", n.Name, tor.Name, sessions[n.Name], now)
		if !strings.HasSuffix(now, "Established") || now == sessions[n.Name] {
			t.Errorf("%s's session at %s: %q before the rollout, %q after; want it restarted and Established", n.Name, tor.Name, sessions[n.Name], now)
		}
	}
	for _, p := range pingers {
		st := p.stop(t)
		t.Logf("%s: %d sent in %v (%.0f/s), %d lost%s", p.name, st.sent, st.took.Round(time.Second), float64(st.sent)/st.took.Seconds(),
			len(st.missing), formatSeqs(st.missing))
		if rate := float64(st.sent) / st.took.Seconds(); rate < 90 {
			t.Errorf("%s: %.0f packets per second, want 100", p.name, rate)
		}
		if len(st.missing) > 0 {
			t.Errorf("%s: %d of %d packets lost during the rollout", p.name, len(st.missing), st.sent)
		}
	}
	events := stopMonitors(t, hosts, mons, 3)
	for _, h := range hosts {
		changes, kernel := splitKernelEvents(events[h.name])
		t.Logf("%s: %d route changes during the rollout%s", h.name, len(changes), formatEvents(changes))
		if len(kernel) > 0 {
			t.Logf("%s: and %d of the kernel's own address routes:%s", h.name, len(kernel), formatEvents(kernel))
		}
		if len(changes) > 0 {
			t.Errorf("%s: %d route changes while the DaemonSet rolled", h.name, len(changes))
		}
	}
	if now := podAddresses(t, f.l); !maps2Equal(addrs, now) {
		t.Errorf("lab pods' addresses changed:\nbefore %v\nafter  %v", addrs, now)
	}
	if now := f.podIPs(t, ctx); !maps2Equal(apiAddrs, now) {
		t.Errorf("pod addresses in the API changed:\nbefore %v\nafter  %v", apiAddrs, now)
	}
}

// podIPs are the addresses of every pod with one of its own, by
// namespace/name, as the API has them.
func (f *realFixture) podIPs(t *testing.T, ctx context.Context) map[string]string {
	t.Helper()
	kube, err := f.l.KubeClient()
	if err != nil {
		t.Fatal(err)
	}
	list, err := kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range list.Items {
		if !p.Spec.HostNetwork {
			out[p.Namespace+"/"+p.Name] = p.Status.PodIP
		}
	}
	return out
}

// startPingersBetweenNodes pings, at 100 packets per second, between the
// lab's pods of every two nodes, and waits for a first reply of each.
func (f *realFixture) startPingersBetweenNodes(t *testing.T) []*pinger {
	t.Helper()
	pods := f.l.Pods()
	var out []*pinger
	for i, from := range pods {
		for _, to := range pods[i+1:] {
			if to.Node != from.Node {
				out = append(out, startPinger(t, from, to))
			}
		}
	}
	if len(out) < len(f.nodes) {
		t.Fatalf("%d pairs of pods on different nodes, want %d: %+v", len(out), len(f.nodes), pods)
	}
	for _, p := range out {
		if err := waitUntil(30*time.Second, func() bool { return p.received() > 0 }); err != nil {
			t.Fatalf("%s: no reply within 30s", p.name)
		}
	}
	return out
}

// checkDeleteReleases deletes every pod with kubectl (the Deployment, its
// pods with it, and the others) and checks that IPAM then holds no
// address and `cairnctl ipam check`, run against the lab's API server,
// finds nothing wrong.
func (f *realFixture) checkDeleteReleases(t *testing.T) {
	ctx := f.ctx(t, 5*time.Minute)
	held := f.allocations(t, ctx)
	if len(held) < webReplicas+2+len(f.nodes) {
		t.Fatalf("IPAM holds %d addresses before the deletion, want at least %d: %v", len(held), webReplicas+2+len(f.nodes), held)
	}
	begin := time.Now()
	f.kubectl(t, ctx, "", "delete", "deployment/web", "--cascade=foreground", "--timeout="+kubectlWait)
	f.kubectl(t, ctx, "", "delete", "pods", "--all", "--timeout="+kubectlWait)
	deleted := time.Since(begin)
	if err := waitUntil(time.Minute, func() bool { held = f.allocations(t, ctx); return len(held) == 0 }); err != nil {
		t.Fatalf("%v after kubectl delete, IPAM still holds %v", time.Since(begin).Round(time.Second), held)
	}
	t.Logf("kubectl delete of %d pods returned after %v; IPAM empty after %v", webReplicas+2+len(f.nodes), deleted.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))
	bin := buildCairnctl(t, requireLab(t, lab.RouterBIRD))
	var out, errOut bytes.Buffer
	code, err := f.l.Exec(ctx, "cp", []string{bin, "--kubeconfig", f.l.ControlPlane().Kubeconfig, "ipam", "check"}, lab.Stdio{Out: &out, Err: &errOut})
	if err != nil || code != 0 {
		t.Errorf("cairnctl ipam check: exit %d, %v\n%s%s", code, err, out.String(), errOut.String())
	}
	t.Logf("cairnctl ipam check:\n%s", out.String())
	for _, p := range f.l.Pods() {
		if err := f.l.DelPod(ctx, p.Name); err != nil {
			t.Errorf("forget deleted pod %s: %v", p.Name, err)
		}
	}
}

// allocations lists every address IPAM holds, with its owner.
func (f *realFixture) allocations(t *testing.T, ctx context.Context) []string {
	t.Helper()
	cc, err := f.l.CairnClient()
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := cc.CairnV1alpha1().IPAMBlocks().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range blocks.Items {
		for _, a := range b.Spec.Allocations {
			out = append(out, fmt.Sprintf("%s#%d %s/%s", b.Spec.CIDR, a.Ordinal, a.Namespace, a.Pod))
		}
	}
	return out
}
