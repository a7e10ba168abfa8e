package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/leaderelection"
)

// ClientOwners answers Owners with live reads from the API server.
type ClientOwners struct {
	Client kubernetes.Interface
}

// PodAlive implements Owners.
func (o ClientOwners) PodAlive(ctx context.Context, owner Pod) (bool, error) {
	pod, err := o.Client.CoreV1().Pods(owner.Namespace).Get(ctx, owner.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get pod %s/%s: %w", owner.Namespace, owner.Name, err)
	}
	return podAlive(pod, owner), nil
}

// NodeExists implements Owners.
func (o ClientOwners) NodeExists(ctx context.Context, name string) (bool, error) {
	_, err := o.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get node %s: %w", name, err)
	}
	return true, nil
}

// ListerOwners answers Owners from informer caches, for agents that run
// pod and node informers anyway.
type ListerOwners struct {
	Pods  corelisters.PodLister
	Nodes corelisters.NodeLister
}

// PodAlive implements Owners.
func (o ListerOwners) PodAlive(_ context.Context, owner Pod) (bool, error) {
	pod, err := o.Pods.Pods(owner.Namespace).Get(owner.Name)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get pod %s/%s from cache: %w", owner.Namespace, owner.Name, err)
	}
	return podAlive(pod, owner), nil
}

// NodeExists implements Owners.
func (o ListerOwners) NodeExists(_ context.Context, name string) (bool, error) {
	_, err := o.Nodes.Get(name)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get node %s from cache: %w", name, err)
	}
	return true, nil
}

// podAlive: a finished pod's sandbox is torn down, a pod of the same name
// on another node is a new pod (a StatefulSet's web-0 rescheduled), and so
// is one with another UID (deleted and recreated while the owner's sandbox
// was lost without a DEL): none of them owns the address.
func podAlive(pod *corev1.Pod, owner Pod) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	if owner.UID != "" && string(pod.UID) != owner.UID {
		return false
	}
	return owner.Node == "" || pod.Spec.NodeName == "" || pod.Spec.NodeName == owner.Node
}

// LeaderOptions configure leader election for the cluster-wide collector
// (and for any other one-per-cluster loop, such as LoadBalancer IPAM).
type LeaderOptions struct {
	// Client reaches the coordination.k8s.io Lease API.
	Client kubernetes.Interface
	// Namespace and Name of the Lease.
	Namespace, Name string
	// Identity of this candidate (usually the node name); unique.
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod as in client-go;
	// defaults 15s, 10s and 2s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
}

// RunLeaderElected runs lead with a context that ends when leadership is
// lost, each time this candidate becomes leader, until ctx ends. Every
// agent may call it: only the holder of the Lease runs lead.
func RunLeaderElected(ctx context.Context, opts LeaderOptions, lead func(ctx context.Context)) error {
	if opts.Client == nil || opts.Namespace == "" || opts.Name == "" || opts.Identity == "" {
		return errors.New("leader election: Client, Namespace, Name and Identity are required")
	}
	if opts.LeaseDuration == 0 {
		opts.LeaseDuration = 15 * time.Second
	}
	if opts.RenewDeadline == 0 {
		opts.RenewDeadline = 10 * time.Second
	}
	if opts.RetryPeriod == 0 {
		opts.RetryPeriod = 2 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("lease", opts.Namespace+"/"+opts.Name, "identity", opts.Identity)
	lock, stop := watchLease(ctx, opts.Client, opts.Namespace, opts.Name, opts.Identity)
	defer stop()
	var leading sync.Mutex // one lead at a time, also across campaigns
	for ctx.Err() == nil {
		if err := campaign(ctx, opts, lock, log, &leading, lead); err != nil {
			return err
		}
	}
	leading.Lock() // wait for a running lead to return
	leading.Unlock()
	return nil
}

// campaign runs one leader election: it waits to acquire the Lease, runs
// lead while renewing it, and returns once leadership is lost or ctx
// ends. client-go starts lead on its own goroutine; leading makes sure a
// lead from an earlier term has returned before the next one starts, and
// a lead whose term already ended does nothing.
func campaign(ctx context.Context, opts LeaderOptions, lock *watchedLease, log *slog.Logger, leading *sync.Mutex, lead func(ctx context.Context)) error {
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   opts.LeaseDuration,
		RenewDeadline:   opts.RenewDeadline,
		RetryPeriod:     opts.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            opts.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				leading.Lock()
				defer leading.Unlock()
				if ctx.Err() != nil {
					return
				}
				log.Info("became leader")
				lead(ctx)
			},
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election for %s/%s: %w", opts.Namespace, opts.Name, err)
	}
	le.Run(ctx) // returns when leadership is lost or ctx ends
	if ctx.Err() == nil {
		log.Info("lost leadership; campaigning again")
	}
	return nil
}
