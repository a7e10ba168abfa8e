package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// cniTimeout bounds one pod's ADD, retries included.
const cniTimeout = 60 * time.Second

// addPod does what the kubelet and a runtime do for a new pod: the Pod
// object (so the API server knows its owner and garbage collection keeps
// its address), a network namespace, CNI ADD through the real plugin, then
// the pod IP in the Pod's status. Every step is recorded in the state
// before it is taken.
func (l *Lab) addPod(ctx context.Context, nodeName string) (Pod, error) {
	return l.addLabeledPod(ctx, nodeName, nil)
}

// AddLabeledPod is AddPod with more labels on the Pod object, such as a
// Service's selector: the EndpointSlice controller reads them, with the
// Pod's nodeName, IP and Ready condition, to make the pod an endpoint.
func (l *Lab) AddLabeledPod(ctx context.Context, node string, labels map[string]string) (Pod, error) {
	var pod Pod
	err := l.mutate(func() error {
		var err error
		pod, err = l.addLabeledPod(ctx, node, labels)
		return err
	})
	return pod, err
}

func (l *Lab) addLabeledPod(ctx context.Context, nodeName string, labels map[string]string) (Pod, error) {
	n, ok := l.st.Plan.Node(nodeName)
	if !ok {
		return Pod{}, fmt.Errorf("no node %q in the lab", nodeName)
	}
	l.st.PodSeq[n.Name]++
	name := fmt.Sprintf("pod-%s-%d", n.Name, l.st.PodSeq[n.Name])
	pod := Pod{Name: name, Namespace: PodNamespace, Node: n.Name, NS: l.st.Plan.Prefix + name, ContainerID: randomHex(32)}
	pod.NetnsPath = NSPath(pod.NS)
	if err := l.st.recordNamespace(pod.NS); err != nil {
		return Pod{}, err
	}
	if err := addNS(ctx, pod.NS); err != nil {
		return Pod{}, fmt.Errorf("pod %s: %w", name, err)
	}
	obj, err := l.c.kube.CoreV1().Pods(PodNamespace).Create(ctx, podObject(name, n.Name, labels), metav1.CreateOptions{})
	if err != nil {
		return Pod{}, fmt.Errorf("create Pod %s: %w", name, err)
	}
	pod.UID = string(obj.UID)
	l.st.Pods = append(l.st.Pods, pod)
	if err := l.st.save(); err != nil {
		return Pod{}, err
	}
	result, err := l.cniAdd(ctx, n, pod)
	if err != nil {
		return Pod{}, err
	}
	if pod.IPs, err = resultIPs(result); err != nil {
		return Pod{}, fmt.Errorf("pod %s: %w", name, err)
	}
	pod.IP = pod.IPs[0]
	pod.Result = result
	l.setPod(pod)
	if err := l.st.save(); err != nil {
		return Pod{}, err
	}
	now := metav1.Now()
	obj.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, HostIP: n.Addr.String(), PodIP: pod.IP.String(),
		PodIPs:     statusPodIPs(pod.Addrs()),
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}},
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "app", Image: obj.Spec.Containers[0].Image, Ready: true,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		}},
	}
	if _, err := l.c.kube.CoreV1().Pods(PodNamespace).UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
		return Pod{}, fmt.Errorf("set status of Pod %s: %w", name, err)
	}
	return pod, nil
}

// cniAdd runs ADD; when the plugin says "try again later" it does what a
// runtime does, DEL then ADD again, until cniTimeout. Any other failure
// is cleaned up with DEL and returned.
func (l *Lab) cniAdd(ctx context.Context, n Node, pod Pod) ([]byte, error) {
	call := cniCall{Command: "ADD", ContainerID: pod.ContainerID, NetnsPath: pod.NetnsPath, PodName: pod.Name, PodUID: pod.UID}
	del := call
	del.Command = "DEL"
	var result []byte
	err := until(ctx, cniTimeout, 250*time.Millisecond, "CNI ADD of "+pod.Name, func(ctx context.Context) (bool, error) {
		out, err := runCNI(ctx, l.st.Dir, n, call)
		if err == nil {
			result = out
			return true, nil
		}
		if _, derr := runCNI(ctx, l.st.Dir, n, del); derr != nil {
			l.logf("clean up after failed ADD of %s: %v", pod.Name, derr)
		}
		if !retryable(err) {
			return false, stopWaiting(err)
		}
		return false, err
	})
	return result, err
}

// delPod runs CNI DEL with the ADD result as prevResult, deletes the Pod
// object and the namespace, and forgets the pod.
func (l *Lab) delPod(ctx context.Context, name string) error {
	pod, ok := l.pod(name)
	if !ok {
		return fmt.Errorf("no pod %q in the lab", name)
	}
	n, _ := l.st.Plan.Node(pod.Node)
	call := cniCall{Command: "DEL", ContainerID: pod.ContainerID, NetnsPath: pod.NetnsPath, PodName: pod.Name, PodUID: pod.UID, PrevResult: pod.Result}
	if _, err := runCNI(ctx, l.st.Dir, n, call); err != nil {
		return fmt.Errorf("delete pod %s: %w", name, err)
	}
	err := l.c.kube.CoreV1().Pods(PodNamespace).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete Pod %s: %w", name, err)
	}
	if err := delNS(ctx, pod.NS); err != nil {
		return fmt.Errorf("delete pod %s: %w", name, err)
	}
	l.forgetPod(name)
	return l.st.save()
}

func podObject(name, node string, labels map[string]string) *corev1.Pod {
	no := false
	all := map[string]string{LabLabel: "true"}
	for k, v := range labels {
		all[k] = v
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: PodNamespace, Labels: all},
		Spec: corev1.PodSpec{
			NodeName:                     node,
			AutomountServiceAccountToken: &no,
			Containers:                   []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}},
		},
	}
}

func (l *Lab) pod(name string) (Pod, bool) {
	for _, p := range l.st.Pods {
		if p.Name == name {
			return p, true
		}
	}
	return Pod{}, false
}

func (l *Lab) setPod(pod Pod) {
	for i := range l.st.Pods {
		if l.st.Pods[i].Name == pod.Name {
			l.st.Pods[i] = pod
		}
	}
}

func (l *Lab) forgetPod(name string) {
	out := l.st.Pods[:0]
	for _, p := range l.st.Pods {
		if p.Name != name {
			out = append(out, p)
		}
	}
	l.st.Pods = out
	var nss []string
	for _, ns := range l.st.Namespaces {
		if ns != l.st.Plan.Prefix+name {
			nss = append(nss, ns)
		}
	}
	l.st.Namespaces = nss
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
