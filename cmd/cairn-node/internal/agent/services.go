package agent

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/bgp/peering"
)

// serviceListers read Services and their EndpointSlices, cut down by
// serviceFields and sliceFields to what announcing Service addresses
// needs.
type serviceListers struct {
	services corelisters.ServiceLister
	slices   discoverylisters.EndpointSliceLister
}

// announcesServices reports whether the configuration announces any
// Service address; when it does not, Services are not even read.
func announcesServices(cfg *v1.BGPConfiguration) bool {
	return cfg != nil && len(cfg.Spec.ServiceClusterIPs)+len(cfg.Spec.ServiceExternalIPs)+len(cfg.Spec.ServiceLoadBalancerIPs) > 0
}

// services lists the cluster's Services as peering needs them, with
// whether each has a ready endpoint on node: a ready endpoint of one of
// its EndpointSlices whose nodeName is node, as kube-proxy decides where
// a Local Service is served. Services without a selector and hand-made
// EndpointSlices count the same way.
func (l serviceListers) list(node string) ([]peering.Service, error) {
	slices, err := l.slices.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	local := map[string]bool{}
	for _, s := range slices {
		name := s.Labels[discoveryv1.LabelServiceName]
		if name != "" && readyOn(s, node) {
			local[s.Namespace+"/"+name] = true
		}
	}
	services, err := l.services.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	out := make([]peering.Service, 0, len(services))
	for _, s := range services {
		if s.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		key := s.Namespace + "/" + s.Name
		ps := peering.Service{
			Name:          key,
			ClusterIPs:    parseAddrs(s.Spec.ClusterIPs),
			ExternalIPs:   parseAddrs(s.Spec.ExternalIPs),
			ExternalLocal: s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
			InternalLocal: s.Spec.InternalTrafficPolicy != nil && *s.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal,
			LocalEndpoint: local[key],
		}
		for _, in := range s.Status.LoadBalancer.Ingress {
			ps.LoadBalancerIPs = append(ps.LoadBalancerIPs, parseAddrs([]string{in.IP})...)
		}
		out = append(out, ps)
	}
	return out, nil
}

// readyOn reports whether the slice has a ready endpoint on node; an
// unset ready condition means ready (discovery/v1).
func readyOn(s *discoveryv1.EndpointSlice, node string) bool {
	for _, e := range s.Endpoints {
		if e.NodeName != nil && *e.NodeName == node && (e.Conditions.Ready == nil || *e.Conditions.Ready) {
			return true
		}
	}
	return false
}

// parseAddrs keeps the valid addresses ("None" of a headless Service and
// empty strings are not).
func parseAddrs(ss []string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// serviceFields is the Service informer's transform: every node caches
// every Service, so it keeps only what announcing needs.
func serviceFields(obj any) (any, error) {
	s, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, UID: s.UID, ResourceVersion: s.ResourceVersion},
		Spec: corev1.ServiceSpec{Type: s.Spec.Type, ClusterIPs: s.Spec.ClusterIPs, ExternalIPs: s.Spec.ExternalIPs,
			ExternalTrafficPolicy: s.Spec.ExternalTrafficPolicy, InternalTrafficPolicy: s.Spec.InternalTrafficPolicy},
		Status: corev1.ServiceStatus{LoadBalancer: s.Status.LoadBalancer},
	}, nil
}

// sliceFields is the EndpointSlice informer's transform: the Service it
// belongs to and, per endpoint, only its node and readiness.
func sliceFields(obj any) (any, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return obj, nil
	}
	out := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, UID: s.UID,
		ResourceVersion: s.ResourceVersion}, AddressType: s.AddressType}
	if name, ok := s.Labels[discoveryv1.LabelServiceName]; ok {
		out.Labels = map[string]string{discoveryv1.LabelServiceName: name}
	}
	for _, e := range s.Endpoints {
		out.Endpoints = append(out.Endpoints, discoveryv1.Endpoint{NodeName: e.NodeName, Conditions: discoveryv1.EndpointConditions{Ready: e.Conditions.Ready}})
	}
	return out, nil
}

// concernsSlice: an EndpointSlice matters to this node only when it has
// an endpoint here (before or after a change, see handler), so pods
// coming and going elsewhere leave this node idle.
func (c *controller) concernsSlice(obj any) bool {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return false
	}
	for _, e := range s.Endpoints {
		if e.NodeName != nil && *e.NodeName == c.nodeName {
			return true
		}
	}
	return false
}
