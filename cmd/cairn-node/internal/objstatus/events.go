package objstatus

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/apis/kubecore"
	"github.com/cairn-net/cairn/bgp/bgpstatus"
)

// Component is the source of the Events this package writes.
const Component = "cairn-status"

// ReasonPoolExhausted is the Event of an IPPool that has no address left.
const ReasonPoolExhausted = "PoolExhausted"

// NewRecorder returns an EventRecorder writing Events as Component from
// host, and the function that stops it. client-go's correlator behind it
// also folds repeats into counts and drops spam per source and object.
func NewRecorder(kube kubecore.Interface, host string) (record.EventRecorder, func()) {
	return kubecore.NewRecorder(kube, Component, host)
}

// Metrics count the controller's writes and Events. Make them once per
// process: they outlive terms of leadership.
type Metrics struct {
	writes *prometheus.CounterVec // kind
	events *prometheus.CounterVec // reason, result
}

// NewMetrics registers the controller's metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_status_writes_total",
			Help: "Status writes of the status controller, by kind of object (BGPPeer, BGPConfiguration, BGPFilter, IPPool); only changed statuses are written.",
		}, []string{"kind"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_status_events_total",
			Help: "Events of the status controller by reason and result: emitted, or suppressed by the per-object, per-reason limit.",
		}, []string{"reason", "result"}),
	}
	for _, c := range []prometheus.Collector{m.writes, m.events} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register status metrics: %w", err)
		}
	}
	return m, nil
}

// ref is an Event's involved object. Cairn's kinds are not in the recorder's
// scheme, so the reference is made here rather than looked up.
func ref(kind, name string, uid types.UID) *corev1.ObjectReference {
	return &corev1.ObjectReference{APIVersion: v1.SchemeGroupVersion.String(), Kind: kind, Name: name, UID: uid}
}

// emit sends ev on the object unless the limiter holds it back.
func (c *Controller) emit(obj *corev1.ObjectReference, ev bgpstatus.Event) {
	ok, suppressed := c.limit.allow(obj.Kind + "/" + obj.Name + "/" + string(obj.UID) + "/" + ev.Reason)
	if !ok {
		c.opts.Metrics.events.WithLabelValues(ev.Reason, "suppressed").Inc()
		c.log.Debug("Event suppressed by the rate limit", "kind", obj.Kind, "name", obj.Name, "reason", ev.Reason)
		return
	}
	msg := ev.Message
	if suppressed > 0 {
		msg += fmt.Sprintf(" (%d similar Event(s) suppressed since the last)", suppressed)
	}
	c.opts.Metrics.events.WithLabelValues(ev.Reason, "emitted").Inc()
	c.opts.Recorder.Event(obj, ev.Type, ev.Reason, msg)
}
