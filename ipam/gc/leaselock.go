package gc

import (
	"context"
	"fmt"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/cache"

	"github.com/cairn-net/cairn/apis/kubecore"
)

// watchedLease is the Lease as the elector reads and writes it, its
// candidates reading it from a watch rather than from the API server.
// client-go's LeaseLock GETs the Lease on every retry period, so every
// waiting candidate (every agent but the leader) would cost the API
// server a request every 2 to 4 s per Lease, and a cluster's total grow
// with its nodes. Here a waiting candidate reads its watch cache, and the
// API server sees nothing of it until the Lease expires or is released.
//
// The elector decides from what get returns, with its own clock. Every
// write is a compare-and-swap on the resourceVersion of the Lease as last
// read or written, so a cache that lags costs at most a conflict, never a
// second leader; after a failed write, and whenever the cache names this
// candidate as the holder (a leader whose renewal failed, or one
// releasing the Lease), get reads the API server. One goroutine uses it:
// the campaigns'.
type watchedLease struct {
	leases   kubecore.LeaseClient
	meta     metav1.ObjectMeta
	identity string
	store    cache.Store // the watch's cache: this one Lease; nil reads the API server
	synced   func() bool // the watch has listed it

	// readLive makes the next get read the API server.
	readLive bool
	// own is the Lease as this candidate's last write left it.
	own *coordinationv1.Lease
}

// watchLease starts watching the Lease namespace/name and returns it;
// stop ends the watch. Until the watch has listed the Lease (and if it
// never can, say for want of list and watch permissions) get reads the
// API server, as client-go's lock does.
func watchLease(ctx context.Context, client kubecore.Interface, namespace, name, identity string) (*watchedLease, func()) {
	byName := func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
	}
	inf := kubecore.NewInformer(client.Leases(namespace), &coordinationv1.Lease{}, kubecore.InformerOptions{Tweak: byName, Client: client})
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { inf.RunWithContext(ctx); close(done) }()
	l := &watchedLease{leases: client.Leases(namespace), meta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		identity: identity, store: inf.GetStore(), synced: inf.HasSynced}
	return l, func() { cancel(); <-done }
}

// get is the Lease as the watch has it, unless that could be stale for
// this candidate's purpose: then the API server's. Not found is an error
// the elector answers by creating it.
func (l *watchedLease) get(ctx context.Context) (*coordinationv1.Lease, error) {
	// The holder renews over its own last write, as client-go's leader
	// does (its optimistic renewal): if anyone changed the Lease since,
	// the conditional write fails and the next get reads the API server.
	// A GET before every renewal doubled the leader's requests.
	if !l.readLive && l.own != nil && holder(l.own) == l.identity {
		return l.own.DeepCopy(), nil
	}
	if !l.readLive && l.store != nil && l.synced() {
		cached, err := l.cached()
		if err != nil || cached == nil || holder(cached) != l.identity {
			return cached, err
		}
	}
	lease, err := l.leases.Get(ctx, l.meta.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	l.readLive = false
	return lease, nil
}

// cached is the watch's copy of the Lease.
func (l *watchedLease) cached() (*coordinationv1.Lease, error) {
	obj, ok, err := l.store.GetByKey(l.meta.Namespace + "/" + l.meta.Name)
	if err != nil {
		return nil, fmt.Errorf("read Lease %s from the watch: %w", l.describe(), err)
	}
	if !ok {
		return nil, apierrors.NewNotFound(coordinationv1.Resource("leases"), l.meta.Name)
	}
	lease, ok := obj.(*coordinationv1.Lease)
	if !ok {
		return nil, fmt.Errorf("read Lease %s from the watch: a %T", l.describe(), obj)
	}
	return lease.DeepCopy(), nil
}

func holder(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// create creates the Lease as given.
func (l *watchedLease) create(ctx context.Context, lease *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	lease.ObjectMeta = l.meta
	return l.wrote(l.leases.Create(ctx, lease, metav1.CreateOptions{}))
}

// update writes lease, if nobody changed it since the version it carries
// was read.
func (l *watchedLease) update(ctx context.Context, lease *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	return l.wrote(l.leases.Update(ctx, lease, metav1.UpdateOptions{}))
}

// wrote passes on what a write returned; after a failure the next get
// asks the API server, which the watch may not have caught up with.
func (l *watchedLease) wrote(lease *coordinationv1.Lease, err error) (*coordinationv1.Lease, error) {
	if err != nil {
		l.readLive, l.own = true, nil
		return nil, err
	}
	l.own = lease.DeepCopy()
	return lease, nil
}

// describe names the Lease.
func (l *watchedLease) describe() string { return l.meta.Namespace + "/" + l.meta.Name }
