// Package kubecoretest hands a client-go clientset, usually the fake
// (k8s.io/client-go/kubernetes/fake), to code that takes a
// kubecore.Interface, and Cairn's fake clientset to code that takes its
// typed client. Only tests import it: it brings client-go's scheme
// of every API group that kubecore exists to leave out.
package kubecoretest

import (
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/watchlist"

	cairnfake "github.com/cairn-net/cairn/apis/client/clientset/versioned/fake"
	cairnclient "github.com/cairn-net/cairn/apis/client/clientset/versioned/typed/cairn/v1alpha1"
	"github.com/cairn-net/cairn/apis/kubecore"
)

// From is cs as a kubecore.Interface.
func From(cs kubernetes.Interface) kubecore.Interface { return clientset{cs} }

type clientset struct{ cs kubernetes.Interface }

// IsWatchListSemanticsUnSupported passes on the fake clientset's answer:
// informers then list instead of asking for a streaming list.
func (c clientset) IsWatchListSemanticsUnSupported() bool {
	return watchlist.DoesClientNotSupportWatchListSemantics(c.cs)
}

func (c clientset) Nodes() kubecore.NodeClient { return c.cs.CoreV1().Nodes() }

func (c clientset) Pods(ns string) kubecore.PodClient { return c.cs.CoreV1().Pods(ns) }

func (c clientset) Services(ns string) kubecore.ServiceClient { return c.cs.CoreV1().Services(ns) }

func (c clientset) Secrets(ns string) kubecore.SecretClient { return c.cs.CoreV1().Secrets(ns) }

func (c clientset) Events(ns string) kubecore.EventClient { return c.cs.CoreV1().Events(ns) }

func (c clientset) EndpointSlices(ns string) kubecore.EndpointSliceClient {
	return c.cs.DiscoveryV1().EndpointSlices(ns)
}

func (c clientset) Leases(ns string) kubecore.LeaseClient { return c.cs.CoordinationV1().Leases(ns) }

// Cairn is the typed client of Cairn's fake clientset, saying, as the
// clientset does, that it cannot serve streaming lists.
func Cairn(cs *cairnfake.Clientset) cairnclient.CairnV1alpha1Interface {
	return cairnTyped{cs.CairnV1alpha1()}
}

type cairnTyped struct {
	cairnclient.CairnV1alpha1Interface
}

func (cairnTyped) IsWatchListSemanticsUnSupported() bool { return true }
