package allocator

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/pools"
)

// maxPerRequest bounds the addresses one request may ask for; a pod
// interface needs one or two.
const maxPerRequest = 64

// maxMoveRounds bounds how often an assignment moves to other blocks
// because the ones it reserved filled up or went away.
const maxMoveRounds = 8

// AutoAssign hands out req.IPv4 IPv4 and req.IPv6 IPv6 addresses to the
// handle req.HandleID and returns them as /32 and /128 prefixes. A new
// handle and its first block writes go out together (createAndCommit);
// a handle that grows names every block before an address is written
// there. Calling it again for a handle that already holds
// addresses returns those (topped up to the requested counts), so a
// retried CNI ADD does not leak; a handle of that ID written for another
// node, container or interface is not a retry and fails with
// ipam.ErrRejected. On failure, or when ctx ends, everything
// this call wrote is undone before it returns (bounded by
// RollbackTimeout); what a crash leaves behind is garbage-collected.
func (a *Allocator) AutoAssign(ctx context.Context, req Request) ([]netip.Prefix, error) {
	if err := a.validate(req); err != nil {
		return nil, err
	}
	unlock := a.handles.lock(req.HandleID)
	defer unlock()
	as, err := a.newAssignment(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("assign addresses to handle %s on node %s: %w", req.HandleID, a.opts.Node, err)
	}
	out, err := as.run(ctx)
	if err == nil {
		return out, nil
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.opts.RollbackTimeout)
	defer cancel()
	if rerr := as.rollback(rctx); rerr != nil {
		a.log.Error("roll back failed assignment; garbage collection will finish it", "handle", req.HandleID, "err", rerr)
		err = errors.Join(err, fmt.Errorf("roll back: %w", rerr))
	}
	return nil, fmt.Errorf("assign addresses to handle %s on node %s: %w", req.HandleID, a.opts.Node, err)
}

func (a *Allocator) validate(req Request) error {
	switch {
	case req.HandleID == "":
		return fmt.Errorf("assign addresses: %w: empty handle ID", ErrInvalidRequest)
	case req.IPv4 < 0 || req.IPv6 < 0 || req.IPv4+req.IPv6 == 0 || req.IPv4+req.IPv6 > maxPerRequest:
		return fmt.Errorf("assign addresses to handle %s: %w: asks for %d IPv4 and %d IPv6 addresses", req.HandleID, ErrInvalidRequest, req.IPv4, req.IPv6)
	case req.Node != "" && req.Node != a.opts.Node:
		return fmt.Errorf("assign addresses to handle %s: %w: request is for node %q, allocator serves %q", req.HandleID, ErrInvalidRequest, req.Node, a.opts.Node)
	}
	return nil
}

// assignment is one AutoAssign call in progress.
type assignment struct {
	a     *Allocator
	req   Request
	owner ipam.Owner
	want  map[pools.Family]int
	cands map[pools.Family][]pools.Pool

	// handle is the latest version of the handle this call knows.
	handle *v1.IPAMHandle
	// existing: what the handle held before this call; got: what this
	// call added.
	existing, got []ipam.Allocation
	// touched: blocks this call sent assignments to.
	touched map[netip.Prefix]bool
	// dropOnRollback: rollback releases exactly got (createAndCommit
	// found the handle existing and could not release them).
	dropOnRollback bool
}

func (a *Allocator) newAssignment(ctx context.Context, req Request) (*assignment, error) {
	if err := a.ensureLoaded(ctx); err != nil {
		return nil, err
	}
	all, err := a.allPools(ctx)
	if err != nil {
		return nil, err
	}
	labels, err := a.nodeLabels(ctx)
	if err != nil {
		return nil, err
	}
	as := &assignment{
		a: a, req: req,
		owner:   ipam.Owner{Handle: req.HandleID, Node: a.opts.Node, Namespace: req.Namespace, Pod: req.Pod},
		want:    map[pools.Family]int{},
		cands:   map[pools.Family][]pools.Pool{},
		touched: map[netip.Prefix]bool{},
	}
	for fam, n := range map[pools.Family]int{pools.V4: req.IPv4, pools.V6: req.IPv6} {
		if n > 0 {
			as.want[fam] = n
			as.cands[fam] = pools.ForRequest(all, fam, req.Pools, labels)
		}
	}
	return as, nil
}

