package kubecore

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
)

// NewRecorder returns an EventRecorder writing Events as component from
// host through c, and the function that stops it. client-go's correlator
// behind it folds repeats into counts and drops spam per source and
// object. Objects it is given are either of Scheme's kinds or
// ObjectReferences.
func NewRecorder(c Interface, component, host string) (record.EventRecorder, func()) {
	b := record.NewBroadcaster()
	b.StartRecordingToSink(eventSink{c})
	return b.NewRecorder(Scheme, corev1.EventSource{Component: component, Host: host}), b.Shutdown
}

// eventSink writes the recorder's Events, each in its own namespace, as
// client-go's EventSinkImpl does.
type eventSink struct{ c Interface }

func (s eventSink) Create(e *corev1.Event) (*corev1.Event, error) {
	return s.c.Events(e.Namespace).Create(context.TODO(), e, metav1.CreateOptions{})
}

func (s eventSink) Update(e *corev1.Event) (*corev1.Event, error) {
	return s.c.Events(e.Namespace).Update(context.TODO(), e, metav1.UpdateOptions{})
}

func (s eventSink) Patch(e *corev1.Event, data []byte) (*corev1.Event, error) {
	return s.c.Events(e.Namespace).Patch(context.TODO(), e.Name, types.StrategicMergePatchType, data, metav1.PatchOptions{})
}
