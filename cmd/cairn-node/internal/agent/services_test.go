package agent

import (
	"context"
	"log/slog"
	"net/netip"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	cairnlisters "github.com/cairn-net/cairn/apis/client/listers/cairn/v1alpha1"
	"github.com/cairn-net/cairn/apis/kubecore/kubecoretest"
)

func lbService(name string, local bool, lbIP string) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: name},
		Spec:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIPs: []string{"10.96.0.10"}, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: lbIP}}}}}
	if local {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
	return s
}

func slice(service, name string, ready bool, nodes ...string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: name,
		Labels: map[string]string{discoveryv1.LabelServiceName: service, "unrelated": "dropped"}}, AddressType: discoveryv1.AddressTypeIPv4}
	for _, n := range nodes {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{"10.244.0.5"}, NodeName: &n, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	return s
}

// TestSyncAnnouncesServicesServedHere runs the sync with Services and
// EndpointSlices cut by the informers' transforms: a Local LoadBalancer
// Service is announced only while a ready endpoint runs here, a Cluster
// one always, an address outside the ranges never.
func TestSyncAnnouncesServicesServedHere(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := &v1.BGPConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1.BGPConfigurationSpec{
		ServiceClusterIPs:      []v1.ServiceIPBlock{{CIDR: "10.96.0.0/16"}},
		ServiceLoadBalancerIPs: []v1.ServiceIPBlock{{CIDR: "198.51.100.0/24"}},
	}}
	transformed := func(fn func(any) (any, error), obj any) any {
		out, err := fn(obj)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	services := indexer(
		transformed(serviceFields, lbService("local", true, "198.51.100.1")),
		transformed(serviceFields, lbService("cluster", false, "198.51.100.2")),
		transformed(serviceFields, lbService("outside", false, "203.0.113.3")))
	slices := indexer(
		transformed(sliceFields, slice("local", "local-a", true, "node2", "node1")),
		transformed(sliceFields, slice("cluster", "cluster-a", true, "node2")))
	spk := &fakeSpeaker{}
	c := &controller{
		log: slog.New(slog.DiscardHandler), nodeName: "node1", nodeAddr: netip.MustParseAddr("172.30.1.11"), queue: newQueue(),
		listers: listers{
			nodes:   corelisters.NewNodeLister(indexer(node("node1", "172.30.1.11"))),
			pools:   cairnlisters.NewIPPoolLister(indexer()),
			configs: cairnlisters.NewBGPConfigurationLister(indexer(cfg)),
			peers:   cairnlisters.NewBGPPeerLister(indexer()), filters: cairnlisters.NewBGPFilterLister(indexer()),
			blocks:     cairnlisters.NewIPAMBlockLister(indexer()),
			affinities: cairnlisters.NewBlockAffinityLister(indexer()),
			services:   serviceListers{services: corelisters.NewServiceLister(services), slices: discoverylisters.NewEndpointSliceLister(slices)},
		},
		speaker: spk, dataplane: &recordingDataplane{fakeDataplane: fakeDataplane{endpoints: map[string][]netip.Prefix{}}},
	}
	c.secrets = newSecretWatch(kubecoretest.From(fake.NewClientset()), "cairn-system", c.enqueue)
	announced := func() []string {
		t.Helper()
		if err := c.sync(ctx); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, a := range spk.ads {
			out = append(out, a.Prefix.String())
		}
		return out
	}
	if got, want := announced(), []string{"10.96.0.0/16", "10.96.0.10/32", "198.51.100.1/32", "198.51.100.2/32"}; !reflect.DeepEqual(got, want) {
		t.Errorf("with a local endpoint: announced %v, want %v", got, want)
	}
	// The local endpoint stops being ready: the Local Service's /32s go.
	if err := slices.Update(transformed(sliceFields, slice("local", "local-a", false, "node1"))); err != nil {
		t.Fatal(err)
	}
	if !c.concernsSlice(transformed(sliceFields, slice("local", "local-a", false, "node1"))) {
		t.Error("a slice with an endpoint on this node must wake its sync")
	}
	if c.concernsSlice(transformed(sliceFields, slice("cluster", "cluster-a", true, "node2"))) {
		t.Error("a slice with endpoints only elsewhere must not wake this node")
	}
	if got, want := announced(), []string{"10.96.0.0/16", "198.51.100.2/32"}; !reflect.DeepEqual(got, want) {
		t.Errorf("without one: announced %v, want %v", got, want)
	}
}
