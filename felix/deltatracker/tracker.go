// Package deltatracker keeps desired state and actual (dataplane) state side
// by side and tracks, incrementally, which keys differ: the updates to make
// (desired and missing or different in the dataplane) and the deletions to
// make (in the dataplane and not desired). It is pure bookkeeping: it knows
// nothing of routes or the kernel.
package deltatracker

import "iter"

// entry holds both sides of one key in one map value, so that a resync
// costs at most one map lookup per observed key (at 64k keys, map lookups
// that miss the CPU cache are the dominant cost of a resync; see snapshot
// for how a resync with nothing changed avoids even that).
type entry[V any] struct {
	desired, actual       V
	hasDesired, hasActual bool
	// seen is the resync generation in which actual was last observed.
	seen uint64
}

// Tracker tracks desired vs actual for keys K with values V. It is not safe
// for concurrent use.
type Tracker[K comparable, V any] struct {
	equal   func(desired, actual V) bool
	entries map[K]*entry[V]
	// The pending sets point at their entries so that walking them costs
	// no lookup in entries.
	pendingUpdates map[K]*entry[V]
	pendingDeletes map[K]*entry[V]
	numDesired     int
	numActual      int
	// classify, when set, files every actual value under a class in
	// [0, len(byClass)); byClass counts them (see CountActualBy).
	classify func(V) int
	byClass  []int

	gen       uint64
	resyncing bool
	// observed counts the distinct keys observed in the current resync.
	observed int

	snapshot snapshot[K, V]
}

// New returns an empty tracker; equal decides whether an actual value
// already satisfies a desired one.
func New[K comparable, V any](equal func(desired, actual V) bool) *Tracker[K, V] {
	return &Tracker[K, V]{
		equal:          equal,
		entries:        map[K]*entry[V]{},
		pendingUpdates: map[K]*entry[V]{},
		pendingDeletes: map[K]*entry[V]{},
	}
}

// recompute files k under the right pending set and drops empty entries.
func (t *Tracker[K, V]) recompute(k K, e *entry[V]) {
	switch {
	case e.hasDesired && (!e.hasActual || !t.equal(e.desired, e.actual)):
		t.pendingUpdates[k] = e
		delete(t.pendingDeletes, k)
	case !e.hasDesired && e.hasActual:
		t.pendingDeletes[k] = e
		delete(t.pendingUpdates, k)
	default:
		delete(t.pendingUpdates, k)
		delete(t.pendingDeletes, k)
	}
	if !e.hasDesired && !e.hasActual {
		delete(t.entries, k)
	}
}

func (t *Tracker[K, V]) get(k K) *entry[V] {
	e := t.entries[k]
	if e == nil {
		e = &entry[V]{}
		t.entries[k] = e
	}
	return e
}

// SetDesired records that k should be v.
func (t *Tracker[K, V]) SetDesired(k K, v V) {
	e := t.get(k)
	if !e.hasDesired {
		t.numDesired++
	}
	e.desired, e.hasDesired = v, true
	t.recompute(k, e)
}

// DeleteDesired records that k should not exist.
func (t *Tracker[K, V]) DeleteDesired(k K) {
	e := t.entries[k]
	if e == nil || !e.hasDesired {
		return
	}
	var zero V
	e.desired, e.hasDesired = zero, false
	t.numDesired--
	t.recompute(k, e)
}

// Desired returns the desired value of k.
func (t *Tracker[K, V]) Desired(k K) (V, bool) {
	if e := t.entries[k]; e != nil && e.hasDesired {
		return e.desired, true
	}
	var zero V
	return zero, false
}

// Actual returns the actual value of k.
func (t *Tracker[K, V]) Actual(k K) (V, bool) {
	if e := t.entries[k]; e != nil && e.hasActual {
		return e.actual, true
	}
	var zero V
	return zero, false
}

// SetActual records that the dataplane holds v for k (after a write, or
// when observed outside a resync).
func (t *Tracker[K, V]) SetActual(k K, v V) {
	t.snapshot.changed(k)
	e := t.get(k)
	t.setActual(e, v)
	t.recompute(k, e)
}

// DeleteActual records that the dataplane no longer holds k.
func (t *Tracker[K, V]) DeleteActual(k K) {
	t.snapshot.changed(k)
	e := t.entries[k]
	if e == nil || !e.hasActual {
		return
	}
	t.clearActual(e)
	t.recompute(k, e)
}

// setActual and clearActual are the only places the actual side of an
// entry changes, so the counts stay exact.
func (t *Tracker[K, V]) setActual(e *entry[V], v V) {
	if e.hasActual {
		t.count(e.actual, -1)
	} else {
		t.numActual++
	}
	e.actual, e.hasActual = v, true
	t.count(v, 1)
}

func (t *Tracker[K, V]) clearActual(e *entry[V]) {
	t.count(e.actual, -1)
	var zero V
	e.actual, e.hasActual = zero, false
	t.numActual--
}

