package peering

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestLeaving: how a stopping agent (SIGTERM: a rollout, or the node's
// removal) closes its sessions, from its own Node as read at the stop and
// what its cache saw before.
func TestLeaving(t *testing.T) {
	node := func(f func(*corev1.Node)) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node2"}}
		if f != nil {
			f(n)
		}
		return n
	}
	now := metav1.Now()
	notFound := apierrors.NewNotFound(schema.GroupResource{Resource: "nodes"}, "node2")
	timeout := fmt.Errorf("get node node2: %w", context.DeadlineExceeded)
	for _, tc := range []struct {
		name    string
		in      OwnNode
		leaving bool
		why     string
	}{
		{"Node exists: an agent restart or rollout keeps graceful restart",
			OwnNode{Node: node(nil)}, false, "agent restart"},
		{"Node exists, cordoned and drained: a maintenance reboot, not a removal",
			OwnNode{Node: node(func(n *corev1.Node) { n.Spec.Unschedulable = true })}, false, "agent restart"},
		{"Node deleted (drain, then kubectl delete node, then SIGTERM)",
			OwnNode{Err: notFound}, true, "deleted"},
		{"Node deleted, already seen by the cache",
			OwnNode{Err: notFound, Departed: true}, true, "deleted"},
		{"Node deleted and wrapped by the caller",
			OwnNode{Err: fmt.Errorf("read own Node: %w", notFound)}, true, "deleted"},
		{"Node being deleted (a finalizer holds it: Karpenter, say)",
			OwnNode{Node: node(func(n *corev1.Node) { n.DeletionTimestamp = &now })}, true, "being deleted"},
		{"the cluster autoscaler drains the node to delete it",
			OwnNode{Node: node(func(n *corev1.Node) {
				n.Spec.Taints = []corev1.Taint{{Key: "node.kubernetes.io/unschedulable"}, {Key: AutoscalerDeletionTaint, Effect: corev1.TaintEffectNoSchedule}}
			})}, true, "autoscaler"},
		{"another taint is no removal",
			OwnNode{Node: node(func(n *corev1.Node) { n.Spec.Taints = []corev1.Taint{{Key: "node.kubernetes.io/not-ready"}} })}, false, "agent restart"},
		{"Node deleted and registered again while the agent ran: the read wins over the cache",
			OwnNode{Node: node(nil), Departed: true}, false, "agent restart"},
		{"API server unreachable: taken for a restart",
			OwnNode{Err: timeout}, false, "could not be read"},
		{"API server unreachable, but the cache saw the Node go",
			OwnNode{Err: timeout, Departed: true}, true, "seen earlier"},
		{"API server refuses (forbidden): taken for a restart",
			OwnNode{Err: apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, "node2", errors.New("no"))}, false, "could not be read"},
		{"nothing known", OwnNode{}, false, "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaving, why := Leaving(tc.in)
			if leaving != tc.leaving || !strings.Contains(why, tc.why) {
				t.Errorf("Leaving = %v, %q; want %v, a reason saying %q", leaving, why, tc.leaving, tc.why)
			}
		})
	}
}
