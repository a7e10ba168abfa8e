package controlplane

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

var ipPoolGVR = schema.GroupVersionResource{Group: "cairn.dev", Version: "v1alpha1", Resource: "ippools"}

// WaitPoliciesActive waits until the IPPool defaulting policy mutates a
// dry-run create. The API server publishes a new CRD's schema to admission
// policies asynchronously; until then the policy rejects IPPool creates.
func WaitPoliciesActive(ctx context.Context, cfg *rest.Config, timeout time.Duration) error {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("dynamic client: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	probe := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cairn.dev/v1alpha1", "kind": "IPPool",
		"metadata": map[string]any{"name": "cairn-policy-probe"},
		"spec":     map[string]any{"cidr": "10.255.0.0/16"},
	}}
	for {
		got, err := dyn.Resource(ipPoolGVR).Create(ctx, probe.DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil {
			if bs, _, _ := unstructured.NestedInt64(got.Object, "spec", "blockSize"); bs == 26 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the IPPool defaulting policy: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
