package lab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cairn-net/cairn/internal/controlplane/cptest"
	"github.com/cairn-net/cairn/internal/testenv"
)

// TestRealNodes brings up two real nodes (containerd and a kubelet each,
// Cairn from the lab overlay) with two pods each and checks what the mode
// promises: Nodes Ready with the pinned kubelet, an agent pod Ready on each,
// pods running with pool addresses that reach each other across nodes
// through the names the lab gives their namespaces, kubectl logs, a pod
// deleted through the API gone with its name; the host's kernel settings
// and mounts untouched while the nodes run; and Down (twice) leaving no
// namespace, cgroup, mount or process behind.
func TestRealNodes(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.NetNS, testenv.Binary("ip"), testenv.Binary("bird"),
		cptest.Binaries(), testenv.Check("what real nodes need", RealNodeTools))
	base, err := os.MkdirTemp("", "cairn-lab-real-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	dir := filepath.Join(base, "lab")
	hostBefore := hostKernelSettings(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const instance = "realtest"
	t.Cleanup(func() { checkRealLabGone(t, dir, instance, hostBefore) })
	l, err := Up(ctx, Options{
		StateDir: dir, NodesPerRack: 2, PodsPerNode: 2, Kubelet: true, Instance: instance, Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("up in %v: %+v", l.Timings.Total, l.Timings.PodStart)

	c, err := l.clients()
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := c.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		if !nodeReady(&n) || n.Status.NodeInfo.KubeletVersion != "v1.37.2" {
			t.Errorf("node %s: ready %v, kubelet %q, want Ready and v1.37.2", n.Name, nodeReady(&n), n.Status.NodeInfo.KubeletVersion)
		}
	}
	agents, err := l.agentPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range l.Plan().Nodes() {
		if p := agents[n.Name]; p == nil || !podReady(p) {
			t.Errorf("no Ready cairn-node pod on %s: %v", n.Name, p)
		}
	}
	pods := l.Pods()
	if len(pods) != 4 {
		t.Fatalf("%d pods, want 4: %+v", len(pods), pods)
	}
	checkHostUnchanged(t, dir, hostBefore)
	from, to := pods[0], pods[len(pods)-1]
	if from.Node == to.Node {
		t.Fatalf("pods %s and %s are on the same node", from.Name, to.Name)
	}
	if out, err := l.Output(ctx, from.Name, "ping", "-c", "1", "-W", "5", to.IP.String()); err != nil {
		t.Errorf("%s (%s) cannot reach %s (%s) across nodes: %v\n%s", from.Name, from.IP, to.Name, to.IP, err, out)
	}
	var logs strings.Builder
	if code, err := l.Kubectl(ctx, []string{"logs", from.Name}, Stdio{Out: &logs, Err: &logs}); err != nil || code != 0 || !strings.Contains(logs.String(), "serving") {
		t.Errorf("kubectl logs %s: code %d, %v: %q", from.Name, code, err, logs.String())
	}
	if err := l.DelPod(ctx, to.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(NSPath(to.NS)); err == nil {
		t.Errorf("the name %s of deleted pod %s's namespace is still there", to.NS, to.Name)
	}
}

// hostKernelSettings reads the settings the kubelet checks, on the host.
func hostKernelSettings(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, c := range kubeletSysctls {
		data, err := os.ReadFile(sysctlPath(c.Key))
		if err != nil {
			t.Fatal(err)
		}
		out[c.Key] = strings.TrimSpace(string(data))
	}
	return out
}

// checkHostUnchanged: the host's kernel settings are as before, and no
// mount of the host's mount namespace involves the lab's directory (the
// nodes' bind mounts, overlays and volumes live in their own).
func checkHostUnchanged(t *testing.T, dir string, before map[string]string) {
	t.Helper()
	for k, v := range hostKernelSettings(t) {
		if before[k] != v {
			t.Errorf("host %s changed: %q before, %q now", k, before[k], v)
		}
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, dir) {
			t.Errorf("the host sees a mount of the lab: %s", line)
		}
	}
}

// checkRealLabGone runs Down twice, then looks for anything left: the
// instance's namespaces and cgroups, a process whose command line names
// the lab's directory.
func checkRealLabGone(t *testing.T, dir, instance string, hostBefore map[string]string) {
	for i := 0; i < 2; i++ {
		if err := Down(context.Background(), dir, t.Logf); err != nil {
			t.Errorf("down #%d: %v", i+1, err)
		}
	}
	prefix := NSPrefix + instance + "-"
	names, err := labNamespaces(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range names {
		if strings.HasPrefix(ns, prefix) {
			t.Errorf("namespace %s survived Down", ns)
		}
	}
	cgroups, err := nodeCgroupsOnMachine()
	if err != nil {
		t.Fatal(err)
	}
	for _, cg := range cgroups {
		if strings.HasPrefix(cg, "/"+prefix) {
			t.Errorf("cgroup %s survived Down", cg)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(data), dir) {
			t.Errorf("%s survived Down: %s", filepath.Dir(p), strings.ReplaceAll(string(data), "\x00", " "))
		}
	}
	checkHostUnchanged(t, dir, hostBefore)
}
