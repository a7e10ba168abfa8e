package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Pods on real nodes are Kubernetes pods: created through the API, placed
// by the scheduler, started by the kubelet, wired by cairn-cni as
// containerd calls it. Once one runs, the lab names its network namespace
// in /run/netns (`ip netns attach`) as it names a fast-mode pod's, so
// exec, status and the tests reach both kinds of pod the same way.

// realPodTimeout bounds the wait for pods to run.
const realPodTimeout = 3 * time.Minute

// podWaitingFatal are container waiting reasons no wait cures.
var podWaitingFatal = map[string]bool{
	"ErrImageNeverPull": true, "InvalidImageName": true, "CreateContainerConfigError": true,
	"CreateContainerError": true, "CrashLoopBackOff": true, "RunContainerError": true,
}

// realPodObject is a lab pod for a real node: the scheduler places it by
// the node's hostname label, and its image is never pulled (nodes have no
// registry; the lab imported it).
func realPodObject(name, node, image string) *corev1.Pod {
	no := false
	grace := int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: PodNamespace, Labels: map[string]string{LabLabel: "true"}},
		Spec: corev1.PodSpec{
			NodeSelector:                  map[string]string{corev1.LabelHostname: node},
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name: "app", Image: image, ImagePullPolicy: corev1.PullNever,
			}},
		},
	}
}

// addRealPods creates perNode pods on every named node at once, waits
// until all run, and names their network namespaces. It returns the pods
// and, for each, the time from its creation to the lab seeing it Running
// with an address.
func (l *Lab) addRealPods(ctx context.Context, nodes []string, perNode int) ([]Pod, []time.Duration, error) {
	image := l.st.Images[imageWorkload]
	if image == "" {
		return nil, nil, errors.New("no workload image was imported into the nodes")
	}
	var pods []Pod
	for _, node := range nodes {
		if _, ok := l.st.Plan.Node(node); !ok {
			return nil, nil, fmt.Errorf("no node %q in the lab", node)
		}
		for i := 0; i < perNode; i++ {
			l.st.PodSeq[node]++
			name := fmt.Sprintf("pod-%s-%d", node, l.st.PodSeq[node])
			pod := Pod{Name: name, Namespace: PodNamespace, Node: node, NS: l.st.Plan.Prefix + name}
			pod.NetnsPath = NSPath(pod.NS)
			pods = append(pods, pod)
			// Recorded before anything exists: Down deletes the name
			// if it comes to exist.
			l.st.Namespaces = append(l.st.Namespaces, pod.NS)
			l.st.Pods = append(l.st.Pods, pod)
		}
	}
	if err := l.st.save(); err != nil {
		return nil, nil, err
	}
	created := map[string]time.Time{}
	for _, p := range pods {
		if _, err := l.c.kube.CoreV1().Pods(PodNamespace).Create(ctx, realPodObject(p.Name, p.Node, image), metav1.CreateOptions{}); err != nil {
			return nil, nil, fmt.Errorf("create Pod %s: %w", p.Name, err)
		}
		created[p.Name] = time.Now()
	}
	running, err := l.waitPodsRunning(ctx, pods, created)
	if err != nil {
		return nil, nil, err
	}
	var took []time.Duration
	for i := range pods {
		obj := running[pods[i].Name]
		took = append(took, obj.seen.Sub(created[pods[i].Name]))
		if err := l.namePodNetns(ctx, &pods[i], obj.pod); err != nil {
			return nil, nil, err
		}
		l.setPod(pods[i])
	}
	return pods, took, l.st.save()
}

type seenPod struct {
	pod  *corev1.Pod
	seen time.Time
}