func (as *assignment) run(ctx context.Context) ([]netip.Prefix, error) {
	res, err := as.reserve(ctx, as.want)
	if err != nil {
		return nil, err
	}
	created, moved, err := as.createAndCommit(ctx, res)
	if err != nil {
		return nil, err
	}
	if !created {
		// The handle exists (a retried ADD): keep what it holds and
		// assign only what is missing.
		if err := as.readExisting(ctx); err != nil {
			return nil, err
		}
		missing := as.missing()
		if len(missing) == 0 {
			return as.result(), nil
		}
		if res, err = as.reserve(ctx, missing); err != nil {
			return nil, err
		}
		if err := as.writeHandle(ctx, res); err != nil {
			as.a.unreserve(res)
			return nil, err
		}
		if moved, err = as.commit(ctx, res); err != nil {
			return nil, err
		}
	}
	for round := 0; ; round++ {
		if len(moved) == 0 {
			return as.result(), nil
		}
		if round >= maxMoveRounds {
			return nil, fmt.Errorf("blocks kept filling up under this assignment: %w", ErrNoAddresses)
		}
		if res, err = as.reserve(ctx, moved); err != nil {
			return nil, err
		}
		// The handle names every block before an allocation is written
		// there.
		if err := as.writeHandle(ctx, res); err != nil {
			as.a.unreserve(res)
			return nil, err
		}
		if moved, err = as.commit(ctx, res); err != nil {
			return nil, err
		}
	}
}

// createAndCommit creates the handle and writes the reserved addresses to
// their blocks at the same time: a pod's ADD waits for one API round trip
// instead of two. For as long as the block write has landed and the
// handle's has not, an address is held by a handle that does not exist;
// that window is covered where a handle-first order did not need it:
// rollback releases the allocations of a failed call, ReleaseByHandle of
// a missing handle (the runtime's DEL after an agent crashed here) looks
// for them in the node's blocks, and the garbage collector releases an
// allocation without a handle once its pod is gone.
//
// It returns false when the handle already existed (a retried ADD): what
// this call assigned is released again, and the caller goes on with what
// the handle holds.
func (as *assignment) createAndCommit(ctx context.Context, res []reservation) (created bool, moved map[pools.Family]int, err error) {
	type handleResult struct {
		created bool
		err     error
	}
	hc := make(chan handleResult, 1)
	want := as.newHandle(res) // before commit adds to as.got
	go func() {
		created, err := as.createHandle(ctx, want)
		hc <- handleResult{created, err}
	}()
	moved, cerr := as.commit(ctx, res)
	h := <-hc
	switch {
	case h.err != nil || cerr != nil:
		return false, nil, errors.Join(h.err, cerr)
	case !h.created:
		// The handle may be another owner's: from here on only the exact
		// allocations of this call may be released, never whatever the
		// handle holds in the blocks touched.
		as.touched = map[netip.Prefix]bool{}
		if err := as.dropGot(ctx); err != nil {
			as.dropOnRollback = true
			return false, nil, fmt.Errorf("handle exists (a retried assignment): release what was assigned meanwhile: %w", err)
		}
		return false, nil, nil
	}
	return true, moved, nil
}

// dropGot releases exactly what this call assigned (its handle and
// sequence), leaving anything else the handle holds.
func (as *assignment) dropGot(ctx context.Context) error {
	if len(as.got) == 0 {
		return nil
	}
	mine := map[netip.Prefix]map[int32]int64{}
	for _, al := range as.got {
		if mine[al.Block] == nil {
			mine[al.Block] = map[int32]int64{}
		}
		mine[al.Block][al.Ordinal] = al.Sequence
	}
	blocks := map[netip.Prefix]bool{}
	for p := range mine {
		blocks[p] = true
	}
	id := as.req.HandleID
	_, err := as.a.releaseInBlocks(ctx, blocks, func(p netip.Prefix) func(v1.BlockAllocation) bool {
		return func(al v1.BlockAllocation) bool {
			seq, ok := mine[p][al.Ordinal]
			return ok && al.Handle == id && al.Sequence == seq
		}
	})
	if err != nil {
		return err
	}
	as.got = nil
	return nil
}

