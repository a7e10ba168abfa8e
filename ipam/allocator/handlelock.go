package allocator

import "sync"

// handleLocks serialises work on one handle within this process, so a
// release cannot slip between an assignment's handle write and its block
// write and leave an allocation whose handle is gone.
type handleLocks struct {
	mu sync.Mutex
	m  map[string]*handleLock
}

type handleLock struct {
	mu   sync.Mutex
	refs int
}

// lock locks id and returns its unlock function.
func (h *handleLocks) lock(id string) func() {
	h.mu.Lock()
	l := h.m[id]
	if l == nil {
		l = &handleLock{}
		h.m[id] = l
	}
	l.refs++
	h.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		h.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(h.m, id)
		}
		h.mu.Unlock()
	}
}