// waitPodsRunning polls the pods until every one runs with an address,
// noting when each was first seen so.
func (l *Lab) waitPodsRunning(ctx context.Context, pods []Pod, created map[string]time.Time) (map[string]seenPod, error) {
	want := map[string]bool{}
	for _, p := range pods {
		want[p.Name] = true
	}
	running := map[string]seenPod{}
	err := until(ctx, realPodTimeout, 50*time.Millisecond, fmt.Sprintf("%d pods to run", len(pods)), func(ctx context.Context) (bool, error) {
		list, err := l.c.kube.CoreV1().Pods(PodNamespace).List(ctx, metav1.ListOptions{LabelSelector: LabLabel + "=true"})
		if err != nil {
			return false, err
		}
		now := time.Now()
		var waiting []string
		for i := range list.Items {
			obj := &list.Items[i]
			if !want[obj.Name] {
				continue
			}
			if _, done := running[obj.Name]; done {
				continue
			}
			if err := podFailed(obj); err != nil {
				return false, stopWaiting(err)
			}
			if obj.Status.Phase == corev1.PodRunning && obj.Status.PodIP != "" && appContainerID(obj) != "" {
				running[obj.Name] = seenPod{pod: obj.DeepCopy(), seen: now}
				continue
			}
			waiting = append(waiting, obj.Name+" ("+podState(obj)+")")
		}
		if len(running) == len(want) {
			return true, nil
		}
		sort.Strings(waiting)
		return false, fmt.Errorf("%d of %d running; waiting: %s", len(running), len(want), strings.Join(waiting, ", "))
	})
	return running, err
}

// podFailed says why a pod will never run, or nil.
func podFailed(p *corev1.Pod) error {
	if p.Status.Phase == corev1.PodFailed {
		return fmt.Errorf("pod %s failed: %s %s", p.Name, p.Status.Reason, p.Status.Message)
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && podWaitingFatal[w.Reason] {
			return fmt.Errorf("pod %s: container %s: %s: %s", p.Name, cs.Name, w.Reason, w.Message)
		}
	}
	return nil
}

func podState(p *corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" {
			return w.Reason
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue && c.Reason != "" {
			return c.Reason
		}
	}
	return string(p.Status.Phase)
}

// appContainerID is the runtime's ID of the pod's first container, without
// the "containerd://" scheme.
func appContainerID(p *corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running != nil && cs.ContainerID != "" {
			_, id, _ := strings.Cut(cs.ContainerID, "://")
			return id
		}
	}
	return ""
}

// namePodNetns names the network namespace of a running pod NS, through
// the pid of its container, which shares it.
func (l *Lab) namePodNetns(ctx context.Context, pod *Pod, obj *corev1.Pod) error {
	pod.UID = string(obj.UID)
	pod.ContainerID = appContainerID(obj)
	addr, err := netip.ParseAddr(obj.Status.PodIP)
	if err != nil {
		return fmt.Errorf("pod %s: address %q: %w", pod.Name, obj.Status.PodIP, err)
	}
	pod.IP, pod.IPs = addr, podIPsOf(obj)
	n, _ := l.st.Plan.Node(pod.Node)
	pid, err := l.taskPID(ctx, n, pod.ContainerID)
	if err != nil {
		return fmt.Errorf("pod %s: %w", pod.Name, err)
	}
	if _, err := ip(ctx, "", "netns", "attach", pod.NS, strconv.Itoa(pid)); err != nil {
		return fmt.Errorf("name the network namespace of pod %s: %w", pod.Name, err)
	}
	return nil
}

// taskPID asks the node's containerd for the pid of a container's task.
func (l *Lab) taskPID(ctx context.Context, n Node, containerID string) (int, error) {
	np := newNodePaths(l.st.Dir, n.Name)
	out, err := run(ctx, "ctr", "--address", np.RuntimeSocket(), "--namespace", criNamespace, "tasks", "list")
	if err != nil {
		return 0, fmt.Errorf("list containerd tasks on %s: %w", n.Name, err)
	}
	pids, err := parseTaskList(string(out))
	if err != nil {
		return 0, err
	}
	pid, ok := pids[containerID]
	if !ok || pid <= 0 {
		return 0, fmt.Errorf("containerd on %s has no running task %s", n.Name, containerID)
	}
	return pid, nil
}