func (t *Tracker[K, V]) count(v V, delta int) {
	if t.classify != nil {
		t.byClass[t.classify(v)] += delta
	}
}

// CountActualBy makes the tracker count the actual values per class, as
// classify (into [0, n)) files them, so NumActualIn answers without a
// walk. Values already held are counted now.
func (t *Tracker[K, V]) CountActualBy(n int, classify func(V) int) {
	t.classify, t.byClass = classify, make([]int, n)
	for _, e := range t.entries {
		if e.hasActual {
			t.count(e.actual, 1)
		}
	}
}

// NumActualIn is the number of actual values in class c (see
// CountActualBy); 0 when values are not counted.
func (t *Tracker[K, V]) NumActualIn(c int) int {
	if c < 0 || c >= len(t.byClass) {
		return 0
	}
	return t.byClass[c]
}

// BeginResync starts a full read-back of the dataplane: report every key it
// holds with ObserveActual, then call EndResync, which forgets the keys that
// were not observed. Calling BeginResync again before EndResync starts the
// read-back over.
func (t *Tracker[K, V]) BeginResync() {
	t.snapshot.begin(t.resyncing)
	t.gen++
	t.resyncing = true
	t.observed = 0
}

// ObserveActual records one key read back during a resync.
func (t *Tracker[K, V]) ObserveActual(k K, v V) {
	if t.snapshot.match(k, v, t.equal) {
		// Same key, same value, same place as last time: nothing to do,
		// not even a map lookup.
		t.observed++
		return
	}
	e := t.get(k)
	if e.seen != t.gen {
		t.observed++
	}
	e.seen = t.gen
	if e.hasActual && t.equal(v, e.actual) {
		// Nothing changed for k: skip recompute's map writes.
		return
	}
	t.setActual(e, v)
	t.recompute(k, e)
}

// EndResync forgets the actual value of every key not observed since
// BeginResync, without walking all keys unless the snapshot cannot say
// which ones may have vanished.
func (t *Tracker[K, V]) EndResync() {
	if !t.resyncing {
		return
	}
	t.resyncing = false
	// Every observed key has an actual value, so when the counts agree no
	// held key went unobserved.
	if t.numActual == t.observed {
		t.snapshot.end()
		return
	}
	if t.snapshot.exact {
		// Snapshot matches were not stamped, but none of these keys was
		// matched: an unstamped one was not read back.
		for _, k := range t.snapshot.unread() {
			t.forgetUnseen(k, t.entries[k])
		}
	}
	t.snapshot.end()
	if t.numActual == t.observed {
		return
	}
	// Keys matched against the snapshot were not stamped: stamp them, then
	// walk everything.
	for _, it := range t.snapshot.items {
		if e := t.entries[it.k]; e != nil {
			e.seen = t.gen
		}
	}
	for k, e := range t.entries {
		t.forgetUnseen(k, e)
	}
}

func (t *Tracker[K, V]) forgetUnseen(k K, e *entry[V]) {
	if e == nil || !e.hasActual || e.seen == t.gen {
		return
	}
	t.clearActual(e)
	t.recompute(k, e)
}

// InSync reports whether desired and actual agree on k (both absent, or
// equal).
func (t *Tracker[K, V]) InSync(k K) bool {
	_, u := t.pendingUpdates[k]
	_, d := t.pendingDeletes[k]
	return !u && !d
}

// Update is a pending write: the desired value, and whether the
// dataplane holds a (different) value for the key already.
type Update[V any] struct {
	Desired     V
	InDataplane bool
}

// PendingUpdates yields each key to write.
func (t *Tracker[K, V]) PendingUpdates() iter.Seq2[K, Update[V]] {
	return func(yield func(K, Update[V]) bool) {
		for k, e := range t.pendingUpdates {
			if !yield(k, Update[V]{Desired: e.desired, InDataplane: e.hasActual}) {
				return
			}
		}
	}
}

// PendingDeletes yields each key to delete, with its actual value.
func (t *Tracker[K, V]) PendingDeletes() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for k, e := range t.pendingDeletes {
			if !yield(k, e.actual) {
				return
			}
		}
	}
}

// AllActual yields every key the dataplane holds.
func (t *Tracker[K, V]) AllActual() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for k, e := range t.entries {
			if e.hasActual && !yield(k, e.actual) {
				return
			}
		}
	}
}

// NumPendingUpdates is the number of keys to write.
func (t *Tracker[K, V]) NumPendingUpdates() int { return len(t.pendingUpdates) }

// NumPendingDeletes is the number of keys to delete.
func (t *Tracker[K, V]) NumPendingDeletes() int { return len(t.pendingDeletes) }

// NumDesired is the number of desired keys.
func (t *Tracker[K, V]) NumDesired() int { return t.numDesired }

// NumActual is the number of keys the dataplane holds.
func (t *Tracker[K, V]) NumActual() int { return t.numActual }
