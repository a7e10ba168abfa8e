package agent

import (
	"context"
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	cairnfake "github.com/cairn-net/cairn/apis/client/clientset/versioned/fake"
	"github.com/cairn-net/cairn/apis/kubecore/kubecoretest"
)

// TestCachesHoldNoManagedFields: the agent's caches keep objects without
// server-side apply's bookkeeping, which nothing reads (issue 15: agent
// memory), and with everything else, labels and annotations included.
func TestCachesHoldNoManagedFields(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate,
		FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{"f:rack":{}}}}`)}}}
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Labels: map[string]string{"rack": "r1"}, Annotations: map[string]string{"cairn.dev/as": "64512"}, ManagedFields: managed}
	}
	kube := fake.NewClientset(&corev1.Node{ObjectMeta: meta("node1")})
	cairn := cairnfake.NewSimpleClientset(&v1.IPAMBlock{ObjectMeta: meta("10-244-0-0-26"), Spec: v1.IPAMBlockSpec{CIDR: "10.244.0.0/26"}},
		&v1.IPPool{ObjectMeta: meta("default"), Spec: v1.IPPoolSpec{CIDR: "10.244.0.0/16"}})
	inf, err := watchCluster(ctx, clients{kube: kubecoretest.From(kube), cairn: kubecoretest.Cairn(cairn)}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	n, err := inf.nodeLister.Get("node1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := inf.blockLister.Get("10-244-0-0-26")
	if err != nil {
		t.Fatal(err)
	}
	p, err := inf.poolLister.Get("default")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []metav1.ObjectMeta{n.ObjectMeta, b.ObjectMeta, p.ObjectMeta} {
		if o.ManagedFields != nil {
			t.Errorf("%s cached with managedFields %v", o.Name, o.ManagedFields)
		}
		if o.Labels["rack"] != "r1" || o.Annotations["cairn.dev/as"] != "64512" {
			t.Errorf("%s cached without its labels or annotations: %v %v", o.Name, o.Labels, o.Annotations)
		}
	}
	if b.Spec.CIDR != "10.244.0.0/26" {
		t.Errorf("block cached as %+v", b.Spec)
	}
}
