// Package audit reads the whole IPAM state and says what is wrong with
// it (cairnctl ipam check), shows it (show) and repairs what a check found
// or releases addresses an operator names (release). Every repair is a
// compare-and-swap against the version the check saw, so a repair never
// undoes a change made after the check.
package audit

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
)

// Snapshot is the IPAM state read at one time.
type Snapshot struct {
	Pools      []*v1.IPPool
	Blocks     []*v1.IPAMBlock
	Affinities []*v1.BlockAffinity
	Handles    []*v1.IPAMHandle
}

// Read reads a snapshot from the store. Handles are read last: a handle is
// written before its allocations, so an assignment in flight is never
// reported as an allocation without handle. A release in flight (block
// written, handle not yet deleted) can still show as a handle without
// allocations: checks of a busy cluster report work in progress, which is
// why the garbage collector waits a grace period and looks again.
func Read(ctx context.Context, store ipam.Store) (*Snapshot, error) {
	var s Snapshot
	var err error
	if s.Pools, err = store.Pools().List(ctx); err != nil {
		return nil, fmt.Errorf("read IPAM state: %w", err)
	}
	if s.Affinities, err = store.Affinities().List(ctx); err != nil {
		return nil, fmt.Errorf("read IPAM state: %w", err)
	}
	if s.Blocks, err = store.Blocks().List(ctx); err != nil {
		return nil, fmt.Errorf("read IPAM state: %w", err)
	}
	if s.Handles, err = store.Handles().List(ctx); err != nil {
		return nil, fmt.Errorf("read IPAM state: %w", err)
	}
	return &s, nil
}

// Holder is one allocation of an address.
type Holder struct {
	Addr      netip.Addr `json:"addr"`
	Block     string     `json:"block"`
	Handle    string     `json:"handle"`
	Sequence  int64      `json:"sequence"`
	Node      string     `json:"node,omitempty"`
	Namespace string     `json:"namespace,omitempty"`
	Pod       string     `json:"pod,omitempty"`
}

// OrphanAllocation is an allocation no handle leads to: release by handle
// would never free it.
type OrphanAllocation struct {
	Holder
	// Reason: "no handle" or "handle does not name the block".
	Reason string `json:"reason"`
}

// EmptyHandle is a handle that holds no address.
type EmptyHandle struct {
	Name            string `json:"name"`
	HandleID        string `json:"handleID"`
	ResourceVersion string `json:"resourceVersion"`
	Node            string `json:"node,omitempty"`
	Namespace       string `json:"namespace,omitempty"`
	Pod             string `json:"pod,omitempty"`
}

// Duplicate is an address held more than once.
type Duplicate struct {
	Addr    netip.Addr `json:"addr"`
	Holders []Holder   `json:"holders"`
}

// UnclaimedBlock is a block no confirmed affinity claims: nobody announces
// it.
type UnclaimedBlock struct {
	Name            string `json:"name"`
	CIDR            string `json:"cidr"`
	Affinity        string `json:"affinity,omitempty"`
	ResourceVersion string `json:"resourceVersion"`
	Allocations     int    `json:"allocations"`
}

// StaleAffinity is a claim whose block does not exist or is another
// node's (a claim or release interrupted halfway).
type StaleAffinity struct {
	Name            string `json:"name"`
	Node            string `json:"node"`
	CIDR            string `json:"cidr"`
	State           string `json:"state"`
	ResourceVersion string `json:"resourceVersion"`
}

// Report is what a check found.
type Report struct {
	AllocationsWithoutHandle  []OrphanAllocation `json:"allocationsWithoutHandle"`
	HandlesWithoutAllocations []EmptyHandle      `json:"handlesWithoutAllocations"`
	DuplicateAddresses        []Duplicate        `json:"duplicateAddresses"`
	BlocksWithoutAffinity     []UnclaimedBlock   `json:"blocksWithoutAffinity"`
	AffinitiesWithoutBlock    []StaleAffinity    `json:"affinitiesWithoutBlock"`
	// Counts of what was checked.
	Blocks      int `json:"blocks"`
	Handles     int `json:"handles"`
	Allocations int `json:"allocations"`
}

// Problems is the number of findings.
func (r *Report) Problems() int {
	return len(r.AllocationsWithoutHandle) + len(r.HandlesWithoutAllocations) + len(r.DuplicateAddresses) +
		len(r.BlocksWithoutAffinity) + len(r.AffinitiesWithoutBlock)
}

