package agent

import (
	"context"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	cairnfake "github.com/cairn-net/cairn/apis/client/clientset/versioned/fake"
	cairninformers "github.com/cairn-net/cairn/apis/client/informers/externalversions"
	"github.com/cairn-net/cairn/apis/kubecore/kubecoretest"
)

// TestLBIPAMLeadServes: the leader's term gives a Service of type
// LoadBalancer an address from the agent's pools, and ends with the term.
func TestLBIPAMLeadServes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	kube := fake.NewClientset(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}}})
	pools := cairninformers.NewSharedInformerFactory(cairnfake.NewSimpleClientset(&v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "vips"},
		Spec: v1.IPPoolSpec{CIDR: "192.0.2.0/28", AllowedUses: []v1.IPPoolUse{v1.IPPoolUseLoadBalancer}}}), 0)
	informer := pools.Cairn().V1alpha1().IPPools().Informer()
	pools.Start(ctx.Done())
	defer func() { cancel(); pools.Shutdown() }()
	w, err := kube.CoreV1().Services("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	l := lbIPAM{opts: Options{NodeName: "node1"}, kube: kubecoretest.From(kube), pools: informer, log: slog.New(slog.DiscardHandler)}
	done := make(chan struct{})
	go func() { l.lead(ctx); close(done) }()
	deadline := time.After(30 * time.Second)
	for addressed := false; !addressed; {
		select {
		case ev := <-w.ResultChan():
			if s, ok := ev.Object.(*corev1.Service); ok && len(s.Status.LoadBalancer.Ingress) > 0 {
				if ip := s.Status.LoadBalancer.Ingress[0].IP; ip != "192.0.2.1" {
					t.Errorf("web got %s, want 192.0.2.1", ip)
				}
				addressed = true
			}
		case <-deadline:
			t.Fatal("web got no address")
		}
	}
	cancel()
	select {
	case <-done:
	case <-deadline:
		t.Fatal("lead did not return when its term ended")
	}
}
