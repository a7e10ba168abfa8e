package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/cairn-net/cairn/apis/kubecore"
)

// ClientOwners answers Owners with live reads from the API server.
type ClientOwners struct {
	Client kubecore.Interface
}

// PodAlive implements Owners.
func (o ClientOwners) PodAlive(ctx context.Context, owner Pod) (bool, error) {
	pod, err := o.Client.Pods(owner.Namespace).Get(ctx, owner.Name, metav1.GetOptions{})
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
	_, err := o.Client.Nodes().Get(ctx, name, metav1.GetOptions{})
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
	Client kubecore.Interface
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
	if opts.RenewDeadline >= opts.LeaseDuration || opts.RetryPeriod >= opts.RenewDeadline {
		return fmt.Errorf("leader election: want RetryPeriod %v < RenewDeadline %v < LeaseDuration %v",
			opts.RetryPeriod, opts.RenewDeadline, opts.LeaseDuration)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("lease", opts.Namespace+"/"+opts.Name, "identity", opts.Identity)
	lease, stop := watchLease(ctx, opts.Client, opts.Namespace, opts.Name, opts.Identity)
	defer stop()
	for ctx.Err() == nil {
		campaign(ctx, opts, lease, log, lead)
	}
	return nil
}

// campaign runs one term: it waits to acquire the Lease, runs lead while
// renewing it, and returns once leadership is lost or ctx ends. lead
// runs on its own goroutine and has returned before the Lease is released
// and campaign returns: never two leads at once in this process, and
// another candidate takes over only from a lead that has stopped (or
// whose term expired).
func campaign(ctx context.Context, opts LeaderOptions, lease *watchedLease, log *slog.Logger, lead func(ctx context.Context)) {
	e := &elector{lease: lease, opts: opts, log: log, now: time.Now}
	if !e.acquire(ctx) {
		return
	}
	term, end := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		log.Info("became leader")
		lead(term)
	}()
	e.renew(term) // returns when leadership is lost or ctx ends
	end()
	<-done
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.RenewDeadline)
	e.release(rctx)
	cancel()
	if ctx.Err() == nil {
		log.Info("lost leadership; campaigning again")
	}
}
