package kubecore

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// ListWatcher lists and watches objects whose list is of type L: a Client,
// or any generated typed client (Cairn's CRDs).
type ListWatcher[L runtime.Object] interface {
	List(ctx context.Context, opts metav1.ListOptions) (L, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// InformerOptions configure NewInformer.
type InformerOptions struct {
	// Tweak, if set, changes every list and watch request (a field
	// selector, say).
	Tweak func(*metav1.ListOptions)
	// Client is the clientset lw comes from: a fake one says that it
	// cannot serve streaming lists, and the informer then lists.
	Client any
}

// NewInformer is a shared informer over lw's objects, examples of which
// are like example, with no periodic resync: what client-go's informer
// factories make, without their registry of every API group.
func NewInformer[L runtime.Object](lw ListWatcher[L], example runtime.Object, o InformerOptions) cache.SharedIndexInformer {
	tweak := func(opts *metav1.ListOptions) {
		if o.Tweak != nil {
			o.Tweak(opts)
		}
	}
	return cache.NewSharedIndexInformerWithOptions(cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			tweak(&opts)
			return lw.List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			tweak(&opts)
			return lw.Watch(ctx, opts)
		},
	}, o.Client), example, cache.SharedIndexInformerOptions{
		Indexers: cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc},
	})
}
