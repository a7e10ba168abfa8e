// Package kubecore is Cairn's client for the built-in Kubernetes kinds it
// reads and writes besides its own CRDs: Nodes, Pods, Services, Secrets,
// Events, EndpointSlices and Leases.
//
// client-go's typed clients (and its clientset, informer factory, leader
// election and discovery, which use them) register all of Kubernetes' API
// groups, about sixty group-versions, in client-go's scheme when the
// binary starts; the linker then keeps every method of every one of those
// types. This client's scheme holds only the groups above, so a binary
// that uses it and nothing of client-go's typed clients leaves the rest
// out (issue 15: the agent's resident memory).
//
// Client's methods have the signatures of client-go's typed clients, so
// tests hand client-go's fake clientset in through package kubecoretest.
package kubecore

import (
	"context"
	"fmt"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/gentype"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// Client is the part of a typed client Cairn uses, for objects of type T
// and lists of type L.
type Client[T runtime.Object, L runtime.Object] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	List(ctx context.Context, opts metav1.ListOptions) (L, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error)
}

// Typed clients of the kinds Interface serves.
type (
	NodeClient          = Client[*corev1.Node, *corev1.NodeList]
	PodClient           = Client[*corev1.Pod, *corev1.PodList]
	ServiceClient       = Client[*corev1.Service, *corev1.ServiceList]
	SecretClient        = Client[*corev1.Secret, *corev1.SecretList]
	EventClient         = Client[*corev1.Event, *corev1.EventList]
	EndpointSliceClient = Client[*discoveryv1.EndpointSlice, *discoveryv1.EndpointSliceList]
	LeaseClient         = Client[*coordinationv1.Lease, *coordinationv1.LeaseList]
)

// Interface reaches the built-in kinds Cairn uses; namespace "" means all
// namespaces for List and Watch.
type Interface interface {
	Nodes() NodeClient
	Pods(namespace string) PodClient
	Services(namespace string) ServiceClient
	Secrets(namespace string) SecretClient
	Events(namespace string) EventClient
	EndpointSlices(namespace string) EndpointSliceClient
	Leases(namespace string) LeaseClient
}

// Scheme holds exactly the kinds Interface serves, and the option types
// of their requests. It is for encoding and decoding only: never add to it.
var Scheme = newScheme()

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, discoveryv1.AddToScheme, coordinationv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(fmt.Sprintf("kubecore scheme: %v", err)) // programming error: static registrations
		}
	}
	// ListOptions and the others, as query parameters (client-go's scheme
	// registers them the same way).
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	return s
}

// clientset is Interface over the API server: one REST client per API
// group, sharing one HTTP client and one client-side rate limiter, as
// client-go's clientset does.
type clientset struct {
	core, discovery, coordination rest.Interface
	params                        runtime.ParameterCodec
}

// NewForConfig returns the client for cfg.
func NewForConfig(cfg *rest.Config) (Interface, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	if cfg.RateLimiter == nil && cfg.QPS > 0 {
		if cfg.Burst <= 0 {
			return nil, fmt.Errorf("kubernetes client: burst %d must be positive when QPS is set", cfg.Burst)
		}
		cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(cfg.QPS, cfg.Burst)
	}
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	codecs := serializer.NewCodecFactory(Scheme)
	group := func(gv schema.GroupVersion, path string) (rest.Interface, error) {
		c := *cfg
		c.GroupVersion, c.APIPath = &gv, path
		c.NegotiatedSerializer = rest.CodecFactoryForGeneratedClient(Scheme, codecs).WithoutConversion()
		rc, err := rest.RESTClientForConfigAndClient(&c, httpClient)
		if err != nil {
			return nil, fmt.Errorf("kubernetes client for %s: %w", gv, err)
		}
		return rc, nil
	}
	cs := &clientset{params: runtime.NewParameterCodec(Scheme)}
	if cs.core, err = group(corev1.SchemeGroupVersion, "/api"); err != nil {
		return nil, err
	}
	if cs.discovery, err = group(discoveryv1.SchemeGroupVersion, "/apis"); err != nil {
		return nil, err
	}
	if cs.coordination, err = group(coordinationv1.SchemeGroupVersion, "/apis"); err != nil {
		return nil, err
	}
	return cs, nil
}

// object is what gentype's clients serve.
type object interface {
	runtime.Object
	metav1.Object
}

// typed is the client of resource in namespace, for objects of type *O
// and lists of type *LO.
func typed[O, LO any, T interface {
	*O
	object
}, L interface {
	*LO
	runtime.Object
}](rc rest.Interface, params runtime.ParameterCodec, resource, namespace string) Client[T, L] {
	return gentype.NewClientWithList(resource, rc, params, namespace, func() T { return new(O) }, func() L { return new(LO) })
}

func (c *clientset) Nodes() NodeClient {
	return typed[corev1.Node, corev1.NodeList](c.core, c.params, "nodes", "")
}

func (c *clientset) Pods(namespace string) PodClient {
	return typed[corev1.Pod, corev1.PodList](c.core, c.params, "pods", namespace)
}

func (c *clientset) Services(namespace string) ServiceClient {
	return typed[corev1.Service, corev1.ServiceList](c.core, c.params, "services", namespace)
}

func (c *clientset) Secrets(namespace string) SecretClient {
	return typed[corev1.Secret, corev1.SecretList](c.core, c.params, "secrets", namespace)
}

func (c *clientset) Events(namespace string) EventClient {
	return typed[corev1.Event, corev1.EventList](c.core, c.params, "events", namespace)
}

func (c *clientset) EndpointSlices(namespace string) EndpointSliceClient {
	return typed[discoveryv1.EndpointSlice, discoveryv1.EndpointSliceList](c.discovery, c.params, "endpointslices", namespace)
}

func (c *clientset) Leases(namespace string) LeaseClient {
	return typed[coordinationv1.Lease, coordinationv1.LeaseList](c.coordination, c.params, "leases", namespace)
}