func (as *assignment) reserve(ctx context.Context, need map[pools.Family]int) ([]reservation, error) {
	var out []reservation
	for _, fam := range []pools.Family{pools.V4, pools.V6} {
		if need[fam] == 0 {
			continue
		}
		rs, err := as.a.reserve(ctx, fam, as.cands[fam], need[fam])
		if err != nil {
			as.a.unreserve(out)
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// counts is the handle's blocks map for what it holds plus res.
func (as *assignment) counts(res []reservation) map[string]int32 {
	m := map[string]int32{}
	for _, l := range [][]ipam.Allocation{as.existing, as.got} {
		for _, al := range l {
			m[al.Block.String()]++
		}
	}
	for _, r := range res {
		m[r.e.prefix.String()] += int32(r.n)
	}
	return m
}

func (as *assignment) newHandle(res []reservation) *v1.IPAMHandle {
	return &v1.IPAMHandle{
		ObjectMeta: metav1.ObjectMeta{Name: ipam.HandleName(as.req.HandleID)},
		Spec: v1.IPAMHandleSpec{
			HandleID: as.req.HandleID, Blocks: as.counts(res),
			ContainerID: as.req.ContainerID, Interface: as.req.Interface,
			Node: as.a.opts.Node, Namespace: as.req.Namespace, Pod: as.req.Pod, PodUID: as.req.PodUID,
		},
	}
}

// createHandle creates the handle, want. It returns false when the
// handle already exists.
func (as *assignment) createHandle(ctx context.Context, want *v1.IPAMHandle) (bool, error) {
	exists := false
	err := as.a.retry(ctx, "create handle", func() error {
		h, err := as.a.store.Handles().Create(ctx, want)
		if ipam.IsAlreadyExists(err) {
			exists = true
			return nil
		}
		as.handle = h
		return err
	})
	if err != nil {
		return false, fmt.Errorf("create handle %s: %w", want.Name, err)
	}
	return !exists, nil
}

// writeHandle makes the handle name what it holds plus res, re-reading on
// conflict and recreating it if someone deleted it.
func (as *assignment) writeHandle(ctx context.Context, res []reservation) error {
	want := as.counts(res)
	err := as.a.retry(ctx, "update handle", func() error {
		if as.handle == nil {
			h, err := as.a.store.Handles().Create(ctx, as.newHandle(res))
			if err == nil {
				as.handle = h
				return nil
			}
			if !ipam.IsAlreadyExists(err) {
				return err
			}
			if as.handle, err = as.a.store.Handles().Get(ctx, ipam.HandleName(as.req.HandleID)); err != nil {
				as.handle = nil
				return fmt.Errorf("re-read handle: %w", ipam.ErrConflict)
			}
			// Recreated meanwhile, perhaps by someone else: only our
			// own may be written.
			if err := as.sameOwner(as.handle); err != nil || as.handle.Spec.HandleID != as.req.HandleID {
				as.handle = nil
				return errors.Join(fmt.Errorf("handle object recreated by another owner: %w", ipam.ErrRejected), err)
			}
		}
		next := as.handle.DeepCopy()
		next.Spec.Blocks = want
		h, err := as.a.store.Handles().Update(ctx, next)
		if err == nil {
			as.handle = h
			return nil
		}
		if fresh, gerr := as.a.store.Handles().Get(ctx, next.Name); gerr == nil {
			as.handle = fresh
		} else if ipam.IsNotFound(gerr) {
			as.handle = nil
			return fmt.Errorf("handle deleted meanwhile: %w", ipam.ErrConflict)
		}
		if ipam.IsNotFound(err) {
			return fmt.Errorf("handle deleted meanwhile: %w", ipam.ErrConflict)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("update handle %s: %w", ipam.HandleName(as.req.HandleID), err)
	}
	return nil
}

// readExisting reads the handle and the allocations it holds.
func (as *assignment) readExisting(ctx context.Context) error {
	name := ipam.HandleName(as.req.HandleID)
	h, err := as.a.store.Handles().Get(ctx, name)
	if ipam.IsNotFound(err) {
		return nil // deleted meanwhile: writeHandle recreates it
	}
	if err != nil {
		return fmt.Errorf("read handle %s: %w", name, err)
	}
	if h.Spec.HandleID != as.req.HandleID {
		return fmt.Errorf("handle object %s belongs to handle %q, not %q: %w", name, h.Spec.HandleID, as.req.HandleID, ipam.ErrRejected)
	}
	if err := as.sameOwner(h); err != nil {
		return fmt.Errorf("handle %s: %w", as.req.HandleID, err)
	}
	as.handle = h
	held, err := ipam.HandleAllocations(ctx, as.a.store, h)
	if err != nil {
		return err
	}
	as.existing = held
	return nil
}

// sameOwner checks that an existing handle was written for this request's
// node, container and interface: only then is the request a retry whose
// addresses it may return. A field the handle does not record (handles
// recreated by garbage collection) cannot tell, and does not refuse.
func (as *assignment) sameOwner(h *v1.IPAMHandle) error {
	for _, f := range []struct{ what, have, want string }{
		{"node", h.Spec.Node, as.a.opts.Node},
		{"container", h.Spec.ContainerID, as.req.ContainerID},
		{"interface", h.Spec.Interface, as.req.Interface},
	} {
		if f.have != "" && f.want != "" && f.have != f.want {
			return fmt.Errorf("%w: it belongs to %s %q, not %q: not a retry of the same attachment", ipam.ErrRejected, f.what, f.have, f.want)
		}
	}
	return nil
}

func family(p netip.Prefix) pools.Family {
	if p.Addr().Is4() {
		return pools.V4
	}
	return pools.V6
}

// missing is what the handle lacks of the request, by family.
func (as *assignment) missing() map[pools.Family]int {
	out := map[pools.Family]int{}
	for fam, n := range as.want {
		have := 0
		for _, al := range as.existing {
			if family(al.Block) == fam {
				have++
			}
		}
		if n > have {
			out[fam] = n - have
		}
	}
	return out
}

// commit sends the reservations to their blocks' committers and waits. It
// returns, by family, how many addresses must move to other blocks.
func (as *assignment) commit(ctx context.Context, res []reservation) (map[pools.Family]int, error) {
	ops := make([]*op, len(res))
	for i, r := range res {
		ops[i] = &op{ctx: ctx, kind: opAssign, n: r.n, owner: as.owner, borrow: r.borrow}
		as.touched[r.e.prefix] = true
		as.a.submit(r.e, ops[i])
	}
	moved := map[pools.Family]int{}
	var errs []error
	for i, o := range ops {
		err := wait(ctx, o)
		switch {
		case err == nil:
			for _, al := range o.assigned {
				as.got = append(as.got, ipam.Allocation{BlockAllocation: al, Addr: ipam.AddrAt(res[i].e.prefix, int(al.Ordinal)), Block: res[i].e.prefix})
			}
		case errors.Is(err, errMoved):
			moved[family(res[i].e.prefix)] += res[i].n
		default:
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return moved, nil
}

func (as *assignment) result() []netip.Prefix {
	var out []netip.Prefix
	for _, l := range [][]ipam.Allocation{as.existing, as.got} {
		for _, al := range l {
			out = append(out, ipam.HostPrefix(al.Addr))
		}
	}
	slices.SortFunc(out, func(x, y netip.Prefix) int {
		if x.Addr().Is4() != y.Addr().Is4() {
			if x.Addr().Is4() {
				return -1
			}
			return 1
		}
		return x.Addr().Compare(y.Addr())
	})
	return out
}

// rollback removes every allocation this call may have made (including
// ones whose outcome it stopped waiting for: a release queued on a block
// is written after the assignments queued before it) and brings the
// handle back to what it held before.
func (as *assignment) rollback(ctx context.Context) error {
	if as.dropOnRollback {
		return as.dropGot(ctx)
	}
	keep := map[netip.Addr]bool{}
	for _, al := range as.existing {
		keep[al.Addr] = true
	}
	blocks := map[netip.Prefix]bool{}
	for p := range as.touched {
		blocks[p] = true
	}
	if as.handle != nil {
		for cidr := range as.handle.Spec.Blocks {
			if p, err := netip.ParsePrefix(cidr); err == nil {
				blocks[p.Masked()] = true
			}
		}
	}
	id := as.req.HandleID
	_, err := as.a.releaseInBlocks(ctx, blocks, func(p netip.Prefix) func(v1.BlockAllocation) bool {
		return func(al v1.BlockAllocation) bool {
			return al.Handle == id && !keep[ipam.AddrAt(p, int(al.Ordinal))]
		}
	})
	if err != nil {
		return err
	}
	// What the handle still holds is what it held before; the handle is
	// deleted if that is nothing. Reading it back, rather than deleting it
	// outright, keeps a handle this call never managed to read.
	_, err = ipam.RefreshHandle(ctx, as.a.store, as.a.opts.Backoff, id)
	return err
}
