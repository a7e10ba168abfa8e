package agent

import (
	"context"
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/cairn-net/cairn/apis/kubecore/kubecoretest"
	"github.com/cairn-net/cairn/ipam/gc"
)

// TestGCOwnersFromCaches: the GC leader's pod cache keeps what deciding
// ownership needs, and owners are answered from it and the Node cache.
func TestGCOwnersFromCaches(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-0", UID: "u-1", Labels: map[string]string{"big": "yes"}},
		Spec:       corev1.PodSpec{NodeName: "node1", Containers: []corev1.Container{{Name: "c", Image: "i"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	done := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "job"}, Spec: corev1.PodSpec{NodeName: "node1"},
		Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}
	g := ipamGC{kube: kubecoretest.From(fake.NewClientset(pod, done)), log: slog.New(slog.DiscardHandler)}
	pods, stop, err := g.watchPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	cached, err := pods.Pods("default").Get("web-0")
	if err != nil {
		t.Fatal(err)
	}
	if cached.UID != "u-1" || cached.Spec.NodeName != "node1" || cached.Status.Phase != corev1.PodRunning {
		t.Errorf("cached pod lost what ownership needs: %+v", cached)
	}
	if len(cached.Spec.Containers) != 0 || cached.Labels != nil {
		t.Errorf("cached pod keeps more than ownership needs: %+v", cached)
	}
	owners := gc.ListerOwners{Pods: pods, Nodes: corelisters.NewNodeLister(indexer(node("node1", "172.30.1.11")))}
	for _, tc := range []struct {
		pod  gc.Pod
		want bool
	}{
		{gc.Pod{Namespace: "default", Name: "web-0", Node: "node1", UID: "u-1"}, true},
		{gc.Pod{Namespace: "default", Name: "web-0", Node: "node1", UID: "u-0"}, false}, // a later pod of that name
		{gc.Pod{Namespace: "default", Name: "web-0", Node: "node2"}, false},
		{gc.Pod{Namespace: "default", Name: "job", Node: "node1"}, false},
		{gc.Pod{Namespace: "default", Name: "gone"}, false},
	} {
		if got, err := owners.PodAlive(ctx, tc.pod); err != nil || got != tc.want {
			t.Errorf("PodAlive(%+v) = %v, %v; want %v", tc.pod, got, err, tc.want)
		}
	}
	if ok, err := owners.NodeExists(ctx, "node1"); err != nil || !ok {
		t.Errorf("NodeExists(node1) = %v, %v", ok, err)
	}
}
