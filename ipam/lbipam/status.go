package lbipam

import (
	"context"
	"encoding/json"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"

	"github.com/cairn-net/cairn/apis/kubecore"
)

// writeStatus sets the Service's status.loadBalancer.ingress to addrs
// (none: removes it). A merge patch touches nothing else of the status
// (conditions other controllers own), and carries the resourceVersion
// the decision was made on, so the API server refuses it (Conflict) if
// the Service changed since.
func writeStatus(ctx context.Context, kube kubecore.Interface, svc *corev1.Service, addrs []netip.Addr) error {
	patch, err := statusPatch(svc.ResourceVersion, addrs)
	if err != nil {
		return err
	}
	_, err = kube.Services(svc.Namespace).Patch(ctx, svc.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: Component}, "status")
	return err
}

// statusPatch is the JSON merge patch writeStatus sends. Each address is
// an ingress of ipMode VIP: kube-proxy serves it on every node, and the
// routers reach the nodes over BGP.
func statusPatch(resourceVersion string, addrs []netip.Addr) ([]byte, error) {
	type ingress struct {
		IP     string                    `json:"ip"`
		IPMode corev1.LoadBalancerIPMode `json:"ipMode"`
	}
	var in []ingress
	for _, a := range addrs {
		in = append(in, ingress{IP: a.String(), IPMode: corev1.LoadBalancerIPModeVIP})
	}
	return json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": resourceVersion},
		"status":   map[string]any{"loadBalancer": map[string]any{"ingress": in}},
	})
}

// NewRecorder returns an EventRecorder writing Events on Services as
// Component from host, and the function that stops it.
func NewRecorder(kube kubecore.Interface, host string) (record.EventRecorder, func()) {
	return kubecore.NewRecorder(kube, Component, host)
}
