package ipam

import (
	"context"
	"errors"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
)

// Objects is compare-and-swap storage for one kind of cluster-scoped
// object. Implementations return copies: callers may modify what they get.
type Objects[T any] interface {
	// Get returns the object called name, or an error wrapping ErrNotFound.
	Get(ctx context.Context, name string) (T, error)
	// List returns every object of the kind.
	List(ctx context.Context) ([]T, error)
	// Create stores a new object, or fails with ErrAlreadyExists.
	Create(ctx context.Context, obj T) (T, error)
	// Update replaces the object if its resourceVersion is still the
	// stored one, and fails with ErrConflict otherwise.
	Update(ctx context.Context, obj T) (T, error)
	// Delete removes the object if resourceVersion is still the stored
	// one (ErrConflict otherwise); an empty resourceVersion deletes
	// unconditionally.
	Delete(ctx context.Context, name, resourceVersion string) error
}

// Store is all the IPAM state: blocks, affinities, handles and pools.
type Store interface {
	// Blocks are the IPAMBlock objects.
	Blocks() Objects[*v1.IPAMBlock]
	// Affinities are the BlockAffinity objects.
	Affinities() Objects[*v1.BlockAffinity]
	// Handles are the IPAMHandle objects.
	Handles() Objects[*v1.IPAMHandle]
	// Pools are the IPPool objects; Update writes their spec.
	Pools() Objects[*v1.IPPool]
	// UpdatePoolStatus writes a pool's status, with compare-and-swap.
	UpdatePoolStatus(ctx context.Context, pool *v1.IPPool) (*v1.IPPool, error)
}

// Errors every Store wraps, so callers branch with errors.Is whatever the
// implementation.
var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: an object with that name exists.
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: the object changed since it was read (resourceVersion).
	ErrConflict = errors.New("conflict")
	// ErrRejected: the store refused the request for good (invalid
	// object, forbidden); retrying cannot help.
	ErrRejected = errors.New("rejected")
)

// IsNotFound reports whether err means the object does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsAlreadyExists reports whether err means the object already exists.
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }

// IsConflict reports whether err is a compare-and-swap failure.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// Retryable reports whether trying the same write again (after re-reading)
// may succeed: conflicts and transient failures are, missing or existing
// objects, rejections and cancelled contexts are not.
func Retryable(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrAlreadyExists), errors.Is(err, ErrRejected),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	}
	return true
}
