package gc

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestPodAlive(t *testing.T) {
	running := func(node, uid string) *corev1.Pod {
		p := &corev1.Pod{Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
		p.UID = types.UID("uid-" + uid)
		return p
	}
	finished := running("n1", "1")
	finished.Status.Phase = corev1.PodSucceeded
	unscheduled := running("", "1")
	cases := []struct {
		name  string
		pod   *corev1.Pod
		owner Pod
		alive bool
	}{
		{"same node and UID", running("n1", "1"), Pod{Node: "n1", UID: "uid-1"}, true},
		{"nothing recorded", running("n1", "1"), Pod{}, true},
		{"no UID recorded", running("n1", "2"), Pod{Node: "n1"}, true},
		{"another UID", running("n1", "2"), Pod{Node: "n1", UID: "uid-1"}, false},
		{"another UID, no node recorded", running("n1", "2"), Pod{UID: "uid-1"}, false},
		{"another node", running("n2", "1"), Pod{Node: "n1", UID: "uid-1"}, false},
		{"not scheduled yet", unscheduled, Pod{Node: "n1", UID: "uid-1"}, true},
		{"finished", finished, Pod{Node: "n1", UID: "uid-1"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := podAlive(tc.pod, tc.owner); got != tc.alive {
				t.Errorf("podAlive = %v, want %v", got, tc.alive)
			}
		})
	}
}