// parseTaskList reads `ctr tasks list`: "TASK PID STATUS" and one line per
// task.
func parseTaskList(out string) (map[string]int, error) {
	pids := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(out))
	first := true
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if first {
			first = false
			if len(f) < 2 || f[0] != "TASK" || f[1] != "PID" {
				return nil, fmt.Errorf("unexpected `ctr tasks list` header %q", sc.Text())
			}
			continue
		}
		if len(f) < 3 {
			continue
		}
		pid, err := strconv.Atoi(f[1])
		if err != nil {
			return nil, fmt.Errorf("parse `ctr tasks list` line %q: %w", sc.Text(), err)
		}
		if f[2] == "RUNNING" {
			pids[f[0]] = pid
		}
	}
	return pids, sc.Err()
}

// delRealPod deletes a pod through the API, waits until its kubelet has
// stopped it (and so run CNI DEL), then drops the lab's name for its
// network namespace.
func (l *Lab) delRealPod(ctx context.Context, name string) error {
	pod, ok := l.pod(name)
	if !ok {
		return fmt.Errorf("no pod %q in the lab", name)
	}
	err := l.c.kube.CoreV1().Pods(PodNamespace).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete Pod %s: %w", name, err)
	}
	err = until(ctx, 90*time.Second, 100*time.Millisecond, "pod "+name+" to be gone", func(ctx context.Context) (bool, error) {
		_, err := l.c.kube.CoreV1().Pods(PodNamespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		return err
	}
	if err := delNS(ctx, pod.NS); err != nil {
		return fmt.Errorf("delete pod %s: %w", name, err)
	}
	l.forgetPod(name)
	return l.st.save()
}

// RealPods lists, with real nodes, every running pod with an address of
// its own on the lab's nodes, whoever created it (a Deployment, kubectl):
// the lab's pods with their netns names, the others named "namespace/name"
// (or "name" in the default namespace) with no netns path; exec reaches
// them too (see apiPodNetns).
func (l *Lab) RealPods(ctx context.Context) ([]Pod, error) {
	if !l.st.Kubelet {
		return l.Pods(), nil
	}
	c, err := l.clients()
	if err != nil {
		return nil, err
	}
	list, err := c.kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	var out []Pod
	for i := range list.Items {
		p := &list.Items[i]
		if p.Spec.HostNetwork || p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
			continue
		}
		if _, ok := l.st.Plan.Node(p.Spec.NodeName); !ok {
			continue
		}
		if own, ok := l.pod(p.Name); ok && p.Namespace == PodNamespace {
			out = append(out, own)
			continue
		}
		addr, _ := netip.ParseAddr(p.Status.PodIP)
		out = append(out, Pod{Name: podRef(p), Namespace: p.Namespace, Node: p.Spec.NodeName, IP: addr, IPs: podIPsOf(p), UID: string(p.UID), ContainerID: appContainerID(p)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// podRef names a pod as exec takes it.
func podRef(p *corev1.Pod) string {
	if p.Namespace == PodNamespace {
		return p.Name
	}
	return p.Namespace + "/" + p.Name
}

// apiPodNetns finds the network namespace of a running pod the lab did not
// create, "name" (default namespace) or "namespace/name", as the path of
// its container's namespace in /proc.
func (l *Lab) apiPodNetns(ctx context.Context, ref string) (string, error) {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok {
		ns, name = PodNamespace, ref
	}
	c, err := l.clients()
	if err != nil {
		return "", err
	}
	p, err := c.kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("no pod, node, router or namespace named %q in the lab: %w", ref, err)
	}
	n, ok := l.st.Plan.Node(p.Spec.NodeName)
	if !ok || appContainerID(p) == "" {
		return "", fmt.Errorf("pod %s is not running on a lab node", ref)
	}
	pid, err := l.taskPID(ctx, n, appContainerID(p))
	if err != nil {
		return "", fmt.Errorf("pod %s: %w", ref, err)
	}
	return fmt.Sprintf("/proc/%d/ns/net", pid), nil
}
