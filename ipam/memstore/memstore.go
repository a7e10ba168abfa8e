// Package memstore is an in-memory ipam.Store for tests. It behaves like
// the API server where the allocator depends on it (resourceVersion
// compare-and-swap, typed errors, copies in and out) and can be told to
// fail chosen calls: with a conflict or any error, before or after the
// write takes effect, so every write can be made to fail in turn.
package memstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
)

// Kind names a kind of object.
type Kind string

// Kinds of object.
const (
	Blocks     Kind = "blocks"
	Affinities Kind = "affinities"
	Handles    Kind = "handles"
	Pools      Kind = "pools"
)

// Op names a store call.
type Op string

// Store calls. Create, Update, Delete and UpdateStatus are writes.
const (
	Get          Op = "get"
	List         Op = "list"
	Create       Op = "create"
	Update       Op = "update"
	Delete       Op = "delete"
	UpdateStatus Op = "updateStatus"
)

// IsWrite reports whether op changes the store.
func (op Op) IsWrite() bool { return op != Get && op != List }

// Store is the in-memory store. The zero value is not usable; call New.
type Store struct {
	mu     sync.Mutex
	rv     int64
	tables map[Kind]map[string]any
	faults []*Fault
	calls  map[Kind]map[Op]int
	writes int
	delay  time.Duration
	log    []string
}

// WriteLog returns "op kind name" for every write call so far, in order.
func (s *Store) WriteLog() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

// SetLatency makes every call take at least d, outside the store's lock,
// like a round trip to an API server; it lets concurrent callers overlap
// as they would against a real one.
func (s *Store) SetLatency(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// New returns an empty store.
func New() *Store {
	s := &Store{tables: map[Kind]map[string]any{}, calls: map[Kind]map[Op]int{}}
	for _, k := range []Kind{Blocks, Affinities, Handles, Pools} {
		s.tables[k] = map[string]any{}
		s.calls[k] = map[Op]int{}
	}
	return s
}

// Blocks implements ipam.Store.
func (s *Store) Blocks() ipam.Objects[*v1.IPAMBlock] {
	return table[v1.IPAMBlock, *v1.IPAMBlock]{s, Blocks}
}

// Affinities implements ipam.Store.
func (s *Store) Affinities() ipam.Objects[*v1.BlockAffinity] {
	return table[v1.BlockAffinity, *v1.BlockAffinity]{s, Affinities}
}

// Handles implements ipam.Store.
func (s *Store) Handles() ipam.Objects[*v1.IPAMHandle] {
	return table[v1.IPAMHandle, *v1.IPAMHandle]{s, Handles}
}

// Pools implements ipam.Store.
func (s *Store) Pools() ipam.Objects[*v1.IPPool] {
	return table[v1.IPPool, *v1.IPPool]{s, Pools}
}

// UpdatePoolStatus implements ipam.Store: only the status is written.
func (s *Store) UpdatePoolStatus(ctx context.Context, pool *v1.IPPool) (*v1.IPPool, error) {
	t := table[v1.IPPool, *v1.IPPool]{s, Pools}
	return t.write(ctx, UpdateStatus, pool.Name, func() (*v1.IPPool, error) {
		cur, err := t.current(pool.Name, pool.ResourceVersion)
		if err != nil {
			return nil, err
		}
		next := cur.DeepCopy()
		next.Status = *pool.Status.DeepCopy()
		return t.put(next), nil
	})
}

// Calls returns how many calls of op on kind were made, failed ones
// included.
func (s *Store) Calls(kind Kind, op Op) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[kind][op]
}

// Writes returns the number of write calls made so far, failed ones
// included.
func (s *Store) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// object is what every IPAM kind's pointer type offers.
type object[T any] interface {
	*T
	metav1.Object
	DeepCopy() *T
}

type table[T any, P object[T]] struct {
	s    *Store
	kind Kind
}

// Get implements ipam.Objects.
func (t table[T, P]) Get(ctx context.Context, name string) (P, error) {
	var out P
	err := t.s.call(ctx, t.kind, Get, name, func() error {
		o, ok := t.s.tables[t.kind][name]
		if !ok {
			return fmt.Errorf("get %s %s: %w", t.kind, name, ipam.ErrNotFound)
		}
		out = P(o.(P).DeepCopy())
		return nil
	})
	return out, err
}

// List implements ipam.Objects.
func (t table[T, P]) List(ctx context.Context) ([]P, error) {
	var out []P
	err := t.s.call(ctx, t.kind, List, "", func() error {
		names := make([]string, 0, len(t.s.tables[t.kind]))
		for n := range t.s.tables[t.kind] {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			out = append(out, P(t.s.tables[t.kind][n].(P).DeepCopy()))
		}
		return nil
	})
	return out, err
}

// Create implements ipam.Objects.
func (t table[T, P]) Create(ctx context.Context, obj P) (P, error) {
	return t.write(ctx, Create, obj.GetName(), func() (P, error) {
		if obj.GetName() == "" {
			return nil, fmt.Errorf("create %s: empty name: %w", t.kind, ipam.ErrRejected)
		}
		if _, ok := t.s.tables[t.kind][obj.GetName()]; ok {
			return nil, fmt.Errorf("create %s %s: %w", t.kind, obj.GetName(), ipam.ErrAlreadyExists)
		}
		next := P(obj.DeepCopy())
		next.SetCreationTimestamp(metav1.Now())
		next.SetUID("")
		return t.put(next), nil
	})
}

