package lbipam

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// serviceFields is the leader's Service informer transform: it keeps what
// View reads and what Events and conditional writes need (identity and
// resourceVersion), so a cache of every Service in the cluster stays
// small.
func serviceFields(obj any) (any, error) {
	s, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil // a tombstone
	}
	out := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: s.Name, UID: s.UID,
			ResourceVersion: s.ResourceVersion, CreationTimestamp: s.CreationTimestamp},
		Spec: corev1.ServiceSpec{Type: s.Spec.Type, LoadBalancerClass: s.Spec.LoadBalancerClass,
			LoadBalancerIP: s.Spec.LoadBalancerIP, IPFamilies: s.Spec.IPFamilies, IPFamilyPolicy: s.Spec.IPFamilyPolicy},
		Status: corev1.ServiceStatus{LoadBalancer: s.Status.LoadBalancer},
	}
	if v, ok := s.Annotations[RequestAnnotation]; ok {
		out.Annotations = map[string]string{RequestAnnotation: v}
	}
	return out, nil
}
