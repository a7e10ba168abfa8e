package lbipam

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"github.com/cairn-net/cairn/ipam/pools"
)

// Table is who holds which address: the leader's view of every Service's
// status, kept by the controller's one worker (it is not safe for
// concurrent use). An address may have several holders only when another
// controller's Service carries one of Cairn's; Cairn never gives it to a
// second Service of its own.
type Table struct {
	byKey  map[string]holding
	byAddr map[netip.Addr]map[string]bool
}

type holding struct {
	uid   types.UID
	addrs []netip.Addr
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{byKey: map[string]holding{}, byAddr: map[netip.Addr]map[string]bool{}}
}

// Held returns what the Service key holds, and the UID of the Service it
// was given to.
func (t *Table) Held(key string) (types.UID, []netip.Addr) {
	h := t.byKey[key]
	return h.uid, slices.Clone(h.addrs)
}

// Set makes key hold exactly addrs and returns the addresses it gave up
// that nobody holds any more.
func (t *Table) Set(key string, uid types.UID, addrs []netip.Addr) (freed []netip.Addr) {
	old := t.byKey[key].addrs
	for _, a := range old {
		if !slices.Contains(addrs, a) {
			delete(t.byAddr[a], key)
			if len(t.byAddr[a]) == 0 {
				delete(t.byAddr, a)
				freed = append(freed, a)
			}
		}
	}
	if len(addrs) == 0 {
		delete(t.byKey, key)
		return freed
	}
	t.byKey[key] = holding{uid: uid, addrs: slices.Clone(addrs)}
	for _, a := range addrs {
		if t.byAddr[a] == nil {
			t.byAddr[a] = map[string]bool{}
		}
		t.byAddr[a][key] = true
	}
	return freed
}

// Remove drops everything key holds and returns what became free.
func (t *Table) Remove(key string) (freed []netip.Addr) { return t.Set(key, "", nil) }

// Holders returns the keys holding addr, sorted.
func (t *Table) Holders(addr netip.Addr) []string {
	var out []string
	for k := range t.byAddr[addr] {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TakenByOther reports, for key's decisions, whether another Service
// holds an address.
func (t *Table) TakenByOther(key string) func(netip.Addr) bool {
	return func(a netip.Addr) bool {
		hs := t.byAddr[a]
		return len(hs) > 1 || (len(hs) == 1 && !hs[key])
	}
}

// Len is the number of addresses held.
func (t *Table) Len() int { return len(t.byAddr) }

// Rebuild makes the table a new leader starts from, out of every
// Service's status. Of Services whose statuses carry the same address,
// one holds it: another controller's Service (Cairn cannot take it back),
// else the older Service, by creation time then key. The others' next
// sync sees the address taken and gives them another. A Service that is
// no longer of type LoadBalancer holds the addresses of LoadBalancer pools
// still in its status, until its sync clears them.
func Rebuild(services []Service, all []pools.Pool) *Table {
	rank := func(s Service) int {
		switch {
		case s.LoadBalancer && !s.Managed:
			return 0
		case s.Managed:
			return 1
		}
		return 2
	}
	sorted := slices.Clone(services)
	slices.SortFunc(sorted, func(a, b Service) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), a.Created.Compare(b.Created), strings.Compare(a.Key, b.Key))
	})
	t := NewTable()
	for _, s := range sorted {
		var keep []netip.Addr
		for _, a := range s.Status {
			switch rank(s) {
			case 0:
				keep = append(keep, a)
			case 1:
				if len(t.byAddr[a]) == 0 {
					keep = append(keep, a)
				}
			case 2:
				if _, ok := pools.LoadBalancerContaining(all, a); ok && len(t.byAddr[a]) == 0 {
					keep = append(keep, a)
				}
			}
		}
		t.Set(s.Key, s.UID, keep)
	}
	return t
}
