package felix

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"

	"github.com/cairn-net/cairn/felix/natoutgoing"
)

// SetOwnedBlocks states the blocks affine to this node; each gets a
// blackhole route, so traffic to an unallocated address of a block is
// dropped here rather than sent back to the network.
func (f *Felix) SetOwnedBlocks(blocks []netip.Prefix) {
	valid := make([]netip.Prefix, 0, len(blocks))
	for _, b := range blocks {
		if !b.IsValid() {
			f.log.Warn("ignoring invalid owned block", "block", b)
			continue
		}
		valid = append(valid, b.Masked())
	}
	f.mu.Lock()
	f.blocks = &valid
	f.mu.Unlock()
	f.wake()
}

// SetLearnedRoutes states the complete set of routes learned from peers.
// A route that would hide a connected route, an owned block or a local
// endpoint is not installed. The first call is taken as complete: until
// it, learned routes found in the kernel are kept (graceful restart), so
// the speaker should call it once it has its initial routes.
func (f *Felix) SetLearnedRoutes(routes []LearnedRoute) {
	m := make(map[netip.Prefix][]netip.Addr, len(routes))
	invalid := map[netip.Prefix]string{}
	for _, r := range routes {
		if err := validLearned(r); err != nil {
			f.log.Warn("ignoring learned route", "prefix", r.Prefix, "err", err)
			if r.Prefix.IsValid() {
				invalid[r.Prefix.Masked()] = err.Error()
			}
			continue
		}
		p := r.Prefix.Masked()
		m[p] = append(m[p], r.NextHops...)
	}
	f.mu.Lock()
	f.learned = &m
	f.invalidLearned = invalid
	f.mu.Unlock()
	f.wake()
}

func validLearned(r LearnedRoute) error {
	if !r.Prefix.IsValid() {
		return errors.New("invalid prefix")
	}
	if len(r.NextHops) == 0 {
		return errors.New("no next hop")
	}
	for _, h := range r.NextHops {
		if !h.IsValid() || h.Is4() != r.Prefix.Addr().Is4() || h.Is4In6() {
			return fmt.Errorf("next hop %s does not match the prefix family", h)
		}
		if h.IsLinkLocalUnicast() && h.Is6() {
			return fmt.Errorf("link-local next hop %s needs an interface felix is not given", h)
		}
	}
	return nil
}

// SetPools states the IP pools, for outgoing NAT and for IPv6 forwarding,
// which is enabled once an IPv6 pool serves this node.
func (f *Felix) SetPools(pools []Pool) {
	ps := make([]natoutgoing.Pool, 0, len(pools))
	v6 := false
	for _, p := range pools {
		if !p.CIDR.IsValid() {
			f.log.Warn("ignoring invalid pool", "pool", p.CIDR)
			continue
		}
		ps = append(ps, natoutgoing.Pool{CIDR: p.CIDR, NATOutgoing: p.NATOutgoing})
		v6 = v6 || (p.ServesNode && p.CIDR.Addr().Is6())
	}
	f.mu.Lock()
	f.pools = &ps
	f.wantV6Fwd = f.wantV6Fwd || v6
	f.mu.Unlock()
	f.wake()
}

// Resync makes felix read the whole kernel state back now and returns the
// result of that pass once it is done.
func (f *Felix) Resync(ctx context.Context) error {
	w := &waiter{ctx: ctx, kind: waitResync, done: make(chan error, 1)}
	f.mu.Lock()
	f.newWait = append(f.newWait, w)
	f.mu.Unlock()
	f.wake()
	return w.wait()
}

// RefusedRoutes returns the learned routes that are not in the kernel, and
// why (they would hide local state, or no next hop is usable), as of the
// last pass. The agent reports them in the node's status.
func (f *Felix) RefusedRoutes() map[netip.Prefix]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.refused)
}

// publishRefused copies the table's refusals for RefusedRoutes; called
// by the loop, which owns the table.
func (f *Felix) publishRefused() {
	got := f.rt.Refused()
	out := make(map[netip.Prefix]string, len(got))
	for p, why := range got {
		out[p] = string(why)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// Routes refused on the way in never reach the table: they are
	// reported all the same, so the status never calls them installed.
	for p, why := range f.invalidLearned {
		if _, ok := out[p]; !ok {
			out[p] = why
		}
	}
	f.refused = out
}
