package deltatracker

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// model is the obviously correct tracker: two maps and set arithmetic.
type model struct {
	desired, actual map[int]int
}

func (m *model) pending() (updates map[int]int, deletes []int) {
	updates = map[int]int{}
	for k, d := range m.desired {
		if a, ok := m.actual[k]; !ok || a != d {
			updates[k] = d
		}
	}
	for k := range m.actual {
		if _, ok := m.desired[k]; !ok {
			deletes = append(deletes, k)
		}
	}
	slices.Sort(deletes)
	return updates, deletes
}

// TestTrackerAgainstModel drives the tracker and the model with the same
// random operations, including resyncs that read back a dataplane in a
// stable order with items vanished, added and changed behind the tracker's
// back, and resyncs restarted midway, and checks they always agree. This is
// what guards the snapshot fast path.
func TestTrackerAgainstModel(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0))
		tr := New[int, int](eq)
		// Values are 0-3 (3 only from a torn read): each is its own class.
		tr.CountActualBy(4, func(v int) int { return v })
		m := &model{desired: map[int]int{}, actual: map[int]int{}}
		kernel := map[int]int{} // the dataplane itself
		const keys = 120
		for step := range 400 {
			switch op := rng.IntN(10); {
			case op < 3:
				k, v := rng.IntN(keys), rng.IntN(3)
				tr.SetDesired(k, v)
				m.desired[k] = v
			case op < 4:
				k := rng.IntN(keys)
				tr.DeleteDesired(k)
				delete(m.desired, k)
			case op < 6:
				// Apply: write every pending difference to the dataplane.
				for k, u := range tr.PendingUpdates() {
					kernel[k] = u.Desired
					tr.SetActual(k, u.Desired)
					m.actual[k] = u.Desired
				}
				for k := range maps.Collect(tr.PendingDeletes()) {
					delete(kernel, k)
					tr.DeleteActual(k)
					delete(m.actual, k)
				}
			case op < 8:
				// Someone else changes the dataplane.
				for range rng.IntN(5) {
					k := rng.IntN(keys)
					switch rng.IntN(3) {
					case 0:
						delete(kernel, k)
					default:
						kernel[k] = rng.IntN(3)
					}
				}
			default:
				// Resync, sometimes interrupted and restarted first.
				read := slices.Sorted(maps.Keys(kernel))
				if rng.IntN(4) == 0 {
					tr.BeginResync()
					for _, k := range read[:len(read)/2] {
						tr.ObserveActual(k, kernel[k]+rng.IntN(2)) // a torn read
					}
				}
				tr.BeginResync()
				for _, k := range read {
					tr.ObserveActual(k, kernel[k])
				}
				tr.EndResync()
				m.actual = maps.Clone(kernel)
			}
			wantU, wantD := m.pending()
			gotU := map[int]int{}
			for k, u := range tr.PendingUpdates() {
				gotU[k] = u.Desired
			}
			gotD := slices.Sorted(maps.Keys(maps.Collect(tr.PendingDeletes())))
			if !maps.Equal(gotU, wantU) || !slices.Equal(gotD, wantD) {
				t.Fatalf("seed %d step %d: updates %v deletes %v\nwant %v %v", seed, step, gotU, gotD, wantU, wantD)
			}
			if tr.NumActual() != len(m.actual) {
				t.Fatalf("seed %d step %d: NumActual %d, want %d", seed, step, tr.NumActual(), len(m.actual))
			}
			var byClass [4]int
			for _, v := range m.actual {
				byClass[v]++
			}
			for c, want := range byClass {
				if got := tr.NumActualIn(c); got != want {
					t.Fatalf("seed %d step %d: NumActualIn(%d) = %d, want %d", seed, step, c, got, want)
				}
			}
		}
	}
}
