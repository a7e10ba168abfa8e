package deltatracker

import (
	"maps"
	"slices"
	"testing"
)

func pending(t *Tracker[string, int]) (updates map[string]int, deletes []string) {
	updates = map[string]int{}
	for k, u := range t.PendingUpdates() {
		updates[k] = u.Desired
		if _, ok := t.Actual(k); ok != u.InDataplane {
			panic("InDataplane disagrees with Actual")
		}
	}
	deletes = slices.Sorted(maps.Keys(maps.Collect(t.PendingDeletes())))
	return updates, deletes
}

func eq(a, b int) bool { return a == b }

func TestTracker(t *testing.T) {
	type step struct {
		name    string
		do      func(tr *Tracker[string, int])
		updates map[string]int
		deletes []string
	}
	steps := []step{
		{"desired only is an update", func(tr *Tracker[string, int]) { tr.SetDesired("a", 1) }, map[string]int{"a": 1}, nil},
		{"actual equal clears it", func(tr *Tracker[string, int]) { tr.SetActual("a", 1) }, map[string]int{}, nil},
		{"actual differs is an update", func(tr *Tracker[string, int]) { tr.SetActual("a", 2) }, map[string]int{"a": 1}, nil},
		{"actual only is a delete", func(tr *Tracker[string, int]) { tr.SetActual("b", 5) }, map[string]int{"a": 1}, []string{"b"}},
		{"desired again removes the delete", func(tr *Tracker[string, int]) { tr.SetDesired("b", 5) }, map[string]int{"a": 1}, nil},
		{"delete desired with actual present is a delete", func(tr *Tracker[string, int]) { tr.DeleteDesired("a") }, map[string]int{}, []string{"a"}},
		{"actual gone ends the delete", func(tr *Tracker[string, int]) { tr.DeleteActual("a") }, map[string]int{}, nil},
		{"actual gone while desired is an update", func(tr *Tracker[string, int]) { tr.DeleteActual("b") }, map[string]int{"b": 5}, nil},
		{"delete desired with no actual is nothing", func(tr *Tracker[string, int]) { tr.DeleteDesired("b") }, map[string]int{}, nil},
		{"deleting unknown keys is a no-op", func(tr *Tracker[string, int]) { tr.DeleteActual("zz"); tr.DeleteDesired("zz") }, map[string]int{}, nil},
	}
	tr := New[string, int](eq)
	for _, s := range steps {
		s.do(tr)
		u, d := pending(tr)
		if !maps.Equal(u, s.updates) || !slices.Equal(d, s.deletes) {
			t.Fatalf("%s: updates %v deletes %v, want %v %v", s.name, u, d, s.updates, s.deletes)
		}
		if tr.NumPendingUpdates() != len(s.updates) || tr.NumPendingDeletes() != len(s.deletes) {
			t.Fatalf("%s: counts %d/%d disagree", s.name, tr.NumPendingUpdates(), tr.NumPendingDeletes())
		}
	}
	if tr.NumDesired() != 0 || tr.NumActual() != 0 || len(tr.entries) != 0 {
		t.Fatalf("emptied tracker still holds %d desired, %d actual, %d entries", tr.NumDesired(), tr.NumActual(), len(tr.entries))
	}
}

func TestResync(t *testing.T) {
	tests := []struct {
		name    string
		desired map[string]int
		before  map[string]int // actual known before the resync
		read    map[string]int // what the resync reads back
		updates map[string]int
		deletes []string
	}{
		{"empty", nil, nil, nil, map[string]int{}, nil},
		{"all match", map[string]int{"a": 1, "b": 2}, map[string]int{"a": 1, "b": 2}, map[string]int{"a": 1, "b": 2}, map[string]int{}, nil},
		{"vanished behind our back", map[string]int{"a": 1, "b": 2}, map[string]int{"a": 1, "b": 2}, map[string]int{"b": 2}, map[string]int{"a": 1}, nil},
		{"changed behind our back", map[string]int{"a": 1}, map[string]int{"a": 1}, map[string]int{"a": 7}, map[string]int{"a": 1}, nil},
		{"found at start (adopted)", map[string]int{"a": 1}, nil, map[string]int{"a": 1}, map[string]int{}, nil},
		{"extra in dataplane", map[string]int{"a": 1}, map[string]int{"a": 1}, map[string]int{"a": 1, "x": 9, "y": 8}, map[string]int{}, []string{"x", "y"}},
		{"stale extra gone", nil, map[string]int{"x": 1}, nil, map[string]int{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := New[string, int](eq)
			for k, v := range tc.desired {
				tr.SetDesired(k, v)
			}
			for k, v := range tc.before {
				tr.SetActual(k, v)
			}
			tr.BeginResync()
			for k, v := range tc.read {
				tr.ObserveActual(k, v)
				tr.ObserveActual(k, v) // a key seen twice counts once
			}
			tr.EndResync()
			u, d := pending(tr)
			if !maps.Equal(u, tc.updates) || !slices.Equal(d, tc.deletes) {
				t.Fatalf("updates %v deletes %v, want %v %v", u, d, tc.updates, tc.deletes)
			}
			if tr.NumActual() != len(tc.read) {
				t.Fatalf("NumActual %d, want %d", tr.NumActual(), len(tc.read))
			}
			for k, v := range tc.read {
				if a, ok := tr.Actual(k); !ok || a != v {
					t.Errorf("Actual(%s) = %d,%v want %d", k, a, ok, v)
				}
			}
		})
	}
}

func BenchmarkNoopResync64k(b *testing.B) {
	tr := New[int, int](eq)
	for i := range 65536 {
		tr.SetDesired(i, i)
		tr.SetActual(i, i)
	}
	for b.Loop() {
		tr.BeginResync()
		for i := range 65536 {
			tr.ObserveActual(i, i)
		}
		tr.EndResync()
	}
}

func TestCountActualByCountsWhatIsHeld(t *testing.T) {
	tr := New[string, int](eq)
	tr.SetActual("a", 1)
	tr.SetActual("b", 2)
	tr.SetActual("c", 2)
	tr.CountActualBy(3, func(v int) int { return v })
	for c, want := range []int{0, 1, 2} {
		if got := tr.NumActualIn(c); got != want {
			t.Errorf("NumActualIn(%d) = %d, want %d", c, got, want)
		}
	}
	tr.SetActual("c", 0)
	tr.DeleteActual("a")
	for c, want := range []int{1, 0, 1} {
		if got := tr.NumActualIn(c); got != want {
			t.Errorf("after changes: NumActualIn(%d) = %d, want %d", c, got, want)
		}
	}
	if got := tr.NumActualIn(7); got != 0 {
		t.Errorf("NumActualIn of an unknown class = %d, want 0", got)
	}
}
