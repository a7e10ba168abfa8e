// Package fake is a stateful in-memory kernel for felix's unit tests. It
// keeps links, main-table routes and sysctls with the kernel's rules that
// felix depends on (EXCL adds, protocol-matched deletes, routes removed with
// their link or when it goes down, IPv6 default metric), and it can be told
// to fail the next call of a kind with a chosen error.
package fake

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/cairn-net/cairn/felix/kernel"
	"golang.org/x/sys/unix"
)

// Call names a kind of kernel call, for failure injection and counting.
type Call int

// Calls that can be made to fail.
const (
	RouteDump Call = iota
	RouteAdd
	RouteReplace
	RouteDelete
	LinkList
	LinkSubscribe
	ReadSysctl
	WriteSysctl
	numCalls
)

type routeKey struct {
	dst      netip.Prefix
	priority uint32
}

// Kernel is the fake. The zero value is not usable; call New.
type Kernel struct {
	mu        sync.Mutex
	links     map[int]kernel.Link
	nextIndex int
	routes    map[routeKey]kernel.Route
	sysctls   map[string]string
	failures  map[Call][]error
	calls     [numCalls]int
	subs      []chan kernel.LinkUpdate
}

var _ kernel.Kernel = (*Kernel)(nil)

// New returns an empty fake kernel with a loopback link.
func New() *Kernel {
	k := &Kernel{
		links:     map[int]kernel.Link{1: {Index: 1, Name: "lo", Up: true}},
		nextIndex: 2,
		routes:    map[routeKey]kernel.Route{},
		sysctls:   map[string]string{},
		failures:  map[Call][]error{},
	}
	return k
}

// FailNext makes the next call of kind c fail with err. For RouteDump and
// LinkList with kernel.ErrDumpInterrupted the call delivers half of the
// results before the error, as an interrupted dump does. For route
// ops the failure hits the next op of that kind within a batch; the other
// ops of the batch go on, as in the kernel.
func (k *Kernel) FailNext(c Call, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.failures[c] = append(k.failures[c], err)
}

// Calls reports how many calls of kind c were made (route ops count one
// each).
func (k *Kernel) Calls(c Call) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.calls[c]
}

// RouteWrites counts route ops of every kind.
func (k *Kernel) RouteWrites() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.calls[RouteAdd] + k.calls[RouteReplace] + k.calls[RouteDelete]
}

func (k *Kernel) fail(c Call) error {
	k.calls[c]++
	q := k.failures[c]
	if len(q) == 0 {
		return nil
	}
	k.failures[c] = q[1:]
	return q[0]
}

func key(r kernel.Route) routeKey {
	p := r.Priority
	if p == 0 && !r.Dst.Addr().Is4() {
		p = 1024
	}
	return routeKey{dst: r.Dst.Masked(), priority: p}
}

func clone(r kernel.Route) kernel.Route {
	r.NextHops = slices.Clone(r.NextHops)
	return r
}

// AddLink creates a link and announces it; it returns its index.
func (k *Kernel) AddLink(name string, up bool) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := kernel.Link{Index: k.nextIndex, Name: name, Up: up}
	k.nextIndex++
	k.links[l.Index] = l
	k.notify(kernel.LinkUpdate{Link: l})
	return l.Index
}

// DelLink deletes a link and, as the kernel does, every route through it.
func (k *Kernel) DelLink(name string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l, ok := k.byName(name)
	if !ok {
		return
	}
	delete(k.links, l.Index)
	k.dropRoutesVia(l.Index)
	k.notify(kernel.LinkUpdate{Link: l, Deleted: true})
}

// SetLinkUp changes a link's admin state; going down removes its routes.
func (k *Kernel) SetLinkUp(name string, up bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l, ok := k.byName(name)
	if !ok {
		return
	}
	l.Up = up
	k.links[l.Index] = l
	if !up {
		k.dropRoutesVia(l.Index)
	}
	k.notify(kernel.LinkUpdate{Link: l})
}

// RenameLink renames a link; its routes stay, as in the kernel.
func (k *Kernel) RenameLink(from, to string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l, ok := k.byName(from)
	if !ok {
		return
	}
	l.Name = to
	k.links[l.Index] = l
	k.notify(kernel.LinkUpdate{Link: l})
}

// BreakSubscriptions closes every link subscription, as a socket overflow
// does.
func (k *Kernel) BreakSubscriptions() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, s := range k.subs {
		close(s)
	}
	k.subs = nil
}

func (k *Kernel) byName(name string) (kernel.Link, bool) {
	for _, l := range k.links {
		if l.Name == name {
			return l, true
		}
	}
	return kernel.Link{}, false
}

func (k *Kernel) dropRoutesVia(index int) {
	for key, r := range k.routes {
		if r.LinkIndex == index {
			delete(k.routes, key)
			continue
		}
		for _, h := range r.NextHops {
			if h.LinkIndex == index {
				delete(k.routes, key)
				break
			}
		}
	}
}

func (k *Kernel) notify(u kernel.LinkUpdate) {
	live := k.subs[:0]
	for _, s := range k.subs {
		select {
		case s <- u:
			live = append(live, s)
		default:
			close(s) // overflow: the subscriber must resync
		}
	}
	k.subs = live
}

// PutRoute installs a route directly, bypassing failure injection: tests use
// it for foreign routes and for routes left by an earlier felix.
func (k *Kernel) PutRoute(r kernel.Route) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.routes[key(r)] = clone(r)
}

