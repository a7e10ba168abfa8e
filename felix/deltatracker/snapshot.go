package deltatracker

// snapshot is the dataplane as the last completed resync read it, in the
// order it was read. A dataplane read back in a stable order (the kernel
// dumps its routing trie in address order) then matches it item by item,
// sequentially through memory, so a resync where nothing changed costs no
// map lookup at all. Keys whose actual value changed since (writes, or a
// slow-path observation) are remembered, few as they are, and always take
// the slow path; when too many change, the snapshot is dropped and the next
// resync rebuilds it.
type snapshot[K comparable, V any] struct {
	items []snapItem[K, V]
	// next is being built once the current resync left the snapshot.
	next     []snapItem[K, V]
	cursor   int
	diverged bool
	invalid  bool
	changes  map[K]struct{}
	// exact is set when every key holding an actual value at the start of
	// the resync is in items or changes; skipped then lists the items the
	// cursor passed without reading them, so the keys that vanished are
	// found without walking every entry.
	exact   bool
	skipped []K
}

type snapItem[K comparable, V any] struct {
	k K
	v V
}

// maxChanges bounds the changed-keys set: past it, a snapshot is worth less
// than its bookkeeping.
func (s *snapshot[K, V]) maxChanges() int { return len(s.items)/8 + 64 }

func (s *snapshot[K, V]) changed(k K) {
	if s.invalid || len(s.items) == 0 {
		return
	}
	if len(s.changes) >= s.maxChanges() {
		s.invalid = true
		clear(s.changes)
		return
	}
	if s.changes == nil {
		s.changes = map[K]struct{}{}
	}
	s.changes[k] = struct{}{}
}

// begin starts a resync; restarted is true when the previous one did not
// end (its slow-path observations changed actual values unrecorded).
func (s *snapshot[K, V]) begin(restarted bool) {
	if restarted {
		s.invalid = true
	}
	if s.invalid {
		s.items = s.items[:0]
		clear(s.changes)
		s.invalid = false
	}
	s.cursor = 0
	s.diverged = false
	s.next = s.next[:0]
	s.exact = len(s.items) > 0
	s.skipped = s.skipped[:0]
}

// lookahead is how far match looks past the cursor for the key read: a
// few items read back no more (deleted behind felix's back) must not send
// the rest of the resync down the slow path.
const lookahead = 8

// match reports whether (k, v) is the next item of the snapshot (allowing
// for a few items that were not read back) and still current. Otherwise
// the observation takes the slow path. From the first difference on, the
// next snapshot is built from what is read.
func (s *snapshot[K, V]) match(k K, v V, equal func(a, b V) bool) bool {
	matched := false
	for j := s.cursor; j < min(len(s.items), s.cursor+lookahead); j++ {
		it := &s.items[j]
		if it.k != k {
			continue
		}
		matched = equal(v, it.v) && !s.isChanged(k)
		if j > s.cursor || !matched {
			// items[cursor:j] were not read back, or this one changed:
			// the next snapshot takes what matched before it.
			s.diverge()
		}
		for _, it := range s.items[s.cursor:j] {
			s.skipped = append(s.skipped, it.k)
		}
		s.cursor = j + 1
		break
	}
	if !matched {
		s.diverge()
	}
	if s.diverged {
		s.next = append(s.next, snapItem[K, V]{k: k, v: v})
	}
	return matched
}

// diverge starts the next snapshot with what matched so far.
func (s *snapshot[K, V]) diverge() {
	if !s.diverged {
		s.diverged = true
		s.next = append(s.next[:0], s.items[:s.cursor]...)
	}
}

func (s *snapshot[K, V]) isChanged(k K) bool {
	if len(s.changes) == 0 {
		return false
	}
	_, ok := s.changes[k]
	return ok
}

// unread returns the keys that may have vanished: skipped items, the
// unread tail, and keys changed since the snapshot. Valid only when exact,
// and before end.
func (s *snapshot[K, V]) unread() []K {
	for _, it := range s.items[s.cursor:] {
		s.skipped = append(s.skipped, it.k)
	}
	for k := range s.changes {
		s.skipped = append(s.skipped, k)
	}
	return s.skipped
}

// end makes what was read the snapshot.
func (s *snapshot[K, V]) end() {
	if s.cursor != len(s.items) {
		s.diverge() // the tail was not read back
	}
	if s.diverged {
		s.items, s.next = s.next, s.items[:0]
	}
	clear(s.changes)
}