// Check reads the store and checks it.
func Check(ctx context.Context, store ipam.Store) (*Report, error) {
	s, err := Read(ctx, store)
	if err != nil {
		return nil, err
	}
	return s.Check(), nil
}

// Check checks a snapshot.
func (s *Snapshot) Check() *Report {
	r := &Report{Blocks: len(s.Blocks), Handles: len(s.Handles)}
	handles := map[string]*v1.IPAMHandle{}
	for _, h := range s.Handles {
		handles[h.Spec.HandleID] = h
	}
	claims := map[string]string{} // cidr -> node with a confirmed claim
	for _, a := range s.Affinities {
		if a.Spec.State != v1.AffinityPending {
			claims[canonical(a.Spec.CIDR)] = a.Spec.Node
		}
	}
	holders := map[netip.Addr][]Holder{}
	held := map[string]bool{}
	blockOwner := map[string]string{}
	for _, b := range s.Blocks {
		p, err := ipam.BlockPrefix(b)
		if err != nil {
			continue
		}
		blockOwner[p.String()] = ipam.AffinityNode(b.Spec.Affinity)
		if node := ipam.AffinityNode(b.Spec.Affinity); node == "" || claims[p.String()] != node {
			r.BlocksWithoutAffinity = append(r.BlocksWithoutAffinity, UnclaimedBlock{
				Name: b.Name, CIDR: p.String(), Affinity: b.Spec.Affinity, ResourceVersion: b.ResourceVersion, Allocations: len(b.Spec.Allocations),
			})
		}
		for _, a := range b.Spec.Allocations {
			r.Allocations++
			h := Holder{Addr: ipam.AddrAt(p, int(a.Ordinal)), Block: p.String(), Handle: a.Handle, Sequence: a.Sequence, Node: a.Node, Namespace: a.Namespace, Pod: a.Pod}
			holders[h.Addr] = append(holders[h.Addr], h)
			held[a.Handle] = true
			switch hd := handles[a.Handle]; {
			case hd == nil:
				r.AllocationsWithoutHandle = append(r.AllocationsWithoutHandle, OrphanAllocation{h, "no handle"})
			case hd.Spec.Blocks[p.String()] == 0:
				r.AllocationsWithoutHandle = append(r.AllocationsWithoutHandle, OrphanAllocation{h, "handle does not name the block"})
			}
		}
	}
	for _, h := range s.Handles {
		if !held[h.Spec.HandleID] {
			r.HandlesWithoutAllocations = append(r.HandlesWithoutAllocations, EmptyHandle{
				Name: h.Name, HandleID: h.Spec.HandleID, ResourceVersion: h.ResourceVersion, Node: h.Spec.Node, Namespace: h.Spec.Namespace, Pod: h.Spec.Pod,
			})
		}
	}
	for addr, hs := range holders {
		if len(hs) > 1 {
			r.DuplicateAddresses = append(r.DuplicateAddresses, Duplicate{Addr: addr, Holders: hs})
		}
	}
	slices.SortFunc(r.DuplicateAddresses, func(a, b Duplicate) int { return a.Addr.Compare(b.Addr) })
	for _, a := range s.Affinities {
		if owner, ok := blockOwner[canonical(a.Spec.CIDR)]; !ok || owner != a.Spec.Node {
			r.AffinitiesWithoutBlock = append(r.AffinitiesWithoutBlock, StaleAffinity{
				Name: a.Name, Node: a.Spec.Node, CIDR: a.Spec.CIDR, State: a.Spec.State, ResourceVersion: a.ResourceVersion,
			})
		}
	}
	return r
}

func canonical(cidr string) string {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return cidr
	}
	return p.Masked().String()
}

// Summary is a one-line description of a report.
func (r *Report) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d blocks, %d handles, %d allocations: ", r.Blocks, r.Handles, r.Allocations)
	if r.Problems() == 0 {
		b.WriteString("no problems")
		return b.String()
	}
	fmt.Fprintf(&b, "%d allocations without handle, %d handles without allocations, %d duplicate addresses, %d blocks without affinity, %d affinities without block",
		len(r.AllocationsWithoutHandle), len(r.HandlesWithoutAllocations), len(r.DuplicateAddresses), len(r.BlocksWithoutAffinity), len(r.AffinitiesWithoutBlock))
	return b.String()
}