// Routes returns the routes of one family, sorted by destination.
func (k *Kernel) Routes(family int) []kernel.Route {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.list(family)
}

// Route returns the route for dst, whatever its metric, if there is one.
func (k *Kernel) Route(dst netip.Prefix) (kernel.Route, bool) {
	for _, r := range k.Routes(kernel.Family(dst)) {
		if r.Dst == dst {
			return r, true
		}
	}
	return kernel.Route{}, false
}

func (k *Kernel) list(family int) []kernel.Route {
	out := make([]kernel.Route, 0, len(k.routes))
	for _, r := range k.routes {
		if kernel.Family(r.Dst) == family {
			out = append(out, clone(r))
		}
	}
	slices.SortFunc(out, func(a, b kernel.Route) int { return a.Dst.Addr().Compare(b.Dst.Addr()) })
	return out
}

// Sysctl returns a sysctl's value ("" when never written).
func (k *Kernel) Sysctl(name string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.sysctls[name]
}

// SetSysctl presets a sysctl, as the node's configuration would.
func (k *Kernel) SetSysctl(name, value string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.sysctls[name] = value
}

// RouteDump implements kernel.Kernel.
func (k *Kernel) RouteDump(family int, fn func(*kernel.Route)) error {
	k.mu.Lock()
	err := k.fail(RouteDump)
	out := k.list(family)
	k.mu.Unlock()
	switch {
	case err == kernel.ErrDumpInterrupted:
		out = out[:len(out)/2]
	case err != nil:
		return err
	}
	for i := range out {
		fn(&out[i])
	}
	return err
}

// RouteApply implements kernel.Kernel.
func (k *Kernel) RouteApply(ops []kernel.RouteOp) []error {
	k.mu.Lock()
	defer k.mu.Unlock()
	errs := make([]error, len(ops))
	for i, op := range ops {
		if err := k.applyOne(op); err != nil {
			errs[i] = fmt.Errorf("%s route %s: %w", op.Kind, op.Route.Dst, err)
		}
	}
	return errs
}

func (k *Kernel) applyOne(op kernel.RouteOp) error {
	r := clone(op.Route)
	kk := key(r)
	if !r.Dst.Addr().Is4() {
		r.Priority = kk.priority
		r.Scope = kernel.ScopeUniverse // IPv6 has no route scopes
	}
	switch op.Kind {
	case kernel.OpDelete:
		if err := k.fail(RouteDelete); err != nil {
			return err
		}
		old, ok := k.routes[kk]
		if !ok || (r.Protocol != 0 && old.Protocol != r.Protocol) {
			return unix.ESRCH
		}
		delete(k.routes, kk)
		return nil
	case kernel.OpAdd:
		if err := k.fail(RouteAdd); err != nil {
			return err
		}
		if _, ok := k.routes[kk]; ok {
			return unix.EEXIST
		}
	case kernel.OpReplace:
		if err := k.fail(RouteReplace); err != nil {
			return err
		}
	default:
		return unix.EINVAL
	}
	if r.LinkIndex != 0 {
		l, ok := k.links[r.LinkIndex]
		if !ok {
			return unix.ENODEV
		}
		if !l.Up {
			return unix.ENETDOWN
		}
	}
	kernel.SortNextHops(r.NextHops)
	k.routes[kk] = r
	return nil
}

// LinkList implements kernel.Kernel.
func (k *Kernel) LinkList() ([]kernel.Link, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	err := k.fail(LinkList)
	out := make([]kernel.Link, 0, len(k.links))
	for _, l := range k.links {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b kernel.Link) int { return a.Index - b.Index })
	if err == kernel.ErrDumpInterrupted {
		return out[:len(out)/2], err
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LinkSubscribe implements kernel.Kernel.
func (k *Kernel) LinkSubscribe(ctx context.Context) (<-chan kernel.LinkUpdate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.fail(LinkSubscribe); err != nil {
		return nil, err
	}
	ch := make(chan kernel.LinkUpdate, 1024)
	k.subs = append(k.subs, ch)
	go func() {
		<-ctx.Done()
		k.mu.Lock()
		defer k.mu.Unlock()
		if i := slices.Index(k.subs, ch); i >= 0 {
			k.subs = slices.Delete(k.subs, i, i+1)
			close(ch)
		}
	}()
	return ch, nil
}

// ReadSysctl implements kernel.Kernel.
func (k *Kernel) ReadSysctl(name string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.fail(ReadSysctl); err != nil {
		return "", err
	}
	v, ok := k.sysctls[name]
	if !ok {
		if !k.sysctlExists(name) {
			return "", fmt.Errorf("read sysctl %s: %w", name, unix.ENOENT)
		}
		return "0", nil
	}
	return v, nil
}

// WriteSysctl implements kernel.Kernel.
func (k *Kernel) WriteSysctl(name, value string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.fail(WriteSysctl); err != nil {
		return fmt.Errorf("write sysctl %s: %w", name, err)
	}
	if !k.sysctlExists(name) {
		return fmt.Errorf("write sysctl %s: %w", name, unix.ENOENT)
	}
	k.sysctls[name] = value
	return nil
}

// sysctlExists: per-interface sysctls exist only while the interface does.
func (k *Kernel) sysctlExists(name string) bool {
	parts := strings.Split(name, "/")
	if len(parts) == 5 && parts[0] == "net" && parts[2] == "conf" {
		switch parts[3] {
		case "all", "default":
			return true
		}
		_, ok := k.byName(parts[3])
		return ok
	}
	return true
}
