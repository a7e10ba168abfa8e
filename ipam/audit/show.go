package audit

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/pools"
)

// Show writes a human-readable view of the snapshot: pools with their
// usage, then blocks with owner and usage, then borrowed addresses.
func (s *Snapshot) Show(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	parsed := pools.Analyze(s.Pools)
	fmt.Fprintln(tw, "POOL\tCIDR\tBLOCK\tSTATE\tBLOCKS\tIN USE")
	for _, p := range parsed {
		blocks, used := 0, 0
		for _, b := range s.Blocks {
			if bp, err := ipam.BlockPrefix(b); err == nil && p.CIDR.IsValid() && p.CIDR.Contains(bp.Addr()) {
				blocks++
				used += len(b.Spec.Allocations)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t/%d\t%s\t%d\t%d\n", p.Name, p.CIDR, p.BlockBits, poolState(p), blocks, used)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "BLOCK\tNODE\tIN USE\tBORROWED BY")
	blocks := slices.Clone(s.Blocks)
	slices.SortFunc(blocks, func(a, b *v1.IPAMBlock) int { return strings.Compare(a.Spec.CIDR, b.Spec.CIDR) })
	for _, b := range blocks {
		p, err := ipam.BlockPrefix(b)
		if err != nil {
			continue
		}
		owner := ipam.AffinityNode(b.Spec.Affinity)
		borrowers := map[string]int{}
		for _, a := range b.Spec.Allocations {
			if a.Node != "" && a.Node != owner {
				borrowers[a.Node]++
			}
		}
		var bs []string
		for n, c := range borrowers {
			bs = append(bs, fmt.Sprintf("%s(%d)", n, c))
		}
		slices.Sort(bs)
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\n", p, orDash(owner), len(b.Spec.Allocations), ipam.BlockCapacity(p), orDash(strings.Join(bs, ",")))
	}
	return tw.Flush()
}

// Addresses lists every allocation in the snapshot, by address.
func (s *Snapshot) Addresses() []Holder {
	var out []Holder
	for _, b := range s.Blocks {
		p, err := ipam.BlockPrefix(b)
		if err != nil {
			continue
		}
		for _, a := range b.Spec.Allocations {
			out = append(out, Holder{Addr: ipam.AddrAt(p, int(a.Ordinal)), Block: p.String(), Handle: a.Handle, Sequence: a.Sequence, Node: a.Node, Namespace: a.Namespace, Pod: a.Pod})
		}
	}
	slices.SortFunc(out, func(a, b Holder) int { return a.Addr.Compare(b.Addr) })
	return out
}

// Find returns the allocations of addr.
func (s *Snapshot) Find(addr netip.Addr) []Holder {
	var out []Holder
	for _, h := range s.Addresses() {
		if h.Addr == addr {
			out = append(out, h)
		}
	}
	return out
}

func poolState(p pools.Pool) string {
	switch {
	case p.Invalid != nil:
		return "invalid"
	case len(p.YieldsTo) > 0:
		return "unused: overlaps the older " + strings.Join(p.YieldsTo, ",")
	case p.Disabled:
		return "disabled"
	case len(p.Overlaps) > 0:
		return "enabled, overlapped by the newer " + strings.Join(p.Overlaps, ",")
	}
	return "enabled"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
