package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/cache"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/apis/kubecore"
	"github.com/cairn-net/cairn/bgp/peering"
)

// secretSyncTimeout bounds how long a sync waits for a newly referenced
// Secret to be read.
const secretSyncTimeout = 5 * time.Second

// secretWatch holds the Secrets that BGP passwords refer to, each through
// an informer of its own restricted by a field selector to that one Secret
// in the agent's namespace: passwords are read from memory, a changed
// password triggers a sync, and no other Secret is ever fetched.
type secretWatch struct {
	kube      kubecore.Interface
	namespace string
	// changed is called on every event of a watched Secret.
	changed func()

	mu      sync.Mutex
	watches map[string]*secretInformer // by Secret name
}

type secretInformer struct {
	inf  cache.SharedIndexInformer
	stop context.CancelFunc
}

func newSecretWatch(kube kubecore.Interface, namespace string, changed func()) *secretWatch {
	return &secretWatch{kube: kube, namespace: namespace, changed: changed, watches: map[string]*secretInformer{}}
}

// watch makes the watched Secrets exactly names: it stops the informers of
// Secrets no longer referenced, starts one per new name and waits, up to
// secretSyncTimeout, for those to be read. The informers run until ctx ends.
func (w *secretWatch) watch(ctx context.Context, names []string) {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	var started []cache.InformerSynced
	w.mu.Lock()
	for name, si := range w.watches {
		if !want[name] {
			si.stop()
			delete(w.watches, name)
		}
	}
	for name := range want {
		if _, ok := w.watches[name]; !ok {
			si := w.start(ctx, name)
			w.watches[name] = si
			started = append(started, si.inf.HasSynced)
		}
	}
	w.mu.Unlock()
	if len(started) > 0 {
		wctx, cancel := context.WithTimeout(ctx, secretSyncTimeout)
		defer cancel()
		cache.WaitForCacheSync(wctx.Done(), started...)
	}
}

func (w *secretWatch) start(ctx context.Context, name string) *secretInformer {
	onlyThis := func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
	}
	inf := kubecore.NewInformer(w.kube.Secrets(w.namespace), &corev1.Secret{}, kubecore.InformerOptions{Tweak: onlyThis, Client: w.kube})
	_ = inf.SetTransform(dropManagedFields) // fails only on a started informer
	// AddEventHandler fails only on a stopped informer; this one has not
	// started yet.
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.changed() },
		UpdateFunc: func(any, any) { w.changed() },
		DeleteFunc: func(any) { w.changed() },
	})
	ctx, cancel := context.WithCancel(ctx)
	go inf.Run(ctx.Done())
	return &secretInformer{inf: inf, stop: cancel}
}

// password resolves a BGP password reference (a peering.Secrets) from the
// watched Secrets. Errors name the Secret and key, never the value. Only a
// Secret that the API server says does not exist, or lacks the key, is
// gone; anything else (not read yet, the API server failing) wraps
// peering.ErrPasswordUnavailable, which leaves the sessions as they are.
// Once read, a Secret stays in its informer's cache through API errors.
func (w *secretWatch) password(ref v1.SecretKeyRef) (string, error) {
	w.mu.Lock()
	si, ok := w.watches[ref.Name]
	w.mu.Unlock()
	switch {
	case !ok:
		return "", fmt.Errorf("Secret %s/%s is not watched: %w", w.namespace, ref.Name, peering.ErrPasswordUnavailable)
	case !si.inf.HasSynced():
		return "", fmt.Errorf("Secret %s/%s not read yet: %w", w.namespace, ref.Name, peering.ErrPasswordUnavailable)
	}
	obj, exists, err := si.inf.GetStore().GetByKey(w.namespace + "/" + ref.Name)
	if err != nil {
		return "", fmt.Errorf("read Secret %s/%s from cache: %w", w.namespace, ref.Name, errors.Join(err, peering.ErrPasswordUnavailable))
	}
	if !exists {
		return "", fmt.Errorf("Secret %s/%s not found", w.namespace, ref.Name)
	}
	v, ok := obj.(*corev1.Secret).Data[ref.Key]
	if !ok {
		return "", fmt.Errorf("Secret %s/%s has no key %q", w.namespace, ref.Name, ref.Key)
	}
	return string(v), nil
}