// Update implements ipam.Objects.
func (t table[T, P]) Update(ctx context.Context, obj P) (P, error) {
	return t.write(ctx, Update, obj.GetName(), func() (P, error) {
		cur, err := t.current(obj.GetName(), obj.GetResourceVersion())
		if err != nil {
			return nil, err
		}
		if obj.GetResourceVersion() == "" {
			return nil, fmt.Errorf("update %s %s: no resourceVersion: %w", t.kind, obj.GetName(), ipam.ErrRejected)
		}
		next := P(obj.DeepCopy())
		next.SetCreationTimestamp(cur.GetCreationTimestamp())
		if t.kind == Pools {
			// As on the API server, the status subresource is not written by
			// an update of the main resource.
			any(next).(*v1.IPPool).Status = any(cur).(*v1.IPPool).Status
		}
		return t.put(next), nil
	})
}

// Delete implements ipam.Objects.
func (t table[T, P]) Delete(ctx context.Context, name, resourceVersion string) error {
	_, err := t.write(ctx, Delete, name, func() (P, error) {
		if _, err := t.current(name, resourceVersion); err != nil {
			return nil, err
		}
		delete(t.s.tables[t.kind], name)
		return nil, nil
	})
	return err
}

// current returns the stored object, checking resourceVersion when set.
// Called with s.mu held.
func (t table[T, P]) current(name, resourceVersion string) (P, error) {
	o, ok := t.s.tables[t.kind][name]
	if !ok {
		return nil, fmt.Errorf("%s %s: %w", t.kind, name, ipam.ErrNotFound)
	}
	cur := o.(P)
	if resourceVersion != "" && cur.GetResourceVersion() != resourceVersion {
		return nil, fmt.Errorf("%s %s: resourceVersion %s is not the current %s: %w",
			t.kind, name, resourceVersion, cur.GetResourceVersion(), ipam.ErrConflict)
	}
	return cur, nil
}

// put stores obj with a new resourceVersion and returns a copy. Called
// with s.mu held.
func (t table[T, P]) put(obj P) P {
	t.s.rv++
	obj.SetResourceVersion(strconv.FormatInt(t.s.rv, 10))
	t.s.tables[t.kind][obj.GetName()] = obj
	return P(obj.DeepCopy())
}

func (t table[T, P]) write(ctx context.Context, op Op, name string, fn func() (P, error)) (P, error) {
	var out P
	err := t.s.call(ctx, t.kind, op, name, func() error {
		var err error
		out, err = fn()
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// call runs fn under the lock, counting the call and applying faults.
func (s *Store) call(ctx context.Context, kind Kind, op Op, name string, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s %s: %w", op, kind, name, err)
	}
	s.mu.Lock()
	delay := s.delay
	s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s %s %s: %w", op, kind, name, ctx.Err())
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[kind][op]++
	if op.IsWrite() {
		s.writes++
		s.log = append(s.log, fmt.Sprintf("%s %s %s", op, kind, name))
	}
	f := s.matchFault(kind, op, name)
	if f == nil {
		return fn()
	}
	if f.Applied {
		if err := fn(); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s %s %s: injected: %w", op, kind, name, f.Err)
}

// Fault makes matching calls fail.
type Fault struct {
	// Kind to match; empty matches every kind.
	Kind Kind
	// Op to match; empty matches every write (reads too with AllOps).
	Op Op
	// AllOps makes an empty Op match reads as well: the store is down.
	AllOps bool
	// Name prefix of the object to match; empty matches all.
	Name string
	// Skip lets this many matching calls through before failing.
	Skip int
	// Times is how many matching calls fail; 0 means one, negative
	// means every one from then on.
	Times int
	// Every, when above 1, fails only every Every-th matching call.
	Every int
	seen  int
	// Err is returned (wrapped); nil means ipam.ErrConflict.
	Err error
	// Applied makes the write take effect before the error is returned,
	// as when a response is lost.
	Applied bool
	// Hits counts the calls this fault failed.
	Hits int
	// Fired is closed when the fault first fails a call.
	Fired chan struct{}
}

// Inject adds a fault. Faults are checked in the order they were added;
// the first matching one applies.
func (s *Store) Inject(f Fault) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Times == 0 {
		f.Times = 1
	}
	if f.Err == nil {
		f.Err = ipam.ErrConflict
	}
	f.Fired = make(chan struct{})
	s.faults = append(s.faults, &f)
	return &f
}

// FailNext makes the next n calls of op on kind fail with err (nil means
// a conflict).
func (s *Store) FailNext(kind Kind, op Op, n int, err error) *Fault {
	return s.Inject(Fault{Kind: kind, Op: op, Times: n, Err: err})
}

// FailWrite makes the n-th write from now (1 is the next one) fail with
// err; applied says whether it takes effect anyway.
func (s *Store) FailWrite(n int, err error, applied bool) *Fault {
	return s.Inject(Fault{Skip: n - 1, Times: 1, Err: err, Applied: applied})
}

// Hits returns how many calls f failed so far.
func (s *Store) Hits(f *Fault) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return f.Hits
}

// ClearFaults removes every fault.
func (s *Store) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// matchFault returns the fault that applies to this call, if any. Called
// with s.mu held.
func (s *Store) matchFault(kind Kind, op Op, name string) *Fault {
	for _, f := range s.faults {
		if f.Times == 0 || (f.Kind != "" && f.Kind != kind) || !strings.HasPrefix(name, f.Name) {
			continue
		}
		if (f.Op == "" && !op.IsWrite() && !f.AllOps) || (f.Op != "" && f.Op != op) {
			continue
		}
		if f.Skip > 0 {
			f.Skip--
			continue
		}
		if f.Every > 1 {
			if f.seen++; f.seen%f.Every != 0 {
				continue
			}
		}
		if f.Times > 0 {
			f.Times--
		}
		if f.Hits++; f.Hits == 1 {
			close(f.Fired)
		}
		return f
	}
	return nil
}
