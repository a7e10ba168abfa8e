package ipam

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/apis/kubecore"
	"github.com/cairn-net/cairn/internal/controlplane"
	"github.com/cairn-net/cairn/internal/controlplane/cptest"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/kubestore"
)

// cluster is a control plane with clients.
type cluster struct {
	cp   *controlplane.ControlPlane
	kube kubernetes.Interface
	// core is the product's own client of the same kinds (kubecore).
	core  kubecore.Interface
	store *kubestore.Store
	// writes and reads count requests made through store.
	writes, reads *atomic.Int64
}

func startCluster(t testing.TB) *cluster {
	t.Helper()
	cp := cptest.ForTest(t)
	c := &cluster{cp: cp, writes: &atomic.Int64{}, reads: &atomic.Int64{}}
	cfg := rest.CopyConfig(cp.Config)
	cfg.WrapTransport = countRequests(c.writes, c.reads)
	var err error
	if c.store, err = kubestore.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if c.core, err = kubecore.NewForConfig(cp.Config); err != nil {
		t.Fatal(err)
	}
	if c.kube, err = kubernetes.NewForConfig(cp.Config); err != nil {
		t.Fatal(err)
	}
	return c
}

// countRequests counts API requests by kind as they leave the client.
func countRequests(writes, reads *atomic.Int64) func(http.RoundTripper) http.RoundTripper {
	return func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodGet {
				reads.Add(1)
			} else {
				writes.Add(1)
			}
			return rt.RoundTrip(r)
		})
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func logger(t testing.TB) *slog.Logger {
	if os.Getenv("IPAM_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

// createPool creates a pool, retrying while the API server is still
// publishing the CRD schema for the defaulting policy (see
// deploy/policies/ippool-defaults.yaml).
func (c *cluster) createPool(t testing.TB, name, cidr string, blockSize int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.IPPoolSpec{CIDR: cidr, BlockSize: blockSize}}
	for {
		_, err := c.store.Pools().Create(ctx, p)
		if err == nil || ipam.IsAlreadyExists(err) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("create pool %s: %v", name, err)
		}
		t.Logf("create pool %s: %v (retrying)", name, err)
		if werr := (ipam.Backoff{Base: 50 * time.Millisecond, Cap: 500 * time.Millisecond}).Wait(ctx, 3); werr != nil {
			t.Fatalf("create pool %s: %v", name, err)
		}
	}
}

// createNamespace creates a namespace with a default service account, so
// pods can be created without a controller manager.
func (c *cluster) createNamespace(t testing.TB, name string) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.kube.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) createNode(t testing.TB, name string) {
	t.Helper()
	if _, err := c.kube.CoreV1().Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) createPod(ctx context.Context, ns, name, node string) error {
	f := false
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			NodeName:                     node,
			AutomountServiceAccountToken: &f,
			Containers:                   []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}},
		},
	}
	if _, err := c.kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create pod %s/%s: %w", ns, name, err)
	}
	return nil
}

func (c *cluster) deletePod(ctx context.Context, ns, name string) error {
	zero := int64(0)
	if err := c.kube.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		return fmt.Errorf("delete pod %s/%s: %w", ns, name, err)
	}
	return nil
}
