package agent

import (
	"log/slog"
	"testing"

	"github.com/cairn-net/cairn/apis/kubecore/kubecoretest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

type leaveRecorder struct{ calls []bool }

func (r *leaveRecorder) SetLeaving(leaving bool) { r.calls = append(r.calls, leaving) }

// TestDecideLeaving: the stopping agent reads its own Node from the API
// server, not from its cache (which may not have seen a deletion made
// just before the SIGTERM), and tells the speaker once.
func TestDecideLeaving(t *testing.T) {
	now := metav1.Now()
	for _, tc := range []struct {
		name     string
		objects  []runtime.Object
		departed bool
		want     bool
	}{
		{"Node there: a restart", []runtime.Object{&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}}}, false, false},
		{"Node gone, the cache not told yet", nil, false, true},
		{"Node being deleted", []runtime.Object{&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1", DeletionTimestamp: &now, Finalizers: []string{"x"}}}}, false, true},
		{"another node's Node is no sign", []runtime.Object{&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node2"}}}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rec leaveRecorder
			decideLeaving(kubecoretest.From(fake.NewClientset(tc.objects...)), "node1", tc.departed, &rec, slog.New(slog.DiscardHandler))
			if len(rec.calls) != 1 || rec.calls[0] != tc.want {
				t.Errorf("SetLeaving calls %v, want [%v]", rec.calls, tc.want)
			}
		})
	}
}
