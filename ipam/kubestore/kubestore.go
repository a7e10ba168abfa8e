// Package kubestore is the ipam.Store on the Kubernetes API server, through
// Cairn's generated clientset. Updates send the object's resourceVersion,
// deletes send it as a precondition, so every write is a compare-and-swap;
// API errors are mapped onto ipam's typed errors.
package kubestore

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	typed "github.com/cairn-net/cairn/apis/client/clientset/versioned/typed/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
)

// Client-side rate limits used when a rest.Config leaves them at zero.
// client-go's own defaults (5 requests/s, bursts of 10) would serialise a
// burst of pod starts behind the limiter.
const (
	DefaultQPS   = 200
	DefaultBurst = 400
)

// Store is the API-server store.
type Store struct {
	c typed.CairnV1alpha1Interface
}

// New returns a store using c (a clientset's CairnV1alpha1()).
func New(c typed.CairnV1alpha1Interface) *Store {
	return &Store{c: c}
}

// NewForConfig builds a client from cfg, raising client-side rate limits
// left at zero to DefaultQPS and DefaultBurst.
func NewForConfig(cfg *rest.Config) (*Store, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		cfg.QPS = DefaultQPS
	}
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	c, err := typed.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("build cairn client: %w", err)
	}
	return New(c), nil
}

// client is the part of a generated typed client the store uses.
type client[T any, L any] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	List(ctx context.Context, opts metav1.ListOptions) (L, error)
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
}

type objects[T metav1.Object, L any] struct {
	kind  string
	c     client[T, L]
	items func(L) []T
}

// Blocks implements ipam.Store.
func (s *Store) Blocks() ipam.Objects[*v1.IPAMBlock] {
	return objects[*v1.IPAMBlock, *v1.IPAMBlockList]{"IPAMBlock", s.c.IPAMBlocks(), func(l *v1.IPAMBlockList) []*v1.IPAMBlock { return ptrs(l.Items) }}
}

// Affinities implements ipam.Store.
func (s *Store) Affinities() ipam.Objects[*v1.BlockAffinity] {
	return objects[*v1.BlockAffinity, *v1.BlockAffinityList]{"BlockAffinity", s.c.BlockAffinities(), func(l *v1.BlockAffinityList) []*v1.BlockAffinity { return ptrs(l.Items) }}
}

// Handles implements ipam.Store.
func (s *Store) Handles() ipam.Objects[*v1.IPAMHandle] {
	return objects[*v1.IPAMHandle, *v1.IPAMHandleList]{"IPAMHandle", s.c.IPAMHandles(), func(l *v1.IPAMHandleList) []*v1.IPAMHandle { return ptrs(l.Items) }}
}

// Pools implements ipam.Store.
func (s *Store) Pools() ipam.Objects[*v1.IPPool] {
	return objects[*v1.IPPool, *v1.IPPoolList]{"IPPool", s.c.IPPools(), func(l *v1.IPPoolList) []*v1.IPPool { return ptrs(l.Items) }}
}

// UpdatePoolStatus implements ipam.Store.
func (s *Store) UpdatePoolStatus(ctx context.Context, pool *v1.IPPool) (*v1.IPPool, error) {
	out, err := s.c.IPPools().UpdateStatus(ctx, pool, metav1.UpdateOptions{})
	if err != nil {
		return nil, mapErr(fmt.Sprintf("update status of IPPool %s", pool.Name), err)
	}
	return out, nil
}

func ptrs[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}

// Get implements ipam.Objects.
func (o objects[T, L]) Get(ctx context.Context, name string) (T, error) {
	out, err := o.c.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		var zero T
		return zero, mapErr(fmt.Sprintf("get %s %s", o.kind, name), err)
	}
	return out, nil
}

// List implements ipam.Objects.
func (o objects[T, L]) List(ctx context.Context) ([]T, error) {
	l, err := o.c.List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, mapErr(fmt.Sprintf("list %s", o.kind), err)
	}
	return o.items(l), nil
}

// Create implements ipam.Objects.
func (o objects[T, L]) Create(ctx context.Context, obj T) (T, error) {
	out, err := o.c.Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		var zero T
		return zero, mapErr(fmt.Sprintf("create %s %s", o.kind, obj.GetName()), err)
	}
	return out, nil
}

// Update implements ipam.Objects.
func (o objects[T, L]) Update(ctx context.Context, obj T) (T, error) {
	if obj.GetResourceVersion() == "" {
		var zero T
		return zero, fmt.Errorf("update %s %s without a resourceVersion: %w", o.kind, obj.GetName(), ipam.ErrRejected)
	}
	out, err := o.c.Update(ctx, obj, metav1.UpdateOptions{})
	if err != nil {
		var zero T
		return zero, mapErr(fmt.Sprintf("update %s %s", o.kind, obj.GetName()), err)
	}
	return out, nil
}

// Delete implements ipam.Objects.
func (o objects[T, L]) Delete(ctx context.Context, name, resourceVersion string) error {
	opts := metav1.DeleteOptions{}
	if resourceVersion != "" {
		opts.Preconditions = &metav1.Preconditions{ResourceVersion: &resourceVersion}
	}
	if err := o.c.Delete(ctx, name, opts); err != nil {
		return mapErr(fmt.Sprintf("delete %s %s", o.kind, name), err)
	}
	return nil
}

// mapErr wraps an API error with what was done and the matching ipam error.
func mapErr(what string, err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s: %w: %w", what, ipam.ErrNotFound, err)
	case apierrors.IsAlreadyExists(err):
		return fmt.Errorf("%s: %w: %w", what, ipam.ErrAlreadyExists, err)
	case apierrors.IsConflict(err):
		return fmt.Errorf("%s: %w: %w", what, ipam.ErrConflict, err)
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsForbidden(err),
		apierrors.IsUnauthorized(err), apierrors.IsMethodNotSupported(err), apierrors.IsNotAcceptable(err),
		apierrors.IsUnsupportedMediaType(err), apierrors.IsRequestEntityTooLargeError(err):
		return fmt.Errorf("%s: %w: %w", what, ipam.ErrRejected, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
