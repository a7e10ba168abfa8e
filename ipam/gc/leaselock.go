package gc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	coordinationinformers "k8s.io/client-go/informers/coordination/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// watchedLease is a Lease lock whose candidates read the Lease from a
// watch rather than from the API server. client-go's LeaseLock GETs the
// Lease on every retry period, so every waiting candidate (every agent
// but the leader) costs the API server a request every 2 to 4 s per
// Lease, and a cluster's total grows with its nodes. Here a waiting
// candidate reads its watch cache, and the API server sees nothing of it
// until the Lease expires or is released.
//
// The election itself stays client-go's: it decides from what Get
// returns, with its own clock, exactly as with a LeaseLock. Every write
// is a compare-and-swap on the resourceVersion of the Lease as last read
// or written, so a cache that lags costs at most a conflict, never a
// second leader; after a failed write, and whenever the cache names this
// candidate as the holder (a leader whose fast renewal failed, or one
// releasing the Lease), Get reads the API server.
type watchedLease struct {
	client   kubernetes.Interface
	meta     metav1.ObjectMeta
	identity string
	store    cache.Store // the watch's cache: this one Lease
	synced   func() bool // the watch has listed it

	mu sync.Mutex
	// lease is the Lease as last read or written: what Update overwrites.
	lease *coordinationv1.Lease
	// readLive makes the next Get read the API server.
	readLive bool
}

var _ resourcelock.Interface = (*watchedLease)(nil)

// watchLease starts watching the Lease namespace/name and returns its
// lock; stop ends the watch. Until the watch has listed the Lease (and
// if it never can, say for want of list and watch permissions) the lock
// reads the API server, as client-go's does.
func watchLease(ctx context.Context, client kubernetes.Interface, namespace, name, identity string) (*watchedLease, func()) {
	byName := func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
	}
	inf := coordinationinformers.NewFilteredLeaseInformer(client, namespace, 0, cache.Indexers{}, byName)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { inf.RunWithContext(ctx); close(done) }()
	l := &watchedLease{client: client, meta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		identity: identity, store: inf.GetStore(), synced: inf.HasSynced}
	return l, func() { cancel(); <-done }
}

// Get returns the election record: from the watch while another
// candidate holds the Lease, else from the API server.
func (l *watchedLease) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lease, err := l.read(ctx)
	if err != nil {
		return nil, nil, err
	}
	l.lease = lease
	record := resourcelock.LeaseSpecToLeaderElectionRecord(&lease.Spec)
	raw, err := json.Marshal(*record)
	if err != nil {
		return nil, nil, fmt.Errorf("encode election record of Lease %s: %w", l.Describe(), err)
	}
	return record, raw, nil
}

// read is the Lease as the watch has it, unless that could be stale for
// this candidate's purpose: then the API server's.
func (l *watchedLease) read(ctx context.Context) (*coordinationv1.Lease, error) {
	if !l.readLive && l.synced() {
		cached, err := l.cached()
		if err != nil || cached == nil || holder(cached) != l.identity {
			return cached, err
		}
	}
	lease, err := l.client.CoordinationV1().Leases(l.meta.Namespace).Get(ctx, l.meta.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err // as client-go's LeaseLock: the elector tells not-found (create) from the rest
	}
	l.readLive = false
	return lease, nil
}

// cached is the watch's copy of the Lease; not found is an error the
// elector answers by creating it.
func (l *watchedLease) cached() (*coordinationv1.Lease, error) {
	obj, ok, err := l.store.GetByKey(l.meta.Namespace + "/" + l.meta.Name)
	if err != nil {
		return nil, fmt.Errorf("read Lease %s from the watch: %w", l.Describe(), err)
	}
	if !ok {
		return nil, apierrors.NewNotFound(coordinationv1.Resource("leases"), l.meta.Name)
	}
	lease, ok := obj.(*coordinationv1.Lease)
	if !ok {
		return nil, fmt.Errorf("read Lease %s from the watch: a %T", l.Describe(), obj)
	}
	return lease.DeepCopy(), nil
}

func holder(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// Create creates the Lease holding ler.
func (l *watchedLease) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	lease := &coordinationv1.Lease{ObjectMeta: l.meta, Spec: resourcelock.LeaderElectionRecordToLeaseSpec(&ler)}
	created, err := l.client.CoordinationV1().Leases(l.meta.Namespace).Create(ctx, lease, metav1.CreateOptions{})
	return l.wrote(created, err)
}

// Update writes ler over the Lease as last read or written, if nobody
// changed it since.
func (l *watchedLease) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lease == nil {
		return errors.New("lease not initialized, call get or create first")
	}
	lease := l.lease.DeepCopy()
	lease.Spec = resourcelock.LeaderElectionRecordToLeaseSpec(&ler)
	updated, err := l.client.CoordinationV1().Leases(l.meta.Namespace).Update(ctx, lease, metav1.UpdateOptions{})
	return l.wrote(updated, err)
}

// wrote keeps what a write returned; after a failure the next Get asks
// the API server, which the watch may not have caught up with.
func (l *watchedLease) wrote(lease *coordinationv1.Lease, err error) error {
	if err != nil {
		l.readLive = true
		return err
	}
	l.lease = lease
	return nil
}

// RecordEvent records nothing: the agents log their terms themselves.
func (l *watchedLease) RecordEvent(string) {}

// Identity is this candidate's.
func (l *watchedLease) Identity() string { return l.identity }

// Describe names the Lease.
func (l *watchedLease) Describe() string { return l.meta.Namespace + "/" + l.meta.Name }
