package lbipam

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	cairnfake "github.com/cairn-net/cairn/apis/client/clientset/versioned/fake"
	cairninformers "github.com/cairn-net/cairn/apis/client/informers/externalversions"
	"github.com/cairn-net/cairn/apis/kubecore/kubecoretest"
)

// Run end to end on fake clients: Services there at the start of the term,
// created during it, deleted and their address asked for by another.
func TestRunServesAndReleases(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kube := fake.NewClientset(svc("a", 0), svc("b", 1))
	pools := cairninformers.NewSharedInformerFactory(cairnfake.NewSimpleClientset(lbPool()), 0)
	poolInformer := pools.Cairn().V1alpha1().IPPools().Informer()
	pools.Start(ctx.Done())
	defer func() { cancel(); pools.Shutdown() }() // Shutdown waits for informers that stop with ctx
	events := record.NewFakeRecorder(100)
	c, err := New(Options{Kube: kubecoretest.From(kube), Pools: poolInformer, Recorder: events})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	want := func(substr string) {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case e := <-events.Events:
				if strings.Contains(e, substr) {
					return
				}
			case <-timeout:
				t.Fatalf("no event containing %q", substr)
			}
		}
	}
	want("assigned 192.0.2.1 ")
	want("assigned 192.0.2.2 ")
	if _, err := kube.CoreV1().Services("default").Create(ctx, svc("c", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want("assigned 192.0.2.3 ")
	a, err := kube.CoreV1().Services("default").Get(ctx, "a", metav1.GetOptions{})
	if err != nil || len(a.Status.LoadBalancer.Ingress) != 1 {
		t.Fatalf("a: %+v, %v", a.Status.LoadBalancer, err)
	}
	aAddr := a.Status.LoadBalancer.Ingress[0].IP // a and b were served in either order
	if _, err := kube.CoreV1().Services("default").Create(ctx, svc("d", 3, lbIP(aAddr)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want(ReasonUnavailable)
	if err := kube.CoreV1().Services("default").Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	want("assigned " + aAddr + " ") // to d, waiting for it
	got, err := kube.CoreV1().Services("default").Get(ctx, "d", metav1.GetOptions{})
	if err != nil || len(got.Status.LoadBalancer.Ingress) != 1 || got.Status.LoadBalancer.Ingress[0].IP != aAddr {
		t.Errorf("d: %+v, %v", got.Status.LoadBalancer, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
